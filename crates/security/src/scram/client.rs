//! The client's side of one SCRAM exchange, for Strom's own client and CLI.
//!
//! ```text
//! first_message() -> client-first
//! final_message(server-first) -> client-final
//! verify_server_final(server-final) -> Ok when the server proved it knows the credential
//! ```

use base64::Engine;
use strom_types::security::ScramMechanism;

use super::messages::{self, ServerFinal};
use super::{constant_time_eq, hmac, random_nonce, salted_password, xor, Keys, BASE64};
use super::{ITERATIONS_MAX, ITERATIONS_MIN};
use crate::exchange::{encode_saslname, Mechanism, SaslError};

/// The length of the client's nonce: 32 letters and digits carry 190 bits.
const CLIENT_NONCE_CHARS: usize = 32;

/// The gs2 header of a client that asks for no authorization id and no channel binding.
const GS2_HEADER: &str = "n,,";

/// One SCRAM exchange from the client's side.
pub struct ScramClient {
    mechanism: ScramMechanism,
    username: String,
    password: String,
    nonce: String,
    state: State,
}

enum State {
    Initial,
    FirstSent { client_first_bare: String },
    FinalSent { server_signature: Vec<u8> },
    Failed,
}

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, username: &str, password: &str) -> ScramClient {
        ScramClient {
            mechanism,
            username: username.to_string(),
            password: password.to_string(),
            nonce: random_nonce(CLIENT_NONCE_CHARS),
            state: State::Initial,
        }
    }

    #[cfg(test)]
    pub(crate) fn with_nonce(
        mechanism: ScramMechanism,
        username: &str,
        password: &str,
        nonce: &str,
    ) -> ScramClient {
        ScramClient {
            nonce: nonce.to_string(),
            ..ScramClient::new(mechanism, username, password)
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// The client-first message, `n,,n=<user>,r=<nonce>`. Calling it again starts over.
    pub fn first_message(&mut self) -> Vec<u8> {
        let client_first_bare = format!("n={},r={}", encode_saslname(&self.username), self.nonce);
        let message = format!("{GS2_HEADER}{client_first_bare}").into_bytes();
        self.state = State::FirstSent { client_first_bare };
        message
    }

    /// The client-final message with the proof, for the server's first message. The server
    /// must extend our nonce and ask for between [`ITERATIONS_MIN`] and [`ITERATIONS_MAX`]
    /// iterations.
    pub fn final_message(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        let State::FirstSent { client_first_bare } =
            std::mem::replace(&mut self.state, State::Failed)
        else {
            return Err(SaslError::new(
                "SCRAM client: final_message comes once, after first_message",
            ));
        };
        let parsed = messages::parse_server_first(server_first)?;
        self.check_server_first(&parsed.nonce, parsed.iterations)?;
        let salted = salted_password(
            self.mechanism,
            &self.password,
            &parsed.salt,
            parsed.iterations,
        );
        let keys = Keys::derive(self.mechanism, &salted);
        let without_proof = messages::client_final_without_proof(GS2_HEADER, &parsed.nonce);
        // server_first came through parse_server_first, so it is UTF-8.
        let server_first = String::from_utf8_lossy(server_first);
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = hmac(self.mechanism, &keys.stored_key, auth_message.as_bytes());
        let proof = xor(&keys.client_key, &client_signature);
        let server_signature = hmac(self.mechanism, &keys.server_key, auth_message.as_bytes());
        self.state = State::FinalSent { server_signature };
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    fn check_server_first(&self, nonce: &str, iterations: u32) -> Result<(), SaslError> {
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) {
            return Err(SaslError::new(
                "SCRAM client: the server's nonce does not extend the client's",
            ));
        }
        if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
            return Err(SaslError::new(format!(
                "SCRAM client: the server asks for {iterations} iterations, outside {ITERATIONS_MIN}..={ITERATIONS_MAX}"
            )));
        }
        Ok(())
    }

    /// Checks the server's signature: a server that only pretends to know the credential fails.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), SaslError> {
        let State::FinalSent { server_signature } = &self.state else {
            return Err(SaslError::new(
                "SCRAM client: verify_server_final comes after final_message",
            ));
        };
        match messages::parse_server_final(server_final)? {
            ServerFinal::Error(error) => Err(SaslError::new(format!(
                "{} authentication failed: the server says {error}",
                Mechanism::from(self.mechanism)
            ))),
            ServerFinal::Verifier(signature) if constant_time_eq(&signature, server_signature) => {
                Ok(())
            }
            ServerFinal::Verifier(_) => Err(SaslError::new(
                "SCRAM client: the server's signature is wrong: it does not hold this user's credential",
            )),
        }
    }
}

