//! Kafka's named listeners: `listeners`, `advertised.listeners`,
//! `listener.security.protocol.map`, `inter.broker.listener.name` and
//! `controller.listener.names`, and the security settings a listener's protocol draws on
//! (`ssl.*`, `sasl.*`, the authorizer's). The keys themselves are declared in
//! `broker_keys.rs`; this module parses their values and resolves them together, once every
//! key is known, into the [`Listener`]s the broker binds.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{invalid, BrokerConfig, ConfigError};

/// Kafka's `SecurityProtocol`, with its wire ids (Metadata and broker registrations carry them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Kafka's id: 0 PLAINTEXT, 1 SSL, 2 SASL_PLAINTEXT, 3 SASL_SSL.
    pub fn id(self) -> i16 {
        match self {
            SecurityProtocol::Plaintext => 0,
            SecurityProtocol::Ssl => 1,
            SecurityProtocol::SaslPlaintext => 2,
            SecurityProtocol::SaslSsl => 3,
        }
    }

    pub fn parse(text: &str) -> Option<SecurityProtocol> {
        let wanted = text.trim().to_ascii_uppercase();
        SecurityProtocol::ALL
            .into_iter()
            .find(|protocol| protocol.name() == wanted)
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// The listener-related keys as given; [`BrokerConfig::listeners`] resolves them.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// `listeners`: name and address of each.
    pub listeners: Vec<(String, SocketAddr)>,
    /// `advertised.listeners`: name, host and port of each given.
    pub advertised: Vec<(String, String, u16)>,
    /// `listener.security.protocol.map`
    pub protocol_map: Vec<(String, SecurityProtocol)>,
    /// `inter.broker.listener.name`; `None`: the first client listener.
    pub inter_broker: Option<String>,
    /// `controller.listener.names`: listeners of `listeners` that serve the metadata quorum.
    pub controller_names: Vec<String>,
}

/// One listener the broker binds, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    pub protocol: SecurityProtocol,
    /// Where clients are told to reach it.
    pub advertised: (String, u16),
}

