//! The broker's security state, built once at start from the config: the SASL options (the
//! OAUTHBEARER validator with its JWKS), the certificate principal mapper, and the authorizer,
//! rebuilt whenever the metadata image's ACLs change. (The TLS listeners' configurations,
//! which can change at runtime, are `listener_tls`'s.) Every denial is logged once per principal, operation and resource.
//!
//! Checks happen in [`crate::authorization`], once per request before dispatch; nothing below
//! the handlers knows about principals.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strom_security::authorizer::{Authorizer, AuthorizerConfig};
use strom_security::oauthbearer::{JwtValidator, OAuthConfig};
use strom_security::principal::{subject_dn, PrincipalMapper};
use strom_security::sasl::ServerOptions;
use strom_types::security::{AclBinding, AclOperation, ResourceType};

use crate::config::BrokerConfig;
use crate::context::RequestContext;

/// How many distinct denials are remembered (and so logged once each) before the memory is
/// cleared and they may be logged again.
const DENIALS_REMEMBERED_MAX: usize = 10_000;

/// How often the JWKS's age is looked at (it is reloaded once older than an hour).
const JWKS_CHECK_INTERVAL_MS: u64 = 60_000;

/// A denial as the authorizer log remembers it: principal, operation, resource.
type Denial = (Arc<str>, AclOperation, ResourceType, String);

pub struct SecurityRuntime {
    sasl: ServerOptions,
    principal_mapper: PrincipalMapper,
    /// `None` when `authorizer.class.name` is empty: everything is allowed.
    authorizer: Option<AuthorizerState>,
    denials: Mutex<HashSet<Denial>>,
}

struct AuthorizerState {
    config: AuthorizerConfig,
    /// The ACL set the authorizer was built from, and the authorizer.
    current: RwLock<(Arc<BTreeSet<AclBinding>>, Arc<Authorizer>)>,
}

impl SecurityRuntime {
    /// Reads the principal rules and, with OAUTHBEARER enabled, the JWKS.
    pub fn new(config: &BrokerConfig) -> anyhow::Result<SecurityRuntime> {
        let security = &config.security;
        let principal_mapper = PrincipalMapper::parse(&security.principal_mapping_rules)
            .map_err(|error| anyhow::anyhow!("ssl.principal.mapping.rules: {error}"))?;
        let oauth = match security.sasl_mechanisms.iter().any(|m| m == "OAUTHBEARER") {
            false => None,
            true => {
                let url = security.oauth_jwks_url.clone().unwrap_or_default();
                let validator = JwtValidator::new(OAuthConfig {
                    jwks_endpoint_url: url,
                    expected_audience: security.oauth_audience.clone(),
                    expected_issuer: security.oauth_issuer.clone(),
                    sub_claim_name: security.oauth_sub_claim.clone(),
                    clock_skew_seconds: 30,
                })
                .map_err(|error| anyhow::anyhow!("sasl.oauthbearer.jwks.endpoint.url: {error}"))?;
                Some(Arc::new(validator))
            }
        };
        let authorizer = security.authorizer_enabled().then(|| {
            let config = AuthorizerConfig {
                super_users: security.super_users.clone(),
                allow_everyone_if_no_acl_found: security.allow_if_no_acl,
            };
            let empty = Arc::new(BTreeSet::new());
            let authorizer = Arc::new(Authorizer::new(&config, empty.iter()));
            AuthorizerState {
                config,
                current: RwLock::new((empty, authorizer)),
            }
        });
        Ok(SecurityRuntime {
            sasl: ServerOptions { oauth },
            principal_mapper,
            authorizer,
            denials: Mutex::new(HashSet::new()),
        })
    }

    pub fn sasl_options(&self) -> &ServerOptions {
        &self.sasl
    }

    /// `User:` + the certificate's subject DN, through `ssl.principal.mapping.rules`.
    pub fn certificate_principal(&self, certificate_der: &[u8]) -> Result<String, String> {
        let dn = subject_dn(certificate_der).map_err(|error| error.to_string())?;
        let name = (self.principal_mapper.map(&dn)).map_err(|error| error.to_string())?;
        Ok(format!("User:{name}"))
    }

    /// Whether authorization is on at all.
    pub fn enabled(&self) -> bool {
        self.authorizer.is_some()
    }

