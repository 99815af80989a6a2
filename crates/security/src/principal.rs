//! A TLS client's principal, as Kafka builds it: the subject DN of the client's certificate,
//! printed as Java's `X500Principal.getName()` prints it, then rewritten by
//! `ssl.principal.mapping.rules` (KIP-371), then prefixed with `User:`.
//!
//! ACLs name principals by this text, so it has to come out byte for byte as Kafka's does:
//! an ACL written for `User:CN=bob,OU=eng` on a Kafka cluster must mean the same client here.
//! The printing follows the JDK's `sun.security.x509.AVA.toRFC2253String` (JDK 17), quirks
//! included; the rules follow Kafka's `SslPrincipalMapper`.

use std::fmt;
use std::iter::Peekable;
use std::str::Chars;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use x509_parser::asn1_rs::{Any, Class, FromDer, Oid};
use x509_parser::certificate::X509Certificate;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// What can go wrong between a certificate and a principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    /// The bytes are not a DER certificate (or name); the client cannot be identified.
    #[error("the certificate cannot be read: {0}")]
    Certificate(String),
    /// `ssl.principal.mapping.rules` does not parse; the message is Kafka's where Kafka has one.
    #[error("{0}")]
    InvalidRule(String),
    /// The first rule that matches the DN has a replacement Java cannot apply (`$1` with no
    /// group, `${name}` with no such group): Kafka parses such rules and fails the
    /// authentication of a client they match.
    #[error("The replacement of rule {rule} cannot be applied: {reason}")]
    Replacement { rule: String, reason: String },
    /// No rule applies to the DN (Kafka's `NoMatchingRule`): Kafka fails the authentication.
    #[error("No rules apply to {distinguished_name}, rules {rules}")]
    NoMatchingRule {
        distinguished_name: String,
        rules: String,
    },
}

/// The principal Kafka gives a TLS client that presents no certificate.
pub const ANONYMOUS_PRINCIPAL: &str = "User:ANONYMOUS";

/// The subject DN of a DER certificate as Java's `X500Principal.getName()` prints it.
pub fn subject_dn(certificate_der: &[u8]) -> Result<String, PrincipalError> {
    let (rest, certificate) = X509Certificate::from_der(certificate_der)
        .map_err(|error| PrincipalError::Certificate(error.to_string()))?;
    if !rest.is_empty() {
        return Err(trailing_bytes(rest));
    }
    Ok(format_name(certificate.subject()))
}

/// A DER X.501 `Name` as Java's `X500Principal.getName()` prints it (RFC 2253 as the JDK
/// reads it): the RDNs from the last to the first, separated by `,`; the attributes of a
/// multi-valued RDN in their DER order, separated by `+`.
pub fn distinguished_name(name_der: &[u8]) -> Result<String, PrincipalError> {
    let (rest, name) = X509Name::from_der(name_der)
        .map_err(|error| PrincipalError::Certificate(error.to_string()))?;
    if !rest.is_empty() {
        return Err(trailing_bytes(rest));
    }
    Ok(format_name(&name))
}

fn trailing_bytes(rest: &[u8]) -> PrincipalError {
    PrincipalError::Certificate(format!("{} bytes follow the DER value", rest.len()))
}

fn format_name(name: &X509Name<'_>) -> String {
    let relative_names: Vec<String> = name
        .iter_rdn()
        .map(|relative_name| {
            let attributes: Vec<String> = relative_name.iter().map(format_attribute).collect();
            attributes.join("+")
        })
        .collect();
    let most_specific_first: Vec<&str> = relative_names.iter().rev().map(String::as_str).collect();
    most_specific_first.join(",")
}

/// One `TYPE=value`. Java prints the value as text when the type has an RFC 2253 keyword and
/// the value is one of its DER string types; otherwise as `#` and the hex of its DER encoding.
fn format_attribute(attribute: &AttributeTypeAndValue<'_>) -> String {
    let value = attribute.attr_value();
    match (rfc2253_keyword(attribute.attr_type()), java_string(value)) {
        (Some(keyword), Some(text)) => format!("{keyword}={}", escape_value(&text)),
        (Some(keyword), None) => format!("{keyword}=#{}", der_hex(value)),
        (None, _) => format!(
            "{}=#{}",
            attribute.attr_type().to_id_string(),
            der_hex(value)
        ),
    }
}

