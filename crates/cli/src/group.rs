//! `strom group` (to be written).

#[derive(clap::Args)]
pub struct GroupArgs {}

pub fn run(_args: GroupArgs) -> anyhow::Result<()> {
    anyhow::bail!("strom group is not implemented yet")
}
