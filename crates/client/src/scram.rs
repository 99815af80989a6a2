//! SCRAM's SaltedPassword (RFC 5802), what AlterUserScramCredentials carries.
//!
//! A stand-in with the signature of `strom_security::scram::salted_password`, until the
//! `sasl` branch brings that function; then this module goes and the admin call uses it.

use hmac::Hmac;
use sha2::{Sha256, Sha512};
use strom_types::security::ScramMechanism;

/// Iterations of a new credential unless told otherwise (Kafka's minimum, RFC 7677's
/// recommendation).
pub const ITERATIONS_DEFAULT: u32 = 4096;

/// `Hi(password, salt, iterations)`: PBKDF2 with the mechanism's HMAC, one hash long. The
/// password's UTF-8 bytes are used as they are, as Kafka's `ScramFormatter` uses them.
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    match mechanism {
        ScramMechanism::Sha256 => {
            let mut out = vec![0; 32];
            pbkdf2::pbkdf2::<Hmac<Sha256>>(password.as_bytes(), salt, iterations, &mut out)
                .expect("HMAC takes a key of any length");
            out
        }
        ScramMechanism::Sha512 => {
            let mut out = vec![0; 64];
            pbkdf2::pbkdf2::<Hmac<Sha512>>(password.as_bytes(), salt, iterations, &mut out)
                .expect("HMAC takes a key of any length");
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example: user "user", password "pencil", 4096 iterations.
    #[test]
    fn rfc_7677_example() {
        let salt = [
            0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36,
            0xfa, 0x81,
        ];
        let salted = salted_password(ScramMechanism::Sha256, "pencil", &salt, 4096);
        let hex: String = salted.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(
            hex,
            "c4a49510323ab4f952cac1fa99441939e78ea74d6be81ddf7096e87513dc615d"
        );
        assert_eq!(
            salted_password(ScramMechanism::Sha512, "pencil", &salt, 4096).len(),
            64
        );
    }
}
