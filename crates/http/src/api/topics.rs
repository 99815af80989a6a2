//! Topics: list (with a name search), create, describe (partitions with offsets and sizes,
//! configs with their sources), change configs, delete.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use strom_client::{Client, ConfigChange, ConfigEntry, ConfigResource, OffsetSpec, TopicMetadata};
use strom_types::{BrokerId, ErrorCode, PartitionIndex};

use super::{body, connected, query, ApiError, ApiResult};
use crate::state::AdminState;

/// Most partitions a topic's description lists (each costs two ListOffsets).
const PARTITIONS_DESCRIBED_MAX: usize = 1_000;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/topics", get(list).post(create))
        .route("/topics/{name}", get(describe).delete(delete))
        .route("/topics/{name}/configs", put(alter_configs))
}

#[derive(Deserialize)]
struct Search {
    search: Option<String>,
}

async fn list(
    State(state): State<AdminState>,
    search: Result<Query<Search>, QueryRejection>,
) -> ApiResult {
    let search = query(search)?.search.unwrap_or_default().to_lowercase();
    let (_, client) = connected(&state).await?;
    let client = &*client;
    let metadata = client.metadata(None).await?;
    let mut topics: Vec<&TopicMetadata> = (metadata.topics.iter())
        .filter(|topic| topic.error_code == 0)
        .filter(|topic| topic.name.to_lowercase().contains(&search))
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let topics: Vec<Value> = topics.into_iter().map(summary).collect();
    Ok(Json(json!({ "topics": topics })))
}

