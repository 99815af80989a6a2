//! The one login module of a Java client's `sasl.jaas.config`:
//!
//! ```text
//! org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="secret";
//! ```
//!
//! Strom reads only the options (`username`, `password`); the module's class says which
//! mechanism Java would use, but `sasl.mechanism` says that too, so the class is not checked.

/// A login module's flag and options, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginModule {
    pub class: String,
    pub options: Vec<(String, String)>,
}

impl LoginModule {
    /// The last value of an option (Java keeps the last of a repeated one).
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The flags a JAAS login module may carry.
const FLAGS: [&str; 4] = ["required", "requisite", "sufficient", "optional"];

/// Reads `Class flag key=value ... ;`; values may be double-quoted, with `\` escaping the
/// next character inside quotes. The error says what was expected, never the text (it may
/// hold a password).
pub fn parse(text: &str) -> Result<LoginModule, String> {
    let mut cursor = Cursor { rest: text };
    let class = cursor.word();
    if class.is_empty() {
        return Err(expected("a login module class"));
    }
    let flag = cursor.word();
    if !FLAGS.iter().any(|known| known.eq_ignore_ascii_case(flag)) {
        return Err(expected("the flag 'required' after the login module class"));
    }
    let mut options = Vec::new();
    loop {
        cursor.skip_whitespace();
        if cursor.eat(';') {
            break;
        }
        if cursor.rest.is_empty() {
            return Err(expected("';' at the end"));
        }
        options.push(cursor.option()?);
    }
    cursor.skip_whitespace();
    if !cursor.rest.is_empty() {
        return Err(
            "Strom takes one login module in sasl.jaas.config, as Kafka's clients do; \
                    found text after its ';'"
                .to_string(),
        );
    }
    Ok(LoginModule {
        class: class.to_string(),
        options,
    })
}

fn expected(what: &str) -> String {
    format!(
        "expected {what} (the form is: LoginModuleClass required username=\"NAME\" \
         password=\"PASSWORD\";)"
    )
}

/// What is left of the text to read.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn skip_whitespace(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, wanted: char) -> bool {
        match self.rest.strip_prefix(wanted) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// The next run of characters up to whitespace, `=` or `;`.
    fn word(&mut self) -> &'a str {
        self.skip_whitespace();
        let end = self
            .rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == ';')
            .unwrap_or(self.rest.len());
        let (word, rest) = self.rest.split_at(end);
        self.rest = rest;
        word
    }

    /// `key=value` or `key="value"`.
    fn option(&mut self) -> Result<(String, String), String> {
        let key = self.word();
        self.skip_whitespace();
        if key.is_empty() || !self.eat('=') {
            return Err(expected("options as key=\"value\""));
        }
        self.skip_whitespace();
        let value = if self.eat('"') {
            self.quoted()?
        } else {
            self.word().to_string()
        };
        Ok((key.to_string(), value))
    }

    /// The rest of a double-quoted value, its opening quote already read.
    fn quoted(&mut self) -> Result<String, String> {
        let mut value = String::new();
        let mut characters = self.rest.char_indices();
        while let Some((index, character)) = characters.next() {
            match character {
                '"' => {
                    self.rest = &self.rest[index + 1..];
                    return Ok(value);
                }
                '\\' => value.extend(characters.next().map(|(_, escaped)| escaped)),
                other => value.push(other),
            }
        }
        Err(expected("a closing '\"'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_options_of_the_module() {
        let module = parse(
            "org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"alice\" password = \"s e\\\"c;r=t\" extra=plain ;",
        )
        .unwrap();
        assert_eq!(
            module.class,
            "org.apache.kafka.common.security.scram.ScramLoginModule"
        );
        assert_eq!(module.option("username"), Some("alice"));
        assert_eq!(module.option("password"), Some("s e\"c;r=t"));
        assert_eq!(module.option("extra"), Some("plain"));
        assert_eq!(module.option("missing"), None);
        let bare = parse("PlainLoginModule REQUIRED;").unwrap();
        assert!(bare.options.is_empty());
    }

    #[test]
    fn the_last_of_a_repeated_option_wins() {
        let module = parse("M required username=a username=b;").unwrap();
        assert_eq!(module.option("username"), Some("b"));
    }

    #[test]
    fn malformed_modules_are_refused_without_echoing_the_text() {
        for text in [
            "",
            "Module",
            "Module always username=\"a\";",
            "Module required username=\"a\"",
            "Module required username \"a\";",
            "Module required username=\"secret;",
            "Module required =\"a\";",
            "Module required; Other required;",
        ] {
            let error = parse(text).unwrap_err();
            assert!(!error.contains("secret"), "{text}: {error}");
        }
    }
}
