//! How `strom acl`'s flags, in `kafka-acls.sh`'s vocabulary, become the ACL bindings to
//! create and the filters to list or delete. No I/O: the mapping is tested without a broker.
//!
//! As in `kafka-acls.sh`: every principal gets every operation on every resource given;
//! hosts default to `*`; operations default to `All`; `--producer` and `--consumer` stand for
//! the operations a producer or consumer needs; an operation a resource type does not have
//! (`Read` on the cluster) is refused.
//!
//! Deleting differs, to delete what a user means: what a delete leaves out matches anything.
//! `--allow-principal User:alice` without `--operation` deletes every ACL allowing alice on
//! the resource, from any host (kafka-acls would delete only her `All` from `*`), and
//! `--operation Read` without a principal deletes every principal's `Read` ACL (kafka-acls
//! would ignore the operation and delete every ACL of the resource).

use std::collections::BTreeSet;

use strom_client::AclFilter;
use strom_types::security::{
    AclBinding, AclOperation, AclPermission, PatternType, ResourceType, CLUSTER_RESOURCE_NAME,
    WILDCARD,
};

/// Which resources: `--topic`, `--group`, `--cluster`, `--transactional-id`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ResourceFlags {
    /// A topic (or, with --resource-pattern-type prefixed, a topic name prefix); repeatable.
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// A consumer group (or group id prefix); repeatable.
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// The cluster itself.
    #[arg(long)]
    pub cluster: bool,
    /// A transactional id (or prefix); repeatable.
    #[arg(long = "transactional-id", value_name = "ID")]
    pub transactional_ids: Vec<String>,
    /// How the resource names match: literal (default) or prefixed; to list or delete also
    /// any (either, the name exactly) or match (every ACL that applies to the name, wildcard
    /// and prefixes included).
    #[arg(long, value_name = "TYPE", value_parser = parse_pattern_type)]
    pub resource_pattern_type: Option<PatternType>,
}

/// Who is allowed or denied what: principals, hosts and operations.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EntryFlags {
    /// A principal to allow, as TYPE:NAME (User:alice, User:* for every user); repeatable.
    #[arg(long = "allow-principal", value_name = "PRINCIPAL", value_parser = parse_principal)]
    pub allow_principals: Vec<String>,
    /// A principal to deny, as TYPE:NAME; repeatable. A DENY wins over any ALLOW.
    #[arg(long = "deny-principal", value_name = "PRINCIPAL", value_parser = parse_principal)]
    pub deny_principals: Vec<String>,
    /// A host (IP address) the allowed principals may connect from; repeatable; default *
    /// (to delete: any host).
    #[arg(
        long = "allow-host",
        value_name = "HOST",
        requires = "allow_principals"
    )]
    pub allow_hosts: Vec<String>,
    /// A host (IP address) the denied principals are denied from; repeatable; default *
    /// (to delete: any host).
    #[arg(long = "deny-host", value_name = "HOST", requires = "deny_principals")]
    pub deny_hosts: Vec<String>,
    /// An operation: Read, Write, Create, Delete, Alter, Describe, ClusterAction,
    /// DescribeConfigs, AlterConfigs, IdempotentWrite, CreateTokens, DescribeTokens or All
    /// (default; to delete: any operation); any case; repeatable.
    #[arg(long = "operation", value_name = "OPERATION", value_parser = parse_operation)]
    pub operations: Vec<AclOperation>,
    /// What a producer needs: Write, Describe and Create on the topics; Write and Describe on
    /// the transactional ids.
    #[arg(long, conflicts_with_all = ["operations", "deny_principals"])]
    pub producer: bool,
    /// With --producer: also IdempotentWrite on the cluster (Kafka 3 and later need it no
    /// more: Write on a topic allows idempotent writes to it).
    #[arg(long, requires = "producer")]
    pub idempotent: bool,
    /// What a consumer needs: Read and Describe on the topics, Read on the groups.
    #[arg(long, conflicts_with_all = ["operations", "deny_principals"])]
    pub consumer: bool,
}

