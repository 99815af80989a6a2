//! Kafka's `StandardAuthorizer` over a set of ACL bindings, and the ACL filters of DescribeAcls
//! and DeleteAcls.
//!
//! An [`Authorizer`] is immutable: the broker builds a new one from the whole ACL set whenever
//! the metadata log changes it, and swaps it in; readers on any thread query the one they hold.
//! Building indexes the ACLs by resource type and then by name (literal names, the literal
//! wildcard `*`, prefixes), so one check looks at the ACLs that can match its resource and no
//! others.
//!
//! The rules follow Kafka's `StandardAuthorizerData`: super users may do everything; among the
//! ACLs whose resource pattern matches, one matching DENY beats any number of matching ALLOWs;
//! an ALLOW of READ, WRITE, DELETE or ALTER implies DESCRIBE and an ALLOW of ALTER_CONFIGS
//! implies DESCRIBE_CONFIGS (a DENY implies nothing); and a resource with no ACL at all (for
//! any principal or operation) gets `allow.everyone.if.no.acl.found`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use strom_types::security::{
    AclBinding, AclOperation, AclPermission, PatternType, ResourceType, CLUSTER_RESOURCE_NAME,
    WILDCARD,
};

/// The principal in an ACL that stands for every principal (Kafka's `WILDCARD_PRINCIPAL`).
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// The resource name Kafka's `authorizeByResourceType` checks first, so that super users and
/// the no-ACL default answer before any per-ACL reasoning.
const HARD_CODED_RESOURCE_NAME: &str = "hardcode";

/// The authorizer's static configuration (`super.users`, `allow.everyone.if.no.acl.found`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// Principals allowed everything, as `User:admin`.
    pub super_users: Vec<String>,
    /// The answer for a resource that no ACL matches at all.
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerConfig {
    /// Parses Kafka's `super.users` value: principals separated by `;`, each `TYPE:NAME`.
    /// Blank entries are skipped and entries are trimmed, as Kafka does.
    pub fn parse_super_users(text: &str) -> Result<Vec<String>, String> {
        let mut super_users = Vec::new();
        for entry in text
            .split(';')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            check_principal(entry)?;
            if !super_users.iter().any(|known| known == entry) {
                super_users.push(entry.to_string());
            }
        }
        Ok(super_users)
    }
}

/// Kafka's `SecurityUtils.parseKafkaPrincipal` check: a principal is `TYPE:NAME`, split at the
/// first colon (either side may be empty, as in Kafka).
fn check_principal(principal: &str) -> Result<(), String> {
    if principal.contains(':') {
        Ok(())
    } else {
        Err(format!(
            "expected a string in format principalType:principalName but got {principal}"
        ))
    }
}

/// The checks CreateAcls makes before it stores a binding, with Kafka's messages: no filter
/// values (ANY, MATCH), a `TYPE:NAME` principal, a non-empty resource name, and `kafka-cluster`
/// as the only name of the CLUSTER resource. Kafka answers all of these with INVALID_REQUEST.
pub fn validate_binding(binding: &AclBinding) -> Result<(), String> {
    if binding.resource_type == ResourceType::Any {
        return Err(format!("Invalid resourceType {}", binding.resource_type));
    }
    if !matches!(
        binding.pattern_type,
        PatternType::Literal | PatternType::Prefixed
    ) {
        return Err(format!("Invalid patternType {}", binding.pattern_type));
    }
    if binding.operation == AclOperation::Any {
        return Err(format!("Invalid operation {}", binding.operation));
    }
    if binding.permission == AclPermission::Any {
        return Err(format!("Invalid permissionType {}", binding.permission));
    }
    if binding.resource_type == ResourceType::Cluster
        && binding.resource_name != CLUSTER_RESOURCE_NAME
    {
        return Err(format!(
            "The only valid name for the CLUSTER resource is {CLUSTER_RESOURCE_NAME}"
        ));
    }
    if binding.resource_name.is_empty() {
        return Err("Invalid empty resource name".to_string());
    }
    check_principal(&binding.principal)
}

