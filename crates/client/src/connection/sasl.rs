//! The SASL login a connection makes right after ApiVersions, when `security.protocol` is
//! SASL_PLAINTEXT or SASL_SSL.
//!
//! A login is SaslHandshake v1 (naming the mechanism), then SaslAuthenticate round trips
//! carrying the mechanism's messages until the mechanism is done:
//! - PLAIN: one message, `\0username\0password` (RFC 4616);
//! - SCRAM-SHA-256 and SCRAM-SHA-512: client-first, client-final, then the broker's signature
//!   is checked (RFC 5802, through `strom_security::scram::ScramClient`);
//! - OAUTHBEARER: one message carrying the token (RFC 7628); a broker refusing the token
//!   answers with an error document, to which the client sends `\x01` before the broker ends
//!   the exchange with its error.
//!
//! [`Login`] is the mechanism's side, free of I/O; [`authenticate`] drives it over a
//! connection. A login the broker refuses is a [`ClientError::Kafka`] with the broker's code
//! and message.

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use strom_security::oauthbearer::client_initial_response;
use strom_security::sasl::Mechanism;
use strom_security::scram::ScramClient;
use strom_types::security::ScramMechanism;
use strom_types::ErrorCode;
use tokio::time::{Duration, Instant};

use super::Connection;
use crate::error::Subject;
use crate::{limits, ClientError, SaslConfig};

/// SaslHandshake v0 means raw SASL tokens on the socket instead of SaslAuthenticate requests,
/// which this client does not speak.
const SASL_HANDSHAKE_VERSION_MIN: i16 = 1;

/// What the mechanism sends next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Send(Vec<u8>),
    Done,
}

/// Where a SCRAM exchange stands.
enum ScramState {
    /// The client-first message is out; the server-first is awaited.
    FirstSent,
    /// The client-final message is out; the server-final (with its signature) is awaited.
    FinalSent,
}

/// One login's mechanism state.
enum Exchange {
    Plain,
    Scram(Box<ScramClient>, ScramState),
    /// `refusal` holds the broker's error document once it has refused the token.
    OAuthBearer {
        refusal: Option<String>,
    },
}

/// The client's side of one SASL exchange, free of I/O.
pub(crate) struct Login {
    mechanism: Mechanism,
    exchange: Exchange,
    first_message: Vec<u8>,
}

impl Login {
    /// Prepares a login from the settings; an unknown mechanism or a missing token is an
    /// error message for the user. Mechanism names are taken in any case.
    pub(crate) fn new(config: &SaslConfig) -> Result<Login, String> {
        let name = config.mechanism.trim().to_ascii_uppercase();
        let mechanism = Mechanism::parse(&name).ok_or_else(|| {
            let known: Vec<&str> = Mechanism::ALL.iter().map(|known| known.name()).collect();
            format!(
                "sasl.mechanism '{}' is not one of {}",
                config.mechanism,
                known.join(", ")
            )
        })?;
        let (exchange, first_message) = match (mechanism, mechanism.scram()) {
            (_, Some(scram_mechanism)) => scram(scram_mechanism, config),
            (Mechanism::OAuthBearer, None) => (
                Exchange::OAuthBearer { refusal: None },
                oauthbearer_message(config)?,
            ),
            (_, None) => (Exchange::Plain, plain_message(config)?),
        };
        Ok(Login {
            mechanism,
            exchange,
            first_message,
        })
    }

    /// The mechanism's name as SaslHandshake carries it.
    pub(crate) fn mechanism_name(&self) -> &'static str {
        self.mechanism.name()
    }

    /// The first message, sent in the first SaslAuthenticate request.
    pub(crate) fn take_first_message(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.first_message)
    }

    /// The next message given the broker's answer to the last one (which carried no error).
    pub(crate) fn next(&mut self, server_message: &[u8]) -> Result<Step, String> {
        match &mut self.exchange {
            Exchange::Plain => Ok(Step::Done),
            Exchange::Scram(client, state) => match state {
                ScramState::FirstSent => {
                    let message = client
                        .final_message(server_message)
                        .map_err(|error| error.message)?;
                    *state = ScramState::FinalSent;
                    Ok(Step::Send(message))
                }
                ScramState::FinalSent => client
                    .verify_server_final(server_message)
                    .map(|()| Step::Done)
                    .map_err(|error| error.message),
            },
            Exchange::OAuthBearer { refusal } => oauthbearer_next(refusal, server_message),
        }
    }
}

