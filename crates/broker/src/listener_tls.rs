//! The TLS listeners' certificate and trust, which AlterConfigs can change at runtime, per
//! broker (Kafka's dynamic SSL reconfiguration, KIP-226): `ssl.keystore.location`,
//! `ssl.key.password`, `ssl.truststore.location` and their `.type`s.
//!
//! Lifecycle. [`ListenerTls::new`] builds the configurations at start from the static config
//! (a bad file stops the start). Before a change is proposed, the AlterConfigs handlers call
//! [`ListenerTls::validate`] with the config it would make: the new configurations are built
//! and Kafka's checks run (`strom_security::tls_reconfigure`), so a change that could not be
//! served is refused and never reaches the metadata log. [`follow`] watches the image: when
//! the effective config's TLS settings, or the files they name, change, it builds the new
//! configurations and swaps them into the [`SharedAcceptor`]s the listeners read for each
//! connection they accept. A connection already open keeps its session (its rustls state holds
//! the configuration it began with). A reload that fails then (a file removed since the
//! change was validated) is logged once and the listeners keep the configuration in force.
//!
//! Concurrency: each listener's connections read an acceptor (a read lock held for an `Arc`
//! clone); only [`follow`] writes them. `generation` is taken by the handlers' validation and
//! by [`follow`], one at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use rustls::pki_types::CertificateDer;
use strom_security::tls::{self, ClientAuth, ClientTlsFiles, ServerTlsFiles, TlsError};
use strom_security::tls_reconfigure;
use tokio_rustls::TlsAcceptor;

use crate::config::listeners::SecurityProtocol;
use crate::config::BrokerConfig;
use crate::Broker;

/// The keys that change the TLS listeners' settings (Kafka's `SslConfigs.RECONFIGURABLE_CONFIGS`
/// that Strom has).
pub const TLS_KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
];

/// The broker's TLS settings that can change at runtime, as the effective config has them.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub keystore_location: Option<PathBuf>,
    pub key_password: Option<String>,
    pub truststore_location: Option<PathBuf>,
}

impl TlsSettings {
    pub fn of(config: &BrokerConfig) -> TlsSettings {
        let security = &config.security;
        TlsSettings {
            keystore_location: security.keystore_location.clone(),
            key_password: security.key_password.clone(),
            truststore_location: security.truststore_location.clone(),
        }
    }

    /// The size and modification time of the files: a file rewritten in place is reloaded
    /// by the next change of the broker's dynamic configs, as Kafka reloads a keystore whose
    /// path is set again.
    fn stamps(&self) -> [FileStamp; 2] {
        let stamp = |path: &Option<PathBuf>| path.as_deref().and_then(file_stamp);
        [
            stamp(&self.keystore_location),
            stamp(&self.truststore_location),
        ]
    }
}

/// A file's size and modification time (`None`: unreadable).
type FileStamp = Option<(u64, SystemTime)>;

fn file_stamp(path: &Path) -> FileStamp {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.len(), metadata.modified().ok()?))
}

/// The acceptor one kind of TLS listener (SSL, or SASL_SSL) gives the connections it accepts.
pub struct SharedAcceptor(RwLock<TlsAcceptor>);

impl SharedAcceptor {
    /// The acceptor in force now.
    pub fn current(&self) -> TlsAcceptor {
        self.0.read().clone()
    }
}

/// The configurations built from one set of TLS settings.
struct Generation {
    settings: TlsSettings,
    stamps: [FileStamp; 2],
    /// The certificate every TLS listener presents (one keystore serves them all).
    leaf: CertificateDer<'static>,
    /// SSL listeners' configuration (`ssl.client.auth` applies), if there are any.
    ssl: Option<Arc<rustls::ServerConfig>>,
    /// SASL_SSL listeners' configuration (no client certificate asked), if there are any.
    sasl_ssl: Option<Arc<rustls::ServerConfig>>,
    /// What this broker connects to others with, when the inter-broker listener is TLS and a
    /// truststore is set: for the handshake checks of a change.
    client: Option<Arc<rustls::ClientConfig>>,
}

impl Generation {
    fn server(&self, protocol: SecurityProtocol) -> Option<&Arc<rustls::ServerConfig>> {
        match protocol {
            SecurityProtocol::Ssl => self.ssl.as_ref(),
            SecurityProtocol::SaslSsl => self.sasl_ssl.as_ref(),
            _ => None,
        }
    }
}

