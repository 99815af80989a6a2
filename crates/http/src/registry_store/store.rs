//! The registry's state, built by applying the records of `_schemas` in offset order.
//!
//! Records are Confluent's (`SchemaRegistryKey` / `SchemaValue` JSON, so a `_schemas` topic
//! copied from a Confluent registry loads), and Strom's writers add two fields to each key:
//! `seq`, the offset the writer expected the record to land at, and `node`, the writer's
//! node id. A record whose `seq` is not its offset was written from a stale view (another
//! node's write landed first) and is skipped by every reader alike; its writer sees the
//! offset it got and tries again (Redpanda's registry does the same). Records without `seq`
//! (Confluent's) apply as they come. Tombstones (permanent deletes) apply as they come too.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use strom_schema::{Compatibility, SchemaType};

/// A schema another one uses: the name it is known by there, and the subject version it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// A schema by id: its type, text and references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchema {
    pub schema_type: SchemaType,
    pub schema: String,
    pub references: Vec<Reference>,
}

/// One version of a subject.
#[derive(Debug, Clone)]
pub struct Version {
    pub version: i32,
    pub id: i32,
    pub deleted: bool,
    pub metadata: Option<Value>,
    pub rule_set: Option<Value>,
    /// The keys of the records that wrote it (its registration, a soft delete): a permanent
    /// delete writes a tombstone for each.
    pub keys: Vec<Vec<u8>>,
}

/// Registry modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Mode {
    Readwrite,
    Readonly,
    #[serde(rename = "READONLY_OVERRIDE")]
    ReadonlyOverride,
    Import,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Readwrite => "READWRITE",
            Mode::Readonly => "READONLY",
            Mode::ReadonlyOverride => "READONLY_OVERRIDE",
            Mode::Import => "IMPORT",
        }
    }

    pub fn parse(name: &str) -> Option<Mode> {
        [
            Mode::Readwrite,
            Mode::Readonly,
            Mode::ReadonlyOverride,
            Mode::Import,
        ]
        .into_iter()
        .find(|mode| mode.name().eq_ignore_ascii_case(name))
    }
}

/// A config record's value: the compatibility level and whatever else it carries (kept and
/// returned as given: `normalize`, `alias`, `defaultMetadata`...).
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub compatibility: Option<Compatibility>,
    pub fields: serde_json::Map<String, Value>,
}

/// Where the global config and mode are kept (Confluent's key has no subject, or the empty
/// default context's name).
const GLOBAL: &str = "";

#[derive(Debug, Default)]
pub struct Store {
    /// The offset of the next record to apply.
    pub next_offset: i64,
    schemas: BTreeMap<i32, StoredSchema>,
    /// Schema ids by (type, text, references): a schema registered again, under any subject,
    /// gets the id it has.
    ids: HashMap<(SchemaType, String, Vec<Reference>), i32>,
    subjects: BTreeMap<String, BTreeMap<i32, Version>>,
    configs: BTreeMap<String, (Config, Vec<u8>)>,
    modes: BTreeMap<String, (Mode, Vec<u8>)>,
    max_id: i32,
}

#[derive(Deserialize)]
struct Key {
    keytype: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    version: Option<i32>,
    #[serde(default)]
    seq: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaValue {
    subject: String,
    version: i32,
    id: i32,
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Reference>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    rule_set: Option<Value>,
    #[serde(default)]
    deleted: bool,
}

impl Store {
    /// Applies the record at `offset`. Records that are not JSON, or not a registry record
    /// this version knows, are skipped (and logged): one bad record must not stop the reader.
    pub fn apply(&mut self, offset: i64, key: &[u8], value: Option<&[u8]>) {
        self.next_offset = self.next_offset.max(offset + 1);
        let parsed: Key = match serde_json::from_slice(key) {
            Ok(parsed) => parsed,
            Err(error) => {
                tracing::warn!(offset, %error, "_schemas: a record whose key is not a registry key; skipped");
                return;
            }
        };
        if value.is_some() && parsed.seq.is_some_and(|seq| seq != offset) {
            tracing::debug!(offset, "_schemas: a write from a stale view; skipped");
            return;
        }
        let scope = parsed.subject.clone().unwrap_or_default();
        let result = match parsed.keytype.as_str() {
            "SCHEMA" => self.apply_schema(key, &parsed, value),
            "CONFIG" => {
                self.apply_config(scope, key, value);
                Ok(())
            }
            "MODE" => self.apply_mode(scope, key, value),
            "DELETE_SUBJECT" => self.apply_delete_subject(value),
            "CLEAR_SUBJECT" => self.apply_clear_subject(value),
            _ => Ok(()), // NOOP, CONTEXT, ASSOC...: nothing this registry keeps
        };
        if let Err(error) = result {
            tracing::warn!(offset, %error, "_schemas: a record that does not parse; skipped");
        }
    }

