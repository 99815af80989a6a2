//! The metadata image: the state every node derives from the committed metadata log.
//!
//! [`MetadataImage::apply`] is the only way it changes. It is pure and deterministic, so all
//! nodes that apply the same log hold the same image. Leader election is part of applying:
//! fencing a broker moves each of its leaderships to the first unfenced in-sync replica (in
//! replica order) and bumps the leader epoch; a partition with none left goes offline (leader
//! -1) until an in-sync replica returns, unless the topic enables unclean election. ElectLeaders
//! elects by [`PartitionState::elect`]'s rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use strom_types::ErrorCode;
use uuid::Uuid;

use strom_types::security::{AclBinding, ScramCredential, ScramMechanism};

use crate::command::{
    CommandResult, ConfigScope, Election, Endpoint, ListChange, MetadataCommand, MetadataError,
    PartitionOutcome, QuotaEntity, TopicOutcomes,
};
use crate::placement::{self, Candidate};

/// No leader: the partition is offline.
pub const NO_LEADER: i32 = -1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: i32,
    pub incarnation: Uuid,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    pub fenced: bool,
    /// The client listeners' endpoints; empty in registrations from before listeners had names.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

impl BrokerRegistration {
    /// Where a client connected through `listener` should reach this broker: that listener's
    /// endpoint, or `None` when this broker has no listener of that name (Kafka leaves such a
    /// broker out of the Metadata answer).
    pub fn endpoint(&self, listener: &str) -> Option<(&str, u16)> {
        if self.endpoints.is_empty() {
            return Some((&self.host, self.port));
        }
        (self.endpoints.iter())
            .find(|endpoint| endpoint.listener == listener)
            .map(|endpoint| (endpoint.host.as_str(), endpoint.port))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub index: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    /// Grows with every change to this partition (Kafka's partition epoch).
    pub partition_epoch: i32,
    /// The replicas a reassignment in progress adds (KIP-455): in `replicas`, not in the
    /// ISR until they caught up. Empty when no reassignment is in progress.
    #[serde(default)]
    pub adding: Vec<i32>,
    /// The replicas a reassignment in progress removes once every target replica is in sync.
    #[serde(default)]
    pub removing: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionState>,
}

impl PartitionState {
    /// Whether a reassignment is moving this partition.
    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas before the reassignment in progress: every replica it is not adding.
    pub fn original_replicas(&self) -> Vec<i32> {
        (self.replicas.iter().copied())
            .filter(|replica| !self.adding.contains(replica))
            .collect()
    }

    /// The replicas the partition ends with: every replica the reassignment is not removing.
    pub fn target_replicas(&self) -> Vec<i32> {
        (self.replicas.iter().copied())
            .filter(|replica| !self.removing.contains(replica))
            .collect()
    }

    /// Starts moving the partition to `target` (AlterPartitionReassignments), as Kafka's
    /// controller does: the replica list becomes the target followed by the replicas it
    /// drops, which are `removing`; the target's new replicas are `adding`. A reassignment
    /// already in progress is replaced (computed from the current list, adding replicas
    /// included, as Kafka does). Completes at once when the ISR already holds the target.
    fn reassign(&mut self, target: &[i32], alive: impl Fn(i32) -> bool) {
        let removing: Vec<i32> = (self.replicas.iter().copied())
            .filter(|replica| !target.contains(replica))
            .collect();
        let adding: Vec<i32> = (target.iter().copied())
            .filter(|replica| !self.replicas.contains(replica))
            .collect();
        let replicas: Vec<i32> = target.iter().copied().chain(removing.clone()).collect();
        if replicas == self.replicas && adding == self.adding && removing == self.removing {
            return;
        }
        self.replicas = replicas;
        self.adding = adding;
        self.removing = removing;
        self.partition_epoch += 1;
        self.complete_reassignment(alive);
    }

    /// Cancels the reassignment in progress (Kafka's `PartitionReassignmentRevert`): back to
    /// the original replicas, the ISR without the replicas being added. Refused when that
    /// would leave no in-sync replica, unless `unclean` allows taking the first original
    /// replica as the ISR.
    fn cancel_reassignment(
        &mut self,
        unclean: bool,
        alive: impl Fn(i32) -> bool,
    ) -> Result<(), MetadataError> {
        if !self.is_reassigning() {
            return Err(MetadataError::new(
                ErrorCode::NoReassignmentInProgress,
                ErrorCode::NoReassignmentInProgress.message(),
            ));
        }
        let replicas = self.original_replicas();
        let mut isr: Vec<i32> = (self.isr.iter().copied())
            .filter(|replica| !self.adding.contains(replica))
            .collect();
        if isr.is_empty() {
            match (unclean, replicas.first()) {
                (true, Some(first)) => isr.push(*first),
                _ => {
                    return Err(MetadataError::new(
                        ErrorCode::InvalidReplicaAssignment,
                        "Unable to revert the partition assignment because it would require an unclean leader election.",
                    ))
                }
            }
        }
        self.end_reassignment(replicas, isr, alive);
        Ok(())
    }

