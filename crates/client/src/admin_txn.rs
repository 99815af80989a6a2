//! Transaction administration, after Kafka's `kafka-transactions.sh`: list the transactions of
//! every coordinator (ListTransactions to each broker), describe one (DescribeTransactions to
//! its coordinator), the producers of a partition (DescribeProducers to its leader), and abort
//! a hanging transaction by writing its ABORT marker (WriteTxnMarkers to the partition's
//! leader, what `kafka-transactions.sh abort` does).

use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, ProducerId,
    TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use strom_types::PartitionIndex;

use crate::error::{ClientError, Subject};
use crate::Client;

/// One transaction as ListTransactions shows it, with the broker coordinating it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: String,
    pub coordinator: i32,
}

/// A transaction as DescribeTransactions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    pub transactional_id: String,
    pub coordinator: i32,
    pub state: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    /// -1 when no transaction is open.
    pub start_time_ms: i64,
    /// The partitions in the transaction, by topic.
    pub topics: Vec<(String, Vec<i32>)>,
}

/// A producer a partition remembers (DescribeProducers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerListing {
    pub producer_id: i64,
    pub producer_epoch: i32,
    pub last_sequence: i32,
    pub last_timestamp_ms: i64,
    pub coordinator_epoch: i32,
    /// Where its open transaction began in the partition; -1 when none is open.
    pub current_txn_start_offset: i64,
}

/// Which transaction's marker to write, as `kafka-transactions.sh abort` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortSpec {
    pub topic: String,
    pub partition: PartitionIndex,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
}

impl Client {
    /// The transactions of every broker's coordinator, in any of `states` (all if empty) and of
    /// any of `producer_ids` (all if empty), sorted by transactional id.
    pub async fn list_transactions(
        &self,
        states: &[String],
        producer_ids: &[i64],
    ) -> Result<Vec<TransactionListing>, ClientError> {
        let metadata = self.metadata(Some(&[])).await?;
        let mut listed = Vec::new();
        for broker in metadata.brokers {
            let connection = self.broker_connection(broker.id).await?;
            let version = connection.version::<ListTransactionsRequest>()?;
            let request = ListTransactionsRequest::default()
                .with_state_filters(
                    states
                        .iter()
                        .map(|s| StrBytes::from_string(s.clone()))
                        .collect(),
                )
                .with_producer_id_filters(producer_ids.iter().map(|id| ProducerId(*id)).collect())
                .with_duration_filter(-1);
            let response = connection
                .send_versioned(&request, version, self.request_timeout_ms())
                .await?;
            ClientError::check(response.error_code, None, Subject::default())?;
            if let Some(unknown) = response.unknown_state_filters.first() {
                return Err(ClientError::InvalidArgument(format!(
                    "unknown transaction state '{}' (Empty, Ongoing, PrepareCommit, \
                     PrepareAbort, CompleteCommit, CompleteAbort, PrepareEpochFence, Dead)",
                    unknown.as_str()
                )));
            }
            listed.extend(response.transaction_states.into_iter().map(|state| {
                TransactionListing {
                    transactional_id: state.transactional_id.as_str().to_owned(),
                    producer_id: state.producer_id.0,
                    state: state.transaction_state.as_str().to_owned(),
                    coordinator: broker.id.0,
                }
            }));
        }
        listed.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(listed)
    }

    /// One transactional id's transaction, from its coordinator.
    pub async fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<TransactionDescription, ClientError> {
        let coordinator = self.find_transaction_coordinator(transactional_id).await?;
        let id = coordinator.id;
        let connection = self.node_connection(coordinator).await?;
        let version = connection.version::<DescribeTransactionsRequest>()?;
        let request =
            DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(
                StrBytes::from_string(transactional_id.to_owned()),
            )]);
        let response = connection
            .send_versioned(&request, version, self.request_timeout_ms())
            .await?;
        let state = response
            .transaction_states
            .into_iter()
            .find(|state| state.transactional_id.as_str() == transactional_id)
            .ok_or_else(|| ClientError::Protocol {
                address: connection.address().to_string(),
                detail: format!("DescribeTransactions did not answer for '{transactional_id}'"),
            })?;
        ClientError::check(state.error_code, None, Subject::default())?;
        Ok(TransactionDescription {
            transactional_id: transactional_id.to_owned(),
            coordinator: id.0,
            state: state.transaction_state.as_str().to_owned(),
            producer_id: state.producer_id.0,
            producer_epoch: state.producer_epoch,
            timeout_ms: state.transaction_timeout_ms,
            start_time_ms: state.transaction_start_time_ms,
            topics: state
                .topics
                .into_iter()
                .map(|topic| (topic.topic.as_str().to_owned(), topic.partitions))
                .collect(),
        })
    }

    /// The producers the leader of a partition remembers.
    pub async fn describe_producers(
        &self,
        topic: &str,
        partition: PartitionIndex,
    ) -> Result<Vec<ProducerListing>, ClientError> {
        let connection = self.leader_connection(topic, partition).await?;
        let version = connection.version::<DescribeProducersRequest>()?;
        let request = DescribeProducersRequest::default()
            .with_topics(vec![TopicRequest::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_indexes(vec![partition.0])]);
        let response = connection
            .send_versioned(&request, version, self.request_timeout_ms())
            .await?;
        let answered = response
            .topics
            .into_iter()
            .flat_map(|topic| topic.partitions)
            .find(|answer| answer.partition_index == partition.0)
            .ok_or_else(|| ClientError::Protocol {
                address: connection.address().to_string(),
                detail: format!("DescribeProducers did not answer for {topic}-{partition}"),
            })?;
        ClientError::check(
            answered.error_code,
            answered.error_message.as_deref(),
            Subject::partition(topic, partition),
        )?;
        Ok(answered
            .active_producers
            .into_iter()
            .map(|producer| ProducerListing {
                producer_id: producer.producer_id.0,
                producer_epoch: producer.producer_epoch,
                last_sequence: producer.last_sequence,
                last_timestamp_ms: producer.last_timestamp,
                coordinator_epoch: producer.coordinator_epoch,
                current_txn_start_offset: producer.current_txn_start_offset,
            })
            .collect())
    }

    /// Writes an ABORT marker for a producer's transaction into one partition (a hanging
    /// transaction whose coordinator will never finish it), through the partition's leader.
    pub async fn abort_transaction(&self, spec: &AbortSpec) -> Result<(), ClientError> {
        let connection = self.leader_connection(&spec.topic, spec.partition).await?;
        let version = connection.version::<WriteTxnMarkersRequest>()?;
        let marker = WritableTxnMarker::default()
            .with_producer_id(ProducerId(spec.producer_id))
            .with_producer_epoch(spec.producer_epoch)
            .with_transaction_result(false)
            .with_coordinator_epoch(spec.coordinator_epoch)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(spec.topic.clone())))
                .with_partition_indexes(vec![spec.partition.0])]);
        let request = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
        let response = connection
            .send_versioned(&request, version, self.request_timeout_ms())
            .await?;
        let error_code = response
            .markers
            .iter()
            .flat_map(|marker| &marker.topics)
            .flat_map(|topic| &topic.partitions)
            .find(|answer| answer.partition_index == spec.partition.0)
            .map(|answer| answer.error_code)
            .ok_or_else(|| ClientError::Protocol {
                address: connection.address().to_string(),
                detail: "WriteTxnMarkers did not answer for the partition".to_owned(),
            })?;
        ClientError::check(
            error_code,
            None,
            Subject::partition(&spec.topic, spec.partition),
        )
    }
}
