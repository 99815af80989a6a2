//! `strom user create|list|delete`: SCRAM users over the Kafka protocol
//! (AlterUserScramCredentials, DescribeUserScramCredentials), what Kafka does with
//! `kafka-configs.sh --entity-type users --alter --add-config 'SCRAM-SHA-256=[password=...]'`.
//!
//! The password is salted and hashed by the client; it never crosses the network. It can come
//! from a file or the environment, so that it need not sit in the shell's history.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use strom_client::{ScramDeletion, ScramUpsertion, UserAlteration, SCRAM_ITERATIONS_DEFAULT};
use strom_types::security::ScramMechanism;

use crate::common::{block_on, connect, print_table, BootstrapArgs};

/// The environment variable a password may come from.
const PASSWORD_ENV: &str = "STROM_USER_PASSWORD";

/// Largest password file read: a password is short, so anything larger is the wrong file.
const PASSWORD_FILE_BYTES_MAX: u64 = 4096;

#[derive(clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(clap::Subcommand)]
enum UserCommand {
    /// Set a user's SCRAM password: creates the user, or replaces its credential for the
    /// mechanism. The password comes from --password, --password-file or
    /// STROM_USER_PASSWORD.
    Create(CreateArgs),
    /// Show SCRAM users (all, or those named): mechanism and iterations, never the password.
    List(ListArgs),
    /// Delete a user's SCRAM credentials: those of --mechanism, or all it has.
    Delete(DeleteArgs),
}

#[derive(clap::Args)]
struct CreateArgs {
    /// The user's name (its principal is User:NAME).
    name: String,
    /// The password (visible in the shell's history and the process list; prefer
    /// --password-file or STROM_USER_PASSWORD).
    #[arg(long, conflicts_with = "password_file")]
    password: Option<String>,
    /// A file whose one line is the password.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// SCRAM-SHA-256 or SCRAM-SHA-512; repeatable, to set both.
    #[arg(
        long = "mechanism",
        value_name = "MECHANISM",
        value_parser = parse_mechanism,
        default_value = "SCRAM-SHA-256"
    )]
    mechanisms: Vec<ScramMechanism>,
    /// PBKDF2 iterations, 4096 to 16384.
    #[arg(long, default_value_t = SCRAM_ITERATIONS_DEFAULT)]
    iterations: u32,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(clap::Args)]
struct ListArgs {
    /// Only these users (all users with credentials if none is named).
    names: Vec<String>,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(clap::Args)]
struct DeleteArgs {
    /// The user's name.
    name: String,
    /// Delete only this mechanism's credential; repeatable. Default: every one the user has.
    #[arg(long = "mechanism", value_name = "MECHANISM", value_parser = parse_mechanism)]
    mechanisms: Vec<ScramMechanism>,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

pub fn run(args: UserArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            UserCommand::Create(args) => create(args).await,
            UserCommand::List(args) => list(args).await,
            UserCommand::Delete(args) => delete(args).await,
        }
    })?
}

fn parse_mechanism(text: &str) -> Result<ScramMechanism, String> {
    ScramMechanism::parse(text)
        .ok_or_else(|| format!("'{text}' is not a SCRAM mechanism: SCRAM-SHA-256 or SCRAM-SHA-512"))
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let password = password(args.password.as_deref(), args.password_file.as_deref())?;
    let mut mechanisms = args.mechanisms.clone();
    mechanisms.sort();
    mechanisms.dedup();
    let upsertions: Vec<ScramUpsertion> = mechanisms
        .iter()
        .map(|mechanism| ScramUpsertion {
            user: args.name.clone(),
            mechanism: *mechanism,
            iterations: args.iterations,
            password: password.clone(),
        })
        .collect();
    let client = connect(&args.bootstrap, false).await?;
    let results = client
        .alter_user_scram_credentials(&upsertions, &[])
        .await?;
    check_alterations(&results, "set the credentials of")?;
    for mechanism in mechanisms {
        println!(
            "set the {mechanism} credential of user '{}' ({} iterations)",
            args.name, args.iterations
        );
    }
    Ok(())
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let names: Vec<&str> = args.names.iter().map(String::as_str).collect();
    let wanted = (!names.is_empty()).then_some(names.as_slice());
    let described = client.describe_user_scram_credentials(wanted).await?;
    let mut rows = vec![["USER", "MECHANISM", "ITERATIONS"]
        .map(String::from)
        .to_vec()];
    let mut missing = Vec::new();
    for user in described {
        match user.credentials {
            Ok(credentials) => rows.extend(credentials.iter().map(|credential| {
                vec![
                    user.user.clone(),
                    credential.mechanism.to_string(),
                    credential.iterations.to_string(),
                ]
            })),
            Err(error) => {
                eprintln!("error: user '{}': {error}", user.user);
                missing.push(user.user);
            }
        }
    }
    print_table(&rows);
    match missing.len() {
        0 => Ok(()),
        _ => anyhow::bail!("no SCRAM credentials for {}", missing.join(", ")),
    }
}

