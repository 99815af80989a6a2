//! The suite's TLS and SASL_SSL listeners: which listener a case connects to, the certificates
//! and client properties made for them at run time, and the broker settings that open them.
//!
//! When a run has cases over SSL or SASL_SSL, [`SecureListeners::prepare`] makes a CA and a
//! server certificate (for IP 127.0.0.1 and DNS localhost) into the run's directory, writes
//! `ca.pem`, `server.pem` (key and certificate, a PEM keystore) and one client properties file
//! per secured listener, and picks a free port for each. The single broker is then started with
//! [`SecureListeners::server_args`]: its PLAINTEXT listener, an SSL one and a SASL_SSL one whose
//! SCRAM-SHA-512 user is created at start (`--add-scram`), so that the plaintext and secured
//! figures come from one broker in one run. The cases' `strom bench` lines take the properties
//! file as `--command-config`, as a user would.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::error::BenchError;

/// The SASL mechanism and user of the SASL_SSL listener's cases.
pub const SCRAM_MECHANISM: &str = "SCRAM-SHA-512";
const SCRAM_USER: &str = "strom-bench";
const SCRAM_PASSWORD: &str = "strom-bench-secret";

/// The listener of the single broker a case connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Plaintext,
    /// TLS, the server authenticated by the suite's CA, the client anonymous.
    Ssl,
    /// TLS, then SASL with [`SCRAM_MECHANISM`].
    SaslSsl,
}

impl Listener {
    /// Kafka's name of the listener's security protocol (and the suite's listener name).
    pub fn protocol(self) -> &'static str {
        match self {
            Listener::Plaintext => "PLAINTEXT",
            Listener::Ssl => "SSL",
            Listener::SaslSsl => "SASL_SSL",
        }
    }
}

/// A secured listener: where it listens and the client properties that reach it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: String,
    pub command_config: PathBuf,
}

/// The single broker's SSL and SASL_SSL listeners and the files they need.
#[derive(Debug, Clone)]
pub struct SecureListeners {
    keystore: PathBuf,
    pub ssl: Endpoint,
    pub sasl_ssl: Endpoint,
}

impl SecureListeners {
    /// Makes the certificates and client properties in `dir`; `ports` are the SSL and SASL_SSL
    /// listeners' ports of 127.0.0.1.
    pub fn prepare(dir: &Path, ports: (u16, u16)) -> Result<SecureListeners, BenchError> {
        std::fs::create_dir_all(dir)
            .map_err(BenchError::io(format!("creating {}", dir.display())))?;
        let (ca, keystore) = certificates()?;
        let ca_path = dir.join("ca.pem");
        let keystore_path = dir.join("server.pem");
        write(&ca_path, &ca)?;
        write(&keystore_path, &keystore)?;
        let endpoint = |listener: Listener, port: u16| -> Result<Endpoint, BenchError> {
            let command_config = dir.join(format!("{}.properties", listener.protocol()));
            write(&command_config, &client_properties(listener, &ca_path))?;
            Ok(Endpoint {
                address: format!("127.0.0.1:{port}"),
                command_config,
            })
        };
        Ok(SecureListeners {
            keystore: keystore_path,
            ssl: endpoint(Listener::Ssl, ports.0)?,
            sasl_ssl: endpoint(Listener::SaslSsl, ports.1)?,
        })
    }

    /// The `strom server` arguments for a PLAINTEXT listener on `plaintext` (HOST:PORT) and
    /// these two; they take the place of `--listen`.
    pub fn server_args(&self, plaintext: &str) -> Vec<String> {
        let listeners = format!(
            "listeners=PLAINTEXT://{plaintext},SSL://{},SASL_SSL://{}",
            self.ssl.address, self.sasl_ssl.address
        );
        vec![
            "--set".to_string(),
            listeners,
            "--set".to_string(),
            format!("ssl.keystore.location={}", self.keystore.display()),
            "--add-scram".to_string(),
            format!("{SCRAM_MECHANISM}=[name={SCRAM_USER},password={SCRAM_PASSWORD}]"),
        ]
    }

