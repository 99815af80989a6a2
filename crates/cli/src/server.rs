//! `strom server` (to be written).

#[derive(clap::Args)]
pub struct ServerArgs {}

pub fn run(_args: ServerArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
