//! The authorizer's rules one by one, then a property test against a naive reading of them.

use std::net::IpAddr;

use proptest::prelude::*;
use strom_types::security::{
    AclBinding, AclOperation, AclPermission, PatternType, ResourceType, WILDCARD,
};

use super::{validate_binding, AclFilter, Authorizer, AuthorizerConfig};

use AclOperation::{
    All, Alter, AlterConfigs, ClusterAction, Create, Delete, Describe, DescribeConfigs,
    IdempotentWrite, Read, Write,
};
use AclPermission::{Allow, Deny};
use PatternType::{Literal, Prefixed};
use ResourceType::{Group, Topic};

const ALICE: &str = "User:alice";
const BOB: &str = "User:bob";

fn address(text: &str) -> IpAddr {
    text.parse().expect("a test address")
}

fn client() -> IpAddr {
    address("10.0.0.1")
}

fn binding(
    pattern_type: PatternType,
    resource_name: &str,
    principal: &str,
    operation: AclOperation,
    permission: AclPermission,
) -> AclBinding {
    AclBinding {
        resource_type: Topic,
        resource_name: resource_name.to_string(),
        pattern_type,
        principal: principal.to_string(),
        host: WILDCARD.to_string(),
        operation,
        permission,
    }
}

fn allow(name: &str, operation: AclOperation) -> AclBinding {
    binding(Literal, name, ALICE, operation, Allow)
}

fn deny(name: &str, operation: AclOperation) -> AclBinding {
    binding(Literal, name, ALICE, operation, Deny)
}

fn build(acls: &[AclBinding]) -> Authorizer {
    Authorizer::new(&AuthorizerConfig::default(), acls)
}

fn build_allowing_if_no_acl(acls: &[AclBinding]) -> Authorizer {
    let config = AuthorizerConfig {
        super_users: Vec::new(),
        allow_everyone_if_no_acl_found: true,
    };
    Authorizer::new(&config, acls)
}

/// Alice from the usual client on topic `orders`.
fn alice_may(authorizer: &Authorizer, operation: AclOperation) -> bool {
    authorizer.authorize(ALICE, client(), operation, Topic, "orders")
}

#[test]
fn super_users_parse_as_kafka_does() {
    let parsed = AuthorizerConfig::parse_super_users(";  User:bob  ;  User:alice ;User:bob");
    assert_eq!(
        parsed,
        Ok(vec!["User:bob".to_string(), "User:alice".to_string()])
    );
    assert_eq!(AuthorizerConfig::parse_super_users(" "), Ok(Vec::new()));
    assert_eq!(
        AuthorizerConfig::parse_super_users("bob;:alice"),
        Err("expected a string in format principalType:principalName but got bob".to_string())
    );
    assert_eq!(
        AuthorizerConfig::parse_super_users(":alice"),
        Ok(vec![":alice".to_string()])
    );
}

#[test]
fn super_users_may_do_everything_even_when_denied() {
    let config = AuthorizerConfig {
        super_users: vec![ALICE.to_string()],
        allow_everyone_if_no_acl_found: false,
    };
    let acls = [deny("orders", All)];
    let authorizer = Authorizer::new(&config, &acls);
    assert!(authorizer.is_super_user(ALICE));
    for &operation in AclOperation::ALL {
        assert!(alice_may(&authorizer, operation));
    }
    assert!(!authorizer.authorize(BOB, client(), Read, Topic, "orders"));
}

#[test]
fn deny_beats_allow() {
    let authorizer = build(&[allow("orders", Read), deny("orders", Read)]);
    assert!(!alice_may(&authorizer, Read));
    let deny_everyone = binding(Literal, WILDCARD, "User:*", Read, Deny);
    let authorizer = build(&[allow("orders", All), deny_everyone]);
    assert!(!alice_may(&authorizer, Read));
}

