//! Secured connections against the fake broker: TLS (with the strom-security fixtures, mutual
//! TLS included) and SASL logins over the broker's own SASL exchanges.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::MetadataRequest;
use strom_security::oauthbearer::{JwtValidator, OAuthConfig};
use strom_security::sasl::Mechanism;
use strom_security::tls::{server_config, ClientAuth, ServerTlsFiles};
use strom_types::{ErrorCode, Offset, PartitionIndex};

use crate::fake_broker::{FakeBroker, FakeSasl, FakeState};
use crate::{
    Acks, Client, ClientConfig, ClientError, Compression, Connection, ConnectionOptions,
    ProduceRecord, SaslConfig, SecurityConfig, SecurityProtocol, TlsConfig,
};

const SASL_HANDSHAKE: i16 = 17;
const SASL_AUTHENTICATE: i16 = 36;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../security/tests/fixtures/tls")
        .join(name)
}

fn broker_tls(keystore: &str, client_auth: ClientAuth) -> Arc<rustls::ServerConfig> {
    server_config(&ServerTlsFiles {
        keystore_location: fixture(keystore),
        key_password: None,
        truststore_location: Some(fixture("ca.pem")),
        client_auth,
    })
    .unwrap()
}

fn client_tls() -> TlsConfig {
    TlsConfig {
        ca_location: Some(fixture("ca.pem")),
        ..TlsConfig::default()
    }
}

fn options(
    protocol: SecurityProtocol,
    tls: TlsConfig,
    sasl: Option<SaslConfig>,
) -> ConnectionOptions {
    ConnectionOptions {
        security: SecurityConfig {
            protocol,
            tls,
            sasl,
        },
        ..ConnectionOptions::default()
    }
}

fn login(mechanism: &str, password: &str) -> Option<SaslConfig> {
    Some(SaslConfig {
        mechanism: mechanism.to_string(),
        username: "alice".to_string(),
        password: password.to_string(),
        token: None,
    })
}

fn sasl_broker_state() -> FakeState {
    FakeState {
        sasl: Some(FakeSasl::user("alice", "alice-secret")),
        ..FakeState::default()
    }
}

/// Produces two records and reads them back through a `Client` built with `connection`.
async fn produce_and_fetch(address: &str, connection: ConnectionOptions) {
    let config = ClientConfig {
        connection,
        ..ClientConfig::default()
    };
    let client = Client::connect(address, config).await.unwrap();
    client.create_topics("secured", 1, 1, vec![]).await.unwrap();
    let records: Vec<ProduceRecord> = ["a", "b"]
        .iter()
        .map(|value| ProduceRecord::new(None, Some(Bytes::from_static(value.as_bytes()))))
        .collect();
    let partition = PartitionIndex(0);
    client
        .produce("secured", partition, &records, Acks::All, Compression::None)
        .await
        .unwrap();
    let fetched = client
        .fetch("secured", partition, Offset(0), 0, 1, 1 << 20)
        .await
        .unwrap();
    assert_eq!(fetched.records.len(), 2);
}