/// The security settings: TLS files, SASL mechanisms, OAUTHBEARER validation, the authorizer.
#[derive(Debug, Clone, Default)]
pub struct SecuritySettings {
    /// `ssl.keystore.location`: private key and certificate chain, PEM.
    pub keystore_location: Option<PathBuf>,
    /// `ssl.key.password`
    pub key_password: Option<String>,
    /// `ssl.truststore.location`: CA certificates, PEM.
    pub truststore_location: Option<PathBuf>,
    /// `ssl.client.auth`: none, requested or required.
    pub client_auth: String,
    /// `ssl.allow.dn.changes`: a keystore changed at runtime may name another subject.
    pub allow_dn_changes: bool,
    /// `ssl.allow.san.changes`: a keystore changed at runtime may drop alternative names.
    pub allow_san_changes: bool,
    /// `ssl.principal.mapping.rules`
    pub principal_mapping_rules: String,
    /// `sasl.enabled.mechanisms`
    pub sasl_mechanisms: Vec<String>,
    /// `sasl.oauthbearer.jwks.endpoint.url`
    pub oauth_jwks_url: Option<String>,
    /// `sasl.oauthbearer.expected.audience`
    pub oauth_audience: Vec<String>,
    /// `sasl.oauthbearer.expected.issuer`
    pub oauth_issuer: Option<String>,
    /// `sasl.oauthbearer.sub.claim.name`
    pub oauth_sub_claim: String,
    /// `connections.max.reauth.ms`: 0 never asks clients to re-authenticate.
    pub reauth_ms_max: u64,
    /// `connection.failed.authentication.delay.ms`
    pub failed_authentication_delay_ms: u64,
    /// `authorizer.class.name`: empty, or Kafka's StandardAuthorizer.
    pub authorizer: String,
    /// `super.users`
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`
    pub allow_if_no_acl: bool,
    /// `--add-scram` at start: credentials to create for users that have none of that mechanism.
    pub bootstrap_scram: Vec<BootstrapScram>,
}

/// One `--add-scram 'SCRAM-SHA-256=[name=admin,password=admin-secret]'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapScram {
    pub mechanism: strom_types::security::ScramMechanism,
    pub user: String,
    pub password: String,
    pub iterations: u32,
}

/// Kafka's `authorizer.class.name` for the KRaft authorizer; also accepted: Strom's `standard`.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

impl SecuritySettings {
    pub fn authorizer_enabled(&self) -> bool {
        !self.authorizer.is_empty()
    }
}

/// `NAME://HOST:PORT,...`; a bare `HOST:PORT` is `PLAINTEXT://HOST:PORT`.
pub(super) fn parse_endpoints(value: &str) -> Result<Vec<(String, String, u16)>, String> {
    let mut endpoints: Vec<(String, String, u16)> = Vec::new();
    for item in value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (name, address) = match item.split_once("://") {
            Some((name, address)) => (name.trim().to_ascii_uppercase(), address),
            None => ("PLAINTEXT".to_owned(), item),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("'{name}' is not a listener name"));
        }
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("'{item}' is not NAME://HOST:PORT"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("'{port}' is not a port (0-65535)"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        if endpoints.iter().any(|(seen, _, _)| *seen == name) {
            return Err(format!("listener name {name} appears twice"));
        }
        endpoints.push((name, host.to_owned(), port));
    }
    if endpoints.is_empty() {
        return Err("no listener given".to_owned());
    }
    Ok(endpoints)
}

/// `listeners`: each host must be an IP address (or localhost, or empty for every address).
pub(super) fn parse_listeners(value: &str) -> Result<Vec<(String, SocketAddr)>, String> {
    let mut listeners = Vec::new();
    for (name, host, port) in parse_endpoints(value)? {
        let host = if host == "localhost" {
            "127.0.0.1"
        } else {
            &host
        };
        let ip: std::net::IpAddr = host
            .parse()
            .map_err(|_| format!("listener {name}: the host must be an IP address or localhost"))?;
        listeners.push((name, SocketAddr::new(ip, port)));
    }
    Ok(listeners)
}

/// `listener.security.protocol.map`: `NAME:PROTOCOL,...`.
pub(super) fn parse_protocol_map(value: &str) -> Result<Vec<(String, SecurityProtocol)>, String> {
    let mut map: Vec<(String, SecurityProtocol)> = Vec::new();
    for item in value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (name, protocol) = item
            .split_once(':')
            .ok_or_else(|| format!("'{item}' is not NAME:PROTOCOL"))?;
        let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
            format!("'{protocol}' is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
        })?;
        let name = name.trim().to_ascii_uppercase();
        if map.iter().any(|(seen, _)| *seen == name) {
            return Err(format!("listener name {name} appears twice"));
        }
        map.push((name, protocol));
    }
    Ok(map)
}

/// `--add-scram 'SCRAM-SHA-256=[name=admin,password=admin-secret]'`, as Kafka's
/// `kafka-storage format --add-scram` takes it (`iterations=N` may be given too).
pub fn parse_add_scram(value: &str) -> Result<BootstrapScram, String> {
    let (mechanism, rest) = value
        .split_once('=')
        .ok_or("expected MECHANISM=[name=USER,password=PASSWORD]")?;
    let mechanism = strom_types::security::ScramMechanism::parse(mechanism)
        .ok_or_else(|| format!("'{mechanism}' is not SCRAM-SHA-256 or SCRAM-SHA-512"))?;
    let inner = rest
        .trim()
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or("the credential goes in brackets: [name=USER,password=PASSWORD]")?;
    use strom_security::scram::{ITERATIONS_DEFAULT, ITERATIONS_MAX, ITERATIONS_MIN};
    let (mut user, mut password, mut iterations) = (None, None, ITERATIONS_DEFAULT);
    for field in inner.split(',') {
        let (key, text) = field
            .split_once('=')
            .ok_or_else(|| format!("'{field}' is not KEY=VALUE"))?;
        let text = text.trim().trim_matches('"');
        match key.trim() {
            "name" => user = Some(text.to_owned()),
            "password" => password = Some(text.to_owned()),
            "iterations" => {
                iterations = (text.parse().ok())
                    .filter(|n| (ITERATIONS_MIN..=ITERATIONS_MAX).contains(n))
                    .ok_or_else(|| {
                        format!("iterations '{text}' is not {ITERATIONS_MIN}-{ITERATIONS_MAX}")
                    })?;
            }
            other => {
                return Err(format!(
                    "unknown field '{other}' (name, password, iterations)"
                ))
            }
        }
    }
    let user = user.filter(|u| !u.is_empty()).ok_or("name= is missing")?;
    let password = password
        .filter(|p| !p.is_empty())
        .ok_or("password= is missing")?;
    Ok(BootstrapScram {
        mechanism,
        user,
        password,
        iterations,
    })
}

