//! Replica placement: which brokers hold each partition, with Kafka's round-robin scheme so
//! that leaders (the first replica) spread evenly, and followers are shifted so that no two
//! partitions share the same replica list pattern. When brokers name racks, the broker list
//! alternates racks first, so each partition's replicas land on as many racks as possible.

use std::collections::BTreeMap;

/// A broker eligible for new replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i32,
    pub rack: Option<String>,
}

/// Orders brokers so that consecutive entries come from different racks where possible:
/// r1-b1, r2-b1, r3-b1, r1-b2, ... (each rack's brokers in id order).
fn rack_alternated(candidates: &[Candidate]) -> Vec<i32> {
    if candidates.iter().all(|c| c.rack.is_none()) {
        let mut ids: Vec<i32> = candidates.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        return ids;
    }
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for candidate in candidates {
        by_rack
            .entry(candidate.rack.as_deref().unwrap_or(""))
            .or_default()
            .push(candidate.id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .flat_map(|i| {
            by_rack
                .values()
                .filter_map(move |ids| ids.get(i).copied())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Assigns `replication_factor` replicas to each of `count` new partitions numbered from
/// `first_partition`. `seed` picks the starting broker (derived from the topic id, so every
/// node computes the same placement). Returns None if there are too few brokers.
pub fn place(
    candidates: &[Candidate],
    first_partition: i32,
    count: i32,
    replication_factor: usize,
    seed: u64,
) -> Option<Vec<Vec<i32>>> {
    let brokers = rack_alternated(candidates);
    let n = brokers.len();
    if replication_factor == 0 || replication_factor > n {
        return None;
    }
    let rack_of: BTreeMap<i32, Option<&str>> = candidates
        .iter()
        .map(|c| (c.id, c.rack.as_deref()))
        .collect();
    let rack_count = rack_of
        .values()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let start = (seed % n as u64) as usize;
    let shift_base = ((seed / n as u64) % n as u64) as usize;
    let mut assignment = Vec::with_capacity(count.max(0) as usize);
    for partition in first_partition..first_partition + count {
        let p = partition as usize;
        let first = (p + start) % n;
        // The follower shift grows every n partitions so patterns do not repeat.
        let shift = (shift_base + p / n) % n;
        let mut replicas = vec![brokers[first]];
        for j in 0..replication_factor - 1 {
            let offset = 1 + (shift + j) % (n - 1).max(1);
            let used_racks: std::collections::BTreeSet<Option<&str>> =
                replicas.iter().map(|r| rack_of[r]).collect();
            let want_new_rack = used_racks.len() < rack_count;
            // From the shifted position, the first broker not yet chosen, on an unused rack
            // while any rack is still unused.
            let pick = (0..n)
                .map(|step| brokers[(first + offset + step) % n])
                .find(|id| {
                    !replicas.contains(id) && (!want_new_rack || !used_racks.contains(&rack_of[id]))
                })
                .expect("replication_factor <= brokers leaves a free broker");
            replicas.push(pick);
        }
        assignment.push(replicas);
    }
    Some(assignment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    fn brokers(ids: &[i32]) -> Vec<Candidate> {
        ids.iter()
            .map(|id| Candidate {
                id: *id,
                rack: None,
            })
            .collect()
    }

    #[test]
    fn leaders_spread_evenly_and_replicas_are_distinct() {
        let placed = place(&brokers(&[1, 2, 3]), 0, 6, 3, 7).unwrap();
        let mut leaders: HashMap<i32, usize> = HashMap::new();
        for replicas in &placed {
            assert_eq!(
                replicas.iter().collect::<BTreeSet<_>>().len(),
                3,
                "{replicas:?}"
            );
            *leaders.entry(replicas[0]).or_default() += 1;
        }
        assert!(leaders.values().all(|count| *count == 2), "{leaders:?}");
    }

    #[test]
    fn racks_are_spread() {
        let candidates = vec![
            Candidate {
                id: 1,
                rack: Some("a".into()),
            },
            Candidate {
                id: 2,
                rack: Some("a".into()),
            },
            Candidate {
                id: 3,
                rack: Some("b".into()),
            },
            Candidate {
                id: 4,
                rack: Some("b".into()),
            },
        ];
        let rack_of: HashMap<i32, &str> = HashMap::from([(1, "a"), (2, "a"), (3, "b"), (4, "b")]);
        for replicas in place(&candidates, 0, 8, 2, 3).unwrap() {
            let racks: BTreeSet<&str> = replicas.iter().map(|id| rack_of[id]).collect();
            assert_eq!(racks.len(), 2, "{replicas:?}");
        }
    }

    #[test]
    fn too_few_brokers_is_refused() {
        assert_eq!(place(&brokers(&[1, 2]), 0, 1, 3, 0), None);
        assert_eq!(
            place(&brokers(&[1]), 0, 3, 1, 9).unwrap(),
            vec![vec![1], vec![1], vec![1]]
        );
    }
}
