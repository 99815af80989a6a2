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

use strom_types::security::{ScramCredential, ScramMechanism};

use crate::oauthbearer::{JwtValidator, OAuthBearerServer};
use crate::plain::PlainServer;
use crate::scram::ScramServer;

/// The longest token a client may send in one step. A SCRAM message is about a hundred bytes
/// and a JWT a few KiB; anything longer is refused before it is parsed.
pub const TOKEN_BYTES_MAX: usize = 64 * 1024;

/// A SASL mechanism Strom's broker speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OAuthBearer,
}

impl Mechanism {
    /// Every mechanism, in the order the broker lists them.
    pub const ALL: [Mechanism; 4] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
        Mechanism::OAuthBearer,
    ];

    /// The mechanism a client names in SaslHandshake. Names are case-sensitive, as in Kafka.
    pub fn parse(name: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .find(|mechanism| mechanism.name() == name)
    }

    /// The IANA name, as SaslHandshake carries it.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The SCRAM variant, for the two SCRAM mechanisms.
    pub fn scram(self) -> Option<ScramMechanism> {
        match self {
            Mechanism::ScramSha256 => Some(ScramMechanism::Sha256),
            Mechanism::ScramSha512 => Some(ScramMechanism::Sha512),
            Mechanism::Plain | Mechanism::OAuthBearer => None,
        }
    }
}

impl From<ScramMechanism> for Mechanism {
    fn from(mechanism: ScramMechanism) -> Mechanism {
        match mechanism {
            ScramMechanism::Sha256 => Mechanism::ScramSha256,
            ScramMechanism::Sha512 => Mechanism::ScramSha512,
        }
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Where SCRAM (and PLAIN) credentials come from: the broker implements it over its metadata
/// image. PLAIN has no passwords of its own; it checks a password against these credentials.
pub trait CredentialStore {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;
}

/// What a listener's exchanges need beyond credentials.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// The validator of OAUTHBEARER tokens; without one, OAUTHBEARER exchanges fail.
    pub oauth: Option<Arc<JwtValidator>>,
}

/// What one step of an exchange decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send this challenge back; the exchange goes on.
    Continue(Vec<u8>),
    /// Authenticated as `user` (the principal will be `User:<user>`); send `response` (may be
    /// empty). `expires_at_ms`: unix ms after which the credential is no longer valid (a JWT's
    /// `exp`), if any.
    Complete {
        user: String,
        response: Vec<u8>,
        expires_at_ms: Option<i64>,
    },
}

/// A failed exchange. The message is safe to send to the client: it never says whether a user
/// exists, and never echoes a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SaslError {
    pub message: String,
}

impl SaslError {
    pub fn new(message: impl Into<String>) -> SaslError {
        SaslError {
            message: message.into(),
        }
    }

    /// Kafka's words for a wrong password or an unknown user, the same for both.
    pub fn invalid_credentials(mechanism: Mechanism) -> SaslError {
        SaslError::new(format!(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
        ))
    }

    /// A token that came after the exchange had completed or failed.
    pub fn exchange_over(mechanism: Mechanism) -> SaslError {
        SaslError::new(format!(
            "Authentication failed: the {mechanism} exchange is already over"
        ))
    }
}

/// Decodes a saslname (RFC 5802 section 5.1, also used by RFC 7628's gs2 header): `=2C` stands
/// for `,` and `=3D` for `=`; any other `=` is an error, and so is an empty name or a NUL.
pub(crate) fn decode_saslname(encoded: &str) -> Option<String> {
    let mut decoded = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(position) = rest.find('=') {
        decoded.push_str(&rest[..position]);
        decoded.push(match rest.get(position..position + 3)? {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &rest[position + 3..];
    }
    decoded.push_str(rest);
    (!decoded.is_empty() && !decoded.contains('\0')).then_some(decoded)
}

/// The saslname for a user name: the inverse of [`decode_saslname`].
pub(crate) fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
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
    use crate::scram;

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