#[test]
fn allow_of_read_write_delete_alter_implies_describe() {
    for operation in [Read, Write, Delete, Alter, Describe] {
        let authorizer = build(&[allow("orders", operation)]);
        assert!(alice_may(&authorizer, Describe), "{operation}");
        assert!(!alice_may(&authorizer, DescribeConfigs), "{operation}");
    }
    for operation in [
        Create,
        ClusterAction,
        AlterConfigs,
        DescribeConfigs,
        IdempotentWrite,
    ] {
        let authorizer = build(&[allow("orders", operation)]);
        assert!(!alice_may(&authorizer, Describe), "{operation}");
    }
}

#[test]
fn allow_of_alter_configs_implies_describe_configs() {
    let authorizer = build(&[allow("orders", AlterConfigs)]);
    assert!(alice_may(&authorizer, DescribeConfigs));
    assert!(alice_may(&authorizer, AlterConfigs));
    let authorizer = build(&[allow("orders", DescribeConfigs)]);
    assert!(!alice_may(&authorizer, AlterConfigs));
}

#[test]
fn implied_operations_are_not_the_operations_themselves() {
    let authorizer = build(&[allow("orders", Read)]);
    assert!(alice_may(&authorizer, Read));
    assert!(!alice_may(&authorizer, Write));
    assert!(!alice_may(&authorizer, Alter));
}

#[test]
fn all_matches_every_operation_to_allow_and_to_deny() {
    let allowing = build(&[allow("orders", All)]);
    let denying = build(&[allow("orders", Read), deny("orders", All)]);
    for &operation in AclOperation::ALL {
        assert!(alice_may(&allowing, operation), "{operation}");
        assert!(!alice_may(&denying, operation), "{operation}");
    }
}

#[test]
fn deny_implies_nothing() {
    let authorizer = build(&[allow("orders", All), deny("orders", Read)]);
    assert!(!alice_may(&authorizer, Read));
    assert!(alice_may(&authorizer, Describe));
    let authorizer = build(&[deny("orders", AlterConfigs)]);
    assert!(!alice_may(&authorizer, DescribeConfigs));
    let authorizer = build_allowing_if_no_acl(&[
        allow("orders", DescribeConfigs),
        deny("orders", AlterConfigs),
    ]);
    assert!(alice_may(&authorizer, DescribeConfigs));
}

#[test]
fn wildcard_principal_matches_every_principal() {
    let authorizer = build(&[binding(Literal, "orders", "User:*", Read, Allow)]);
    for principal in [ALICE, BOB, "User:*"] {
        assert!(authorizer.authorize(principal, client(), Read, Topic, "orders"));
    }
    // As in Kafka, whose matching principals are the session's and `User:*` whatever its type.
    assert!(authorizer.authorize("Group:readers", client(), Read, Topic, "orders"));
}

#[test]
fn other_principals_do_not_match() {
    let authorizer = build(&[allow("orders", Read)]);
    assert!(!authorizer.authorize(BOB, client(), Read, Topic, "orders"));
    assert!(!authorizer.authorize("User:alice2", client(), Read, Topic, "orders"));
    assert!(!authorizer.authorize("Group:alice", client(), Read, Topic, "orders"));
}

fn from_host(host: &str) -> AclBinding {
    AclBinding {
        host: host.to_string(),
        ..allow("orders", Read)
    }
}

#[test]
fn host_wildcard_matches_every_host_and_an_address_only_itself() {
    let everywhere = build(&[from_host("*")]);
    let one_host = build(&[from_host("10.0.0.1")]);
    for host in ["10.0.0.1", "192.168.1.1", "::1"] {
        assert!(everywhere.authorize(ALICE, address(host), Read, Topic, "orders"));
    }
    assert!(one_host.authorize(ALICE, address("10.0.0.1"), Read, Topic, "orders"));
    assert!(!one_host.authorize(ALICE, address("10.0.0.2"), Read, Topic, "orders"));
    let by_name = build(&[from_host("localhost")]);
    assert!(!by_name.authorize(ALICE, address("127.0.0.1"), Read, Topic, "orders"));
}

