//! `strom produce` (to be written).

#[derive(clap::Args)]
pub struct ProduceArgs {}

pub fn run(_args: ProduceArgs) -> anyhow::Result<()> {
    anyhow::bail!("strom produce is not implemented yet")
}
