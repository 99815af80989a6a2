//! Log levels at runtime: Kafka's BROKER_LOGGER resource. DescribeConfigs lists the loggers
//! with their levels; IncrementalAlterConfigs SETs a logger's level or DELETEs it (the logger
//! then inherits its parent's). Loggers are `tracing` targets: `root`, a crate of Strom's
//! (`strom_broker`) or a module in one (`strom_broker::network`), and `openraft`. Levels take
//! Kafka's names (FATAL and ERROR both mean `error`).
//!
//! The process installs the filter once (`strom server` does, over `STROM_LOG`) with a
//! function that replaces it; this module keeps the levels and renders them as the filter's
//! directives. Changes are this node's alone and end with the process, as in Kafka.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use parking_lot::Mutex;

/// The root logger's name.
pub const ROOT: &str = "root";

/// Kafka's log levels, most severe first.
pub const LEVELS: &[&str] = &["FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"];

/// The crates whose loggers (and modules' loggers) exist.
const CRATES: &[&str] = &[
    "strom",
    "strom_broker",
    "strom_client",
    "strom_coordinator",
    "strom_log",
    "strom_metadata",
    "strom_partition",
    "strom_protocol",
    "strom_security",
    "strom_types",
    "openraft",
];

/// Replaces the process's log filter with these directives (`EnvFilter` syntax).
type ApplyFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

struct Installed {
    apply: ApplyFilter,
    levels: Mutex<Levels>,
}

/// The levels in force: the root's, each logger's own, and the directives of the initial
/// filter that name no single logger (kept as they are).
struct Levels {
    root: String,
    loggers: BTreeMap<String, String>,
    other: Vec<String>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Called once by the process that installed the filter: `initial` is its directives, `apply`
/// replaces them. A second call is ignored.
pub fn install(initial: &str, apply: ApplyFilter) {
    let _ = INSTALLED.set(Installed {
        apply,
        levels: Mutex::new(Levels::parse(initial)),
    });
}

impl Levels {
    fn parse(directives: &str) -> Levels {
        let mut levels = Levels {
            root: "INFO".to_owned(),
            loggers: BTreeMap::new(),
            other: Vec::new(),
        };
        for directive in directives
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            match directive.split_once('=') {
                None if kafka_level(directive).is_some() => {
                    levels.root = kafka_level(directive).expect("checked").to_owned()
                }
                Some((target, level)) if is_logger(target) && kafka_level(level).is_some() => {
                    let level = kafka_level(level).expect("checked").to_owned();
                    levels.loggers.insert(target.to_owned(), level);
                }
                _ => levels.other.push(directive.to_owned()),
            }
        }
        levels
    }

    fn directives(&self) -> String {
        let mut directives = vec![filter_level(&self.root).to_owned()];
        directives.extend(self.other.iter().cloned());
        directives.extend(
            (self.loggers.iter())
                .map(|(logger, level)| format!("{logger}={}", filter_level(level))),
        );
        directives.join(",")
    }

    /// A logger's level: its own, else its nearest ancestor's, else the root's.
    fn level_of(&self, logger: &str) -> &str {
        let mut name = logger;
        loop {
            if let Some(level) = self.loggers.get(name) {
                return level;
            }
            match name.rsplit_once("::") {
                Some((parent, _)) => name = parent,
                None => return &self.root,
            }
        }
    }
}

/// A level by Kafka's name, any case, as Kafka spells it; `None` if it is none of [`LEVELS`].
fn kafka_level(text: &str) -> Option<&'static str> {
    let upper = text.trim().to_ascii_uppercase();
    // `tracing` has no FATAL; an initial `error` reads back as ERROR.
    LEVELS.iter().copied().find(|level| *level == upper)
}

fn filter_level(kafka: &str) -> &'static str {
    match kafka {
        "FATAL" | "ERROR" => "error",
        "WARN" => "warn",
        "DEBUG" => "debug",
        "TRACE" => "trace",
        _ => "info",
    }
}

/// Whether `name` is a logger that exists: the root, a known crate, or a module path in one.
pub fn is_logger(name: &str) -> bool {
    if name == ROOT {
        return true;
    }
    let mut segments = name.split("::");
    let known = segments.next().is_some_and(|first| CRATES.contains(&first));
    let identifiers = name.split("::").all(|segment| {
        !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !segment.starts_with(|c: char| c.is_ascii_digit())
    });
    known && identifiers
}