#[test]
fn hosts_compare_as_addresses() {
    // Java prints ::1 as 0:0:0:0:0:0:0:1; either spelling names the same host.
    for spelling in ["0:0:0:0:0:0:0:1", "::1"] {
        let authorizer = build(&[from_host(spelling)]);
        assert!(authorizer.authorize(ALICE, address("::1"), Read, Topic, "orders"));
    }
    // A client on a dual-stack socket arrives IPv4-mapped; Java sees its IPv4 address.
    let authorizer = build(&[from_host("10.0.0.1")]);
    let mapped = address("::ffff:10.0.0.1");
    assert!(authorizer.authorize(ALICE, mapped, Read, Topic, "orders"));
}

#[test]
fn a_literal_pattern_matches_its_name_only() {
    let authorizer = build(&[allow("orders", Read)]);
    assert!(authorizer.authorize(ALICE, client(), Read, Topic, "orders"));
    for name in ["order", "orders2", "Orders", "*", ""] {
        assert!(
            !authorizer.authorize(ALICE, client(), Read, Topic, name),
            "{name}"
        );
    }
    assert!(!authorizer.authorize(ALICE, client(), Read, Group, "orders"));
}

#[test]
fn a_literal_wildcard_matches_every_name_of_its_type() {
    let authorizer = build(&[allow(WILDCARD, Read)]);
    for name in ["orders", "payments", "*", "x"] {
        assert!(
            authorizer.authorize(ALICE, client(), Read, Topic, name),
            "{name}"
        );
    }
    assert!(!authorizer.authorize(ALICE, client(), Read, Group, "orders"));
}

#[test]
fn a_prefixed_pattern_matches_names_that_start_with_it() {
    let authorizer = build(&[binding(Prefixed, "ord", ALICE, Read, Allow)]);
    for name in ["ord", "orders", "ordinal"] {
        assert!(
            authorizer.authorize(ALICE, client(), Read, Topic, name),
            "{name}"
        );
    }
    for name in ["or", "word", "Orders", "*"] {
        assert!(
            !authorizer.authorize(ALICE, client(), Read, Topic, name),
            "{name}"
        );
    }
    // A prefixed `*` is a prefix like any other.
    let star = build(&[binding(Prefixed, WILDCARD, ALICE, Read, Allow)]);
    assert!(star.authorize(ALICE, client(), Read, Topic, "*orders"));
    assert!(!star.authorize(ALICE, client(), Read, Topic, "orders"));
}

#[test]
fn prefixes_split_only_at_character_boundaries() {
    let authorizer = build(&[binding(Prefixed, "é", ALICE, Read, Allow)]);
    assert!(authorizer.authorize(ALICE, client(), Read, Topic, "été"));
    assert!(!authorizer.authorize(ALICE, client(), Read, Topic, "e"));
    let one_byte = build(&[binding(Prefixed, "a", ALICE, Read, Allow)]);
    assert!(!one_byte.authorize(ALICE, client(), Read, Topic, "é"));
}

#[test]
fn denies_from_every_kind_of_pattern_apply() {
    let prefixed_deny = binding(Prefixed, "or", ALICE, Read, Deny);
    let authorizer = build(&[allow("orders", Read), prefixed_deny]);
    assert!(!alice_may(&authorizer, Read));
    let authorizer = build(&[allow(WILDCARD, Read), deny("orders", Read)]);
    assert!(!alice_may(&authorizer, Read));
    assert!(authorizer.authorize(ALICE, client(), Read, Topic, "payments"));
}

#[test]
fn a_resource_without_acls_gets_the_default() {
    let acls = [allow("payments", Read)];
    assert!(!alice_may(&build(&acls), Read));
    assert!(alice_may(&build_allowing_if_no_acl(&acls), Read));
    assert!(alice_may(&build_allowing_if_no_acl(&[]), Read));
    assert!(!alice_may(&build(&[]), Read));
}

