//! TLS configurations from PEM files, as Kafka's `ssl.*` settings name them: rustls with the
//! ring provider, never OpenSSL.
//!
//! A keystore is one PEM file holding a private key and its certificate chain (Kafka's PEM
//! keystores, KIP-651). The key may be unencrypted PKCS#8 (`PRIVATE KEY`), PKCS#1
//! (`RSA PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`), or encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`,
//! PBES2) opened with `ssl.key.password`. A truststore is a PEM file of CA certificates.
//!
//! [`server_config`] serves the broker's listeners and [`client_config`] Strom's client. Both
//! read their files once, when called: build a config once and share the `Arc` between
//! connections, so that a connection costs a handshake and no file reads. A file changed on
//! disk is seen by the next call only. After a handshake, [`peer_leaf_certificate`] hands the
//! broker the client's certificate, from which [`crate::principal`] makes the principal.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

/// Largest PEM file read. A keystore is a few kilobytes and a large CA bundle a few hundred;
/// anything bigger is the wrong file, and is refused before it fills memory.
pub const PEM_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// The PEM label of an encrypted PKCS#8 key, which `rustls-pki-types` does not parse.
const ENCRYPTED_KEY_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// Whether the broker asks clients for a certificate (Kafka's `ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A client may present a certificate; one that does must chain to the truststore.
    Requested,
    /// Every client must present a certificate that chains to the truststore.
    Required,
}

impl ClientAuth {
    /// Parses Kafka's values `none`, `requested` and `required`, in any case.
    pub fn parse(text: &str) -> Option<ClientAuth> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" => Some(ClientAuth::None),
            "requested" => Some(ClientAuth::Requested),
            "required" => Some(ClientAuth::Required),
            _ => None,
        }
    }

    /// Kafka's name for the value.
    pub fn name(self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Requested => "requested",
            ClientAuth::Required => "required",
        }
    }
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A broker listener's TLS files (`ssl.keystore.location`, `ssl.key.password`,
/// `ssl.truststore.location`, `ssl.client.auth`).
#[derive(Clone)]
pub struct ServerTlsFiles {
    /// The PEM keystore: the private key and the certificate chain, leaf first.
    pub keystore_location: PathBuf,
    /// Opens an encrypted key; ignored for an unencrypted one.
    pub key_password: Option<String>,
    /// CA certificates client certificates must chain to; needed unless `client_auth` is none.
    pub truststore_location: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// A client's TLS files (librdkafka's `ssl.ca.location`, `ssl.certificate.location`,
/// `ssl.key.location`, `ssl.key.password`, `ssl.endpoint.identification.algorithm`).
#[derive(Clone)]
pub struct ClientTlsFiles {
    /// CA certificates the broker's certificate must chain to. Required: this client does not
    /// read the system's roots, since brokers are signed by a cluster's own CA.
    pub ca_location: Option<PathBuf>,
    /// This client's certificate chain, for mutual TLS. The private key may sit in the same
    /// file, as in a Kafka PEM keystore.
    pub certificate_location: Option<PathBuf>,
    /// This client's private key, when it is not in `certificate_location`.
    pub key_location: Option<PathBuf>,
    /// Opens an encrypted key; ignored for an unencrypted one.
    pub key_password: Option<String>,
    /// Whether the broker's certificate must name the host connected to; without it any
    /// certificate that chains to the CA is accepted.
    pub verify_hostname: bool,
}

/// Shows whether a password is set, never the password: these structs end up in logs.
fn redacted(password: &Option<String>) -> Option<&'static str> {
    password.as_ref().map(|_| "<redacted>")
}

impl fmt::Debug for ServerTlsFiles {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ServerTlsFiles")
            .field("keystore_location", &self.keystore_location)
            .field("key_password", &redacted(&self.key_password))
            .field("truststore_location", &self.truststore_location)
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

impl fmt::Debug for ClientTlsFiles {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ClientTlsFiles")
            .field("ca_location", &self.ca_location)
            .field("certificate_location", &self.certificate_location)
            .field("key_location", &self.key_location)
            .field("key_password", &redacted(&self.key_password))
            .field("verify_hostname", &self.verify_hostname)
            .finish()
    }
}

