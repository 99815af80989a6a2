//! Server-side partition assignors for KIP-848 consumer groups: `uniform` (the default) and
//! `range`, as Kafka names them.
//!
//! Both take each member's subscription and the partition count of every subscribed topic, and
//! return the target assignment. `uniform` is sticky: a partition stays with its current owner
//! unless that would leave the assignment unbalanced (counts differing by more than one among
//! the members that could own it). `range` gives each member a contiguous range of every
//! topic it subscribes to, members in id order, the first ones one extra when the division is
//! uneven.

use std::collections::{BTreeMap, BTreeSet};

/// Topic name -> partitions.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

/// The assignors this coordinator offers, the first being the default.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// What an assignor sees of one member.
pub struct MemberSubscription<'a> {
    pub member_id: &'a str,
    pub topics: &'a [String],
    pub current: &'a Assignment,
}

pub fn assign(
    assignor: &str,
    members: &[MemberSubscription<'_>],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    match assignor {
        "range" => range(members, partitions),
        _ => uniform(members, partitions),
    }
}

fn subscribers<'a>(members: &'a [MemberSubscription<'a>], topic: &str) -> Vec<&'a str> {
    let mut ids: Vec<&str> = members
        .iter()
        .filter(|m| m.topics.iter().any(|t| t == topic))
        .map(|m| m.member_id)
        .collect();
    ids.sort_unstable();
    ids
}

fn range(
    members: &[MemberSubscription<'_>],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut result: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.to_owned(), Assignment::new()))
        .collect();
    for (topic, count) in partitions {
        let owners = subscribers(members, topic);
        if owners.is_empty() {
            continue;
        }
        let (each, extra) = (
            *count as usize / owners.len(),
            *count as usize % owners.len(),
        );
        let mut next = 0i32;
        for (index, owner) in owners.iter().enumerate() {
            let take = each + usize::from(index < extra);
            let range: BTreeSet<i32> = (next..next + take as i32).collect();
            next += take as i32;
            if !range.is_empty() {
                result
                    .get_mut(*owner)
                    .expect("owner is a member")
                    .insert(topic.clone(), range);
            }
        }
    }
    result
}

fn uniform(
    members: &[MemberSubscription<'_>],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut owner_of: BTreeMap<(String, i32), String> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = members
        .iter()
        .map(|m| (m.member_id.to_owned(), 0))
        .collect();
    // Keep current owners where still valid.
    for member in members {
        for (topic, owned) in member.current {
            let Some(count) = partitions.get(topic) else {
                continue;
            };
            if !member.topics.contains(topic) {
                continue;
            }
            for partition in owned.iter().filter(|p| **p < *count) {
                if owner_of
                    .insert((topic.clone(), *partition), member.member_id.to_owned())
                    .is_none()
                {
                    *counts.get_mut(member.member_id).expect("member") += 1;
                }
            }
        }
    }
    // Place every unowned partition with its least loaded subscriber.
    for (topic, count) in partitions {
        let owners = subscribers(members, topic);
        for partition in 0..*count {
            let key = (topic.clone(), partition);
            if owner_of.contains_key(&key) || owners.is_empty() {
                continue;
            }
            let least = *owners
                .iter()
                .min_by_key(|id| (counts[**id], **id))
                .expect("non-empty");
            owner_of.insert(key, least.to_owned());
            *counts.get_mut(least).expect("member") += 1;
        }
    }
    rebalance(members, &mut owner_of, &mut counts);
    let mut result: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.to_owned(), Assignment::new()))
        .collect();
    for ((topic, partition), owner) in owner_of {
        result
            .get_mut(&owner)
            .expect("member")
            .entry(topic)
            .or_default()
            .insert(partition);
    }
    result
}

/// Moves partitions from the most to the least loaded eligible member until no move can
/// narrow a gap of more than one.
fn rebalance(
    members: &[MemberSubscription<'_>],
    owner_of: &mut BTreeMap<(String, i32), String>,
    counts: &mut BTreeMap<String, usize>,
) {
    let total: usize = counts.values().sum();
    // Each move lowers the sum of squared counts, so this ends; the bound is a safety net.
    for _ in 0..=total * members.len().max(1) {
        let mut moved = false;
        let keys: Vec<(String, i32)> = owner_of.keys().cloned().collect();
        for key in keys {
            let owner = owner_of[&key].clone();
            let eligible = subscribers(members, &key.0);
            let Some(target) = eligible
                .iter()
                .min_by_key(|id| (counts[**id], **id))
                .copied()
            else {
                continue;
            };
            if counts[&owner] > counts[target] + 1 {
                *counts.get_mut(&owner).expect("member") -= 1;
                *counts.get_mut(target).expect("member") += 1;
                owner_of.insert(key, target.to_owned());
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn range_gives_contiguous_ranges_in_member_order() {
        let subscribed = topics(&["t"]);
        let empty = Assignment::new();
        let members = [
            MemberSubscription {
                member_id: "b",
                topics: &subscribed,
                current: &empty,
            },
            MemberSubscription {
                member_id: "a",
                topics: &subscribed,
                current: &empty,
            },
        ];
        let result = assign("range", &members, &BTreeMap::from([("t".to_owned(), 5)]));
        assert_eq!(result["a"]["t"], BTreeSet::from([0, 1, 2]));
        assert_eq!(result["b"]["t"], BTreeSet::from([3, 4]));
    }

    #[test]
    fn uniform_balances_and_sticks() {
        let subscribed = topics(&["t"]);
        let empty = Assignment::new();
        let partitions = BTreeMap::from([("t".to_owned(), 6)]);
        let first = assign(
            "uniform",
            &[MemberSubscription {
                member_id: "a",
                topics: &subscribed,
                current: &empty,
            }],
            &partitions,
        );
        assert_eq!(first["a"]["t"].len(), 6);
        let members = [
            MemberSubscription {
                member_id: "a",
                topics: &subscribed,
                current: &first["a"],
            },
            MemberSubscription {
                member_id: "b",
                topics: &subscribed,
                current: &empty,
            },
            MemberSubscription {
                member_id: "c",
                topics: &subscribed,
                current: &empty,
            },
        ];
        let second = assign("uniform", &members, &partitions);
        for id in ["a", "b", "c"] {
            assert_eq!(second[id]["t"].len(), 2, "{id}");
        }
        // a kept two of its own and gave the rest away: nothing moved between b and c.
        assert!(second["a"]["t"].is_subset(&first["a"]["t"]));
    }

    #[test]
    fn uniform_respects_heterogeneous_subscriptions() {
        let only_x = topics(&["x"]);
        let both = topics(&["x", "y"]);
        let empty = Assignment::new();
        let members = [
            MemberSubscription {
                member_id: "a",
                topics: &only_x,
                current: &empty,
            },
            MemberSubscription {
                member_id: "b",
                topics: &both,
                current: &empty,
            },
        ];
        let result = assign(
            "uniform",
            &members,
            &BTreeMap::from([("x".to_owned(), 2), ("y".to_owned(), 2)]),
        );
        assert!(!result["a"].contains_key("y"));
        assert_eq!(result["b"]["y"].len(), 2);
        assert_eq!(
            result["a"]["x"].len() + result["b"].get("x").map_or(0, |p| p.len()),
            2
        );
    }
}
