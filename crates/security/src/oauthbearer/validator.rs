//! [`JwtValidator`]: checks an OAUTHBEARER token as Kafka's broker-side JWT validator (KIP-768)
//! does: a signature by a key of the configured JWKS, then the time, issuer, audience and
//! subject claims.
//!
//! The validator is shared by every connection of a listener (behind an `Arc`). Its key set is
//! replaced whole when it is reloaded: validations keep reading the old set meanwhile, and one
//! reload at a time is in flight. A reload happens when the broker asks
//! ([`JwtValidator::refresh_if_older_than`], from a timer) or when a token names a key the set
//! does not have, at most once per [`JWKS_RELOAD_INTERVAL_MS_MIN`].

use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::jwks::{self, VerificationKey};

/// Kafka's `sasl.oauthbearer.sub.claim.name` default.
pub const SUB_CLAIM_NAME_DEFAULT: &str = "sub";
/// Kafka's `sasl.oauthbearer.clock.skew.seconds` default.
pub const CLOCK_SKEW_SECONDS_DEFAULT: u64 = 30;
/// Kafka's `sasl.oauthbearer.jwks.endpoint.refresh.ms` default: how often the broker should
/// call [`JwtValidator::refresh_if_older_than`].
pub const JWKS_REFRESH_MS_DEFAULT: u64 = 60 * 60 * 1000;
/// The shortest time between two reloads of the key set, so that tokens naming unknown keys
/// cannot make the broker fetch the key set at every attempt.
pub const JWKS_RELOAD_INTERVAL_MS_MIN: u64 = 5_000;

/// How a listener validates OAUTHBEARER tokens (Kafka's `sasl.oauthbearer.*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    /// `file:///path` or `https://...`.
    pub jwks_endpoint_url: String,
    /// When not empty, the token's `aud` must name one of these.
    pub expected_audience: Vec<String>,
    /// When set, the token's `iss` must be this.
    pub expected_issuer: Option<String>,
    /// The claim whose value is the user name.
    pub sub_claim_name: String,
    /// How far the broker's clock and the issuer's may disagree on `exp`, `nbf` and `iat`.
    pub clock_skew_seconds: u64,
}

impl OAuthConfig {
    /// A configuration with Kafka's defaults and no audience or issuer check.
    pub fn new(jwks_endpoint_url: impl Into<String>) -> OAuthConfig {
        OAuthConfig {
            jwks_endpoint_url: jwks_endpoint_url.into(),
            expected_audience: Vec::new(),
            expected_issuer: None,
            sub_claim_name: SUB_CLAIM_NAME_DEFAULT.to_string(),
            clock_skew_seconds: CLOCK_SKEW_SECONDS_DEFAULT,
        }
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedToken {
    /// The value of the subject claim: the user of the principal `User:<subject>`.
    pub subject: String,
    /// The token's `exp`, in unix ms.
    pub expires_at_ms: i64,
}

/// Why a key set could not be loaded or a token was refused. The token errors say what is
/// wrong with the token, never what was expected, so they may reach the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("the JWKS endpoint {url} is not supported: {reason}")]
    UnsupportedEndpoint { url: String, reason: String },
    #[error("could not load the JWKS from {url}: {reason}")]
    JwksUnavailable { url: String, reason: String },
    #[error("the JWKS from {url} is not usable: {reason}")]
    JwksInvalid { url: String, reason: String },
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("the token's algorithm {0:?} is refused: only public-key signatures are accepted (RS*, PS*, ES256, ES384, EdDSA)")]
    AlgorithmRefused(String),
    #[error("no key of the JWKS has the token's key id {kid:?} and algorithm {algorithm:?}")]
    UnknownKey {
        kid: Option<String>,
        algorithm: Algorithm,
    },
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token expired at {expires_at_ms} (unix ms)")]
    Expired { expires_at_ms: i64 },
    #[error("the token is not valid before {not_before_ms} (unix ms)")]
    NotYetValid { not_before_ms: i64 },
    #[error("the token was issued in the future, at {issued_at_ms} (unix ms)")]
    IssuedInFuture { issued_at_ms: i64 },
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    #[error("the token's audience is not accepted")]
    WrongAudience,
    #[error("the token has no {0:?} claim, or it is empty")]
    MissingClaim(String),
}

