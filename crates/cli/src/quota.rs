//! `strom quota describe|alter`: client quotas (KIP-546) of users, client ids, both, and their
//! defaults, after `kafka-configs.sh --entity-type users|clients`.
//!
//! ```text
//! strom quota alter --user alice --set producer_byte_rate=1048576
//! strom quota alter --client-defaults --set consumer_byte_rate=2097152
//! strom quota describe
//! ```

use strom_client::{QuotaEntity, QuotaMatch};

use crate::common::{block_on, connect, parse_key_value, print_table, BootstrapArgs};

#[derive(clap::Args)]
pub struct QuotaArgs {
    #[command(subcommand)]
    command: QuotaCommand,
}

#[derive(clap::Subcommand)]
enum QuotaCommand {
    /// Show the quotas of the entities named (all entities when none is).
    Describe(DescribeArgs),
    /// Set or remove quotas of one entity: a user, a client id, or both.
    Alter(AlterArgs),
}

/// The entity: a user or the default user, and/or a client id or the default client id.
#[derive(clap::Args)]
struct EntityArgs {
    /// A user (the principal's name: alice for User:alice).
    #[arg(long, conflicts_with = "user_defaults")]
    user: Option<String>,
    /// The default user: every user without a quota of its own.
    #[arg(long)]
    user_defaults: bool,
    /// A client id.
    #[arg(long, conflicts_with = "client_defaults")]
    client_id: Option<String>,
    /// The default client id.
    #[arg(long)]
    client_defaults: bool,
}

impl EntityArgs {
    /// (entity type, name) pairs; a default's name is `None`. Each present part is named.
    fn parts(&self) -> Vec<(String, Option<Option<String>>)> {
        let mut parts = Vec::new();
        if self.user.is_some() || self.user_defaults {
            parts.push(("user".to_owned(), Some(self.user.clone())));
        }
        if self.client_id.is_some() || self.client_defaults {
            parts.push(("client-id".to_owned(), Some(self.client_id.clone())));
        }
        parts
    }
}

#[derive(clap::Args)]
struct DescribeArgs {
    #[command(flatten)]
    entity: EntityArgs,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(clap::Args)]
struct AlterArgs {
    #[command(flatten)]
    entity: EntityArgs,
    /// Set a quota, KEY=VALUE: producer_byte_rate, consumer_byte_rate (bytes per second),
    /// request_percentage, controller_mutation_rate; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    set: Vec<(String, String)>,
    /// Remove a quota; repeatable.
    #[arg(long = "delete", value_name = "KEY")]
    delete: Vec<String>,
    /// Only check the change.
    #[arg(long)]
    validate_only: bool,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

pub fn run(args: QuotaArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            QuotaCommand::Describe(args) => describe(args).await,
            QuotaCommand::Alter(args) => alter(args).await,
        }
    })?
}

async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let components: Vec<(String, QuotaMatch)> = (args.entity.parts().into_iter())
        .map(|(entity_type, name)| match name.flatten() {
            Some(name) => (entity_type, QuotaMatch::Exact(name)),
            None => (entity_type, QuotaMatch::Default),
        })
        .collect();
    let strict = !components.is_empty();
    let quotas = client.describe_client_quotas(&components, strict).await?;
    let mut rows = vec![["USER", "CLIENT-ID", "QUOTA", "VALUE"]
        .map(String::from)
        .to_vec()];
    for entry in quotas {
        let name_of = |entity_type: &str| {
            let part = entry.entity.iter().find(|(t, _)| t == entity_type);
            match part {
                None => "-".to_owned(),
                Some((_, None)) => "<default>".to_owned(),
                Some((_, Some(name))) => name.clone(),
            }
        };
        for (key, value) in &entry.values {
            rows.push(vec![
                name_of("user"),
                name_of("client-id"),
                key.clone(),
                value.to_string(),
            ]);
        }
    }
    print_table(&rows);
    Ok(())
}

async fn alter(args: AlterArgs) -> anyhow::Result<()> {
    let entity: QuotaEntity = (args.entity.parts().into_iter())
        .map(|(entity_type, name)| (entity_type, name.flatten()))
        .collect();
    if entity.is_empty() {
        anyhow::bail!("name the entity: --user, --user-defaults, --client-id or --client-defaults");
    }
    if args.set.is_empty() && args.delete.is_empty() {
        anyhow::bail!("nothing to change: give --set or --delete");
    }
    let mut set = Vec::with_capacity(args.set.len());
    for (key, value) in &args.set {
        let value: f64 = (value.trim().parse())
            .map_err(|_| anyhow::anyhow!("--set {key}={value}: the value is not a number"))?;
        set.push((key.clone(), value));
    }
    let client = connect(&args.bootstrap, false).await?;
    (client.alter_client_quotas(&entity, &set, &args.delete, args.validate_only)).await?;
    match args.validate_only {
        true => println!("the quota change is valid (nothing changed: --validate-only)"),
        false => println!("altered the quotas"),
    }
    Ok(())
}
