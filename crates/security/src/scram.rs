//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks them.
//!
//! - This module: the key derivation every side shares (PBKDF2, then HMAC "Client Key" and
//!   "Server Key"), making a [`ScramCredential`] from a password or from the salted password
//!   that AlterUserScramCredentials carries, and checking a password against one (PLAIN does).
//! - `messages`: the four messages' grammar, parsed and printed.
//! - `server`: the broker's side, driven by the `sasl` module's `SaslServer`.
//! - `client`: [`ScramClient`], the side of Strom's own client and CLI.

mod client;
mod messages;
mod server;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use strom_types::security::{ScramCredential, ScramMechanism};
use subtle::ConstantTimeEq;

pub use client::ScramClient;
pub(crate) use server::ScramServer;

/// The iterations a new credential gets when none are asked for.
pub const ITERATIONS_DEFAULT: u32 = 4096;
/// Kafka's floor for AlterUserScramCredentials, and the fewest a SCRAM exchange accepts.
pub const ITERATIONS_MIN: u32 = 4096;
/// Kafka's ceiling for AlterUserScramCredentials; the client refuses a server asking for more,
/// so that a hostile server cannot make it spin.
pub const ITERATIONS_MAX: u32 = 16384;
/// The salt [`new_credential`] draws.
pub const SALT_BYTES: usize = 32;

/// Base64 as Java's decoder reads it: padding may be present or not.
pub(crate) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The length of the mechanism's hash, which is also the length of every key and proof.
pub fn hash_bytes(mechanism: ScramMechanism) -> usize {
    match mechanism {
        ScramMechanism::Sha256 => 32,
        ScramMechanism::Sha512 => 64,
    }
}

/// Hi(password, salt, iterations) of RFC 5802: PBKDF2 with the mechanism's HMAC.
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    let mut output = vec![0; hash_bytes(mechanism)];
    let password = password.as_bytes();
    match mechanism {
        ScramMechanism::Sha256 => {
            pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut output)
        }
        ScramMechanism::Sha512 => {
            pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut output)
        }
    }
    output
}

/// The stored credential for a salted password: what AlterUserScramCredentials turns into.
pub fn credential_from_salted_password(
    mechanism: ScramMechanism,
    salted_password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> ScramCredential {
    let keys = Keys::derive(mechanism, salted_password);
    ScramCredential {
        salt: salt.to_vec(),
        stored_key: keys.stored_key,
        server_key: keys.server_key,
        iterations,
    }
}

/// A credential for a password, with a fresh random salt of [`SALT_BYTES`].
pub fn new_credential(
    mechanism: ScramMechanism,
    password: &str,
    iterations: u32,
) -> ScramCredential {
    let salt: [u8; SALT_BYTES] = rand::random();
    let salted = salted_password(mechanism, password, &salt, iterations);
    credential_from_salted_password(mechanism, &salted, &salt, iterations)
}

/// Whether `password` is the one `credential` was made from; compares in constant time.
/// Costs one PBKDF2 of the credential's iterations.
pub fn verify_password(
    mechanism: ScramMechanism,
    password: &str,
    credential: &ScramCredential,
) -> bool {
    let salted = salted_password(mechanism, password, &credential.salt, credential.iterations);
    let keys = Keys::derive(mechanism, &salted);
    constant_time_eq(&keys.stored_key, &credential.stored_key)
}

/// The keys of RFC 5802 section 3 that follow from a salted password.
struct Keys {
    client_key: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl Keys {
    fn derive(mechanism: ScramMechanism, salted_password: &[u8]) -> Keys {
        let client_key = hmac(mechanism, salted_password, b"Client Key");
        let stored_key = hash(mechanism, &client_key);
        let server_key = hmac(mechanism, salted_password, b"Server Key");
        Keys {
            client_key,
            stored_key,
            server_key,
        }
    }
}

pub(crate) fn hmac(mechanism: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length, so new_from_slice cannot fail.
    match mechanism {
        ScramMechanism::Sha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        ScramMechanism::Sha512 => {
            let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

pub(crate) fn hash(mechanism: ScramMechanism, data: &[u8]) -> Vec<u8> {
    match mechanism {
        ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
        ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
    }
}

/// Byte-wise exclusive or of two strings of the same length.
pub(crate) fn xor(left: &[u8], right: &[u8]) -> Vec<u8> {
    assert_eq!(left.len(), right.len(), "xor of keys of different lengths");
    left.iter().zip(right).map(|(a, b)| a ^ b).collect()
}

/// Equality whose time does not depend on where the inputs first differ.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.ct_eq(right).into()
}

/// A printable nonce of `chars` random letters and digits (never a comma, as RFC 5802 asks).
pub(crate) fn random_nonce(chars: usize) -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), chars)
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    #[test]
    fn rfc_7677_keys() {
        // RFC 7677 section 3: user "user", password "pencil".
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = salted_password(ScramMechanism::Sha256, "pencil", &salt, 4096);
        let credential =
            credential_from_salted_password(ScramMechanism::Sha256, &salted, &salt, 4096);
        assert_eq!(credential.salt, salt);
        assert_eq!(credential.iterations, 4096);
        assert_eq!(credential.stored_key.len(), 32);
        assert!(verify_password(
            ScramMechanism::Sha256,
            "pencil",
            &credential
        ));
        assert!(!verify_password(
            ScramMechanism::Sha256,
            "pencils",
            &credential
        ));
    }

    #[test]
    fn new_credentials_have_fresh_salts() {
        for mechanism in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let first = new_credential(mechanism, "pw", ITERATIONS_MIN);
            let second = new_credential(mechanism, "pw", ITERATIONS_MIN);
            assert_eq!(first.salt.len(), SALT_BYTES);
            assert_ne!(first.salt, second.salt);
            assert_ne!(first.stored_key, second.stored_key);
            assert_eq!(first.stored_key.len(), hash_bytes(mechanism));
            assert_eq!(first.server_key.len(), hash_bytes(mechanism));
            assert!(verify_password(mechanism, "pw", &first));
        }
    }

    #[test]
    fn zero_iterations_do_not_panic() {
        let salted = salted_password(ScramMechanism::Sha512, "pw", b"", 0);
        assert_eq!(salted.len(), 64);
    }

    #[test]
    fn nonces_are_printable_without_commas() {
        let nonce = random_nonce(32);
        assert_eq!(nonce.len(), 32);
        assert!(nonce.bytes().all(|byte| byte.is_ascii_alphanumeric()));
    }
}