/// Every logger that exists by default, and those given a level since, with their levels.
pub fn describe() -> Vec<(String, String)> {
    let Some(installed) = INSTALLED.get() else {
        return Vec::new();
    };
    let levels = installed.levels.lock();
    let mut names: Vec<String> = std::iter::once(ROOT.to_owned())
        .chain(CRATES.iter().map(|name| name.to_string()))
        .chain(levels.loggers.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    (names.into_iter())
        .map(|name| {
            let level = match name.as_str() {
                ROOT => levels.root.clone(),
                other => levels.level_of(other).to_owned(),
            };
            (name, level)
        })
        .collect()
}

/// One change to a logger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelChange {
    Set(String, String),
    Unset(String),
}

/// Why a change of log levels is refused, by the error Kafka answers it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelError {
    /// INVALID_CONFIG: no such logger, or no such level.
    Config(String),
    /// INVALID_REQUEST: removing the root's level, or no levels to change in this process.
    Request(String),
}

/// Checks `changes` as Kafka's RuntimeLoggerManager does and, unless `validate_only`, applies
/// them all.
pub fn alter(changes: &[LevelChange], validate_only: bool) -> Result<(), LevelError> {
    let config_error = LevelError::Config;
    for change in changes {
        let name = match change {
            LevelChange::Set(name, _) | LevelChange::Unset(name) => name,
        };
        if !is_logger(name) {
            return Err(config_error(format!("Logger {name} does not exist!")));
        }
        match change {
            LevelChange::Set(name, level) if kafka_level(level).is_none() => {
                return Err(config_error(format!(
                    "Cannot set the log level of {name} to {level} as it is not a supported log \
                     level. Valid log levels are {}",
                    sorted_levels()
                )))
            }
            LevelChange::Unset(name) if name == ROOT => {
                return Err(LevelError::Request(format!(
                    "Removing the log level of the {ROOT} logger is not allowed"
                )))
            }
            _ => {}
        }
    }
    let Some(installed) = INSTALLED.get() else {
        return Err(LevelError::Request(
            "this process has no runtime log levels".to_owned(),
        ));
    };
    if validate_only {
        return Ok(());
    }
    let mut levels = installed.levels.lock();
    for change in changes {
        match change {
            LevelChange::Set(name, level) => {
                let level = kafka_level(level).expect("checked").to_owned();
                tracing::warn!(logger = %name, %level, "updated the log level");
                match name.as_str() {
                    ROOT => levels.root = level,
                    _ => {
                        levels.loggers.insert(name.clone(), level);
                    }
                }
            }
            LevelChange::Unset(name) => {
                tracing::warn!(logger = %name, "unset the log level");
                levels.loggers.remove(name);
            }
        }
    }
    (installed.apply)(&levels.directives()).map_err(LevelError::Request)
}

fn sorted_levels() -> String {
    let mut levels = LEVELS.to_vec();
    levels.sort_unstable();
    levels.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_directives_read_as_loggers_and_back() {
        let levels = Levels::parse("info,openraft=warn,strom_broker::network=DEBUG,[span]=trace");
        assert_eq!(levels.root, "INFO");
        assert_eq!(levels.loggers["openraft"], "WARN");
        assert_eq!(
            levels.level_of("strom_broker::network::connection"),
            "DEBUG"
        );
        assert_eq!(levels.level_of("strom_log"), "INFO");
        assert_eq!(levels.other, vec!["[span]=trace".to_owned()]);
        assert_eq!(
            levels.directives(),
            "info,[span]=trace,openraft=warn,strom_broker::network=debug"
        );
    }

    #[test]
    fn loggers_are_known_targets() {
        assert!(is_logger("root"));
        assert!(is_logger("strom_broker::network"));
        assert!(!is_logger("kafka.server.ReplicaManager"));
        assert!(!is_logger("strom_broker::"));
        assert!(!is_logger("tokio"));
        let error = alter(&[LevelChange::Set("nope".into(), "INFO".into())], true);
        assert_eq!(
            error,
            Err(LevelError::Config("Logger nope does not exist!".to_owned()))
        );
        let error = alter(&[LevelChange::Set("root".into(), "LOUD".into())], true);
        let Err(LevelError::Config(message)) = error else {
            panic!("{error:?}")
        };
        assert!(message.contains("Valid log levels are DEBUG, ERROR, FATAL, INFO, TRACE, WARN"));
        let error = alter(&[LevelChange::Unset("root".into())], true);
        assert!(matches!(error, Err(LevelError::Request(_))), "{error:?}");
    }
}
