//! The four SCRAM messages of RFC 5802 section 7, parsed and printed.
//!
//! ```text
//! client-first  n,[a=<authzid>],n=<user>,r=<client nonce>[,<extension>=<value>]*
//! server-first  r=<client nonce><server nonce>,s=<base64 salt>,i=<iterations>
//! client-final  c=<base64 gs2 header>,r=<nonce>,p=<base64 proof>
//! server-final  v=<base64 server signature>  or  e=<error>
//! ```
//!
//! Parsing is strict where a mistake would weaken the exchange (channel binding, nonces,
//! mandatory extensions) and lenient where Kafka is (unknown extensions are ignored). Every
//! parser refuses with a [`SaslError`] whose message says what was wrong with the message, never
//! anything about credentials.

use base64::Engine;

use super::BASE64;
use crate::exchange::{decode_saslname, SaslError};

/// The client's first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientFirst {
    /// `n,,` or `n,a=<authzid>,` exactly as sent: the client-final `c=` must repeat it.
    pub gs2_header: String,
    /// The authorization id, when the client asked for one.
    pub authorization_id: Option<String>,
    pub username: String,
    pub nonce: String,
    /// The message without its gs2 header, which goes into the AuthMessage.
    pub bare: String,
}

/// The server's first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerFirst {
    /// The client's nonce followed by the server's.
    pub nonce: String,
    pub salt: Vec<u8>,
    pub iterations: u32,
}

/// The client's final message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientFinal {
    /// The decoded `c=`: the gs2 header (and no channel-binding data, since none is offered).
    pub channel_binding: Vec<u8>,
    pub nonce: String,
    pub proof: Vec<u8>,
    /// The message up to `,p=`, which goes into the AuthMessage.
    pub without_proof: String,
}

/// The server's final message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServerFinal {
    Verifier(Vec<u8>),
    Error(String),
}

fn malformed(message: &str, reason: &str) -> SaslError {
    SaslError::new(format!("Invalid SCRAM {message} message: {reason}"))
}

/// The text of a message: SCRAM is UTF-8.
pub(crate) fn text<'token>(token: &'token [u8], message: &str) -> Result<&'token str, SaslError> {
    std::str::from_utf8(token).map_err(|_| malformed(message, "not UTF-8"))
}

/// Splits `key=value` and checks the key.
fn attribute<'text>(
    part: Option<&'text str>,
    key: char,
    message: &str,
) -> Result<&'text str, SaslError> {
    let part = part.ok_or_else(|| malformed(message, &format!("no {key}= attribute")))?;
    let mut characters = part.chars();
    if characters.next() != Some(key) || characters.next() != Some('=') {
        return Err(malformed(message, &format!("expected {key}= attribute")));
    }
    Ok(&part[2..])
}

pub(crate) fn parse_client_first(token: &[u8]) -> Result<ClientFirst, SaslError> {
    const MESSAGE: &str = "client first";
    let text = text(token, MESSAGE)?;
    let mut parts = text.splitn(3, ',');
    let flag = parts.next().unwrap_or_default();
    let authorization = parts
        .next()
        .ok_or_else(|| malformed(MESSAGE, "no gs2 header"))?;
    let bare = parts
        .next()
        .ok_or_else(|| malformed(MESSAGE, "no gs2 header"))?;
    check_channel_binding_flag(flag)?;
    let authorization_id = match authorization {
        "" => None,
        _ => Some(user_name(attribute(Some(authorization), 'a', MESSAGE)?)?),
    };
    let (username, nonce) = parse_client_first_bare(bare)?;
    let gs2_header = text[..text.len() - bare.len()].to_string();
    Ok(ClientFirst {
        gs2_header,
        authorization_id,
        username,
        nonce,
        bare: bare.to_string(),
    })
}

/// Strom offers no channel binding: `n` is the only flag accepted, as in Kafka.
fn check_channel_binding_flag(flag: &str) -> Result<(), SaslError> {
    match flag {
        "n" => Ok(()),
        "y" => Err(SaslError::new(
            "Authentication failed: SCRAM channel binding is not supported (gs2 flag y)",
        )),
        _ if flag.starts_with("p=") => Err(SaslError::new(
            "Authentication failed: SCRAM channel binding is not supported (gs2 flag p)",
        )),
        _ => Err(malformed("client first", "invalid gs2 header")),
    }
}