fn plain_message(config: &SaslConfig) -> Result<Vec<u8>, String> {
    if config.username.contains('\0') || config.password.contains('\0') {
        return Err("sasl.username and sasl.password must not contain NUL".to_string());
    }
    let mut message = Vec::with_capacity(2 + config.username.len() + config.password.len());
    message.push(0);
    message.extend_from_slice(config.username.as_bytes());
    message.push(0);
    message.extend_from_slice(config.password.as_bytes());
    Ok(message)
}

fn scram(kind: ScramMechanism, config: &SaslConfig) -> (Exchange, Vec<u8>) {
    let mut client = ScramClient::new(kind, &config.username, &config.password);
    let first_message = client.first_message();
    (
        Exchange::Scram(Box::new(client), ScramState::FirstSent),
        first_message,
    )
}

/// RFC 7628's initial client response: no channel binding, no authorization id, the token.
fn oauthbearer_message(config: &SaslConfig) -> Result<Vec<u8>, String> {
    let token = config
        .token
        .as_deref()
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or("sasl.mechanism OAUTHBEARER needs a token (sasl.oauthbearer.token)")?;
    if token.contains('\x01') {
        return Err("the OAUTHBEARER token must not contain \\x01".to_string());
    }
    Ok(client_initial_response(token, &[]))
}

/// After the token: an empty answer is success; an error document asks for `\x01`, after
/// which the broker reports the failure (should it answer success instead, the document is
/// the error).
fn oauthbearer_next(refusal: &mut Option<String>, server_message: &[u8]) -> Result<Step, String> {
    if let Some(document) = refusal.take() {
        return Err(format!("the broker refused the token: {document}"));
    }
    if server_message.is_empty() {
        return Ok(Step::Done);
    }
    *refusal = Some(String::from_utf8_lossy(server_message).into_owned());
    Ok(Step::Send(vec![0x01]))
}

/// When a connection whose SASL session lasts `lifetime_ms` from `authenticated_before` should
/// count as closed (see [`limits::SASL_SESSION_USED_PERCENT_MAX`]); `None` for a session
/// without end (`session_lifetime_ms` 0, or SaslAuthenticate v0).
pub(crate) fn reconnect_deadline(
    authenticated_before: Instant,
    lifetime_ms: i64,
) -> Option<Instant> {
    let lifetime_ms = u64::try_from(lifetime_ms).ok().filter(|&ms| ms > 0)?;
    let usable_ms =
        lifetime_ms.saturating_mul(u64::from(limits::SASL_SESSION_USED_PERCENT_MAX)) / 100;
    // A lifetime too long for the clock is a session without end.
    authenticated_before.checked_add(Duration::from_millis(usable_ms))
}

/// Logs in on a fresh connection; returns when the connection should count as closed because
/// its session ends (see [`reconnect_deadline`]).
pub(crate) async fn authenticate(
    connection: &Connection,
    config: &SaslConfig,
) -> Result<Option<Instant>, ClientError> {
    let authentication_error = |reason: String| ClientError::Authentication {
        address: connection.address().to_string(),
        reason,
    };
    let mut login = Login::new(config).map_err(authentication_error)?;
    handshake(connection, login.mechanism_name()).await?;
    let version = connection.version::<SaslAuthenticateRequest>()?;
    let mut message = login.take_first_message();
    for _ in 0..limits::SASL_ROUND_TRIPS_MAX {
        let sent_at = Instant::now();
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message));
        let response = connection
            .send_versioned(&request, version, connection.request_timeout_ms())
            .await?;
        ClientError::check(
            response.error_code,
            response.error_message.as_deref(),
            Subject::default(),
        )?;
        match login
            .next(&response.auth_bytes)
            .map_err(authentication_error)?
        {
            Step::Send(next) => message = next,
            Step::Done => return Ok(reconnect_deadline(sent_at, response.session_lifetime_ms)),
        }
    }
    Err(authentication_error(format!(
        "the {} exchange did not end within {} round trips",
        login.mechanism_name(),
        limits::SASL_ROUND_TRIPS_MAX
    )))
}

