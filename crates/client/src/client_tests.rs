//! The client against the in-process fake broker.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::MetadataRequest;
use strom_types::{ErrorCode, Offset, PartitionIndex};

use crate::fake_broker::{FakeBroker, FakeState};
use crate::{
    Acks, Client, ClientConfig, ClientError, Compression, ConfigSource, Connection,
    ConnectionOptions, FetchOptions, FetchPosition, OffsetSpec, ProduceRecord,
};

const API_VERSIONS: i16 = 18;
const METADATA: i16 = 3;
const PRODUCE: i16 = 0;

fn quick_config() -> ClientConfig {
    ClientConfig {
        retry_backoff_ms: 1,
        retry_backoff_ms_max: 2,
        ..ClientConfig::default()
    }
}

async fn client_for(broker: &FakeBroker) -> Client {
    Client::connect(&broker.address, quick_config())
        .await
        .unwrap()
}

fn records(values: &[&str]) -> Vec<ProduceRecord> {
    values
        .iter()
        .map(|value| {
            ProduceRecord::new(
                Some(Bytes::from(format!("key-{value}"))),
                Some(Bytes::from(value.to_string())),
            )
        })
        .collect()
}

fn values(fetched: &crate::FetchedPartition) -> Vec<String> {
    fetched
        .records
        .iter()
        .map(|record| String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn connecting_negotiates_versions_with_api_versions_v3() {
    let broker = FakeBroker::start(FakeState::default()).await;
    let connection = Connection::connect(&broker.address, &ConnectionOptions::default())
        .await
        .unwrap();
    assert_eq!(connection.version::<MetadataRequest>().unwrap(), 12);
    assert_eq!(broker.state().requests, vec![(API_VERSIONS, 3)]);
    assert!(!connection.is_closed());
}

#[tokio::test]
async fn an_old_broker_answers_api_versions_in_v0_and_is_understood() {
    let state = FakeState {
        api_versions_version_max: 2,
        ..FakeState::default()
    };
    let broker = FakeBroker::start(state).await;
    let connection = Connection::connect(&broker.address, &ConnectionOptions::default())
        .await
        .unwrap();
    assert_eq!(
        connection
            .versions()
            .broker_range(API_VERSIONS)
            .unwrap()
            .max,
        3
    );
    let response = connection
        .send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap();
    assert_eq!(response.brokers.len(), 1);
    assert_eq!(
        broker.state().requests,
        vec![(API_VERSIONS, 3), (METADATA, 12)]
    );
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let error = Client::connect(&address, quick_config())
        .await
        .err()
        .unwrap();
    assert!(matches!(error, ClientError::Connect { .. }), "{error}");
    assert!(error.to_string().contains("strom server"), "{error}");
}

#[tokio::test]
async fn produce_fetch_and_list_offsets_round_trip() {
    let broker = FakeBroker::start(FakeState::default()).await;
    let client = client_for(&broker).await;
    let created = client.create_topics("events", 2, 1, vec![]).await.unwrap();
    assert_eq!(created.partitions, Some(2));
    let partition = PartitionIndex(1);
    let first = client
        .produce(
            "events",
            partition,
            &records(&["a", "b"]),
            Acks::All,
            Compression::None,
        )
        .await
        .unwrap();
    let second = client
        .produce(
            "events",
            partition,
            &records(&["c"]),
            Acks::Leader,
            Compression::Zstd,
        )
        .await
        .unwrap();
    assert_eq!((first, second), (Some(Offset(0)), Some(Offset(2))));

    let fetched = client
        .fetch("events", partition, Offset(1), 100, 1, 1 << 20)
        .await
        .unwrap();
    assert_eq!(values(&fetched), ["b", "c"]);
    assert_eq!(fetched.records[0].key.as_deref(), Some(&b"key-b"[..]));
    assert_eq!(fetched.records[1].offset, Offset(2));
    assert_eq!(fetched.high_watermark, Offset(3));
    assert_eq!(fetched.next_offset, Offset(3));

    assert_eq!(
        client
            .list_offsets("events", partition, OffsetSpec::Earliest)
            .await
            .unwrap(),
        Offset(0)
    );
    assert_eq!(
        client
            .list_offsets("events", partition, OffsetSpec::Latest)
            .await
            .unwrap(),
        Offset(3)
    );
    assert_eq!(
        client
            .list_offsets("events", PartitionIndex(0), OffsetSpec::Latest)
            .await
            .unwrap(),
        Offset(0)
    );
}

#[tokio::test]
async fn acks_none_gets_no_answer_but_the_records_land() {
    let broker = FakeBroker::start(FakeState::default()).await;
    broker.state().create("t", 1);
    let client = client_for(&broker).await;
    let offset = client
        .produce(
            "t",
            PartitionIndex(0),
            &records(&["x"]),
            Acks::None,
            Compression::Lz4,
        )
        .await
        .unwrap();
    assert_eq!(offset, None);
    // A request sent after it on the same connection is answered after it was handled.
    let fetched = client
        .fetch("t", PartitionIndex(0), Offset(0), 0, 1, 1 << 20)
        .await
        .unwrap();
    assert_eq!(values(&fetched), ["x"]);
}

#[tokio::test]
async fn not_leader_is_retried_after_a_metadata_refresh() {
    let broker = FakeBroker::start(FakeState::default()).await;
    broker.state().create("t", 1);
    broker.state().produce_errors.extend([6, 5]);
    let client = client_for(&broker).await;
    let offset = client
        .produce(
            "t",
            PartitionIndex(0),
            &records(&["x"]),
            Acks::All,
            Compression::None,
        )
        .await
        .unwrap();
    assert_eq!(offset, Some(Offset(0)));
    let state = broker.state();
    assert_eq!(state.count(PRODUCE), 3);
    assert_eq!(
        state.count(METADATA),
        3,
        "one lookup, then one refresh per retry"
    );
}

#[tokio::test]
async fn retries_are_bounded() {
    let broker = FakeBroker::start(FakeState::default()).await;
    broker.state().create("t", 1);
    broker.state().produce_errors.extend([6; 100]);
    let config = ClientConfig {
        metadata_attempts_max: 3,
        ..quick_config()
    };
    let client = Client::connect(&broker.address, config).await.unwrap();
    let error = client
        .produce(
            "t",
            PartitionIndex(0),
            &records(&["x"]),
            Acks::All,
            Compression::None,
        )
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::NotLeaderOrFollower));
    assert!(
        error.to_string().starts_with("NOT_LEADER_OR_FOLLOWER: "),
        "{error}"
    );
    assert_eq!(broker.state().count(PRODUCE), 3);
}

