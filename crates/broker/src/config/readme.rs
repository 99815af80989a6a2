//! The README's configuration table, rendered from [`BROKER_KEYS`]. A test compares it with the
//! part of README.md between the `config-table` markers, and rewrites that part when
//! `STROM_UPDATE_README=1` is set.

use std::fmt::Write;

use super::broker_keys::{BrokerKey, BROKER_KEYS};
use super::value::ConfigType;

/// The markdown table of every broker setting: key, type, default, accepted values, meaning.
pub fn markdown_table() -> String {
    let mut table =
        String::from("| key | type | default | valid values | meaning |\n|---|---|---|---|---|\n");
    for key in BROKER_KEYS {
        let valid = match (key.config_type, key.validator.describe()) {
            (ConfigType::Boolean, _) => "`true`, `false`".to_owned(),
            (_, valid) if valid.is_empty() => String::new(),
            (_, valid) => format!("`{valid}`"),
        };
        writeln!(
            table,
            "| `{}` | {} | {} | {} | {} |",
            key.name,
            key.config_type.name(),
            default_cell(key),
            valid,
            meaning(key),
        )
        .expect("writing to a String");
    }
    table
}

fn default_cell(key: &BrokerKey) -> String {
    match key.default {
        None => "none".to_owned(),
        Some("") => "empty".to_owned(),
        Some(default) => match readable(key.name, default) {
            Some(readable) => format!("`{default}` ({readable})"),
            None => format!("`{default}`"),
        },
    }
}

/// The documentation, then what else sets or reads the key.
fn meaning(key: &BrokerKey) -> String {
    let mut meaning = key.documentation.to_owned();
    if let Some(topic) = key.topic_key() {
        write!(meaning, " Topic config: `{}`.", topic.name).expect("writing to a String");
    }
    let stronger: Vec<String> = (key.outranked_by().iter())
        .map(|stronger| format!("`{}`", stronger.name))
        .collect();
    if !stronger.is_empty() {
        write!(meaning, " Ignored when {} is given.", stronger.join(" or "))
            .expect("writing to a String");
    }
    if let Some(flag) = key.flag {
        write!(meaning, " Flag: `{flag}`.").expect("writing to a String");
    }
    meaning
}

/// A default in words, for durations and sizes: `604800000` ms is "7 days".
fn readable(name: &str, default: &str) -> Option<String> {
    let number: i64 = default.parse().ok()?;
    if number == i64::MAX || number == i32::MAX as i64 {
        return Some("unbounded".to_owned());
    }
    let unit_ms = [(".ms", 1), (".minutes", 60_000), (".hours", 3_600_000)]
        .into_iter()
        .find(|(suffix, _)| name.ends_with(suffix));
    if let Some((_, unit_ms)) = unit_ms {
        let ms = number * unit_ms;
        return [
            (86_400_000, "day"),
            (3_600_000, "hour"),
            (60_000, "minute"),
            (1_000, "second"),
        ]
        .into_iter()
        .find(|(span, _)| ms >= *span && ms % span == 0)
        .map(|(span, unit)| plural(ms / span, unit));
    }
    if name.ends_with(".bytes") {
        return [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
            .into_iter()
            .find(|(size, _)| number >= *size && number % size == 0)
            .map(|(size, unit)| format!("{} {unit}", number / size));
    }
    None
}

fn plural(count: i64, unit: &str) -> String {
    match count {
        1 => format!("1 {unit}"),
        _ => format!("{count} {unit}s"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const START: &str = "<!-- config-table:start -->";
    const END: &str = "<!-- config-table:end -->";

    #[test]
    fn config_table_in_readme_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let readme = std::fs::read_to_string(&path).expect("README.md at the repository root");
        let (before, rest) = readme
            .split_once(START)
            .unwrap_or_else(|| panic!("README.md has no {START} marker"));
        let (current, after) = rest
            .split_once(END)
            .unwrap_or_else(|| panic!("README.md has no {END} marker after {START}"));
        let wanted = format!("\n{}", markdown_table());
        if current == wanted {
            return;
        }
        if std::env::var_os("STROM_UPDATE_README").is_some() {
            std::fs::write(&path, format!("{before}{START}{wanted}{END}{after}"))
                .expect("README.md is writable");
            return;
        }
        panic!(
            "README.md's configuration table differs from crates/broker/src/config/broker_keys.rs; \
             regenerate it with `STROM_UPDATE_README=1 cargo test -p strom-broker config_table`"
        );
    }

    #[test]
    fn config_table_cells_read_well() {
        assert_eq!(readable("log.retention.ms", "604800000").unwrap(), "7 days");
        assert_eq!(readable("log.retention.hours", "168").unwrap(), "7 days");
        assert_eq!(
            readable("offsets.retention.minutes", "10080").unwrap(),
            "7 days"
        );
        assert_eq!(
            readable("connections.max.idle.ms", "600000").unwrap(),
            "10 minutes"
        );
        assert_eq!(
            readable("log.segment.bytes", "1073741824").unwrap(),
            "1 GiB"
        );
        assert_eq!(
            readable("group.max.size", "2147483647").unwrap(),
            "unbounded"
        );
        assert_eq!(readable("message.max.bytes", "1048588"), None);
        assert_eq!(readable("replica.fetch.wait.max.ms", "500"), None);
        // A cell holding a `|` would split the row.
        let table = markdown_table();
        for line in table.lines() {
            assert_eq!(line.matches('|').count(), 6, "{line}");
        }
        assert!(table.contains(
            "| `log.retention.hours` | int | `168` (7 days) | `[-1,...]` | `log.retention.ms` in \
             hours. Ignored when `log.retention.ms` or `log.retention.minutes` is given. |"
        ));
    }
}
