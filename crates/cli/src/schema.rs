//! `strom schema list|get|register|delete|compat|config|mode`: the schema registry over its REST
//! API (Confluent's), from the command line.
//!
//! ```text
//! strom schema register users-value --file user.avsc
//! strom schema register orders-value --file order.proto --type PROTOBUF
//! strom schema compat users-value --file user-v2.avsc
//! strom schema list
//! strom schema get users-value --version latest
//! strom schema get --id 3
//! strom schema config users-value --set FULL
//! strom schema delete users-value --permanent
//! ```

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{json, Value};
use strom_http::registry::client::RegistryClient;
use strom_http::Method;

use crate::common::block_on;

#[derive(clap::Args)]
pub struct SchemaArgs {
    /// The registry's URL.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:8081",
        env = "STROM_SCHEMA_REGISTRY"
    )]
    registry: String,
    /// HTTP Basic login (a SCRAM user of the cluster), USER:PASSWORD.
    #[arg(long, global = true, value_name = "USER:PASSWORD")]
    login: Option<String>,
    #[command(subcommand)]
    command: SchemaCommand,
}

#[derive(clap::Subcommand)]
enum SchemaCommand {
    /// List subjects.
    List {
        /// Soft-deleted subjects too.
        #[arg(long)]
        deleted: bool,
        /// Only subjects starting with this.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Show a subject's version (the latest by default), or a schema by id.
    Get {
        subject: Option<String>,
        #[arg(long, default_value = "latest")]
        version: String,
        /// A schema id instead of a subject.
        #[arg(long, conflicts_with = "subject")]
        id: Option<i32>,
        /// The versions of the subject instead of one version.
        #[arg(long)]
        versions: bool,
    },
    /// Register a schema under a subject; prints its id.
    Register(SchemaFileArgs),
    /// Check a schema against a subject's versions under the subject's compatibility level.
    Compat(SchemaFileArgs),
    /// Delete a subject, or one version of it: soft, then permanently with --permanent.
    Delete {
        subject: String,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        permanent: bool,
    },
    /// Show or set the compatibility level, global or of a subject.
    Config {
        subject: Option<String>,
        /// NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL,
        /// FULL_TRANSITIVE.
        #[arg(long)]
        set: Option<String>,
        /// Remove the subject's own level (the global one applies again).
        #[arg(long, conflicts_with = "set")]
        delete: bool,
    },
    /// Show or set the mode (READWRITE, READONLY, IMPORT), global or of a subject.
    Mode {
        subject: Option<String>,
        #[arg(long)]
        set: Option<String>,
    },
}

#[derive(clap::Args)]
struct SchemaFileArgs {
    subject: String,
    /// The schema's text ('-' for standard input).
    #[arg(long)]
    file: PathBuf,
    /// AVRO, JSON or PROTOBUF.
    #[arg(long = "type", default_value = "AVRO")]
    schema_type: String,
    /// A reference: NAME=SUBJECT:VERSION (repeatable).
    #[arg(long = "reference", value_name = "NAME=SUBJECT:VERSION")]
    references: Vec<String>,
    /// Register or compare the normalized form.
    #[arg(long)]
    normalize: bool,
    /// (compat) Check against this version only.
    #[arg(long)]
    version: Option<String>,
}

impl SchemaFileArgs {
    fn body(&self) -> anyhow::Result<Value> {
        let text = match self.file.to_str() {
            Some("-") => std::io::read_to_string(std::io::stdin())?,
            _ => std::fs::read_to_string(&self.file)
                .with_context(|| format!("cannot read {}", self.file.display()))?,
        };
        let mut references = Vec::new();
        for reference in &self.references {
            let parsed = reference.split_once('=').and_then(|(name, at)| {
                let (subject, version) = at.rsplit_once(':')?;
                Some(json!({"name": name, "subject": subject, "version": version.parse::<i32>().ok()?}))
            });
            references.push(parsed.with_context(|| {
                format!("--reference {reference}: expected NAME=SUBJECT:VERSION")
            })?);
        }
        let mut body = json!({"schema": text, "schemaType": self.schema_type.to_ascii_uppercase()});
        if !references.is_empty() {
            body["references"] = Value::Array(references);
        }
        Ok(body)
    }
}

/// A path segment, percent-encoded (subjects may hold any character).
fn segment(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char)
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

pub fn run(args: SchemaArgs) -> anyhow::Result<()> {
    let login = match &args.login {
        Some(login) => {
            let (user, password) = login
                .split_once(':')
                .context("--login: expected USER:PASSWORD")?;
            Some((user.to_owned(), password.to_owned()))
        }
        None => None,
    };
    let client = RegistryClient::new(&args.registry, login)?;
    let (method, path, body) = request(&args.command)?;
    let answer = block_on(client.call(method, &path, body.as_ref()))??;
    match (&args.command, &answer) {
        (
            SchemaCommand::Get {
                id: None,
                versions: false,
                ..
            },
            Value::Object(version),
        ) => {
            // The schema's text on its own lines, after the facts about it.
            for (name, value) in version.iter().filter(|(name, _)| *name != "schema") {
                println!("{name}: {value}");
            }
            if let Some(Value::String(schema)) = version.get("schema") {
                println!("{}", pretty(schema));
            }
        }
        (SchemaCommand::Get { id: Some(_), .. }, Value::Object(schema)) => {
            if let Some(kind) = schema.get("schemaType") {
                println!("schemaType: {kind}");
            }
            if let Some(Value::String(text)) = schema.get("schema") {
                println!("{}", pretty(text));
            }
        }
        (SchemaCommand::List { .. }, Value::Array(subjects)) => {
            for subject in subjects {
                println!("{}", subject.as_str().unwrap_or_default());
            }
        }
        (SchemaCommand::Compat(_), answer) => {
            let compatible = answer
                .get("is_compatible")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            println!(
                "{}",
                if compatible {
                    "compatible"
                } else {
                    "incompatible"
                }
            );
            for message in answer
                .get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                println!("  {}", message.as_str().unwrap_or_default());
            }
            if !compatible {
                anyhow::bail!("the schema is not compatible");
            }
        }
        (_, answer) => println!("{}", serde_json::to_string_pretty(answer)?),
    }
    Ok(())
}

