//! The leader's ISR upkeep, as Kafka's `Partition.maybeShrinkIsr` and AlterPartition: a
//! periodic pass asks each partition this node leads to drop followers that have not caught up
//! for `replica.lag.time.max.ms`, and the proposer takes the ISR changes partitions send
//! (shrinks from that pass, rejoins from followers' fetches) to the metadata quorum.
//!
//! Partitions never call the quorum themselves: they send an [`IsrProposal`] on a channel
//! (at most one in flight each), and the proposer reports back with
//! `Partition::isr_proposal_finished` once the quorum has answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_metadata::MetadataCommand;
use strom_partition::{IsrProposal, ProposalSender};
use tokio::sync::mpsc;

use crate::Broker;

/// The shortest period of the ISR pass, whatever `replica.lag.time.max.ms` says.
const ISR_CHECK_PERIOD_MIN: Duration = Duration::from_millis(50);

/// The channel partitions send their ISR proposals on.
pub fn proposal_channel() -> (ProposalSender, mpsc::UnboundedReceiver<IsrProposal>) {
    mpsc::unbounded_channel()
}

/// Proposes every ISR change a partition sends, each in a task of its own so one slow
/// proposal does not hold back another partition's.
pub async fn run_proposer(
    broker: Arc<Broker>,
    mut proposals: mpsc::UnboundedReceiver<IsrProposal>,
) {
    while let Some(proposal) = proposals.recv().await {
        let broker = broker.clone();
        tokio::spawn(async move { propose(&broker, proposal).await });
    }
}

async fn propose(broker: &Arc<Broker>, proposal: IsrProposal) {
    let command = MetadataCommand::AlterIsr {
        topic: proposal.topic_id,
        partition: proposal.partition.0,
        leader: proposal.leader.0,
        leader_epoch: proposal.leader_epoch.0,
        isr: proposal.isr.iter().map(|id| id.0).collect(),
    };
    if let Err(error) = crate::cluster::propose(broker, command).await {
        tracing::warn!(topic_id = %proposal.topic_id, partition = %proposal.partition, %error, "ISR change refused");
    }
    if let Some(partition) = broker
        .topics
        .partition_by_id(proposal.topic_id, proposal.partition)
    {
        partition.isr_proposal_finished();
    }
}

/// Every quarter of `replica.lag.time.max.ms`, asks every partition this node leads to drop
/// its lagging followers from the ISR.
pub async fn run_maintenance(broker: Arc<Broker>) {
    let lag_max = Duration::from_millis(broker.config.cluster.replica_lag_time_max_ms);
    let mut ticker = tokio::time::interval((lag_max / 4).max(ISR_CHECK_PERIOD_MIN));
    loop {
        ticker.tick().await;
        let now = Instant::now();
        for partition in broker.topics.partitions() {
            partition.shrink_isr_if_lagging(now, lag_max);
        }
    }
}
