//! Strom's security without sockets: what the broker, the client and the CLI share.
//!
//! - [`sasl`]: the server side of SaslHandshake/SaslAuthenticate as exchanges over bytes, one
//!   per mechanism: [`plain`], [`scram`] (and its client side, and making credentials),
//!   [`oauthbearer`] (JWT validation against a JWKS).
//! - [`principal`]: a TLS peer's principal: the certificate's subject DN as Kafka prints it,
//!   through `ssl.principal.mapping.rules`.
//! - [`tls`]: rustls server and client configurations from Kafka's PEM keystores and
//!   truststores (KIP-651), and the peer certificate a principal is made from;
//!   [`tls_reconfigure`]: Kafka's checks of a keystore or truststore changed at runtime.
//! - [`authorizer`]: Kafka's StandardAuthorizer over a set of ACL bindings, and ACL filters.

pub mod authorizer;
pub mod exchange;
pub mod oauthbearer;
pub mod plain;
pub mod principal;
pub mod sasl;
pub mod scram;
pub mod tls;
pub mod tls_reconfigure;