/// Why a TLS configuration could not be built; each names the file or setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{path} is larger than {PEM_FILE_BYTES_MAX} bytes: not a PEM keystore or truststore")]
    FileTooLarge { path: PathBuf },

    #[error("{path} is not valid PEM: {detail}")]
    Pem { path: PathBuf, detail: String },

    #[error("no certificate in {path}")]
    NoCertificate { path: PathBuf },

    #[error("no private key in {path} (PEM PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY or ENCRYPTED PRIVATE KEY)")]
    NoPrivateKey { path: PathBuf },

    #[error("the private key in {path} is encrypted: set ssl.key.password")]
    KeyPasswordMissing { path: PathBuf },

    #[error("wrong ssl.key.password or unsupported encryption for {path} ({detail}; PBES2 with PBKDF2-HMAC-SHA256 or scrypt and AES-CBC is supported)")]
    KeyDecryption { path: PathBuf, detail: String },

    #[error("the private key in {path} cannot be used with its certificate: {detail}")]
    UnusableKey { path: PathBuf, detail: String },

    #[error("certificate {index} in {path} cannot be a trusted CA: {detail}")]
    UntrustableCertificate {
        path: PathBuf,
        index: usize,
        detail: String,
    },

    #[error("ssl.client.auth={client_auth} needs ssl.truststore.location: the CAs client certificates must chain to")]
    TruststoreMissing { client_auth: ClientAuth },

    #[error("ssl.ca.location is required for TLS: the PEM file of the CAs the broker's certificate chains to")]
    CaLocationMissing,

    #[error("ssl.key.location {key_location} is set without ssl.certificate.location")]
    CertificateLocationMissing { key_location: PathBuf },

    #[error("Keystore DistinguishedName does not match: existing={{DN={existing}}}, new={{DN={new}}} (ssl.allow.dn.changes=false)")]
    DistinguishedNameChanged { existing: String, new: String },

    #[error("Keystore SubjectAltNames do not match: existing={{SAN=[{existing}]}}, new={{SAN=[{new}]}} (ssl.allow.san.changes=false)")]
    SubjectAltNamesChanged { existing: String, new: String },

    #[error(
        "Cannot add SSL truststore to an existing listener for which no truststore was configured."
    )]
    TruststoreAdded,

    #[error("the old and new SSL settings cannot complete a handshake with each other: {0}")]
    Handshake(String),

    #[error("TLS configuration refused: {0}")]
    Configuration(String),
}

/// A broker listener's TLS configuration and the certificate it presents.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    /// The keystore's leaf certificate (DER): what a keystore change is compared with (see
    /// the `tls_reconfigure` module).
    pub leaf: CertificateDer<'static>,
}

/// Builds a broker listener's TLS configuration from its keystore and truststore.
pub fn server_config(files: &ServerTlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_tls(files).map(|tls| tls.config)
}

/// [`server_config`], with the leaf certificate it presents.
pub fn server_tls(files: &ServerTlsFiles) -> Result<ServerTls, TlsError> {
    let keystore = PemFile::read(&files.keystore_location)?;
    let chain = keystore.certificates()?;
    let leaf = chain[0].clone();
    let key = keystore.private_key(files.key_password.as_deref())?;
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(configuration_error)?;
    let builder = match client_verifier(files, &provider)? {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|error| unusable_key(&keystore.path, error))?;
    let mut config = config;
    // The broker's order (AES-128-GCM first) wins over clients', which mostly prefer AES-256.
    config.ignore_client_order = true;
    Ok(ServerTls {
        config: Arc::new(config),
        leaf,
    })
}

/// Builds a client's TLS configuration: the broker's certificate is checked against
/// `ca_location`, and a certificate is presented when one is configured.
pub fn client_config(files: &ClientTlsFiles) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let ca_location = files
        .ca_location
        .as_deref()
        .ok_or(TlsError::CaLocationMissing)?;
    let roots = Arc::new(root_store(ca_location)?);
    let identity = client_identity(files)?;
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(configuration_error)?;
    let builder = if files.verify_hostname {
        builder.with_root_certificates(roots)
    } else {
        let chain_only = ChainOnlyVerifier::new(roots, provider)?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(chain_only))
    };
    let config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain, identity.key)
            .map_err(|error| unusable_key(&identity.key_path, error))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The peer's leaf certificate (DER) after a handshake, for the principal: on the broker, the
/// client's certificate when it presented one. Takes a `ServerConnection` or
/// `ClientConnection` (both dereference to `CommonState`).
pub fn peer_leaf_certificate(connection: &rustls::CommonState) -> Option<&[u8]> {
    let chain = connection.peer_certificates()?;
    chain.first().map(|certificate| certificate.as_ref())
}

/// Every configuration uses ring and nothing else, whatever other crates in the process
/// install as rustls's default provider. AES-128-GCM comes first (ring's order puts AES-256
/// first): it is the suite TLS 1.3 makes mandatory, and its 10 rounds against AES-256's 14
/// cost less per byte on both ends of a consumer's stream.
fn provider() -> Arc<CryptoProvider> {
    use rustls::CipherSuite;
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| match suite.suite() {
            CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 1,
            _ => 2,
        });
    Arc::new(provider)
}

