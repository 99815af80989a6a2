//! TLS configurations built from the PEM fixtures (made by `fixtures/tls/make.sh`), tried in
//! real handshakes between a tokio-rustls server and client over an in-memory pipe.

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::ServerName;
use strom_security::tls::{
    client_config, peer_leaf_certificate, server_config, server_tls, ClientAuth, ClientTlsFiles,
    ServerTlsFiles, TlsError,
};
use strom_security::tls_reconfigure::{ensure_compatible, handshake as tls_handshake};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const SERVER_KEY_PASSWORD: &str = "server-secret";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn server_files(keystore: &str, client_auth: ClientAuth) -> ServerTlsFiles {
    ServerTlsFiles {
        keystore_location: fixture(keystore),
        key_password: None,
        truststore_location: Some(fixture("ca.pem")),
        client_auth,
    }
}

fn client_files() -> ClientTlsFiles {
    ClientTlsFiles {
        ca_location: Some(fixture("ca.pem")),
        certificate_location: None,
        key_location: None,
        key_password: None,
        verify_hostname: true,
    }
}

fn bob() -> ClientTlsFiles {
    ClientTlsFiles {
        certificate_location: Some(fixture("bob.pem")),
        ..client_files()
    }
}

/// What the server saw of a handshake that succeeded: the client's leaf certificate.
type ServerSide = Result<Option<Vec<u8>>, std::io::Error>;

/// Runs a handshake, then one byte each way, and returns both sides' outcomes.
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> (ServerSide, Result<(), std::io::Error>) {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let server_name = ServerName::try_from(server_name.to_string()).unwrap();
    let accept = async move {
        let mut stream = TlsAcceptor::from(server).accept(server_end).await?;
        let peer = peer_leaf_certificate(stream.get_ref().1).map(<[u8]>::to_vec);
        let byte = stream.read_u8().await?;
        stream.write_u8(byte + 1).await?;
        stream.flush().await?;
        Ok(peer)
    };
    let connect = async move {
        let mut stream = TlsConnector::from(client)
            .connect(server_name, client_end)
            .await?;
        stream.write_u8(41).await?;
        stream.flush().await?;
        assert_eq!(stream.read_u8().await?, 42);
        Ok(())
    };
    tokio::join!(accept, connect)
}

fn bob_certificate_der() -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(fixture("bob-certificate.pem"))
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn every_key_format_serves_a_handshake() {
    for keystore in [
        "server-pkcs8.pem",
        "server-sec1.pem",
        "server-encrypted.pem",
    ] {
        let mut files = server_files(keystore, ClientAuth::None);
        files.key_password = Some(SERVER_KEY_PASSWORD.to_string());
        let server = server_config(&files).unwrap();
        let client = client_config(&client_files()).unwrap();
        for name in ["localhost", "127.0.0.1"] {
            let (served, connected) = handshake(server.clone(), client.clone(), name).await;
            connected.unwrap_or_else(|error| panic!("{keystore} as {name}: {error}"));
            assert_eq!(served.unwrap(), None, "no client certificate was asked for");
        }
    }
}

#[tokio::test]
async fn the_host_name_is_checked_unless_turned_off() {
    let server = server_config(&server_files("server-pkcs8.pem", ClientAuth::None)).unwrap();
    let client = client_config(&client_files()).unwrap();
    let (_, connected) = handshake(server.clone(), client, "broker.example").await;
    let error = connected.unwrap_err().to_string();
    assert!(error.contains("not valid for name"), "{error}");

    let lenient = client_config(&ClientTlsFiles {
        verify_hostname: false,
        ..client_files()
    })
    .unwrap();
    let (served, connected) = handshake(server, lenient, "broker.example").await;
    connected.unwrap();
    served.unwrap();
}

#[tokio::test]
async fn without_the_host_check_the_chain_is_still_checked() {
    let untrusted_server = ServerTlsFiles {
        keystore_location: fixture("mallory.pem"),
        key_password: None,
        truststore_location: None,
        client_auth: ClientAuth::None,
    };
    let server = server_config(&untrusted_server).unwrap();
    let lenient = client_config(&ClientTlsFiles {
        verify_hostname: false,
        ..client_files()
    })
    .unwrap();
    let (_, connected) = handshake(server, lenient, "localhost").await;
    let error = connected.unwrap_err().to_string();
    assert!(error.contains("UnknownIssuer"), "{error}");
}

