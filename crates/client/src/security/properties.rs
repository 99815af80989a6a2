//! Java's `.properties` format, as Kafka's tools read a `client.properties` file: one
//! `key=value` (or `key: value`, or `key value`) a line, `#` and `!` comment lines, blank
//! lines, a line ending in `\` continued on the next, and Java's backslash escapes.
//!
//! Java reads the file this way (`java.util.Properties::load`), so a `sasl.jaas.config`
//! written over several lines, as Kafka's documentation shows it, reads the same here.
//! Unlike Java, a value's trailing whitespace is dropped: a password ending in a space
//! invisible in an editor is more often a mistake than meant.

/// One `key=value` of the file, with the line it starts on (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    /// 1-based.
    pub line: usize,
}

/// A line Java's format cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {detail}")]
pub struct SyntaxError {
    pub line: usize,
    pub detail: String,
}

/// Every property of `text`, in file order (a key given twice appears twice; the later wins
/// where the caller keeps one).
pub fn parse(text: &str) -> Result<Vec<Property>, SyntaxError> {
    logical_lines(text)
        .into_iter()
        .map(|(line, content)| property(line, &content))
        .collect()
}

/// The file's logical lines with the number of the line each starts on: comments and blank
/// lines dropped, continued lines joined (the continuation's leading whitespace dropped, as
/// Java does).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        let (start, mut content) = match pending.take() {
            Some((start, content)) => (start, content),
            None if trimmed.is_empty() || trimmed.starts_with(['#', '!']) => continue,
            None => (index + 1, String::new()),
        };
        if ends_in_continuation(trimmed) {
            content.push_str(&trimmed[..trimmed.len() - 1]);
            pending = Some((start, content));
        } else {
            content.push_str(trimmed);
            lines.push((start, content));
        }
    }
    // A continuation on the file's last line continues into nothing.
    lines.extend(pending);
    lines
}

/// Whether a line ends in an odd number of backslashes (an even number are escaped
/// backslashes).
fn ends_in_continuation(line: &str) -> bool {
    let backslashes = line.bytes().rev().take_while(|&byte| byte == b'\\').count();
    backslashes % 2 == 1
}

/// Splits a logical line at the first unescaped `=`, `:` or whitespace, as Java does.
fn property(line: usize, content: &str) -> Result<Property, SyntaxError> {
    let key_end = key_end(content);
    let (raw_key, rest) = content.split_at(key_end);
    let rest = rest.trim_start();
    let rest = rest
        .strip_prefix(['=', ':'])
        .map_or(rest, str::trim_start)
        .trim_end();
    let key = unescape(raw_key).map_err(|detail| SyntaxError { line, detail })?;
    if key.is_empty() {
        return Err(SyntaxError {
            line,
            detail: format!("'{content}' has no key before its '='"),
        });
    }
    let value = unescape(rest).map_err(|detail| SyntaxError { line, detail })?;
    Ok(Property { key, value, line })
}

/// The byte index where a logical line's key ends.
fn key_end(content: &str) -> usize {
    let mut escaped = false;
    for (index, character) in content.char_indices() {
        if escaped {
            escaped = false;
        } else if character == '\\' {
            escaped = true;
        } else if matches!(character, '=' | ':') || character.is_whitespace() {
            return index;
        }
    }
    content.len()
}

/// Java's escapes: `\t \n \r \f`, `\uXXXX`, and a backslash before any other character
/// standing for that character.
fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        if character != '\\' {
            out.push(character);
            continue;
        }
        match characters.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => out.push(unicode_escape(&mut characters)?),
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// The character of a `\uXXXX` escape, its four hex digits read from `characters`.
fn unicode_escape(characters: &mut std::str::Chars<'_>) -> Result<char, String> {
    let digits: String = characters.by_ref().take(4).collect();
    u32::from_str_radix(&digits, 16)
        .ok()
        .filter(|_| digits.len() == 4)
        .and_then(char::from_u32)
        .ok_or_else(|| format!("'\\u{digits}' is not a \\uXXXX escape of four hex digits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String, usize)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|property| (property.key, property.value, property.line))
            .collect()
    }

    fn pair(key: &str, value: &str, line: usize) -> (String, String, usize) {
        (key.to_string(), value.to_string(), line)
    }

    #[test]
    fn keys_and_values_with_comments_and_blank_lines() {
        let text = "# a comment\n\n  ! another\nsecurity.protocol = SASL_SSL  \n\
                    sasl.mechanism:SCRAM-SHA-256\nsasl.username alice\n\tsasl.password=a=b#c\n";
        assert_eq!(
            pairs(text),
            vec![
                pair("security.protocol", "SASL_SSL", 4),
                pair("sasl.mechanism", "SCRAM-SHA-256", 5),
                pair("sasl.username", "alice", 6),
                pair("sasl.password", "a=b#c", 7),
            ]
        );
    }

    #[test]
    fn continued_lines_join_without_their_indentation() {
        let text = "sasl.jaas.config=ScramLoginModule required \\\n    username=\"alice\" \\\n  \
                    password=\"s\";\nnext=1\r\n";
        assert_eq!(
            pairs(text),
            vec![
                pair(
                    "sasl.jaas.config",
                    "ScramLoginModule required username=\"alice\" password=\"s\";",
                    1
                ),
                pair("next", "1", 4),
            ]
        );
    }

    #[test]
    fn escapes_read_as_java_reads_them() {
        assert_eq!(
            pairs("a\\=b=c\\\\\nkey=\\u0041\\t\\x\nempty=\nlast=\\\\\\"),
            vec![
                pair("a=b", "c\\", 1),
                pair("key", "A\tx", 2),
                pair("empty", "", 3),
                pair("last", "\\", 4),
            ]
        );
        assert_eq!(pairs("bare"), vec![pair("bare", "", 1)]);
    }

    #[test]
    fn malformed_lines_are_refused_with_their_number() {
        let error = parse("a=1\n=value").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.to_string().contains("no key"), "{error}");
        let error = parse("a=\\u12x4").unwrap_err();
        assert_eq!(error.line, 1);
        assert!(error.to_string().contains("\\uXXXX"), "{error}");
        assert!(parse("a=\\u12").is_err());
        assert!(
            parse("a=\\uD800").is_err(),
            "a lone surrogate is no character"
        );
    }
}
