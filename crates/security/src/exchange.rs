//! The vocabulary every SASL mechanism shares: which [`Mechanism`], where credentials come
//! from ([`CredentialStore`]), what a step yields ([`SaslStep`], [`SaslError`]), and RFC 5802's
//! saslname escaping. The `sasl` module drives the mechanisms with it; `plain`,
//! `scram` and `oauthbearer` implement them.

use strom_types::security::{ScramCredential, ScramMechanism};

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
