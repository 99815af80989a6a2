//! A small client of the registry's REST API, on hyper (the HTTP stack the server uses): for
//! `strom schema` and anything else in Strom that talks to a registry over HTTP.

use axum::http::{header, Method, Request, StatusCode};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Largest answer read, in bytes (a `GET /schemas` of a big registry fits).
const ANSWER_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Where a registry is and how to log in to it.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    host: String,
    port: u16,
    /// HTTP Basic credentials, `user:password`.
    basic: Option<String>,
}

/// A registry's error answer, or a failure to get one.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{status}: error {code}: {message}")]
    Registry {
        status: StatusCode,
        code: i64,
        message: String,
    },
    #[error("{0}")]
    Transport(String),
}

impl RegistryClient {
    /// `url` is `http://HOST:PORT` (HTTPS is not spoken by this client yet).
    pub fn new(url: &str, basic: Option<(String, String)>) -> Result<RegistryClient, ClientError> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            ClientError::Transport(format!("{url}: only http:// URLs are supported"))
        })?;
        let authority = rest.trim_end_matches('/');
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (
                host.trim_matches(|c| c == '[' || c == ']').to_owned(),
                port.parse()
                    .map_err(|_| ClientError::Transport(format!("{url}: bad port")))?,
            ),
            None => (authority.to_owned(), super::REGISTRY_PORT_DEFAULT),
        };
        Ok(RegistryClient {
            host,
            port,
            basic: basic.map(|(user, password)| format!("{user}:{password}")),
        })
    }

    /// Sends one request and returns the JSON answer; an error answer is
    /// [`ClientError::Registry`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let transport = |error: &dyn std::fmt::Display| ClientError::Transport(error.to_string());
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                ClientError::Transport(format!(
                    "cannot connect to {}:{}: {e}",
                    self.host, self.port
                ))
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| transport(&e))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, format!("{}:{}", self.host, self.port))
            .header(header::ACCEPT, super::CONTENT_TYPE)
            .header(header::CONTENT_TYPE, super::CONTENT_TYPE);
        if let Some(basic) = &self.basic {
            let encoded = base64::engine::general_purpose::STANDARD.encode(basic);
            request = request.header(header::AUTHORIZATION, format!("Basic {encoded}"));
        }
        let payload = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = request
            .body(Full::new(payload))
            .map_err(|e| transport(&e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| transport(&e))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| transport(&e))?
            .to_bytes();
        let answer: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status.is_success() {
            return Ok(answer);
        }
        let code = answer
            .get("error_code")
            .and_then(Value::as_i64)
            .unwrap_or(i64::from(status.as_u16()));
        let message = (answer.get("message").or_else(|| answer.get("error")))
            .and_then(Value::as_str)
            .map_or_else(|| answer.to_string(), str::to_owned);
        Err(ClientError::Registry {
            status,
            code,
            message,
        })
    }
}
