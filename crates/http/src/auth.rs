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
use strom_types::security::{AclOperation, ResourceType, ScramCredential, ScramMechanism};

use crate::state::{AdminState, Login, Peer, LOGIN};

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
    let login = match required {
        false => None,
        true => match login(
            &state,
            broker,
            request.headers().get(header::AUTHORIZATION).cloned(),
        )
        .await
        {
            Ok(login) => Some(login),
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
    let principal =
        (login.as_ref()).map_or_else(|| ANONYMOUS.to_owned(), |l| format!("User:{}", l.user));
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
    match login {
        // The console API logs in to Kafka as this user (see the api module).
        Some(login) => LOGIN.scope(login, next.run(request)).await,
        None => next.run(request).await,
    }
}

fn refusal(status: StatusCode, reason: &str) -> Response {
    (status, Json(json!({ "error": reason }))).into_response()
}

/// The login of a request's Basic credentials, or why there is none. The password check (a
/// PBKDF2 of the credential's iterations, milliseconds of CPU) runs off the async threads the
/// Kafka listeners share, a few at a time; an unknown user costs the same check against a
/// made-up credential, so a quick refusal does not tell which users exist.
async fn login(
    state: &AdminState,
    broker: &Broker,
    authorization: Option<header::HeaderValue>,
) -> Result<Login, String> {
    let value = authorization
        .ok_or("log in with HTTP Basic authentication (a SCRAM user of the cluster)")?;
    let value = value
        .to_str()
        .map_err(|_| "the Authorization header is not text")?;
    let encoded = match value.split_once(' ') {
        Some((scheme, encoded)) if scheme.eq_ignore_ascii_case("basic") => encoded,
        _ => return Err("the Authorization header is not Basic credentials".to_owned()),
    };
    let decoded = (base64::engine::general_purpose::STANDARD.decode(encoded.trim()))
        .map_err(|_| "the Basic credentials are not base64")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "the Basic credentials are not UTF-8")?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or("the Basic credentials are not USER:PASSWORD")?;
    let image = broker.quorum.image();
    // The strongest mechanism the user has (Kafka lets each hold its own password).
    let known = (image.scram_credentials.get(user))
        .and_then(|mechanisms| mechanisms.iter().next_back())
        .map(|(mechanism, credential)| (*mechanism, credential.clone()));
    let (mechanism, credential, exists) = match known {
        Some((mechanism, credential)) => (mechanism, credential, true),
        None => (ScramMechanism::Sha512, unknown_user_credential(), false),
    };
    let login = Login {
        user: user.to_owned(),
        password: password.to_owned(),
        mechanism,
    };
    if exists && state.logins().remembers(&login, &credential.stored_key) {
        return Ok(login);
    }
    let _turn = PASSWORD_CHECKS
        .acquire()
        .await
        .map_err(|_| "shutting down")?;
    let checked = login.clone();
    let verify = move || {
        strom_security::scram::verify_password(mechanism, &checked.password, &credential)
            .then_some(credential)
    };
    match tokio::task::spawn_blocking(verify).await {
        Ok(Some(credential)) if exists => {
            state.logins().remember(&login, &credential.stored_key);
            Ok(login)
        }
        _ => Err("unknown user or wrong password".to_owned()),
    }
}

/// Password checks running at once, at most: a flood of logins waits its turn instead of
/// taking every blocking thread.
static PASSWORD_CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// A credential no password matches, checked for users that do not exist.
fn unknown_user_credential() -> ScramCredential {
    static CREDENTIAL: std::sync::OnceLock<ScramCredential> = std::sync::OnceLock::new();
    CREDENTIAL
        .get_or_init(|| {
            let password: [u8; 16] = rand::random();
            let password: String = password.iter().map(|b| format!("{b:02x}")).collect();
            strom_security::scram::new_credential(ScramMechanism::Sha512, &password, 4096)
        })
        .clone()
}
