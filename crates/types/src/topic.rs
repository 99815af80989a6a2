//! Topic names, validated with Kafka's rules.

use std::fmt;

use crate::limits::TOPIC_NAME_BYTES_MAX;

/// A topic name known to be legal: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicName(String);

/// Why a topic name is not legal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("topic name is empty")]
    Empty,
    #[error("topic name '.' and '..' are reserved")]
    Reserved,
    #[error("topic name is {0} characters long; the limit is {TOPIC_NAME_BYTES_MAX}")]
    TooLong(usize),
    #[error("topic name {0:?} has a character outside [a-zA-Z0-9._-]")]
    IllegalCharacter(String),
}

impl TopicName {
    /// Checks `name` against Kafka's rules.
    pub fn new(name: &str) -> Result<TopicName, TopicNameError> {
        if name.is_empty() {
            return Err(TopicNameError::Empty);
        }
        if name == "." || name == ".." {
            return Err(TopicNameError::Reserved);
        }
        if name.len() > TOPIC_NAME_BYTES_MAX {
            return Err(TopicNameError::TooLong(name.len()));
        }
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if !name.chars().all(legal) {
            return Err(TopicNameError::IllegalCharacter(name.to_owned()));
        }
        Ok(TopicName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Internal topics (`__consumer_offsets`, `__transaction_state`) start with two underscores.
    pub fn is_internal(&self) -> bool {
        self.0.starts_with("__")
    }
}

/// Lets maps keyed by `TopicName` be looked up with a `&str` off the wire, without validating
/// or allocating (the two order and hash alike: both are the string's).
impl std::borrow::Borrow<str> for TopicName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_names_pass_and_illegal_ones_say_why() {
        assert!(TopicName::new("orders.v1_a-b").is_ok());
        assert_eq!(TopicName::new(""), Err(TopicNameError::Empty));
        assert_eq!(TopicName::new(".."), Err(TopicNameError::Reserved));
        assert_eq!(
            TopicName::new(&"a".repeat(250)),
            Err(TopicNameError::TooLong(250))
        );
        assert!(matches!(
            TopicName::new("a/b"),
            Err(TopicNameError::IllegalCharacter(_))
        ));
    }
}
