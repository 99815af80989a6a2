//! The process's own resource limits: its open-file limit (`RLIMIT_NOFILE`).
//!
//! Every partition's files and every client connection take a descriptor, and the usual soft
//! limit (1,024) is far below what a broker holds; the hard limit is what an operator granted.
//! So `strom server` raises its soft limit to the hard one before anything else
//! ([`raise_open_files_limit`]), and the broker sizes what it keeps open from the result
//! ([`open_files_limit`]).

use std::fmt;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Where Linux keeps the most descriptors a process may be allowed (`fs.nr_open`): a soft
/// limit above it is refused, so an unlimited hard limit means this much.
const NR_OPEN_PATH: &str = "/proc/sys/fs/nr_open";

/// The soft open-file limit before and after [`raise_open_files_limit`], and the hard limit;
/// `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesRaised {
    pub soft_before: Option<u64>,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

impl fmt::Display for OpenFilesRaised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "open-file limit: soft {} -> {}, hard {}",
            Limit(self.soft_before),
            Limit(self.soft),
            Limit(self.hard)
        )
    }
}

/// The soft limit could not be raised; it stays as it was.
#[derive(Debug, thiserror::Error)]
#[error("cannot raise the open-file limit from soft {} to hard {}: {source}; keeping {}", Limit(*.soft), Limit(*.hard), Limit(*.soft))]
pub struct RaiseLimitError {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
    #[source]
    pub source: std::io::Error,
}

/// A limit as people write it.
struct Limit(Option<u64>);

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(limit) => write!(f, "{limit}"),
            None => f.write_str("unlimited"),
        }
    }
}

/// Raises this process's soft open-file limit to its hard limit (or, with no hard limit, to
/// the kernel's `fs.nr_open`). Call it once, first thing, before other threads open files.
pub fn raise_open_files_limit() -> Result<OpenFilesRaised, RaiseLimitError> {
    let Rlimit {
        current: soft_before,
        maximum: hard,
    } = getrlimit(Resource::Nofile);
    let soft = target_soft_limit(soft_before, hard, nr_open());
    if soft != soft_before {
        let wanted = Rlimit {
            current: soft,
            maximum: hard,
        };
        setrlimit(Resource::Nofile, wanted).map_err(|errno| RaiseLimitError {
            soft: soft_before,
            hard,
            source: errno.into(),
        })?;
    }
    Ok(OpenFilesRaised {
        soft_before,
        soft,
        hard,
    })
}

/// The soft limit now in force: the most descriptors this process may hold. Unlimited reads
/// as `u64::MAX` (Linux never grants that for open files).
pub fn open_files_limit() -> u64 {
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The soft limit to ask for: the hard limit, or `nr_open` when the hard limit is unlimited;
/// never lower than the soft limit already in force.
fn target_soft_limit(soft: Option<u64>, hard: Option<u64>, nr_open: Option<u64>) -> Option<u64> {
    let ceiling = hard.or(nr_open);
    match (soft, ceiling) {
        (Some(soft), Some(ceiling)) => Some(soft.max(ceiling)),
        // Already unlimited, or no ceiling known to raise it to.
        (soft, _) => soft,
    }
}

fn nr_open() -> Option<u64> {
    std::fs::read_to_string(NR_OPEN_PATH)
        .ok()
        .and_then(|text| text.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_goes_up_to_the_hard_one_and_never_down() {
        assert_eq!(
            target_soft_limit(Some(1024), Some(20_000), None),
            Some(20_000)
        );
        assert_eq!(
            target_soft_limit(Some(1024), Some(20_000), Some(1 << 20)),
            Some(20_000)
        );
        assert_eq!(
            target_soft_limit(Some(20_000), Some(20_000), None),
            Some(20_000)
        );
        assert_eq!(
            target_soft_limit(Some(1024), None, Some(1 << 20)),
            Some(1 << 20),
            "an unlimited hard limit means the kernel's nr_open"
        );
        assert_eq!(
            target_soft_limit(Some(1024), None, None),
            Some(1024),
            "nothing known to raise it to"
        );
        assert_eq!(target_soft_limit(None, None, Some(1 << 20)), None);
    }

    #[test]
    fn raising_twice_changes_nothing_the_second_time() {
        let first = raise_open_files_limit().unwrap();
        assert_eq!(open_files_limit(), first.soft.unwrap_or(u64::MAX));
        let second = raise_open_files_limit().unwrap();
        assert_eq!(second.soft_before, first.soft);
        assert_eq!(second.soft, first.soft);
    }

    #[test]
    fn the_log_line_names_both_limits() {
        let raised = OpenFilesRaised {
            soft_before: Some(1024),
            soft: Some(20_000),
            hard: Some(20_000),
        };
        assert_eq!(
            raised.to_string(),
            "open-file limit: soft 1024 -> 20000, hard 20000"
        );
        let unlimited = OpenFilesRaised {
            hard: None,
            ..raised
        };
        assert!(unlimited.to_string().ends_with("hard unlimited"));
    }
}
