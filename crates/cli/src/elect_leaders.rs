//! `strom cluster elect-leaders`: preferred or unclean leader elections (ElectLeaders), after
//! Kafka's `kafka-leader-election.sh`. Without `--topic`, every partition of the cluster;
//! `--topic T` alone, every partition of T; `--partition P` after a `--topic`, that partition
//! of that topic (repeatable). One line per partition answered: elected, not needed (the
//! leader asked for already leads), or why not. Any partition that could not be elected makes
//! the command fail, as Kafka's tool does.

use clap::{Arg, ArgAction, ArgMatches, Command};
use strom_client::{ElectionOutcome, ElectionType};

use crate::common::{connect, existing_topic, print_table, BootstrapArgs};

#[derive(clap::Args)]
pub struct ElectLeadersArgs {
    /// preferred: the first replica of each partition's replica list leads again, if it is
    /// alive and in sync; unclean: a partition without a leader takes any live replica, in
    /// sync or not (records only the old leader had are lost).
    #[arg(long = "type", value_enum, default_value = "preferred")]
    election: Kind,
    #[command(flatten)]
    selection: Selection,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum Kind {
    Preferred,
    Unclean,
}

/// The partitions named on the command line: each `--topic` with the `--partition`s that
/// follow it (none: all of its partitions).
struct Selection {
    topics: Vec<(String, Vec<i32>)>,
}

impl clap::Args for Selection {
    fn augment_args(command: Command) -> Command {
        command
            .arg(
                Arg::new("topic")
                    .long("topic")
                    .value_name("TOPIC")
                    .action(ArgAction::Append)
                    .help("A topic to elect leaders of (repeatable); none: every partition"),
            )
            .arg(
                Arg::new("partition")
                    .long("partition")
                    .value_name("PARTITION")
                    .action(ArgAction::Append)
                    .value_parser(clap::value_parser!(i32))
                    .help("A partition of the --topic before it (repeatable); none: all"),
            )
    }

    fn augment_args_for_update(command: Command) -> Command {
        Selection::augment_args(command)
    }
}

impl clap::FromArgMatches for Selection {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Selection, clap::Error> {
        let mut topics: Vec<(usize, String, Vec<i32>)> = match matches.get_many::<String>("topic") {
            Some(names) => (matches.indices_of("topic").expect("given").zip(names))
                .map(|(at, name)| (at, name.clone(), Vec::new()))
                .collect(),
            None => Vec::new(),
        };
        if let Some(partitions) = matches.get_many::<i32>("partition") {
            let indices = matches.indices_of("partition").expect("given");
            for (at, partition) in indices.zip(partitions) {
                let Some(topic) = topics
                    .iter_mut()
                    .rev()
                    .find(|(topic_at, ..)| *topic_at < at)
                else {
                    return Err(clap::Error::raw(
                        clap::error::ErrorKind::ArgumentConflict,
                        "--partition names a partition of the --topic given before it",
                    ));
                };
                topic.2.push(*partition);
            }
        }
        Ok(Selection {
            topics: (topics.into_iter())
                .map(|(_, name, partitions)| (name, partitions))
                .collect(),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Selection::from_arg_matches(matches)?;
        Ok(())
    }
}

pub async fn run(args: ElectLeadersArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let election = match args.election {
        Kind::Preferred => ElectionType::Preferred,
        Kind::Unclean => ElectionType::Unclean,
    };
    let partitions = match args.selection.topics.is_empty() {
        true => None,
        false => {
            let mut partitions = Vec::with_capacity(args.selection.topics.len());
            for (topic, indexes) in args.selection.topics {
                let indexes = match indexes.is_empty() {
                    true => {
                        let found = existing_topic(&client, &topic).await?;
                        (found.partitions.iter()).map(|p| p.index.0).collect()
                    }
                    false => indexes,
                };
                partitions.push((topic, indexes));
            }
            Some(partitions)
        }
    };
    let outcomes = client
        .elect_leaders(election, partitions.as_deref())
        .await?;
    print_outcomes(&outcomes);
    let failed = (outcomes.iter())
        .filter(|outcome| outcome.result.is_err() && !outcome.not_needed())
        .count();
    if failed > 0 {
        anyhow::bail!("{failed} partition(s) could not be elected");
    }
    Ok(())
}

fn print_outcomes(outcomes: &[ElectionOutcome]) {
    if outcomes.is_empty() {
        println!("No partition needed an election.");
        return;
    }
    let mut rows = vec![["TOPIC", "PARTITION", "RESULT"].map(String::from).to_vec()];
    rows.extend(outcomes.iter().map(|outcome| {
        let result = match &outcome.result {
            Ok(()) => "elected".to_owned(),
            Err(_) if outcome.not_needed() => "not needed: the leader asked for leads".into(),
            Err(error) => error.to_string(),
        };
        vec![outcome.topic.clone(), outcome.partition.to_string(), result]
    }));
    print_table(&rows);
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::*;

    #[derive(Parser)]
    struct Line {
        #[command(flatten)]
        selection: Selection,
    }

    fn parse(args: &[&str]) -> Result<Vec<(String, Vec<i32>)>, clap::Error> {
        let matches = Line::command().try_get_matches_from(["strom"].iter().chain(args))?;
        Ok(Line::from_arg_matches(&matches)?.selection.topics)
    }

    #[test]
    fn each_partition_belongs_to_the_topic_before_it() {
        let parsed = parse(&[
            "--topic",
            "a",
            "--partition",
            "1",
            "--partition",
            "0",
            "--topic",
            "b",
            "--topic",
            "c",
            "--partition",
            "7",
        ])
        .unwrap();
        assert_eq!(
            parsed,
            [
                ("a".to_owned(), vec![1, 0]),
                ("b".to_owned(), vec![]),
                ("c".to_owned(), vec![7])
            ]
        );
        assert_eq!(parse(&[]).unwrap(), []);
    }

    #[test]
    fn a_partition_before_any_topic_or_not_a_number_is_refused() {
        let error = parse(&["--partition", "1", "--topic", "a"]).unwrap_err();
        assert!(
            error.to_string().contains("--topic given before it"),
            "{error}"
        );
        assert!(parse(&["--topic", "a", "--partition", "x"]).is_err());
    }
}
