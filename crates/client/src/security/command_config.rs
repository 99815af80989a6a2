//! A Kafka `client.properties` file (`--command-config`) read into a [`SecurityConfig`].
//!
//! Both families of Kafka client spell the settings their own way, and a user brings the file
//! they already have, so both are read: the Java client's (`sasl.mechanism`,
//! `sasl.jaas.config`, `ssl.truststore.location` with `ssl.truststore.type=PEM`,
//! `ssl.keystore.location`) and librdkafka's (`sasl.mechanisms`, `sasl.username`,
//! `ssl.ca.location`, `ssl.certificate.location`). [`CONFIG_KEYS`] lists every key read, with
//! what it means; that one table decides which keys are known.
//!
//! Reading is in two steps: each line's value is checked on its own (a bad value is an error
//! naming its key and line), then the settings are checked together (SASL_SSL without a
//! mechanism, a certificate without its key). Keys Strom does not use are ignored with a
//! note, as Kafka's clients warn of configs "supplied but not used". A value is never echoed
//! in an error when it may be a secret.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{jaas, properties};
use crate::limits::COMMAND_CONFIG_BYTES_MAX;
use crate::{SaslConfig, SecurityConfig, SecurityProtocol, TlsConfig};

/// A key of `client.properties` that Strom reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigKey {
    pub name: &'static str,
    /// What the key means to Strom, or why Strom refuses it.
    pub documentation: &'static str,
    /// Strom knows the key but cannot honour it; its documentation says what to use instead.
    pub refused: bool,
}

const fn key(name: &'static str, documentation: &'static str) -> ConfigKey {
    ConfigKey {
        name,
        documentation,
        refused: false,
    }
}

const fn refused(name: &'static str, documentation: &'static str) -> ConfigKey {
    ConfigKey {
        name,
        documentation,
        refused: true,
    }
}

/// Names of the keys the reading step looks at.
const PROTOCOL: &str = "security.protocol";
const MECHANISM: &str = "sasl.mechanism";
const MECHANISMS: &str = "sasl.mechanisms";
const USERNAME: &str = "sasl.username";
const PASSWORD: &str = "sasl.password";
const JAAS_CONFIG: &str = "sasl.jaas.config";
const TOKEN: &str = "sasl.oauthbearer.token";
const CA_LOCATION: &str = "ssl.ca.location";
const TRUSTSTORE_LOCATION: &str = "ssl.truststore.location";
const TRUSTSTORE_TYPE: &str = "ssl.truststore.type";
const TRUSTSTORE_PASSWORD: &str = "ssl.truststore.password";
const CERTIFICATE_LOCATION: &str = "ssl.certificate.location";
const KEY_LOCATION: &str = "ssl.key.location";
const KEY_PASSWORD: &str = "ssl.key.password";
const KEYSTORE_LOCATION: &str = "ssl.keystore.location";
const KEYSTORE_TYPE: &str = "ssl.keystore.type";
const KEYSTORE_PASSWORD: &str = "ssl.keystore.password";
const ENDPOINT_IDENTIFICATION: &str = "ssl.endpoint.identification.algorithm";

/// Why inline PEM keys are refused; each names the file key to use instead.
const INLINE_CA: &str = "inline PEM is not read; put it in a file named by ssl.ca.location";
const INLINE_KEY: &str = "inline PEM is not read; put it in a file named by ssl.key.location";
const INLINE_CHAIN: &str =
    "inline PEM is not read; put it in a file named by ssl.certificate.location";

/// Every key Strom reads from `client.properties`.
pub const CONFIG_KEYS: &[ConfigKey] = &[
    key(
        PROTOCOL,
        "PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL; any case",
    ),
    key(
        MECHANISM,
        "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (Java's name)",
    ),
    key(MECHANISMS, "the same as sasl.mechanism (librdkafka's name)"),
    key(
        USERNAME,
        "the SASL user; wins over username in sasl.jaas.config",
    ),
    key(
        PASSWORD,
        "the SASL password; wins over password in sasl.jaas.config",
    ),
    key(
        JAAS_CONFIG,
        "Java's login, 'Module required username=\"U\" password=\"P\";': the user and password",
    ),
    key(TOKEN, "for OAUTHBEARER: the JWT to present (Strom's key)"),
    key(
        CA_LOCATION,
        "a PEM file of the CAs the broker's certificate must chain to",
    ),
    key(
        TRUSTSTORE_LOCATION,
        "the same as ssl.ca.location, with ssl.truststore.type=PEM",
    ),
    key(
        TRUSTSTORE_TYPE,
        "must be PEM where ssl.truststore.location is given",
    ),
    key(
        TRUSTSTORE_PASSWORD,
        "refused with a PEM trust store, as Kafka refuses it",
    ),
    key(
        CERTIFICATE_LOCATION,
        "this client's PEM certificate chain, for mutual TLS",
    ),
    key(
        KEY_LOCATION,
        "this client's PEM private key, for mutual TLS",
    ),
    key(
        KEY_PASSWORD,
        "the password of an encrypted PKCS#8 private key",
    ),
    key(
        KEYSTORE_LOCATION,
        "one PEM file of this client's key and certificate chain, with ssl.keystore.type=PEM",
    ),
    key(
        KEYSTORE_TYPE,
        "must be PEM where ssl.keystore.location is given",
    ),
    key(
        KEYSTORE_PASSWORD,
        "refused with a PEM keystore, as Kafka refuses it",
    ),
    key(
        ENDPOINT_IDENTIFICATION,
        "https (default) checks the broker's certificate names its host; empty or none does not",
    ),
    refused("ssl.truststore.certificates", INLINE_CA),
    refused("ssl.ca.pem", INLINE_CA),
    refused("ssl.keystore.key", INLINE_KEY),
    refused("ssl.key.pem", INLINE_KEY),
    refused("ssl.keystore.certificate.chain", INLINE_CHAIN),
    refused("ssl.certificate.pem", INLINE_CHAIN),
];

