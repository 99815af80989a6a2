//! SASL/OAUTHBEARER (RFC 7628) as Kafka's broker speaks it (KIP-255, KIP-768).
//!
//! The client sends one message, `n,[a=<authzid>],\x01auth=Bearer <jwt>\x01[key=value\x01]*\x01`;
//! the server validates the JWT with the listener's [`JwtValidator`] and completes with the
//! token's subject as the user and its `exp` as the session's end.
//!
//! - This module: the exchange and the message's grammar (and the client's side of it).
//! - `validator`: [`JwtValidator`], the signature and claim checks.
//! - `jwks`: reading the key set from `file://` or `https://`.
//!
//! RFC 7628 lets a server answer a bad token with a JSON error challenge, which the client
//! acknowledges with `\x01` before the server fails; Kafka does so. Here the step fails at once
//! with the reason, which Kafka's clients and librdkafka report the same way as a SCRAM failure.

mod jwks;
mod validator;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use jwks::{JWKS_BYTES_MAX, JWKS_FETCH_TIMEOUT_MS};
pub(crate) use validator::accepts;
pub use validator::{
    JwtValidator, OAuthConfig, OAuthError, ValidatedToken, CLOCK_SKEW_SECONDS_DEFAULT,
    JWKS_REFRESH_MS_DEFAULT, JWKS_RELOAD_INTERVAL_MS_MIN, SUB_CLAIM_NAME_DEFAULT,
};

use crate::exchange::{decode_saslname, Mechanism, SaslError, SaslStep};

/// The separator of RFC 7628's key-value pairs.
const SEPARATOR: char = '\x01';

/// One OAUTHBEARER exchange on the server side: one message, one verdict.
pub(crate) struct OAuthBearerServer {
    validator: Arc<JwtValidator>,
    over: bool,
}

impl OAuthBearerServer {
    pub(crate) fn new(validator: Arc<JwtValidator>) -> OAuthBearerServer {
        OAuthBearerServer {
            validator,
            over: false,
        }
    }

    pub(crate) fn step(&mut self, token: &[u8]) -> Result<SaslStep, SaslError> {
        if std::mem::replace(&mut self.over, true) {
            return Err(SaslError::exchange_over(Mechanism::OAuthBearer));
        }
        let response = ClientInitialResponse::parse(token)?;
        let validated = self.validator.validate(&response.token).map_err(|error| {
            SaslError::new(format!(
                "Authentication failed: the OAUTHBEARER token is invalid: {error}"
            ))
        })?;
        if response
            .authorization_id
            .is_some_and(|authorization_id| authorization_id != validated.subject)
        {
            return Err(SaslError::new(
                "Authentication failed: Client requested an authorization id that is different from the token's principal name",
            ));
        }
        Ok(SaslStep::Complete {
            user: validated.subject,
            response: Vec::new(),
            expires_at_ms: Some(validated.expires_at_ms),
        })
    }
}

/// The client's one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientInitialResponse {
    pub authorization_id: Option<String>,
    /// The JWT of `auth=Bearer <jwt>`.
    pub token: String,
    /// The SASL extensions (KIP-342); Strom validates none and ignores them, as Kafka does
    /// with extensions no callback validated.
    pub extensions: BTreeMap<String, String>,
}

fn malformed(reason: &str) -> SaslError {
    SaslError::new(format!(
        "Invalid OAUTHBEARER client first message: {reason}"
    ))
}

