//! What a keystore or truststore change made at runtime must keep, checked before a listener
//! takes it, as Kafka's `SslFactory` checks a dynamic SSL update (KIP-226):
//! - the new certificate names the same subject (DN) as the one in use, and at least the same
//!   subject alternative names, unless `ssl.allow.dn.changes` / `ssl.allow.san.changes` say
//!   otherwise: peers' ACLs on `User:CN=...` and clients that know the broker by a name keep
//!   working ([`ensure_compatible`]);
//! - on the inter-broker listener, the old and the new settings still reach each other: a
//!   client with the new keystore and truststore completes a handshake with a server of the old
//!   ones, and the other way round (Kafka's `SslEngineValidator`), so the brokers that have not
//!   rotated yet go on replicating from this one. The handshake runs in memory
//!   ([`handshake`]).
//!
//! Nothing here touches a socket; the broker's `listener_tls` runs these checks and swaps the
//! listeners' configuration.

use std::collections::BTreeSet;
use std::sync::Arc;

use rustls::{ClientConnection, Connection, ServerConnection};
use rustls_pki_types::ServerName;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::principal::subject_dn;
use crate::tls::TlsError;

/// Flights a handshake may take before it is given up as stuck: TLS 1.2 needs four, 1.3 three.
const HANDSHAKE_FLIGHTS_MAX: usize = 16;

/// Refuses a new leaf certificate whose subject or alternative names differ from the old one's
/// (Kafka's `CertificateEntries.ensureCompatible`: the DN must be equal, ignoring case; the new
/// names must include the old ones).
pub fn ensure_compatible(
    old_leaf: &[u8],
    new_leaf: &[u8],
    allow_dn_changes: bool,
    allow_san_changes: bool,
) -> Result<(), TlsError> {
    let dn =
        |leaf: &[u8]| subject_dn(leaf).map_err(|error| TlsError::Configuration(error.to_string()));
    if !allow_dn_changes {
        let (existing, new) = (dn(old_leaf)?, dn(new_leaf)?);
        if !existing.eq_ignore_ascii_case(&new) {
            return Err(TlsError::DistinguishedNameChanged { existing, new });
        }
    }
    if !allow_san_changes {
        let (existing, new) = (subject_alt_names(old_leaf)?, subject_alt_names(new_leaf)?);
        if !existing.is_subset(&new) {
            let list =
                |names: &BTreeSet<String>| names.iter().cloned().collect::<Vec<_>>().join(", ");
            return Err(TlsError::SubjectAltNamesChanged {
                existing: list(&existing),
                new: list(&new),
            });
        }
    }
    Ok(())
}

/// A certificate's subject alternative names, as `openssl x509 -text` prints them.
fn subject_alt_names(leaf: &[u8]) -> Result<BTreeSet<String>, TlsError> {
    let malformed =
        |detail: String| TlsError::Configuration(format!("a keystore certificate: {detail}"));
    let (_, certificate) =
        X509Certificate::from_der(leaf).map_err(|error| malformed(error.to_string()))?;
    let extension =
        (certificate.subject_alternative_name()).map_err(|error| malformed(error.to_string()))?;
    let Some(extension) = extension else {
        return Ok(BTreeSet::new());
    };
    Ok((extension.value.general_names.iter())
        .map(|name| match name {
            GeneralName::DNSName(dns) => format!("DNS:{dns}"),
            GeneralName::IPAddress(bytes) => match <[u8; 4]>::try_from(*bytes) {
                Ok(v4) => format!("IP:{}", std::net::Ipv4Addr::from(v4)),
                Err(_) => match <[u8; 16]>::try_from(*bytes) {
                    Ok(v6) => format!("IP:{}", std::net::Ipv6Addr::from(v6)),
                    Err(_) => format!("IP:{bytes:?}"),
                },
            },
            GeneralName::RFC822Name(email) => format!("email:{email}"),
            GeneralName::URI(uri) => format!("URI:{uri}"),
            other => format!("{other:?}"),
        })
        .collect())
}

/// Runs a TLS handshake between `client` and `server` in memory; the error says which side
/// refused and why (most often a certificate that does not chain to the other's truststore).
pub fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
) -> Result<(), TlsError> {
    let failed = |side: &str, error: rustls::Error| TlsError::Handshake(format!("{side}: {error}"));
    // The name is not checked (inter-broker TLS does not verify host names).
    let name = ServerName::try_from("localhost").expect("a valid DNS name");
    let client = ClientConnection::new(client, name).map_err(|e| failed("the client", e))?;
    let server = ServerConnection::new(server).map_err(|e| failed("the server", e))?;
    let (mut client, mut server) = (Connection::Client(client), Connection::Server(server));
    for _ in 0..HANDSHAKE_FLIGHTS_MAX {
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
        transfer(&mut client, &mut server).map_err(|e| failed("the server", e))?;
        transfer(&mut server, &mut client).map_err(|e| failed("the client", e))?;
    }
    Err(TlsError::Handshake("it did not finish".to_owned()))
}

/// Moves what `from` has to send into `to`, and lets `to` process it.
fn transfer(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
    let mut bytes = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut bytes)
            .map_err(|error| rustls::Error::General(error.to_string()))?;
    }
    let mut unread = &bytes[..];
    while !unread.is_empty() {
        to.read_tls(&mut unread)
            .map_err(|error| rustls::Error::General(error.to_string()))?;
        to.process_new_packets()?;
    }
    Ok(())
}