impl std::fmt::Debug for ScramClient {
    /// Shows who, never the password.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_after_first() -> ScramClient {
        let mut client = ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", "abc");
        client.first_message();
        client
    }

    #[test]
    fn the_first_message_escapes_the_user_name() {
        let mut client = ScramClient::with_nonce(ScramMechanism::Sha512, "a,b=c", "pw", "xyz");
        assert_eq!(client.first_message(), b"n,,n=a=2Cb=3Dc,r=xyz");
        assert_eq!(client.mechanism(), ScramMechanism::Sha512);
        assert!(!format!("{client:?}").contains("pw"));
    }

    #[test]
    fn a_server_first_that_does_not_extend_the_nonce_is_refused() {
        for nonce in ["abc", "ab", "xyzabc"] {
            let mut client = client_after_first();
            let server_first = format!("r={nonce},s=AQID,i=4096");
            let error = client.final_message(server_first.as_bytes()).unwrap_err();
            assert!(error.message.contains("nonce"), "{error}");
        }
    }

    #[test]
    fn iterations_outside_the_bounds_are_refused() {
        for iterations in [0, ITERATIONS_MIN - 1, ITERATIONS_MAX + 1, u32::MAX] {
            let mut client = client_after_first();
            let server_first = format!("r=abcdef,s=AQID,i={iterations}");
            let error = client.final_message(server_first.as_bytes()).unwrap_err();
            assert!(error.message.contains("iterations"), "{error}");
        }
    }

    #[test]
    fn calls_out_of_order_fail() {
        let mut client = ScramClient::new(ScramMechanism::Sha256, "user", "pencil");
        assert!(client.final_message(b"r=x,s=AQID,i=4096").is_err());
        assert!(client.verify_server_final(b"v=AQID").is_err());
        let mut client = client_after_first();
        client.final_message(b"r=abcdef,s=AQID,i=4096").unwrap();
        assert!(client.final_message(b"r=abcdef,s=AQID,i=4096").is_err());
    }

    #[test]
    fn a_server_error_is_reported() {
        let mut client = client_after_first();
        client.final_message(b"r=abcdef,s=AQID,i=4096").unwrap();
        let error = client.verify_server_final(b"e=invalid-proof").unwrap_err();
        assert!(error.message.contains("invalid-proof"), "{error}");
        assert!(client.verify_server_final(b"v=AQID").is_err());
        assert!(client.verify_server_final(b"garbage").is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Whatever a server sends, the client does not panic.
            #[test]
            fn arbitrary_server_messages_never_panic(
                first in proptest::collection::vec(any::<u8>(), 0..200),
                text in "r=abc[a-z]{0,4},s=[A-Za-z0-9+/=]{0,8},i=[0-9]{0,6}",
                last in proptest::collection::vec(any::<u8>(), 0..200),
            ) {
                for server_first in [first.as_slice(), text.as_bytes()] {
                    let mut client = client_after_first();
                    if client.final_message(server_first).is_ok() {
                        prop_assert!(client.verify_server_final(&last).is_err());
                    }
                }
            }
        }
    }
}
