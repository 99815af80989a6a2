//! `strom consume` (to be written).

#[derive(clap::Args)]
pub struct ConsumeArgs {}

pub fn run(_args: ConsumeArgs) -> anyhow::Result<()> {
    anyhow::bail!("strom consume is not implemented yet")
}