impl BrokerConfig {
    /// The protocol of listener `name` from `listener.security.protocol.map`.
    fn protocol_of(&self, name: &str) -> Result<SecurityProtocol, ConfigError> {
        let map = &self.listener_settings.protocol_map;
        (map.iter().find(|(listed, _)| listed == name))
            .map(|(_, protocol)| *protocol)
            .ok_or_else(|| {
                invalid(
                    "listener.security.protocol.map",
                    self.given("listener.security.protocol.map")
                        .unwrap_or_default(),
                    format!("listener {name} has no security protocol in the map"),
                )
            })
    }

    /// Every listener of `listeners` resolved: its protocol, and where clients are told to
    /// reach it (its `advertised.listeners` entry, else its own address with a wildcard host
    /// replaced by loopback).
    pub fn all_listeners(&self) -> Result<Vec<Listener>, ConfigError> {
        let settings = &self.listener_settings;
        let mut resolved = Vec::new();
        for (name, address) in &settings.listeners {
            let advertised = match settings.advertised.iter().find(|(n, _, _)| n == name) {
                Some((_, host, port)) => (host.clone(), *port),
                None if settings.listeners.len() == 1 => self.advertise.clone(),
                None => {
                    let host = match address.ip() {
                        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
                        ip => ip.to_string(),
                    };
                    (host, address.port())
                }
            };
            resolved.push(Listener {
                name: name.clone(),
                address: *address,
                protocol: self.protocol_of(name)?,
                advertised,
            });
        }
        Ok(resolved)
    }

    /// The listeners that serve Kafka clients (all but `controller.listener.names`).
    pub fn client_listeners(&self) -> Result<Vec<Listener>, ConfigError> {
        let controllers = &self.listener_settings.controller_names;
        Ok((self.all_listeners()?.into_iter())
            .filter(|listener| !controllers.contains(&listener.name))
            .collect())
    }

    /// The listener other brokers reach this one on: `inter.broker.listener.name`, else the
    /// first client listener.
    pub fn inter_broker_listener(&self) -> Result<Listener, ConfigError> {
        let clients = self.client_listeners()?;
        let wanted = self.listener_settings.inter_broker.as_deref();
        let found = match wanted {
            Some(name) => clients.into_iter().find(|listener| listener.name == name),
            None => clients.into_iter().next(),
        };
        found.ok_or_else(|| {
            invalid(
                "inter.broker.listener.name",
                wanted.unwrap_or_default(),
                "names no client listener of `listeners`",
            )
        })
    }

    /// The listener of `controller.listener.names` this node serves the quorum on, if any.
    pub fn controller_listener(&self) -> Result<Option<Listener>, ConfigError> {
        let names = &self.listener_settings.controller_names;
        Ok((self.all_listeners()?.into_iter()).find(|listener| names.contains(&listener.name)))
    }