#[tokio::test]
async fn tls_carries_produce_and_fetch() {
    let broker = FakeBroker::start_tls(
        FakeState::default(),
        broker_tls("server-pkcs8.pem", ClientAuth::None),
    )
    .await;
    let options = options(SecurityProtocol::Ssl, client_tls(), None);
    produce_and_fetch(&broker.address, options.clone()).await;
    // The broker's certificate names 127.0.0.1 and localhost: both forms of address pass.
    let port = broker.address.rsplit_once(':').unwrap().1;
    Connection::connect(&format!("localhost:{port}"), &options)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_untrusted_broker_certificate_is_a_tls_error() {
    let broker = FakeBroker::start_tls(
        FakeState::default(),
        broker_tls("mallory.pem", ClientAuth::None),
    )
    .await;
    let options = options(SecurityProtocol::Ssl, client_tls(), None);
    let error = Connection::connect(&broker.address, &options)
        .await
        .err()
        .unwrap();
    assert!(matches!(error, ClientError::Tls { .. }), "{error}");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
}

#[tokio::test]
async fn bad_tls_settings_name_the_file() {
    let broker = FakeBroker::start_tls(
        FakeState::default(),
        broker_tls("server-pkcs8.pem", ClientAuth::None),
    )
    .await;
    let settings = TlsConfig {
        certificate_location: Some(fixture("server-certificate.pem")),
        ..client_tls()
    };
    let options = options(SecurityProtocol::Ssl, settings, None);
    let error = Connection::connect(&broker.address, &options)
        .await
        .err()
        .unwrap();
    assert!(matches!(error, ClientError::Tls { .. }), "{error}");
    assert!(error.to_string().contains("no private key in "), "{error}");
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let broker = FakeBroker::start_tls(
        FakeState::default(),
        broker_tls("server-pkcs8.pem", ClientAuth::Required),
    )
    .await;
    let anonymous = options(SecurityProtocol::Ssl, client_tls(), None);
    // TLS 1.3 clients finish their handshake before the broker has checked their certificate:
    // the refusal arrives with the first response.
    let refused = match Connection::connect(&broker.address, &anonymous).await {
        Ok(_) => panic!("a client without a certificate got in"),
        Err(error) => error,
    };
    assert!(
        matches!(
            refused,
            ClientError::Tls { .. } | ClientError::Disconnected { .. }
        ),
        "{refused}"
    );
    let bob = TlsConfig {
        certificate_location: Some(fixture("bob.pem")),
        ..client_tls()
    };
    produce_and_fetch(&broker.address, options(SecurityProtocol::Ssl, bob, None)).await;
}

#[tokio::test]
async fn sasl_plain_and_scram_log_in() {
    let broker = FakeBroker::start(sasl_broker_state()).await;
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "scram-sha-512"] {
        let options = options(
            SecurityProtocol::SaslPlaintext,
            TlsConfig::default(),
            login(mechanism, "alice-secret"),
        );
        produce_and_fetch(&broker.address, options).await;
        broker.state().topics.clear();
    }
    let state = broker.state();
    assert_eq!(state.sasl.as_ref().unwrap().logins.len(), 3);
    assert_eq!(state.count(SASL_HANDSHAKE), 3);
    assert_eq!(state.count(SASL_AUTHENTICATE), 1 + 2 + 2);
    assert!(state.requests.contains(&(SASL_AUTHENTICATE, 2)));
}

#[tokio::test]
async fn sasl_over_tls_logs_in() {
    let broker = FakeBroker::start_tls(
        sasl_broker_state(),
        broker_tls("server-pkcs8.pem", ClientAuth::None),
    )
    .await;
    let options = options(
        SecurityProtocol::SaslSsl,
        client_tls(),
        login("SCRAM-SHA-512", "alice-secret"),
    );
    produce_and_fetch(&broker.address, options).await;
    assert_eq!(broker.state().sasl.as_ref().unwrap().logins, ["alice"]);
}

