//! The quorum's storage: openraft's own storage test suite, and what survives a reopen.

use std::collections::BTreeMap;
use std::io::Cursor;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{log_id, StoreBuilder, Suite};
use openraft::{Entry, EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder};
use strom_metadata::quorum::storage::{self, LogStore, StateMachineStore};
use strom_metadata::quorum::types::{StorageError, TypeConfig, Vote};
use strom_metadata::{CommandResult, MetadataCommand};
use uuid::Uuid;

/// Builds a fresh store in a new temporary directory, kept alive by the returned guard.
struct TempStores;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for TempStores {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (log, _writer, state_machine) = storage::open(dir.path()).expect("opens");
        Ok((dir, log, state_machine))
    }
}

type StorageSuite = Suite<TypeConfig, LogStore, StateMachineStore, TempStores, tempfile::TempDir>;

/// One test per case of openraft's storage suite, each on a fresh store. Left out:
/// `get_initial_state_membership_from_log_and_sm`, which appends index 3 right after index 1;
/// this log refuses a hole, as `RaftLogStorage` requires of callers.
macro_rules! suite_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (_dir, log, state_machine) = TempStores.build().await.unwrap();
                StorageSuite::$case(log, state_machine).await.unwrap();
            }
        )*
    };
}

mod openraft_suite {
    use super::*;

    suite_cases!(
        last_membership_in_log_initial,
        last_membership_in_log,
        last_membership_in_log_multi_step,
        get_membership_initial,
        get_membership_from_log_and_empty_sm,
        get_membership_from_empty_log_and_sm,
        get_membership_from_log_le_sm_last_applied,
        get_membership_from_log_gt_sm_last_applied_1,
        get_membership_from_log_gt_sm_last_applied_2,
        get_initial_state_without_init,
        get_initial_state_with_state,
        get_initial_state_last_log_gt_sm,
        get_initial_state_last_log_lt_sm,
        get_initial_state_log_ids,
        get_initial_state_re_apply_committed,
        save_vote,
        get_log_entries,
        limited_get_log_entries,
        try_get_log_entry,
        initial_logs,
        get_log_state,
        get_log_id,
        last_id_in_log,
        last_applied_state,
        purge_logs_upto_0,
        purge_logs_upto_5,
        purge_logs_upto_20,
        delete_logs_since_11,
        delete_logs_since_0,
        append_to_log,
        snapshot_meta,
        apply_single,
        apply_multiple,
    );

    #[tokio::test]
    async fn transfer_snapshot() {
        StorageSuite::transfer_snapshot(&TempStores).await.unwrap();
    }
}

fn command_entry(term: u64, index: u64, command: MetadataCommand) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(command),
    }
}

fn create_topic(name: &str) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.into(),
        id: Uuid::from_u128(name.len() as u128),
        partitions: 1,
        replication_factor: 1,
        assignments: None,
        configs: BTreeMap::new(),
    }
}

fn register(id: i32) -> MetadataCommand {
    MetadataCommand::RegisterBroker {
        id,
        incarnation: Uuid::from_u128(7),
        host: "127.0.0.1".into(),
        port: 9092,
        rack: None,
        endpoints: Vec::new(),
    }
}

#[tokio::test]
async fn the_log_and_vote_survive_a_reopen_and_truncation_and_purge_stick() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _writer) = LogStore::open(dir.path()).unwrap();
        let membership = Entry {
            log_id: log_id(1, 1, 0),
            payload: EntryPayload::Membership(Membership::new(vec![[1u64].into()], None)),
        };
        log.blocking_append([membership]).await.unwrap();
        let commands: Vec<_> = (1..=10)
            .map(|i| command_entry(1, i, register(i as i32)))
            .collect();
        log.blocking_append(commands).await.unwrap();
        log.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
        log.truncate(log_id(1, 1, 8)).await.unwrap();
        log.purge(log_id(1, 1, 3)).await.unwrap();
    }
    let (mut log, _writer) = LogStore::open(dir.path()).unwrap();
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(Vote::new_committed(1, 1))
    );
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 3)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 7)));
    let entries = log.try_get_log_entries(0..100).await.unwrap();
    let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
    assert_eq!(indexes, vec![4, 5, 6, 7]);
    assert_eq!(entries[0].payload, EntryPayload::Normal(register(4)));
}

#[tokio::test]
async fn a_snapshot_round_trips_through_disk_and_another_node() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut leader = StateMachineStore::open(leader_dir.path()).unwrap();
    let mut images = leader.subscribe();
    let results = leader
        .apply([
            command_entry(1, 1, register(1)),
            command_entry(1, 2, create_topic("orders")),
        ])
        .await
        .unwrap();
    assert!(matches!(results[1], CommandResult::TopicCreated { .. }));
    assert!(
        images.has_changed().unwrap(),
        "each apply batch is published"
    );
    assert!(images.borrow_and_update().topics.contains_key("orders"));
    let built = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(built.meta.last_log_id, Some(log_id(1, 1, 2)));
    let expected = leader.image();
    drop(leader);

    // The snapshot is read back from disk on open.
    let mut reopened = StateMachineStore::open(leader_dir.path()).unwrap();
    assert_eq!(reopened.image(), expected);
    let (last_applied, _) = reopened.applied_state().await.unwrap();
    assert_eq!(last_applied, Some(log_id(1, 1, 2)));
    let current = reopened.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, built.meta);

    // And installed on another node, which publishes the new image.
    let mut follower = StateMachineStore::open(follower_dir.path()).unwrap();
    let mut follower_images = follower.subscribe();
    let mut data = follower.begin_receiving_snapshot().await.unwrap();
    *data = Cursor::new(current.snapshot.into_inner());
    follower
        .install_snapshot(&current.meta, data)
        .await
        .unwrap();
    assert!(follower_images.has_changed().unwrap());
    assert_eq!(*follower_images.borrow_and_update(), expected);
    drop(follower);
    let follower = StateMachineStore::open(follower_dir.path()).unwrap();
    assert_eq!(follower.image(), expected);
}

#[tokio::test]
async fn a_torn_tail_loses_only_the_unflushed_entry() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _writer) = LogStore::open(dir.path()).unwrap();
        let commands: Vec<_> = (1..=5)
            .map(|i| command_entry(1, i, register(i as i32)))
            .collect();
        log.blocking_append(commands).await.unwrap();
    }
    // A crash in the middle of writing the last record.
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|item| item.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "log"))
        .unwrap();
    let length = std::fs::metadata(&segment).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(length - 3).unwrap();
    drop(file);
    let (mut log, _writer) = LogStore::open(dir.path()).unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 4)));
    // The log goes on from the cut.
    log.blocking_append([command_entry(2, 5, register(9))])
        .await
        .unwrap();
    drop(log);
    let (mut log, _writer) = LogStore::open(dir.path()).unwrap();
    let entries = log.try_get_log_entries(5..6).await.unwrap();
    assert_eq!(entries[0].payload, EntryPayload::Normal(register(9)));
}