    /// May the request's principal do `operation` on the resource? Denials are logged.
    pub fn authorize(
        &self,
        acls: &Arc<BTreeSet<AclBinding>>,
        context: &RequestContext,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let host = context.peer.ip();
        let allowed = self.authorize_principal(
            acls,
            &context.principal,
            host,
            operation,
            resource_type,
            name,
        );
        if !allowed {
            self.log_denial(context, host, operation, resource_type, name);
        }
        allowed
    }

    /// May `principal`, connecting from `host`, do `operation` on the resource? For requests
    /// that do not come through a Kafka listener (the admin listener's HTTP API).
    pub fn authorize_principal(
        &self,
        acls: &Arc<BTreeSet<AclBinding>>,
        principal: &str,
        host: IpAddr,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let Some(state) = &self.authorizer else {
            return true;
        };
        (state.authorizer_for(acls)).authorize(principal, host, operation, resource_type, name)
    }

    /// A check for `context`'s principal against the ACLs of now, that can be kept beyond the
    /// request (to filter a response that is not ready yet). Denials it finds are not logged.
    pub fn snapshot(
        &self,
        acls: &Arc<BTreeSet<AclBinding>>,
        context: &RequestContext,
    ) -> impl Fn(AclOperation, ResourceType, &str) -> bool + Send + 'static {
        let authorizer = self
            .authorizer
            .as_ref()
            .map(|state| state.authorizer_for(acls));
        let (principal, host) = (context.principal.clone(), context.peer.ip());
        move |operation, resource_type, name| match &authorizer {
            None => true,
            Some(authorizer) => {
                authorizer.authorize(&principal, host, operation, resource_type, name)
            }
        }
    }

    /// Kafka's authorizeByResourceType: `operation` allowed on some resource of the type.
    pub fn authorize_any(
        &self,
        acls: &Arc<BTreeSet<AclBinding>>,
        context: &RequestContext,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        let Some(state) = &self.authorizer else {
            return true;
        };
        let authorizer = state.authorizer_for(acls);
        authorizer.authorize_any(
            &context.principal,
            context.peer.ip(),
            operation,
            resource_type,
        )
    }

    fn log_denial(
        &self,
        context: &RequestContext,
        host: IpAddr,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) {
        let key = (
            context.principal.clone(),
            operation,
            resource_type,
            name.to_owned(),
        );
        let mut denials = self.denials.lock();
        if denials.len() >= DENIALS_REMEMBERED_MAX {
            denials.clear();
        }
        if denials.insert(key) {
            tracing::info!(
                target: "strom::authorizer",
                principal = %context.principal,
                %host,
                operation = operation.name(),
                resource = format!("{resource_type}:{name}"),
                "authorization denied (logged once per principal, operation and resource)"
            );
        }
    }
}

impl AuthorizerState {
    /// The authorizer over `acls`, rebuilt when the image's ACL set is a new one.
    fn authorizer_for(&self, acls: &Arc<BTreeSet<AclBinding>>) -> Arc<Authorizer> {
        {
            let current = self.current.read();
            if Arc::ptr_eq(&current.0, acls) {
                return current.1.clone();
            }
        }
        let rebuilt = Arc::new(Authorizer::new(&self.config, acls.iter()));
        *self.current.write() = (acls.clone(), rebuilt.clone());
        rebuilt
    }
}

/// Reloads the OAUTHBEARER key set once it is older than
/// [`strom_security::oauthbearer::JWKS_REFRESH_MS_DEFAULT`] (Kafka's hour), so keys the issuer
/// retires stop being trusted; a token signed by a new key reloads it at once anyway. Runs
/// until aborted; returns at once without OAUTHBEARER.
pub async fn refresh_jwks(broker: std::sync::Arc<crate::Broker>) {
    let Some(validator) = broker.security.sasl.oauth.clone() else {
        return;
    };
    let period = std::time::Duration::from_millis(JWKS_CHECK_INTERVAL_MS);
    loop {
        tokio::time::sleep(period).await;
        let validator = validator.clone();
        let refreshed = tokio::task::spawn_blocking(move || {
            validator.refresh_if_older_than(strom_security::oauthbearer::JWKS_REFRESH_MS_DEFAULT)
        })
        .await;
        if let Ok(Err(error)) = refreshed {
            tracing::warn!(
                "refreshing the OAUTHBEARER key set failed; keeping the old keys: {error}"
            );
        }
    }
}
