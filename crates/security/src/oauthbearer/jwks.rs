//! Loading a JSON Web Key Set (RFC 7517) from `file://` or `https://`, keeping the keys that
//! can verify a signature.
//!
//! A key set often holds keys Strom cannot or must not use (encryption keys, shared secrets,
//! curves jsonwebtoken does not support): those are skipped with a warning, and the set is
//! refused only when no usable key is left.

use std::io::Read;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::OAuthError;

/// The largest key set read; a real one is a few KiB.
pub const JWKS_BYTES_MAX: u64 = 1024 * 1024;
/// How long an HTTPS fetch of the key set may take, connection included.
pub const JWKS_FETCH_TIMEOUT_MS: u64 = 10_000;

/// A public key that verifies signatures.
pub(crate) struct VerificationKey {
    pub kid: Option<String>,
    /// The JWK's `alg`: when present, the only algorithm the key may verify.
    pub algorithm: Option<Algorithm>,
    pub kind: KeyKind,
    pub decoding: DecodingKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyKind {
    fn signs_with(self, algorithm: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Rsa => matches!(algorithm, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::EcP256 => algorithm == ES256,
            KeyKind::EcP384 => algorithm == ES384,
            KeyKind::Ed25519 => algorithm == EdDSA,
        }
    }
}

impl std::fmt::Debug for VerificationKey {
    /// Names the key; jsonwebtoken's key material has no Debug of its own.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    /// Whether this key may verify a signature made with `algorithm`.
    pub(crate) fn verifies(&self, algorithm: Algorithm) -> bool {
        self.kind.signs_with(algorithm) && self.algorithm.is_none_or(|own| own == algorithm)
    }
}

/// Reads the key set at `url` and keeps its usable keys.
pub(crate) fn load(url: &str) -> Result<Vec<Arc<VerificationKey>>, OAuthError> {
    let text = fetch(url)?;
    parse_key_set(&text).map_err(|reason| OAuthError::JwksInvalid {
        url: url.to_string(),
        reason,
    })
}

/// Checks that `url` is one this module can read, without reading it.
pub(crate) fn check_url(url: &str) -> Result<(), OAuthError> {
    let unsupported = |reason: &str| OAuthError::UnsupportedEndpoint {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if let Some(path) = url.strip_prefix("file://") {
        if !file_path(path).starts_with('/') {
            return Err(unsupported(
                "a file URL names an absolute path: file:///path",
            ));
        }
        return Ok(());
    }
    if url.starts_with("https://") {
        return Ok(());
    }
    Err(unsupported(
        "only file:// and https:// are supported (keys fetched over plain http could be forged)",
    ))
}

/// `file:///path` and `file://localhost/path` both name `/path`.
fn file_path(path: &str) -> &str {
    path.strip_prefix("localhost").unwrap_or(path)
}

fn fetch(url: &str) -> Result<String, OAuthError> {
    check_url(url)?;
    let unavailable = |reason: String| OAuthError::JwksUnavailable {
        url: url.to_string(),
        reason,
    };
    let text = match url.strip_prefix("file://") {
        Some(path) => read_file(file_path(path)),
        None => get_https(url),
    }
    .map_err(unavailable)?;
    Ok(text)
}

fn read_file(path: &str) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|error| error.to_string())?;
    let mut text = String::new();
    file.take(JWKS_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|error| error.to_string())?;
    if text.len() as u64 > JWKS_BYTES_MAX {
        return Err(format!("longer than {JWKS_BYTES_MAX} bytes"));
    }
    Ok(text)
}

/// One blocking GET with rustls and the webpki roots, bounded in time and size.
fn get_https(url: &str) -> Result<String, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(JWKS_FETCH_TIMEOUT_MS)))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|error| error.to_string())?;
    response
        .body_mut()
        .with_config()
        .limit(JWKS_BYTES_MAX)
        .read_to_string()
        .map_err(|error| error.to_string())
}

/// The usable keys of a key set document; an error names what is wrong with it.
pub(crate) fn parse_key_set(text: &str) -> Result<Vec<Arc<VerificationKey>>, String> {
    let document: Value =
        serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    let keys = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no \"keys\" array")?;
    let mut usable = Vec::with_capacity(keys.len());
    for key in keys {
        match parse_key(key) {
            Ok(Some(key)) => usable.push(Arc::new(key)),
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(kid = ?key.get("kid"), %reason, "a JWKS key is skipped");
            }
        }
    }
    if usable.is_empty() {
        return Err("no key that can verify a signature (RSA, EC P-256/P-384 or Ed25519)".into());
    }
    Ok(usable)
}