async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let mechanisms = match args.mechanisms.is_empty() {
        false => args.mechanisms.clone(),
        true => {
            let described = client
                .describe_user_scram_credentials(Some(&[args.name.as_str()]))
                .await?;
            let user = described
                .into_iter()
                .find(|user| user.user == args.name)
                .with_context(|| format!("the broker did not describe user '{}'", args.name))?;
            let credentials = user
                .credentials
                .with_context(|| format!("cannot delete user '{}'", args.name))?;
            credentials
                .iter()
                .map(|credential| credential.mechanism)
                .collect()
        }
    };
    let deletions: Vec<ScramDeletion> = mechanisms
        .iter()
        .map(|mechanism| ScramDeletion {
            user: args.name.clone(),
            mechanism: *mechanism,
        })
        .collect();
    let results = client.alter_user_scram_credentials(&[], &deletions).await?;
    check_alterations(&results, "delete the credentials of")?;
    for mechanism in mechanisms {
        println!("deleted the {mechanism} credential of user '{}'", args.name);
    }
    Ok(())
}

/// Fails with the broker's error for the first user it refused.
fn check_alterations(results: &[UserAlteration], action: &str) -> anyhow::Result<()> {
    for alteration in results {
        if let Err(error) = &alteration.result {
            anyhow::bail!("cannot {action} user '{}': {error}", alteration.user);
        }
    }
    Ok(())
}

/// The password from `--password`, `--password-file` or the environment, in that order.
fn password(given: Option<&str>, file: Option<&Path>) -> anyhow::Result<String> {
    let password = match (given, file) {
        (Some(password), _) => password.to_string(),
        (None, Some(path)) => read_password_file(path)?,
        (None, None) => match std::env::var(PASSWORD_ENV) {
            Ok(password) => password,
            Err(std::env::VarError::NotPresent) => anyhow::bail!(
                "give the password with --password, --password-file FILE or the environment \
                 variable {PASSWORD_ENV}"
            ),
            Err(std::env::VarError::NotUnicode(_)) => {
                anyhow::bail!("{PASSWORD_ENV} is not valid UTF-8")
            }
        },
    };
    if password.is_empty() {
        anyhow::bail!("the password is empty");
    }
    Ok(password)
}

/// The one line of a password file, without its line end.
fn read_password_file(path: &Path) -> anyhow::Result<String> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    let mut text = String::new();
    file.take(PASSWORD_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    password_from_file_text(&text)
        .map_err(|detail| anyhow::anyhow!("the password file {}: {detail}", path.display()))
}

/// The password a file's text holds: its one line, the line end dropped.
fn password_from_file_text(text: &str) -> Result<String, String> {
    if text.len() as u64 > PASSWORD_FILE_BYTES_MAX {
        return Err(format!("is larger than {PASSWORD_FILE_BYTES_MAX} bytes"));
    }
    let line = text
        .strip_suffix('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .unwrap_or(text);
    if line.contains('\n') {
        return Err("has more than one line; the password is its one line".to_string());
    }
    Ok(line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanisms_parse_by_kafka_name() {
        assert_eq!(parse_mechanism("SCRAM-SHA-256"), Ok(ScramMechanism::Sha256));
        assert_eq!(parse_mechanism("scram-sha-512"), Ok(ScramMechanism::Sha512));
        assert!(parse_mechanism("PLAIN")
            .unwrap_err()
            .contains("SCRAM-SHA-256 or"));
    }

    #[test]
    fn password_files_hold_one_line() {
        assert_eq!(
            password_from_file_text("s3cret\n"),
            Ok("s3cret".to_string())
        );
        assert_eq!(
            password_from_file_text("s3cret\r\n"),
            Ok("s3cret".to_string())
        );
        assert_eq!(
            password_from_file_text(" spaced "),
            Ok(" spaced ".to_string())
        );
        assert!(password_from_file_text("one\ntwo\n").is_err());
        let large = "x".repeat(PASSWORD_FILE_BYTES_MAX as usize + 1);
        assert!(password_from_file_text(&large).is_err());
    }

    #[test]
    fn the_password_flag_wins_and_empty_is_refused() {
        assert_eq!(password(Some("p"), None).unwrap(), "p");
        assert!(password(Some(""), None).is_err());
        let file = std::env::temp_dir().join(format!("strom-password-{}", std::process::id()));
        std::fs::write(&file, "from-file\n").unwrap();
        assert_eq!(password(None, Some(&file)).unwrap(), "from-file");
        std::fs::remove_file(&file).unwrap();
        let error = password(None, Some(&file)).unwrap_err();
        assert!(
            format!("{error:#}").contains("cannot read the password file"),
            "{error:#}"
        );
    }
}
