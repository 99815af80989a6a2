//! AlterUserScramCredentials (KIP-554): sets and deletes users' SCRAM credentials in the
//! metadata log. The client sends the salt and the salted password, never the password; the
//! stored credential is derived from them. Each user gets a result; users whose alterations
//! break Kafka's rules are refused and the rest applied, in one command. (ALTER on the cluster
//! is checked before dispatch.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ResponseKind,
};
use strom_metadata::{MetadataCommand, MetadataImage, ScramUpsert};
use strom_security::scram::{credential_from_salted_password, ITERATIONS_MAX, ITERATIONS_MIN};
use strom_types::security::ScramMechanism;
use strom_types::ErrorCode;

use super::{str_bytes, Reply};
use crate::cluster;
use crate::error::BrokerError;
use crate::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: AlterUserScramCredentialsRequest,
    _version: i16,
) -> Reply {
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let image = broker.quorum.image();
        let mut outcomes: BTreeMap<String, Result<(), BrokerError>> = BTreeMap::new();
        let mut upserts = Vec::new();
        let mut deletions = Vec::new();
        let duplicated = duplicated_users(&request);
        for deletion in &request.deletions {
            let user = deletion.name.to_string();
            let checked = check_deletion(&image, &user, deletion.mechanism, &duplicated);
            match checked {
                Ok(mechanism) => deletions.push((user.clone(), mechanism)),
                Err(error) => {
                    outcomes.insert(user.clone(), Err(error));
                }
            }
            outcomes.entry(user).or_insert(Ok(()));
        }
        for upsertion in &request.upsertions {
            let user = upsertion.name.to_string();
            let checked = check_upsertion(
                &user,
                upsertion.mechanism,
                upsertion.iterations,
                &duplicated,
            );
            match checked {
                Ok(mechanism) => upserts.push(ScramUpsert {
                    user: user.clone(),
                    mechanism,
                    credential: credential_from_salted_password(
                        mechanism,
                        &upsertion.salted_password,
                        &upsertion.salt,
                        upsertion.iterations as u32,
                    ),
                }),
                Err(error) => {
                    outcomes.insert(user.clone(), Err(error));
                }
            }
            outcomes.entry(user).or_insert(Ok(()));
        }
        // A user refused for one alteration has none applied.
        let refused = |user: &String| outcomes.get(user).is_some_and(Result::is_err);
        upserts.retain(|upsert| !refused(&upsert.user));
        deletions.retain(|(user, _)| !refused(user));
        if !upserts.is_empty() || !deletions.is_empty() {
            let command = MetadataCommand::AlterScramCredentials { upserts, deletions };
            if let Err(error) = cluster::propose(&broker, command).await {
                for outcome in outcomes.values_mut().filter(|o| o.is_ok()) {
                    *outcome = Err(error.clone());
                }
            }
        }
        let results = outcomes.into_iter().map(result).collect();
        ResponseKind::AlterUserScramCredentials(
            AlterUserScramCredentialsResponse::default().with_results(results),
        )
    }))
}

fn result((user, outcome): (String, Result<(), BrokerError>)) -> AlterUserScramCredentialsResult {
    let result = AlterUserScramCredentialsResult::default().with_user(str_bytes(user));
    match outcome {
        Ok(()) => result,
        Err(error) => result
            .with_error_code(error.code.code())
            .with_error_message(Some(str_bytes(error.message))),
    }
}

/// (user, mechanism) pairs named more than once across deletions and upsertions.
fn duplicated_users(request: &AlterUserScramCredentialsRequest) -> BTreeSet<(String, i8)> {
    let mut seen = BTreeSet::new();
    let named = (request
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism)))
    .chain(
        request
            .upsertions
            .iter()
            .map(|u| (u.name.to_string(), u.mechanism)),
    );
    named.filter(|pair| !seen.insert(pair.clone())).collect()
}

fn mechanism_of(
    user: &str,
    code: i8,
    duplicated: &BTreeSet<(String, i8)>,
) -> Result<ScramMechanism, BrokerError> {
    if user.is_empty() {
        return Err(BrokerError::new(
            ErrorCode::UnacceptableCredential,
            "Username must not be empty",
        ));
    }
    if duplicated.contains(&(user.to_owned(), code)) {
        return Err(BrokerError::new(
            ErrorCode::DuplicateResource,
            "A user credential cannot be altered twice in the same request",
        ));
    }
    ScramMechanism::from_code(code).ok_or_else(|| {
        BrokerError::new(
            ErrorCode::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism",
        )
    })
}

fn check_deletion(
    image: &MetadataImage,
    user: &str,
    code: i8,
    duplicated: &BTreeSet<(String, i8)>,
) -> Result<ScramMechanism, BrokerError> {
    let mechanism = mechanism_of(user, code, duplicated)?;
    let exists = (image.scram_credentials.get(user)).is_some_and(|c| c.contains_key(&mechanism));
    match exists {
        true => Ok(mechanism),
        false => Err(BrokerError::new(
            ErrorCode::ResourceNotFound,
            "Attempt to delete a user credential that does not exist",
        )),
    }
}

fn check_upsertion(
    user: &str,
    code: i8,
    iterations: i32,
    duplicated: &BTreeSet<(String, i8)>,
) -> Result<ScramMechanism, BrokerError> {
    let mechanism = mechanism_of(user, code, duplicated)?;
    if iterations < ITERATIONS_MIN as i32 {
        return Err(BrokerError::new(
            ErrorCode::UnacceptableCredential,
            "Too few iterations",
        ));
    }
    if iterations > ITERATIONS_MAX as i32 {
        return Err(BrokerError::new(
            ErrorCode::UnacceptableCredential,
            "Too many iterations",
        ));
    }
    Ok(mechanism)
}