fn configuration_error(error: impl fmt::Display) -> TlsError {
    TlsError::Configuration(error.to_string())
}

fn unusable_key(path: &Path, error: rustls::Error) -> TlsError {
    TlsError::UnusableKey {
        path: path.to_path_buf(),
        detail: error.to_string(),
    }
}

/// The verifier of client certificates for `ssl.client.auth`; `None` asks for none.
fn client_verifier(
    files: &ServerTlsFiles,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, TlsError> {
    if files.client_auth == ClientAuth::None {
        return Ok(None);
    }
    let truststore = files
        .truststore_location
        .as_deref()
        .ok_or(TlsError::TruststoreMissing {
            client_auth: files.client_auth,
        })?;
    let roots = Arc::new(root_store(truststore)?);
    let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    let builder = match files.client_auth {
        ClientAuth::Requested => builder.allow_unauthenticated(),
        ClientAuth::Required | ClientAuth::None => builder,
    };
    builder.build().map(Some).map_err(configuration_error)
}

/// Every certificate of a truststore, each checked to be usable as a trust anchor: a
/// truststore that silently lost a CA would refuse peers with no word why.
fn root_store(path: &Path) -> Result<RootCertStore, TlsError> {
    let file = PemFile::read(path)?;
    let mut roots = RootCertStore::empty();
    for (index, certificate) in file.certificates()?.into_iter().enumerate() {
        roots
            .add(certificate)
            .map_err(|error| TlsError::UntrustableCertificate {
                path: path.to_path_buf(),
                index,
                detail: error.to_string(),
            })?;
    }
    Ok(roots)
}

/// A client's certificate chain and key, and the file the key came from (for errors).
struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    key_path: PathBuf,
}

fn client_identity(files: &ClientTlsFiles) -> Result<Option<ClientIdentity>, TlsError> {
    let certificate_location = match (&files.certificate_location, &files.key_location) {
        (None, None) => return Ok(None),
        (None, Some(key_location)) => {
            return Err(TlsError::CertificateLocationMissing {
                key_location: key_location.clone(),
            })
        }
        (Some(certificate_location), _) => certificate_location,
    };
    let certificate_file = PemFile::read(certificate_location)?;
    let chain = certificate_file.certificates()?;
    let key_file = match &files.key_location {
        Some(key_location) if key_location != certificate_location => PemFile::read(key_location)?,
        _ => certificate_file,
    };
    let key = key_file.private_key(files.key_password.as_deref())?;
    Ok(Some(ClientIdentity {
        chain,
        key,
        key_path: key_file.path,
    }))
}

/// One PEM file's contents, read once and bounded by [`PEM_FILE_BYTES_MAX`].
struct PemFile {
    path: PathBuf,
    contents: Vec<u8>,
}

impl PemFile {
    fn read(path: &Path) -> Result<PemFile, TlsError> {
        let read_error = |source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut contents = Vec::new();
        file.take(PEM_FILE_BYTES_MAX + 1)
            .read_to_end(&mut contents)
            .map_err(read_error)?;
        if contents.len() as u64 > PEM_FILE_BYTES_MAX {
            return Err(TlsError::FileTooLarge {
                path: path.to_path_buf(),
            });
        }
        Ok(PemFile {
            path: path.to_path_buf(),
            contents,
        })
    }

    fn pem_error(&self, error: pem::Error) -> TlsError {
        TlsError::Pem {
            path: self.path.clone(),
            detail: error.to_string(),
        }
    }

