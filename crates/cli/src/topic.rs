//! `strom topic` (to be written).

#[derive(clap::Args)]
pub struct TopicArgs {}

pub fn run(_args: TopicArgs) -> anyhow::Result<()> {
    anyhow::bail!("strom topic is not implemented yet")
}
