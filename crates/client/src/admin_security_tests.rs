//! The security administration calls against the fake broker: ACLs created, described and
//! deleted with their per-entry errors, and SCRAM credentials set (salted and hashed on this
//! side), described and deleted.

use strom_types::security::{
    AclBinding, AclOperation, AclPermission, PatternType, ResourceType, ScramMechanism,
};
use strom_types::ErrorCode;

use crate::fake_broker::{FakeBroker, FakeState};
use crate::{AclFilter, Client, ClientConfig, ClientError, ScramDeletion, ScramUpsertion};

async fn client_for(broker: &FakeBroker) -> Client {
    Client::connect(&broker.address, ClientConfig::default())
        .await
        .unwrap()
}

fn binding(principal: &str, topic: &str, operation: AclOperation) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: topic.to_string(),
        pattern_type: PatternType::Literal,
        principal: principal.to_string(),
        host: "*".to_string(),
        operation,
        permission: AclPermission::Allow,
    }
}

fn upsertion(user: &str, mechanism: ScramMechanism, iterations: u32) -> ScramUpsertion {
    ScramUpsertion {
        user: user.to_string(),
        mechanism,
        iterations,
        password: "pencil".to_string(),
    }
}

#[tokio::test]
async fn acls_are_created_described_and_deleted() {
    let broker = FakeBroker::start(FakeState::default()).await;
    let client = client_for(&broker).await;
    let read = binding("User:alice", "orders", AclOperation::Read);
    let write = binding("User:bob", "orders", AclOperation::Write);
    let bad = binding("alice", "orders", AclOperation::Read);
    let results = client
        .create_acls(&[read.clone(), bad, write.clone()])
        .await
        .unwrap();
    assert!(results[0].is_ok() && results[2].is_ok());
    let error = results[1].as_ref().unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::InvalidRequest));
    assert!(
        error.to_string().contains("principal must be User:NAME"),
        "{error}"
    );

    let all = client.describe_acls(&AclFilter::any()).await.unwrap();
    assert_eq!(all, vec![read.clone(), write.clone()]);
    let alice = AclFilter {
        principal: Some("User:alice".to_string()),
        ..AclFilter::any()
    };
    assert_eq!(
        client.describe_acls(&alice).await.unwrap(),
        vec![read.clone()]
    );

    let refused = AclFilter {
        host: Some("refuse".to_string()),
        ..AclFilter::any()
    };
    let deleted = client
        .delete_acls(&[AclFilter::exact(&write), refused])
        .await
        .unwrap();
    let first = deleted[0].as_ref().unwrap();
    assert_eq!(first.deleted, vec![write]);
    assert!(first.failed.is_empty());
    let error = deleted[1].as_ref().unwrap_err();
    assert!(error.to_string().contains("refused filter"), "{error}");
    assert_eq!(
        client.describe_acls(&AclFilter::any()).await.unwrap(),
        vec![read]
    );
}

#[tokio::test]
async fn scram_credentials_are_salted_here_and_never_carry_the_password() {
    let broker = FakeBroker::start(FakeState::default()).await;
    let client = client_for(&broker).await;
    let altered = client
        .alter_user_scram_credentials(
            &[
                upsertion("alice", ScramMechanism::Sha256, 4096),
                upsertion("alice", ScramMechanism::Sha512, 8192),
                upsertion("bob", ScramMechanism::Sha256, 4096),
            ],
            &[],
        )
        .await
        .unwrap();
    let users: Vec<&str> = altered.iter().map(|result| result.user.as_str()).collect();
    assert_eq!(users, ["alice", "bob"]);
    assert!(altered.iter().all(|result| result.result.is_ok()));
    {
        let state = broker.state();
        let (iterations, salt, salted) = &state.credentials[&("alice".to_string(), 1)];
        assert_eq!(*iterations, 4096);
        assert_eq!(salt.len(), 32);
        let expected =
            strom_security::scram::salted_password(ScramMechanism::Sha256, "pencil", salt, 4096);
        assert_eq!(salted.to_vec(), expected);
        let (_, other_salt, _) = &state.credentials[&("bob".to_string(), 1)];
        assert_ne!(salt, other_salt, "every credential has a fresh salt");
    }

    let described = client.describe_user_scram_credentials(None).await.unwrap();
    assert_eq!(described.len(), 2);
    let alice = described[0].credentials.as_ref().unwrap();
    assert_eq!(described[0].user, "alice");
    assert_eq!(
        alice
            .iter()
            .map(|info| (info.mechanism, info.iterations))
            .collect::<Vec<_>>(),
        [
            (ScramMechanism::Sha256, 4096),
            (ScramMechanism::Sha512, 8192)
        ]
    );

    let deleted = client
        .alter_user_scram_credentials(
            &[],
            &[ScramDeletion {
                user: "carol".to_string(),
                mechanism: ScramMechanism::Sha256,
            }],
        )
        .await
        .unwrap();
    let error = deleted[0].result.as_ref().unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::ResourceNotFound));

    let named = client
        .describe_user_scram_credentials(Some(&["bob", "carol"]))
        .await
        .unwrap();
    assert!(named[0].credentials.is_ok());
    let error = named[1].credentials.as_ref().unwrap_err();
    assert!(
        error.to_string().contains("does not exist: carol"),
        "{error}"
    );
}

#[tokio::test]
async fn iterations_outside_kafkas_range_are_refused_before_hashing() {
    let broker = FakeBroker::start(FakeState::default()).await;
    let client = client_for(&broker).await;
    for iterations in [0, 4095, 16_385, u32::MAX] {
        let error = client
            .alter_user_scram_credentials(
                &[upsertion("a", ScramMechanism::Sha256, iterations)],
                &[],
            )
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::InvalidArgument(_)), "{error}");
        assert!(error.to_string().contains("4096 to 16384"), "{error}");
    }
    let mut empty = upsertion("a", ScramMechanism::Sha256, 4096);
    empty.password.clear();
    assert!(client
        .alter_user_scram_credentials(&[empty], &[])
        .await
        .is_err());
    assert_eq!(broker.state().count(51), 0, "nothing was sent");
}

#[tokio::test]
async fn a_broker_without_the_apis_is_an_unsupported_version() {
    let mut state = FakeState::default();
    state
        .api_versions
        .retain(|(key, _, _)| ![29, 30, 31, 50, 51].contains(key));
    let broker = FakeBroker::start(state).await;
    let client = client_for(&broker).await;
    let error = client.describe_acls(&AclFilter::any()).await.unwrap_err();
    assert!(
        matches!(error, ClientError::UnsupportedVersion { .. }),
        "{error}"
    );
}