#[test]
fn a_resource_with_acls_for_others_is_denied_even_when_the_default_allows() {
    let for_bob = binding(Literal, "orders", BOB, Read, Allow);
    let authorizer = build_allowing_if_no_acl(&[for_bob]);
    assert!(!alice_may(&authorizer, Read));
    assert!(!alice_may(&authorizer, Write));
    let for_alice_elsewhere = AclBinding {
        host: "10.9.9.9".to_string(),
        ..allow("orders", Write)
    };
    let authorizer = build_allowing_if_no_acl(&[for_alice_elsewhere]);
    assert!(!alice_may(&authorizer, Write));
}

#[test]
fn invalid_bindings_are_left_out() {
    let no_colon = binding(Literal, "orders", "alice", Read, Deny);
    let empty_name = binding(Prefixed, "", ALICE, Read, Deny);
    let authorizer = build_allowing_if_no_acl(&[no_colon, empty_name]);
    assert_eq!(authorizer.acl_count(), 0);
    assert!(alice_may(&authorizer, Read));
}

mod authorize_any {
    use super::*;

    fn alice_may_write_some_topic(authorizer: &Authorizer) -> bool {
        authorizer.authorize_any(ALICE, client(), Write, Topic)
    }

    #[test]
    fn super_users_may() {
        let config = AuthorizerConfig {
            super_users: vec![ALICE.to_string()],
            allow_everyone_if_no_acl_found: false,
        };
        let acls = [deny(WILDCARD, All)];
        assert!(alice_may_write_some_topic(&Authorizer::new(&config, &acls)));
    }

    #[test]
    fn without_acls_of_the_type_the_default_answers() {
        let group_acls = [AclBinding {
            resource_type: Group,
            ..allow("readers", Write)
        }];
        assert!(!alice_may_write_some_topic(&build(&group_acls)));
        assert!(alice_may_write_some_topic(&build_allowing_if_no_acl(
            &group_acls
        )));
    }

    #[test]
    fn a_wildcard_deny_denies_whatever_else_allows() {
        let acls = [allow(WILDCARD, Write), deny(WILDCARD, Write)];
        assert!(!alice_may_write_some_topic(&build(&acls)));
        let acls = [allow("orders", All), deny(WILDCARD, All)];
        assert!(!alice_may_write_some_topic(&build(&acls)));
    }

    #[test]
    fn an_allow_not_shadowed_allows() {
        for acl in [
            allow("orders", Write),
            allow(WILDCARD, Write),
            binding(Prefixed, "ord", ALICE, All, Allow),
            binding(Literal, "orders", "User:*", Write, Allow),
        ] {
            assert!(
                alice_may_write_some_topic(&build(std::slice::from_ref(&acl))),
                "{acl:?}"
            );
        }
        // A deny of another name or a longer prefix leaves the allow some resources.
        let acls = [
            binding(Prefixed, "ord", ALICE, Write, Allow),
            binding(Prefixed, "orders", ALICE, Write, Deny),
            deny("ord", Write),
        ];
        assert!(alice_may_write_some_topic(&build(&acls)));
    }

    #[test]
    fn shadowed_allows_do_not() {
        let literal_by_literal = [allow("orders", Write), deny("orders", Write)];
        let literal_by_prefix = [
            allow("orders", Write),
            binding(Prefixed, "or", ALICE, Write, Deny),
        ];
        let prefix_by_prefix = [
            binding(Prefixed, "orders", ALICE, Write, Allow),
            binding(Prefixed, "orders", ALICE, All, Deny),
        ];
        for acls in [literal_by_literal, literal_by_prefix, prefix_by_prefix] {
            assert!(!alice_may_write_some_topic(&build(&acls)), "{acls:?}");
        }
    }

    #[test]
    fn only_the_operation_itself_or_all_counts() {
        // Kafka checks a resource named "hardcode" first, where READ implies DESCRIBE ...
        let acls = [allow(WILDCARD, Read)];
        assert!(build(&acls).authorize_any(ALICE, client(), Describe, Topic));
        // ... but the scan that follows matches operations exactly.
        let acls = [allow("orders", Read)];
        assert!(!build(&acls).authorize_any(ALICE, client(), Describe, Topic));
        assert!(!alice_may_write_some_topic(&build(&acls)));
    }