/// An ACL's host: Kafka compares the text of the client's address with the ACL's host; here
/// both are addresses, so `::1` and Java's `0:0:0:0:0:0:0:1` are the same host.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Every,
    Address(IpAddr),
    /// Text that is neither `*` nor an address: no client's address prints as it.
    Unmatchable,
}

impl HostPattern {
    fn parse(host: &str) -> HostPattern {
        if host == WILDCARD {
            return HostPattern::Every;
        }
        match host.parse::<IpAddr>() {
            Ok(address) => HostPattern::Address(address.to_canonical()),
            Err(_) => HostPattern::Unmatchable,
        }
    }

    fn matches(&self, client: IpAddr) -> bool {
        match self {
            HostPattern::Every => true,
            HostPattern::Address(address) => *address == client,
            HostPattern::Unmatchable => false,
        }
    }
}

/// The access-control half of a binding (who, from where, what, allow or deny); the resource
/// half is where the rule sits in the index.
#[derive(Debug, Clone)]
struct Rule {
    principal: String,
    host: HostPattern,
    operation: AclOperation,
    /// `Allow` or `Deny`: bindings with `Any` are not indexed.
    permission: AclPermission,
}

/// One question put to the authorizer, less its resource.
#[derive(Debug, Clone, Copy)]
struct Request<'a> {
    principal: &'a str,
    /// Canonical: an IPv4-mapped IPv6 address is its IPv4 address, as in Java.
    host: IpAddr,
    operation: AclOperation,
}

impl Rule {
    fn from_binding(binding: &AclBinding) -> Rule {
        Rule {
            principal: binding.principal.clone(),
            host: HostPattern::parse(&binding.host),
            operation: binding.operation,
            permission: binding.permission,
        }
    }

    /// Kafka's matching principals are the session's principal and `User:*`.
    fn matches_principal(&self, principal: &str) -> bool {
        self.principal == principal || self.principal == WILDCARD_PRINCIPAL
    }

    /// Whether the rule is for this principal, host and operation, with no operation implied:
    /// how Kafka's `authorizeByResourceType` reads an ACL.
    fn applies_exactly(&self, request: &Request<'_>) -> bool {
        self.matches_principal(request.principal)
            && self.host.matches(request.host)
            && (self.operation == request.operation || self.operation == AclOperation::All)
    }

    /// Kafka's `StandardAuthorizerData.findResult`, less the resource: `None` when the rule
    /// does not apply to the request, else whether it allows.
    fn decide(&self, request: &Request<'_>) -> Option<bool> {
        if !self.matches_principal(request.principal) || !self.host.matches(request.host) {
            return None;
        }
        let allow = self.permission == AclPermission::Allow;
        let operation_matches = self.operation == AclOperation::All
            || if allow {
                allow_covers(self.operation, request.operation)
            } else {
                self.operation == request.operation
            };
        operation_matches.then_some(allow)
    }
}

/// Whether an ALLOW of `granted` allows `wanted`: itself, and DESCRIBE or DESCRIBE_CONFIGS
/// through the operations Kafka says imply them.
fn allow_covers(granted: AclOperation, wanted: AclOperation) -> bool {
    use AclOperation::{Alter, AlterConfigs, Delete, Describe, DescribeConfigs, Read, Write};
    match wanted {
        Describe => matches!(granted, Describe | Read | Write | Delete | Alter),
        DescribeConfigs => matches!(granted, DescribeConfigs | AlterConfigs),
        _ => granted == wanted,
    }
}

/// What the rules seen so far say about one request.
#[derive(Debug, Default)]
struct Verdict {
    /// Some ACL's resource pattern matched, whoever it is for.
    resource_has_acls: bool,
    allowed: bool,
    denied: bool,
}

impl Verdict {
    fn consider(&mut self, rules: &[Rule], request: &Request<'_>) {
        self.resource_has_acls |= !rules.is_empty();
        for rule in rules {
            match rule.decide(request) {
                Some(true) => self.allowed = true,
                Some(false) => self.denied = true,
                None => {}
            }
        }
    }

    fn result(&self, allow_if_no_acl: bool) -> bool {
        if self.denied {
            false
        } else if self.allowed {
            true
        } else {
            !self.resource_has_acls && allow_if_no_acl
        }
    }
}

