//! A small async Kafka client, used by Strom's CLI, its benchmark and its tests.
//!
//! A tour, from the wire up:
//! - [`frame`] encodes request frames (length, request header, body) and decodes response
//!   frames with the `kafka-protocol` crate's message types; no I/O.
//! - [`versions`] picks, for each API, the highest version both the broker (from its
//!   ApiVersions answer) and this client speak; no I/O.
//! - [`connection`] is one TCP connection: it negotiates versions, then pipelines requests
//!   (a writer task, a reader task matching responses to callers by correlation id) and
//!   bounds response size, in-flight requests and waiting time.
//! - [`security`] says how a connection secures itself (`security.protocol`, TLS files, SASL
//!   login) and reads a `client.properties` file (`--command-config`) into that; `tls` makes
//!   the rustls configuration (once per process and settings) and runs the handshake, `sasl`
//!   logs in (PLAIN, SCRAM, OAUTHBEARER) right after ApiVersions.
//! - [`metadata`] and [`records`] turn Metadata responses and record batches into plain
//!   types; [`partitioner`] is Kafka's default key partitioner.
//! - [`client`] ties these together: bootstrap, metadata cache, routing of produce, fetch
//!   and list-offsets to each partition's leader, bounded retries, and the admin calls.
//! - [`cluster`] describes the cluster: brokers, controller and the metadata quorum.
//! - [`admin_configs`] adds the config administration calls: describe and change the
//!   configs of a topic, a broker, every broker and a broker's loggers; add partitions.
//! - [`admin_quotas`] adds the client quota calls (KIP-546): describe and alter the quotas
//!   of users, client ids and their defaults.
//! - [`admin_security`] adds the security administration calls: ACLs (create, describe,
//!   delete) and users' SCRAM credentials (describe, set, delete; the password is salted and
//!   hashed here).
//! - [`admin_records`] adds DeleteRecords (to each partition's leader) and DescribeLogDirs
//!   (to one broker).
//! - [`admin_txn`] adds the transaction administration calls (list, describe, producers of a
//!   partition, abort), after `kafka-transactions.sh`.
//! - [`reassignments`] adds partition reassignment (KIP-455: start, cancel, list moves) and
//!   UnregisterBroker.
//! - [`elections`] adds ElectLeaders: preferred or unclean leader elections, one outcome per
//!   partition.
//! - [`groups`] adds the consumer-group calls, routed to each group's coordinator: list,
//!   describe (with decoded assignments), committed offsets, the admin commit, deletes.
//! - [`transactions`] is the producer's side of idempotence and transactions: producer ids,
//!   sequences, and a [`TransactionalProducer`] that talks to its transaction coordinator
//!   (FindCoordinator, InitProducerId, AddPartitionsToTxn, EndTxn) for a caller that builds
//!   its own batches.
//!
//! Every error is a [`ClientError`]; those the broker reports carry the Kafka error's name.
//! Every bound is in [`limits`].
//!
//! The unit tests (`client_tests`, `group_tests`, `security_tests`, `admin_security_tests`) run
//! against `fake_broker`, an in-process broker over in-memory topics whose `groups` child
//! answers the group APIs and whose `security` child the ACL and SCRAM APIs; both can be told
//! to misbehave.

pub mod admin_configs;
pub mod admin_quotas;
pub mod admin_records;
pub mod admin_security;
pub mod admin_txn;
pub mod client;
pub mod cluster;
pub mod connection;
pub mod elections;
pub mod error;
pub mod frame;
pub mod groups;
pub mod limits;
pub mod metadata;
pub mod partitioner;
pub mod reassignments;
pub mod records;
pub mod security;
mod tls;
pub mod transactions;
pub mod versions;

#[cfg(test)]
mod admin_security_tests;
#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod fake_broker;
#[cfg(test)]
mod group_tests;
#[cfg(test)]
mod security_tests;

pub use admin_configs::{ConfigChange, ConfigResource};
pub use admin_quotas::{ClientQuotas, QuotaEntity, QuotaMatch};
pub use admin_security::{
    AclDeletion, AclFilter, ScramCredentialInfo, ScramDeletion, ScramUpsertion, UserAlteration,
    UserScramCredentials,
};
pub use admin_txn::{AbortSpec, ProducerListing, TransactionDescription, TransactionListing};
pub use client::{
    Acks, Client, ClientConfig, ConfigEntry, ConfigSource, CreatedTopic, FetchOptions,
    FetchPosition, FetchedPartition, OffsetSpec,
};
pub use cluster::{ClusterDescription, QuorumDescription, QuorumReplica};
pub use connection::{Connection, ConnectionOptions};
pub use elections::{ElectionOutcome, ElectionType};
pub use error::{ClientError, PartitionOutcome};
pub use groups::{
    decode_consumer_assignment, CommittedOffset, GroupDescription, GroupListing, GroupMember,
    GroupState, GroupType, PartitionOffset, TopicPartition, TopicPartitions,
    CONSUMER_PROTOCOL_TYPE,
};
pub use kafka_protocol::records::{Compression, TimestampType};
pub use metadata::{BrokerMetadata, ClusterMetadata, PartitionMetadata, TopicMetadata};
pub use partitioner::partition_for_key;
pub use reassignments::{OngoingReassignment, Reassignment, ReassignmentOutcome};
pub use records::{encode_batch, FetchedRecord, Header, ProduceRecord};
pub use security::{
    CommandConfig, SaslConfig, SecurityConfig, SecurityConfigError, SecurityProtocol, TlsConfig,
};
pub use strom_security::scram::ITERATIONS_DEFAULT as SCRAM_ITERATIONS_DEFAULT;
pub use transactions::{init_producer_id, next_sequence, ProducerIdentity, TransactionalProducer};
