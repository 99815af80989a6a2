//! `strom acl` flags, parsed as clap parses them, and the bindings and filters they become.

use clap::Parser;

use super::*;

#[derive(Parser, Debug)]
struct Flags {
    #[command(flatten)]
    resources: ResourceFlags,
    #[command(flatten)]
    entries: EntryFlags,
}

fn flags(line: &str) -> Result<Flags, clap::Error> {
    Flags::try_parse_from(std::iter::once("acl").chain(line.split_whitespace()))
}

fn create(line: &str) -> Result<Vec<AclBinding>, String> {
    let flags = flags(line).map_err(|error| error.to_string())?;
    bindings_to_create(&flags.resources, &flags.entries)
}

fn delete(line: &str) -> Vec<AclFilter> {
    let flags = flags(line).unwrap();
    filters_to_delete(&flags.resources, &flags.entries).unwrap()
}

/// A binding as `resource_type:name:pattern principal@host operation permission`, to keep
/// the expectations readable.
fn short(binding: &AclBinding) -> String {
    format!(
        "{}:{}:{} {}@{} {} {}",
        binding.resource_type,
        binding.resource_name,
        binding.pattern_type,
        binding.principal,
        binding.host,
        binding.operation,
        binding.permission
    )
}

fn created(line: &str) -> Vec<String> {
    create(line)
        .unwrap_or_else(|error| panic!("{line}: {error}"))
        .iter()
        .map(short)
        .collect()
}

#[test]
fn every_principal_gets_every_operation_on_every_resource() {
    assert_eq!(
        created(
            "--topic t --group g --allow-principal User:a --allow-principal User:b \
             --operation read --operation Describe"
        ),
        [
            "TOPIC:t:LITERAL User:a@* READ ALLOW",
            "TOPIC:t:LITERAL User:a@* DESCRIBE ALLOW",
            "TOPIC:t:LITERAL User:b@* READ ALLOW",
            "TOPIC:t:LITERAL User:b@* DESCRIBE ALLOW",
            "GROUP:g:LITERAL User:a@* READ ALLOW",
            "GROUP:g:LITERAL User:a@* DESCRIBE ALLOW",
            "GROUP:g:LITERAL User:b@* READ ALLOW",
            "GROUP:g:LITERAL User:b@* DESCRIBE ALLOW",
        ]
    );
}

#[test]
fn operations_default_to_all_and_hosts_to_the_wildcard() {
    assert_eq!(
        created("--cluster --deny-principal User:* --deny-host 10.0.0.1 --deny-host 10.0.0.2"),
        [
            "CLUSTER:kafka-cluster:LITERAL User:*@10.0.0.1 ALL DENY",
            "CLUSTER:kafka-cluster:LITERAL User:*@10.0.0.2 ALL DENY",
        ]
    );
    assert_eq!(
        created(
            "--transactional-id tx- --resource-pattern-type PREFIXED --allow-principal User:a \
             --deny-principal User:b --operation write"
        ),
        [
            "TRANSACTIONAL_ID:tx-:PREFIXED User:a@* WRITE ALLOW",
            "TRANSACTIONAL_ID:tx-:PREFIXED User:b@* WRITE DENY",
        ]
    );
}

#[test]
fn operations_read_in_kafka_acls_and_wire_spelling() {
    for (text, operation) in [
        ("DescribeConfigs", AclOperation::DescribeConfigs),
        ("describe_configs", AclOperation::DescribeConfigs),
        ("CLUSTER-ACTION", AclOperation::ClusterAction),
        ("idempotentwrite", AclOperation::IdempotentWrite),
        ("All", AclOperation::All),
    ] {
        assert_eq!(parse_operation(text), Ok(operation), "{text}");
    }
    let error = parse_operation("Any").unwrap_err();
    assert!(
        error.starts_with("'Any' is not an operation: All, Read, Write"),
        "{error}"
    );
    assert!(error.contains("DescribeConfigs"), "{error}");
    assert_eq!(operation_name(AclOperation::ClusterAction), "ClusterAction");
}

#[test]
fn an_operation_the_resource_type_lacks_is_refused() {
    let error = create("--cluster --allow-principal User:a --operation Read").unwrap_err();
    assert_eq!(
        error,
        "CLUSTER has no operation Read: it has Create, ClusterAction, DescribeConfigs, \
         AlterConfigs, IdempotentWrite, Alter, Describe, All"
    );
    assert!(create("--group g --allow-principal User:a --operation Write").is_err());
    assert!(create("--transactional-id x --allow-principal User:a --operation Describe").is_ok());
}

#[test]
fn producer_and_consumer_stand_for_their_operations() {
    assert_eq!(
        created("--producer --topic t --transactional-id x --allow-principal User:p"),
        [
            "TOPIC:t:LITERAL User:p@* WRITE ALLOW",
            "TOPIC:t:LITERAL User:p@* CREATE ALLOW",
            "TOPIC:t:LITERAL User:p@* DESCRIBE ALLOW",
            "TRANSACTIONAL_ID:x:LITERAL User:p@* WRITE ALLOW",
            "TRANSACTIONAL_ID:x:LITERAL User:p@* DESCRIBE ALLOW",
        ]
    );
    assert_eq!(
        created("--producer --idempotent --topic t --allow-principal User:p")[3],
        "CLUSTER:kafka-cluster:LITERAL User:p@* IDEMPOTENT_WRITE ALLOW"
    );
    assert_eq!(
        created("--consumer --topic t --group g --allow-principal User:c"),
        [
            "TOPIC:t:LITERAL User:c@* READ ALLOW",
            "TOPIC:t:LITERAL User:c@* DESCRIBE ALLOW",
            "GROUP:g:LITERAL User:c@* READ ALLOW",
        ]
    );
    let both = created("--producer --consumer --topic t --group g --allow-principal User:pc");
    assert_eq!(both.len(), 5, "{both:?}");
}

