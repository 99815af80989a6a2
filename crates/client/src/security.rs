//! How a client connection secures itself: Kafka's `security.protocol`, the TLS files and the
//! SASL login, as a `client.properties` file (`--command-config`) gives them.
//!
//! [`SecurityConfig::default`] is PLAINTEXT: no TLS, no SASL. [`command_config`] reads a
//! `client.properties` file into a [`SecurityConfig`]: Java's `.properties` format
//! ([`properties`]) and the Java client's `sasl.jaas.config` ([`jaas`]).

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
#[derive(Debug, Clone)]
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

impl Default for TlsConfig {
    /// No files, and the broker's host name checked, as Kafka's clients check it unless told
    /// not to.
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

/// The SASL side: `sasl.mechanism`, `sasl.username`, `sasl.password`, or an OAUTHBEARER token.
#[derive(Debug, Clone)]
pub struct SaslConfig {
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER`.
    pub mechanism: String,
    pub username: String,
    pub password: String,
    /// For OAUTHBEARER: the JWT to present (`sasl.oauthbearer.token`, Strom's name).
    pub token: Option<String>,
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