/// The ACLs of one resource type, by how their resource pattern matches a name.
#[derive(Debug, Default)]
struct ResourceTypeIndex {
    /// LITERAL patterns other than `*`, by name.
    literal: HashMap<String, Vec<Rule>>,
    /// LITERAL `*`: every name of the type.
    wildcard: Vec<Rule>,
    /// PREFIXED patterns, by prefix.
    prefixed: HashMap<String, Vec<Rule>>,
    /// The distinct lengths in bytes of the keys of `prefixed`, ascending: a name is looked up
    /// once per length rather than once per prefix or per ACL.
    prefix_lengths: Vec<usize>,
}

impl ResourceTypeIndex {
    fn insert(&mut self, binding: &AclBinding) {
        let rule = Rule::from_binding(binding);
        let name = binding.resource_name.clone();
        match binding.pattern_type {
            PatternType::Literal if name == WILDCARD => self.wildcard.push(rule),
            PatternType::Literal => self.literal.entry(name).or_default().push(rule),
            _ => {
                if !self.prefix_lengths.contains(&name.len()) {
                    self.prefix_lengths.push(name.len());
                }
                self.prefixed.entry(name).or_default().push(rule);
            }
        }
    }

    /// The groups of rules whose resource pattern matches `name`.
    fn matching_rules<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [Rule]> + 'a {
        let literal = self.literal.get(name).map(Vec::as_slice);
        let prefixed = self
            .prefix_lengths
            .iter()
            .take_while(move |&&length| length <= name.len())
            .filter_map(move |&length| name.get(..length))
            .filter_map(move |prefix| self.prefixed.get(prefix).map(Vec::as_slice));
        literal
            .into_iter()
            .chain(std::iter::once(self.wildcard.as_slice()))
            .chain(prefixed)
    }
}

/// Kafka's StandardAuthorizer over one ACL set. Immutable: build a new one when the set
/// changes.
#[derive(Debug, Default)]
pub struct Authorizer {
    super_users: HashSet<String>,
    allow_everyone_if_no_acl_found: bool,
    by_resource_type: HashMap<ResourceType, ResourceTypeIndex>,
    acl_count: usize,
}

impl Authorizer {
    /// Indexes `acls`. A binding [`validate_binding`] rejects (CreateAcls never stores one) is
    /// left out with a warning rather than guessed at.
    pub fn new<'a>(
        config: &AuthorizerConfig,
        acls: impl IntoIterator<Item = &'a AclBinding>,
    ) -> Authorizer {
        let mut authorizer = Authorizer {
            super_users: config.super_users.iter().cloned().collect(),
            allow_everyone_if_no_acl_found: config.allow_everyone_if_no_acl_found,
            ..Authorizer::default()
        };
        for binding in acls {
            if let Err(reason) = validate_binding(binding) {
                tracing::warn!(?binding, reason, "ignoring an invalid ACL");
                continue;
            }
            authorizer
                .by_resource_type
                .entry(binding.resource_type)
                .or_default()
                .insert(binding);
            authorizer.acl_count += 1;
        }
        for index in authorizer.by_resource_type.values_mut() {
            index.prefix_lengths.sort_unstable();
        }
        authorizer
    }

    /// How many ACLs the authorizer holds (invalid ones left out).
    pub fn acl_count(&self) -> usize {
        self.acl_count
    }

    /// Whether `principal` is one of `super.users`.
    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.contains(principal)
    }

    /// May `principal` ("User:alice") from `host` do `operation` on this resource?
    pub fn authorize(
        &self,
        principal: &str,
        host: IpAddr,
        operation: AclOperation,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> bool {
        if self.is_super_user(principal) {
            return true;
        }
        let Some(index) = self.by_resource_type.get(&resource_type) else {
            return self.allow_everyone_if_no_acl_found;
        };
        let request = Request {
            principal,
            host: host.to_canonical(),
            operation,
        };
        let mut verdict = Verdict::default();
        for rules in index.matching_rules(resource_name) {
            verdict.consider(rules, &request);
        }
        verdict.result(self.allow_everyone_if_no_acl_found)
    }

    /// Kafka's `authorizeByResourceType`: could `operation` be allowed on some resource of this
    /// type? True for super users and when no ACL matches a resource named `hardcode` and the
    /// no-ACL default allows; false when a literal `*` DENY applies; else true when some
    /// applicable ALLOW is not shadowed by an applicable DENY of the same literal name or of a
    /// prefix of its name. Unlike [`Authorizer::authorize`], only ALL and the operation itself
    /// match here (no implied DESCRIBE), as in Kafka. Kafka rejects ANY as the operation or
    /// the resource type; here the answer is then what the rules give (no ACL holds ANY).
    pub fn authorize_any(
        &self,
        principal: &str,
        host: IpAddr,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if self.authorize(
            principal,
            host,
            operation,
            resource_type,
            HARD_CODED_RESOURCE_NAME,
        ) {
            return true;
        }
        let Some(index) = self.by_resource_type.get(&resource_type) else {
            return false;
        };
        let request = Request {
            principal,
            host: host.to_canonical(),
            operation,
        };
        let Some(patterns) = ApplicablePatterns::collect(index, &request) else {
            return false;
        };
        patterns.some_allow_unshadowed()
    }
}