impl ClientInitialResponse {
    pub(crate) fn parse(token: &[u8]) -> Result<ClientInitialResponse, SaslError> {
        let text = std::str::from_utf8(token).map_err(|_| malformed("not UTF-8"))?;
        let (flag, rest) = text
            .split_once(',')
            .ok_or_else(|| malformed("no gs2 header"))?;
        if flag != "n" {
            return Err(malformed(
                "channel binding is not supported (gs2 flag must be n)",
            ));
        }
        let (authorization, pairs) = rest
            .split_once(',')
            .ok_or_else(|| malformed("no gs2 header"))?;
        let authorization_id = match authorization {
            "" => None,
            _ => Some(
                authorization
                    .strip_prefix("a=")
                    .and_then(decode_saslname)
                    .ok_or_else(|| malformed("invalid authorization id"))?,
            ),
        };
        let mut extensions = parse_pairs(pairs)?;
        let auth = extensions
            .remove("auth")
            .ok_or_else(|| malformed("'auth' not specified"))?;
        Ok(ClientInitialResponse {
            authorization_id,
            token: bearer_token(&auth)?,
            extensions,
        })
    }
}

/// `\x01key=value\x01...\x01\x01` into a map; a key may come once.
fn parse_pairs(text: &str) -> Result<BTreeMap<String, String>, SaslError> {
    let body = text
        .strip_prefix(SEPARATOR)
        .and_then(|body| body.strip_suffix(SEPARATOR))
        .ok_or_else(|| malformed("the key-value pairs are not framed by \\x01"))?;
    let mut pairs = BTreeMap::new();
    if body.is_empty() {
        return Ok(pairs);
    }
    let body = body
        .strip_suffix(SEPARATOR)
        .ok_or_else(|| malformed("a key-value pair does not end with \\x01"))?;
    for pair in body.split(SEPARATOR) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| malformed("a key-value pair without ="))?;
        let value_allowed = |byte: u8| matches!(byte, 0x21..=0x7e | b' ' | b'\t' | b'\r' | b'\n');
        if key.is_empty() || !key.bytes().all(|byte| byte.is_ascii_alphabetic()) {
            return Err(malformed("a key is not alphabetic"));
        }
        if value.is_empty() || !value.bytes().all(value_allowed) {
            return Err(malformed("a value is empty or not printable ASCII"));
        }
        if pairs.insert(key.to_string(), value.to_string()).is_some() {
            return Err(malformed("a key comes twice"));
        }
    }
    Ok(pairs)
}

/// The token of `Bearer <token>`; the scheme is case-insensitive, as in Kafka.
fn bearer_token(auth: &str) -> Result<String, SaslError> {
    let (scheme, token) = auth
        .split_once(' ')
        .ok_or_else(|| malformed("invalid 'auth' format"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed("the 'auth' scheme is not Bearer"));
    }
    let token = token.trim_start_matches(' ');
    let token_allowed =
        |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.');
    if token.is_empty() || !token.bytes().all(token_allowed) {
        return Err(malformed("invalid 'auth' format"));
    }
    Ok(token.to_string())
}

/// The message a client sends: `n,,\x01auth=Bearer <token>\x01[key=value\x01]*\x01`. The
/// extensions' keys must be alphabetic and their values printable, or the server refuses them.
pub fn client_initial_response(token: &str, extensions: &[(&str, &str)]) -> Vec<u8> {
    let mut message = format!("n,,{SEPARATOR}auth=Bearer {token}{SEPARATOR}");
    for (key, value) in extensions {
        message.push_str(&format!("{key}={value}{SEPARATOR}"));
    }
    message.push(SEPARATOR);
    message.into_bytes()
}

/// Keys and tokens for tests: `tests/fixtures/oauth` holds an RSA and an EC key and their JWKS,
/// and an RSA key that is in no JWKS.
#[cfg(test)]
pub(crate) mod fixtures {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::Value;

    pub(crate) const RSA_KID: &str = "strom-test-rsa";
    pub(crate) const EC_KID: &str = "strom-test-ec";
    pub(crate) const RSA_SIGNER: &[u8] = include_bytes!("../tests/fixtures/oauth/rsa-signer.pem");
    pub(crate) const RSA_FOREIGN: &[u8] = include_bytes!("../tests/fixtures/oauth/rsa-foreign.pem");
    pub(crate) const EC_SIGNER: &[u8] = include_bytes!("../tests/fixtures/oauth/ec-signer.pem");

