//! The broker's side of one SCRAM exchange, as Kafka's `ScramSaslServer` runs it.
//!
//! ```text
//! AwaitingClientFirst --client-first--> AwaitingClientFinal --client-final--> Complete
//!          \_______________________any error______________________________--> Failed
//! ```
//!
//! An unknown user is not refused at the first message: the server answers with a salt derived
//! from the user name and a secret of this process, so that the exchange looks the same whether
//! the user exists or not, and fails only on the proof, with the same message as a wrong
//! password.

use std::sync::OnceLock;

use strom_types::security::{ScramCredential, ScramMechanism};

use super::messages::{self, ClientFinal, ServerFinal, ServerFirst};
use super::{constant_time_eq, hash, hash_bytes, hmac, random_nonce, xor, ITERATIONS_DEFAULT};
use super::{ITERATIONS_MIN, SALT_BYTES};
use crate::exchange::{CredentialStore, SaslError, SaslStep};

/// The length of the server's part of the nonce: 32 letters and digits carry 190 bits.
const SERVER_NONCE_CHARS: usize = 32;

pub(crate) struct ScramServer {
    mechanism: ScramMechanism,
    state: State,
    /// The server's nonce, fixed by tests that replay a published exchange; drawn at random
    /// otherwise.
    server_nonce: Option<String>,
}

enum State {
    AwaitingClientFirst,
    AwaitingClientFinal(Box<Pending>),
    Complete,
    Failed,
}