#[tokio::test]
async fn kafka_errors_come_back_by_name() {
    let broker = FakeBroker::start(FakeState::default()).await;
    let client = client_for(&broker).await;
    client.create_topics("x", 1, 1, vec![]).await.unwrap();
    let error = client.create_topics("x", 1, 1, vec![]).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "TOPIC_ALREADY_EXISTS: topic 'x' already exists (use 'strom topic describe x')"
    );

    let error = client
        .fetch("x", PartitionIndex(0), Offset(100), 0, 1, 1024)
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::OffsetOutOfRange));

    let error = client
        .produce(
            "x",
            PartitionIndex(5),
            &records(&["a"]),
            Acks::All,
            Compression::None,
        )
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::UnknownTopicOrPartition));
    assert!(
        error
            .to_string()
            .contains("has 1 partitions (0 to 0); there is no partition 5"),
        "{error}"
    );

    client.delete_topics(&["x"]).await.unwrap();
    let error = client.delete_topics(&["x"]).await.unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::UnknownTopicOrPartition));
    let error = client.describe_configs("x").await.unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::UnknownTopicOrPartition));
}

#[tokio::test]
async fn metadata_and_configs_describe_topics() {
    let broker = FakeBroker::start(FakeState::default()).await;
    let client = client_for(&broker).await;
    let configs = vec![("retention.ms".to_string(), "1000".to_string())];
    client.create_topics("a", 3, 1, configs).await.unwrap();
    client.create_topics("b", 1, 1, vec![]).await.unwrap();
    let metadata = client.metadata(None).await.unwrap();
    let names: Vec<&str> = metadata
        .topics
        .iter()
        .map(|topic| topic.name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(metadata.topic("a").unwrap().partitions.len(), 3);
    let missing = client.metadata(Some(&["nope"])).await.unwrap();
    assert_eq!(missing.topics[0].error_code, 3);

    let configs = client.describe_configs("a").await.unwrap();
    let set: Vec<_> = configs
        .iter()
        .filter(|config| config.source == ConfigSource::Topic)
        .collect();
    assert_eq!(set.len(), 1);
    assert_eq!(
        (set[0].name.as_str(), set[0].value.as_deref()),
        ("retention.ms", Some("1000"))
    );
}

#[tokio::test]
async fn produce_auto_creates_when_the_broker_does() {
    let state = FakeState {
        auto_create: true,
        ..FakeState::default()
    };
    let broker = FakeBroker::start(state).await;
    let client = client_for(&broker).await;
    assert!(
        client.metadata(Some(&["new"])).await.unwrap().topics[0].error_code != 0,
        "metadata() never creates"
    );
    assert_eq!(client.partition_count("new").await.unwrap(), 1);
    client
        .produce(
            "new",
            PartitionIndex(0),
            &records(&["a"]),
            Acks::All,
            Compression::None,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_cut_batch_is_fetched_whole_next_time() {
    let broker = FakeBroker::start(FakeState::default()).await;
    broker.state().create("t", 1);
    let client = client_for(&broker).await;
    for value in ["one", "two", "three"] {
        client
            .produce(
                "t",
                PartitionIndex(0),
                &records(&[value]),
                Acks::All,
                Compression::None,
            )
            .await
            .unwrap();
    }
    let options = FetchOptions {
        max_wait_ms: 0,
        partition_max_bytes: 100,
        ..FetchOptions::default()
    };
    let mut position = FetchPosition {
        topic: "t".to_string(),
        partition: PartitionIndex(0),
        offset: Offset(0),
    };
    let mut seen = Vec::new();
    while position.offset < Offset(3) {
        let fetched = client
            .fetch_many(std::slice::from_ref(&position), &options)
            .await
            .pop()
            .unwrap()
            .unwrap();
        assert!(
            fetched.next_offset > position.offset,
            "every fetch makes progress"
        );
        seen.extend(values(&fetched));
        position.offset = fetched.next_offset;
    }
    assert_eq!(seen, ["one", "two", "three"]);
}

#[tokio::test]
async fn fetch_many_reports_each_partition() {
    let broker = FakeBroker::start(FakeState::default()).await;
    broker.state().create("t", 3);
    let config = ClientConfig {
        metadata_attempts_max: 1,
        ..quick_config()
    };
    let client = Client::connect(&broker.address, config).await.unwrap();
    client
        .produce(
            "t",
            PartitionIndex(1),
            &records(&["p1"]),
            Acks::All,
            Compression::None,
        )
        .await
        .unwrap();
    let position = |topic: &str, partition: i32, offset: i64| FetchPosition {
        topic: topic.to_string(),
        partition: PartitionIndex(partition),
        offset: Offset(offset),
    };
    let positions = [
        position("t", 1, 0),
        position("t", 0, 9),
        position("missing", 0, 0),
        position("t", 2, 0),
    ];
    let options = FetchOptions {
        max_wait_ms: 0,
        ..FetchOptions::default()
    };
    let results = client.fetch_many(&positions, &options).await;
    assert_eq!(values(results[0].as_ref().unwrap()), ["p1"]);
    assert_eq!(
        results[1].as_ref().unwrap_err().error_code(),
        Some(ErrorCode::OffsetOutOfRange)
    );
    assert_eq!(
        results[2].as_ref().unwrap_err().error_code(),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    assert!(results[3].as_ref().unwrap().records.is_empty());
    assert_eq!(
        broker.state().count(1),
        1,
        "one fetch request for the one leader"
    );
}

#[tokio::test]
async fn concurrent_requests_share_one_connection() {
    let broker = FakeBroker::start(FakeState::default()).await;
    broker.state().create("t", 4);
    let client = Arc::new(client_for(&broker).await);
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..40 {
        let client = client.clone();
        tasks.spawn(async move {
            let partition = PartitionIndex(index % 4);
            let value = format!("v{index}");
            client
                .produce(
                    "t",
                    partition,
                    &records(&[value.as_str()]),
                    Acks::All,
                    Compression::None,
                )
                .await
                .unwrap()
        });
    }
    let mut offsets = Vec::new();
    while let Some(offset) = tasks.join_next().await {
        offsets.push(offset.unwrap().unwrap());
    }
    offsets.sort();
    offsets.dedup_by_key(|offset| offset.0);
    assert_eq!(
        offsets.len(),
        10,
        "offsets 0..10 in each of the 4 partitions"
    );
    let state = broker.state();
    assert_eq!(
        state.count(API_VERSIONS),
        1,
        "a single connection served every request"
    );
}

#[tokio::test]
async fn an_oversized_response_frame_is_refused_before_allocation() {
    let broker = FakeBroker::start(FakeState::default()).await;
    let options = ConnectionOptions {
        response_bytes_max: 1 << 20,
        ..ConnectionOptions::default()
    };
    let connection = Connection::connect(&broker.address, &options)
        .await
        .unwrap();
    broker.state().oversize_responses = true;
    let error = connection
        .send(&MetadataRequest::default())
        .await
        .unwrap_err();
    match &error {
        ClientError::FrameTooLarge { length, limit, .. } => {
            assert_eq!((*length, *limit), (i32::MAX as u64, 1 << 20))
        }
        other => panic!("expected FrameTooLarge, got {other}"),
    }
    assert!(connection.is_closed());
    let again = connection
        .send(&MetadataRequest::default())
        .await
        .unwrap_err();
    assert!(
        matches!(again, ClientError::FrameTooLarge { .. }),
        "a dead connection fails at once: {again}"
    );
}

#[tokio::test]
async fn an_unanswered_request_times_out() {
    let state = FakeState {
        silent: vec![METADATA],
        ..FakeState::default()
    };
    let broker = FakeBroker::start(state).await;
    let options = ConnectionOptions {
        request_timeout_ms: 100,
        ..ConnectionOptions::default()
    };
    let connection = Connection::connect(&broker.address, &options)
        .await
        .unwrap();
    let error = connection
        .send(&MetadataRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Timeout { .. }), "{error}");
    assert!(
        error.to_string().contains("Metadata request within 100 ms"),
        "{error}"
    );
    assert!(
        !connection.is_closed(),
        "a time-out leaves the connection usable"
    );
}

#[tokio::test]
async fn a_broker_going_away_fails_waiting_requests() {
    let state = FakeState {
        silent: vec![METADATA],
        ..FakeState::default()
    };
    let broker = FakeBroker::start(state).await;
    let connection = Connection::connect(&broker.address, &ConnectionOptions::default())
        .await
        .unwrap();
    let request = MetadataRequest::default();
    let pending = connection.send(&request);
    let (result, ()) = tokio::join!(pending, async { drop(broker) });
    let error = result.unwrap_err();
    assert!(matches!(error, ClientError::Disconnected { .. }), "{error}");
    assert!(connection.is_closed());
}
