//! The fake broker's SASL: SaslHandshake and SaslAuthenticate over strom-security's
//! `SaslServer` (the broker's own exchanges), with the users' passwords in memory. A
//! connection that has not logged in may send only ApiVersions and the two SASL requests,
//! as with Kafka; anything else closes it.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use strom_security::oauthbearer::JwtValidator;
use strom_security::sasl::{CredentialStore, Mechanism, SaslServer, SaslStep, ServerOptions};
use strom_security::scram::{new_credential, ITERATIONS_MIN};
use strom_types::security::{ScramCredential, ScramMechanism};

use super::{encode, FakeState};

const SASL_HANDSHAKE: i16 = 17;
const API_VERSIONS: i16 = 18;
const SASL_AUTHENTICATE: i16 = 36;

/// The SASL side of a fake broker.
pub struct FakeSasl {
    pub mechanisms: Vec<Mechanism>,
    /// Passwords by user name.
    pub users: BTreeMap<String, String>,
    /// Sent in SaslAuthenticate v1+ once a login succeeds.
    pub session_lifetime_ms: i64,
    /// Validates OAUTHBEARER tokens; without it every token is refused.
    pub oauth: Option<Arc<JwtValidator>>,
    /// The users logged in, one entry per login.
    pub logins: Vec<String>,
}

impl FakeSasl {
    /// PLAIN and both SCRAMs for one user.
    pub fn user(name: &str, password: &str) -> FakeSasl {
        FakeSasl {
            mechanisms: vec![
                Mechanism::Plain,
                Mechanism::ScramSha256,
                Mechanism::ScramSha512,
            ],
            users: BTreeMap::from([(name.to_string(), password.to_string())]),
            session_lifetime_ms: 0,
            oauth: None,
            logins: Vec::new(),
        }
    }
}

/// Credentials made from the passwords on demand (a new salt each time, which is fine: one
/// exchange asks once).
struct Passwords<'a>(&'a BTreeMap<String, String>);

impl CredentialStore for Passwords<'_> {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        let password = self.0.get(user)?;
        Some(new_credential(mechanism, password, ITERATIONS_MIN))
    }
}

/// One connection's login.
#[derive(Default)]
pub struct SaslSession {
    exchange: Option<SaslServer>,
    authenticated: bool,
}

/// Whether the fake must close a connection sending `key`: it has not logged in yet.
pub fn refuses(state: &FakeState, session: &SaslSession, key: i16) -> bool {
    state.sasl.is_some()
        && !session.authenticated
        && ![API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE].contains(&key)
}

/// Answers SaslHandshake (17) and SaslAuthenticate (36).
pub fn handle(
    state: &mut FakeState,
    session: &mut SaslSession,
    key: i16,
    version: i16,
    mut body: Bytes,
) -> Option<(BytesMut, i16)> {
    let sasl = state
        .sasl
        .as_mut()
        .expect("SASL requests reach a SASL fake");
    if key == SASL_HANDSHAKE {
        let request = SaslHandshakeRequest::decode(&mut body, version).unwrap();
        let response = handshake(sasl, session, request.mechanism.as_str());
        return encode(&response, version);
    }
    let request = SaslAuthenticateRequest::decode(&mut body, version).unwrap();
    let response = authenticate(sasl, session, &request.auth_bytes, version);
    encode(&response, version)
}

fn handshake(sasl: &FakeSasl, session: &mut SaslSession, name: &str) -> SaslHandshakeResponse {
    let enabled = sasl
        .mechanisms
        .iter()
        .map(|mechanism| StrBytes::from_static_str(mechanism.name()))
        .collect();
    let response = SaslHandshakeResponse::default().with_mechanisms(enabled);
    match Mechanism::parse(name).filter(|mechanism| sasl.mechanisms.contains(mechanism)) {
        Some(mechanism) => {
            let options = ServerOptions {
                oauth: sasl.oauth.clone(),
            };
            session.exchange = Some(SaslServer::new(mechanism, &options));
            response
        }
        None => response.with_error_code(33),
    }
}

fn authenticate(
    sasl: &mut FakeSasl,
    session: &mut SaslSession,
    token: &[u8],
    version: i16,
) -> SaslAuthenticateResponse {
    let response = SaslAuthenticateResponse::default();
    let Some(exchange) = session.exchange.as_mut() else {
        return response.with_error_code(34);
    };
    match exchange.step(token, &Passwords(&sasl.users)) {
        Ok(SaslStep::Continue(challenge)) => response.with_auth_bytes(Bytes::from(challenge)),
        Ok(SaslStep::Complete {
            user,
            response: last,
            ..
        }) => {
            session.authenticated = true;
            sasl.logins.push(user);
            let lifetime_ms = if version >= 1 {
                sasl.session_lifetime_ms
            } else {
                0
            };
            response
                .with_auth_bytes(Bytes::from(last))
                .with_session_lifetime_ms(lifetime_ms)
        }
        Err(error) => response
            .with_error_code(58)
            .with_error_message(Some(StrBytes::from_string(error.message))),
    }
}
