//! `strom bench`: the benchmark lives in the `strom-bench` crate; this is its door.

pub use strom_bench::BenchArgs;

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    Ok(strom_bench::run(args)?)
}