/// The TLS listeners' configurations; see the module documentation for their lifecycle.
pub struct ListenerTls {
    ssl: Option<Arc<SharedAcceptor>>,
    sasl_ssl: Option<Arc<SharedAcceptor>>,
    /// The inter-broker listener's protocol, when it is SSL or SASL_SSL.
    inter_broker: Option<SecurityProtocol>,
    /// `None` when this broker has no TLS listener: there is nothing to reload.
    generation: Mutex<Option<Generation>>,
    /// The settings (and file stamps) whose reload failed last, so it is logged once.
    failed: Mutex<Option<(TlsSettings, [FileStamp; 2])>>,
}

impl ListenerTls {
    /// Builds the TLS listeners' configurations from the config given at start.
    pub fn new(config: &BrokerConfig) -> anyhow::Result<ListenerTls> {
        let listeners = config.client_listeners()?;
        let has = |protocol| listeners.iter().any(|l| l.protocol == protocol);
        let (ssl, sasl_ssl) = (has(SecurityProtocol::Ssl), has(SecurityProtocol::SaslSsl));
        let inter_broker = (config.inter_broker_listener().ok())
            .map(|listener| listener.protocol)
            .filter(|protocol| protocol.uses_tls());
        let generation = match ssl || sasl_ssl {
            false => None,
            true => Some(
                Generation::build(config, ssl, sasl_ssl, inter_broker, false)
                    .map_err(|error| anyhow::anyhow!("{error}"))?,
            ),
        };
        let shared = |server: Option<&Arc<rustls::ServerConfig>>| {
            server.map(|server| {
                Arc::new(SharedAcceptor(RwLock::new(TlsAcceptor::from(
                    server.clone(),
                ))))
            })
        };
        Ok(ListenerTls {
            ssl: shared(generation.as_ref().and_then(|g| g.ssl.as_ref())),
            sasl_ssl: shared(generation.as_ref().and_then(|g| g.sasl_ssl.as_ref())),
            inter_broker,
            generation: Mutex::new(generation),
            failed: Mutex::new(None),
        })
    }

    /// The acceptor of listeners of `protocol`; `None` for the protocols without TLS.
    pub fn acceptor(&self, protocol: SecurityProtocol) -> Option<Arc<SharedAcceptor>> {
        match protocol {
            SecurityProtocol::Ssl => self.ssl.clone(),
            SecurityProtocol::SaslSsl => self.sasl_ssl.clone(),
            _ => None,
        }
    }

    /// The settings the listeners serve now (the last that loaded), for inter-broker clients;
    /// `None` without TLS listeners.
    pub fn in_force(&self) -> Option<TlsSettings> {
        (self.generation.lock().as_ref()).map(|generation| generation.settings.clone())
    }

    /// Checks that `config`'s TLS settings could replace those in force: the files load,
    /// and Kafka's reconfiguration checks pass. Nothing changes. `touched`: the change sets or
    /// deletes one of [`TLS_KEYS`], so files rewritten in place are checked too (Kafka
    /// rebuilds a keystore whose path is set again once the file changed); other changes are
    /// not held up by the files. Reads files: call it where blocking is allowed.
    pub fn validate(&self, config: &BrokerConfig, touched: bool) -> Result<(), TlsError> {
        let generation = self.generation.lock();
        let Some(current) = generation.as_ref() else {
            return Ok(());
        };
        let settings = TlsSettings::of(config);
        if settings == current.settings && (!touched || settings.stamps() == current.stamps) {
            return Ok(());
        }
        self.prepare(current, config).map(drop)
    }

    /// Swaps in the configurations of `config`'s TLS settings if they (or their files)
    /// changed; a failure is logged, once per settings, and the old ones stay.
    pub fn reload(&self, config: &BrokerConfig) {
        let mut generation = self.generation.lock();
        let Some(current) = generation.as_ref() else {
            return;
        };
        let settings = TlsSettings::of(config);
        let stamps = settings.stamps();
        if settings == current.settings && stamps == current.stamps {
            return;
        }
        let attempt = Some((settings, stamps));
        if *self.failed.lock() == attempt {
            return;
        }
        match self.prepare(current, config) {
            Ok(next) => {
                let swap = |shared: &Option<Arc<SharedAcceptor>>, server: &Option<_>| {
                    if let (Some(shared), Some(server)) = (shared, server) {
                        *shared.0.write() = TlsAcceptor::from(Arc::clone(server));
                    }
                };
                swap(&self.ssl, &next.ssl);
                swap(&self.sasl_ssl, &next.sasl_ssl);
                tracing::info!(
                    keystore = ?next.settings.keystore_location,
                    truststore = ?next.settings.truststore_location,
                    "TLS listeners reloaded: new connections get the new certificate and trust"
                );
                *generation = Some(next);
                *self.failed.lock() = None;
            }
            Err(error) => {
                tracing::error!(
                    "reloading the TLS listeners failed; they keep the certificate and trust in force: {error}"
                );
                *self.failed.lock() = attempt;
            }
        }
    }

