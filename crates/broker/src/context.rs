//! Who sent a request, as the connection established it: what the handlers and the
//! authorizer see. Made by `network::authentication` for each connection (and updated when it
//! authenticates); read by `authorization` and `security` for every request.

use std::net::SocketAddr;
use std::sync::Arc;

/// Who sent a request: what the handlers and the authorizer see.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `User:alice`, `User:CN=bob`, `User:ANONYMOUS`.
    pub principal: Arc<str>,
    pub peer: SocketAddr,
    /// The listener's name, for Metadata's endpoints.
    pub listener: Arc<str>,
}