#[tokio::test]
async fn mutual_tls_hands_the_server_the_client_certificate() {
    let server = server_config(&server_files("server-pkcs8.pem", ClientAuth::Required)).unwrap();
    let separate_files = ClientTlsFiles {
        certificate_location: Some(fixture("bob-certificate.pem")),
        key_location: Some(fixture("bob-key.pem")),
        ..client_files()
    };
    for files in [bob(), separate_files] {
        let client = client_config(&files).unwrap();
        let (served, connected) = handshake(server.clone(), client, "localhost").await;
        connected.unwrap();
        assert_eq!(served.unwrap(), Some(bob_certificate_der()));
    }
}

#[tokio::test]
async fn required_client_auth_refuses_clients_without_a_trusted_certificate() {
    let server = server_config(&server_files("server-pkcs8.pem", ClientAuth::Required)).unwrap();
    let anonymous = client_config(&client_files()).unwrap();
    let (served, _) = handshake(server.clone(), anonymous, "localhost").await;
    let error = served.unwrap_err().to_string();
    assert!(error.contains("peer sent no certificates"), "{error}");

    let mallory = client_config(&ClientTlsFiles {
        certificate_location: Some(fixture("mallory.pem")),
        ..client_files()
    })
    .unwrap();
    let (served, _) = handshake(server, mallory, "localhost").await;
    let error = served.unwrap_err().to_string();
    assert!(error.contains("UnknownIssuer"), "{error}");
}

#[tokio::test]
async fn requested_client_auth_lets_anonymous_clients_in() {
    let server = server_config(&server_files("server-pkcs8.pem", ClientAuth::Requested)).unwrap();
    let anonymous = client_config(&client_files()).unwrap();
    let (served, connected) = handshake(server.clone(), anonymous, "localhost").await;
    connected.unwrap();
    assert_eq!(served.unwrap(), None);

    let (served, connected) = handshake(server, client_config(&bob()).unwrap(), "localhost").await;
    connected.unwrap();
    assert_eq!(served.unwrap(), Some(bob_certificate_der()));
}

fn server_error(files: &ServerTlsFiles) -> TlsError {
    server_config(files).expect_err("the configuration is refused")
}

#[test]
fn a_wrong_or_missing_key_password_is_named() {
    let mut files = server_files("server-encrypted.pem", ClientAuth::None);
    files.key_password = Some("not-the-password".to_string());
    let message = server_error(&files).to_string();
    let expected = format!(
        "wrong ssl.key.password or unsupported encryption for {}",
        fixture("server-encrypted.pem").display()
    );
    assert!(message.starts_with(&expected), "{message}");

    files.key_password = None;
    let error = server_error(&files);
    assert!(
        matches!(error, TlsError::KeyPasswordMissing { .. }),
        "{error}"
    );
}