/// `n=<user>,r=<nonce>[,extensions]`: returns the user and the nonce.
fn parse_client_first_bare(bare: &str) -> Result<(String, String), SaslError> {
    const MESSAGE: &str = "client first";
    let mut parts = bare.split(',');
    let mut first = parts.next();
    if first.is_some_and(|part| part.starts_with("m=")) {
        return Err(SaslError::new(
            "Authentication failed: SCRAM mandatory extensions (m=) are not supported",
        ));
    }
    let username = user_name(attribute(first.take(), 'n', MESSAGE)?)?;
    let nonce = attribute(parts.next(), 'r', MESSAGE)?;
    check_nonce(nonce, MESSAGE)?;
    for extension in parts {
        check_extension(extension)?;
    }
    Ok((username, nonce.to_string()))
}

fn user_name(encoded: &str) -> Result<String, SaslError> {
    decode_saslname(encoded).ok_or_else(|| malformed("client first", "invalid user name encoding"))
}

/// Kafka ignores the extensions it does not know; `tokenauth` asks for delegation-token
/// authentication, which Strom does not have, so it is refused rather than ignored.
fn check_extension(extension: &str) -> Result<(), SaslError> {
    let (key, value) = extension
        .split_once('=')
        .ok_or_else(|| malformed("client first", "an extension without ="))?;
    if key.is_empty() || !key.bytes().all(|byte| byte.is_ascii_alphabetic()) {
        return Err(malformed(
            "client first",
            "an extension name is not alphabetic",
        ));
    }
    if key == "tokenauth" && value.eq_ignore_ascii_case("true") {
        return Err(SaslError::new(
            "Authentication failed: delegation tokens (SCRAM extension tokenauth) are not supported",
        ));
    }
    Ok(())
}

/// A nonce is printable ASCII without commas.
fn check_nonce(nonce: &str, message: &str) -> Result<(), SaslError> {
    let printable = nonce
        .bytes()
        .all(|byte| (0x21..=0x7e).contains(&byte) && byte != b',');
    if nonce.is_empty() || !printable {
        return Err(malformed(message, "the nonce is not printable ASCII"));
    }
    Ok(())
}

impl ServerFirst {
    pub(crate) fn to_text(&self) -> String {
        format!(
            "r={},s={},i={}",
            self.nonce,
            BASE64.encode(&self.salt),
            self.iterations
        )
    }
}

pub(crate) fn parse_server_first(token: &[u8]) -> Result<ServerFirst, SaslError> {
    const MESSAGE: &str = "server first";
    let mut parts = text(token, MESSAGE)?.split(',');
    let mut first = parts.next();
    if first.is_some_and(|part| part.starts_with("m=")) {
        return Err(malformed(MESSAGE, "mandatory extensions are not supported"));
    }
    let nonce = attribute(first.take(), 'r', MESSAGE)?;
    check_nonce(nonce, MESSAGE)?;
    let salt = BASE64
        .decode(attribute(parts.next(), 's', MESSAGE)?)
        .map_err(|_| malformed(MESSAGE, "the salt is not base64"))?;
    let iterations = attribute(parts.next(), 'i', MESSAGE)?
        .parse::<u32>()
        .map_err(|_| malformed(MESSAGE, "the iteration count is not a number"))?;
    if salt.is_empty() {
        return Err(malformed(MESSAGE, "the salt is empty"));
    }
    Ok(ServerFirst {
        nonce: nonce.to_string(),
        salt,
        iterations,
    })
}

pub(crate) fn parse_client_final(token: &[u8]) -> Result<ClientFinal, SaslError> {
    const MESSAGE: &str = "client final";
    let text = text(token, MESSAGE)?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or_else(|| malformed(MESSAGE, "no p= attribute"))?;
    let proof = BASE64
        .decode(proof)
        .map_err(|_| malformed(MESSAGE, "the proof is not base64"))?;
    let mut parts = without_proof.split(',');
    let channel_binding = BASE64
        .decode(attribute(parts.next(), 'c', MESSAGE)?)
        .map_err(|_| malformed(MESSAGE, "the channel binding is not base64"))?;
    let nonce = attribute(parts.next(), 'r', MESSAGE)?;
    check_nonce(nonce, MESSAGE)?;
    Ok(ClientFinal {
        channel_binding,
        nonce: nonce.to_string(),
        proof,
        without_proof: without_proof.to_string(),
    })
}

/// The client-final message without its proof, as the client builds it.
pub(crate) fn client_final_without_proof(gs2_header: &str, nonce: &str) -> String {
    format!("c={},r={nonce}", BASE64.encode(gs2_header))
}

impl ServerFinal {
    pub(crate) fn to_text(&self) -> String {
        match self {
            ServerFinal::Verifier(signature) => format!("v={}", BASE64.encode(signature)),
            ServerFinal::Error(error) => format!("e={error}"),
        }
    }
}

