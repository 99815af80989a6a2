//! Consumer groups: list, describe with per-partition lag (as `strom group describe` computes
//! it: the committed offset against ListOffsets' latest), reset offsets of an empty group with
//! the admin commit, delete.

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use strom_client::{
    Client, CommittedOffset, GroupDescription, GroupState, OffsetSpec, PartitionOffset,
    TopicPartition,
};
use strom_types::{Offset, PartitionIndex, TimestampMs};

use super::topics::existing_topic;
use super::{body, connected, ApiError, ApiResult};
use crate::state::AdminState;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/groups", get(list))
        .route("/groups/{id}", get(describe).delete(delete))
        .route("/groups/{id}/reset-offsets", post(reset_offsets))
}

async fn list(State(state): State<AdminState>) -> ApiResult {
    let (_, client) = connected(&state).await?;
    let client = &*client;
    let groups: Vec<Value> = (client.list_groups(&[]).await?.into_iter())
        .map(|group| {
            json!({
                "group_id": group.group_id,
                "state": group.state.map(|state| state.to_string()),
                "protocol_type": group.protocol_type,
            })
        })
        .collect();
    Ok(Json(json!({ "groups": groups })))
}

/// A group's description and committed offsets, or a 404 for a group the coordinator does not
/// know and that has committed nothing.
async fn existing_group(
    client: &Client,
    group: &str,
) -> Result<(GroupDescription, Vec<CommittedOffset>), ApiError> {
    let description = (client.describe_groups(&[group]).await?.pop())
        .ok_or_else(|| ApiError::not_found(format!("group '{group}' was not described")))?;
    let committed = client.offset_fetch(group, None).await?;
    let unknown = description.state == GroupState::Dead
        && description.members.is_empty()
        && committed.is_empty();
    if unknown {
        return Err(ApiError::not_found(format!(
            "group '{group}' does not exist"
        )));
    }
    Ok((description, committed))
}

async fn describe(State(state): State<AdminState>, Path(group): Path<String>) -> ApiResult {
    let (_, client) = connected(&state).await?;
    let client = &*client;
    let (description, committed) = existing_group(client, &group).await?;
    // Every partition with a committed offset or an owner.
    let mut rows: BTreeMap<TopicPartition, (Option<Offset>, Option<&str>)> = BTreeMap::new();
    for offset in committed.iter().filter(|offset| offset.offset.is_some()) {
        rows.entry(offset.partition.clone()).or_default().0 = offset.offset;
    }
    for member in &description.members {
        for assigned in member.assignment.iter().flatten() {
            for &partition in &assigned.partitions {
                let key = TopicPartition::new(assigned.topic.clone(), partition);
                rows.entry(key).or_default().1 = Some(member.member_id.as_str());
            }
        }
    }
    let mut offsets = Vec::with_capacity(rows.len());
    let mut total_lag = 0;
    for (partition, (committed, owner)) in &rows {
        let end = end_offset(client, partition).await;
        let lag = committed
            .zip(end)
            .map(|(committed, end)| end.minus(committed));
        total_lag += lag.unwrap_or(0);
        offsets.push(json!({
            "topic": partition.topic,
            "partition": partition.partition.0,
            "committed_offset": committed.map(|offset| offset.0),
            "end_offset": end.map(|offset| offset.0),
            "lag": lag,
            "member_id": owner,
        }));
    }
    let members: Vec<Value> = (description.members.iter())
        .map(|member| {
            let assignment: Vec<Value> = (member.assignment.iter().flatten())
                .map(|assigned| {
                    let partitions: Vec<i32> = assigned.partitions.iter().map(|p| p.0).collect();
                    json!({ "topic": assigned.topic, "partitions": partitions })
                })
                .collect();
            json!({
                "member_id": member.member_id,
                "instance_id": member.instance_id,
                "client_id": member.client_id,
                "client_host": member.client_host,
                "assignment": assignment,
            })
        })
        .collect();
    Ok(Json(json!({
        "group_id": description.group_id,
        "type": description.group_type.to_string(),
        "state": description.state.to_string(),
        "protocol_type": description.protocol_type,
        "protocol": description.protocol,
        "members": members,
        "offsets": offsets,
        "total_lag": total_lag,
    })))
}