#[test]
fn missing_pieces_are_named_with_their_file() {
    let certificate_only = server_files("server-certificate.pem", ClientAuth::None);
    let message = server_error(&certificate_only).to_string();
    let path = fixture("server-certificate.pem");
    assert!(
        message.starts_with(&format!("no private key in {}", path.display())),
        "{message}"
    );

    let key_only = ClientTlsFiles {
        certificate_location: Some(fixture("bob-key.pem")),
        ..client_files()
    };
    let message = client_config(&key_only).unwrap_err().to_string();
    let path = fixture("bob-key.pem");
    assert_eq!(message, format!("no certificate in {}", path.display()));

    let absent = server_files("absent.pem", ClientAuth::None);
    let message = server_error(&absent).to_string();
    assert!(message.starts_with("cannot read "), "{message}");
    assert!(message.contains("absent.pem"), "{message}");
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused() {
    let mismatched = ClientTlsFiles {
        certificate_location: Some(fixture("bob-certificate.pem")),
        key_location: Some(fixture("server-pkcs8.pem")),
        ..client_files()
    };
    let error = client_config(&mismatched).unwrap_err();
    assert!(matches!(error, TlsError::UnusableKey { .. }), "{error}");
}

#[test]
fn settings_that_cannot_work_are_refused() {
    let mut files = server_files("server-pkcs8.pem", ClientAuth::Required);
    files.truststore_location = None;
    let error = server_error(&files);
    assert_eq!(
        error.to_string().split(':').next().unwrap(),
        "ssl.client.auth=required needs ssl.truststore.location"
    );
    files.client_auth = ClientAuth::None;
    assert!(
        server_config(&files).is_ok(),
        "no truststore is needed then"
    );

    let no_ca = ClientTlsFiles {
        ca_location: None,
        ..client_files()
    };
    let error = client_config(&no_ca).unwrap_err();
    assert!(matches!(error, TlsError::CaLocationMissing), "{error}");

    let key_without_certificate = ClientTlsFiles {
        key_location: Some(fixture("bob-key.pem")),
        ..client_files()
    };
    let error = client_config(&key_without_certificate).unwrap_err();
    assert!(
        matches!(error, TlsError::CertificateLocationMissing { .. }),
        "{error}"
    );
}

// -- reconfiguration at runtime (`tls_reconfigure`) ---------------------------------------------

fn leaf(keystore: &str) -> Vec<u8> {
    let files = ServerTlsFiles {
        keystore_location: fixture(keystore),
        key_password: Some(SERVER_KEY_PASSWORD.to_owned()),
        truststore_location: None,
        client_auth: ClientAuth::None,
    };
    server_tls(&files).unwrap().leaf.to_vec()
}

#[test]
fn a_new_keystore_must_keep_the_subject_and_the_alternative_names() {
    // The same certificate in another key format: compatible.
    ensure_compatible(
        &leaf("server-pkcs8.pem"),
        &leaf("server-encrypted.pem"),
        false,
        false,
    )
    .unwrap();
    let (server, bob, mallory) = (
        leaf("server-pkcs8.pem"),
        leaf("bob.pem"),
        leaf("mallory.pem"),
    );
    let error = ensure_compatible(&server, &bob, false, false).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Keystore DistinguishedName does not match: existing={DN=CN=localhost}, new={DN=CN=bob} \
         (ssl.allow.dn.changes=false)"
    );
    // mallory keeps DNS:localhost but drops IP:127.0.0.1.
    let error = ensure_compatible(&server, &mallory, true, false).unwrap_err();
    assert!(
        matches!(error, TlsError::SubjectAltNamesChanged { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("IP:127.0.0.1"), "{error}");
    // Adding names is fine; so is anything once both changes are allowed.
    ensure_compatible(&mallory, &server, true, false).unwrap();
    ensure_compatible(&server, &bob, true, true).unwrap();
}

#[test]
fn old_and_new_settings_are_tried_in_a_handshake_in_memory() {
    let server = server_config(&server_files("server-pkcs8.pem", ClientAuth::Required)).unwrap();
    let lenient = |certificate: &str| ClientTlsFiles {
        certificate_location: Some(fixture(certificate)),
        verify_hostname: false,
        ..client_files()
    };
    tls_handshake(server.clone(), client_config(&lenient("bob.pem")).unwrap()).unwrap();
    // The server does not trust mallory's CA.
    let error = tls_handshake(server, client_config(&lenient("mallory.pem")).unwrap()).unwrap_err();
    assert!(error.to_string().contains("the server:"), "{error}");
    // Nor does the client trust a server keystore of mallory's.
    let untrusted = server_config(&server_files("mallory.pem", ClientAuth::None)).unwrap();
    let error = tls_handshake(untrusted, client_config(&lenient("bob.pem")).unwrap()).unwrap_err();
    assert!(error.to_string().contains("the client:"), "{error}");
}

#[test]
fn a_server_key_that_does_not_match_its_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keystore = dir.path().join("mismatched.pem");
    let key = std::fs::read_to_string(fixture("server-pkcs8.pem")).unwrap();
    let key_only = &key[..key.find("-----BEGIN CERTIFICATE").unwrap()];
    let certificate = std::fs::read_to_string(fixture("bob-certificate.pem")).unwrap();
    std::fs::write(&keystore, format!("{key_only}{certificate}")).unwrap();
    let files = ServerTlsFiles {
        keystore_location: keystore,
        ..server_files("unused", ClientAuth::None)
    };
    let error = server_config(&files).unwrap_err();
    assert!(matches!(error, TlsError::UnusableKey { .. }), "{error}");
}
