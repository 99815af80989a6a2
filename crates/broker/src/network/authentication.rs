//! Who is on the other end of a connection: the listener it came through, its principal, and
//! on SASL listeners the SaslHandshake / SaslAuthenticate exchange that sets that principal
//! (Kafka's `SaslServerAuthenticator`).
//!
//! Lifecycle of a [`Session`], owned by the connection's reader task:
//! - PLAINTEXT: `User:ANONYMOUS` from the start. SSL: the client certificate's subject DN
//!   through `ssl.principal.mapping.rules`, or `User:ANONYMOUS` without one.
//! - SASL listeners start unauthenticated. Only ApiVersions and SaslHandshake are accepted,
//!   then SaslAuthenticate requests (or, after a v0 handshake, raw tokens without a Kafka
//!   header) until the mechanism completes. Anything else closes the connection, and so does a
//!   failed login, after `connection.failed.authentication.delay.ms` and an answer of
//!   SASL_AUTHENTICATION_FAILED. Frames before authentication are held to
//!   [`UNAUTHENTICATED_FRAME_BYTES_MAX`] (Kafka's `sasl.server.max.receive.size`).
//! - Once authenticated, with `connections.max.reauth.ms` set, the session expires: the client
//!   re-authenticates (KIP-368) with a new handshake on the same connection, as the same
//!   principal; a request after expiry closes the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use strom_protocol::{decode_request, encode_response_chunks};
use strom_security::sasl::{CredentialStore, Mechanism, SaslServer, SaslStep};
use strom_types::security::{ScramCredential, ScramMechanism};
use strom_types::ErrorCode;

use crate::config::listeners::SecurityProtocol;
pub use crate::context::RequestContext;
use crate::handlers::str_bytes;
use crate::Broker;

/// The most a frame may hold before its connection has authenticated (Kafka's
/// `sasl.server.max.receive.size` default): a hostile size prefix cannot make the broker read
/// megabytes from a stranger.
pub const UNAUTHENTICATED_FRAME_BYTES_MAX: usize = 512 * 1024;

/// The principal of a connection that has not authenticated (or needs not).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// What the connection's reader needs to know about the listener a connection came through.
pub struct ListenerContext {
    pub name: String,
    pub protocol: SecurityProtocol,
    /// The acceptor of a TLS listener, read for each connection: AlterConfigs may swap it.
    pub tls: Option<Arc<crate::listener_tls::SharedAcceptor>>,
    /// Its open connections, for `strom_connections{listener}`.
    pub connections: crate::telemetry::ListenerConnections,
}

/// What the reader does with a frame, once the session has looked at it.
pub enum Intercepted {
    /// An ordinary request: dispatch it.
    Pass(Bytes),
    /// The session answered it (SASL); send this.
    Answer(Vec<Bytes>),
    /// Send this, then close the connection.
    AnswerAndClose(Vec<Bytes>),
    /// Close the connection; the reason is for the log.
    Close(String),
}

enum Phase {
    /// No SASL on this listener, or the exchange is done.
    Authenticated,
    /// A SASL listener waiting for SaslHandshake.
    AwaitingHandshake,
    /// Mid-exchange: `raw` after a v0 handshake (tokens come without a Kafka header).
    Exchanging {
        mechanism: Mechanism,
        server: Box<SaslServer>,
        raw: bool,
    },
}

/// One connection's authentication state; see the module documentation for its lifecycle.
pub struct Session {
    pub context: RequestContext,
    listener_protocol: SecurityProtocol,
    phase: Phase,
    /// Set while a re-authentication is under way or once a session is authenticated.
    authenticated_once: bool,
    /// When the SASL session ends (`connections.max.reauth.ms`, or a token's expiry).
    expires_at: Option<Instant>,
}

impl Session {
    /// A session for a connection from `peer` through `listener`; `principal` is what TLS
    /// established (or ANONYMOUS).
    pub fn new(listener: &ListenerContext, peer: SocketAddr, principal: String) -> Session {
        let phase = match listener.protocol.uses_sasl() {
            true => Phase::AwaitingHandshake,
            false => Phase::Authenticated,
        };
        Session {
            context: RequestContext {
                principal: principal.into(),
                peer,
                listener: listener.name.as_str().into(),
                throttle: Default::default(),
            },
            listener_protocol: listener.protocol,
            phase,
            authenticated_once: false,
            expires_at: None,
        }
    }

