//! SASL/OAUTHBEARER (RFC 7628, Kafka KIP-768): not written yet.

use std::sync::Arc;

use crate::sasl::{SaslError, SaslStep};

/// Validates JWTs against a JWKS (to come).
#[derive(Debug)]
pub struct JwtValidator {}

pub(crate) struct OAuthBearerServer {
    _validator: Arc<JwtValidator>,
}

impl OAuthBearerServer {
    pub(crate) fn new(validator: Arc<JwtValidator>) -> OAuthBearerServer {
        OAuthBearerServer {
            _validator: validator,
        }
    }

    pub(crate) fn step(&mut self, _token: &[u8]) -> Result<SaslStep, SaslError> {
        Err(SaslError::new("OAUTHBEARER is not written yet"))
    }
}