    /// Ends the reassignment in progress once the ISR holds every target replica (Kafka's
    /// `maybeCompleteReassignment`): the removed replicas leave the replica list and the ISR,
    /// and a leader that was removed hands over to the first target replica in sync. Called
    /// after every change to a reassigning partition; returns whether it completed.
    fn complete_reassignment(&mut self, alive: impl Fn(i32) -> bool) -> bool {
        if !self.is_reassigning() {
            return false;
        }
        let isr: Vec<i32> = (self.isr.iter().copied())
            .filter(|replica| !self.removing.contains(replica))
            .collect();
        let replicas = self.target_replicas();
        if isr.is_empty() || replicas.is_empty() || !replicas.iter().all(|r| isr.contains(r)) {
            return false;
        }
        self.end_reassignment(replicas, isr, alive);
        true
    }

    /// Ends the reassignment (completed or cancelled) with these replicas and ISR; a leader no
    /// longer in them hands over to the first replica in sync and alive, or the partition goes
    /// offline.
    fn end_reassignment(&mut self, replicas: Vec<i32>, isr: Vec<i32>, alive: impl Fn(i32) -> bool) {
        self.replicas = replicas;
        self.isr = isr;
        self.adding.clear();
        self.removing.clear();
        self.partition_epoch += 1;
        let leader_stays = self.replicas.contains(&self.leader) && self.isr.contains(&self.leader);
        if leader_stays {
            return;
        }
        let successor = (self.replicas.iter().copied())
            .find(|replica| self.isr.contains(replica) && alive(*replica));
        let leader = successor.unwrap_or(NO_LEADER);
        if leader != self.leader {
            self.leader = leader;
            self.leader_epoch += 1;
        }
    }