/// Validates JWTs against the keys of one JWKS endpoint.
pub struct JwtValidator {
    config: OAuthConfig,
    keys: RwLock<Arc<Vec<Arc<VerificationKey>>>>,
    /// When the last reload was tried (unix ms), successful or not; held while one is in flight.
    reload_attempted_at_ms: Mutex<i64>,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("JwtValidator")
            .field("config", &self.config)
            .field("keys", &self.current_keys().len())
            .finish()
    }
}

impl JwtValidator {
    /// Loads the key set now: a configuration whose keys cannot be read is refused at start.
    pub fn new(config: OAuthConfig) -> Result<JwtValidator, OAuthError> {
        JwtValidator::new_at(config, now_ms())
    }

    pub(crate) fn new_at(config: OAuthConfig, now_ms: i64) -> Result<JwtValidator, OAuthError> {
        let keys = jwks::load(&config.jwks_endpoint_url)?;
        Ok(JwtValidator {
            config,
            keys: RwLock::new(Arc::new(keys)),
            reload_attempted_at_ms: Mutex::new(now_ms),
        })
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// Checks a token's signature and claims against the clock of this machine.
    pub fn validate(&self, token: &str) -> Result<ValidatedToken, OAuthError> {
        self.validate_at(token, now_ms())
    }

    /// Checks a token as if the time were `now_ms` (unix ms).
    pub fn validate_at(&self, token: &str, now_ms: i64) -> Result<ValidatedToken, OAuthError> {
        let header = Header::peek(token)?;
        let key = self.key_for(header.kid.as_deref(), header.algorithm, now_ms)?;
        let mut validation = Validation::new(header.algorithm);
        // The claims are checked below against `now_ms`; jsonwebtoken only checks the signature.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::Crypto(_) => OAuthError::BadSignature,
                _ => OAuthError::Malformed(error.to_string()),
            })?;
        check_claims(&data.claims, &self.config, now_ms)
    }

    /// Reloads the key set when the last reload (tried) is older than `max_age_ms`; the broker
    /// calls it from a timer, every [`JWKS_REFRESH_MS_DEFAULT`] by default. Returns whether it
    /// reloaded. On an error the old keys stay.
    pub fn refresh_if_older_than(&self, max_age_ms: u64) -> Result<bool, OAuthError> {
        self.reload_if_older_than(max_age_ms, now_ms())
    }

    fn reload_if_older_than(&self, max_age_ms: u64, now_ms: i64) -> Result<bool, OAuthError> {
        let mut attempted_at_ms = self
            .reload_attempted_at_ms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let age_ms = now_ms.saturating_sub(*attempted_at_ms);
        if age_ms < i64::try_from(max_age_ms).unwrap_or(i64::MAX) {
            return Ok(false);
        }
        *attempted_at_ms = now_ms;
        let keys = jwks::load(&self.config.jwks_endpoint_url)?;
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        tracing::info!(url = %self.config.jwks_endpoint_url, "reloaded the OAUTHBEARER JWKS");
        Ok(true)
    }

    fn current_keys(&self) -> Arc<Vec<Arc<VerificationKey>>> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The key for a token; a key the set does not have makes it reload once (the issuer may
    /// have rotated its keys), within [`JWKS_RELOAD_INTERVAL_MS_MIN`].
    fn key_for(
        &self,
        kid: Option<&str>,
        algorithm: Algorithm,
        now_ms: i64,
    ) -> Result<Arc<VerificationKey>, OAuthError> {
        if let Some(key) = select_key(&self.current_keys(), kid, algorithm) {
            return Ok(key);
        }
        if let Err(error) = self.reload_if_older_than(JWKS_RELOAD_INTERVAL_MS_MIN, now_ms) {
            tracing::warn!(%error, "could not reload the OAUTHBEARER JWKS for an unknown key");
        }
        select_key(&self.current_keys(), kid, algorithm).ok_or_else(|| OAuthError::UnknownKey {
            kid: kid.map(str::to_string),
            algorithm,
        })
    }
}

