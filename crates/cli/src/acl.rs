//! `strom acl create|list|delete`: ACLs over the Kafka protocol (CreateAcls, DescribeAcls,
//! DeleteAcls), after `kafka-acls.sh --add|--list|--remove` and with its flags
//! ([`crate::acl_bindings`] turns them into bindings and filters).
//!
//! Each prints the bindings it created, found or deleted as a table; a binding the broker
//! refused is reported on stderr with the broker's error, and the command then fails.

use std::collections::BTreeSet;

use strom_client::{AclFilter, ClientError};
use strom_types::security::AclBinding;

use crate::acl_bindings::{
    bindings_to_create, filters_to_delete, filters_to_list, parse_principal, EntryFlags,
    ResourceFlags,
};
use crate::common::{block_on, connect, print_table, BootstrapArgs};

#[derive(clap::Args)]
pub struct AclArgs {
    #[command(subcommand)]
    command: AclCommand,
}

#[derive(clap::Subcommand)]
enum AclCommand {
    /// Allow or deny principals operations on resources (kafka-acls --add).
    Create(ChangeArgs),
    /// Show the ACLs, of the resources and principals given or all (kafka-acls --list).
    List(ListArgs),
    /// Delete ACLs and show what was deleted (kafka-acls --remove); what is not given
    /// matches anything: `--topic t` alone deletes every ACL of topic t.
    Delete(ChangeArgs),
}

#[derive(clap::Args)]
struct ChangeArgs {
    #[command(flatten)]
    resources: ResourceFlags,
    #[command(flatten)]
    entries: EntryFlags,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(clap::Args)]
struct ListArgs {
    #[command(flatten)]
    resources: ResourceFlags,
    /// Only the ACLs of this principal (TYPE:NAME); repeatable.
    #[arg(long = "principal", value_name = "PRINCIPAL", value_parser = parse_principal)]
    principals: Vec<String>,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

pub fn run(args: AclArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            AclCommand::Create(args) => create(args).await,
            AclCommand::List(args) => list(args).await,
            AclCommand::Delete(args) => delete(args).await,
        }
    })?
}

async fn create(args: ChangeArgs) -> anyhow::Result<()> {
    let bindings =
        bindings_to_create(&args.resources, &args.entries).map_err(anyhow::Error::msg)?;
    let client = connect(&args.bootstrap, false).await?;
    let results = client.create_acls(&bindings).await?;
    let mut created = Vec::new();
    let mut failures = 0;
    for (binding, result) in bindings.into_iter().zip(results) {
        match result {
            Ok(()) => created.push(binding),
            Err(error) => {
                failures += 1;
                report_failure("create", &binding, &error);
            }
        }
    }
    print_bindings(&created);
    fail_if_any(failures, "could not be created")
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let mut found = BTreeSet::new();
    for filter in filters_to_list(&args.resources, &args.principals) {
        found.extend(client.describe_acls(&filter).await?);
    }
    print_bindings(&found.into_iter().collect::<Vec<_>>());
    Ok(())
}

async fn delete(args: ChangeArgs) -> anyhow::Result<()> {
    let filters = filters_to_delete(&args.resources, &args.entries).map_err(anyhow::Error::msg)?;
    let client = connect(&args.bootstrap, false).await?;
    let results = client.delete_acls(&filters).await?;
    let mut deleted = BTreeSet::new();
    let mut failures = 0;
    for (filter, result) in filters.iter().zip(results) {
        match result {
            Ok(deletion) => {
                deleted.extend(deletion.deleted);
                for (binding, error) in &deletion.failed {
                    failures += 1;
                    report_failure("delete", binding, error);
                }
            }
            Err(error) => {
                failures += 1;
                eprintln!(
                    "error: cannot delete the ACLs {}: {error}",
                    describe_filter(filter)
                );
            }
        }
    }
    if deleted.is_empty() && failures == 0 {
        eprintln!("no ACL matched; nothing was deleted");
        return Ok(());
    }
    print_bindings(&deleted.into_iter().collect::<Vec<_>>());
    fail_if_any(failures, "could not be deleted")
}

fn report_failure(action: &str, binding: &AclBinding, error: &ClientError) {
    eprintln!(
        "error: cannot {action} {} {} for {} from {} on {} '{}' ({}): {error}",
        binding.permission,
        binding.operation,
        binding.principal,
        binding.host,
        binding.resource_type,
        binding.resource_name,
        binding.pattern_type
    );
}

fn fail_if_any(failures: usize, what: &str) -> anyhow::Result<()> {
    match failures {
        0 => Ok(()),
        1 => anyhow::bail!("1 ACL {what}"),
        many => anyhow::bail!("{many} ACLs {what}"),
    }
}

/// A filter in words, for an error about it.
fn describe_filter(filter: &AclFilter) -> String {
    let mut words = vec![format!(
        "of {} '{}' ({})",
        filter.resource_type,
        filter.resource_name.as_deref().unwrap_or("*"),
        filter.pattern_type
    )];
    if let Some(principal) = &filter.principal {
        words.push(format!("for {principal}"));
    }
    if let Some(host) = &filter.host {
        words.push(format!("from {host}"));
    }
    words.push(format!("({} {})", filter.permission, filter.operation));
    words.join(" ")
}

/// The bindings as a table, one a row, in Kafka's names.
fn print_bindings(bindings: &[AclBinding]) {
    let mut rows = vec![[
        "RESOURCE-TYPE",
        "RESOURCE-NAME",
        "PATTERN",
        "PRINCIPAL",
        "HOST",
        "OPERATION",
        "PERMISSION",
    ]
    .map(String::from)
    .to_vec()];
    rows.extend(bindings.iter().map(|binding| {
        vec![
            binding.resource_type.to_string(),
            binding.resource_name.clone(),
            binding.pattern_type.to_string(),
            binding.principal.clone(),
            binding.host.clone(),
            binding.operation.to_string(),
            binding.permission.to_string(),
        ]
    }));
    print_table(&rows);
}