/// A schema's text pretty-printed when it is JSON (Avro, JSON Schema), as is otherwise.
fn pretty(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| text.to_owned())
}

fn request(command: &SchemaCommand) -> anyhow::Result<(Method, String, Option<Value>)> {
    Ok(match command {
        SchemaCommand::List { deleted, prefix } => {
            let mut path = format!("/subjects?deleted={deleted}");
            if let Some(prefix) = prefix {
                path.push_str(&format!("&subjectPrefix={}", segment(prefix)));
            }
            (Method::GET, path, None)
        }
        SchemaCommand::Get { id: Some(id), .. } => {
            (Method::GET, format!("/schemas/ids/{id}"), None)
        }
        SchemaCommand::Get {
            subject: Some(subject),
            versions: true,
            ..
        } => (
            Method::GET,
            format!("/subjects/{}/versions", segment(subject)),
            None,
        ),
        SchemaCommand::Get {
            subject: Some(subject),
            version,
            ..
        } => (
            Method::GET,
            format!(
                "/subjects/{}/versions/{}",
                segment(subject),
                segment(version)
            ),
            None,
        ),
        SchemaCommand::Get { .. } => anyhow::bail!("name a subject or give --id"),
        SchemaCommand::Register(file) => (
            Method::POST,
            format!(
                "/subjects/{}/versions?normalize={}",
                segment(&file.subject),
                file.normalize
            ),
            Some(file.body()?),
        ),
        SchemaCommand::Compat(file) => {
            let versions = match &file.version {
                Some(version) => format!("versions/{}", segment(version)),
                None => "versions".to_owned(),
            };
            (
                Method::POST,
                format!(
                    "/compatibility/subjects/{}/{versions}?verbose=true&normalize={}",
                    segment(&file.subject),
                    file.normalize
                ),
                Some(file.body()?),
            )
        }
        SchemaCommand::Delete {
            subject,
            version,
            permanent,
        } => {
            let path = match version {
                Some(version) => format!(
                    "/subjects/{}/versions/{}",
                    segment(subject),
                    segment(version)
                ),
                None => format!("/subjects/{}", segment(subject)),
            };
            (
                Method::DELETE,
                format!("{path}?permanent={permanent}"),
                None,
            )
        }
        SchemaCommand::Config {
            subject,
            set,
            delete,
        } => {
            let path = match subject {
                Some(subject) => format!("/config/{}", segment(subject)),
                None => "/config".to_owned(),
            };
            match (set, delete) {
                (Some(level), _) => (
                    Method::PUT,
                    path,
                    Some(json!({"compatibility": level.to_ascii_uppercase()})),
                ),
                (None, true) => (Method::DELETE, path, None),
                (None, false) => (Method::GET, format!("{path}?defaultToGlobal=true"), None),
            }
        }
        SchemaCommand::Mode { subject, set } => {
            let path = match subject {
                Some(subject) => format!("/mode/{}", segment(subject)),
                None => "/mode".to_owned(),
            };
            match set {
                Some(mode) => (
                    Method::PUT,
                    path,
                    Some(json!({"mode": mode.to_ascii_uppercase()})),
                ),
                None => (Method::GET, format!("{path}?defaultToGlobal=true"), None),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_percent_encoded_in_paths() {
        assert_eq!(segment("orders-value"), "orders-value");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment(":.ctx:s"), "%3A.ctx%3As");
    }
}