    /// The configurations of `config`, checked against `current` as Kafka's `SslFactory`
    /// checks a reconfiguration.
    fn prepare(&self, current: &Generation, config: &BrokerConfig) -> Result<Generation, TlsError> {
        if current.settings.truststore_location.is_none()
            && config.security.truststore_location.is_some()
        {
            return Err(TlsError::TruststoreAdded);
        }
        let next = Generation::build(
            config,
            current.ssl.is_some(),
            current.sasl_ssl.is_some(),
            self.inter_broker,
            true,
        )?;
        let security = &config.security;
        tls_reconfigure::ensure_compatible(
            &current.leaf,
            &next.leaf,
            security.allow_dn_changes,
            security.allow_san_changes,
        )?;
        // Kafka's SslEngineValidator, on the inter-broker listener only: the brokers that
        // still have the old settings must reach this one, and it them.
        if let Some(protocol) = self.inter_broker {
            let servers = (current.server(protocol), next.server(protocol));
            if let ((Some(old_server), Some(new_server)), Some(old_client), Some(new_client)) =
                (servers, &current.client, &next.client)
            {
                tls_reconfigure::handshake(old_server.clone(), new_client.clone())?;
                tls_reconfigure::handshake(new_server.clone(), old_client.clone())?;
            }
        }
        Ok(next)
    }
}

impl Generation {
    /// Reads the files `config` names. `strict`: an inter-broker client configuration that
    /// does not build is an error (a change would break replication); at start it is only
    /// left out of the checks.
    fn build(
        config: &BrokerConfig,
        ssl: bool,
        sasl_ssl: bool,
        inter_broker: Option<SecurityProtocol>,
        strict: bool,
    ) -> Result<Generation, TlsError> {
        let settings = TlsSettings::of(config);
        let stamps = settings.stamps();
        let server = |wanted: bool, sasl: bool| -> Result<Option<tls::ServerTls>, TlsError> {
            match wanted {
                true => tls::server_tls(&server_files(config, sasl)).map(Some),
                false => Ok(None),
            }
        };
        let (ssl, sasl_ssl) = (server(ssl, false)?, server(sasl_ssl, true)?);
        let leaf = (ssl.as_ref().or(sasl_ssl.as_ref()))
            .map(|server| server.leaf.clone())
            .ok_or_else(|| TlsError::Configuration("no TLS listener".to_owned()))?;
        let client = match (inter_broker, &settings.truststore_location) {
            (Some(_), Some(truststore)) => {
                let built = tls::client_config(&ClientTlsFiles {
                    ca_location: Some(truststore.clone()),
                    certificate_location: settings.keystore_location.clone(),
                    key_location: settings.keystore_location.clone(),
                    key_password: settings.key_password.clone(),
                    verify_hostname: false,
                });
                match built {
                    Ok(client) => Some(client),
                    Err(error) if strict => return Err(error),
                    Err(_) => None,
                }
            }
            _ => None,
        };
        Ok(Generation {
            settings,
            stamps,
            leaf,
            ssl: ssl.map(|server| server.config),
            sasl_ssl: sasl_ssl.map(|server| server.config),
            client,
        })
    }
}

/// The TLS files of SSL listeners (`sasl` false) or SASL_SSL ones (`sasl` true): the keystore,
/// and the truststore for client certificates as `ssl.client.auth` asks. As in Kafka
/// (KIP-684), `ssl.client.auth` applies to SSL listeners only: a SASL_SSL client authenticates
/// with SASL and is not asked for a certificate.
fn server_files(config: &BrokerConfig, sasl: bool) -> ServerTlsFiles {
    let security = &config.security;
    let client_auth = match security.client_auth.as_str() {
        _ if sasl => ClientAuth::None,
        "required" => ClientAuth::Required,
        "requested" => ClientAuth::Requested,
        _ => ClientAuth::None,
    };
    ServerTlsFiles {
        keystore_location: security.keystore_location.clone().unwrap_or_default(),
        key_password: security.key_password.clone(),
        truststore_location: security.truststore_location.clone(),
        client_auth,
    }
}

