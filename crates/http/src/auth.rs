//! Who asks the admin listener, and whether they may.
//!
//! `/metrics` and `/api/` go through [`guard`]; health checks and the console's static pages
//! do not (a load balancer has no password, and the pages hold no data: they call `/api/`).
//! With `admin.authentication=basic` (or `auto` on a broker with an authorizer) a request
//! carries HTTP Basic credentials, checked against the cluster's SCRAM users (the password is
//! salted and hashed as a SCRAM login would; a verified login is remembered until the user's
//! credential changes, so a console polling every two seconds costs one PBKDF2, not one per
//! request); the principal is `User:NAME`, otherwise `User:ANONYMOUS`. Then the broker's
//! authorizer decides, with the same ACLs as Kafka requests: reading (GET) needs DESCRIBE on
//! the cluster, changing anything needs ALTER on the cluster. A refusal is 401 (who are you?)
//! or 403 (not allowed), never a log line alone.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::json;
use strom_broker::Broker;
use strom_types::security::{AclOperation, ResourceType};

use crate::state::{AdminState, Peer};

/// The principal of a request that names none.
pub const ANONYMOUS: &str = "User:ANONYMOUS";
/// The cluster resource's name in ACLs.
const CLUSTER: &str = "kafka-cluster";

/// The principal a request was admitted as, for handlers that check more.
#[derive(Debug, Clone)]
pub struct Principal(pub String);

pub async fn guard(
    State(state): State<AdminState>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(broker) = state.broker() else {
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "the broker is starting");
    };
    let required = match state.authentication() {
        "basic" => true,
        "none" => false,
        _ => broker.security.enabled(),
    };
    let principal = match required {
        false => ANONYMOUS.to_owned(),
        true => match login(&state, broker, &request) {
            Ok(principal) => principal,
            Err(reason) => {
                let mut response = refusal(StatusCode::UNAUTHORIZED, &reason);
                let challenge = header::HeaderValue::from_static("Basic realm=\"strom\"");
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, challenge);
                return response;
            }
        },
    };
    let operation = match *request.method() {
        Method::GET | Method::HEAD => AclOperation::Describe,
        _ => AclOperation::Alter,
    };
    let acls = broker.quorum.image().acls.clone();
    let allowed = broker.security.authorize_principal(
        &acls,
        &principal,
        peer.ip(),
        operation,
        ResourceType::Cluster,
        CLUSTER,
    );
    if !allowed {
        tracing::info!(%principal, %peer, ?operation, path = request.uri().path(), "admin listener: request denied");
        return refusal(
            StatusCode::FORBIDDEN,
            &format!("{principal} may not {operation:?} the cluster"),
        );
    }
    request.extensions_mut().insert(Principal(principal));
    next.run(request).await
}

fn refusal(status: StatusCode, reason: &str) -> Response {
    (status, Json(json!({ "error": reason }))).into_response()
}

/// The principal of a request's Basic credentials, or why there is none.
fn login(state: &AdminState, broker: &Broker, request: &Request) -> Result<String, String> {
    let value = (request.headers().get(header::AUTHORIZATION))
        .ok_or("log in with HTTP Basic authentication (a SCRAM user of the cluster)")?;
    let encoded = (value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .ok_or("the Authorization header is not Basic credentials")?;
    let decoded = (base64::engine::general_purpose::STANDARD.decode(encoded.trim()))
        .map_err(|_| "the Basic credentials are not base64")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "the Basic credentials are not UTF-8")?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or("the Basic credentials are not USER:PASSWORD")?;
    let image = broker.quorum.image();
    // The strongest mechanism the user has; any of them holds the same password.
    let credential = (image.scram_credentials.get(user))
        .and_then(|mechanisms| mechanisms.iter().next_back())
        .ok_or_else(|| "unknown user or wrong password".to_owned())?;
    let (mechanism, credential) = credential;
    if state
        .logins()
        .remembers(user, password, &credential.stored_key)
    {
        return Ok(format!("User:{user}"));
    }
    if !strom_security::scram::verify_password(*mechanism, password, credential) {
        return Err("unknown user or wrong password".to_owned());
    }
    state
        .logins()
        .remember(user, password, &credential.stored_key);
    Ok(format!("User:{user}"))
}