/// One key: `None` for keys that are not for signatures or hold a shared secret, which are
/// skipped quietly; an error for keys Strom cannot read.
fn parse_key(value: &Value) -> Result<Option<VerificationKey>, String> {
    let text_field = |name: &str| value.get(name).and_then(Value::as_str);
    if text_field("use").is_some_and(|usage| usage != "sig") || text_field("kty") == Some("oct") {
        return Ok(None);
    }
    let algorithm = match text_field("alg") {
        None => None,
        Some(name) => match Algorithm::from_str(name) {
            Ok(algorithm) if super::accepts(algorithm) => Some(algorithm),
            _ => return Ok(None),
        },
    };
    let jwk: Jwk = serde_json::from_value(value.clone()).map_err(|error| error.to_string())?;
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::EllipticCurve(parameters) => match parameters.curve {
            EllipticCurve::P256 => KeyKind::EcP256,
            EllipticCurve::P384 => KeyKind::EcP384,
            _ => return Err(format!("the curve {:?} is not supported", parameters.curve)),
        },
        AlgorithmParameters::OctetKeyPair(parameters) => match parameters.curve {
            EllipticCurve::Ed25519 => KeyKind::Ed25519,
            _ => return Err(format!("the curve {:?} is not supported", parameters.curve)),
        },
        AlgorithmParameters::OctetKey(_) => return Ok(None),
    };
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|error| error.to_string())?;
    Ok(Some(VerificationKey {
        kid: jwk.common.key_id,
        algorithm,
        kind,
        decoding,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_KEY: &str = r#"{"kty":"RSA","kid":"r","n":"qy171SO8zkiRXCtvXwcltFIIvC33t6y7JQcLEeaC23E8ePNjlG3IaUxzix4D42MCM9UiPMc3CKg7i4aSnDXkO6cdQX0JTH-YVsZfiGFRF0jmonurY2w6V3A0qSVWV1JnVwZBWXof5axrms6dja41pILu5WI6YdoIUE4PLJT9Ab-k0Ow5o_tnUn_sLA4xe-HXlOdwQnEfFIrFa1CT0SnOM8ZSwqu1RGQoe_NV_da5ChaRCnS-vJsFvlAOzVodlORZxEq79TUW2Bkgqu1iwK5r3t8VJM6RWWqpcHCg6KniJ9f0Rh9bzwbDL-RPyii_Z-f18JdNXVZABWaK5gEFArU14w","e":"AQAB"}"#;

    fn key_set(keys: &[&str]) -> String {
        format!(r#"{{"keys":[{}]}}"#, keys.join(","))
    }

    #[test]
    fn the_fixture_key_set_has_an_rsa_and_an_ec_key() {
        let text = include_str!("../../tests/fixtures/oauth/jwks.json");
        let keys = parse_key_set(text).unwrap();
        let kids: Vec<_> = keys.iter().map(|key| key.kid.clone().unwrap()).collect();
        assert_eq!(kids, ["strom-test-rsa", "strom-test-ec"]);
        assert_eq!(keys[0].kind, KeyKind::Rsa);
        assert!(keys[0].verifies(Algorithm::RS256));
        assert!(
            !keys[0].verifies(Algorithm::PS256),
            "the JWK says RS256 only"
        );
        assert_eq!(keys[1].kind, KeyKind::EcP256);
        assert!(keys[1].verifies(Algorithm::ES256));
        assert!(!keys[1].verifies(Algorithm::ES384));
    }

    #[test]
    fn keys_not_for_signatures_are_skipped() {
        let encryption = RSA_KEY.replace(r#""kid":"r""#, r#""kid":"e","use":"enc""#);
        let oaep = RSA_KEY.replace(r#""kid":"r""#, r#""kid":"o","alg":"RSA-OAEP""#);
        let hmac = r#"{"kty":"oct","kid":"h","k":"c2VjcmV0"}"#;
        let p521 = r#"{"kty":"EC","kid":"p","crv":"P-521","x":"AA","y":"AA"}"#;
        let strange = r#"{"kty":"XYZ","kid":"x"}"#;
        let text = key_set(&[&encryption, &oaep, hmac, p521, strange, RSA_KEY]);
        let keys = parse_key_set(&text).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("r"));
        assert!(
            keys[0].verifies(Algorithm::PS512),
            "no alg: any RSA signature"
        );
        assert!(!keys[0].verifies(Algorithm::ES256));
    }

    #[test]
    fn unusable_key_sets_are_refused() {
        assert!(parse_key_set("not json").unwrap_err().contains("not JSON"));
        assert!(parse_key_set("{}").unwrap_err().contains("keys"));
        assert!(parse_key_set(&key_set(&[])).unwrap_err().contains("no key"));
        let hmac = r#"{"kty":"oct","k":"c2VjcmV0"}"#;
        assert!(parse_key_set(&key_set(&[hmac]))
            .unwrap_err()
            .contains("no key"));
    }

    #[test]
    fn load_errors_name_the_url() {
        let missing = "file:///nonexistent/strom/jwks.json";
        let error = load(missing).unwrap_err();
        assert!(
            matches!(error, OAuthError::JwksUnavailable { .. }),
            "{error}"
        );
        assert!(error.to_string().contains(missing), "{error}");

        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("jwks.json");
        std::fs::write(&path, "{\"keys\": 3}").unwrap();
        let url = format!("file://{}", path.display());
        let error = load(&url).unwrap_err();
        assert!(matches!(error, OAuthError::JwksInvalid { .. }), "{error}");
        assert!(error.to_string().contains(&url), "{error}");

        std::fs::write(&path, vec![b' '; JWKS_BYTES_MAX as usize + 1]).unwrap();
        let error = load(&url).unwrap_err();
        assert!(error.to_string().contains("longer than"), "{error}");
    }

    #[test]
    fn only_file_and_https_urls_are_read() {
        for url in [
            "http://127.0.0.1/jwks",
            "file://relative/jwks",
            "jwks.json",
            "",
        ] {
            let error = load(url).unwrap_err();
            assert!(
                matches!(error, OAuthError::UnsupportedEndpoint { .. }),
                "{url}: {error}"
            );
        }
        assert!(check_url("file://localhost/etc/jwks.json").is_ok());
    }

    #[test]
    fn an_https_endpoint_that_does_not_answer_is_an_error_naming_it() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let url = "https://127.0.0.1:1/jwks.json";
        let error = load(url).unwrap_err();
        assert!(
            matches!(error, OAuthError::JwksUnavailable { .. }),
            "{error}"
        );
        assert!(error.to_string().contains(url), "{error}");
    }
}