    /// Checks what no single key can: every listener has a protocol, TLS listeners have a
    /// keystore, SASL listeners have mechanisms, the inter-broker listener exists. Called once
    /// every key is set.
    pub fn validate_listeners(&self) -> Result<(), ConfigError> {
        let listeners = self.all_listeners()?;
        let inter_broker = self.inter_broker_listener()?;
        if !self.cluster.is_single_node() && inter_broker.protocol.uses_sasl() {
            return Err(invalid(
                "inter.broker.listener.name",
                &inter_broker.name,
                "brokers reach each other over PLAINTEXT or SSL (mutual TLS), not SASL yet",
            ));
        }
        let security = &self.security;
        for listener in &listeners {
            if listener.protocol.uses_tls() && security.keystore_location.is_none() {
                return Err(invalid(
                    "ssl.keystore.location",
                    "",
                    format!(
                        "listener {} uses {} and needs a PEM keystore",
                        listener.name,
                        listener.protocol.name()
                    ),
                ));
            }
            if listener.protocol.uses_sasl() && security.sasl_mechanisms.is_empty() {
                return Err(invalid(
                    "sasl.enabled.mechanisms",
                    "",
                    format!("listener {} uses SASL and needs a mechanism", listener.name),
                ));
            }
        }
        let oauth = security.sasl_mechanisms.iter().any(|m| m == "OAUTHBEARER");
        if oauth && security.oauth_jwks_url.is_none() {
            return Err(invalid(
                "sasl.oauthbearer.jwks.endpoint.url",
                "",
                "OAUTHBEARER is enabled and needs a JWKS (file:// or https://)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_parse_with_names_and_plain_host_port() {
        let parsed = parse_listeners("PLAINTEXT://127.0.0.1:9092, sasl_ssl://:9094").unwrap();
        assert_eq!(parsed[0].0, "PLAINTEXT");
        assert_eq!(
            parsed[1],
            ("SASL_SSL".to_owned(), "0.0.0.0:9094".parse().unwrap())
        );
        assert_eq!(parse_listeners("127.0.0.1:1").unwrap()[0].0, "PLAINTEXT");
        assert!(parse_listeners("A://1.2.3.4:1,A://1.2.3.4:2").is_err());
        assert!(parse_listeners("A://host.example:1").is_err());
        assert!(parse_listeners("A://1.2.3.4").is_err());
        assert!(parse_listeners("").is_err());
    }

    #[test]
    fn add_scram_reads_kafkas_form() {
        let parsed = parse_add_scram("SCRAM-SHA-256=[name=admin,password=admin-secret]").unwrap();
        assert_eq!(parsed.user, "admin");
        assert_eq!(parsed.password, "admin-secret");
        assert_eq!(parsed.iterations, 4096);
        let parsed =
            parse_add_scram("SCRAM-SHA-512=[name=\"bob\",password=\"x\",iterations=8192]").unwrap();
        assert_eq!(parsed.user, "bob");
        assert_eq!(parsed.iterations, 8192);
        for bad in [
            "SCRAM-SHA-1=[name=a,password=b]",
            "SCRAM-SHA-256=name=a,password=b",
            "SCRAM-SHA-256=[name=a]",
            "SCRAM-SHA-256=[name=a,password=b,iterations=10]",
            "SCRAM-SHA-256=[name=a,password=b,salt=c]",
        ] {
            assert!(parse_add_scram(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn named_listeners_resolve_through_the_protocol_map() {
        let mut config = BrokerConfig::default();
        config
            .set(
                "listeners",
                "CLIENT://127.0.0.1:9094,BROKER://127.0.0.1:9095,CONTROLLER://127.0.0.1:9096",
            )
            .unwrap();
        config
            .set(
                "listener.security.protocol.map",
                "CLIENT:SASL_PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
            )
            .unwrap();
        config.set("inter.broker.listener.name", "BROKER").unwrap();
        config
            .set("controller.listener.names", "CONTROLLER")
            .unwrap();
        config
            .set("advertised.listeners", "CLIENT://kafka.example:19094")
            .unwrap();
        config.validate_listeners().unwrap();
        let clients = config.client_listeners().unwrap();
        assert_eq!(clients.len(), 2);
        assert_eq!(clients[0].protocol, SecurityProtocol::SaslPlaintext);
        assert_eq!(clients[0].advertised, ("kafka.example".to_owned(), 19094));
        assert_eq!(config.inter_broker_listener().unwrap().name, "BROKER");
        assert_eq!(
            config
                .controller_listener()
                .unwrap()
                .unwrap()
                .address
                .port(),
            9096
        );
        config.set("listeners", "OTHER://127.0.0.1:1").unwrap();
        assert!(
            config.validate_listeners().is_err(),
            "OTHER has no protocol"
        );
        config.set("listeners", "SSL://127.0.0.1:1").unwrap();
        config
            .set("listener.security.protocol.map", "SSL:SSL")
            .unwrap();
        config.set("inter.broker.listener.name", "SSL").unwrap();
        assert!(
            config.validate_listeners().is_err(),
            "SSL without a keystore"
        );
    }
}