/// The resource patterns of the ALLOWs and DENYs that apply to one request, by name, for
/// [`Authorizer::authorize_any`].
#[derive(Debug, Default)]
struct ApplicablePatterns<'a> {
    wildcard_allow: bool,
    allow_literal: HashSet<&'a str>,
    allow_prefixed: HashSet<&'a str>,
    deny_literal: HashSet<&'a str>,
    deny_prefixed: HashSet<&'a str>,
}

impl<'a> ApplicablePatterns<'a> {
    /// `None` when a literal `*` DENY applies: nothing of the type is allowed.
    fn collect(index: &'a ResourceTypeIndex, request: &Request<'_>) -> Option<Self> {
        let applicable = |rule: &&Rule| rule.applies_exactly(request);
        let is_allow = |rule: &Rule| rule.permission == AclPermission::Allow;
        let mut wildcard = index.wildcard.iter().filter(applicable);
        if wildcard.clone().any(|rule| !is_allow(rule)) {
            return None;
        }
        let mut patterns = ApplicablePatterns {
            wildcard_allow: wildcard.any(is_allow),
            ..ApplicablePatterns::default()
        };
        for (name, rules) in &index.literal {
            for rule in rules.iter().filter(applicable) {
                let names = if is_allow(rule) {
                    &mut patterns.allow_literal
                } else {
                    &mut patterns.deny_literal
                };
                names.insert(name.as_str());
            }
        }
        for (name, rules) in &index.prefixed {
            for rule in rules.iter().filter(applicable) {
                let names = if is_allow(rule) {
                    &mut patterns.allow_prefixed
                } else {
                    &mut patterns.deny_prefixed
                };
                names.insert(name.as_str());
            }
        }
        Some(patterns)
    }

    fn some_allow_unshadowed(&self) -> bool {
        if self.wildcard_allow {
            return true;
        }
        let literal = self
            .allow_literal
            .iter()
            .filter(|name| !self.deny_literal.contains(*name));
        literal
            .chain(self.allow_prefixed.iter())
            .any(|name| !self.denied_by_prefix(name))
    }

    /// Whether a PREFIXED DENY covers `name`: one of its non-empty prefixes, itself included.
    fn denied_by_prefix(&self, name: &str) -> bool {
        name.char_indices()
            .map(|(start, character)| &name[..start + character.len_utf8()])
            .any(|prefix| self.deny_prefixed.contains(prefix))
    }
}