    /// Elects a leader by `election`'s rules (Kafka's controller's: `electLeader` with
    /// `PartitionChangeBuilder`), with `alive` saying which brokers may lead (registered and
    /// unfenced). A preferred election makes the first replica leader if it is alive and in
    /// sync; an unclean one is only for a partition without a leader and takes an in-sync
    /// replica if one is alive, else any live replica, whose log then becomes the truth (the
    /// ISR shrinks to it). A new leader bumps the leader and partition epochs; nothing changes
    /// when the election fails or is not needed.
    pub fn elect(
        &mut self,
        election: Election,
        alive: impl Fn(i32) -> bool,
    ) -> Result<(), ErrorCode> {
        let in_sync_and_alive = |replica: i32| self.isr.contains(&replica) && alive(replica);
        let (leader, unclean) = match election {
            Election::Preferred => {
                let preferred = self.replicas.first().copied().unwrap_or(NO_LEADER);
                if self.leader == preferred {
                    return Err(ErrorCode::ElectionNotNeeded);
                }
                // Kafka keeps a valid leader rather than move to another non-preferred replica.
                let leader = [preferred, self.leader]
                    .into_iter()
                    .chain(self.replicas.iter().skip(1).copied())
                    .find(|replica| *replica != NO_LEADER && in_sync_and_alive(*replica));
                match leader {
                    Some(leader) if leader != self.leader => (leader, false),
                    _ => return Err(ErrorCode::PreferredLeaderNotAvailable),
                }
            }
            Election::Unclean => {
                if self.leader != NO_LEADER {
                    return Err(ErrorCode::ElectionNotNeeded);
                }
                let clean = self
                    .replicas
                    .iter()
                    .copied()
                    .find(|r| in_sync_and_alive(*r));
                // Never a replica a reassignment is still adding: it may hold nothing.
                let unclean = || {
                    (self.replicas.iter().copied()).find(|r| alive(*r) && !self.adding.contains(r))
                };
                match (clean, unclean()) {
                    (Some(leader), _) => (leader, false),
                    (None, Some(leader)) => (leader, true),
                    (None, None) => return Err(ErrorCode::EligibleLeadersNotAvailable),
                }
            }
        };
        debug_assert!(self.replicas.contains(&leader) && alive(leader));
        let epoch_before = self.leader_epoch;
        self.leader = leader;
        if unclean {
            // The new leader's log is the partition's now: whatever only the others held is lost.
            self.isr = vec![leader];
        }
        self.leader_epoch += 1;
        self.partition_epoch += 1;
        assert!(self.leader_epoch > epoch_before);
        Ok(())
    }
}

/// The config that lets a partition without an in-sync replica elect another one.
const UNCLEAN_ELECTION: &str = "unclean.leader.election.enable";

impl TopicImage {
    /// `unclean.leader.election.enable` for this topic: its own, else `cluster_default`.
    fn unclean_election(&self, cluster_default: bool) -> bool {
        match self.configs.get(UNCLEAN_ELECTION) {
            Some(value) => value == "true",
            None => cluster_default,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub cluster_id: Option<String>,
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// By topic name. Shared between images: applying a command copies only the topic it
    /// changes, and a broker applying a new image skips every topic that is the same `Arc`.
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    pub next_producer_id: i64,
    /// SCRAM credentials by user, then mechanism (KIP-554).
    #[serde(default)]
    pub scram_credentials: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// Every ACL binding (CreateAcls/DeleteAcls). Shared between images: only a change to
    /// the ACLs copies it, and the broker rebuilds its authorizer when the `Arc` changes.
    #[serde(default)]
    pub acls: Arc<std::collections::BTreeSet<AclBinding>>,
    /// Dynamic broker configs (AlterConfigs on BROKER resources) by Kafka's resource name:
    /// the empty name for the cluster-wide default, a broker id for one broker. Shared between
    /// images like the ACLs: brokers recompute their effective config when the `Arc` changes.
    #[serde(default)]
    pub broker_configs: Arc<BTreeMap<String, BTreeMap<String, String>>>,
    /// Client quotas (KIP-546) by entity, each entity with at least one value. Shared between
    /// images like the ACLs: brokers re-read their quotas when the `Arc` changes.
    #[serde(default)]
    pub client_quotas: Arc<Vec<(QuotaEntity, BTreeMap<String, f64>)>>,
}

/// Applies one AlterConfigs command to a scope's configs (brokers use it too, to see what a
/// change would leave before they propose it).
pub fn alter_configs(
    configs: &mut BTreeMap<String, String>,
    set: &BTreeMap<String, String>,
    delete: &[String],
    replace: bool,
    lists: &[ListChange],
) {
    if replace {
        configs.retain(|key, _| set.contains_key(key));
    }
    for key in delete {
        configs.remove(key);
    }
    configs.extend(set.iter().map(|(key, value)| (key.clone(), value.clone())));
    for change in lists {
        let value = change.apply_to(configs.get(&change.key).map(String::as_str));
        match value.is_empty() {
            true => configs.remove(&change.key),
            false => configs.insert(change.key.clone(), value),
        };
    }
}

/// Kafka's checks of a manual replica list: not empty, registered brokers, none twice.
fn check_target_replicas(target: &[i32], registered: &[i32]) -> Result<(), MetadataError> {
    let invalid =
        |message: String| MetadataError::new(ErrorCode::InvalidReplicaAssignment, message);
    if target.is_empty() {
        return Err(invalid(
            "The manual partition assignment includes an empty replica list.".to_owned(),
        ));
    }
    let mut sorted = target.to_vec();
    sorted.sort_unstable();
    for (at, broker) in sorted.iter().enumerate() {
        if !registered.contains(broker) {
            return Err(invalid(format!("The manual partition assignment includes broker {broker}, but no such broker is registered.")));
        }
        if at > 0 && sorted[at - 1] == *broker {
            return Err(invalid(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            )));
        }
    }
    Ok(())
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> CommandResult {
    CommandResult::Refused(MetadataError::new(code, message))
}

impl MetadataImage {
    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicImage>> {
        self.topics.values().find(|t| t.id == id)
    }

    fn topic_name_by_id(&self, id: Uuid) -> Option<String> {
        self.topic_by_id(id).map(|t| t.name.clone())
    }

    /// The registered, unfenced brokers, by id.
    fn alive_brokers(&self) -> Vec<i32> {
        (self.brokers.values())
            .filter(|broker| !broker.fenced)
            .map(|broker| broker.id)
            .collect()
    }

    /// The cluster-wide dynamic default of `unclean.leader.election.enable` (AlterConfigs on
    /// the BROKER resource with the empty name): what elections use where a topic sets none.
    /// Elections happen as the image applies commands, so they read the image only, as
    /// Kafka's controller reads its own config.
    pub fn unclean_election_default(&self) -> bool {
        (self.broker_configs.get(""))
            .and_then(|configs| configs.get(UNCLEAN_ELECTION))
            .is_some_and(|value| value == "true")
    }

    pub fn is_alive(&self, broker: i32) -> bool {
        self.brokers.get(&broker).is_some_and(|b| !b.fenced)
    }

    fn candidates(&self) -> Vec<Candidate> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| Candidate {
                id: b.id,
                rack: b.rack.clone(),
            })
            .collect()
    }

