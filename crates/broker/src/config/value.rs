//! What a config key declares about its values, whatever its scope: the type, the values it
//! accepts, whether Kafka lets it change at runtime; and the parser that turns text into a
//! checked [`Value`]. (Kafka's `ConfigDef.Type` and `ConfigDef.Validator`.)

use std::fmt;

/// The kind of a config value, numbered as DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

impl ConfigType {
    /// The name Kafka's documentation gives the type.
    pub fn name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "boolean",
            ConfigType::String => "string",
            ConfigType::Int => "int",
            ConfigType::Short => "short",
            ConfigType::Long => "long",
            ConfigType::Double => "double",
            ConfigType::List => "list",
            ConfigType::Class => "class",
            ConfigType::Password => "password",
        }
    }

    /// The integers the type holds, for the integer types.
    fn integer_range(self) -> Option<(i64, i64)> {
        match self {
            ConfigType::Short => Some((i16::MIN as i64, i16::MAX as i64)),
            ConfigType::Int => Some((i32::MIN as i64, i32::MAX as i64)),
            ConfigType::Long => Some((i64::MIN, i64::MAX)),
            _ => None,
        }
    }
}

/// When a broker setting can change without a restart (Kafka's "update mode"): AlterConfigs
/// on a BROKER resource accepts a key only when it is not read-only, and a per-broker key only
/// for one broker, never as the cluster-wide default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    /// Only at start.
    ReadOnly,
    /// At runtime, for one broker.
    PerBroker,
    /// At runtime, for one broker or as the cluster-wide default.
    ClusterWide,
}

impl UpdateMode {
    /// Kafka's name for the mode.
    pub fn name(self) -> &'static str {
        match self {
            UpdateMode::ReadOnly => "read-only",
            UpdateMode::PerBroker => "per-broker",
            UpdateMode::ClusterWide => "cluster-wide",
        }
    }
}

/// The values a key accepts beyond what its type allows.
#[derive(Debug, Clone, Copy)]
pub enum Validator {
    /// Anything of the type.
    Any,
    /// An integer no smaller than this.
    AtLeast(i64),
    /// An integer in this inclusive range.
    Between(i64, i64),
    /// A number in this inclusive range.
    Fraction(f64, f64),
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A non-empty list whose items are each one of these strings.
    EachOf(&'static [&'static str]),
    /// A check of the trimmed text that returns why it is refused; `valid` says in a few words
    /// what it accepts.
    Custom {
        check: fn(&str) -> Result<(), String>,
        valid: &'static str,
    },
}

impl Validator {
    /// The accepted values as Kafka's documentation writes them (`[1,...]`, `[compact, delete]`),
    /// empty when any value of the type is accepted.
    pub fn describe(&self) -> String {
        match self {
            Validator::Any => String::new(),
            Validator::AtLeast(min) => format!("[{min},...]"),
            Validator::Between(min, max) => format!("[{min},...,{max}]"),
            Validator::Fraction(min, max) => format!("[{min:?},...,{max:?}]"),
            Validator::OneOf(values) | Validator::EachOf(values) => {
                format!("[{}]", values.join(", "))
            }
            Validator::Custom { valid, .. } => (*valid).to_owned(),
        }
    }

    fn check(&self, value: &Value, text: &str) -> Result<(), String> {
        let accepted = match (self, value) {
            (Validator::Any, _) => true,
            (Validator::Custom { check, .. }, _) => return check(text),
            (Validator::AtLeast(min), Value::Number(number)) => number >= min,
            (Validator::Between(min, max), Value::Number(number)) => (min..=max).contains(&number),
            (Validator::Fraction(min, max), Value::Double(number)) => (min..=max).contains(&number),
            (Validator::OneOf(values), Value::Text(text)) => values.contains(&text.as_str()),
            (Validator::EachOf(values), Value::List(items)) => {
                !items.is_empty() && items.iter().all(|item| values.contains(&item.as_str()))
            }
            // The table gave a key a validator of another type than its own.
            (validator, value) => panic!("validator {validator:?} does not fit {value:?}"),
        };
        match accepted {
            true => Ok(()),
            false => Err(self.refusal()),
        }
    }

    /// Why a value was refused.
    fn refusal(&self) -> String {
        match self {
            Validator::Any | Validator::Custom { .. } => "not accepted".to_owned(),
            Validator::AtLeast(min) => format!("must be at least {min}"),
            Validator::Between(min, max) => format!("must be between {min} and {max}"),
            Validator::Fraction(min, max) => format!("must be between {min} and {max}"),
            Validator::OneOf(values) => format!("must be {}", alternatives(values)),
            Validator::EachOf(values) => format!(
                "must be {}, or several of them separated by commas",
                alternatives(values)
            ),
        }
    }
}

