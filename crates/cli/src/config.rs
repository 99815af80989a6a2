//! `strom config describe|alter`: the configs of a topic, one broker, every broker (the
//! cluster-wide defaults) or a broker's loggers, after Kafka's `kafka-configs.sh`.
//!
//! ```text
//! strom config describe --broker 1
//! strom config alter --broker-defaults --set log.retention.ms=86400000
//! strom config alter --topic orders --set retention.ms=3600000 --delete segment.bytes
//! strom config alter --broker-loggers 1 --set strom_broker::network=DEBUG
//! ```

use strom_client::{ConfigChange, ConfigEntry, ConfigResource, ConfigSource};

use crate::common::{block_on, connect, parse_key_value, print_table, BootstrapArgs};

#[derive(clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(clap::Subcommand)]
enum ConfigCommand {
    /// Show every config of the resource with its value and where it comes from.
    Describe(DescribeArgs),
    /// Change configs of the resource without a restart (IncrementalAlterConfigs).
    Alter(AlterArgs),
}

/// Whose configs; exactly one.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct ResourceArgs {
    /// A topic.
    #[arg(long, value_name = "NAME")]
    topic: Option<String>,
    /// One broker, by id.
    #[arg(long, value_name = "ID")]
    broker: Option<i32>,
    /// Every broker: the cluster-wide dynamic defaults.
    #[arg(long)]
    broker_defaults: bool,
    /// One broker's log levels, by broker id.
    #[arg(long, value_name = "ID")]
    broker_loggers: Option<i32>,
}

impl ResourceArgs {
    fn resource(&self) -> ConfigResource {
        match (&self.topic, self.broker, self.broker_loggers) {
            (Some(topic), _, _) => ConfigResource::Topic(topic.clone()),
            (_, Some(id), _) => ConfigResource::Broker(id),
            (_, _, Some(id)) => ConfigResource::BrokerLoggers(id),
            _ => ConfigResource::BrokerDefaults,
        }
    }
}

#[derive(clap::Args)]
struct DescribeArgs {
    #[command(flatten)]
    resource: ResourceArgs,
    /// Only the configs set dynamically or at start, not the defaults.
    #[arg(long)]
    changed: bool,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

/// The changes of `strom config alter` and `strom topic alter`.
#[derive(clap::Args, Default)]
pub struct ChangeArgs {
    /// Set a config, KEY=VALUE; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    set: Vec<(String, String)>,
    /// Remove a config's dynamic value (back to the default); repeatable.
    #[arg(long = "delete", value_name = "KEY")]
    delete: Vec<String>,
    /// Add items to a list config, KEY=ITEM[,ITEM...]; repeatable.
    #[arg(long = "append", value_name = "KEY=ITEMS", value_parser = parse_key_value)]
    append: Vec<(String, String)>,
    /// Remove items from a list config, KEY=ITEM[,ITEM...]; repeatable.
    #[arg(long = "subtract", value_name = "KEY=ITEMS", value_parser = parse_key_value)]
    subtract: Vec<(String, String)>,
    /// Only check the changes; change nothing.
    #[arg(long)]
    validate_only: bool,
}

impl ChangeArgs {
    pub fn changes(&self) -> Vec<ConfigChange> {
        let set = (self.set.iter()).map(|(k, v)| ConfigChange::Set(k.clone(), v.clone()));
        let delete = (self.delete.iter()).map(|k| ConfigChange::Delete(k.clone()));
        let append = (self.append.iter()).map(|(k, v)| ConfigChange::Append(k.clone(), v.clone()));
        let subtract =
            (self.subtract.iter()).map(|(k, v)| ConfigChange::Subtract(k.clone(), v.clone()));
        set.chain(delete).chain(append).chain(subtract).collect()
    }

    pub fn validate_only(&self) -> bool {
        self.validate_only
    }
}

#[derive(clap::Args)]
struct AlterArgs {
    #[command(flatten)]
    resource: ResourceArgs,
    #[command(flatten)]
    changes: ChangeArgs,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

pub fn run(args: ConfigArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            ConfigCommand::Describe(args) => describe(args).await,
            ConfigCommand::Alter(args) => alter(args).await,
        }
    })?
}

async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let resource = args.resource.resource();
    let configs = client.describe_resource_configs(&resource).await?;
    print_configs(&configs, args.changed);
    Ok(())
}

/// The configs as a table: name, value, source, and whether it can change at runtime.
pub fn print_configs(configs: &[ConfigEntry], changed_only: bool) {
    let mut rows = vec![["NAME", "VALUE", "SOURCE", "DYNAMIC"]
        .map(String::from)
        .to_vec()];
    for config in configs {
        if changed_only && config.source == ConfigSource::Default {
            continue;
        }
        let value = match (&config.value, config.is_sensitive) {
            (_, true) => "(sensitive)".to_owned(),
            (Some(value), false) => value.clone(),
            (None, false) => "(none)".to_owned(),
        };
        let dynamic = match config.read_only {
            true => "no",
            false => "yes",
        };
        rows.push(vec![
            config.name.clone(),
            value,
            config.source.kafka_name(),
            dynamic.to_owned(),
        ]);
    }
    print_table(&rows);
}

async fn alter(args: AlterArgs) -> anyhow::Result<()> {
    let changes = args.changes.changes();
    if changes.is_empty() {
        anyhow::bail!("nothing to change: give --set, --delete, --append or --subtract");
    }
    let client = connect(&args.bootstrap, false).await?;
    let resource = args.resource.resource();
    client
        .alter_configs(&resource, &changes, args.changes.validate_only())
        .await?;
    let what = describe_resource(&resource);
    match args.changes.validate_only() {
        true => println!("the changes to {what} are valid (nothing changed: --validate-only)"),
        false => println!("altered the configs of {what}"),
    }
    Ok(())
}

fn describe_resource(resource: &ConfigResource) -> String {
    match resource {
        ConfigResource::Topic(name) => format!("topic '{name}'"),
        ConfigResource::Broker(id) => format!("broker {id}"),
        ConfigResource::BrokerDefaults => "every broker (the cluster-wide defaults)".to_owned(),
        ConfigResource::BrokerLoggers(id) => format!("broker {id}'s loggers"),
    }
}