/// The attribute types Java names in RFC 2253 output; it prints all others as dotted OIDs
/// (so emailAddress comes out as `1.2.840.113549.1.9.1=#16...`).
fn rfc2253_keyword(oid: &Oid<'_>) -> Option<&'static str> {
    const KEYWORDS: [(&str, &str); 9] = [
        ("2.5.4.3", "CN"),
        ("2.5.4.6", "C"),
        ("2.5.4.7", "L"),
        ("2.5.4.8", "ST"),
        ("2.5.4.9", "STREET"),
        ("2.5.4.10", "O"),
        ("2.5.4.11", "OU"),
        ("0.9.2342.19200300.100.1.25", "DC"),
        ("0.9.2342.19200300.100.1.1", "UID"),
    ];
    let dotted = oid.to_id_string();
    KEYWORDS
        .iter()
        .find(|(known, _)| *known == dotted)
        .map(|(_, keyword)| *keyword)
}

/// The text of a value Java treats as a string: universal, primitive UTF8String,
/// PrintableString, T61String, IA5String, GeneralString or BMPString. Java decodes the
/// content of every one of them as UTF-8 (a BMPString too, so its zero bytes print as `\00`);
/// this does the same so that principals match Kafka's.
fn java_string(value: &Any<'_>) -> Option<String> {
    const STRING_TAGS: [u32; 6] = [12, 19, 20, 22, 27, 30];
    let header = &value.header;
    let is_string = header.class() == Class::Universal
        && header.is_primitive()
        && STRING_TAGS.contains(&header.tag().0);
    is_string.then(|| String::from_utf8_lossy(value.data).into_owned())
}

/// The hex of a value's DER encoding (tag, minimal length, content), in lower case as Java
/// prints it.
fn der_hex(value: &Any<'_>) -> String {
    let header = &value.header;
    let mut encoding = identifier_octets(header.class(), header.is_constructed(), header.tag().0);
    encoding.extend(length_octets(value.data.len()));
    encoding.extend_from_slice(value.data);
    encoding.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// X.690 8.1.2: class and form in the top bits, and the tag number in the low five bits or,
/// from 31 up, in base 128 after them.
fn identifier_octets(class: Class, constructed: bool, tag_number: u32) -> Vec<u8> {
    let first = ((class as u8) << 6) | if constructed { 0x20 } else { 0 };
    if tag_number < 31 {
        return vec![first | tag_number as u8];
    }
    let mut octets = vec![first | 0x1f];
    octets.extend(base_128(tag_number));
    octets
}

fn base_128(number: u32) -> Vec<u8> {
    let mut groups = vec![(number & 0x7f) as u8];
    let mut rest = number >> 7;
    while rest > 0 {
        groups.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    groups.reverse();
    groups
}

/// X.690 8.1.3, definite form, as few octets as possible.
fn length_octets(length: usize) -> Vec<u8> {
    if length < 0x80 {
        return vec![length as u8];
    }
    let significant: Vec<u8> = length
        .to_be_bytes()
        .into_iter()
        .skip_while(|&byte| byte == 0)
        .collect();
    let mut octets = vec![0x80 | significant.len() as u8];
    octets.extend(significant);
    octets
}

/// Java's escaping of a string value: a backslash before each of `, = + < > # ; " \`
/// anywhere, `\00` for NUL, and a backslash before each space or carriage return at either
/// end. Other characters, non-ASCII ones included, are left as they are.
fn escape_value(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        match character {
            ',' | '=' | '+' | '<' | '>' | '#' | ';' | '"' | '\\' => {
                escaped.push('\\');
                escaped.push(character);
            }
            '\0' => escaped.push_str("\\00"),
            _ => escaped.push(character),
        }
    }
    escape_edges(&escaped)
}

/// The JDK looks for leading and trailing spaces after escaping, so an escaped character at
/// an end stops the run.
fn escape_edges(text: &str) -> String {
    let is_edge_space = |character: char| character == ' ' || character == '\r';
    let body_start = text.len() - text.trim_start_matches(is_edge_space).len();
    let body_end = text.trim_end_matches(is_edge_space).len().max(body_start);
    let mut escaped = String::with_capacity(text.len() + 4);
    for (index, character) in text.char_indices() {
        if index < body_start || index >= body_end {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// Kafka's `ssl.principal.mapping.rules`: `DEFAULT` (the DN as it is) and
/// `RULE:pattern/replacement/` with an optional `L` or `U` after it (lower or upper case the
/// result), separated by commas. The first rule whose pattern matches the whole DN gives the
/// name: every match of its pattern in the DN is replaced, as Java's `String.replaceAll` does.
///
/// Patterns are Java regular expressions run by the `regex` crate: what both accept means the
/// same, except that `\w`, `\d`, `\s` and `\b` know Unicode here and only ASCII in Java; what
/// the crate lacks (back-references, look-around, possessive quantifiers) is refused when the
/// rules are parsed. Replacements use Java's syntax: `$1`, `${name}`, `\` to quote the next
/// character; a `$n` beyond the pattern's groups is literal text, as in Kafka. A replacement
/// Java cannot apply (`$1` when the pattern has no group) is accepted, as Kafka accepts it,
/// and fails the DNs its rule matches.
///
/// Built once from the broker's configuration and shared read-only by every connection.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<MappingRule>,
}

impl Default for PrincipalMapper {
    /// Kafka's default rules, `DEFAULT`.
    fn default() -> PrincipalMapper {
        PrincipalMapper {
            rules: vec![MappingRule::Default],
        }
    }
}

#[derive(Debug, Clone)]
enum MappingRule {
    Default,
    Replace(ReplaceRule),
}

#[derive(Debug, Clone)]
struct ReplaceRule {
    /// The pattern as written, for messages.
    pattern_text: String,
    /// The replacement as written, for messages.
    replacement_text: String,
    pattern: Regex,
    /// `pattern` anchored at both ends: Java's `Matcher.matches()`.
    whole: Regex,
    /// Java's error for a replacement it cannot apply, raised when the rule matches.
    replacement: Result<Vec<ReplacementPart>, String>,
    case: CaseChange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaseChange {
    Keep,
    Lower,
    Upper,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ReplacementPart {
    Text(String),
    Group(usize),
}

/// Java's `.`: any character but a line terminator.
const JAVA_DOT: &str = r"[^\n\r\x{85}\x{2028}\x{2029}]";
/// Java's `\s`: ASCII white space only.
const JAVA_SPACE: &str = r"[ \t\n\x0B\x0C\r]";

/// Kafka's grammar of one rule; the groups are 1 `DEFAULT`, 2 the pattern, 4 the
/// replacement, 6 the case flag. Anything after the flag, and text that is no rule at all,
/// is matched too so that it can be reported.
fn rule_grammar() -> String {
    format!(
        r"(DEFAULT)|RULE:((\\{JAVA_DOT}|[^\\/])*)/((\\{JAVA_DOT}|[^\\/])*)/([LU]?){JAVA_DOT}*?|({JAVA_DOT}*?)"
    )
}

/// Splits the rules text as Kafka's `RULE_SPLITTER` does: a comma ends a rule only where the
/// rule grammar allows it to end, so a comma inside a pattern stays in it.
static RULE_SPLITTER: LazyLock<Regex> = LazyLock::new(|| {
    let pattern = format!(
        r"{JAVA_SPACE}*({}){JAVA_SPACE}*(,{JAVA_SPACE}*|$)",
        rule_grammar()
    );
    Regex::new(&pattern).expect("the rule splitter is a valid regex")
});

/// Kafka's `RULE_PARSER`, anchored at the start as `Matcher.lookingAt()` is.
static RULE_PARSER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("^(?:{})", rule_grammar())).expect("the rule parser is a valid regex")
});

impl PrincipalMapper {
    /// Parses `ssl.principal.mapping.rules`. Empty rules (`,,`) are skipped; no rules at all
    /// is allowed, as in Kafka, and then no DN maps.
    pub fn parse(rules: &str) -> Result<PrincipalMapper, PrincipalError> {
        let trimmed = rules.trim_matches(|character: char| character <= ' ');
        let mut parsed = Vec::new();
        for captures in RULE_SPLITTER.captures_iter(trimmed) {
            let text = captures.get(1).map_or("", |found| found.as_str());
            if let Some(rule) = parse_rule(text)? {
                parsed.push(rule);
            }
        }
        Ok(PrincipalMapper { rules: parsed })
    }

    /// The name for `distinguished_name`: the first rule that applies, as Kafka's
    /// `SslPrincipalMapper.getName` gives it.
    pub fn map(&self, distinguished_name: &str) -> Result<String, PrincipalError> {
        self.rules
            .iter()
            .find_map(|rule| rule.apply(distinguished_name))
            .unwrap_or_else(|| {
                Err(PrincipalError::NoMatchingRule {
                    distinguished_name: distinguished_name.to_string(),
                    rules: self.to_string(),
                })
            })
    }

    /// Kafka's principal for a TLS client with this certificate: `User:` and the mapped DN.
    pub fn principal(&self, certificate_der: &[u8]) -> Result<String, PrincipalError> {
        let name = self.map(&subject_dn(certificate_der)?)?;
        Ok(format!("User:{name}"))
    }
}

impl fmt::Display for PrincipalMapper {
    /// The rules as Kafka lists them: `[RULE:pattern/replacement/L, DEFAULT]`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules: Vec<String> = self.rules.iter().map(MappingRule::to_string).collect();
        write!(formatter, "[{}]", rules.join(", "))
    }
}

impl fmt::Display for MappingRule {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let MappingRule::Replace(rule) = self else {
            return formatter.write_str("DEFAULT");
        };
        let flag = match rule.case {
            CaseChange::Keep => "",
            CaseChange::Lower => "/L",
            CaseChange::Upper => "/U",
        };
        write!(
            formatter,
            "RULE:{}/{}{flag}",
            rule.pattern_text, rule.replacement_text
        )
    }
}

/// One rule's text; `None` for an empty one.
fn parse_rule(text: &str) -> Result<Option<MappingRule>, PrincipalError> {
    let invalid = |reason: &str| PrincipalError::InvalidRule(format!("Invalid rule: {reason}"));
    let Some(captures) = RULE_PARSER.captures(text) else {
        return Err(invalid(text));
    };
    let end = captures.get(0).map_or(0, |found| found.end());
    if end != text.len() {
        let reason = format!("`{text}`, unmatched substring: `{}`", &text[end..]);
        return Err(invalid(&reason));
    }
    if captures.get(1).is_some() {
        return Ok(Some(MappingRule::Default));
    }
    let (Some(pattern), Some(replacement)) = (captures.get(2), captures.get(4)) else {
        return Ok(None);
    };
    let case = match captures.get(6).map(|flag| flag.as_str()) {
        Some("L") => CaseChange::Lower,
        Some("U") => CaseChange::Upper,
        _ => CaseChange::Keep,
    };
    ReplaceRule::new(pattern.as_str(), replacement.as_str(), case)
        .map(|rule| Some(MappingRule::Replace(rule)))
        .map_err(|reason| invalid(&format!("`{text}`: {reason}")))
}

impl MappingRule {
    /// `None` when the rule does not apply; an error when it applies but cannot be carried out.
    fn apply(&self, distinguished_name: &str) -> Option<Result<String, PrincipalError>> {
        match self {
            MappingRule::Default => Some(Ok(distinguished_name.to_string())),
            MappingRule::Replace(rule) => rule.apply(distinguished_name).map(|applied| {
                applied.map_err(|reason| PrincipalError::Replacement {
                    rule: self.to_string(),
                    reason,
                })
            }),
        }
    }
}

impl ReplaceRule {
    fn new(pattern_text: &str, replacement_text: &str, case: CaseChange) -> Result<Self, String> {
        let pattern = Regex::new(pattern_text).map_err(|error| error.to_string())?;
        let whole =
            Regex::new(&format!(r"\A(?:{pattern_text})\z")).map_err(|error| error.to_string())?;
        let replacement = parse_replacement(replacement_text, &pattern);
        if let Err(reason) = &replacement {
            tracing::warn!(
                pattern_text,
                replacement_text,
                reason,
                "a mapping rule will fail"
            );
        }
        Ok(ReplaceRule {
            pattern_text: pattern_text.to_string(),
            replacement_text: replacement_text.to_string(),
            pattern,
            whole,
            replacement,
            case,
        })
    }

    /// Kafka's `Rule.apply`: `None` unless the pattern matches the whole DN.
    fn apply(&self, distinguished_name: &str) -> Option<Result<String, String>> {
        if !self.whole.is_match(distinguished_name) {
            return None;
        }
        let replacement = match &self.replacement {
            Ok(replacement) => replacement,
            Err(reason) => return Some(Err(reason.clone())),
        };
        let replaced = self.replace_all(distinguished_name, replacement);
        Some(Ok(match self.case {
            CaseChange::Keep => replaced,
            CaseChange::Lower => replaced.to_lowercase(),
            CaseChange::Upper => replaced.to_uppercase(),
        }))
    }

    /// Java's `String.replaceAll`: after an empty match the search resumes one character on,
    /// after any other at its end, where an empty match may follow (so `.*` replaces `abc`
    /// twice: once for `abc`, once for the empty string after it).
    fn replace_all(&self, text: &str, replacement: &[ReplacementPart]) -> String {
        let mut result = String::with_capacity(text.len());
        let mut copied_to = 0;
        let mut search_from = 0;
        while search_from <= text.len() {
            let Some(captures) = self.pattern.captures_at(text, search_from) else {
                break;
            };
            let Some(found) = captures.get(0) else {
                break;
            };
            result.push_str(&text[copied_to..found.start()]);
            expand(replacement, &captures, &mut result);
            copied_to = found.end();
            search_from = if found.is_empty() {
                next_character(text, found.end())
            } else {
                found.end()
            };
        }
        result.push_str(&text[copied_to..]);
        result
    }
}

/// Java's `appendReplacement` once the replacement is read: a group that took no part in the
/// match adds nothing.
fn expand(replacement: &[ReplacementPart], captures: &Captures<'_>, result: &mut String) {
    for part in replacement {
        match part {
            ReplacementPart::Text(text) => result.push_str(text),
            ReplacementPart::Group(index) => {
                if let Some(group) = captures.get(*index) {
                    result.push_str(group.as_str());
                }
            }
        }
    }
}

/// The byte index of the character after the one at `index`; past the end at the end.
fn next_character(text: &str, index: usize) -> usize {
    text[index..]
        .chars()
        .next()
        .map_or(text.len() + 1, |character| index + character.len_utf8())
}

/// Reads a replacement as Java's `Matcher.appendReplacement` does, with Kafka's one change
/// (`escapeLiteralBackReferences`): when the pattern has groups, a `$n` beyond them is the
/// literal text `$n`. Java raises its errors on the first DN the rule matches; so does
/// [`PrincipalMapper::map`].
fn parse_replacement(text: &str, pattern: &Regex) -> Result<Vec<ReplacementPart>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        match character {
            '\\' => literal.push(
                characters
                    .next()
                    .ok_or("character to be escaped is missing")?,
            ),
            '$' => match parse_group_reference(&mut characters, pattern)? {
                ReplacementPart::Text(text) => literal.push_str(&text),
                group => {
                    if !literal.is_empty() {
                        parts.push(ReplacementPart::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(group);
                }
            },
            _ => literal.push(character),
        }
    }
    if !literal.is_empty() {
        parts.push(ReplacementPart::Text(literal));
    }
    Ok(parts)
}

/// What follows a `$`: `{name}`, or digits, of which Java takes the longest run that is still
/// a group of the pattern.
fn parse_group_reference(
    characters: &mut Peekable<Chars<'_>>,
    pattern: &Regex,
) -> Result<ReplacementPart, String> {
    let group_count = pattern.captures_len() - 1;
    let Some(first) = characters.next() else {
        return Err("Illegal group reference: group index is missing".to_string());
    };
    if first == '{' {
        return parse_named_reference(characters, pattern);
    }
    let Some(mut index) = first.to_digit(10).map(|digit| digit as usize) else {
        return Err("Illegal group reference".to_string());
    };
    while let Some(digit) = characters.peek().and_then(|next| next.to_digit(10)) {
        let longer = index * 10 + digit as usize;
        if longer > group_count {
            break;
        }
        index = longer;
        characters.next();
    }
    if index <= group_count {
        Ok(ReplacementPart::Group(index))
    } else if group_count > 0 {
        Ok(ReplacementPart::Text(format!("${index}")))
    } else {
        Err(format!("No group {index}"))
    }
}

fn parse_named_reference(
    characters: &mut Peekable<Chars<'_>>,
    pattern: &Regex,
) -> Result<ReplacementPart, String> {
    let mut name = String::new();
    while let Some(&next) = characters.peek() {
        if !next.is_ascii_alphanumeric() {
            break;
        }
        name.push(next);
        characters.next();
    }
    if name.is_empty() {
        return Err("named capturing group has 0 length name".to_string());
    }
    if characters.next() != Some('}') {
        return Err("named capturing group is missing trailing '}'".to_string());
    }
    if name.starts_with(|character: char| character.is_ascii_digit()) {
        return Err(format!(
            "capturing group name {{{name}}} starts with digit character"
        ));
    }
    pattern
        .capture_names()
        .position(|candidate| candidate == Some(name.as_str()))
        .map(ReplacementPart::Group)
        .ok_or_else(|| format!("No group with name {{{name}}}"))
}

#[cfg(test)]
mod tests;