/// What the server remembers between its first and its final message.
struct Pending {
    username: String,
    credential: ScramCredential,
    /// False when `credential` is the stand-in for an unknown user: the proof then never passes.
    user_known: bool,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramServer {
    pub(crate) fn new(mechanism: ScramMechanism) -> ScramServer {
        ScramServer {
            mechanism,
            state: State::AwaitingClientFirst,
            server_nonce: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn with_server_nonce(mechanism: ScramMechanism, nonce: &str) -> ScramServer {
        ScramServer {
            server_nonce: Some(nonce.to_string()),
            ..ScramServer::new(mechanism)
        }
    }

    /// Takes the client's next message. The state is `Failed` until a step succeeds, so any
    /// error ends the exchange.
    pub(crate) fn step(
        &mut self,
        token: &[u8],
        store: &dyn CredentialStore,
    ) -> Result<SaslStep, SaslError> {
        match std::mem::replace(&mut self.state, State::Failed) {
            State::AwaitingClientFirst => {
                let pending = self.receive_client_first(token, store)?;
                let challenge = pending.server_first.clone().into_bytes();
                self.state = State::AwaitingClientFinal(Box::new(pending));
                Ok(SaslStep::Continue(challenge))
            }
            State::AwaitingClientFinal(pending) => {
                let step = self.receive_client_final(token, &pending)?;
                self.state = State::Complete;
                Ok(step)
            }
            State::Complete | State::Failed => Err(SaslError::exchange_over(self.mechanism.into())),
        }
    }

    fn receive_client_first(
        &self,
        token: &[u8],
        store: &dyn CredentialStore,
    ) -> Result<Pending, SaslError> {
        let client_first = messages::parse_client_first(token)?;
        let username = client_first.username;
        if client_first
            .authorization_id
            .is_some_and(|authorization_id| authorization_id != username)
        {
            return Err(SaslError::new(
                "Authentication failed: Client requested an authorization id that is different from username",
            ));
        }
        let (credential, user_known) = match store.scram_credential(&username, self.mechanism) {
            Some(credential) => (credential, true),
            None => (stand_in_credential(self.mechanism, &username), false),
        };
        if credential.iterations < ITERATIONS_MIN {
            tracing::warn!(user = %username, iterations = credential.iterations, "a stored SCRAM credential has fewer iterations than {ITERATIONS_MIN}");
            return Err(SaslError::invalid_credentials(self.mechanism.into()));
        }
        let server_nonce = self
            .server_nonce
            .clone()
            .unwrap_or_else(|| random_nonce(SERVER_NONCE_CHARS));
        let server_first = ServerFirst {
            nonce: format!("{}{server_nonce}", client_first.nonce),
            salt: credential.salt.clone(),
            iterations: credential.iterations,
        };
        Ok(Pending {
            username,
            credential,
            user_known,
            gs2_header: client_first.gs2_header,
            client_first_bare: client_first.bare,
            server_first: server_first.to_text(),
            nonce: server_first.nonce,
        })
    }

    fn receive_client_final(&self, token: &[u8], pending: &Pending) -> Result<SaslStep, SaslError> {
        let client_final = messages::parse_client_final(token)?;
        if client_final.channel_binding != pending.gs2_header.as_bytes() {
            return Err(SaslError::new(
                "Invalid SCRAM client final message: the channel binding does not repeat the gs2 header",
            ));
        }
        // Kafka's rule for years (ScramSaslServer): the nonce must end with the one the server
        // sent. librdkafka up to 2.x (Debian's kcat among them) repeats its own nonce in
        // front of the server's; the proof still covers the message as sent, so a
        // replayed or forged exchange fails the proof check all the same.
        if !client_final.nonce.ends_with(&pending.nonce) {
            return Err(SaslError::new(
                "Invalid SCRAM client final message: the nonce is not the one the server sent",
            ));
        }
        let auth_message = format!(
            "{},{},{}",
            pending.client_first_bare, pending.server_first, client_final.without_proof
        );
        let proof_valid = self.proof_is_valid(&client_final, &pending.credential, &auth_message);
        if !(proof_valid && pending.user_known) {
            tracing::debug!(user = %pending.username, user_known = pending.user_known, "SCRAM proof refused");
            return Err(SaslError::invalid_credentials(self.mechanism.into()));
        }
        let server_signature = hmac(
            self.mechanism,
            &pending.credential.server_key,
            auth_message.as_bytes(),
        );
        Ok(SaslStep::Complete {
            user: pending.username.clone(),
            response: ServerFinal::Verifier(server_signature)
                .to_text()
                .into_bytes(),
            expires_at_ms: None,
        })
    }

    /// RFC 5802 section 3: ClientKey = proof XOR HMAC(StoredKey, AuthMessage), and the proof is
    /// valid when H(ClientKey) is the StoredKey.
    fn proof_is_valid(
        &self,
        client_final: &ClientFinal,
        credential: &ScramCredential,
        auth_message: &str,
    ) -> bool {
        if client_final.proof.len() != hash_bytes(self.mechanism)
            || credential.stored_key.len() != hash_bytes(self.mechanism)
        {
            return false;
        }
        let client_signature = hmac(
            self.mechanism,
            &credential.stored_key,
            auth_message.as_bytes(),
        );
        let client_key = xor(&client_final.proof, &client_signature);
        constant_time_eq(&hash(self.mechanism, &client_key), &credential.stored_key)
    }
}

/// The credential shown for a user that does not exist: its salt is the same at every attempt
/// for the same name (a random one each time would give the absence away), and its keys match
/// no password.
fn stand_in_credential(mechanism: ScramMechanism, username: &str) -> ScramCredential {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    let secret = SECRET.get_or_init(rand::random);
    let mut salt = hmac(
        ScramMechanism::Sha256,
        secret,
        format!("{}\0{username}", mechanism.name()).as_bytes(),
    );
    salt.truncate(SALT_BYTES);
    ScramCredential {
        salt,
        stored_key: vec![0; hash_bytes(mechanism)],
        server_key: vec![0; hash_bytes(mechanism)],
        iterations: ITERATIONS_DEFAULT,
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;
    use crate::exchange::Mechanism;
    use crate::sasl::tests::MemoryStore;
    use crate::scram::{self, ScramClient, BASE64};

    /// RFC 7677 section 3, for user "user" and password "pencil".
    const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const RFC_SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_store() -> MemoryStore {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = scram::salted_password(ScramMechanism::Sha256, "pencil", &salt, 4096);
        let credential =
            scram::credential_from_salted_password(ScramMechanism::Sha256, &salted, &salt, 4096);
        let mut store = MemoryStore::default();
        store.insert("user", ScramMechanism::Sha256, credential);
        store
    }

    fn continued(step: SaslStep) -> Vec<u8> {
        match step {
            SaslStep::Continue(challenge) => challenge,
            SaslStep::Complete { .. } => panic!("expected a challenge, got {step:?}"),
        }
    }

    /// Runs a whole exchange from the client's side; returns the server's verdict.
    fn exchange(
        mechanism: ScramMechanism,
        store: &MemoryStore,
        username: &str,
        password: &str,
    ) -> Result<SaslStep, SaslError> {
        let mut server = ScramServer::new(mechanism);
        let mut client = ScramClient::new(mechanism, username, password);
        let server_first = continued(server.step(&client.first_message(), store)?);
        let client_final = client.final_message(&server_first)?;
        let step = server.step(&client_final, store)?;
        if let SaslStep::Complete { response, .. } = &step {
            client.verify_server_final(response)?;
        }
        Ok(step)
    }

    #[test]
    fn rfc_7677_exchange_as_the_server() {
        let store = rfc_store();
        let mut server = ScramServer::with_server_nonce(ScramMechanism::Sha256, RFC_SERVER_NONCE);
        let server_first = server.step(RFC_CLIENT_FIRST.as_bytes(), &store).unwrap();
        assert_eq!(server_first, SaslStep::Continue(RFC_SERVER_FIRST.into()));
        let server_final = server.step(RFC_CLIENT_FINAL.as_bytes(), &store).unwrap();
        assert_eq!(
            server_final,
            SaslStep::Complete {
                user: "user".to_string(),
                response: RFC_SERVER_FINAL.into(),
                expires_at_ms: None,
            }
        );
    }

    #[test]
    fn rfc_7677_exchange_as_the_client() {
        let mut client = ScramClient::with_nonce(
            ScramMechanism::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(client.first_message(), RFC_CLIENT_FIRST.as_bytes());
        let client_final = client.final_message(RFC_SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(client_final, RFC_CLIENT_FINAL.as_bytes());
        client
            .verify_server_final(RFC_SERVER_FINAL.as_bytes())
            .unwrap();
        let forged = "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert!(client.verify_server_final(forged.as_bytes()).is_err());
    }

    #[test]
    fn client_and_server_agree_for_both_mechanisms() {
        for mechanism in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let store = MemoryStore::default().with_user("al,i=ce", "pa$$ word", mechanism);
            let step = exchange(mechanism, &store, "al,i=ce", "pa$$ word").unwrap();
            assert!(matches!(step, SaslStep::Complete { ref user, .. } if user == "al,i=ce"));
        }
    }

    #[test]
    fn a_wrong_password_fails_with_kafkas_message() {
        for mechanism in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let store = MemoryStore::default().with_user("alice", "right", mechanism);
            let error = exchange(mechanism, &store, "alice", "wrong").unwrap_err();
            assert_eq!(error, SaslError::invalid_credentials(mechanism.into()));
        }
    }

    #[test]
    fn a_credential_of_the_other_mechanism_does_not_count() {
        let store = MemoryStore::default().with_user("alice", "right", ScramMechanism::Sha512);
        let error = exchange(ScramMechanism::Sha256, &store, "alice", "right").unwrap_err();
        assert_eq!(
            error,
            SaslError::invalid_credentials(Mechanism::ScramSha256)
        );
    }

    #[test]
    fn an_unknown_user_looks_like_a_known_one_until_the_proof() {
        let store = MemoryStore::default().with_user("alice", "right", ScramMechanism::Sha256);
        let first = |user: &str| {
            let mut server = ScramServer::new(ScramMechanism::Sha256);
            let token = format!("n,,n={user},r=abc");
            let challenge = continued(server.step(token.as_bytes(), &store).unwrap());
            messages::parse_server_first(&challenge).unwrap()
        };
        let ghost = first("ghost");
        assert_eq!(ghost.salt.len(), SALT_BYTES);
        assert_eq!(ghost.iterations, ITERATIONS_DEFAULT);
        assert_eq!(
            first("ghost").salt,
            ghost.salt,
            "the same salt at every attempt"
        );
        assert_ne!(first("other-ghost").salt, ghost.salt);
        let error = exchange(ScramMechanism::Sha256, &store, "ghost", "right").unwrap_err();
        assert_eq!(
            error,
            SaslError::invalid_credentials(Mechanism::ScramSha256)
        );
    }

    #[test]
    fn steps_out_of_order_fail() {
        let store = rfc_store();
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        // A client-final first is not a client-first.
        assert!(server.step(RFC_CLIENT_FINAL.as_bytes(), &store).is_err());
        assert!(server.step(RFC_CLIENT_FIRST.as_bytes(), &store).is_err());

        // A client-first twice.
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        server.step(RFC_CLIENT_FIRST.as_bytes(), &store).unwrap();
        assert!(server.step(RFC_CLIENT_FIRST.as_bytes(), &store).is_err());

        // Anything after completion.
        let mut server = ScramServer::with_server_nonce(ScramMechanism::Sha256, RFC_SERVER_NONCE);
        server.step(RFC_CLIENT_FIRST.as_bytes(), &store).unwrap();
        server.step(RFC_CLIENT_FINAL.as_bytes(), &store).unwrap();
        let error = server
            .step(RFC_CLIENT_FINAL.as_bytes(), &store)
            .unwrap_err();
        assert!(error.message.contains("already over"), "{error}");
    }

    #[test]
    fn the_final_message_must_repeat_the_nonce_and_the_gs2_header() {
        let store = rfc_store();
        let replace = |from: &str, to: &str| {
            let mut server =
                ScramServer::with_server_nonce(ScramMechanism::Sha256, RFC_SERVER_NONCE);
            server.step(RFC_CLIENT_FIRST.as_bytes(), &store).unwrap();
            let token = RFC_CLIENT_FINAL.replacen(from, to, 1);
            server.step(token.as_bytes(), &store).unwrap_err().message
        };
        // "eSws" is base64 of "y,,": not the header the client sent.
        assert!(replace("c=biws", "c=eSws").contains("channel binding"));
        assert!(replace("hNlF$k0,", "hNlF$k1,").contains("nonce"));
        // Something in front of the nonce passes its check (Kafka's, for librdkafka) but not
        // the proof, which covers the message as sent.
        assert!(replace("r=rOprNGfw", "r=XXrOprNGfw").contains("invalid credentials"));
        assert!(replace(",p=dHzb", ",p=AHzb").contains("invalid credentials"));
        assert!(replace(",p=dHzbZapW", ",p=").contains("invalid credentials"));
    }

    #[test]
    fn an_authorization_id_must_be_the_user() {
        let store = rfc_store();
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let error = server.step(b"n,a=admin,n=user,r=abc", &store).unwrap_err();
        assert!(error.message.contains("authorization id"), "{error}");

        let mut server = ScramServer::new(ScramMechanism::Sha256);
        assert!(server.step(b"n,a=user,n=user,r=abc", &store).is_ok());
    }

    #[test]
    fn too_few_stored_iterations_fail() {
        let mut store = MemoryStore::default();
        let credential = scram::new_credential(ScramMechanism::Sha256, "pw", 1);
        store.insert("weak", ScramMechanism::Sha256, credential);
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        assert!(server.step(b"n,,n=weak,r=abc", &store).is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Arbitrary client-final messages after a valid client-first never panic, and
            /// never authenticate.
            #[test]
            fn arbitrary_client_finals_never_pass(
                token in proptest::collection::vec(any::<u8>(), 0..200),
                text in "c=(biws|eSws)?,r=rOprNGfwEbeRWgbNEkqO[%a-z]{0,8},p=[A-Za-z0-9+/=]{0,48}",
            ) {
                let store = rfc_store();
                for final_message in [token.as_slice(), text.as_bytes()] {
                    let mut server = ScramServer::new(ScramMechanism::Sha256);
                    server.step(RFC_CLIENT_FIRST.as_bytes(), &store).unwrap();
                    prop_assert!(server.step(final_message, &store).is_err());
                }
            }

            /// Client-first messages near the grammar never panic.
            #[test]
            fn arbitrary_client_firsts_never_panic(
                text in "[nyp]?(=[a-z]*)?,(a=[a-z=23CD,]*)?,(m=x,)?n=[a-z=23CD,]{0,6},r=[ -~]{0,6}(,[a-z]+=[a-z]*)?",
            ) {
                let store = rfc_store();
                let mut server = ScramServer::new(ScramMechanism::Sha256);
                let _ = server.step(text.as_bytes(), &store);
            }
        }
    }
}
