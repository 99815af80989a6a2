//! The APIs and versions the broker implements: the one table ApiVersions advertises from and
//! the codec checks every request against.
//!
//! Only versions that are implemented and tested appear here. Ranges stop before the versions
//! that switch to topic ids (Produce v13, Fetch v13) until the broker resolves ids there.

use kafka_protocol::messages::ApiKey;

/// One API the broker serves, with the inclusive range of versions it implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportedApi {
    pub key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
}

const fn api(key: ApiKey, min_version: i16, max_version: i16) -> SupportedApi {
    SupportedApi {
        key,
        min_version,
        max_version,
    }
}

/// Every API the broker answers. ApiVersions responses list exactly these.
pub const SUPPORTED_APIS: &[SupportedApi] = &[
    api(ApiKey::Produce, 3, 11),
    api(ApiKey::Fetch, 4, 12),
    api(ApiKey::ListOffsets, 1, 7),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::Metadata, 0, 12),
    api(ApiKey::ApiVersions, 0, 3),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    // v0 is gone from Kafka 4 (KIP-896) and from the codec.
    api(ApiKey::DescribeLogDirs, 1, 4),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::DescribeClientQuotas, 0, 1),
    api(ApiKey::AlterClientQuotas, 0, 1),
    api(ApiKey::DescribeCluster, 0, 1),
    api(ApiKey::DescribeQuorum, 0, 2),
    api(ApiKey::ElectLeaders, 0, 2),
    api(ApiKey::AlterPartitionReassignments, 0, 1),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    api(ApiKey::UnregisterBroker, 0, 0),
    api(ApiKey::InitProducerId, 0, 4),
    api(ApiKey::FindCoordinator, 0, 4),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    // librdkafka 2.x and kafka-python send at most v3 (KIP-447); v4-5 are KIP-890's.
    api(ApiKey::TxnOffsetCommit, 0, 3),
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
    api(ApiKey::AddPartitionsToTxn, 0, 5),
    api(ApiKey::AddOffsetsToTxn, 0, 4),
    // Version 5 is KIP-890 part 2 (a new epoch per transaction), not implemented.
    api(ApiKey::EndTxn, 0, 4),
    api(ApiKey::WriteTxnMarkers, 1, 1),
    api(ApiKey::DescribeTransactions, 0, 0),
    api(ApiKey::ListTransactions, 0, 1),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::SaslHandshake, 0, 1),
    api(ApiKey::SaslAuthenticate, 0, 2),
    api(ApiKey::CreateAcls, 1, 3),
    api(ApiKey::DescribeAcls, 1, 3),
    api(ApiKey::DeleteAcls, 1, 3),
    api(ApiKey::DescribeUserScramCredentials, 0, 0),
    api(ApiKey::AlterUserScramCredentials, 0, 0),
];

/// The supported range for `key`, if the broker serves that API at all.
pub fn supported(key: ApiKey) -> Option<SupportedApi> {
    SUPPORTED_APIS.iter().copied().find(|api| api.key == key)
}

/// Whether the broker implements `version` of `key`.
pub fn is_supported(key: ApiKey, version: i16) -> bool {
    supported(key).is_some_and(|api| (api.min_version..=api.max_version).contains(&version))
}

/// The ApiVersions response body listing [`SUPPORTED_APIS`], with `error_code`.
pub fn api_versions_response(error_code: i16) -> kafka_protocol::messages::ApiVersionsResponse {
    use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|api| {
            ApiVersion::default()
                .with_api_key(api.key as i16)
                .with_min_version(api.min_version)
                .with_max_version(api.max_version)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
        .with_finalized_features_epoch(-1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn every_advertised_version_is_one_the_codec_can_decode() {
        for api in SUPPORTED_APIS {
            let codec = api.key.valid_versions();
            assert!(api.min_version >= codec.min, "{:?}", api.key);
            assert!(api.max_version <= codec.max, "{:?}", api.key);
            assert!(api.min_version <= api.max_version, "{:?}", api.key);
        }
    }

    #[test]
    fn unknown_and_out_of_range_versions_are_refused() {
        assert!(is_supported(ApiKey::ApiVersions, 3));
        assert!(!is_supported(ApiKey::ApiVersions, 4));
        assert!(!is_supported(ApiKey::Produce, 2));
        assert!(is_supported(ApiKey::SaslHandshake, 0));
        assert!(!is_supported(ApiKey::SaslHandshake, 2));
    }
}