#[test]
fn producer_and_consumer_need_their_resources() {
    let error = create("--producer --group g --allow-principal User:p").unwrap_err();
    assert_eq!(error, "--producer needs --topic");
    let error = create("--consumer --topic t --allow-principal User:c").unwrap_err();
    assert_eq!(error, "--consumer needs --topic and --group");
    let error = create("--producer --topic t --group g --allow-principal User:p").unwrap_err();
    assert!(
        error.starts_with("--producer and --consumer give nothing on GROUP 'g'"),
        "{error}"
    );
    assert!(flags("--producer --topic t --allow-principal User:p --operation Read").is_err());
    assert!(flags("--consumer --topic t --group g --deny-principal User:p").is_err());
    assert!(flags("--idempotent --topic t --allow-principal User:p").is_err());
}

#[test]
fn incomplete_or_malformed_flags_are_refused() {
    let error = create("--allow-principal User:a").unwrap_err();
    assert!(error.starts_with("name a resource"), "{error}");
    let error = create("--topic t").unwrap_err();
    assert!(error.starts_with("name whom the ACL is for"), "{error}");
    let error = create("--topic t --allow-principal alice").unwrap_err();
    assert!(
        error.contains("write TYPE:NAME, such as User:alice"),
        "{error}"
    );
    let error =
        create("--topic t --allow-principal User:a --resource-pattern-type match").unwrap_err();
    assert!(error.contains("literal or prefixed, not match"), "{error}");
    assert!(create("--topic t --allow-principal User:a --resource-pattern-type glob").is_err());
    assert!(
        flags("--topic t --allow-host 1.2.3.4").is_err(),
        "a host needs its principal"
    );
    assert!(flags("--topic t --operation Fly").is_err());
}

#[test]
fn a_delete_matches_what_it_leaves_out() {
    let filters = delete("--topic t");
    assert_eq!(
        filters,
        [AclFilter {
            resource_type: ResourceType::Topic,
            resource_name: Some("t".to_string()),
            pattern_type: PatternType::Literal,
            ..AclFilter::any()
        }]
    );
    let filters = delete("--topic t --allow-principal User:a --resource-pattern-type any");
    assert_eq!(filters.len(), 1);
    assert_eq!(filters[0].principal.as_deref(), Some("User:a"));
    assert_eq!(filters[0].host, None);
    assert_eq!(filters[0].operation, AclOperation::Any);
    assert_eq!(filters[0].permission, AclPermission::Allow);
    assert_eq!(filters[0].pattern_type, PatternType::Any);
    let filters = delete("--group g --operation Read --operation delete");
    let operations: Vec<AclOperation> = filters.iter().map(|filter| filter.operation).collect();
    assert_eq!(operations, [AclOperation::Read, AclOperation::Delete]);
    assert!(filters.iter().all(|filter| filter.principal.is_none()));
    let filters = delete("--consumer --topic t --group g --allow-principal User:c --allow-host h");
    assert_eq!(filters.len(), 3);
    assert!(filters
        .iter()
        .all(|filter| filter.host.as_deref() == Some("h")));
}

#[test]
fn a_delete_needs_a_resource_and_valid_operations() {
    let flags = flags("--allow-principal User:a").unwrap();
    assert!(filters_to_delete(&flags.resources, &flags.entries).is_err());
    let flags = self::flags("--cluster --operation Read").unwrap();
    assert!(filters_to_delete(&flags.resources, &flags.entries).is_err());
}

#[test]
fn a_list_covers_every_resource_and_principal_given() {
    let everything = filters_to_list(&ResourceFlags::default(), &[]);
    assert_eq!(everything, [AclFilter::any()]);
    let flags = flags("--topic a --topic b --resource-pattern-type match").unwrap();
    let principals = ["User:x".to_string(), "User:y".to_string()];
    let filters = filters_to_list(&flags.resources, &principals);
    let shown: Vec<(Option<&str>, Option<&str>, PatternType)> = filters
        .iter()
        .map(|filter| {
            (
                filter.resource_name.as_deref(),
                filter.principal.as_deref(),
                filter.pattern_type,
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (Some("a"), Some("User:x"), PatternType::Match),
            (Some("a"), Some("User:y"), PatternType::Match),
            (Some("b"), Some("User:x"), PatternType::Match),
            (Some("b"), Some("User:y"), PatternType::Match),
        ]
    );
    let flags = self::flags("--cluster").unwrap();
    let filters = filters_to_list(&flags.resources, &[]);
    assert_eq!(filters[0].resource_type, ResourceType::Cluster);
    assert_eq!(filters[0].pattern_type, PatternType::Literal);
}
