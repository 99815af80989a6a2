//! The `client.properties` reader: each key, both clients' spellings, and the errors.

use std::path::{Path, PathBuf};

use super::*;

fn read(text: &str) -> CommandConfig {
    CommandConfig::parse(text).unwrap_or_else(|error| panic!("{text:?}: {error}"))
}

fn error(text: &str) -> String {
    match CommandConfig::parse(text) {
        Ok(read) => panic!("{text:?} was accepted: {read:?}"),
        Err(error) => error.to_string(),
    }
}

fn path(text: &str) -> Option<PathBuf> {
    Some(PathBuf::from(text))
}

#[test]
fn an_empty_file_is_plaintext() {
    let read = read("# nothing here\n\n");
    assert_eq!(read.security.protocol, SecurityProtocol::Plaintext);
    assert!(read.security.sasl.is_none());
    assert!(read.security.tls.verify_hostname);
    assert!(read.notes.is_empty());
}

#[test]
fn protocols_read_in_any_case() {
    for (text, protocol) in [
        ("plaintext", SecurityProtocol::Plaintext),
        ("SSL", SecurityProtocol::Ssl),
        ("Ssl", SecurityProtocol::Ssl),
        ("sasl_ssl", SecurityProtocol::SaslSsl),
        ("SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext),
    ] {
        let config = read(&format!(
            "security.protocol={text}\nsasl.mechanism=PLAIN\nsasl.username=u\nsasl.password=p"
        ));
        assert_eq!(config.security.protocol, protocol, "{text}");
        assert_eq!(
            config.security.sasl.is_some(),
            protocol.uses_sasl(),
            "{text}"
        );
    }
    let message = error("\n security.protocol = SASL-SSL");
    assert_eq!(
        message,
        "security.protocol (line 2): 'SASL-SSL' is none of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
    );
}

#[test]
fn librdkafka_sasl_settings() {
    let config = read(
        "security.protocol=SASL_SSL\nsasl.mechanisms=scram-sha-512\nsasl.username=alice\n\
         sasl.password=p=ss word\nssl.ca.location=/etc/strom/ca.pem\n",
    );
    let sasl = config.security.sasl.unwrap();
    assert_eq!(sasl.mechanism, "SCRAM-SHA-512");
    assert_eq!(
        (sasl.username.as_str(), sasl.password.as_str()),
        ("alice", "p=ss word")
    );
    assert_eq!(sasl.token, None);
    assert_eq!(config.security.tls.ca_location, path("/etc/strom/ca.pem"));
    assert!(config.notes.is_empty(), "{:?}", config.notes);
}

#[test]
fn java_sasl_settings_with_a_jaas_config_over_several_lines() {
    let config = read(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n\
         sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n\
         \x20   username=\"alice\" \\\n    password=\"a \\\\\"quoted\\\\\" secret\";\n",
    );
    let sasl = config.security.sasl.unwrap();
    assert_eq!(sasl.mechanism, "SCRAM-SHA-256");
    assert_eq!(sasl.username, "alice");
    assert_eq!(sasl.password, "a \"quoted\" secret");
}

#[test]
fn sasl_username_and_password_win_over_the_jaas_config() {
    let config = read(
        "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=bob\n\
         sasl.jaas.config=PlainLoginModule required username=\"alice\" password=\"from-jaas\";",
    );
    let sasl = config.security.sasl.unwrap();
    assert_eq!(
        (sasl.username.as_str(), sasl.password.as_str()),
        ("bob", "from-jaas")
    );
}

#[test]
fn the_later_spelling_of_the_mechanism_wins() {
    let config = read(
        "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.mechanisms=SCRAM-SHA-256\n\
         sasl.username=u\nsasl.password=p",
    );
    assert_eq!(config.security.sasl.unwrap().mechanism, "SCRAM-SHA-256");
}

#[test]
fn oauthbearer_presents_a_token() {
    let config = read(
        "security.protocol=SASL_SSL\nsasl.mechanism=OAUTHBEARER\nsasl.oauthbearer.token=eyJ.a.b\n",
    );
    let sasl = config.security.sasl.unwrap();
    assert_eq!(sasl.mechanism, "OAUTHBEARER");
    assert_eq!(sasl.token.as_deref(), Some("eyJ.a.b"));
    let message = error("security.protocol=SASL_SSL\nsasl.mechanism=OAUTHBEARER");
    assert!(
        message.contains("needs sasl.oauthbearer.token"),
        "{message}"
    );
}

#[test]
fn a_sasl_protocol_needs_a_mechanism_and_its_credentials() {
    let message = error("security.protocol=SASL_SSL\nsasl.username=u\nsasl.password=p");
    assert!(
        message.starts_with("security.protocol=SASL_SSL needs sasl.mechanism"),
        "{message}"
    );
    let message = error("security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.password=p");
    assert!(message.contains("needs a user: sasl.username"), "{message}");
    let message = error("security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=u");
    assert!(
        message.contains("needs a password: sasl.password"),
        "{message}"
    );
    let message = error(
        "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n\
         sasl.jaas.config=PlainLoginModule required username=\"u\";",
    );
    assert!(message.contains("needs a password"), "{message}");
}

#[test]
fn bad_sasl_values_name_their_key_and_line() {
    let message = error("sasl.mechanism=GSSAPI");
    assert!(
        message.starts_with("sasl.mechanism (line 1): GSSAPI (Kerberos) is not supported"),
        "{message}"
    );
    let message = error("sasl.mechanisms=SCRAM");
    assert!(
        message.starts_with("sasl.mechanisms (line 1): 'SCRAM' is none of"),
        "{message}"
    );
    assert_eq!(
        error("a=1\nsasl.username="),
        "sasl.username (line 2): must not be empty"
    );
    let message = error("sasl.jaas.config=ScramLoginModule required password=\"hunter2\"");
    assert!(
        message.starts_with("sasl.jaas.config (line 1): expected ';'"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn tls_files_in_librdkafka_spelling() {
    let config = read(
        "security.protocol=SSL\nssl.ca.location=ca.pem\nssl.certificate.location=client.pem\n\
         ssl.key.location=client.key\nssl.key.password=k\n",
    );
    let tls = config.security.tls;
    assert_eq!(tls.ca_location, path("ca.pem"));
    assert_eq!(tls.certificate_location, path("client.pem"));
    assert_eq!(tls.key_location, path("client.key"));
    assert_eq!(tls.key_password.as_deref(), Some("k"));
    assert!(tls.verify_hostname);
    assert!(config.security.sasl.is_none());
}

#[test]
fn tls_files_in_java_spelling_are_pem_stores() {
    let config = read(
        "security.protocol=SSL\nssl.truststore.location=/t/ca.pem\nssl.truststore.type=pem\n\
         ssl.keystore.location=/t/client.pem\nssl.keystore.type=PEM\nssl.key.password=k\n",
    );
    let tls = config.security.tls;
    assert_eq!(tls.ca_location, path("/t/ca.pem"));
    assert_eq!(tls.certificate_location, path("/t/client.pem"));
    assert_eq!(tls.key_location, path("/t/client.pem"));
    assert_eq!(tls.key_password.as_deref(), Some("k"));
}

#[test]
fn java_stores_must_be_pem_without_a_store_password() {
    let message = error("ssl.truststore.location=/t/truststore.jks");
    assert!(
        message.starts_with("ssl.truststore.location (line 1): Strom reads PEM files only: set ssl.truststore.type=PEM (it is JKS by default"),
        "{message}"
    );
    let message = error("ssl.keystore.type=PKCS12\nssl.keystore.location=/k.p12");
    assert!(message.contains("(it is PKCS12;"), "{message}");
    let message =
        error("ssl.keystore.location=/k.pem\nssl.keystore.type=PEM\nssl.keystore.password=x");
    assert!(
        message.starts_with("ssl.keystore.password (line 3): a PEM store has no password"),
        "{message}"
    );
    let message =
        error("ssl.truststore.location=/t.pem\nssl.truststore.type=PEM\nssl.truststore.password=x");
    assert!(
        message.starts_with("ssl.truststore.password (line 3)"),
        "{message}"
    );
}

#[test]
fn conflicting_or_half_given_tls_files_are_refused() {
    let message =
        error("ssl.ca.location=a.pem\nssl.truststore.location=b.pem\nssl.truststore.type=PEM");
    assert!(message.contains("two ways to name one file"), "{message}");
    let message = error("ssl.certificate.location=c.pem");
    assert!(message.contains("go together"), "{message}");
    let message = error("ssl.key.location=k.pem");
    assert!(message.contains("go together"), "{message}");
    let message =
        error("ssl.keystore.location=ks.pem\nssl.keystore.type=PEM\nssl.key.location=k.pem");
    assert!(message.contains("two ways to name one file"), "{message}");
    assert_eq!(
        error("ssl.ca.location="),
        "ssl.ca.location (line 1): must name a file"
    );
}

#[test]
fn endpoint_identification() {
    for (text, verify) in [
        ("https", true),
        ("HTTPS", true),
        ("", false),
        ("none", false),
    ] {
        let config = read(&format!(
            "security.protocol=SSL\nssl.endpoint.identification.algorithm={text}"
        ));
        assert_eq!(config.security.tls.verify_hostname, verify, "{text:?}");
    }
    let message = error("ssl.endpoint.identification.algorithm=http");
    assert!(
        message.starts_with("ssl.endpoint.identification.algorithm (line 1): 'http'"),
        "{message}"
    );
}

#[test]
fn inline_pem_is_refused_with_the_file_key_to_use() {
    let message = error("ssl.ca.pem=-----BEGIN CERTIFICATE-----");
    assert!(message.contains("ssl.ca.location"), "{message}");
    assert!(!message.contains("BEGIN"), "{message}");
    let message = error("ssl.keystore.key=-----BEGIN PRIVATE KEY-----");
    assert!(message.contains("ssl.key.location"), "{message}");
}

#[test]
fn unknown_keys_and_unused_layers_are_noted() {
    let config = read(
        "bootstrap.servers=h:9092\nsasl.username=u\nssl.ca.location=ca.pem\nrequest.timeout.ms=5\n",
    );
    assert_eq!(
        config.notes,
        vec![
            "line 1: 'bootstrap.servers' is not a setting Strom's clients use; ignored",
            "line 4: 'request.timeout.ms' is not a setting Strom's clients use; ignored",
            "line 2: 'sasl.username' is ignored: security.protocol is PLAINTEXT, which does not use SASL",
            "line 3: 'ssl.ca.location' is ignored: security.protocol is PLAINTEXT, which does not use TLS",
        ]
    );
    assert!(config.security.sasl.is_none());
}

#[test]
fn syntax_errors_name_their_line() {
    assert_eq!(error("a=1\n\n=2"), "line 3: '=2' has no key before its '='");
}

#[test]
fn files_are_read_and_bounded() {
    let directory =
        std::env::temp_dir().join(format!("strom-command-config-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let file = directory.join("client.properties");
    std::fs::write(&file, "security.protocol=SSL\n").unwrap();
    let config = SecurityConfig::from_file(&file).unwrap();
    assert_eq!(config.protocol, SecurityProtocol::Ssl);
    let large = directory.join("large.properties");
    let line = "# padding\n".repeat(1 + COMMAND_CONFIG_BYTES_MAX as usize / 10);
    std::fs::write(&large, line).unwrap();
    let message = CommandConfig::read(&large).unwrap_err().to_string();
    assert!(
        message.contains("is larger than 1048576 bytes"),
        "{message}"
    );
    let message = SecurityConfig::from_file(Path::new("/nonexistent/client.properties"))
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("cannot read /nonexistent/client.properties: "),
        "{message}"
    );
    std::fs::remove_dir_all(&directory).unwrap();
}

#[test]
fn from_properties_keeps_the_settings() {
    let config = SecurityConfig::from_properties("security.protocol=ssl").unwrap();
    assert!(config.protocol.uses_tls());
    assert!(SecurityConfig::from_properties("security.protocol=tls").is_err());
}

#[test]
fn every_key_is_listed_once() {
    let mut names: Vec<&str> = CONFIG_KEYS.iter().map(|key| key.name).collect();
    names.sort_unstable();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count);
}