    fn apply_schema(
        &mut self,
        key: &[u8],
        parsed: &Key,
        value: Option<&[u8]>,
    ) -> Result<(), String> {
        let Some(value) = value else {
            // A permanent delete of one version.
            let (Some(subject), Some(version)) = (&parsed.subject, parsed.version) else {
                return Err("a SCHEMA tombstone without subject and version".into());
            };
            if let Some(versions) = self.subjects.get_mut(subject) {
                versions.remove(&version);
                if versions.is_empty() {
                    self.subjects.remove(subject);
                }
            }
            return Ok(());
        };
        let value: SchemaValue = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        let schema_type = match &value.schema_type {
            None => SchemaType::Avro,
            Some(name) => SchemaType::parse(name).ok_or(format!("schema type {name}"))?,
        };
        let stored = StoredSchema {
            schema_type,
            schema: value.schema,
            references: value.references,
        };
        self.ids
            .entry((
                schema_type,
                stored.schema.clone(),
                stored.references.clone(),
            ))
            .or_insert(value.id);
        self.schemas.entry(value.id).or_insert(stored);
        self.max_id = self.max_id.max(value.id);
        let versions = self.subjects.entry(value.subject).or_default();
        let entry = versions.entry(value.version).or_insert_with(|| Version {
            version: value.version,
            id: value.id,
            deleted: false,
            metadata: None,
            rule_set: None,
            keys: Vec::new(),
        });
        entry.id = value.id;
        entry.deleted = value.deleted;
        entry.metadata = value.metadata;
        entry.rule_set = value.rule_set;
        if !entry.keys.iter().any(|k| k == key) {
            entry.keys.push(key.to_vec());
        }
        Ok(())
    }

    fn apply_config(&mut self, scope: String, key: &[u8], value: Option<&[u8]>) {
        let parsed = value.and_then(|v| serde_json::from_slice::<Value>(v).ok());
        match parsed {
            Some(Value::Object(mut fields)) => {
                fields.remove("subject");
                let compatibility = (fields.get("compatibilityLevel"))
                    .and_then(Value::as_str)
                    .and_then(Compatibility::parse);
                let config = Config {
                    compatibility,
                    fields,
                };
                self.configs.insert(scope, (config, key.to_vec()));
            }
            _ => {
                self.configs.remove(&scope);
            }
        }
    }

    fn apply_mode(
        &mut self,
        scope: String,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), String> {
        let Some(value) = value else {
            self.modes.remove(&scope);
            return Ok(());
        };
        let value: Value = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        let mode = (value.get("mode"))
            .and_then(Value::as_str)
            .and_then(Mode::parse)
            .ok_or("a MODE record without a known mode")?;
        self.modes.insert(scope, (mode, key.to_vec()));
        Ok(())
    }

    fn apply_delete_subject(&mut self, value: Option<&[u8]>) -> Result<(), String> {
        let Some((subject, value)) = subject_value(value)? else {
            return Ok(());
        };
        let subject = subject.as_str();
        let up_to = value
            .get("version")
            .and_then(Value::as_i64)
            .unwrap_or(i64::MAX);
        if let Some(versions) = self.subjects.get_mut(subject) {
            for version in versions.values_mut() {
                if i64::from(version.version) <= up_to {
                    version.deleted = true;
                }
            }
        }
        Ok(())
    }