/// "a or b", "a, b or c".
fn alternatives(values: &[&str]) -> String {
    match values {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A checked config value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Boolean(bool),
    /// Short, Int and Long values.
    Number(i64),
    Double(f64),
    /// String, Class and Password values.
    Text(String),
    List(Vec<String>),
}

impl Value {
    /// The boolean; a key's setter asking for another type than its own is a programmer error.
    pub fn boolean(&self) -> bool {
        match self {
            Value::Boolean(flag) => *flag,
            other => panic!("{other:?} is not a boolean"),
        }
    }

    pub fn number(&self) -> i64 {
        match self {
            Value::Number(number) => *number,
            other => panic!("{other:?} is not an integer"),
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Value::Text(text) => text,
            other => panic!("{other:?} is not a string"),
        }
    }
}

/// As Kafka prints values: lists joined by commas.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Boolean(flag) => write!(f, "{flag}"),
            Value::Number(number) => write!(f, "{number}"),
            Value::Double(number) => write!(f, "{number}"),
            Value::Text(text) => f.write_str(text),
            Value::List(items) => f.write_str(&items.join(",")),
        }
    }
}

/// Parses `text` as a `config_type` value that `validator` accepts; an error is the reason, for
/// the caller to name the key.
pub fn parse(config_type: ConfigType, validator: &Validator, text: &str) -> Result<Value, String> {
    let text = text.trim();
    let value = match config_type {
        // Kafka reads booleans without regard to case.
        ConfigType::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" => Value::Boolean(true),
            "false" => Value::Boolean(false),
            _ => return Err("must be true or false".to_owned()),
        },
        ConfigType::Short | ConfigType::Int | ConfigType::Long => {
            let number: i64 = text.parse().map_err(|_| "not an integer".to_owned())?;
            let (min, max) = config_type.integer_range().expect("an integer type");
            if number > max {
                return Err(format!("must be at most {max}"));
            }
            if number < min {
                return Err(format!("must be at least {min}"));
            }
            Value::Number(number)
        }
        ConfigType::Double => match text.parse::<f64>() {
            Ok(number) if number.is_finite() => Value::Double(number),
            _ => return Err("not a number".to_owned()),
        },
        ConfigType::String | ConfigType::Class | ConfigType::Password => {
            Value::Text(text.to_owned())
        }
        ConfigType::List => Value::List(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
    };
    validator.check(&value, text)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_validators_refuse_with_a_reason() {
        let int = |text| parse(ConfigType::Int, &Validator::AtLeast(1), text);
        assert_eq!(int(" 7 "), Ok(Value::Number(7)));
        assert_eq!(int("0"), Err("must be at least 1".to_owned()));
        assert_eq!(
            int("2147483648"),
            Err("must be at most 2147483647".to_owned())
        );
        assert_eq!(int("x"), Err("not an integer".to_owned()));
        let short = parse(ConfigType::Short, &Validator::AtLeast(1), "40000");
        assert_eq!(short, Err("must be at most 32767".to_owned()));
        let ratio = |text| parse(ConfigType::Double, &Validator::Fraction(0.0, 1.0), text);
        assert_eq!(ratio("0.25"), Ok(Value::Double(0.25)));
        assert!(ratio("1.5").is_err() && ratio("NaN").is_err());
        let policy = |text| {
            parse(
                ConfigType::List,
                &Validator::EachOf(&["compact", "delete"]),
                text,
            )
        };
        assert_eq!(
            policy("compact, delete").unwrap().to_string(),
            "compact,delete"
        );
        assert!(policy("").is_err() && policy("shred").is_err());
        let kind = parse(
            ConfigType::String,
            &Validator::OneOf(&["CreateTime", "LogAppendTime"]),
            "Now",
        );
        assert_eq!(kind, Err("must be CreateTime or LogAppendTime".to_owned()));
        assert_eq!(
            parse(ConfigType::Boolean, &Validator::Any, "TRUE"),
            Ok(Value::Boolean(true))
        );
    }

    #[test]
    fn validators_describe_themselves_as_kafka_does() {
        assert_eq!(Validator::AtLeast(1).describe(), "[1,...]");
        assert_eq!(Validator::Between(1, 5).describe(), "[1,...,5]");
        assert_eq!(Validator::Fraction(0.0, 1.0).describe(), "[0.0,...,1.0]");
        assert_eq!(Validator::EachOf(&["a", "b"]).describe(), "[a, b]");
        assert_eq!(Validator::Any.describe(), "");
    }
}