    #[test]
    fn acls_for_other_principals_or_hosts_do_not_count() {
        let for_bob = binding(Literal, "orders", BOB, Write, Allow);
        let elsewhere = AclBinding {
            host: "10.9.9.9".to_string(),
            ..allow("orders", Write)
        };
        assert!(!alice_may_write_some_topic(&build(&[for_bob, elsewhere])));
    }

    #[test]
    fn the_hard_coded_name_gets_the_default_as_in_kafka() {
        // No ACL matches a topic named "hardcode", so the no-ACL default answers yes.
        let acls = [deny("orders", Write)];
        assert!(alice_may_write_some_topic(&build_allowing_if_no_acl(&acls)));
        assert!(!alice_may_write_some_topic(&build(&acls)));
    }
}

#[test]
fn validate_binding_gives_kafkas_messages() {
    let good = allow("orders", Read);
    assert_eq!(validate_binding(&good), Ok(()));
    let cases = [
        (
            AclBinding {
                resource_type: ResourceType::Any,
                ..good.clone()
            },
            "Invalid resourceType ANY",
        ),
        (
            AclBinding {
                pattern_type: PatternType::Match,
                ..good.clone()
            },
            "Invalid patternType MATCH",
        ),
        (
            AclBinding {
                pattern_type: PatternType::Any,
                ..good.clone()
            },
            "Invalid patternType ANY",
        ),
        (
            AclBinding {
                operation: AclOperation::Any,
                ..good.clone()
            },
            "Invalid operation ANY",
        ),
        (
            AclBinding {
                permission: AclPermission::Any,
                ..good.clone()
            },
            "Invalid permissionType ANY",
        ),
        (
            AclBinding {
                resource_type: ResourceType::Cluster,
                ..good.clone()
            },
            "The only valid name for the CLUSTER resource is kafka-cluster",
        ),
        (
            AclBinding {
                resource_name: String::new(),
                ..good.clone()
            },
            "Invalid empty resource name",
        ),
        (
            AclBinding {
                principal: "alice".to_string(),
                ..good.clone()
            },
            "expected a string in format principalType:principalName but got alice",
        ),
    ];
    for (binding, message) in cases {
        assert_eq!(
            validate_binding(&binding),
            Err(message.to_string()),
            "{binding:?}"
        );
    }
    let cluster = AclBinding {
        resource_type: ResourceType::Cluster,
        resource_name: "kafka-cluster".to_string(),
        ..good
    };
    assert_eq!(validate_binding(&cluster), Ok(()));
}

mod filter {
    use super::*;

    fn bindings() -> Vec<AclBinding> {
        vec![
            allow("orders", Read),
            allow(WILDCARD, Write),
            binding(Prefixed, "ord", BOB, Read, Deny),
            binding(Prefixed, "pay", BOB, Read, Deny),
            AclBinding {
                resource_type: Group,
                host: "10.0.0.1".to_string(),
                ..allow("orders", Read)
            },
        ]
    }

    fn matching(filter: &AclFilter) -> Vec<usize> {
        let bindings = bindings();
        (0..bindings.len())
            .filter(|&index| filter.matches(&bindings[index]))
            .collect()
    }

    fn for_name(pattern_type: PatternType, name: &str) -> AclFilter {
        AclFilter {
            resource_type: Topic,
            resource_name: Some(name.to_string()),
            pattern_type,
            ..AclFilter::any()
        }
    }

    #[test]
    fn any_matches_everything_and_exact_one_binding() {
        assert_eq!(matching(&AclFilter::any()), vec![0, 1, 2, 3, 4]);
        for (index, binding) in bindings().iter().enumerate() {
            assert_eq!(matching(&AclFilter::exact(binding)), vec![index]);
        }
    }

    #[test]
    fn match_finds_the_patterns_that_apply_to_a_name() {
        assert_eq!(
            matching(&for_name(PatternType::Match, "orders")),
            vec![0, 1, 2]
        );
        assert_eq!(
            matching(&for_name(PatternType::Match, "payments")),
            vec![1, 3]
        );
        assert_eq!(matching(&for_name(PatternType::Match, "*")), vec![1]);
    }

