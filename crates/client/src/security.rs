//! How a client connection secures itself: Kafka's `security.protocol`, the TLS files and the
//! SASL login, as a `client.properties` file (`--command-config`) gives them.
//!
//! [`SecurityConfig::default`] is PLAINTEXT: no TLS, no SASL. [`command_config`] reads a
//! `client.properties` file into a [`SecurityConfig`]: Java's `.properties` format
//! ([`properties`]) and the Java client's `sasl.jaas.config` ([`jaas`]).

use std::fmt;
use std::path::PathBuf;

pub mod command_config;
pub mod jaas;
pub mod properties;

pub use command_config::{CommandConfig, ConfigKey, SecurityConfigError, CONFIG_KEYS};

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
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

/// The TLS side: Kafka's client `ssl.*` properties (librdkafka's names).
///
/// Equal settings share one rustls configuration per process (`crate::tls`). The default
/// checks the broker's name, as Kafka's does.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `ssl.ca.location`: PEM CA certificates the broker's certificate must chain to.
    pub ca_location: Option<PathBuf>,
    /// `ssl.certificate.location`: this client's PEM certificate chain (mutual TLS).
    pub certificate_location: Option<PathBuf>,
    /// `ssl.key.location`: this client's PEM private key.
    pub key_location: Option<PathBuf>,
    /// `ssl.key.password`: for an encrypted PKCS#8 key.
    pub key_password: Option<String>,
    /// `ssl.endpoint.identification.algorithm`: `https` (default) checks the broker's name;
    /// `none` does not.
    pub verify_hostname: bool,
}

/// The SASL side: `sasl.mechanism`, `sasl.username`, `sasl.password`, or an OAUTHBEARER token.
#[derive(Clone)]
pub struct SaslConfig {
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER`.
    pub mechanism: String,
    pub username: String,
    pub password: String,
    /// For OAUTHBEARER: the JWT to present (`sasl.oauthbearer.token`, Strom's name).
    pub token: Option<String>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca_location: None,
            certificate_location: None,
            key_location: None,
            key_password: None,
            verify_hostname: true,
        }
    }
}

/// Shows whether a secret is set, never the secret: these settings end up in logs.
fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TlsConfig")
            .field("ca_location", &self.ca_location)
            .field("certificate_location", &self.certificate_location)
            .field("key_location", &self.key_location)
            .field("key_password", &redacted(&self.key_password))
            .field("verify_hostname", &self.verify_hostname)
            .finish()
    }
}

impl fmt::Debug for SaslConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SaslConfig")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("token", &redacted(&self.token))
            .finish()
    }
}

/// Everything about securing one connection.
#[derive(Debug, Clone, Default)]
pub struct SecurityConfig {
    pub protocol: SecurityProtocol,
    /// Used when `protocol` is SSL or SASL_SSL.
    pub tls: TlsConfig,
    /// Used when `protocol` is SASL_PLAINTEXT or SASL_SSL.
    pub sasl: Option<SaslConfig>,
}