pub(crate) fn parse_server_final(token: &[u8]) -> Result<ServerFinal, SaslError> {
    const MESSAGE: &str = "server final";
    let text = text(token, MESSAGE)?;
    let first = text.split(',').next().unwrap_or_default();
    if let Some(error) = first.strip_prefix("e=") {
        return Ok(ServerFinal::Error(error.to_string()));
    }
    let signature = BASE64
        .decode(attribute(Some(first), 'v', MESSAGE)?)
        .map_err(|_| malformed(MESSAGE, "the signature is not base64"))?;
    Ok(ServerFinal::Verifier(signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_first_with_and_without_authorization_id() {
        let first = parse_client_first(b"n,,n=user,r=abc").unwrap();
        assert_eq!(first.gs2_header, "n,,");
        assert_eq!(first.authorization_id, None);
        assert_eq!(first.username, "user");
        assert_eq!(first.nonce, "abc");
        assert_eq!(first.bare, "n=user,r=abc");

        let first = parse_client_first(b"n,a=us=3Der,n=us=3Der,r=abc,ext=1").unwrap();
        assert_eq!(first.gs2_header, "n,a=us=3Der,");
        assert_eq!(first.authorization_id.as_deref(), Some("us=er"));
        assert_eq!(first.username, "us=er");
        assert_eq!(first.bare, "n=us=3Der,r=abc,ext=1");
    }

    #[test]
    fn client_first_refusals() {
        let refused = |token: &[u8]| parse_client_first(token).unwrap_err().message;
        assert!(refused(b"y,,n=user,r=abc").contains("channel binding"));
        assert!(refused(b"p=tls-unique,,n=user,r=abc").contains("channel binding"));
        assert!(refused(b"n,,m=x,n=user,r=abc").contains("mandatory"));
        assert!(refused(b"n,,n=user,r=abc,tokenauth=true").contains("delegation"));
        assert!(refused(b"n,,n=user,r=a,b").contains("extension"));
        assert!(refused(b"n,,n=,r=abc").contains("user name"));
        assert!(refused(b"n,,n=user,r=").contains("nonce"));
        assert!(refused(b"n,,n=user,r=a\x7fb").contains("nonce"));
        assert!(refused(b"n,,r=abc,n=user").contains("n="));
        assert!(refused(b"n,,n=user").contains("r="));
        assert!(refused(b"n,x,n=user,r=abc").contains("a="));
        assert!(refused(b"n,,").contains("n="));
        assert!(refused(b"n").contains("gs2"));
        assert!(refused(b"").contains("gs2"));
        assert!(refused(b"\xff,,n=user,r=abc").contains("UTF-8"));
    }

    #[test]
    fn server_first_round_trips() {
        let message = ServerFirst {
            nonce: "abcdef".to_string(),
            salt: vec![1, 2, 3],
            iterations: 4096,
        };
        let text = message.to_text();
        assert_eq!(text, "r=abcdef,s=AQID,i=4096");
        assert_eq!(parse_server_first(text.as_bytes()).unwrap(), message);
        assert!(parse_server_first(b"r=abc,s=,i=4096").is_err());
        assert!(parse_server_first(b"r=abc,s=AQID,i=-1").is_err());
        assert!(parse_server_first(b"r=abc,s=AQID").is_err());
        assert!(parse_server_first(b"m=x,r=abc,s=AQID,i=1").is_err());
    }

    #[test]
    fn client_final_parses() {
        let final_message = parse_client_final(b"c=biws,r=abc,p=AQID").unwrap();
        assert_eq!(final_message.channel_binding, b"n,,");
        assert_eq!(final_message.nonce, "abc");
        assert_eq!(final_message.proof, vec![1, 2, 3]);
        assert_eq!(final_message.without_proof, "c=biws,r=abc");
        assert_eq!(client_final_without_proof("n,,", "abc"), "c=biws,r=abc");
        assert!(parse_client_final(b"c=biws,r=abc").is_err());
        assert!(parse_client_final(b"c=biws,r=abc,p=!!").is_err());
        assert!(parse_client_final(b"r=abc,c=biws,p=AQID").is_err());
        assert!(parse_client_final(b"c=b!ws,r=abc,p=AQID").is_err());
    }

    #[test]
    fn server_final_parses() {
        let verifier = ServerFinal::Verifier(vec![9, 9]);
        assert_eq!(
            parse_server_final(verifier.to_text().as_bytes()).unwrap(),
            verifier
        );
        assert_eq!(
            parse_server_final(b"e=invalid-proof").unwrap(),
            ServerFinal::Error("invalid-proof".to_string())
        );
        assert!(parse_server_final(b"x=1").is_err());
        assert!(parse_server_final(b"").is_err());
    }
}