    fn apply_clear_subject(&mut self, value: Option<&[u8]>) -> Result<(), String> {
        let Some((subject, _)) = subject_value(value)? else {
            return Ok(());
        };
        let subject = subject.as_str();
        if let Some(versions) = self.subjects.get_mut(subject) {
            versions.retain(|_, version| !version.deleted);
            if versions.is_empty() {
                self.subjects.remove(subject);
            }
        }
        Ok(())
    }

    // -- reading ------------------------------------------------------------------------

    pub fn schema(&self, id: i32) -> Option<&StoredSchema> {
        self.schemas.get(&id)
    }

    pub fn schemas(&self) -> impl Iterator<Item = (i32, &StoredSchema)> {
        self.schemas.iter().map(|(id, schema)| (*id, schema))
    }

    pub fn id_of(
        &self,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
    ) -> Option<i32> {
        self.ids
            .get(&(schema_type, text.to_owned(), references.to_vec()))
            .copied()
    }

    pub fn next_id(&self) -> i32 {
        self.max_id + 1
    }

    /// Subjects with at least one version (live ones only unless `deleted`).
    pub fn subjects(&self, deleted: bool) -> Vec<&str> {
        (self.subjects.iter())
            .filter(|(_, versions)| deleted || versions.values().any(|v| !v.deleted))
            .map(|(subject, _)| subject.as_str())
            .collect()
    }

    /// A subject's versions, oldest first, deleted ones too.
    pub fn versions(&self, subject: &str) -> Option<&BTreeMap<i32, Version>> {
        self.subjects.get(subject)
    }

    pub fn version(&self, subject: &str, version: i32) -> Option<&Version> {
        self.subjects.get(subject)?.get(&version)
    }

    /// The (subject, version) pairs whose schema is `id`.
    pub fn uses_of(&self, id: i32) -> Vec<(&str, &Version)> {
        let mut uses = Vec::new();
        for (subject, versions) in &self.subjects {
            for version in versions.values().filter(|v| v.id == id) {
                uses.push((subject.as_str(), version));
            }
        }
        uses
    }

    /// Ids of the schemas that reference `subject` at `version`.
    pub fn referenced_by(&self, subject: &str, version: i32) -> Vec<i32> {
        let mut ids: BTreeSet<i32> = BTreeSet::new();
        for (id, schema) in &self.schemas {
            let refers =
                (schema.references.iter()).any(|r| r.subject == subject && r.version == version);
            let live = self.uses_of(*id).iter().any(|(_, v)| !v.deleted);
            if refers && live {
                ids.insert(*id);
            }
        }
        ids.into_iter().collect()
    }

    pub fn config(&self, subject: Option<&str>) -> Option<&Config> {
        self.configs.get(subject.unwrap_or(GLOBAL)).map(|(c, _)| c)
    }

    pub fn config_key(&self, subject: Option<&str>) -> Option<&[u8]> {
        self.configs
            .get(subject.unwrap_or(GLOBAL))
            .map(|(_, k)| k.as_slice())
    }

    /// The level that applies to `subject`: its own, else the global one, else BACKWARD.
    pub fn compatibility(&self, subject: &str) -> Compatibility {
        (self.config(Some(subject)).and_then(|c| c.compatibility))
            .or_else(|| self.config(None).and_then(|c| c.compatibility))
            .unwrap_or_default()
    }

    pub fn mode(&self, subject: Option<&str>) -> Option<Mode> {
        self.modes.get(subject.unwrap_or(GLOBAL)).map(|(m, _)| *m)
    }

    pub fn mode_key(&self, subject: Option<&str>) -> Option<&[u8]> {
        self.modes
            .get(subject.unwrap_or(GLOBAL))
            .map(|(_, k)| k.as_slice())
    }