/// The SASL mechanisms a Strom client can log in with.
const MECHANISMS_KNOWN: [&str; 4] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// Why a `client.properties` file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecurityConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is larger than {limit_bytes} bytes; is it really a client.properties file?",
        path.display()
    )]
    TooLarge { path: PathBuf, limit_bytes: u64 },
    #[error(transparent)]
    Syntax(#[from] properties::SyntaxError),
    /// One key's value is wrong.
    #[error("{key} (line {line}): {detail}")]
    Value {
        key: String,
        line: usize,
        detail: String,
    },
    /// The settings do not fit together (a mechanism without a user, say).
    #[error("{0}")]
    Inconsistent(String),
}

/// A `client.properties` file read: the security settings, and notes on what was ignored
/// (for the caller to show; the reading prints nothing).
#[derive(Debug, Clone)]
pub struct CommandConfig {
    pub security: SecurityConfig,
    pub notes: Vec<String>,
}

impl CommandConfig {
    /// Reads the text of a `client.properties` file.
    pub fn parse(text: &str) -> Result<CommandConfig, SecurityConfigError> {
        let mut settings = Settings::default();
        let mut notes = Vec::new();
        for property in properties::parse(text)? {
            match CONFIG_KEYS.iter().find(|known| known.name == property.key) {
                Some(known) if known.refused => {
                    return Err(value_error(&property, known.documentation));
                }
                Some(known) => settings.insert(known.name, property),
                None => notes.push(format!(
                    "line {}: '{}' is not a setting Strom's clients use; ignored",
                    property.line, property.key
                )),
            }
        }
        let security = settings.security_config(&mut notes)?;
        Ok(CommandConfig { security, notes })
    }

    /// Reads a `client.properties` file, refusing one larger than any such file should be.
    pub fn read(path: &Path) -> Result<CommandConfig, SecurityConfigError> {
        let read_error = |source| SecurityConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut text = String::new();
        file.take(COMMAND_CONFIG_BYTES_MAX + 1)
            .read_to_string(&mut text)
            .map_err(read_error)?;
        if text.len() as u64 > COMMAND_CONFIG_BYTES_MAX {
            return Err(SecurityConfigError::TooLarge {
                path: path.to_path_buf(),
                limit_bytes: COMMAND_CONFIG_BYTES_MAX,
            });
        }
        CommandConfig::parse(&text)
    }
}

impl SecurityConfig {
    /// The security settings of a `client.properties` text; see [`CommandConfig::parse`] for
    /// the notes on ignored keys.
    pub fn from_properties(text: &str) -> Result<SecurityConfig, SecurityConfigError> {
        Ok(CommandConfig::parse(text)?.security)
    }

    /// The security settings of a `client.properties` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<SecurityConfig, SecurityConfigError> {
        Ok(CommandConfig::read(path.as_ref())?.security)
    }
}

fn value_error(property: &properties::Property, detail: impl Into<String>) -> SecurityConfigError {
    SecurityConfigError::Value {
        key: property.key.clone(),
        line: property.line,
        detail: detail.into(),
    }
}

/// The known keys of a file, the last value of each (as Java keeps it).
#[derive(Default)]
struct Settings {
    values: BTreeMap<&'static str, properties::Property>,
}

impl Settings {
    fn insert(&mut self, name: &'static str, property: properties::Property) {
        // The two spellings of the mechanism are one setting: the later line wins.
        let name = if name == MECHANISMS { MECHANISM } else { name };
        self.values.insert(name, property);
    }

    fn get(&self, name: &str) -> Option<&properties::Property> {
        self.values.get(name)
    }