    /// Applies one committed command.
    pub fn apply(&mut self, command: &MetadataCommand) -> CommandResult {
        match command {
            MetadataCommand::Bootstrap { cluster_id } => {
                if self.cluster_id.is_none() {
                    self.cluster_id = Some(cluster_id.clone());
                }
                CommandResult::Done
            }
            MetadataCommand::RegisterBroker {
                id,
                incarnation,
                host,
                port,
                rack,
                endpoints,
            } => {
                let registration = BrokerRegistration {
                    id: *id,
                    incarnation: *incarnation,
                    host: host.clone(),
                    port: *port,
                    rack: rack.clone(),
                    fenced: false,
                    endpoints: endpoints.clone(),
                };
                self.brokers.insert(*id, registration);
                self.elect_offline_with(*id);
                CommandResult::Done
            }
            MetadataCommand::FenceBroker { id } | MetadataCommand::ControlledShutdown { id } => {
                self.fence(*id)
            }
            MetadataCommand::UnregisterBroker { id } => match self.brokers.get(id) {
                None => refuse(
                    ErrorCode::BrokerIdNotRegistered,
                    format!("Broker ID {id} is not currently registered"),
                ),
                Some(broker) if !broker.fenced => refuse(
                    ErrorCode::InvalidRequest,
                    format!("Broker {id} is alive: shut it down before unregistering it"),
                ),
                Some(_) => {
                    // Leaves ISRs and leaderships as a fenced broker would; already fenced, so
                    // only what fencing kept (a last ISR member) is left to it.
                    self.fence(*id);
                    self.brokers.remove(id);
                    CommandResult::Done
                }
            },
            MetadataCommand::UnfenceBroker { id } => match self.brokers.get_mut(id) {
                Some(broker) => {
                    broker.fenced = false;
                    self.elect_offline_with(*id);
                    CommandResult::Done
                }
                None => refuse(
                    ErrorCode::InvalidRequest,
                    format!("broker {id} is not registered"),
                ),
            },
            MetadataCommand::CreateTopic {
                name,
                id,
                partitions,
                replication_factor,
                assignments,
                configs,
            } => self.create_topic(
                name,
                *id,
                *partitions,
                *replication_factor,
                assignments.as_deref(),
                configs,
            ),
            MetadataCommand::DeleteTopic { id } => match self.topic_name_by_id(*id) {
                Some(name) => {
                    self.topics.remove(&name);
                    CommandResult::Done
                }
                None => refuse(ErrorCode::UnknownTopicId, format!("no topic has id {id}")),
            },
            MetadataCommand::CreatePartitions {
                id,
                count,
                assignments,
            } => self.create_partitions(*id, *count, assignments.as_deref()),
            MetadataCommand::AlterClientQuotas { alterations } => {
                let quotas = Arc::make_mut(&mut self.client_quotas);
                for alteration in alterations {
                    let at = quotas
                        .iter()
                        .position(|(entity, _)| *entity == alteration.entity);
                    let values = match at {
                        Some(at) => &mut quotas[at].1,
                        None => {
                            quotas.push((alteration.entity.clone(), BTreeMap::new()));
                            &mut quotas.last_mut().expect("just pushed").1
                        }
                    };
                    for key in &alteration.remove {
                        values.remove(key);
                    }
                    values.extend(alteration.set.iter().map(|(k, v)| (k.clone(), *v)));
                }
                quotas.retain(|(_, values)| !values.is_empty());
                quotas.sort_by(|a, b| a.0.cmp(&b.0));
                CommandResult::Done
            }
            MetadataCommand::AlterConfigs {
                resource,
                set,
                delete,
                replace,
                lists,
            } => {
                if let ConfigScope::Topic(id) = resource {
                    let Some(name) = self.topic_name_by_id(*id) else {
                        return refuse(
                            ErrorCode::UnknownTopicOrPartition,
                            format!("no topic has id {id}"),
                        );
                    };
                    let topic = Arc::make_mut(self.topics.get_mut(&name).expect("found by id"));
                    alter_configs(&mut topic.configs, set, delete, *replace, lists);
                    return CommandResult::Done;
                }
                let key = resource.broker_key().expect("a broker scope");
                let scopes = Arc::make_mut(&mut self.broker_configs);
                let configs = scopes.entry(key.clone()).or_default();
                alter_configs(configs, set, delete, *replace, lists);
                // A scope left without keys is no scope.
                if configs.is_empty() {
                    scopes.remove(&key);
                }
                CommandResult::Done
            }
            MetadataCommand::AlterIsr {
                topic,
                partition,
                leader,
                leader_epoch,
                isr,
            } => self.alter_isr(*topic, *partition, *leader, *leader_epoch, isr),
            MetadataCommand::AllocateProducerIds { count, .. } => {
                let first = self.next_producer_id;
                self.next_producer_id += count.max(&1);
                CommandResult::ProducerIds {
                    first,
                    count: *count.max(&1),
                }
            }
            MetadataCommand::AlterScramCredentials { upserts, deletions } => {
                self.alter_scram_credentials(upserts, deletions)
            }
            MetadataCommand::CreateAcls { acls } => {
                let set = Arc::make_mut(&mut self.acls);
                set.extend(acls.iter().cloned());
                CommandResult::Done
            }
            MetadataCommand::DeleteAcls { acls } => {
                if acls.iter().any(|acl| self.acls.contains(acl)) {
                    let set = Arc::make_mut(&mut self.acls);
                    for acl in acls {
                        set.remove(acl);
                    }
                }
                CommandResult::Done
            }
            MetadataCommand::ElectLeaders {
                election,
                partitions,
            } => match partitions {
                Some(partitions) => self.elect_leaders(*election, partitions),
                None => self.elect_all_leaders(*election),
            },
            MetadataCommand::AlterPartitionReassignments {
                partitions,
                allow_replication_factor_change,
            } => {
                let results = (partitions.iter())
                    .map(|(topic, changes)| TopicOutcomes {
                        topic: topic.clone(),
                        partitions: (changes.iter())
                            .map(|(index, target)| {
                                let outcome = self.reassign_one(
                                    topic,
                                    *index,
                                    target.as_deref(),
                                    *allow_replication_factor_change,
                                );
                                let (error, message) = match outcome {
                                    Ok(()) => (ErrorCode::None, None),
                                    Err(error) => (error.code, Some(error.message)),
                                };
                                PartitionOutcome {
                                    partition: *index,
                                    error,
                                    message,
                                }
                            })
                            .collect(),
                    })
                    .collect();
                CommandResult::Reassignments(results)
            }
        }
    }

