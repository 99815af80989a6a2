//! The server side of SaslHandshake/SaslAuthenticate as an exchange over bytes.
//!
//! The broker makes one [`SaslServer`] per connection (and one more per re-authentication) for
//! the mechanism the client chose in SaslHandshake, then hands it each SaslAuthenticate token in
//! turn. Each [`SaslServer::step`] returns either a challenge to send back
//! ([`SaslStep::Continue`]), the authenticated user ([`SaslStep::Complete`]) or a [`SaslError`]
//! whose message may go to the client as it is. Once an exchange has completed or failed, it is
//! over: every later step is refused.
//!
//! Nothing here touches a socket. Credentials come from the broker through [`CredentialStore`];
//! OAUTHBEARER keys come from the [`JwtValidator`] in [`ServerOptions`]. Two steps can take
//! milliseconds of CPU (PBKDF2 for PLAIN) or block on the network (an OAUTHBEARER token signed
//! by a key not yet in the JWKS makes the validator fetch it again, at most once per
//! [`crate::oauthbearer::JWKS_RELOAD_INTERVAL_MS_MIN`]): an async caller runs `step` where
//! blocking is allowed.

use std::sync::Arc;

use strom_types::security::ScramMechanism;

use crate::oauthbearer::{JwtValidator, OAuthBearerServer};
use crate::plain::PlainServer;
use crate::scram::ScramServer;

pub use crate::exchange::{CredentialStore, Mechanism, SaslError, SaslStep, TOKEN_BYTES_MAX};

/// What a listener's exchanges need beyond credentials.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// The validator of OAUTHBEARER tokens; without one, OAUTHBEARER exchanges fail.
    pub oauth: Option<Arc<JwtValidator>>,
}

/// One SASL exchange on the server side: one per connection, and one per re-authentication.
pub struct SaslServer {
    mechanism: Mechanism,
    exchange: Exchange,
    /// Set once a step completed or failed: the exchange takes no more tokens.
    over: bool,
}

enum Exchange {
    Plain(PlainServer),
    Scram(ScramServer),
    OAuthBearer(OAuthBearerServer),
    /// OAUTHBEARER on a listener with no validator: every token is refused.
    OAuthBearerNotConfigured,
}