    /// A key's value checked by `check`, whose error becomes one naming the key and line.
    fn checked<T>(
        &self,
        name: &str,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, SecurityConfigError> {
        self.get(name)
            .map(|property| check(&property.value).map_err(|detail| value_error(property, detail)))
            .transpose()
    }

    /// A key naming a file.
    fn path(&self, name: &str) -> Result<Option<PathBuf>, SecurityConfigError> {
        self.checked(name, |value| match value {
            "" => Err("must name a file".to_string()),
            path => Ok(PathBuf::from(path)),
        })
    }

    /// A key holding a secret or a name: any text but the empty one.
    fn text(&self, name: &str) -> Result<Option<String>, SecurityConfigError> {
        self.checked(name, |value| match value {
            "" => Err("must not be empty".to_string()),
            text => Ok(text.to_string()),
        })
    }

    /// Whether any key starting with `prefix` is given.
    fn any_with_prefix(&self, prefix: &str) -> Option<&properties::Property> {
        self.values
            .iter()
            .find(|(name, _)| name.starts_with(prefix))
            .map(|(_, property)| property)
    }

    fn security_config(
        &self,
        notes: &mut Vec<String>,
    ) -> Result<SecurityConfig, SecurityConfigError> {
        let protocol = self.checked(PROTOCOL, parse_protocol)?.unwrap_or_default();
        let login = self.login()?;
        let tls = self.tls()?;
        if !protocol.uses_sasl() {
            if let Some(ignored) = self.any_with_prefix("sasl.") {
                notes.push(ignored_for_protocol(ignored, protocol, "SASL"));
            }
        }
        if !protocol.uses_tls() {
            if let Some(ignored) = self.any_with_prefix("ssl.") {
                notes.push(ignored_for_protocol(ignored, protocol, "TLS"));
            }
        }
        let sasl = match protocol.uses_sasl() {
            true => Some(login.into_sasl_config(protocol)?),
            false => None,
        };
        Ok(SecurityConfig {
            protocol,
            tls,
            sasl,
        })
    }

    /// The SASL settings, each checked, not yet checked together.
    fn login(&self) -> Result<Login, SecurityConfigError> {
        let module = self.checked(JAAS_CONFIG, jaas::parse)?;
        let from_module = |option: &str| {
            module
                .as_ref()
                .and_then(|module| module.option(option))
                .map(str::to_string)
        };
        Ok(Login {
            mechanism: self.checked(MECHANISM, parse_mechanism)?,
            username: self.text(USERNAME)?.or_else(|| from_module("username")),
            password: self.text(PASSWORD)?.or_else(|| from_module("password")),
            token: self.text(TOKEN)?,
        })
    }

    /// The TLS settings, checked together.
    fn tls(&self) -> Result<TlsConfig, SecurityConfigError> {
        let ca_location = one_of(
            (CA_LOCATION, self.path(CA_LOCATION)?),
            (
                TRUSTSTORE_LOCATION,
                self.pem_store(TRUSTSTORE_LOCATION, TRUSTSTORE_TYPE, TRUSTSTORE_PASSWORD)?,
            ),
        )?;
        let keystore = self.pem_store(KEYSTORE_LOCATION, KEYSTORE_TYPE, KEYSTORE_PASSWORD)?;
        let certificate_location = one_of(
            (CERTIFICATE_LOCATION, self.path(CERTIFICATE_LOCATION)?),
            (KEYSTORE_LOCATION, keystore.clone()),
        )?;
        let key_location = one_of(
            (KEY_LOCATION, self.path(KEY_LOCATION)?),
            (KEYSTORE_LOCATION, keystore),
        )?;
        if certificate_location.is_some() != key_location.is_some() {
            return Err(SecurityConfigError::Inconsistent(format!(
                "{CERTIFICATE_LOCATION} and {KEY_LOCATION} go together (mutual TLS needs both \
                 the certificate and its key); give both, or {KEYSTORE_LOCATION} for one PEM \
                 file holding both"
            )));
        }
        Ok(TlsConfig {
            ca_location,
            certificate_location,
            key_location,
            key_password: self.text(KEY_PASSWORD)?,
            verify_hostname: self
                .checked(ENDPOINT_IDENTIFICATION, parse_endpoint_identification)?
                .unwrap_or(true),
        })
    }

    /// A Java key or trust store's file, which Strom reads only as PEM (type `PEM`, no store
    /// password: Kafka refuses a password for a PEM store too).
    fn pem_store(
        &self,
        location: &str,
        store_type: &str,
        store_password: &str,
    ) -> Result<Option<PathBuf>, SecurityConfigError> {
        let (Some(path), Some(property)) = (self.path(location)?, self.get(location)) else {
            return Ok(None);
        };
        let given_type = self.get(store_type).map(|property| property.value.as_str());
        if !given_type.is_some_and(|given| given.eq_ignore_ascii_case("PEM")) {
            return Err(value_error(
                property,
                format!(
                    "Strom reads PEM files only: set {store_type}=PEM (it is {}; a JKS or \
                     PKCS12 store converts to PEM with keytool and openssl)",
                    given_type.unwrap_or("JKS by default")
                ),
            ));
        }
        if let Some(password) = self.get(store_password) {
            return Err(value_error(
                password,
                format!(
                    "a PEM store has no password (Kafka refuses one too); an encrypted key's \
                     password goes in {KEY_PASSWORD}"
                ),
            ));
        }
        Ok(Some(path))
    }
}

/// The value of whichever of two keys saying the same thing is given; both is an error.
fn one_of(
    first: (&str, Option<PathBuf>),
    second: (&str, Option<PathBuf>),
) -> Result<Option<PathBuf>, SecurityConfigError> {
    match (first.1, second.1) {
        (Some(_), Some(_)) => Err(SecurityConfigError::Inconsistent(format!(
            "{} and {} are two ways to name one file; give one of them",
            first.0, second.0
        ))),
        (one, other) => Ok(one.or(other)),
    }
}

/// The SASL settings of a file, before they are checked against the mechanism.
struct Login {
    mechanism: Option<&'static str>,
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

impl Login {
    /// The SASL login, checking that the mechanism has what it needs.
    fn into_sasl_config(
        self,
        protocol: SecurityProtocol,
    ) -> Result<SaslConfig, SecurityConfigError> {
        let Some(mechanism) = self.mechanism else {
            return Err(SecurityConfigError::Inconsistent(format!(
                "{PROTOCOL}={} needs {MECHANISM} ({})",
                protocol_name(protocol),
                MECHANISMS_KNOWN.join(", ")
            )));
        };
        let missing = |what: &str, key: &str, option: &str| {
            SecurityConfigError::Inconsistent(format!(
                "{MECHANISM}={mechanism} needs {what}: {key}, or {option}=\"...\" in {JAAS_CONFIG}"
            ))
        };
        if mechanism == "OAUTHBEARER" {
            let token = self.token.ok_or_else(|| {
                SecurityConfigError::Inconsistent(format!(
                    "{MECHANISM}=OAUTHBEARER needs {TOKEN} (the JWT to present)"
                ))
            })?;
            return Ok(SaslConfig {
                mechanism: mechanism.to_string(),
                username: self.username.unwrap_or_default(),
                password: self.password.unwrap_or_default(),
                token: Some(token),
            });
        }
        Ok(SaslConfig {
            mechanism: mechanism.to_string(),
            username: self
                .username
                .ok_or_else(|| missing("a user", USERNAME, "username"))?,
            password: self
                .password
                .ok_or_else(|| missing("a password", PASSWORD, "password"))?,
            token: self.token,
        })
    }
}

/// The note for a SASL or TLS setting the protocol does not use (a forgotten
/// `security.protocol`, most likely).
fn ignored_for_protocol(
    property: &properties::Property,
    protocol: SecurityProtocol,
    layer: &str,
) -> String {
    format!(
        "line {}: '{}' is ignored: {PROTOCOL} is {}, which does not use {layer}",
        property.line,
        property.key,
        protocol_name(protocol)
    )
}

/// Kafka's name of a protocol.
pub fn protocol_name(protocol: SecurityProtocol) -> &'static str {
    match protocol {
        SecurityProtocol::Plaintext => "PLAINTEXT",
        SecurityProtocol::Ssl => "SSL",
        SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
        SecurityProtocol::SaslSsl => "SASL_SSL",
    }
}

fn parse_protocol(value: &str) -> Result<SecurityProtocol, String> {
    [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ]
    .into_iter()
    .find(|protocol| protocol_name(*protocol).eq_ignore_ascii_case(value))
    .ok_or_else(|| format!("'{value}' is none of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"))
}

fn parse_mechanism(value: &str) -> Result<&'static str, String> {
    if value.eq_ignore_ascii_case("GSSAPI") {
        return Err(format!(
            "GSSAPI (Kerberos) is not supported by Strom; use one of {}",
            MECHANISMS_KNOWN.join(", ")
        ));
    }
    MECHANISMS_KNOWN
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(value))
        .ok_or_else(|| format!("'{value}' is none of {}", MECHANISMS_KNOWN.join(", ")))
}

fn parse_endpoint_identification(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "https" => Ok(true),
        "" | "none" => Ok(false),
        _ => Err(format!(
            "'{value}' is neither https (check the broker's host name) nor empty or none (do not)"
        )),
    }
}

#[cfg(test)]
#[path = "command_config_tests.rs"]
mod tests;