fn summary(topic: &TopicMetadata) -> Value {
    let partitions = &topic.partitions;
    let replication_factor = partitions.first().map_or(0, |p| p.replicas.len());
    let under_replicated = (partitions.iter())
        .filter(|p| p.isr.len() < p.replicas.len())
        .count();
    let offline = partitions.iter().filter(|p| p.leader.is_none()).count();
    json!({
        "name": topic.name,
        "internal": topic.is_internal,
        "partitions": partitions.len(),
        "replication_factor": replication_factor,
        "under_replicated": under_replicated,
        "offline": offline,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTopic {
    name: String,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    #[serde(default)]
    configs: BTreeMap<String, Value>,
}

async fn create(
    State(state): State<AdminState>,
    new_topic: Result<Json<NewTopic>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new_topic = body(new_topic)?;
    let name = new_topic.name.trim();
    if name.is_empty() {
        return Err(ApiError::bad_request("a topic needs a name"));
    }
    let partitions = new_topic.partitions.unwrap_or(-1);
    if partitions == 0 || partitions < -1 {
        return Err(ApiError::bad_request(format!(
            "partitions must be at least 1 (or left out for the broker's default), not {partitions}"
        )));
    }
    let mut configs = Vec::with_capacity(new_topic.configs.len());
    for (key, value) in new_topic.configs {
        let value = config_text(&key, &value)?
            .ok_or_else(|| ApiError::bad_request(format!("config '{key}' has no value")))?;
        configs.push((key, value));
    }
    let (_, client) = connected(&state).await?;
    let client = &*client;
    let factor = new_topic.replication_factor.unwrap_or(-1);
    let created = client
        .create_topics(name, partitions, factor, configs)
        .await?;
    let answer = json!({
        "name": created.name,
        "partitions": created.partitions,
        "replication_factor": created.replication_factor,
    });
    Ok((StatusCode::CREATED, Json(answer)))
}

/// A config value from JSON: a string, or a number or boolean written as Kafka would; `None`
/// for null (back to the default).
fn config_text(key: &str, value: &Value) -> Result<Option<String>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        Value::Number(number) => Ok(Some(number.to_string())),
        Value::Bool(flag) => Ok(Some(flag.to_string())),
        _ => Err(ApiError::bad_request(format!(
            "config '{key}': a value is a string, a number, a boolean or null, not {value}"
        ))),
    }
}

async fn delete(State(state): State<AdminState>, Path(name): Path<String>) -> ApiResult {
    let (_, client) = connected(&state).await?;
    let client = &*client;
    client.delete_topics(&[name.as_str()]).await?;
    Ok(Json(json!({ "deleted": name })))
}

async fn describe(State(state): State<AdminState>, Path(name): Path<String>) -> ApiResult {
    let (_, client) = connected(&state).await?;
    let client = &*client;
    let topic = existing_topic(client, &name).await?;
    let sizes = partition_sizes(client, &topic).await;
    let mut partitions = Vec::new();
    for partition in topic.partitions.iter().take(PARTITIONS_DESCRIBED_MAX) {
        let offsets = match partition.leader {
            Some(_) => Some(offset_range(client, &name, partition.index).await?),
            None => None,
        };
        let ids = |ids: &[BrokerId]| ids.iter().map(|id| id.0).collect::<Vec<_>>();
        partitions.push(json!({
            "partition": partition.index.0,
            "leader": partition.leader.map(|id| id.0),
            "leader_epoch": partition.leader_epoch.0,
            "replicas": ids(&partition.replicas),
            "isr": ids(&partition.isr),
            "offline_replicas": ids(&partition.offline_replicas),
            "log_start_offset": offsets.map(|(start, _)| start),
            "high_watermark": offsets.map(|(_, end)| end),
            "size_bytes": sizes.get(&partition.index),
        }));
    }
    let configs = client.describe_configs(&name).await?;
    Ok(Json(json!({
        "name": topic.name,
        "internal": topic.is_internal,
        "partition_count": topic.partitions.len(),
        "partitions": partitions,
        "configs": configs_json(&configs),
    })))
}

/// The topic's metadata, or a 404 that says the topic does not exist.
pub(crate) async fn existing_topic(client: &Client, name: &str) -> Result<TopicMetadata, ApiError> {
    let metadata = client.metadata(Some(&[name])).await?;
    let topic = metadata.topic(name).cloned();
    match topic {
        Some(topic) if topic.error_code == 0 => Ok(topic),
        Some(topic) if topic.error_code != ErrorCode::UnknownTopicOrPartition.code() => Err(
            strom_client::ClientError::from_code(topic.error_code, None, Some(name), None).into(),
        ),
        _ => Err(ApiError::not_found(format!(
            "topic '{name}' does not exist"
        ))),
    }
}

/// The log start offset and the high watermark of a partition.
pub(crate) async fn offset_range(
    client: &Client,
    topic: &str,
    partition: PartitionIndex,
) -> Result<(i64, i64), ApiError> {
    let start = client
        .list_offsets(topic, partition, OffsetSpec::Earliest)
        .await?;
    let end = client
        .list_offsets(topic, partition, OffsetSpec::Latest)
        .await?;
    Ok((start.0, end.0))
}

/// Each partition's size on its leader (DescribeLogDirs to each leader); partitions whose
/// leader could not be asked are left out, the page shows no size for them.
async fn partition_sizes(client: &Client, topic: &TopicMetadata) -> BTreeMap<PartitionIndex, i64> {
    let leaders: BTreeSet<BrokerId> = topic.partitions.iter().filter_map(|p| p.leader).collect();
    let mut sizes = BTreeMap::new();
    for leader in leaders {
        let dirs = match client.describe_log_dirs(leader, Some(&[&topic.name])).await {
            Ok(dirs) => dirs,
            Err(error) => {
                tracing::debug!(%error, broker = leader.0, "DescribeLogDirs for the console failed");
                continue;
            }
        };
        let led_here =
            |index: PartitionIndex| topic.partition(index).and_then(|p| p.leader) == Some(leader);
        for partition in dirs.iter().flat_map(|dir| &dir.partitions) {
            if partition.topic == topic.name && led_here(partition.partition) {
                sizes.insert(partition.partition, partition.size_bytes);
            }
        }
    }
    sizes
}

fn configs_json(configs: &[ConfigEntry]) -> Vec<Value> {
    (configs.iter())
        .map(|config| {
            json!({
                "name": config.name,
                "value": config.value,
                "source": config.source.kafka_name(),
                "read_only": config.read_only,
                "sensitive": config.is_sensitive,
            })
        })
        .collect()
}

async fn alter_configs(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    changes: Result<Json<BTreeMap<String, Value>>, JsonRejection>,
) -> ApiResult {
    let changes = body(changes)?;
    if changes.is_empty() {
        return Err(ApiError::bad_request(
            "no configs to change: send {\"key\": \"value\"} (null sets a key back to its default)",
        ));
    }
    let changes = (changes.iter())
        .map(|(key, value)| {
            Ok(match config_text(key, value)? {
                Some(text) => ConfigChange::Set(key.clone(), text),
                None => ConfigChange::Delete(key.clone()),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let (_, client) = connected(&state).await?;
    let client = &*client;
    existing_topic(client, &name).await?;
    let resource = ConfigResource::Topic(name.clone());
    client.alter_configs(&resource, &changes, false).await?;
    let configs = client.describe_configs(&name).await?;
    Ok(Json(json!({ "configs": configs_json(&configs) })))
}