impl SaslServer {
    pub fn new(mechanism: Mechanism, options: &ServerOptions) -> SaslServer {
        let exchange = match mechanism {
            Mechanism::Plain => Exchange::Plain(PlainServer::new()),
            Mechanism::ScramSha256 => Exchange::Scram(ScramServer::new(ScramMechanism::Sha256)),
            Mechanism::ScramSha512 => Exchange::Scram(ScramServer::new(ScramMechanism::Sha512)),
            Mechanism::OAuthBearer => match &options.oauth {
                Some(validator) => {
                    Exchange::OAuthBearer(OAuthBearerServer::new(Arc::clone(validator)))
                }
                None => Exchange::OAuthBearerNotConfigured,
            },
        };
        SaslServer {
            mechanism,
            exchange,
            over: false,
        }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// True once the exchange has completed or failed.
    pub fn is_over(&self) -> bool {
        self.over
    }

    /// Takes the client's next token. Any error ends the exchange.
    pub fn step(
        &mut self,
        token: &[u8],
        store: &dyn CredentialStore,
    ) -> Result<SaslStep, SaslError> {
        if self.over {
            return Err(SaslError::exchange_over(self.mechanism));
        }
        let result = self.step_exchange(token, store);
        if !matches!(result, Ok(SaslStep::Continue(_))) {
            self.over = true;
        }
        if let Err(error) = &result {
            tracing::debug!(mechanism = %self.mechanism, %error, "SASL exchange failed");
        }
        result
    }

    fn step_exchange(
        &mut self,
        token: &[u8],
        store: &dyn CredentialStore,
    ) -> Result<SaslStep, SaslError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(SaslError::new(format!(
                "Authentication failed: a {} token of {} bytes is longer than the {TOKEN_BYTES_MAX} bytes allowed",
                self.mechanism,
                token.len()
            )));
        }
        match &mut self.exchange {
            Exchange::Plain(server) => server.step(token, store),
            Exchange::Scram(server) => server.step(token, store),
            Exchange::OAuthBearer(server) => server.step(token),
            Exchange::OAuthBearerNotConfigured => Err(SaslError::new(
                "Authentication failed: OAUTHBEARER is not configured on this listener",
            )),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::exchange::{decode_saslname, encode_saslname};
    use crate::scram;
    use strom_types::security::ScramCredential;

    /// Credentials held in a map, as the broker's metadata image would hold them.
    #[derive(Default)]
    pub(crate) struct MemoryStore {
        credentials: HashMap<(String, ScramMechanism), ScramCredential>,
    }

    impl MemoryStore {
        pub(crate) fn with_user(
            mut self,
            user: &str,
            password: &str,
            mechanism: ScramMechanism,
        ) -> MemoryStore {
            let credential = scram::new_credential(mechanism, password, scram::ITERATIONS_MIN);
            self.credentials
                .insert((user.to_string(), mechanism), credential);
            self
        }

        pub(crate) fn insert(
            &mut self,
            user: &str,
            mechanism: ScramMechanism,
            credential: ScramCredential,
        ) {
            self.credentials
                .insert((user.to_string(), mechanism), credential);
        }
    }

    impl CredentialStore for MemoryStore {
        fn scram_credential(
            &self,
            user: &str,
            mechanism: ScramMechanism,
        ) -> Option<ScramCredential> {
            self.credentials
                .get(&(user.to_string(), mechanism))
                .cloned()
        }
    }

    #[test]
    fn mechanism_names_round_trip() {
        for mechanism in Mechanism::ALL {
            assert_eq!(Mechanism::parse(mechanism.name()), Some(mechanism));
        }
        assert_eq!(Mechanism::parse("scram-sha-256"), None);
        assert_eq!(Mechanism::parse("GSSAPI"), None);
        assert_eq!(Mechanism::ScramSha512.scram(), Some(ScramMechanism::Sha512));
        assert_eq!(
            Mechanism::from(ScramMechanism::Sha256).name(),
            ScramMechanism::Sha256.name()
        );
    }

    #[test]
    fn saslnames_decode_and_encode() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert_eq!(encode_saslname("a,b=c"), "a=2Cb=3Dc");
        assert_eq!(decode_saslname("élan").unwrap(), "élan");
        for bad in ["", "a=", "a=2", "a=4A", "=", "a\0b", "a=é"] {
            assert_eq!(decode_saslname(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_token_longer_than_the_limit_is_refused() {
        let store = MemoryStore::default();
        let mut server = SaslServer::new(Mechanism::Plain, &ServerOptions::default());
        let token = vec![b'a'; TOKEN_BYTES_MAX + 1];
        let error = server.step(&token, &store).unwrap_err();
        assert!(error.message.contains("longer than"), "{error}");
        assert!(server.is_over());
    }

    #[test]
    fn a_finished_exchange_takes_no_more_tokens() {
        let store = MemoryStore::default().with_user("alice", "secret", ScramMechanism::Sha256);
        let mut server = SaslServer::new(Mechanism::Plain, &ServerOptions::default());
        let step = server.step(b"\0alice\0secret", &store).unwrap();
        assert!(matches!(step, SaslStep::Complete { ref user, .. } if user == "alice"));
        let error = server.step(b"\0alice\0secret", &store).unwrap_err();
        assert!(error.message.contains("already over"), "{error}");
    }

    #[test]
    fn oauthbearer_without_a_validator_fails() {
        let store = MemoryStore::default();
        let mut server = SaslServer::new(Mechanism::OAuthBearer, &ServerOptions::default());
        let error = server
            .step(b"n,,\x01auth=Bearer abc\x01\x01", &store)
            .unwrap_err();
        assert!(error.message.contains("not configured"), "{error}");
    }

    #[test]
    fn scram_through_the_sasl_server() {
        for mechanism in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let store = MemoryStore::default().with_user("bob", "hunter2", mechanism);
            let mut server = SaslServer::new(mechanism.into(), &ServerOptions::default());
            let mut client = scram::ScramClient::new(mechanism, "bob", "hunter2");
            let SaslStep::Continue(server_first) =
                server.step(&client.first_message(), &store).unwrap()
            else {
                panic!("SCRAM needs two steps");
            };
            let client_final = client.final_message(&server_first).unwrap();
            let SaslStep::Complete {
                user,
                response,
                expires_at_ms,
            } = server.step(&client_final, &store).unwrap()
            else {
                panic!("the second step completes SCRAM");
            };
            assert_eq!(user, "bob");
            assert_eq!(expires_at_ms, None);
            client.verify_server_final(&response).unwrap();
            assert!(server.is_over());
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Whatever bytes a client sends, in one step or two, no mechanism panics.
            #[test]
            fn arbitrary_tokens_never_panic(
                first in proptest::collection::vec(any::<u8>(), 0..256),
                second in proptest::collection::vec(any::<u8>(), 0..256),
            ) {
                let store = MemoryStore::default().with_user("u", "p", ScramMechanism::Sha256);
                for mechanism in Mechanism::ALL {
                    let mut server = SaslServer::new(mechanism, &ServerOptions::default());
                    let _ = server.step(&first, &store);
                    let _ = server.step(&second, &store);
                }
            }
        }
    }
}