/// The key with the token's `kid`; a token without one may use the only key that verifies its
/// algorithm.
fn select_key(
    keys: &[Arc<VerificationKey>],
    kid: Option<&str>,
    algorithm: Algorithm,
) -> Option<Arc<VerificationKey>> {
    let mut candidates = keys.iter().filter(|key| key.verifies(algorithm));
    let chosen = match kid {
        Some(kid) => candidates.find(|key| key.kid.as_deref() == Some(kid)),
        None => match (candidates.next(), candidates.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        },
    };
    chosen.cloned()
}

/// Whether Strom accepts signatures made with this algorithm: public keys only, since a shared
/// secret would have to live on every broker and would let any of them mint tokens.
pub(crate) fn accepts(algorithm: Algorithm) -> bool {
    !matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    )
}

/// The parts of a JOSE header that pick the key.
struct Header {
    algorithm: Algorithm,
    kid: Option<String>,
}

impl Header {
    /// Reads the header before anything else, to refuse `none`, HMAC and critical extensions
    /// with a clear error.
    fn peek(token: &str) -> Result<Header, OAuthError> {
        let malformed = |reason: &str| OAuthError::Malformed(reason.to_string());
        let segments: Vec<&str> = token.split('.').collect();
        if segments.len() != 3 {
            return Err(malformed("a JWS has three parts separated by dots"));
        }
        let json = URL_SAFE_NO_PAD
            .decode(segments[0])
            .map_err(|_| malformed("the header is not base64url"))?;
        let header: Map<String, Value> = serde_json::from_slice(&json)
            .map_err(|_| malformed("the header is not a JSON object"))?;
        let name = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("the header has no alg"))?;
        let algorithm = Algorithm::from_str(name)
            .ok()
            .filter(|algorithm| accepts(*algorithm))
            .ok_or_else(|| OAuthError::AlgorithmRefused(name.to_string()))?;
        // RFC 7515 section 4.1.11: extensions marked critical that we do not know mean refusal.
        if header.contains_key("crit") {
            return Err(malformed("the header has critical extensions (crit)"));
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(Header { algorithm, kid })
    }
}