    /// Moves one partition to `target`, or cancels its move (`None`), with Kafka's checks.
    fn reassign_one(
        &mut self,
        topic: &str,
        index: i32,
        target: Option<&[i32]>,
        allow_replication_factor_change: bool,
    ) -> Result<(), MetadataError> {
        let alive = self.alive_brokers();
        let registered: Vec<i32> = self.brokers.keys().copied().collect();
        let cluster_unclean = self.unclean_election_default();
        let Some(topic_image) = self.topics.get_mut(topic) else {
            return Err(MetadataError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("Unable to find a topic named {topic}."),
            ));
        };
        let unclean = topic_image.unclean_election(cluster_unclean);
        let Some(current) = usize::try_from(index)
            .ok()
            .and_then(|at| topic_image.partitions.get(at))
        else {
            return Err(MetadataError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("Unable to find partition {topic}:{index}."),
            ));
        };
        let mut moved = current.clone();
        let alive = |broker: i32| alive.contains(&broker);
        match target {
            None => moved.cancel_reassignment(unclean, alive)?,
            Some(target) => {
                check_target_replicas(target, &registered)?;
                let original = current.original_replicas().len();
                if !allow_replication_factor_change && target.len() != original {
                    return Err(MetadataError::new(ErrorCode::InvalidReplicationFactor, format!("The replication factor is changed from {original} to {} but allowReplicationFactorChange is false.", target.len())));
                }
                moved.reassign(target, alive);
            }
        }
        if moved != *current {
            Arc::make_mut(topic_image).partitions[index as usize] = moved;
        }
        Ok(())
    }

    /// ElectLeaders for the partitions named: one result per partition asked for, in order.
    fn elect_leaders(
        &mut self,
        election: Election,
        partitions: &[(String, Vec<i32>)],
    ) -> CommandResult {
        let alive = self.alive_brokers();
        let results = partitions
            .iter()
            .map(|(topic, indexes)| TopicOutcomes {
                topic: topic.clone(),
                partitions: (indexes.iter())
                    .map(|index| self.elect_one(topic, *index, election, &alive))
                    .collect(),
            })
            .collect();
        CommandResult::Elections(results)
    }

    /// ElectLeaders without a partition list: every partition of every topic. As Kafka does,
    /// partitions whose election was not needed are left out of the answer (but not their
    /// topic).
    fn elect_all_leaders(&mut self, election: Election) -> CommandResult {
        let topics: Vec<(String, i32)> = (self.topics.values())
            .map(|topic| (topic.name.clone(), topic.partitions.len() as i32))
            .collect();
        let alive = self.alive_brokers();
        let results = topics
            .into_iter()
            .map(|(topic, count)| TopicOutcomes {
                partitions: (0..count)
                    .map(|index| self.elect_one(&topic, index, election, &alive))
                    .filter(|result| result.error != ErrorCode::ElectionNotNeeded)
                    .collect(),
                topic,
            })
            .collect();
        CommandResult::Elections(results)
    }

    /// One partition's election, with Kafka's answer.
    fn elect_one(
        &mut self,
        topic: &str,
        index: i32,
        election: Election,
        alive: &[i32],
    ) -> PartitionOutcome {
        let outcome = |error: ErrorCode, message: Option<String>| PartitionOutcome {
            partition: index,
            error,
            message,
        };
        let Some(topic_image) = self.topics.get_mut(topic) else {
            let message = format!("No such topic as {topic}");
            return outcome(ErrorCode::UnknownTopicOrPartition, Some(message));
        };
        let Some(current) = usize::try_from(index)
            .ok()
            .and_then(|at| topic_image.partitions.get(at))
        else {
            let message = format!("No such partition as {topic}-{index}");
            return outcome(ErrorCode::UnknownTopicOrPartition, Some(message));
        };
        // Elect on a copy first: the topic is copied (shared images) only when one changes.
        let mut elected = current.clone();
        match elected.elect(election, |broker| alive.contains(&broker)) {
            Ok(()) => {
                Arc::make_mut(topic_image).partitions[index as usize] = elected;
                outcome(ErrorCode::None, None)
            }
            Err(error) => outcome(error, Some(error.message().to_owned())),
        }
    }

    /// Deletions first, each of a credential that exists, then the upserts: all or nothing,
    /// as Kafka validates the whole request before writing any record.
    fn alter_scram_credentials(
        &mut self,
        upserts: &[crate::command::ScramUpsert],
        deletions: &[(String, ScramMechanism)],
    ) -> CommandResult {
        for (user, mechanism) in deletions {
            let exists = (self.scram_credentials.get(user))
                .is_some_and(|credentials| credentials.contains_key(mechanism));
            if !exists {
                return refuse(
                    ErrorCode::ResourceNotFound,
                    format!("Attempt to delete a user credential that does not exist: {user} {mechanism}"),
                );
            }
        }
        for (user, mechanism) in deletions {
            if let Some(credentials) = self.scram_credentials.get_mut(user) {
                credentials.remove(mechanism);
                if credentials.is_empty() {
                    self.scram_credentials.remove(user);
                }
            }
        }
        for upsert in upserts {
            (self
                .scram_credentials
                .entry(upsert.user.clone())
                .or_default())
            .insert(upsert.mechanism, upsert.credential.clone());
        }
        CommandResult::Done
    }

    /// Fencing: leaderships of `id` move to the first unfenced in-sync replica; `id` leaves
    /// every ISR where another member remains.
    fn fence(&mut self, id: i32) -> CommandResult {
        let Some(broker) = self.brokers.get_mut(&id) else {
            return refuse(
                ErrorCode::InvalidRequest,
                format!("broker {id} is not registered"),
            );
        };
        broker.fenced = true;
        let cluster_unclean = self.unclean_election_default();
        let alive: Vec<i32> = self
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.id)
            .collect();
        for topic in self.topics.values_mut() {
            if !topic.partitions.iter().any(|p| p.replicas.contains(&id)) {
                continue;
            }
            let topic = Arc::make_mut(topic);
            let unclean = topic.unclean_election(cluster_unclean);
            for partition in &mut topic.partitions {
                if !partition.replicas.contains(&id) {
                    continue;
                }
                let mut changed = false;
                if partition.isr.len() > 1 && partition.isr.contains(&id) {
                    partition.isr.retain(|member| *member != id);
                    changed = true;
                }
                if partition.leader == id {
                    let successor = partition
                        .replicas
                        .iter()
                        .copied()
                        .find(|r| *r != id && partition.isr.contains(r) && alive.contains(r));
                    let successor = successor.or_else(|| {
                        // Unclean election: any live replica, accepting lost writes.
                        // Never a replica a reassignment is still adding: it may hold nothing.
                        let pick = unclean
                            .then(|| {
                                (partition.replicas.iter().copied())
                                    .find(|r| alive.contains(r) && !partition.adding.contains(r))
                            })
                            .flatten();
                        if let Some(pick) = pick {
                            partition.isr = vec![pick];
                        }
                        pick
                    });
                    partition.leader = successor.unwrap_or(NO_LEADER);
                    partition.leader_epoch += 1;
                    changed = true;
                }
                if changed {
                    partition.partition_epoch += 1;
                }
            }
        }
        CommandResult::Done
    }

    /// Brings partitions that were offline back with `id` as leader where it is in the ISR.
    fn elect_offline_with(&mut self, id: i32) {
        let offline_with = |p: &PartitionState| p.leader == NO_LEADER && p.isr.contains(&id);
        for topic in self.topics.values_mut() {
            if !topic.partitions.iter().any(offline_with) {
                continue;
            }
            for partition in &mut Arc::make_mut(topic).partitions {
                if offline_with(partition) {
                    partition.leader = id;
                    partition.leader_epoch += 1;
                    partition.partition_epoch += 1;
                }
            }
        }
    }

    fn validate_assignments(
        &self,
        assignments: &[Vec<i32>],
        replication_factor: Option<usize>,
    ) -> Result<(), MetadataError> {
        let expected = replication_factor
            .or_else(|| assignments.first().map(Vec::len))
            .unwrap_or(0);
        for (index, replicas) in assignments.iter().enumerate() {
            let mut unique = replicas.clone();
            unique.sort_unstable();
            unique.dedup();
            if replicas.is_empty() || unique.len() != replicas.len() || replicas.len() != expected {
                return Err(MetadataError::new(ErrorCode::InvalidReplicaAssignment, format!("partition {index}: replicas {replicas:?} must be {expected} distinct brokers")));
            }
            if let Some(unknown) = replicas.iter().find(|r| !self.brokers.contains_key(r)) {
                return Err(MetadataError::new(
                    ErrorCode::InvalidReplicaAssignment,
                    format!("partition {index}: broker {unknown} is not registered"),
                ));
            }
        }
        Ok(())
    }

    fn new_partition(&self, index: i32, replicas: Vec<i32>) -> PartitionState {
        let isr: Vec<i32> = replicas
            .iter()
            .copied()
            .filter(|r| self.is_alive(*r))
            .collect();
        let leader = isr.first().copied().unwrap_or(NO_LEADER);
        let isr = if isr.is_empty() {
            replicas.clone()
        } else {
            isr
        };
        PartitionState {
            index,
            replicas,
            isr,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    fn create_topic(
        &mut self,
        name: &str,
        id: Uuid,
        partitions: i32,
        replication_factor: i16,
        assignments: Option<&[Vec<i32>]>,
        configs: &BTreeMap<String, String>,
    ) -> CommandResult {
        if self.topics.contains_key(name) {
            return refuse(
                ErrorCode::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            );
        }
        if self.topic_by_id(id).is_some() {
            return refuse(ErrorCode::InvalidRequest, format!("topic id {id} is taken"));
        }
        let replicas = match assignments {
            Some(assignments) => {
                if let Err(error) = self.validate_assignments(assignments, None) {
                    return CommandResult::Refused(error);
                }
                assignments.to_vec()
            }
            None => {
                if partitions < 1 {
                    return refuse(
                        ErrorCode::InvalidPartitions,
                        format!("number of partitions must be at least 1, not {partitions}"),
                    );
                }
                let alive = self.candidates().len();
                if replication_factor < 1 || replication_factor as usize > alive {
                    return refuse(ErrorCode::InvalidReplicationFactor, format!("replication factor {replication_factor} is invalid: {alive} broker(s) available"));
                }
                let seed = u64::from_le_bytes(id.as_bytes()[..8].try_into().expect("8 bytes"));
                placement::place(
                    &self.candidates(),
                    0,
                    partitions,
                    replication_factor as usize,
                    seed,
                )
                .expect("checked broker count")
            }
        };
        let partitions = replicas
            .into_iter()
            .enumerate()
            .map(|(index, replicas)| self.new_partition(index as i32, replicas))
            .collect();
        self.topics.insert(
            name.to_owned(),
            Arc::new(TopicImage {
                name: name.to_owned(),
                id,
                configs: configs.clone(),
                partitions,
            }),
        );
        CommandResult::TopicCreated { id }
    }

    fn create_partitions(
        &mut self,
        id: Uuid,
        count: i32,
        assignments: Option<&[Vec<i32>]>,
    ) -> CommandResult {
        let Some(name) = self.topic_name_by_id(id) else {
            return refuse(ErrorCode::UnknownTopicId, format!("no topic has id {id}"));
        };
        let topic = &self.topics[&name];
        let current = topic.partitions.len() as i32;
        if count <= current {
            return refuse(
                ErrorCode::InvalidPartitions,
                format!(
                    "topic '{name}' has {current} partitions; the new count {count} must be larger"
                ),
            );
        }
        let replication_factor = topic.partitions.first().map_or(1, |p| p.replicas.len());
        let replicas = match assignments {
            Some(assignments) => {
                if assignments.len() as i32 != count - current {
                    return refuse(
                        ErrorCode::InvalidReplicaAssignment,
                        format!(
                            "{} assignments given for {} new partitions",
                            assignments.len(),
                            count - current
                        ),
                    );
                }
                if let Err(error) = self.validate_assignments(assignments, Some(replication_factor))
                {
                    return CommandResult::Refused(error);
                }
                assignments.to_vec()
            }
            None => {
                let seed = u64::from_le_bytes(id.as_bytes()[..8].try_into().expect("8 bytes"));
                match placement::place(
                    &self.candidates(),
                    current,
                    count - current,
                    replication_factor,
                    seed,
                ) {
                    Some(replicas) => replicas,
                    None => {
                        return refuse(
                            ErrorCode::InvalidReplicationFactor,
                            "too few brokers are available for the topic's replication factor",
                        )
                    }
                }
            }
        };
        let added: Vec<PartitionState> = replicas
            .into_iter()
            .enumerate()
            .map(|(i, replicas)| self.new_partition(current + i as i32, replicas))
            .collect();
        Arc::make_mut(self.topics.get_mut(&name).expect("exists"))
            .partitions
            .extend(added);
        CommandResult::Done
    }

    fn alter_isr(
        &mut self,
        topic: Uuid,
        index: i32,
        leader: i32,
        leader_epoch: i32,
        isr: &[i32],
    ) -> CommandResult {
        let Some(name) = self.topic_name_by_id(topic) else {
            return refuse(
                ErrorCode::UnknownTopicId,
                format!("no topic has id {topic}"),
            );
        };
        let alive: Vec<i32> = self
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.id)
            .collect();
        let Some(partition) = Arc::make_mut(self.topics.get_mut(&name).expect("exists"))
            .partitions
            .get_mut(index as usize)
        else {
            return refuse(
                ErrorCode::UnknownTopicOrPartition,
                format!("{name} has no partition {index}"),
            );
        };
        if partition.leader != leader {
            return refuse(
                ErrorCode::NotLeaderOrFollower,
                format!("broker {leader} does not lead {name}-{index}"),
            );
        }
        if partition.leader_epoch != leader_epoch {
            return refuse(
                ErrorCode::FencedLeaderEpoch,
                format!(
                    "leader epoch {leader_epoch} is not the current {}",
                    partition.leader_epoch
                ),
            );
        }
        if !isr.contains(&leader) || isr.iter().any(|r| !partition.replicas.contains(r)) {
            return refuse(
                ErrorCode::InvalidRequest,
                format!("ISR {isr:?} must contain the leader and only replicas"),
            );
        }
        // A fenced broker may leave the ISR but never join it.
        if isr
            .iter()
            .any(|r| !alive.contains(r) && !partition.isr.contains(r))
        {
            return refuse(
                ErrorCode::InvalidRequest,
                format!("ISR {isr:?} names a fenced broker"),
            );
        }
        partition.isr = isr.to_vec();
        partition.partition_epoch += 1;
        // The replica that caught up may be the last a reassignment waited for.
        partition.complete_reassignment(|broker| alive.contains(&broker));
        CommandResult::Done
    }
}