    /// Where a case over `listener` connects, and its properties file; `None` for PLAINTEXT.
    pub fn endpoint(&self, listener: Listener) -> Option<&Endpoint> {
        match listener {
            Listener::Plaintext => None,
            Listener::Ssl => Some(&self.ssl),
            Listener::SaslSsl => Some(&self.sasl_ssl),
        }
    }
}

/// The client properties (`--command-config`) of a case over `listener`.
fn client_properties(listener: Listener, ca: &Path) -> String {
    let mut lines = vec![
        format!("security.protocol={}", listener.protocol()),
        format!("ssl.ca.location={}", ca.display()),
    ];
    if listener == Listener::SaslSsl {
        lines.extend([
            format!("sasl.mechanism={SCRAM_MECHANISM}"),
            format!("sasl.username={SCRAM_USER}"),
            format!("sasl.password={SCRAM_PASSWORD}"),
        ]);
    }
    lines.push(String::new());
    lines.join("\n")
}

/// A fresh CA's certificate, and a server certificate it signs for IP 127.0.0.1 and DNS
/// localhost with that certificate's private key before it (a PEM keystore), both as PEM.
fn certificates() -> Result<(String, String), BenchError> {
    let failed = |error: rcgen::Error| {
        BenchError::Suite(format!("making the suite's TLS certificates: {error}"))
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "strom bench suite CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(failed)?;
    let ca = ca_params.self_signed(&ca_key).map_err(failed)?;

    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let mut server_params = CertificateParams::new(names).map_err(failed)?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().map_err(failed)?;
    let server = server_params
        .signed_by(&server_key, &ca, &ca_key)
        .map_err(failed)?;
    let keystore = format!("{}{}", server_key.serialize_pem(), server.pem());
    Ok((ca.pem(), keystore))
}

fn write(path: &Path, text: &str) -> Result<(), BenchError> {
    std::fs::write(path, text).map_err(BenchError::io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_client::CommandConfig;

    #[test]
    fn the_certificates_are_a_ca_and_a_server_key_and_certificate_for_loopback() {
        let (ca, keystore) = certificates().unwrap();
        assert_eq!(ca.matches("BEGIN CERTIFICATE").count(), 1);
        assert!(
            keystore.starts_with("-----BEGIN PRIVATE KEY-----"),
            "{keystore}"
        );
        assert_eq!(keystore.matches("BEGIN CERTIFICATE").count(), 1);
        assert_ne!(
            ca,
            keystore[keystore.find("-----BEGIN CERTIFICATE").unwrap()..]
        );
    }

    #[test]
    fn each_secured_listener_has_its_own_client_properties() {
        let dir = tempfile::tempdir().unwrap();
        let listeners = SecureListeners::prepare(dir.path(), (19093, 19094)).unwrap();
        assert!(listeners.endpoint(Listener::Plaintext).is_none());
        let ssl = listeners.endpoint(Listener::Ssl).unwrap();
        let sasl_ssl = listeners.endpoint(Listener::SaslSsl).unwrap();
        assert_eq!(ssl.address, "127.0.0.1:19093");
        assert_eq!(sasl_ssl.address, "127.0.0.1:19094");
        for endpoint in [ssl, sasl_ssl] {
            let read = CommandConfig::read(&endpoint.command_config).unwrap();
            assert!(read.notes.is_empty(), "{:?}", read.notes);
        }
        let sasl = std::fs::read_to_string(&sasl_ssl.command_config).unwrap();
        assert!(sasl.contains("security.protocol=SASL_SSL\n"));
        assert!(sasl.contains("sasl.mechanism=SCRAM-SHA-512\n"));
        let ssl = std::fs::read_to_string(&ssl.command_config).unwrap();
        assert!(ssl.contains("security.protocol=SSL\n") && !ssl.contains("sasl"));
        let args = listeners.server_args("127.0.0.1:19092").join(" ");
        assert!(args.contains(
            "--set listeners=PLAINTEXT://127.0.0.1:19092,SSL://127.0.0.1:19093,SASL_SSL://127.0.0.1:19094"
        ));
        assert!(args.contains("--add-scram SCRAM-SHA-512=[name=strom-bench,password="));
        assert!(dir.path().join("ca.pem").exists() && dir.path().join("server.pem").exists());
    }
}