/// Checks the claims of a token whose signature verified; pure, so tests give it any clock.
pub(crate) fn check_claims(
    claims: &Map<String, Value>,
    config: &OAuthConfig,
    now_ms: i64,
) -> Result<ValidatedToken, OAuthError> {
    let skew_ms = i64::try_from(config.clock_skew_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
    let expires_at_ms =
        time_claim_ms(claims, "exp")?.ok_or_else(|| OAuthError::MissingClaim("exp".into()))?;
    if now_ms > expires_at_ms.saturating_add(skew_ms) {
        return Err(OAuthError::Expired { expires_at_ms });
    }
    if let Some(not_before_ms) = time_claim_ms(claims, "nbf")? {
        if not_before_ms > now_ms.saturating_add(skew_ms) {
            return Err(OAuthError::NotYetValid { not_before_ms });
        }
    }
    if let Some(issued_at_ms) = time_claim_ms(claims, "iat")? {
        if issued_at_ms > now_ms.saturating_add(skew_ms) {
            return Err(OAuthError::IssuedInFuture { issued_at_ms });
        }
    }
    check_issuer(claims, config)?;
    check_audience(claims, config)?;
    let subject = claims
        .get(&config.sub_claim_name)
        .and_then(Value::as_str)
        .filter(|subject| !subject.is_empty())
        .ok_or_else(|| OAuthError::MissingClaim(config.sub_claim_name.clone()))?;
    Ok(ValidatedToken {
        subject: subject.to_string(),
        expires_at_ms,
    })
}

/// A NumericDate claim (seconds, possibly fractional) in unix ms.
fn time_claim_ms(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, OAuthError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    match value.as_f64() {
        // `as` saturates: a date beyond the range of i64 ms is as good as never.
        Some(seconds) if seconds.is_finite() => Ok(Some((seconds * 1000.0) as i64)),
        _ => Err(OAuthError::Malformed(format!(
            "the {name} claim is not a number"
        ))),
    }
}

fn check_issuer(claims: &Map<String, Value>, config: &OAuthConfig) -> Result<(), OAuthError> {
    let Some(expected) = &config.expected_issuer else {
        return Ok(());
    };
    match claims.get("iss").and_then(Value::as_str) {
        Some(issuer) if issuer == expected => Ok(()),
        _ => Err(OAuthError::WrongIssuer),
    }
}

/// `aud` is one string or an array of them; one of them must be expected.
fn check_audience(claims: &Map<String, Value>, config: &OAuthConfig) -> Result<(), OAuthError> {
    if config.expected_audience.is_empty() {
        return Ok(());
    }
    let expected = |audience: &Value| {
        audience
            .as_str()
            .is_some_and(|audience| config.expected_audience.iter().any(|one| one == audience))
    };
    let accepted = match claims.get("aud") {
        Some(Value::Array(audiences)) => audiences.iter().any(expected),
        Some(audience) => expected(audience),
        None => false,
    };
    if !accepted {
        return Err(OAuthError::WrongAudience);
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;
    use serde_json::{json, Value};

    use super::super::fixtures::*;
    use super::*;

    /// One fixed instant for every time check below: 2030-01-01T00:00:00Z.
    const NOW_SECONDS: i64 = 1_893_456_000;
    const NOW_MS: i64 = NOW_SECONDS * 1000;

    fn validator(config: OAuthConfig) -> JwtValidator {
        JwtValidator::new_at(config, NOW_MS).unwrap()
    }

    fn claims(extra: Value) -> Value {
        let mut claims = json!({"sub": "alice", "exp": NOW_SECONDS + 600, "iat": NOW_SECONDS - 10});
        for (key, value) in extra.as_object().unwrap() {
            claims[key] = value.clone();
        }
        claims
    }

    fn rsa_token(claims: &Value) -> String {
        sign(claims, Algorithm::RS256, Some(RSA_KID), RSA_SIGNER)
    }

    fn refusal(validator: &JwtValidator, token: &str) -> OAuthError {
        validator.validate_at(token, NOW_MS).unwrap_err()
    }

    /// A JWT with any header, payload and signature, signed or not.
    fn raw_token(header: &Value, payload: &Value, signature: &[u8]) -> String {
        let part = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        format!(
            "{}.{}.{}",
            part(header.to_string().as_bytes()),
            part(payload.to_string().as_bytes()),
            part(signature)
        )
    }

    #[test]
    fn rsa_and_ec_signed_tokens_validate() {
        let validator = validator(OAuthConfig::new(jwks_url()));
        let expected = ValidatedToken {
            subject: "alice".to_string(),
            expires_at_ms: (NOW_SECONDS + 600) * 1000,
        };
        let rsa = rsa_token(&claims(json!({})));
        assert_eq!(validator.validate_at(&rsa, NOW_MS).unwrap(), expected);
        let ec = sign(
            &claims(json!({})),
            Algorithm::ES256,
            Some(EC_KID),
            EC_SIGNER,
        );
        assert_eq!(validator.validate_at(&ec, NOW_MS).unwrap(), expected);
        // On the machine's clock.
        let live = rsa_token(&json!({"sub": "bob", "exp": now_seconds() + 60}));
        assert_eq!(validator.validate(&live).unwrap().subject, "bob");
    }

    #[test]
    fn expiry_allows_the_clock_skew_and_no_more() {
        let validator = validator(OAuthConfig::new(jwks_url()));
        let within_skew = rsa_token(&claims(json!({"exp": NOW_SECONDS - 20})));
        assert!(validator.validate_at(&within_skew, NOW_MS).is_ok());
        let expired = rsa_token(&claims(json!({"exp": NOW_SECONDS - 31})));
        assert_eq!(
            refusal(&validator, &expired),
            OAuthError::Expired {
                expires_at_ms: (NOW_SECONDS - 31) * 1000
            }
        );
        let no_exp = rsa_token(&json!({"sub": "alice"}));
        assert_eq!(
            refusal(&validator, &no_exp),
            OAuthError::MissingClaim("exp".into())
        );
        let text_exp = rsa_token(&claims(json!({"exp": "tomorrow"})));
        assert!(matches!(
            refusal(&validator, &text_exp),
            OAuthError::Malformed(_)
        ));
        let fractional = rsa_token(&claims(json!({"exp": NOW_SECONDS as f64 + 0.5})));
        let validated = validator.validate_at(&fractional, NOW_MS).unwrap();
        assert_eq!(validated.expires_at_ms, NOW_MS + 500);
    }

    #[test]
    fn tokens_from_the_future_are_refused() {
        let validator = validator(OAuthConfig::new(jwks_url()));
        let not_yet = rsa_token(&claims(json!({"nbf": NOW_SECONDS + 60})));
        assert!(matches!(
            refusal(&validator, &not_yet),
            OAuthError::NotYetValid { .. }
        ));
        let issued_later = rsa_token(&claims(json!({"iat": NOW_SECONDS + 60})));
        assert!(matches!(
            refusal(&validator, &issued_later),
            OAuthError::IssuedInFuture { .. }
        ));
        let within_skew = rsa_token(&claims(
            json!({"nbf": NOW_SECONDS + 20, "iat": NOW_SECONDS + 20}),
        ));
        assert!(validator.validate_at(&within_skew, NOW_MS).is_ok());
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let config = OAuthConfig {
            expected_audience: vec!["strom".into(), "kafka".into()],
            expected_issuer: Some("https://issuer.example".into()),
            ..OAuthConfig::new(jwks_url())
        };
        let validator = validator(config);
        let issuer = json!("https://issuer.example");
        let good = rsa_token(&claims(json!({"iss": issuer, "aud": "kafka"})));
        assert!(validator.validate_at(&good, NOW_MS).is_ok());
        let listed = rsa_token(&claims(json!({"iss": issuer, "aud": ["other", "strom"]})));
        assert!(validator.validate_at(&listed, NOW_MS).is_ok());

        let wrong_audience = rsa_token(&claims(json!({"iss": issuer, "aud": "other"})));
        assert_eq!(
            refusal(&validator, &wrong_audience),
            OAuthError::WrongAudience
        );
        let no_audience = rsa_token(&claims(json!({"iss": issuer})));
        assert_eq!(refusal(&validator, &no_audience), OAuthError::WrongAudience);
        let wrong_issuer = rsa_token(&claims(
            json!({"iss": "https://evil.example", "aud": "strom"}),
        ));
        assert_eq!(refusal(&validator, &wrong_issuer), OAuthError::WrongIssuer);
        let no_issuer = rsa_token(&claims(json!({"aud": "strom"})));
        assert_eq!(refusal(&validator, &no_issuer), OAuthError::WrongIssuer);

        // Without configuration, any issuer and audience pass.
        let open = self::validator(OAuthConfig::new(jwks_url()));
        assert!(open.validate_at(&wrong_issuer, NOW_MS).is_ok());
    }

    #[test]
    fn the_subject_claim_is_required_and_configurable() {
        let validator = validator(OAuthConfig::new(jwks_url()));
        let no_sub = rsa_token(&json!({"exp": NOW_SECONDS + 60}));
        assert_eq!(
            refusal(&validator, &no_sub),
            OAuthError::MissingClaim("sub".into())
        );
        let empty = rsa_token(&claims(json!({"sub": ""})));
        assert_eq!(
            refusal(&validator, &empty),
            OAuthError::MissingClaim("sub".into())
        );
        let number = rsa_token(&claims(json!({"sub": 7})));
        assert_eq!(
            refusal(&validator, &number),
            OAuthError::MissingClaim("sub".into())
        );

        let config = OAuthConfig {
            sub_claim_name: "client_id".into(),
            ..OAuthConfig::new(jwks_url())
        };
        let custom = self::validator(config);
        let token = rsa_token(&claims(json!({"client_id": "service-a"})));
        assert_eq!(
            custom.validate_at(&token, NOW_MS).unwrap().subject,
            "service-a"
        );
        assert_eq!(
            custom.validate_at(&no_sub, NOW_MS).unwrap_err(),
            OAuthError::MissingClaim("client_id".into())
        );
    }

    #[test]
    fn foreign_and_forged_signatures_are_refused() {
        let validator = validator(OAuthConfig::new(jwks_url()));
        let foreign = sign(
            &claims(json!({})),
            Algorithm::RS256,
            Some(RSA_KID),
            RSA_FOREIGN,
        );
        assert_eq!(refusal(&validator, &foreign), OAuthError::BadSignature);

        // A valid token whose payload was changed after signing.
        let token = rsa_token(&claims(json!({})));
        let mut parts: Vec<&str> = token.split('.').collect();
        let payload = URL_SAFE_NO_PAD.encode(claims(json!({"sub": "admin"})).to_string());
        parts[1] = &payload;
        assert_eq!(
            refusal(&validator, &parts.join(".")),
            OAuthError::BadSignature
        );

        // An RSA key id with an EC signature: the key does not verify ES256.
        let mixed = sign(
            &claims(json!({})),
            Algorithm::ES256,
            Some(RSA_KID),
            EC_SIGNER,
        );
        assert!(matches!(
            refusal(&validator, &mixed),
            OAuthError::UnknownKey { .. }
        ));
    }

    #[test]
    fn none_and_hmac_algorithms_are_refused() {
        let validator = validator(OAuthConfig::new(jwks_url()));
        let unsigned = raw_token(
            &json!({"alg": "none", "kid": RSA_KID}),
            &claims(json!({})),
            b"",
        );
        assert_eq!(
            refusal(&validator, &unsigned),
            OAuthError::AlgorithmRefused("none".into())
        );
        let header = jsonwebtoken::Header {
            kid: Some(RSA_KID.into()),
            ..jsonwebtoken::Header::new(Algorithm::HS256)
        };
        let key = jsonwebtoken::EncodingKey::from_secret(b"shared");
        let hmac = jsonwebtoken::encode(&header, &claims(json!({})), &key).unwrap();
        assert_eq!(
            refusal(&validator, &hmac),
            OAuthError::AlgorithmRefused("HS256".into())
        );
        let critical = raw_token(
            &json!({"alg": "RS256", "crit": ["exp"]}),
            &claims(json!({})),
            b"x",
        );
        assert!(matches!(
            refusal(&validator, &critical),
            OAuthError::Malformed(_)
        ));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let validator = validator(OAuthConfig::new(jwks_url()));
        for token in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "!!.e30.x",
            "e30.e30.x",
            "bm90IGpzb24.e30.x",
        ] {
            assert!(
                matches!(refusal(&validator, token), OAuthError::Malformed(_)),
                "{token}"
            );
        }
        let unreadable_payload =
            raw_token(&json!({"alg": "RS256", "kid": RSA_KID}), &json!([]), b"x");
        assert!(validator.validate_at(&unreadable_payload, NOW_MS).is_err());
    }

    #[test]
    fn a_token_without_kid_uses_the_only_key_for_its_algorithm() {
        let validator = validator(OAuthConfig::new(jwks_url()));
        let token = sign(&claims(json!({})), Algorithm::RS256, None, RSA_SIGNER);
        assert!(validator.validate_at(&token, NOW_MS).is_ok());
    }

    /// A JWKS file the test can rewrite.
    struct KeySetFile {
        _directory: tempfile::TempDir,
        path: std::path::PathBuf,
    }

    impl KeySetFile {
        fn new(keys: &[Value]) -> KeySetFile {
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("jwks.json");
            let file = KeySetFile {
                _directory: directory,
                path,
            };
            file.write(keys);
            file
        }

        fn write(&self, keys: &[Value]) {
            std::fs::write(&self.path, json!({ "keys": keys }).to_string()).unwrap();
        }

        fn url(&self) -> String {
            format!("file://{}", self.path.display())
        }
    }

    fn fixture_keys() -> Vec<Value> {
        let text = include_str!("../../tests/fixtures/oauth/jwks.json");
        let document: Value = serde_json::from_str(text).unwrap();
        document["keys"].as_array().unwrap().clone()
    }

    #[test]
    fn an_unknown_key_reloads_the_key_set_at_most_every_five_seconds() {
        let keys = fixture_keys();
        let (rsa, ec) = (keys[0].clone(), keys[1].clone());
        let file = KeySetFile::new(std::slice::from_ref(&rsa));
        let validator = validator(OAuthConfig::new(file.url()));
        let ec_token = sign(
            &claims(json!({})),
            Algorithm::ES256,
            Some(EC_KID),
            EC_SIGNER,
        );
        assert!(matches!(
            refusal(&validator, &ec_token),
            OAuthError::UnknownKey { .. }
        ));

        // The issuer publishes its new key; within five seconds of the last load, no reload.
        file.write(&[rsa, ec]);
        let soon_ms = NOW_MS + JWKS_RELOAD_INTERVAL_MS_MIN as i64 - 1;
        assert!(matches!(
            validator.validate_at(&ec_token, soon_ms),
            Err(OAuthError::UnknownKey { .. })
        ));
        let later_ms = NOW_MS + JWKS_RELOAD_INTERVAL_MS_MIN as i64;
        assert!(validator.validate_at(&ec_token, later_ms).is_ok());

        // A key set that breaks keeps the old keys, and the failed attempt counts as a reload.
        std::fs::write(&file.path, "broken").unwrap();
        let reload_ms = later_ms + JWKS_RELOAD_INTERVAL_MS_MIN as i64;
        assert!(validator.reload_if_older_than(0, reload_ms).is_err());
        assert!(validator.validate_at(&ec_token, reload_ms).is_ok());
        assert_eq!(validator.reload_if_older_than(1, reload_ms), Ok(false));
    }

    #[test]
    fn a_refresh_replaces_the_key_set() {
        let keys = fixture_keys();
        let file = KeySetFile::new(&keys);
        let validator = validator(OAuthConfig::new(file.url()));
        let ec_token = sign(
            &claims(json!({})),
            Algorithm::ES256,
            Some(EC_KID),
            EC_SIGNER,
        );
        assert!(validator.validate_at(&ec_token, NOW_MS).is_ok());
        // The issuer retires its EC key.
        file.write(&keys[..1]);
        assert_eq!(
            validator.reload_if_older_than(1000, NOW_MS + 999),
            Ok(false)
        );
        assert_eq!(
            validator.reload_if_older_than(1000, NOW_MS + 1000),
            Ok(true)
        );
        let at_ms = NOW_MS + 1001;
        assert!(matches!(
            validator.validate_at(&ec_token, at_ms),
            Err(OAuthError::UnknownKey { .. })
        ));
        // The public refresh, on the machine's clock, of a validator loaded just now.
        let fresh = JwtValidator::new(OAuthConfig::new(file.url())).unwrap();
        assert_eq!(
            fresh.refresh_if_older_than(JWKS_REFRESH_MS_DEFAULT),
            Ok(false)
        );
        assert_eq!(fresh.refresh_if_older_than(0), Ok(true));
    }

    #[test]
    fn a_bad_key_set_fails_at_start_naming_the_url() {
        let file = KeySetFile::new(&[]);
        let error = JwtValidator::new(OAuthConfig::new(file.url())).unwrap_err();
        assert!(matches!(error, OAuthError::JwksInvalid { .. }), "{error}");
        assert!(error.to_string().contains(&file.url()), "{error}");
        let validator = self::validator(OAuthConfig::new(jwks_url()));
        assert!(format!("{validator:?}").contains("jwks.json"));
    }
}
