//! What every handler of the admin listener shares: the broker once it serves, the metrics
//! recorder, the authentication settings.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use metrics_exporter_prometheus::PrometheusHandle;
use strom_broker::Broker;

/// What every handler of the admin listener reads: the broker once it serves, and the
/// process's metrics recorder.
#[derive(Clone)]
pub struct AdminState {
    inner: Arc<Inner>,
}

struct Inner {
    /// Set once, when the broker has joined the cluster and opened its listeners.
    broker: OnceLock<Arc<Broker>>,
    prometheus: PrometheusHandle,
    process: metrics_process::Collector,
    /// `admin.authentication`: auto, none or basic (see the auth module).
    authentication: String,
    logins: VerifiedLogins,
    /// The console API's Kafka client: connected on the first request that needs it (the
    /// listener starts before the broker serves) and shared by every request after; a failed
    /// connection is tried again by the next request.
    console_client: tokio::sync::OnceCell<Arc<strom_client::Client>>,
    /// The console API's clients logged in as the users of HTTP Basic logins, by user: the
    /// broker's ACLs then judge each request as that user's (see the api module).
    user_clients: Mutex<HashMap<String, UserClient>>,
    /// `_schemas`, once the schema registry (or the console decoding a record) opened it.
    schemas: tokio::sync::OnceCell<Arc<crate::registry_store::topic::SchemasTopic>>,
}

impl AdminState {
    pub fn new(prometheus: PrometheusHandle, config: &strom_broker::BrokerConfig) -> AdminState {
        let process = metrics_process::Collector::default();
        process.describe();
        AdminState {
            inner: Arc::new(Inner {
                broker: OnceLock::new(),
                prometheus,
                process,
                authentication: config.admin_authentication.clone(),
                logins: Default::default(),
                console_client: tokio::sync::OnceCell::new(),
                user_clients: Mutex::default(),
                schemas: tokio::sync::OnceCell::new(),
            }),
        }
    }

    pub(crate) fn authentication(&self) -> &str {
        &self.inner.authentication
    }

    pub(crate) fn logins(&self) -> &VerifiedLogins {
        &self.inner.logins
    }

    pub(crate) fn console_client(&self) -> &tokio::sync::OnceCell<Arc<strom_client::Client>> {
        &self.inner.console_client
    }

    pub(crate) fn schemas(
        &self,
    ) -> &tokio::sync::OnceCell<Arc<crate::registry_store::topic::SchemasTopic>> {
        &self.inner.schemas
    }

    /// The client logged in as `login`'s user with its password, if one is kept.
    pub(crate) fn user_client(&self, login: &Login) -> Option<Arc<strom_client::Client>> {
        let clients = self
            .inner
            .user_clients
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        (clients.get(&login.user))
            .filter(|(digest, _)| *digest == login.digest())
            .map(|(_, client)| client.clone())
    }

    pub(crate) fn keep_user_client(&self, login: &Login, client: Arc<strom_client::Client>) {
        let mut clients = self
            .inner
            .user_clients
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if clients.len() >= USER_CLIENTS_MAX {
            clients.clear();
        }
        clients.insert(login.user.clone(), (login.digest(), client));
    }

    /// Hands over the broker once it serves clients.
    pub fn serving(&self, broker: Arc<Broker>) {
        let _ = self.inner.broker.set(broker);
    }

    /// The broker, once it serves.
    pub fn broker(&self) -> Option<&Arc<Broker>> {
        self.inner.broker.get()
    }

    pub(crate) fn prometheus(&self) -> &PrometheusHandle {
        &self.inner.prometheus
    }

    pub(crate) fn process(&self) -> &metrics_process::Collector {
        &self.inner.process
    }
}

/// The address a request came from, as handlers extract it (`ConnectInfo<Peer>`), whether
/// the listener is plain or TLS.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Logins the auth module verified against a credential: user -> (a digest of the password
/// (see [`Login::digest`]), the credential's stored key). A changed credential has another
/// stored key, so its old password is checked afresh; a deleted user has no credential left
/// to check against.
#[derive(Default)]
pub struct VerifiedLogins(Mutex<HashMap<String, VerifiedLogin>>);

/// A password's digest and the stored key of the credential it matched.
type VerifiedLogin = (Vec<u8>, Vec<u8>);

/// Most users whose verified login is remembered; past it, the memory starts afresh.
const VERIFIED_LOGINS_MAX: usize = 1024;

impl VerifiedLogins {
    pub(crate) fn remembers(&self, login: &Login, stored_key: &[u8]) -> bool {
        let logins = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (logins.get(&login.user)).is_some_and(|(digest, key)| {
            strom_security::scram::constant_time_eq(digest, &login.digest())
                && key.as_slice() == stored_key
        })
    }

    pub(crate) fn remember(&self, login: &Login, stored_key: &[u8]) {
        let mut logins = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if logins.len() >= VERIFIED_LOGINS_MAX {
            logins.clear();
        }
        logins.insert(login.user.clone(), (login.digest(), stored_key.to_vec()));
    }
}

/// A console client and the digest of the password it logged in with.
type UserClient = (Vec<u8>, Arc<strom_client::Client>);

/// Most users whose console client is kept; past it, they are made afresh.
const USER_CLIENTS_MAX: usize = 64;

/// A request's verified HTTP Basic login, for the console API to log in to Kafka with.
#[derive(Clone)]
pub struct Login {
    pub user: String,
    pub password: String,
    /// The SCRAM mechanism of the credential the password was checked against.
    pub mechanism: strom_types::security::ScramMechanism,
}

impl Login {
    /// The password salted and hashed (one HMAC round), to tell a kept client's password from
    /// another without keeping it in the clear twice.
    pub(crate) fn digest(&self) -> Vec<u8> {
        use strom_types::security::ScramMechanism;
        strom_security::scram::salted_password(
            ScramMechanism::Sha256,
            &self.password,
            self.user.as_bytes(),
            1,
        )
    }
}

tokio::task_local! {
    /// The login of the request being served, set by the auth guard around the handler.
    pub static LOGIN: Login;
}