/// Parses kafka-acls' pattern type names, any case.
pub fn parse_pattern_type(text: &str) -> Result<PatternType, String> {
    PatternType::parse(text)
        .ok_or_else(|| format!("'{text}' is not a pattern type: literal, prefixed, any or match"))
}

/// Parses a principal, which Kafka writes TYPE:NAME.
pub fn parse_principal(text: &str) -> Result<String, String> {
    match text.split_once(':') {
        Some((kind, _)) if !kind.is_empty() => Ok(text.to_string()),
        _ => Err(format!(
            "'{text}' is not a principal: write TYPE:NAME, such as User:{text}"
        )),
    }
}

/// Parses an operation in kafka-acls' spelling (`DescribeConfigs`), or Kafka's wire name
/// (`DESCRIBE_CONFIGS`), any case. `Any` is a filter's wildcard, not an operation to grant.
pub fn parse_operation(text: &str) -> Result<AclOperation, String> {
    let wanted = squashed(text);
    AclOperation::ALL
        .iter()
        .copied()
        .filter(|operation| *operation != AclOperation::Any)
        .find(|operation| squashed(operation.name()) == wanted)
        .ok_or_else(|| {
            let names: Vec<String> = granted_operations().map(operation_name).collect();
            format!("'{text}' is not an operation: {}", names.join(", "))
        })
}

/// A name without `_` or `-`, upper case: `describe-configs` and `DescribeConfigs` alike.
fn squashed(text: &str) -> String {
    text.trim()
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase()
}

fn granted_operations() -> impl Iterator<Item = AclOperation> {
    AclOperation::ALL
        .iter()
        .copied()
        .filter(|operation| *operation != AclOperation::Any)
}

/// kafka-acls' spelling of an operation: `DESCRIBE_CONFIGS` -> `DescribeConfigs`.
pub fn operation_name(operation: AclOperation) -> String {
    operation
        .name()
        .split('_')
        .map(|word| {
            let mut letters = word.chars();
            letters.next().map_or_else(String::new, |first| {
                first.to_string() + &letters.as_str().to_ascii_lowercase()
            })
        })
        .collect()
}

/// The operations a resource type has (Kafka's `AclEntry.supportedOperations`), besides
/// `All`.
fn supported_operations(resource_type: ResourceType) -> &'static [AclOperation] {
    use AclOperation::*;
    match resource_type {
        ResourceType::Topic => &[
            Read,
            Write,
            Create,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[Read, Describe, Delete],
        ResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        ResourceType::TransactionalId => &[Describe, Write],
        ResourceType::DelegationToken => &[Describe],
        ResourceType::User => &[CreateTokens, DescribeTokens],
        ResourceType::Any => &[],
    }
}

/// A resource an ACL protects.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resource {
    resource_type: ResourceType,
    name: String,
}

impl Resource {
    fn new(resource_type: ResourceType, name: &str) -> Resource {
        Resource {
            resource_type,
            name: name.to_string(),
        }
    }
}

/// The resources the flags name, in flag order: topics, groups, cluster, transactional ids.
fn resources(flags: &ResourceFlags) -> Vec<Resource> {
    let topics = flags
        .topics
        .iter()
        .map(|name| Resource::new(ResourceType::Topic, name));
    let groups = flags
        .groups
        .iter()
        .map(|name| Resource::new(ResourceType::Group, name));
    let cluster = flags
        .cluster
        .then(|| Resource::new(ResourceType::Cluster, CLUSTER_RESOURCE_NAME));
    let transactional_ids = flags
        .transactional_ids
        .iter()
        .map(|name| Resource::new(ResourceType::TransactionalId, name));
    topics
        .chain(groups)
        .chain(cluster)
        .chain(transactional_ids)
        .collect()
}

/// One principal allowed or denied from one host (`None`: any host, in a filter).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grantee {
    principal: String,
    host: Option<String>,
    permission: AclPermission,
}

