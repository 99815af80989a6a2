//! Which version of each API to speak to a broker.
//!
//! The broker lists its version range per API in its ApiVersions response; the client's range
//! is what the `kafka-protocol` crate implements, narrowed where a newer version would need
//! something this client does not do (topic ids). For each request the client speaks the
//! highest version in both ranges.

use std::collections::HashMap;

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, FetchRequest, ProduceRequest};
use kafka_protocol::protocol::{Message, Request, VersionRange};

use crate::ClientError;

/// The ApiVersions version asked first; a broker that does not know it answers in v0.
pub const API_VERSIONS_VERSION_FIRST: i16 = 3;
/// Fetch v13 replaced topic names by topic ids.
pub const FETCH_VERSION_MAX: i16 = 12;
/// Produce v13 replaced topic names by topic ids; v10-12 add nothing this client uses.
pub const PRODUCE_VERSION_MAX: i16 = 9;

/// The versions of `Req` this client can speak.
pub fn client_range<Req: Request>() -> VersionRange {
    let supported = <Req as Message>::VERSIONS;
    let cap = match Req::KEY {
        key if key == FetchRequest::KEY => FETCH_VERSION_MAX,
        key if key == ProduceRequest::KEY => PRODUCE_VERSION_MAX,
        _ => supported.max,
    };
    VersionRange {
        min: supported.min,
        max: supported.max.min(cap),
    }
}

/// A broker's version range for each API it implements, from its ApiVersions response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiVersionTable {
    ranges: HashMap<i16, VersionRange>,
}

impl ApiVersionTable {
    pub fn from_response(response: &ApiVersionsResponse) -> ApiVersionTable {
        let ranges = response
            .api_keys
            .iter()
            .map(|api| {
                (
                    api.api_key,
                    VersionRange {
                        min: api.min_version,
                        max: api.max_version,
                    },
                )
            })
            .collect();
        ApiVersionTable { ranges }
    }

    /// The broker's range for an API key, if it implements the API at all.
    pub fn broker_range(&self, api_key: i16) -> Option<VersionRange> {
        self.ranges.get(&api_key).copied()
    }

    /// The highest version of `Req` both sides speak.
    pub fn select<Req: Request>(&self, address: &str) -> Result<i16, ClientError> {
        let client = client_range::<Req>();
        let broker = self.broker_range(Req::KEY);
        match broker.map(|broker| broker.intersect(&client)) {
            Some(common) if !common.is_empty() => Ok(common.max),
            _ => Err(ClientError::UnsupportedVersion {
                address: address.to_string(),
                api: ApiKey::try_from(Req::KEY).expect("every Request type has a known key"),
                broker: broker.map_or_else(|| "none".to_string(), |range| range.to_string()),
                client,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{ApiVersionsRequest, ListOffsetsRequest, MetadataRequest};

    fn table(ranges: &[(i16, i16, i16)]) -> ApiVersionTable {
        let api_keys = ranges
            .iter()
            .map(|&(key, min, max)| {
                ApiVersion::default()
                    .with_api_key(key)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect();
        ApiVersionTable::from_response(&ApiVersionsResponse::default().with_api_keys(api_keys))
    }

    #[test]
    fn picks_the_highest_common_version() {
        let table = table(&[(3, 0, 9), (2, 1, 99), (18, 0, 3)]);
        assert_eq!(table.select::<MetadataRequest>("b").unwrap(), 9);
        assert_eq!(
            table.select::<ListOffsetsRequest>("b").unwrap(),
            ListOffsetsRequest::VERSIONS.max
        );
        assert_eq!(table.select::<ApiVersionsRequest>("b").unwrap(), 3);
    }

    #[test]
    fn fetch_and_produce_stay_below_topic_ids() {
        let table = table(&[(0, 3, 13), (1, 4, 17)]);
        assert_eq!(
            table.select::<ProduceRequest>("b").unwrap(),
            PRODUCE_VERSION_MAX
        );
        assert_eq!(
            table.select::<FetchRequest>("b").unwrap(),
            FETCH_VERSION_MAX
        );
        let old = self::table(&[(0, 3, 7), (1, 4, 4)]);
        assert_eq!(old.select::<ProduceRequest>("b").unwrap(), 7);
        assert_eq!(old.select::<FetchRequest>("b").unwrap(), 4);
    }

    #[test]
    fn no_common_version_is_an_error() {
        let table = table(&[(1, 0, 3)]);
        let error = table.select::<FetchRequest>("b:1").unwrap_err();
        assert!(
            matches!(error, ClientError::UnsupportedVersion { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("0..3"), "{error}");
        let error = table.select::<MetadataRequest>("b:1").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("supports Metadata versions none"),
            "{error}"
        );
    }
}
