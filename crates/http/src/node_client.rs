//! A Kafka client of this node's own listener, for the console's API and the schema registry:
//! they speak to the cluster through the Kafka protocol like any client.

use strom_broker::config::listeners::SecurityProtocol as ListenerProtocol;
use strom_broker::Broker;
use strom_client::{Client, ClientConfig, ClientError, SecurityProtocol};

/// How long the client waits for the broker: short, since a person is waiting.
const REQUEST_TIMEOUT_MS: u64 = 10_000;
const CONNECT_TIMEOUT_MS: u64 = 3_000;

/// Why there is no client.
#[derive(Debug)]
pub enum ConnectError {
    /// The node has no listener this client can use.
    NoListener(String),
    Client(ClientError),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::NoListener(message) => f.write_str(message),
            ConnectError::Client(error) => write!(f, "{error}"),
        }
    }
}

/// Connects to this node's client listener. With a SASL login: the first SASL listener, as
/// that user. Without: the inter-broker listener (over TLS it presents the broker's own
/// certificate, whose principal the authorizer knows), else the first that needs no SASL login.
pub async fn connect(
    broker: &Broker,
    sasl: Option<strom_client::SaslConfig>,
) -> Result<Client, ConnectError> {
    let listeners = (broker.config.client_listeners())
        .map_err(|error| ConnectError::NoListener(format!("listeners: {error}")))?;
    let inter_broker = broker.config.inter_broker_listener().ok();
    let wants_sasl = sasl.is_some();
    let chosen = (inter_broker.into_iter().chain(listeners))
        .find(|listener| listener.protocol.uses_sasl() == wants_sasl)
        .ok_or_else(|| {
            ConnectError::NoListener(
                "the console and the schema registry need a PLAINTEXT or SSL client listener on this node, or a SASL \
                 one and an HTTP Basic login (admin.authentication=basic)"
                    .to_owned(),
            )
        })?;
    let (host, port) = broker.advertised(&chosen.name);
    let mut security = broker.inter_broker_security();
    security.protocol = match chosen.protocol {
        ListenerProtocol::Ssl => SecurityProtocol::Ssl,
        ListenerProtocol::SaslSsl => SecurityProtocol::SaslSsl,
        ListenerProtocol::SaslPlaintext => SecurityProtocol::SaslPlaintext,
        _ => SecurityProtocol::Plaintext,
    };
    if sasl.is_some() {
        // As the user alone: no broker certificate whose principal would be a super user.
        security.tls.certificate_location = None;
        security.tls.key_location = None;
    }
    security.sasl = sasl;
    let mut config = ClientConfig {
        // Browsing a topic that does not exist must not create it.
        allow_auto_topic_creation: false,
        ..ClientConfig::default()
    };
    config.connection.client_id = "strom-console".to_owned();
    config.connection.request_timeout_ms = REQUEST_TIMEOUT_MS;
    config.connection.connect_timeout_ms = CONNECT_TIMEOUT_MS;
    config.connection.security = security;
    let bootstrap = match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    };
    Client::connect(&bootstrap, config)
        .await
        .map_err(ConnectError::Client)
}