    #[test]
    fn any_and_specific_pattern_types_compare_names_exactly() {
        assert_eq!(matching(&for_name(PatternType::Any, "orders")), vec![0]);
        assert_eq!(matching(&for_name(PatternType::Any, "*")), vec![1]);
        assert_eq!(matching(&for_name(Literal, "ord")), Vec::<usize>::new());
        assert_eq!(matching(&for_name(Prefixed, "ord")), vec![2]);
        let literal_only = AclFilter {
            pattern_type: Literal,
            ..AclFilter::any()
        };
        assert_eq!(matching(&literal_only), vec![0, 1, 4]);
    }

    #[test]
    fn entry_fields_compare_exactly() {
        let bob = AclFilter {
            principal: Some(BOB.to_string()),
            ..AclFilter::any()
        };
        assert_eq!(matching(&bob), vec![2, 3]);
        let host = AclFilter {
            host: Some("10.0.0.1".to_string()),
            ..AclFilter::any()
        };
        assert_eq!(matching(&host), vec![4]);
        let deny_read = AclFilter {
            operation: Read,
            permission: Deny,
            ..AclFilter::any()
        };
        assert_eq!(matching(&deny_read), vec![2, 3]);
        let write = AclFilter {
            operation: Write,
            ..AclFilter::any()
        };
        assert_eq!(matching(&write), vec![1]);
    }

    #[test]
    fn indefinite_fields_are_named_as_kafka_names_them() {
        let exact = AclFilter::exact(&allow("orders", Read));
        assert_eq!(exact.find_indefinite_field(), None);
        assert!(exact.matches_at_most_one());
        let cases = [
            (
                AclFilter {
                    resource_type: ResourceType::Any,
                    ..exact.clone()
                },
                "Resource type is ANY.",
            ),
            (
                AclFilter {
                    resource_name: None,
                    ..exact.clone()
                },
                "Resource name is NULL.",
            ),
            (
                AclFilter {
                    pattern_type: PatternType::Match,
                    ..exact.clone()
                },
                "Resource pattern type is MATCH.",
            ),
            (
                AclFilter {
                    principal: None,
                    ..exact.clone()
                },
                "Principal is NULL",
            ),
            (
                AclFilter {
                    host: None,
                    ..exact.clone()
                },
                "Host is NULL",
            ),
            (
                AclFilter {
                    operation: AclOperation::Any,
                    ..exact.clone()
                },
                "Operation is ANY",
            ),
            (
                AclFilter {
                    permission: AclPermission::Any,
                    ..exact.clone()
                },
                "Permission type is ANY",
            ),
        ];
        for (filter, message) in cases {
            assert_eq!(filter.find_indefinite_field(), Some(message));
            assert!(!filter.matches_at_most_one());
        }
        // Kafka does not count a pattern type of ANY as indefinite.
        let any_pattern = AclFilter {
            pattern_type: PatternType::Any,
            ..exact
        };
        assert_eq!(any_pattern.find_indefinite_field(), None);
    }

    #[test]
    fn wire_codes_that_kafka_does_not_define_are_refused() {
        let build = |resource_type, pattern_type, operation, permission| {
            AclFilter::from_codes(
                resource_type,
                None,
                pattern_type,
                None,
                None,
                operation,
                permission,
            )
        };
        assert_eq!(build(1, 1, 1, 1), Ok(AclFilter::any()));
        assert_eq!(build(0, 1, 1, 1), Err("Unknown patternFilter.".to_string()));
        assert_eq!(build(2, 5, 1, 1), Err("Unknown patternFilter.".to_string()));
        assert_eq!(build(2, 3, 0, 1), Err("Unknown entryFilter.".to_string()));
        assert_eq!(build(2, 3, 3, 9), Err("Unknown entryFilter.".to_string()));
    }
}

/// The rules as the task states them, read as plainly as possible: a reference for the index.
mod reference {
    use super::*;