#[tokio::test]
async fn a_refused_login_carries_the_broker_code_and_message() {
    let broker = FakeBroker::start(sasl_broker_state()).await;
    for mechanism in ["PLAIN", "SCRAM-SHA-256"] {
        let options = options(
            SecurityProtocol::SaslPlaintext,
            TlsConfig::default(),
            login(mechanism, "wrong"),
        );
        let error = Connection::connect(&broker.address, &options)
            .await
            .err()
            .unwrap();
        assert_eq!(
            error.error_code(),
            Some(ErrorCode::SaslAuthenticationFailed),
            "{error}"
        );
        assert!(
            error.to_string().contains("Authentication failed"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_mechanism_the_broker_does_not_enable_is_named() {
    let mut state = sasl_broker_state();
    state.sasl.as_mut().unwrap().mechanisms = vec![Mechanism::Plain];
    let broker = FakeBroker::start(state).await;
    let options = options(
        SecurityProtocol::SaslPlaintext,
        TlsConfig::default(),
        login("SCRAM-SHA-256", "alice-secret"),
    );
    let error = Connection::connect(&broker.address, &options)
        .await
        .err()
        .unwrap();
    assert_eq!(
        error.error_code(),
        Some(ErrorCode::UnsupportedSaslMechanism)
    );
    assert!(
        error
            .to_string()
            .contains("does not enable SCRAM-SHA-256 on this listener; it enables PLAIN"),
        "{error}"
    );
}

#[tokio::test]
async fn sasl_without_its_settings_is_refused_before_connecting() {
    let broker = FakeBroker::start(sasl_broker_state()).await;
    let options = options(SecurityProtocol::SaslPlaintext, TlsConfig::default(), None);
    let error = Connection::connect(&broker.address, &options)
        .await
        .err()
        .unwrap();
    assert!(matches!(error, ClientError::InvalidArgument(_)), "{error}");
    assert_eq!(broker.state().count(SASL_HANDSHAKE), 0);
}

#[tokio::test]
async fn a_session_with_a_lifetime_closes_before_it_ends() {
    let mut state = sasl_broker_state();
    state.sasl.as_mut().unwrap().session_lifetime_ms = 10_000;
    let broker = FakeBroker::start(state).await;
    let options = options(
        SecurityProtocol::SaslPlaintext,
        TlsConfig::default(),
        login("PLAIN", "alice-secret"),
    );
    let connection = Connection::connect(&broker.address, &options)
        .await
        .unwrap();
    connection.send(&MetadataRequest::default()).await.unwrap();
    // Paused only now: a paused clock jumps to the next timer whenever the runtime waits for
    // the socket, which would time requests out.
    tokio::time::pause();
    tokio::time::advance(std::time::Duration::from_millis(8_900)).await;
    assert!(!connection.is_closed());
    tokio::time::advance(std::time::Duration::from_millis(100)).await;
    assert!(connection.is_closed(), "90% of the lifetime has passed");
    let error = connection
        .send(&MetadataRequest::default())
        .await
        .unwrap_err();
    assert!(error.is_connection_failure(), "{error}");
    assert!(error.to_string().contains("SASL session"), "{error}");
}

/// A JWT for `subject`, valid for ten minutes, signed with the strom-security OAUTHBEARER
/// fixture key `signer` (`rsa-signer.pem` is in the fixture key set, `rsa-foreign.pem` is not).
fn token(subject: &str, signer: &str) -> String {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../security/tests/fixtures/oauth");
    let key = std::fs::read(folder.join(signer)).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("strom-test-rsa".to_string());
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"sub": subject, "iat": now_s, "exp": now_s + 600});
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&key).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test]
async fn oauthbearer_presents_the_token() {
    let jwks = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../security/tests/fixtures/oauth/jwks.json");
    let validator =
        JwtValidator::new(OAuthConfig::new(format!("file://{}", jwks.display()))).unwrap();
    let mut state = sasl_broker_state();
    let sasl = state.sasl.as_mut().unwrap();
    sasl.mechanisms.push(Mechanism::OAuthBearer);
    sasl.oauth = Some(Arc::new(validator));
    let broker = FakeBroker::start(state).await;
    let bearer = |token: String| {
        options(
            SecurityProtocol::SaslPlaintext,
            TlsConfig::default(),
            Some(SaslConfig {
                mechanism: "OAUTHBEARER".to_string(),
                username: String::new(),
                password: String::new(),
                token: Some(token),
            }),
        )
    };
    Connection::connect(&broker.address, &bearer(token("carol", "rsa-signer.pem")))
        .await
        .unwrap();
    assert_eq!(broker.state().sasl.as_ref().unwrap().logins, ["carol"]);

    let error = Connection::connect(&broker.address, &bearer(token("carol", "rsa-foreign.pem")))
        .await
        .err()
        .unwrap();
    assert_eq!(
        error.error_code(),
        Some(ErrorCode::SaslAuthenticationFailed),
        "{error}"
    );
    assert!(error.to_string().contains("token is invalid"), "{error}");
}