/// Every principal with every host of its kind (allow or deny), `host_default` when none is
/// given.
fn grantees(flags: &EntryFlags, host_default: Option<&str>) -> Vec<Grantee> {
    let defaults = [host_default.map(str::to_string)];
    let kinds = [
        (
            &flags.allow_principals,
            &flags.allow_hosts,
            AclPermission::Allow,
        ),
        (
            &flags.deny_principals,
            &flags.deny_hosts,
            AclPermission::Deny,
        ),
    ];
    let mut grantees = Vec::new();
    for (principals, hosts, permission) in kinds {
        let hosts: Vec<Option<String>> = match hosts.is_empty() {
            true => defaults.to_vec(),
            false => hosts.iter().cloned().map(Some).collect(),
        };
        for principal in principals {
            grantees.extend(hosts.iter().map(|host| Grantee {
                principal: principal.clone(),
                host: host.clone(),
                permission,
            }));
        }
    }
    grantees
}

/// The operations of `--producer` and `--consumer` on a resource type.
fn convenience_operations(flags: &EntryFlags, resource_type: ResourceType) -> Vec<AclOperation> {
    use AclOperation::*;
    let mut operations = Vec::new();
    match resource_type {
        ResourceType::Topic if flags.producer => operations.extend([Write, Describe, Create]),
        ResourceType::TransactionalId if flags.producer => operations.extend([Write, Describe]),
        ResourceType::Cluster if flags.idempotent => operations.push(IdempotentWrite),
        _ => {}
    }
    match resource_type {
        ResourceType::Topic if flags.consumer => operations.extend([Read, Describe]),
        ResourceType::Group if flags.consumer => operations.push(Read),
        _ => {}
    }
    operations.sort();
    operations.dedup();
    operations
}

/// The operations to grant on a resource, checked against what its type has; `All` when
/// none is given.
fn operations_for(flags: &EntryFlags, resource: &Resource) -> Result<Vec<AclOperation>, String> {
    if flags.producer || flags.consumer {
        let operations = convenience_operations(flags, resource.resource_type);
        if operations.is_empty() {
            return Err(format!(
                "--producer and --consumer give nothing on {} '{}'; leave it out or give \
                 --operation instead",
                resource.resource_type, resource.name
            ));
        }
        return Ok(operations);
    }
    let mut operations = flags.operations.clone();
    if operations.is_empty() {
        operations.push(AclOperation::All);
    }
    operations.sort();
    operations.dedup();
    let supported = supported_operations(resource.resource_type);
    if let Some(wrong) = operations
        .iter()
        .find(|operation| **operation != AclOperation::All && !supported.contains(operation))
    {
        let names: Vec<String> = supported.iter().copied().map(operation_name).collect();
        return Err(format!(
            "{} has no operation {}: it has {}, All",
            resource.resource_type,
            operation_name(*wrong),
            names.join(", ")
        ));
    }
    Ok(operations)
}

/// The resources of a create or delete: at least one, and the cluster too where
/// `--idempotent` asks for it.
fn resources_to_change(
    resource_flags: &ResourceFlags,
    entry_flags: &EntryFlags,
) -> Result<Vec<Resource>, String> {
    let mut resources = resources(resource_flags);
    if entry_flags.idempotent && !resource_flags.cluster {
        resources.push(Resource::new(ResourceType::Cluster, CLUSTER_RESOURCE_NAME));
    }
    if resources.is_empty() {
        return Err("name a resource: --topic, --group, --cluster or --transactional-id".into());
    }
    if entry_flags.producer && resource_flags.topics.is_empty() {
        return Err("--producer needs --topic".to_string());
    }
    if entry_flags.consumer
        && (resource_flags.topics.is_empty() || resource_flags.groups.is_empty())
    {
        return Err("--consumer needs --topic and --group".to_string());
    }
    Ok(resources)
}