    fn pattern_matches(acl: &AclBinding, resource_type: ResourceType, name: &str) -> bool {
        acl.resource_type == resource_type
            && match acl.pattern_type {
                Literal => acl.resource_name == name || acl.resource_name == WILDCARD,
                _ => name.starts_with(acl.resource_name.as_str()),
            }
    }

    fn implied_by(operation: AclOperation) -> Vec<AclOperation> {
        match operation {
            All => AclOperation::ALL.to_vec(),
            Read | Write | Delete | Alter => vec![operation, Describe],
            AlterConfigs => vec![operation, DescribeConfigs],
            _ => vec![operation],
        }
    }

    pub fn authorize(
        config: &AuthorizerConfig,
        acls: &[AclBinding],
        principal: &str,
        host: IpAddr,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if config.super_users.iter().any(|user| user == principal) {
            return true;
        }
        let on_resource: Vec<&AclBinding> = acls
            .iter()
            .filter(|acl| pattern_matches(acl, resource_type, name))
            .collect();
        if on_resource.is_empty() {
            return config.allow_everyone_if_no_acl_found;
        }
        let applies = |acl: &&&AclBinding| {
            (acl.principal == principal || acl.principal == "User:*")
                && (acl.host == "*" || acl.host == host.to_string())
        };
        let denied = on_resource.iter().filter(applies).any(|acl| {
            acl.permission == Deny && (acl.operation == All || acl.operation == operation)
        });
        let allowed = on_resource
            .iter()
            .filter(applies)
            .any(|acl| acl.permission == Allow && implied_by(acl.operation).contains(&operation));
        allowed && !denied
    }
}

/// Few operations, so that allows and denies often meet on one request; these cover ALL and
/// both implications.
fn operation_strategy() -> impl Strategy<Value = AclOperation> {
    prop::sample::select(vec![
        All,
        Read,
        Alter,
        Describe,
        AlterConfigs,
        DescribeConfigs,
    ])
}

fn acl_strategy() -> impl Strategy<Value = AclBinding> {
    (
        prop::sample::select(vec![Topic, Group]),
        prop::sample::select(vec!["a", "ab", "abc", "b", "*", "é"]),
        prop::sample::select(vec![Literal, Prefixed]),
        prop::sample::select(vec![ALICE, BOB, "User:*"]),
        prop::sample::select(vec!["*", "10.0.0.1", "10.0.0.2"]),
        operation_strategy(),
        prop::sample::select(vec![Allow, Deny]),
    )
        .prop_map(
            |(resource_type, name, pattern_type, principal, host, operation, permission)| {
                AclBinding {
                    resource_type,
                    resource_name: name.to_string(),
                    pattern_type,
                    principal: principal.to_string(),
                    host: host.to_string(),
                    operation,
                    permission,
                }
            },
        )
}

fn config_strategy() -> impl Strategy<Value = AuthorizerConfig> {
    (any::<bool>(), any::<bool>()).prop_map(|(carol_is_super, allow_everyone_if_no_acl_found)| {
        AuthorizerConfig {
            super_users: if carol_is_super {
                vec!["User:carol".to_string()]
            } else {
                Vec::new()
            },
            allow_everyone_if_no_acl_found,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn authorize_agrees_with_the_reference(
        config in config_strategy(),
        acls in prop::collection::vec(acl_strategy(), 0..24),
        principal in prop::sample::select(vec![ALICE, BOB, "User:carol"]),
        host in prop::sample::select(vec!["10.0.0.1", "10.0.0.3"]),
        operation in operation_strategy(),
        resource_type in prop::sample::select(vec![Topic, Group]),
        name in prop::sample::select(vec!["a", "ab", "abc", "abd", "b", "*", "c", "é", "éa"]),
    ) {
        let host = address(host);
        let authorizer = Authorizer::new(&config, &acls);
        let expected = reference::authorize(
            &config, &acls, principal, host, operation, resource_type, name,
        );
        let actual = authorizer.authorize(principal, host, operation, resource_type, name);
        prop_assert_eq!(actual, expected);
    }
}