/// Follows the metadata image: at each new image the listeners reload what changed (see
/// [`ListenerTls::reload`]; unchanged settings cost two `stat`s), the image's dynamic configs
/// at once on start, since they outlive restarts. Runs until the metadata quorum stops.
pub async fn follow(broker: Arc<Broker>) {
    let mut images = broker.quorum.watch();
    loop {
        let config = broker.effective_config();
        let reloading = broker.clone();
        let reloaded = tokio::task::spawn_blocking(move || reloading.listener_tls.reload(&config));
        if reloaded.await.is_err() || images.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../security/tests/fixtures/tls");
        dir.join(name).display().to_string()
    }

    /// A broker whose one listener, SSL, is also the inter-broker listener, with
    /// `ssl.client.auth=none` (the fixtures' server certificates allow server authentication
    /// only).
    fn config(keystore: &str, password: Option<&str>) -> BrokerConfig {
        config_with_client_auth(keystore, password, "none")
    }

    fn config_with_client_auth(keystore: &str, password: Option<&str>, auth: &str) -> BrokerConfig {
        let mut config = BrokerConfig::default();
        config.set("listeners", "SSL://127.0.0.1:0").unwrap();
        config
            .set("ssl.keystore.location", &fixture(keystore))
            .unwrap();
        config
            .set("ssl.truststore.location", &fixture("ca.pem"))
            .unwrap();
        config.set("ssl.client.auth", auth).unwrap();
        if let Some(password) = password {
            config.set("ssl.key.password", password).unwrap();
        }
        config
    }

    fn keystore_in_force(tls: &ListenerTls) -> PathBuf {
        tls.in_force().unwrap().keystore_location.unwrap()
    }

    #[test]
    fn changes_are_checked_before_and_applied_after_without_losing_the_old_one() {
        let tls = ListenerTls::new(&config("server-pkcs8.pem", None)).unwrap();
        assert!(tls.acceptor(SecurityProtocol::Ssl).is_some());
        assert!(tls.acceptor(SecurityProtocol::SaslSsl).is_none());
        let refused = |config: BrokerConfig| tls.validate(&config, true).unwrap_err();
        let missing = refused(config("no-such.pem", None));
        assert!(matches!(missing, TlsError::Read { .. }), "{missing}");
        let wrong = refused(config("server-encrypted.pem", Some("wrong")));
        assert!(matches!(wrong, TlsError::KeyDecryption { .. }), "{wrong}");
        let other_subject = refused(config("bob.pem", None));
        assert!(
            matches!(other_subject, TlsError::DistinguishedNameChanged { .. }),
            "{other_subject}"
        );
        let rotated = config("server-encrypted.pem", Some("server-secret"));
        tls.validate(&rotated, true).unwrap();
        // A reload that fails keeps what is in force.
        tls.reload(&config("no-such.pem", None));
        assert_eq!(
            keystore_in_force(&tls),
            PathBuf::from(fixture("server-pkcs8.pem"))
        );
        tls.reload(&rotated);
        assert_eq!(
            keystore_in_force(&tls),
            PathBuf::from(fixture("server-encrypted.pem"))
        );
        // Unchanged settings and files: nothing to check.
        tls.validate(&rotated, true).unwrap();
    }

    #[test]
    fn on_the_inter_broker_listener_old_and_new_must_complete_a_handshake() {
        // With client certificates asked for, a keystore whose certificate may not
        // authenticate a client cannot reach the brokers that keep the old settings.
        let requested =
            |keystore, password| config_with_client_auth(keystore, password, "requested");
        let tls = ListenerTls::new(&requested("server-pkcs8.pem", None)).unwrap();
        let error = (tls.validate(
            &requested("server-encrypted.pem", Some("server-secret")),
            true,
        ))
        .unwrap_err();
        assert!(matches!(error, TlsError::Handshake(_)), "{error}");
        assert!(
            error.to_string().contains("client authentication"),
            "{error}"
        );
    }

    #[test]
    fn a_truststore_cannot_be_added_where_there_was_none() {
        let mut without = BrokerConfig::default();
        without.set("listeners", "SSL://127.0.0.1:0").unwrap();
        let keystore = fixture("server-pkcs8.pem");
        without.set("ssl.keystore.location", &keystore).unwrap();
        let tls = ListenerTls::new(&without).unwrap();
        let error = tls
            .validate(&config("server-pkcs8.pem", None), true)
            .unwrap_err();
        assert!(matches!(error, TlsError::TruststoreAdded), "{error}");
    }

    #[test]
    fn without_tls_listeners_there_is_nothing_to_check() {
        let tls = ListenerTls::new(&BrokerConfig::default()).unwrap();
        assert!(tls.in_force().is_none());
        tls.validate(&config("no-such.pem", None), true).unwrap();
    }
}