/// The bindings `strom acl create` creates, sorted, without duplicates.
pub fn bindings_to_create(
    resource_flags: &ResourceFlags,
    entry_flags: &EntryFlags,
) -> Result<Vec<AclBinding>, String> {
    let pattern_type = resource_flags
        .resource_pattern_type
        .unwrap_or(PatternType::Literal);
    if !matches!(pattern_type, PatternType::Literal | PatternType::Prefixed) {
        return Err(format!(
            "an ACL is created with --resource-pattern-type literal or prefixed, not {}",
            pattern_type.name().to_ascii_lowercase()
        ));
    }
    let resources = resources_to_change(resource_flags, entry_flags)?;
    let grantees = grantees(entry_flags, Some(WILDCARD));
    if grantees.is_empty() {
        return Err("name whom the ACL is for: --allow-principal or --deny-principal".into());
    }
    let mut bindings = BTreeSet::new();
    for resource in &resources {
        for operation in operations_for(entry_flags, resource)? {
            bindings.extend(grantees.iter().map(|grantee| AclBinding {
                resource_type: resource.resource_type,
                resource_name: resource.name.clone(),
                pattern_type,
                principal: grantee.principal.clone(),
                host: grantee.host.clone().unwrap_or_else(|| WILDCARD.to_string()),
                operation,
                permission: grantee.permission,
            }));
        }
    }
    Ok(bindings.into_iter().collect())
}

/// The filters `strom acl delete` sends: one per resource, operation and principal-host
/// given, what is left out matching anything.
pub fn filters_to_delete(
    resource_flags: &ResourceFlags,
    entry_flags: &EntryFlags,
) -> Result<Vec<AclFilter>, String> {
    let pattern_type = resource_flags
        .resource_pattern_type
        .unwrap_or(PatternType::Literal);
    let resources = resources_to_change(resource_flags, entry_flags)?;
    let grantees = grantees(entry_flags, None);
    let any_grantee = [None];
    let grantees: Vec<Option<&Grantee>> = match grantees.is_empty() {
        true => any_grantee.to_vec(),
        false => grantees.iter().map(Some).collect(),
    };
    let mut filters = Vec::new();
    for resource in &resources {
        let operations = match entry_flags.producer || entry_flags.consumer {
            false if entry_flags.operations.is_empty() => vec![AclOperation::Any],
            _ => operations_for(entry_flags, resource)?,
        };
        for operation in operations {
            filters.extend(grantees.iter().map(|grantee| AclFilter {
                resource_type: resource.resource_type,
                resource_name: Some(resource.name.clone()),
                pattern_type,
                principal: grantee.map(|grantee| grantee.principal.clone()),
                host: grantee.and_then(|grantee| grantee.host.clone()),
                operation,
                permission: grantee.map_or(AclPermission::Any, |grantee| grantee.permission),
            }));
        }
    }
    Ok(filters)
}

/// The filters `strom acl list` describes with: every resource given (all when none) for
/// every principal given (all when none). The pattern type defaults to literal where a
/// resource is named, as in kafka-acls, and to any where none is.
pub fn filters_to_list(resource_flags: &ResourceFlags, principals: &[String]) -> Vec<AclFilter> {
    let named = resources(resource_flags);
    let resource_filters: Vec<AclFilter> = if named.is_empty() {
        vec![AclFilter {
            pattern_type: resource_flags
                .resource_pattern_type
                .unwrap_or(PatternType::Any),
            ..AclFilter::any()
        }]
    } else {
        let pattern_type = resource_flags
            .resource_pattern_type
            .unwrap_or(PatternType::Literal);
        named
            .into_iter()
            .map(|resource| AclFilter {
                resource_type: resource.resource_type,
                resource_name: Some(resource.name),
                pattern_type,
                ..AclFilter::any()
            })
            .collect()
    };
    let principals: Vec<Option<String>> = match principals {
        [] => vec![None],
        given => given.iter().cloned().map(Some).collect(),
    };
    resource_filters
        .iter()
        .flat_map(|filter| {
            principals.iter().map(|principal| AclFilter {
                principal: principal.clone(),
                ..filter.clone()
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "acl_bindings_tests.rs"]
mod tests;
