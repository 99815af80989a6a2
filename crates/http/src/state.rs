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
            }),
        }
    }

    pub(crate) fn authentication(&self) -> &str {
        &self.inner.authentication
    }

    pub(crate) fn logins(&self) -> &VerifiedLogins {
        &self.inner.logins
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

/// Logins the auth module verified against a credential: user -> (password, the credential's stored key).
#[derive(Default)]
pub struct VerifiedLogins(Mutex<HashMap<String, (String, Vec<u8>)>>);

/// Most users whose verified login is remembered; past it, the memory starts afresh.
const VERIFIED_LOGINS_MAX: usize = 1024;

impl VerifiedLogins {
    pub(crate) fn remembers(&self, user: &str, password: &str, stored_key: &[u8]) -> bool {
        let logins = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        logins
            .get(user)
            .is_some_and(|(known, key)| known == password && key == stored_key)
    }

    pub(crate) fn remember(&self, user: &str, password: &str, stored_key: &[u8]) {
        let mut logins = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if logins.len() >= VERIFIED_LOGINS_MAX {
            logins.clear();
        }
        logins.insert(user.to_owned(), (password.to_owned(), stored_key.to_vec()));
    }
}
