//! DescribeUserScramCredentials (KIP-554): which SCRAM mechanisms each user has, with their
//! iteration counts; never salts or keys. (DESCRIBE on the cluster is checked before dispatch.)

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use strom_types::security::{ScramCredential, ScramMechanism};
use strom_types::ErrorCode;

use super::str_bytes;
use crate::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: DescribeUserScramCredentialsRequest,
    _version: i16,
) -> DescribeUserScramCredentialsResponse {
    let image = broker.quorum.image();
    let credentials = &image.scram_credentials;
    let results = match &request.users {
        // No list (or an empty one): every user.
        None => (credentials.iter())
            .map(|(user, mechanisms)| described(user, mechanisms.iter()))
            .collect(),
        Some(users) if users.is_empty() => (credentials.iter())
            .map(|(user, mechanisms)| described(user, mechanisms.iter()))
            .collect(),
        Some(users) => {
            let mut seen = BTreeSet::new();
            let duplicated: BTreeSet<&str> = (users.iter())
                .map(|user| user.name.as_str())
                .filter(|name| !seen.insert(*name))
                .collect();
            let mut results = Vec::new();
            for name in users.iter().map(|user| user.name.as_str()) {
                if duplicated.contains(name) {
                    if !seen.remove(name) {
                        continue;
                    }
                    results.push(failed(name, ErrorCode::DuplicateResource, "Cannot describe SCRAM credentials for the same user twice in a single request"));
                    continue;
                }
                results.push(match credentials.get(name) {
                    Some(mechanisms) => described(name, mechanisms.iter()),
                    None => failed(
                        name,
                        ErrorCode::ResourceNotFound,
                        "Attempt to describe a user credential that does not exist",
                    ),
                });
            }
            results
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

fn described<'a>(
    user: &str,
    mechanisms: impl Iterator<Item = (&'a ScramMechanism, &'a ScramCredential)>,
) -> DescribeUserScramCredentialsResult {
    let infos = mechanisms
        .map(|(mechanism, credential)| {
            CredentialInfo::default()
                .with_mechanism(mechanism.code())
                .with_iterations(credential.iterations as i32)
        })
        .collect();
    DescribeUserScramCredentialsResult::default()
        .with_user(str_bytes(user))
        .with_credential_infos(infos)
}

fn failed(user: &str, code: ErrorCode, message: &str) -> DescribeUserScramCredentialsResult {
    DescribeUserScramCredentialsResult::default()
        .with_user(str_bytes(user))
        .with_error_code(code.code())
        .with_error_message(Some(str_bytes(message)))
}