/// A DescribeAcls or DeleteAcls filter (Kafka's `AclBindingFilter`). `Any` values and `None`
/// strings match everything; `PatternType::Match` with a name matches the bindings that would
/// apply to a resource of that name (the literal name, the literal `*`, prefixes of it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclFilter {
    /// The filter that matches every binding.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        }
    }

    /// The filter that matches exactly `binding` (Kafka's `AclBinding.toFilter`).
    pub fn exact(binding: &AclBinding) -> AclFilter {
        AclFilter {
            resource_type: binding.resource_type,
            resource_name: Some(binding.resource_name.clone()),
            pattern_type: binding.pattern_type,
            principal: Some(binding.principal.clone()),
            host: Some(binding.host.clone()),
            operation: binding.operation,
            permission: binding.permission,
        }
    }

    /// Builds a filter from DescribeAcls or DeleteAcls wire codes, with the messages of
    /// Kafka's controller (`AclControlManager.validateFilter`) when a code is UNKNOWN or not
    /// one Kafka defines. Kafka answers these with INVALID_REQUEST.
    pub fn from_codes(
        resource_type: i8,
        resource_name: Option<String>,
        pattern_type: i8,
        principal: Option<String>,
        host: Option<String>,
        operation: i8,
        permission: i8,
    ) -> Result<AclFilter, String> {
        let (Some(resource_type), Some(pattern_type)) = (
            ResourceType::from_code(resource_type),
            PatternType::from_code(pattern_type),
        ) else {
            return Err("Unknown patternFilter.".to_string());
        };
        let (Some(operation), Some(permission)) = (
            AclOperation::from_code(operation),
            AclPermission::from_code(permission),
        ) else {
            return Err("Unknown entryFilter.".to_string());
        };
        Ok(AclFilter {
            resource_type,
            resource_name,
            pattern_type,
            principal,
            host,
            operation,
            permission,
        })
    }

    /// Whether `binding` passes this filter (Kafka's `AclBindingFilter.matches`).
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.matches_pattern(binding) && self.matches_entry(binding)
    }

    /// Kafka's `ResourcePatternFilter.matches`.
    fn matches_pattern(&self, binding: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != binding.resource_type {
            return false;
        }
        let any_pattern = matches!(self.pattern_type, PatternType::Any | PatternType::Match);
        if !any_pattern && self.pattern_type != binding.pattern_type {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == binding.pattern_type {
            return *name == binding.resource_name;
        }
        match binding.pattern_type {
            PatternType::Literal => {
                *name == binding.resource_name || binding.resource_name == WILDCARD
            }
            PatternType::Prefixed => name.starts_with(&binding.resource_name),
            // A stored binding is LITERAL or PREFIXED; Kafka throws on anything else.
            PatternType::Any | PatternType::Match => false,
        }
    }

    /// Kafka's `AccessControlEntryFilter.matches`.
    fn matches_entry(&self, binding: &AclBinding) -> bool {
        let text_matches = |wanted: &Option<String>, actual: &str| {
            wanted.as_deref().is_none_or(|wanted| wanted == actual)
        };
        text_matches(&self.principal, &binding.principal)
            && text_matches(&self.host, &binding.host)
            && (self.operation == AclOperation::Any || self.operation == binding.operation)
            && (self.permission == AclPermission::Any || self.permission == binding.permission)
    }

    /// Kafka's `AclBindingFilter.findIndefiniteField`: a description of the first field that
    /// could match more than one value, or `None` when the filter matches at most one binding.
    /// The admin client refuses to create an ACL from a binding with such a field, saying
    /// `Invalid ACL creation: <this>`.
    pub fn find_indefinite_field(&self) -> Option<&'static str> {
        if self.resource_type == ResourceType::Any {
            return Some("Resource type is ANY.");
        }
        if self.resource_name.is_none() {
            return Some("Resource name is NULL.");
        }
        if self.pattern_type == PatternType::Match {
            return Some("Resource pattern type is MATCH.");
        }
        if self.principal.is_none() {
            return Some("Principal is NULL");
        }
        if self.host.is_none() {
            return Some("Host is NULL");
        }
        if self.operation == AclOperation::Any {
            return Some("Operation is ANY");
        }
        if self.permission == AclPermission::Any {
            return Some("Permission type is ANY");
        }
        None
    }

    /// Kafka's `AclBindingFilter.matchesAtMostOne`.
    pub fn matches_at_most_one(&self) -> bool {
        self.find_indefinite_field().is_none()
    }
}

#[cfg(test)]
mod tests;