    /// The mode that applies to `subject`: its own, else the global one, else READWRITE.
    pub fn effective_mode(&self, subject: &str) -> Mode {
        (self.mode(Some(subject)))
            .or_else(|| self.mode(None))
            .unwrap_or(Mode::Readwrite)
    }
}

/// A DELETE_SUBJECT or CLEAR_SUBJECT value: its subject and the whole value; `None` for a
/// tombstone.
fn subject_value(value: Option<&[u8]>) -> Result<Option<(String, Value)>, String> {
    let Some(value) = value else { return Ok(None) };
    let value: Value = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    let subject = (value.get("subject").and_then(Value::as_str)).ok_or("no subject")?;
    Ok(Some((subject.to_owned(), value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_record(subject: &str, version: i32, id: i32, seq: Option<i64>) -> (Vec<u8>, Vec<u8>) {
        let mut key = serde_json::json!({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1});
        if let Some(seq) = seq {
            key["seq"] = seq.into();
            key["node"] = 1.into();
        }
        let value = serde_json::json!({"subject": subject, "version": version, "id": id,
            "schema": "\"string\"", "deleted": false});
        (key.to_string().into_bytes(), value.to_string().into_bytes())
    }

    #[test]
    fn confluent_records_apply_and_stale_writes_are_skipped() {
        let mut store = Store::default();
        let (key, value) = schema_record("a", 1, 1, None);
        store.apply(0, &key, Some(&value));
        let (key, value) = schema_record("b", 1, 2, Some(1));
        store.apply(1, &key, Some(&value));
        // Written expecting offset 1, landed at 2: another write came first.
        let (key, value) = schema_record("c", 1, 2, Some(1));
        store.apply(2, &key, Some(&value));
        assert_eq!(store.subjects(false), vec!["a", "b"]);
        assert_eq!(store.next_id(), 3);
        assert_eq!(store.next_offset, 3);
    }

    #[test]
    fn soft_then_permanent_delete_of_a_subject() {
        let mut store = Store::default();
        let (key, value) = schema_record("a", 1, 1, None);
        store.apply(0, &key, Some(&value));
        let delete_key = br#"{"keytype":"DELETE_SUBJECT","subject":"a","magic":0}"#;
        store.apply(1, delete_key, Some(br#"{"subject":"a","version":1}"#));
        assert!(store.subjects(false).is_empty());
        assert_eq!(store.subjects(true), vec!["a"]);
        let clear_key = br#"{"keytype":"CLEAR_SUBJECT","subject":"a","magic":0}"#;
        store.apply(2, clear_key, Some(br#"{"subject":"a"}"#));
        assert!(store.subjects(true).is_empty());
        // The schema itself stays known by id, as Confluent's does.
        assert!(store.schema(1).is_some());
    }

    #[test]
    fn configs_and_modes_global_and_per_subject() {
        let mut store = Store::default();
        store.apply(
            0,
            br#"{"keytype":"CONFIG","magic":0}"#,
            Some(br#"{"compatibilityLevel":"FULL"}"#),
        );
        store.apply(
            1,
            br#"{"keytype":"CONFIG","subject":"s","magic":0}"#,
            Some(br#"{"compatibilityLevel":"NONE"}"#),
        );
        store.apply(
            2,
            br#"{"keytype":"MODE","magic":0}"#,
            Some(br#"{"mode":"READONLY"}"#),
        );
        assert_eq!(store.compatibility("s"), Compatibility::None);
        assert_eq!(store.compatibility("t"), Compatibility::Full);
        assert_eq!(store.effective_mode("t"), Mode::Readonly);
        store.apply(3, br#"{"keytype":"CONFIG","subject":"s","magic":0}"#, None);
        assert_eq!(store.compatibility("s"), Compatibility::Full);
    }

    #[test]
    fn garbage_records_are_skipped() {
        let mut store = Store::default();
        store.apply(0, b"not json", Some(b"{}"));
        store.apply(
            1,
            br#"{"keytype":"SCHEMA","subject":"a","version":1}"#,
            Some(b"[1,2"),
        );
        store.apply(2, br#"{"keytype":"MODE"}"#, Some(br#"{"mode":"SIDEWAYS"}"#));
        assert!(store.subjects(true).is_empty());
        assert_eq!(store.next_offset, 3);
    }
}