/// SaslHandshake v1: the broker accepts the mechanism or lists those it enables.
async fn handshake(connection: &Connection, mechanism: &str) -> Result<(), ClientError> {
    let version = connection.version::<SaslHandshakeRequest>()?;
    if version < SASL_HANDSHAKE_VERSION_MIN {
        return Err(ClientError::Authentication {
            address: connection.address().to_string(),
            reason: "the broker speaks only SaslHandshake v0 (raw SASL frames), which this client does not".to_string(),
        });
    }
    let request = SaslHandshakeRequest::default()
        .with_mechanism(StrBytes::from_string(mechanism.to_string()));
    let response = connection
        .send_versioned(&request, version, connection.request_timeout_ms())
        .await?;
    if response.error_code == 0 {
        return Ok(());
    }
    if response.error_code != ErrorCode::UnsupportedSaslMechanism.code() {
        return Err(ClientError::kafka(
            response.error_code,
            None,
            Subject::default(),
        ));
    }
    let enabled: Vec<&str> = response
        .mechanisms
        .iter()
        .map(|name| name.as_str())
        .collect();
    let message = format!(
        "the broker does not enable {mechanism} on this listener; it enables {}",
        if enabled.is_empty() {
            "none".to_string()
        } else {
            enabled.join(", ")
        }
    );
    Err(ClientError::kafka(
        response.error_code,
        Some(&message),
        Subject::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mechanism: &str) -> SaslConfig {
        SaslConfig {
            mechanism: mechanism.to_string(),
            username: "alice".to_string(),
            password: "alice-secret".to_string(),
            token: Some("header.payload.signature".to_string()),
        }
    }

    #[test]
    fn plain_sends_one_message() {
        let mut login = Login::new(&config("plain")).unwrap();
        assert_eq!(login.mechanism_name(), "PLAIN");
        assert_eq!(login.take_first_message(), b"\0alice\0alice-secret");
        assert_eq!(login.next(b""), Ok(Step::Done));
    }

    #[test]
    fn oauthbearer_sends_the_token_and_acknowledges_a_refusal() {
        let mut login = Login::new(&config("OAUTHBEARER")).unwrap();
        assert_eq!(
            login.take_first_message(),
            b"n,,\x01auth=Bearer header.payload.signature\x01\x01"
        );
        assert_eq!(login.next(b""), Ok(Step::Done));

        let mut login = Login::new(&config("OAUTHBEARER")).unwrap();
        login.take_first_message();
        let refusal = br#"{"status":"invalid_token"}"#;
        assert_eq!(login.next(refusal), Ok(Step::Send(vec![1])));
        let error = login.next(b"").unwrap_err();
        assert!(error.contains("invalid_token"), "{error}");
    }

    #[test]
    fn incomplete_settings_are_refused_before_any_request() {
        let error = Login::new(&config("GSSAPI")).err().unwrap();
        assert!(
            error.contains("'GSSAPI' is not one of PLAIN, SCRAM-SHA-256"),
            "{error}"
        );
        let no_token = SaslConfig {
            token: None,
            ..config("OAUTHBEARER")
        };
        assert!(Login::new(&no_token).is_err());
        let nul = SaslConfig {
            username: "a\0b".to_string(),
            ..config("PLAIN")
        };
        assert!(Login::new(&nul).is_err());
    }

    #[test]
    fn scram_opens_with_client_first_and_checks_the_server_nonce() {
        let mut login = Login::new(&config("scram-sha-256")).unwrap();
        assert_eq!(login.mechanism_name(), "SCRAM-SHA-256");
        let first = String::from_utf8(login.take_first_message()).unwrap();
        assert!(first.starts_with("n,,n=alice,r="), "{first}");
        // A server-first that does not extend the client's nonce is refused.
        assert!(login.next(b"r=other,s=c2FsdA==,i=4096").is_err());
    }

    #[test]
    fn sessions_end_early_enough_to_reconnect() {
        let start = Instant::now();
        assert_eq!(reconnect_deadline(start, 0), None);
        assert_eq!(reconnect_deadline(start, -1), None);
        assert_eq!(
            reconnect_deadline(start, 10_000),
            Some(start + Duration::from_millis(9_000))
        );
        let _ = reconnect_deadline(start, i64::MAX);
    }
}
