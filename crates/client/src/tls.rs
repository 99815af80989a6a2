//! TLS for a client connection: the rustls configuration made from [`TlsConfig`], and the
//! handshake over a fresh TCP stream.
//!
//! Building a configuration reads and parses PEM files, which costs far more than a connection
//! should: the replica fetchers and the transaction coordinator reopen connections often, and
//! each builds its `ConnectionOptions` anew. So configurations are kept in one process-wide
//! table keyed by the settings and by each file's size and modification time: a connection
//! pays a few `stat` calls, and a certificate renewed on disk is read by the next connection.
//! The table holds at most [`limits::TLS_CONFIGS_CACHED_MAX`] entries, dropping the oldest.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::pki_types::{DnsName, ServerName};
use strom_security::tls::{self as security_tls, ClientTlsFiles};
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::{limits, ClientError, TlsConfig};

/// A file's size and modification time when its configuration was built (`None`: unreadable).
type FileStamp = Option<(u64, SystemTime)>;

/// One built configuration and what it was built from.
struct CachedConfig {
    settings: TlsConfig,
    stamps: Vec<FileStamp>,
    config: Arc<rustls::ClientConfig>,
}

/// The process-wide table of built configurations, newest last.
static CONFIGS: Mutex<Vec<CachedConfig>> = Mutex::new(Vec::new());

/// How much a TLS connection reads from its socket at once.
const TLS_READ_BUFFER_BYTES: usize = 64 * 1024;

/// Runs the TLS handshake with the broker at `address` (HOST:PORT) over `stream`.
pub(crate) async fn handshake(
    stream: TcpStream,
    address: &str,
    settings: &TlsConfig,
) -> Result<TlsStream<BufReader<TcpStream>>, ClientError> {
    // rustls reads at most 4 KiB per call; a buffer beneath it reads the socket in 64 KiB.
    let stream = BufReader::with_capacity(TLS_READ_BUFFER_BYTES, stream);
    let tls_error = |reason: String| ClientError::Tls {
        address: address.to_string(),
        reason,
    };
    let config = client_config(settings).map_err(|error| tls_error(error.to_string()))?;
    let server_name = server_name(address).map_err(tls_error)?;
    TlsConnector::from(config)
        .connect(server_name, stream)
        .await
        .map_err(|error| tls_error(handshake_failure(&error)))
}

/// The reason a handshake failed, with a hint for the common case of a listener that does not
/// speak TLS: it reads the ClientHello as a huge request frame and hangs up.
fn handshake_failure(error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        format!("{error} (is the listener TLS? security.protocol must match the broker's listener)")
    } else {
        error.to_string()
    }
}

/// The configuration for `settings`, built once for as long as its files do not change.
pub(crate) fn client_config(
    settings: &TlsConfig,
) -> Result<Arc<rustls::ClientConfig>, security_tls::TlsError> {
    let stamps = file_stamps(settings);
    let mut configs = CONFIGS.lock().expect("TLS configuration table lock");
    let cached = configs
        .iter()
        .find(|cached| cached.settings == *settings && cached.stamps == stamps);
    if let Some(cached) = cached {
        return Ok(cached.config.clone());
    }
    // Built under the lock: a burst of connections with new settings reads the files once.
    let config = security_tls::client_config(&client_files(settings))?;
    configs.retain(|cached| cached.settings != *settings);
    if configs.len() >= limits::TLS_CONFIGS_CACHED_MAX {
        configs.remove(0);
    }
    configs.push(CachedConfig {
        settings: settings.clone(),
        stamps,
        config: config.clone(),
    });
    Ok(config)
}

fn client_files(settings: &TlsConfig) -> ClientTlsFiles {
    ClientTlsFiles {
        ca_location: settings.ca_location.clone(),
        certificate_location: settings.certificate_location.clone(),
        key_location: settings.key_location.clone(),
        key_password: settings.key_password.clone(),
        verify_hostname: settings.verify_hostname,
    }
}

fn file_stamps(settings: &TlsConfig) -> Vec<FileStamp> {
    [
        &settings.ca_location,
        &settings.certificate_location,
        &settings.key_location,
    ]
    .into_iter()
    .flatten()
    .map(|path| file_stamp(path))
    .collect()
}

fn file_stamp(path: &Path) -> FileStamp {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.len(), metadata.modified().ok()?))
}

/// The name the broker's certificate must carry: the host part of HOST:PORT, as an IP address
/// when it is one (`[::1]:9092` too), else as a DNS name.
pub(crate) fn server_name(address: &str) -> Result<ServerName<'static>, String> {
    let host = match address.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']').map(|(host, _)| host),
        None => address.rsplit_once(':').map(|(host, _)| host),
    }
    .ok_or_else(|| format!("'{address}' is not HOST:PORT"))?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    DnsName::try_from(host.to_string())
        .map(ServerName::DnsName)
        .map_err(|_| format!("'{host}' is neither an IP address nor a DNS name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../security/tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn configurations_are_built_once_per_settings_and_files() {
        let folder = tempfile::tempdir().unwrap();
        let ca_location = folder.path().join("ca.pem");
        std::fs::copy(fixture("ca.pem"), &ca_location).unwrap();
        let settings = TlsConfig {
            ca_location: Some(ca_location.clone()),
            ..TlsConfig::default()
        };
        let first = client_config(&settings).unwrap();
        assert!(Arc::ptr_eq(&first, &client_config(&settings).unwrap()));
        let lenient = TlsConfig {
            verify_hostname: false,
            ..settings.clone()
        };
        assert!(!Arc::ptr_eq(&first, &client_config(&lenient).unwrap()));

        // A renewed file is read again.
        let mut renewed = std::fs::read(&ca_location).unwrap();
        renewed.extend_from_slice(b"\n");
        std::fs::write(&ca_location, renewed).unwrap();
        let second = client_config(&settings).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(Arc::ptr_eq(&second, &client_config(&settings).unwrap()));

        for index in 0..=limits::TLS_CONFIGS_CACHED_MAX {
            let distinct = TlsConfig {
                key_password: Some(format!("unused-{index}")),
                ..settings.clone()
            };
            client_config(&distinct).unwrap();
        }
        assert!(CONFIGS.lock().unwrap().len() <= limits::TLS_CONFIGS_CACHED_MAX);
    }

    #[test]
    fn server_names_come_from_the_host_part() {
        let name = |address| server_name(address).map(|name| name.to_str().into_owned());
        assert_eq!(name("localhost:9092"), Ok("localhost".to_string()));
        assert_eq!(name("127.0.0.1:9092"), Ok("127.0.0.1".to_string()));
        assert_eq!(name("[::1]:9092"), Ok("::1".to_string()));
        assert!(matches!(
            server_name("10.0.0.1:1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("broker-1.example:1").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(name("no-port").is_err());
        assert!(name("bad_host!:1").is_err());
    }
}