/// A partition's end offset (its high watermark), `None` when it cannot be read now.
async fn end_offset(client: &Client, partition: &TopicPartition) -> Option<Offset> {
    client
        .list_offsets(&partition.topic, partition.partition, OffsetSpec::Latest)
        .await
        .map_err(|error| tracing::debug!(%error, %partition, "list offsets failed"))
        .ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reset {
    topic: String,
    to: String,
    offset: Option<i64>,
    timestamp_ms: Option<i64>,
    /// Every partition of the topic when left out.
    partitions: Option<Vec<i32>>,
}

/// Where to move a group's offsets.
#[derive(Debug, Clone, Copy)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

impl Reset {
    fn target(&self) -> Result<Target, ApiError> {
        let needs = |what: &str| ApiError::bad_request(format!("to={} needs {what}", self.to));
        match self.to.as_str() {
            "earliest" => Ok(Target::Earliest),
            "latest" => Ok(Target::Latest),
            "offset" => Ok(Target::Offset(self.offset.ok_or_else(|| needs("offset"))?)),
            "timestamp" => Ok(Target::Timestamp(
                self.timestamp_ms.ok_or_else(|| needs("timestamp_ms"))?,
            )),
            other => Err(ApiError::bad_request(format!(
                "to must be earliest, latest, offset or timestamp, not '{other}'"
            ))),
        }
    }
}

async fn reset_offsets(
    State(state): State<AdminState>,
    Path(group): Path<String>,
    reset: Result<Json<Reset>, JsonRejection>,
) -> ApiResult {
    let reset = body(reset)?;
    let target = reset.target()?;
    let (_, client) = connected(&state).await?;
    let client = &*client;
    let topic = existing_topic(client, &reset.topic).await?;
    let partitions: Vec<PartitionIndex> = match &reset.partitions {
        None => topic.partitions.iter().map(|p| p.index).collect(),
        Some(wanted) => {
            let missing = wanted
                .iter()
                .find(|&&p| topic.partition(PartitionIndex(p)).is_none());
            if let Some(missing) = missing {
                return Err(ApiError::not_found(format!(
                    "topic '{}' has no partition {missing}",
                    reset.topic
                )));
            }
            wanted.iter().map(|&p| PartitionIndex(p)).collect()
        }
    };
    let description = (client.describe_groups(&[group.as_str()]).await?.pop())
        .ok_or_else(|| ApiError::not_found(format!("group '{group}' was not described")))?;
    if !description.members.is_empty() {
        return Err(ApiError::conflict(format!(
            "group '{group}' has {} active member(s); offsets can be reset only while a group \
             is empty: stop its consumers first",
            description.members.len()
        )));
    }
    let mut offsets = Vec::with_capacity(partitions.len());
    for partition in partitions {
        let offset = new_offset(client, &reset.topic, partition, target).await?;
        offsets.push(PartitionOffset {
            partition: TopicPartition::new(reset.topic.clone(), partition),
            offset,
        });
    }
    client.offset_commit(&group, &offsets).await?;
    let answer: Vec<Value> = (offsets.iter())
        .map(|o| json!({ "partition": o.partition.partition.0, "offset": o.offset.0 }))
        .collect();
    Ok(Json(
        json!({ "group_id": group, "topic": reset.topic, "offsets": answer }),
    ))
}

/// The offset `target` means for a partition, within its log start and end.
async fn new_offset(
    client: &Client,
    topic: &str,
    partition: PartitionIndex,
    target: Target,
) -> Result<Offset, ApiError> {
    let earliest = client
        .list_offsets(topic, partition, OffsetSpec::Earliest)
        .await?;
    let latest = client
        .list_offsets(topic, partition, OffsetSpec::Latest)
        .await?;
    let offset = match target {
        Target::Earliest => earliest,
        Target::Latest => latest,
        Target::Offset(offset) => Offset(offset.clamp(earliest.0, latest.0)),
        Target::Timestamp(timestamp) => {
            let spec = OffsetSpec::Timestamp(TimestampMs(timestamp));
            let found = client.list_offsets(topic, partition, spec).await?;
            // No record that recent: the end, as Kafka's tool does.
            if found.0 < 0 {
                latest
            } else {
                found
            }
        }
    };
    Ok(offset)
}

async fn delete(State(state): State<AdminState>, Path(group): Path<String>) -> ApiResult {
    let (_, client) = connected(&state).await?;
    let client = &*client;
    client.delete_groups(&[group.as_str()]).await?;
    Ok(Json(json!({ "deleted": group })))
}
