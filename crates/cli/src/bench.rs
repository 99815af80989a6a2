//! `strom bench`: the benchmark lives in the `strom-bench` crate; this is its door.

pub use strom_bench::BenchArgs;

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    // A load of many connections (or partitions) needs more descriptors than the usual soft
    // limit; the bench reports nothing unless it could not raise it.
    if let Err(error) = strom_broker::resources::raise_open_files_limit() {
        eprintln!("warning: {error}");
    }
    Ok(strom_bench::run(args)?)
}
