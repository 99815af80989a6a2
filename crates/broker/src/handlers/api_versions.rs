//! ApiVersions: the APIs and versions this broker implements, from `strom_protocol::versions`.

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use strom_types::ErrorCode;

pub fn handle(_request: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    strom_protocol::versions::api_versions_response(ErrorCode::None.code())
}
