//! SASL/PLAIN (RFC 4616) checked against the stored SCRAM credentials.
//!
//! Strom keeps no plaintext passwords: PLAIN derives the user's SCRAM keys from the password it
//! is given and compares them with the stored ones, as Redpanda does. A user with credentials for
//! both mechanisms may log in with the password of either. The token is one message,
//! `authzid NUL user NUL password`; the exchange is one step.

use strom_types::security::ScramMechanism;

use crate::exchange::{CredentialStore, Mechanism, SaslError, SaslStep};
use crate::scram;

/// The mechanisms whose credentials a PLAIN password is checked against, in order.
const CREDENTIAL_MECHANISMS: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

/// One PLAIN exchange on the server side.
pub(crate) struct PlainServer {
    over: bool,
}

/// The three fields of a PLAIN token.
#[derive(Debug, PartialEq, Eq)]
struct PlainToken<'token> {
    authorization_id: &'token str,
    username: &'token str,
    password: &'token str,
}

impl PlainServer {
    pub(crate) fn new() -> PlainServer {
        PlainServer { over: false }
    }

    pub(crate) fn step(
        &mut self,
        token: &[u8],
        store: &dyn CredentialStore,
    ) -> Result<SaslStep, SaslError> {
        if std::mem::replace(&mut self.over, true) {
            return Err(SaslError::exchange_over(Mechanism::Plain));
        }
        let token = parse(token)?;
        if !token.authorization_id.is_empty() && token.authorization_id != token.username {
            return Err(SaslError::new(
                "Authentication failed: Client requested an authorization id that is different from username",
            ));
        }
        if !password_matches(store, token.username, token.password) {
            return Err(SaslError::new(
                "Authentication failed: Invalid username or password",
            ));
        }
        Ok(SaslStep::Complete {
            user: token.username.to_string(),
            response: Vec::new(),
            expires_at_ms: None,
        })
    }
}

/// Splits the token into its three fields, with Kafka's messages for what is missing.
fn parse(token: &[u8]) -> Result<PlainToken<'_>, SaslError> {
    let text = std::str::from_utf8(token)
        .map_err(|_| SaslError::new("Invalid SASL/PLAIN response: not UTF-8"))?;
    let fields: Vec<&str> = text.split('\0').collect();
    let [authorization_id, username, password] = fields[..] else {
        return Err(SaslError::new(format!(
            "Invalid SASL/PLAIN response: expected 3 tokens, got {}",
            fields.len()
        )));
    };
    if username.is_empty() {
        return Err(SaslError::new(
            "Authentication failed: username not specified",
        ));
    }
    if password.is_empty() {
        return Err(SaslError::new(
            "Authentication failed: password not specified",
        ));
    }
    Ok(PlainToken {
        authorization_id,
        username,
        password,
    })
}

/// Whether the password matches one of the user's SCRAM credentials. A user without any still
/// costs one derivation, so that the time taken does not tell whether the user exists.
fn password_matches(store: &dyn CredentialStore, username: &str, password: &str) -> bool {
    let mut found = false;
    for mechanism in CREDENTIAL_MECHANISMS {
        let Some(credential) = store.scram_credential(username, mechanism) else {
            continue;
        };
        found = true;
        // Strom stores credentials within Kafka's bounds; one from elsewhere with more
        // iterations would make every PLAIN attempt as slow as it asks.
        if credential.iterations > scram::ITERATIONS_MAX {
            tracing::warn!(user = %username, iterations = credential.iterations, "a SCRAM credential has more iterations than PLAIN derives");
            continue;
        }
        if scram::verify_password(mechanism, password, &credential) {
            return true;
        }
    }
    if !found {
        let stand_in = [0; scram::SALT_BYTES];
        scram::salted_password(
            ScramMechanism::Sha256,
            password,
            &stand_in,
            scram::ITERATIONS_DEFAULT,
        );
    }
    false
}

/// The PLAIN token a client sends: no authorization id, then the user and the password.
pub fn client_message(username: &str, password: &str) -> Vec<u8> {
    format!("\0{username}\0{password}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::tests::MemoryStore;

    fn authenticate(store: &MemoryStore, token: &[u8]) -> Result<SaslStep, SaslError> {
        PlainServer::new().step(token, store)
    }

    fn store() -> MemoryStore {
        MemoryStore::default()
            .with_user("alice", "alice-secret", ScramMechanism::Sha256)
            .with_user("bob", "bob-512", ScramMechanism::Sha512)
            .with_user("carol", "carol-256", ScramMechanism::Sha256)
            .with_user("carol", "carol-512", ScramMechanism::Sha512)
    }

    fn user_of(step: SaslStep) -> String {
        match step {
            SaslStep::Complete {
                user,
                response,
                expires_at_ms,
            } => {
                assert!(response.is_empty());
                assert_eq!(expires_at_ms, None);
                user
            }
            SaslStep::Continue(_) => panic!("PLAIN is one step"),
        }
    }

    #[test]
    fn the_password_of_a_scram_credential_authenticates() {
        let store = store();
        let alice = authenticate(&store, &client_message("alice", "alice-secret")).unwrap();
        assert_eq!(user_of(alice), "alice");
        let bob = authenticate(&store, b"bob\0bob\0bob-512").unwrap();
        assert_eq!(user_of(bob), "bob");
        for password in ["carol-256", "carol-512"] {
            let carol = authenticate(&store, &client_message("carol", password)).unwrap();
            assert_eq!(user_of(carol), "carol");
        }
    }

    #[test]
    fn a_wrong_password_or_unknown_user_fails_alike() {
        let store = store();
        let wrong = authenticate(&store, &client_message("alice", "nope")).unwrap_err();
        let unknown = authenticate(&store, &client_message("mallory", "nope")).unwrap_err();
        assert_eq!(wrong, unknown);
        assert_eq!(
            wrong.message,
            "Authentication failed: Invalid username or password"
        );
        // A password of one user does not open another.
        assert!(authenticate(&store, &client_message("bob", "alice-secret")).is_err());
    }

    #[test]
    fn an_authorization_id_must_be_the_user() {
        let error = authenticate(&store(), b"admin\0alice\0alice-secret").unwrap_err();
        assert!(error.message.contains("authorization id"), "{error}");
    }

    #[test]
    fn malformed_tokens_fail() {
        let store = store();
        let refused = |token: &[u8]| authenticate(&store, token).unwrap_err().message;
        assert!(refused(b"").contains("got 1"));
        assert!(refused(b"alice\0secret").contains("got 2"));
        assert!(refused(b"\0alice\0secret\0").contains("got 4"));
        assert!(refused(b"\0\0secret").contains("username not specified"));
        assert!(refused(b"\0alice\0").contains("password not specified"));
        assert!(refused(b"\0al\xffice\0secret").contains("UTF-8"));
    }

    #[test]
    fn one_token_only() {
        let store = store();
        let mut server = PlainServer::new();
        assert!(server.step(b"garbage", &store).is_err());
        let error = server
            .step(&client_message("alice", "alice-secret"), &store)
            .unwrap_err();
        assert!(error.message.contains("already over"), "{error}");
    }

    #[test]
    fn credentials_beyond_the_iteration_bound_are_not_derived() {
        let mut store = MemoryStore::default();
        let mut credential =
            scram::new_credential(ScramMechanism::Sha256, "pw", scram::ITERATIONS_MIN);
        credential.iterations = u32::MAX;
        store.insert("slow", ScramMechanism::Sha256, credential);
        assert!(authenticate(&store, &client_message("slow", "pw")).is_err());
    }
}