    pub(crate) fn jwks_url() -> String {
        format!(
            "file://{}/tests/fixtures/oauth/jwks.json",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    /// A JWT over `claims`, signed with the PEM key.
    pub(crate) fn sign(
        claims: &Value,
        algorithm: Algorithm,
        kid: Option<&str>,
        pem: &[u8],
    ) -> String {
        let mut header = Header::new(algorithm);
        header.kid = kid.map(str::to_string);
        let key = match algorithm {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
            _ => EncodingKey::from_rsa_pem(pem),
        }
        .expect("the fixture keys are valid PEM");
        jsonwebtoken::encode(&header, claims, &key).expect("signing with a fixture key")
    }

    pub(crate) fn now_seconds() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs() as i64)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;
    use serde_json::json;

    use super::fixtures::*;
    use super::*;
    use crate::sasl::tests::MemoryStore;
    use crate::sasl::{SaslServer, ServerOptions};

    fn options() -> ServerOptions {
        let validator = JwtValidator::new(OAuthConfig::new(jwks_url())).unwrap();
        ServerOptions {
            oauth: Some(Arc::new(validator)),
        }
    }

    fn token_for(subject: &str, expires_at_seconds: i64) -> String {
        let claims = json!({"sub": subject, "exp": expires_at_seconds, "iat": now_seconds()});
        sign(&claims, Algorithm::RS256, Some(RSA_KID), RSA_SIGNER)
    }

    fn authenticate(message: &[u8]) -> Result<SaslStep, SaslError> {
        SaslServer::new(Mechanism::OAuthBearer, &options()).step(message, &MemoryStore::default())
    }

    #[test]
    fn a_valid_token_authenticates_its_subject_until_it_expires() {
        let expires_at_seconds = now_seconds() + 3600;
        let token = token_for("alice", expires_at_seconds);
        let message = client_initial_response(&token, &[("traceId", "x y")]);
        let step = authenticate(&message).unwrap();
        assert_eq!(
            step,
            SaslStep::Complete {
                user: "alice".to_string(),
                response: Vec::new(),
                expires_at_ms: Some(expires_at_seconds * 1000),
            }
        );
    }

    #[test]
    fn an_invalid_token_fails_the_step() {
        let token = token_for("alice", now_seconds() - 3600);
        let error = authenticate(&client_initial_response(&token, &[])).unwrap_err();
        assert!(error.message.contains("expired"), "{error}");
        let foreign = sign(
            &json!({"sub": "alice", "exp": now_seconds() + 3600}),
            Algorithm::RS256,
            Some(RSA_KID),
            RSA_FOREIGN,
        );
        let error = authenticate(&client_initial_response(&foreign, &[])).unwrap_err();
        assert!(error.message.contains("signature"), "{error}");
    }

    #[test]
    fn an_authorization_id_must_be_the_subject() {
        let token = token_for("alice", now_seconds() + 3600);
        let message = format!("n,a=alice,\x01auth=Bearer {token}\x01\x01");
        assert!(authenticate(message.as_bytes()).is_ok());
        let message = format!("n,a=admin,\x01auth=Bearer {token}\x01\x01");
        let error = authenticate(message.as_bytes()).unwrap_err();
        assert!(error.message.contains("authorization id"), "{error}");
    }

    #[test]
    fn the_client_message_parses() {
        let parsed =
            ClientInitialResponse::parse(b"n,a=us=2Cer,\x01auth=bearer  a.b-c_d\x01k=v v\x01\x01")
                .unwrap();
        assert_eq!(parsed.authorization_id.as_deref(), Some("us,er"));
        assert_eq!(parsed.token, "a.b-c_d");
        assert_eq!(parsed.extensions.get("k").map(String::as_str), Some("v v"));
        let built = client_initial_response("t.o.k", &[("a", "1")]);
        assert_eq!(built, b"n,,\x01auth=Bearer t.o.k\x01a=1\x01\x01");
    }

    #[test]
    fn malformed_client_messages_fail() {
        let refused = |message: &[u8]| ClientInitialResponse::parse(message).unwrap_err().message;
        assert!(refused(b"").contains("gs2"));
        assert!(refused(b"n,").contains("gs2"));
        assert!(refused(b"y,,\x01auth=Bearer t\x01\x01").contains("channel binding"));
        assert!(refused(b"n,x,\x01auth=Bearer t\x01\x01").contains("authorization"));
        assert!(refused(b"n,,auth=Bearer t\x01\x01").contains("framed"));
        assert!(refused(b"n,,\x01auth=Bearer t\x01").contains("end with"));
        assert!(refused(b"n,,\x01\x01").contains("'auth' not specified"));
        assert!(refused(b"n,,\x01k=v\x01\x01").contains("'auth' not specified"));
        assert!(refused(b"n,,\x01auth=Basic dXNlcg\x01\x01").contains("Bearer"));
        assert!(refused(b"n,,\x01auth=Bearer\x01\x01").contains("format"));
        assert!(refused(b"n,,\x01auth=Bearer a b\x01\x01").contains("format"));
        assert!(refused(b"n,,\x01auth=Bearer t\x01k1=v\x01\x01").contains("alphabetic"));
        assert!(refused(b"n,,\x01auth=Bearer t\x01k=\x01\x01").contains("value"));
        assert!(refused(b"n,,\x01auth=Bearer t\x01kv\x01\x01").contains("without ="));
        assert!(refused(b"n,,\x01auth=Bearer t\x01auth=Bearer u\x01\x01").contains("twice"));
        assert!(refused(b"n,,\x01auth=Bearer t\xff\x01\x01").contains("UTF-8"));
        // Kafka's client acknowledges an error challenge with a lone \x01: not a first message.
        assert!(refused(b"\x01").contains("gs2"));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Whatever the client sends, as bytes or near the grammar, nothing panics.
            #[test]
            fn arbitrary_messages_never_panic(
                bytes in proptest::collection::vec(any::<u8>(), 0..256),
                text in "[ny]?,(a=[a-z=23C]*)?,\x01?(auth=)?([Bb]earer)? ?[a-zA-Z0-9._=\x01 -]{0,40}\x01?",
            ) {
                let options = options();
                for message in [bytes.as_slice(), text.as_bytes()] {
                    let mut server = SaslServer::new(Mechanism::OAuthBearer, &options);
                    prop_assert!(server.step(message, &MemoryStore::default()).is_err());
                }
            }

            /// Arbitrary JWT-shaped strings are refused without a panic.
            #[test]
            fn arbitrary_tokens_never_validate(
                token in "[A-Za-z0-9_.-]{0,120}",
                header in "\\{\"alg\":\"(RS256|ES256|EdDSA|none|HS256)\"(,\"kid\":\"strom-test-(rsa|ec)\")?\\}",
                payload in proptest::collection::vec(any::<u8>(), 0..64),
            ) {
                use base64::engine::general_purpose::URL_SAFE_NO_PAD;
                use base64::Engine;
                let options = options();
                let validator = options.oauth.as_ref().unwrap();
                let shaped = format!(
                    "{}.{}.{}",
                    URL_SAFE_NO_PAD.encode(header),
                    URL_SAFE_NO_PAD.encode(&payload),
                    URL_SAFE_NO_PAD.encode(&payload),
                );
                prop_assert!(validator.validate(&token).is_err());
                prop_assert!(validator.validate(&shaped).is_err());
            }
        }
    }

    #[test]
    fn one_message_only() {
        let options = options();
        let mut server = SaslServer::new(Mechanism::OAuthBearer, &options);
        let store = MemoryStore::default();
        let token = token_for("alice", now_seconds() + 3600);
        server
            .step(&client_initial_response(&token, &[]), &store)
            .unwrap();
        let error = server
            .step(&client_initial_response(&token, &[]), &store)
            .unwrap_err();
        assert!(error.message.contains("already over"), "{error}");
    }
}