    /// Whether requests other than the SASL ones may go through.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.phase, Phase::Authenticated) || self.authenticated_once
    }

    /// Looks at a frame before dispatch: runs the SASL exchange, enforces the order of
    /// requests before authentication and the session's expiry.
    pub async fn intercept(&mut self, broker: &Broker, frame: Bytes) -> Intercepted {
        if let Phase::Exchanging { raw: true, .. } = self.phase {
            return self.raw_token(broker, frame).await;
        }
        let Some(api_key) = frame.first_chunk::<2>().map(|key| i16::from_be_bytes(*key)) else {
            return Intercepted::Pass(frame);
        };
        let sasl =
            api_key == ApiKey::SaslHandshake as i16 || api_key == ApiKey::SaslAuthenticate as i16;
        if !self.listener_protocol.uses_sasl() {
            // Kafka answers SASL requests on other listeners with ILLEGAL_SASL_STATE: the
            // handlers do.
            return Intercepted::Pass(frame);
        }
        if sasl {
            return self.sasl_request(broker, frame).await;
        }
        if !self.is_authenticated() {
            if api_key == ApiKey::ApiVersions as i16 {
                return Intercepted::Pass(frame);
            }
            return Intercepted::Close(format!(
                "unexpected request (api key {api_key}) before SASL authentication"
            ));
        }
        if self.expires_at.is_some_and(|end| Instant::now() >= end) {
            return Intercepted::Close(
                "the SASL session expired (connections.max.reauth.ms) without re-authentication"
                    .to_owned(),
            );
        }
        Intercepted::Pass(frame)
    }

    async fn sasl_request(&mut self, broker: &Broker, frame: Bytes) -> Intercepted {
        let request = match decode_request(frame) {
            Ok(request) => request,
            Err(error) => return Intercepted::Close(format!("bad SASL request: {error}")),
        };
        let (correlation_id, api_key, version) =
            (request.correlation_id, request.api_key, request.api_version);
        let encode = |body| match encode_response_chunks(correlation_id, api_key, version, body) {
            Ok(chunks) => chunks,
            Err(error) => {
                tracing::error!("{error}");
                Vec::new()
            }
        };
        match request.body {
            RequestKind::SaslHandshake(body) => {
                let (response, accepted) = self.handshake(broker, &body, version);
                let chunks = encode(ResponseKind::SaslHandshake(response));
                match accepted {
                    true => Intercepted::Answer(chunks),
                    false => Intercepted::AnswerAndClose(chunks),
                }
            }
            RequestKind::SaslAuthenticate(body) => {
                let (response, outcome) = self.authenticate(broker, &body, version).await;
                let chunks = encode(ResponseKind::SaslAuthenticate(response));
                match outcome {
                    Ok(()) => Intercepted::Answer(chunks),
                    Err(()) => Intercepted::AnswerAndClose(chunks),
                }
            }
            _ => Intercepted::Close("not a SASL request".to_owned()),
        }
    }

    /// SaslHandshake: picks the mechanism. Allowed first, and again for re-authentication.
    fn handshake(
        &mut self,
        broker: &Broker,
        request: &SaslHandshakeRequest,
        version: i16,
    ) -> (SaslHandshakeResponse, bool) {
        let enabled = &broker.config.security.sasl_mechanisms;
        let mut response = SaslHandshakeResponse::default()
            .with_mechanisms(enabled.iter().map(|m| str_bytes(m.as_str())).collect());
        let in_place = match self.phase {
            Phase::AwaitingHandshake => true,
            // KIP-368: a new handshake on an authenticated connection re-authenticates it.
            Phase::Authenticated => version >= 1,
            Phase::Exchanging { .. } => false,
        };
        if !in_place {
            return (
                response.with_error_code(ErrorCode::IllegalSaslState.code()),
                false,
            );
        }
        let wanted = request.mechanism.as_str();
        let mechanism = Mechanism::parse(wanted).filter(|_| enabled.iter().any(|m| m == wanted));
        let Some(mechanism) = mechanism else {
            tracing::info!(peer = %self.context.peer, mechanism = wanted, "SASL mechanism not enabled");
            response.error_code = ErrorCode::UnsupportedSaslMechanism.code();
            return (response, false);
        };
        self.phase = Phase::Exchanging {
            mechanism,
            server: Box::new(SaslServer::new(mechanism, broker.sasl_options())),
            raw: version == 0,
        };
        (response, true)
    }

    /// SaslAuthenticate: one step of the exchange. `Err` closes the connection after the
    /// answer.
    async fn authenticate(
        &mut self,
        broker: &Broker,
        request: &SaslAuthenticateRequest,
        version: i16,
    ) -> (SaslAuthenticateResponse, Result<(), ()>) {
        let response = SaslAuthenticateResponse::default();
        let Phase::Exchanging { .. } = self.phase else {
            let response = response
                .with_error_code(ErrorCode::IllegalSaslState.code())
                .with_error_message(Some(str_bytes(
                    "SaslAuthenticate request received before a SaslHandshake",
                )));
            return (response, Err(()));
        };
        match self.step(broker, &request.auth_bytes, version >= 1).await {
            Ok((challenge, lifetime_ms)) => {
                let response = response
                    .with_auth_bytes(Bytes::from(challenge))
                    .with_session_lifetime_ms(lifetime_ms);
                (response, Ok(()))
            }
            Err(message) => {
                let response = response
                    .with_error_code(ErrorCode::SaslAuthenticationFailed.code())
                    .with_error_message(Some(str_bytes(message)));
                (response, Err(()))
            }
        }
    }

    /// After a v0 handshake: the frame is a bare token; the answer is a bare token too.
    async fn raw_token(&mut self, broker: &Broker, frame: Bytes) -> Intercepted {
        match self.step(broker, &frame, false).await {
            Ok((challenge, _)) => {
                let mut answer = BytesMut::with_capacity(4 + challenge.len());
                answer.put_u32(challenge.len() as u32);
                answer.put_slice(&challenge);
                Intercepted::Answer(vec![answer.freeze()])
            }
            Err(message) => Intercepted::Close(message),
        }
    }

    /// One step of the mechanism. Completing sets the principal (the same one on
    /// re-authentication) and the session's end; failing waits out the failed-login delay.
    /// Returns the bytes to send and the session lifetime to announce (0: none).
    async fn step(
        &mut self,
        broker: &Broker,
        token: &[u8],
        announces_lifetime: bool,
    ) -> Result<(Vec<u8>, i64), String> {
        let Phase::Exchanging {
            mechanism, server, ..
        } = &mut self.phase
        else {
            return Err("no SASL exchange under way".to_owned());
        };
        let mechanism = *mechanism;
        let store = ImageCredentials(broker.quorum.image());
        // A step may block: PBKDF2 for PLAIN, a JWKS fetch for a token signed by a new key.
        let stepped = tokio::task::block_in_place(|| server.step(token, &store));
        let failure = match stepped {
            Ok(SaslStep::Continue(challenge)) => return Ok((challenge, 0)),
            Ok(SaslStep::Complete {
                user,
                response,
                expires_at_ms,
            }) => {
                match self.complete(broker, mechanism, &user, expires_at_ms, announces_lifetime) {
                    Ok(lifetime_ms) => return Ok((response, lifetime_ms)),
                    Err(message) => message,
                }
            }
            Err(error) => error.message,
        };
        tracing::info!(peer = %self.context.peer, mechanism = mechanism.name(), "failed authentication: {failure}");
        let delay = broker.config.security.failed_authentication_delay_ms;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        Err(failure)
    }

    fn complete(
        &mut self,
        broker: &Broker,
        mechanism: Mechanism,
        user: &str,
        token_expires_at_ms: Option<i64>,
        announces_lifetime: bool,
    ) -> Result<i64, String> {
        let principal = format!("User:{user}");
        if self.authenticated_once && *self.context.principal != principal {
            return Err(format!(
                "re-authentication as {principal} on a connection of {}: the principal must not change",
                self.context.principal
            ));
        }
        let now_ms = unix_ms();
        let mut lifetime_ms = broker.config.security.reauth_ms_max as i64;
        if let Some(expiry) = token_expires_at_ms {
            let left = (expiry - now_ms).max(0);
            lifetime_ms = if lifetime_ms == 0 {
                left
            } else {
                lifetime_ms.min(left)
            };
        }
        self.expires_at = (lifetime_ms > 0 && announces_lifetime)
            .then(|| Instant::now() + Duration::from_millis(lifetime_ms as u64));
        tracing::debug!(peer = %self.context.peer, %principal, mechanism = mechanism.name(), "authenticated");
        self.context.principal = principal.into();
        self.phase = Phase::Authenticated;
        self.authenticated_once = true;
        Ok(if announces_lifetime { lifetime_ms } else { 0 })
    }

    /// The frame limit for this connection now: small until it has authenticated.
    pub fn frame_bytes_max(&self, configured: usize) -> usize {
        match self.is_authenticated() {
            true => configured,
            false => configured.min(UNAUTHENTICATED_FRAME_BYTES_MAX),
        }
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// SCRAM credentials as the committed metadata image holds them.
struct ImageCredentials(Arc<strom_metadata::MetadataImage>);

impl CredentialStore for ImageCredentials {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        (self.0.scram_credentials.get(user))
            .and_then(|credentials| credentials.get(&mechanism))
            .cloned()
    }
}