    /// Every certificate in the file, in order (leaf first in a keystore); at least one.
    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let chain = CertificateDer::pem_slice_iter(&self.contents)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| self.pem_error(error))?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: self.path.clone(),
            });
        }
        Ok(chain)
    }

    /// The file's private key: the encrypted PKCS#8 one if there is one, else the first key in
    /// any of the unencrypted formats.
    fn private_key(&self, password: Option<&str>) -> Result<PrivateKeyDer<'static>, TlsError> {
        if let Some(block) = self.encrypted_key_block()? {
            let password = password.ok_or_else(|| TlsError::KeyPasswordMissing {
                path: self.path.clone(),
            })?;
            return self.decrypt(block, password);
        }
        match PrivateKeyDer::from_pem_slice(&self.contents) {
            Ok(key) => Ok(key),
            Err(pem::Error::NoItemsFound) => Err(TlsError::NoPrivateKey {
                path: self.path.clone(),
            }),
            Err(error) => Err(self.pem_error(error)),
        }
    }

    /// The text of the `ENCRYPTED PRIVATE KEY` block, markers included, if the file has one.
    fn encrypted_key_block(&self) -> Result<Option<&str>, TlsError> {
        let begin = format!("-----BEGIN {ENCRYPTED_KEY_LABEL}-----");
        let end = format!("-----END {ENCRYPTED_KEY_LABEL}-----");
        let Some(start) = find(&self.contents, begin.as_bytes()) else {
            return Ok(None);
        };
        let missing_end = || TlsError::Pem {
            path: self.path.clone(),
            detail: format!("'{begin}' without '{end}'"),
        };
        let length = find(&self.contents[start..], end.as_bytes()).ok_or_else(missing_end)?;
        let block = &self.contents[start..start + length + end.len()];
        let text = std::str::from_utf8(block).map_err(|_| TlsError::Pem {
            path: self.path.clone(),
            detail: format!("the {ENCRYPTED_KEY_LABEL} block is not ASCII"),
        })?;
        Ok(Some(text))
    }

    /// Decrypts an encrypted PKCS#8 block. A block that does not decode is a PEM error; one
    /// that decodes but does not decrypt is a wrong password (or a scheme not supported).
    fn decrypt(&self, block: &str, password: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
        let malformed = |detail: String| TlsError::Pem {
            path: self.path.clone(),
            detail,
        };
        let (_, document) = pkcs8::SecretDocument::from_pem(block)
            .map_err(|error| malformed(format!("the {ENCRYPTED_KEY_LABEL} block: {error}")))?;
        let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes())
            .map_err(|error| malformed(format!("the {ENCRYPTED_KEY_LABEL} block: {error}")))?;
        let decrypted = encrypted
            .decrypt(password)
            .map_err(|error| TlsError::KeyDecryption {
                path: self.path.clone(),
                detail: error.to_string(),
            })?;
        let der = decrypted.as_bytes().to_vec();
        Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)))
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Checks that the broker's certificate chains to a trusted CA, but not which host it names
/// (`ssl.endpoint.identification.algorithm=none`): for clusters whose certificates do not
/// carry the names clients use. The name check is webpki's last step, after the chain and
/// validity checks, so a name mismatch is the one failure forgiven.
#[derive(Debug)]
struct ChainOnlyVerifier {
    webpki: Arc<WebPkiServerVerifier>,
}

impl ChainOnlyVerifier {
    fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
    ) -> Result<ChainOnlyVerifier, TlsError> {
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(configuration_error)?;
        Ok(ChainOnlyVerifier { webpki })
    }
}

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verified {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki
            .verify_tls12_signature(message, certificate, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki
            .verify_tls13_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_parses_kafka_values() {
        assert_eq!(ClientAuth::parse("none"), Some(ClientAuth::None));
        assert_eq!(
            ClientAuth::parse(" Requested "),
            Some(ClientAuth::Requested)
        );
        assert_eq!(ClientAuth::parse("REQUIRED"), Some(ClientAuth::Required));
        assert_eq!(ClientAuth::parse("yes"), None);
        for value in [
            ClientAuth::None,
            ClientAuth::Requested,
            ClientAuth::Required,
        ] {
            assert_eq!(ClientAuth::parse(&value.to_string()), Some(value));
        }
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let files = ClientTlsFiles {
            ca_location: None,
            certificate_location: None,
            key_location: None,
            key_password: Some("hunter2".to_string()),
            verify_hostname: true,
        };
        let shown = format!("{files:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    fn pem_file(contents: &str) -> PemFile {
        PemFile {
            path: PathBuf::from("/x/server.pem"),
            contents: contents.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_file_without_a_key_says_so() {
        let error = pem_file("no pem here\n").private_key(None).unwrap_err();
        assert_eq!(
            error.to_string().split(" (").next().unwrap(),
            "no private key in /x/server.pem"
        );
        let error = pem_file("").certificates().unwrap_err();
        assert_eq!(error.to_string(), "no certificate in /x/server.pem");
    }

    #[test]
    fn a_torn_encrypted_block_is_a_pem_error() {
        let error = pem_file("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n")
            .private_key(Some("secret"))
            .unwrap_err();
        assert!(matches!(error, TlsError::Pem { .. }), "{error}");
        let error = pem_file(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .private_key(Some("secret"))
        .unwrap_err();
        assert!(matches!(error, TlsError::Pem { .. }), "{error}");
    }

    #[test]
    fn a_torn_certificate_is_a_pem_error() {
        let error = pem_file("-----BEGIN CERTIFICATE-----\nAAAA\n")
            .certificates()
            .unwrap_err();
        assert!(matches!(error, TlsError::Pem { .. }), "{error}");
    }

    #[test]
    fn find_locates_the_first_occurrence() {
        assert_eq!(find(b"abcabc", b"ca"), Some(2));
        assert_eq!(find(b"ab", b"abc"), None);
    }
}
