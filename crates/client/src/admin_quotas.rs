//! Client quota administration (KIP-546), after `kafka-configs.sh --entity-type users|clients`:
//! describe and alter the quotas of users, client ids, both, and their defaults. Requests go
//! to any broker (the change is written to the metadata quorum).

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;

use crate::error::{ClientError, Subject};
use crate::Client;

/// A quota entity: (entity type, name) pairs, the type `user` or `client-id`, a `None` name
/// for the type's default.
pub type QuotaEntity = Vec<(String, Option<String>)>;

/// How a describe filter matches one entity type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaMatch {
    Exact(String),
    Default,
    Any,
}

/// One entity's quotas.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientQuotas {
    pub entity: QuotaEntity,
    pub values: Vec<(String, f64)>,
}

impl Client {
    /// The entities matching every component (entity type, match); with `strict`, entities
    /// with no other types.
    pub async fn describe_client_quotas(
        &self,
        components: &[(String, QuotaMatch)],
        strict: bool,
    ) -> Result<Vec<ClientQuotas>, ClientError> {
        let components = (components.iter())
            .map(|(entity_type, matching)| {
                let (match_type, name) = match matching {
                    QuotaMatch::Exact(name) => (0, Some(StrBytes::from_string(name.clone()))),
                    QuotaMatch::Default => (1, None),
                    QuotaMatch::Any => (2, None),
                };
                ComponentData::default()
                    .with_entity_type(StrBytes::from_string(entity_type.clone()))
                    .with_match_type(match_type)
                    .with_match(name)
            })
            .collect();
        let request = DescribeClientQuotasRequest::default()
            .with_components(components)
            .with_strict(strict);
        let response = self.any_connection().await?.send(&request).await?;
        ClientError::check(
            response.error_code,
            response.error_message.as_deref(),
            Subject::default(),
        )?;
        Ok((response.entries.unwrap_or_default().into_iter())
            .map(|entry| ClientQuotas {
                entity: (entry.entity.into_iter())
                    .map(|part| {
                        (
                            part.entity_type.to_string(),
                            part.entity_name.map(|name| name.to_string()),
                        )
                    })
                    .collect(),
                values: (entry.values.into_iter())
                    .map(|value| (value.key.to_string(), value.value))
                    .collect(),
            })
            .collect())
    }

    /// Sets `set` and removes `remove` on one entity's quotas.
    pub async fn alter_client_quotas(
        &self,
        entity: &QuotaEntity,
        set: &[(String, f64)],
        remove: &[String],
        validate_only: bool,
    ) -> Result<(), ClientError> {
        let parts = (entity.iter())
            .map(|(entity_type, name)| {
                EntityData::default()
                    .with_entity_type(StrBytes::from_string(entity_type.clone()))
                    .with_entity_name(name.clone().map(StrBytes::from_string))
            })
            .collect();
        let sets = set.iter().map(|(key, value)| {
            OpData::default()
                .with_key(StrBytes::from_string(key.clone()))
                .with_value(*value)
        });
        let removes = remove.iter().map(|key| {
            OpData::default()
                .with_key(StrBytes::from_string(key.clone()))
                .with_remove(true)
        });
        let request = AlterClientQuotasRequest::default()
            .with_validate_only(validate_only)
            .with_entries(vec![EntryData::default()
                .with_entity(parts)
                .with_ops(sets.chain(removes).collect())]);
        let response = self.any_connection().await?.send(&request).await?;
        let entry = self.find_in_response(response.entries, "AlterClientQuotas", "", |_| true)?;
        ClientError::check(
            entry.error_code,
            entry.error_message.as_deref(),
            Subject::default(),
        )
    }
}
