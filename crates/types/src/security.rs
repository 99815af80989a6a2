//! The vocabulary of Kafka's security model: ACL bindings (resource, pattern, principal, host,
//! operation, permission) and SCRAM credentials, with Kafka's wire codes.
//!
//! These are plain data, stored in the metadata log and read by the authorizer
//! (`strom-security`), the ACL and SCRAM handlers, the client and the CLI.

use serde::{Deserialize, Serialize};

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code,)* }
            }

            /// The value for a wire code; `None` for UNKNOWN (0) and codes Kafka does not define.
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }

            /// Kafka's name (`TOPIC`, `PREFIXED`, `DESCRIBE_CONFIGS`, ...).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// Parses Kafka's name, case-insensitively, with `-` or `_` between words.
            pub fn parse(text: &str) -> Option<$name> {
                let wanted = text.trim().replace('-', "_").to_ascii_uppercase();
                $name::ALL.iter().copied().find(|v| v.name().replace('-', "_") == wanted)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum! {
    /// What an ACL protects (Kafka's `ResourceType`).
    ResourceType {
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
}

wire_enum! {
    /// How an ACL's resource name matches (Kafka's `PatternType`). `Any` and `Match` appear
    /// only in filters.
    PatternType {
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
}

wire_enum! {
    /// What an ACL allows or denies (Kafka's `AclOperation`). `Any` appears only in filters.
    AclOperation {
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
}

wire_enum! {
    /// Allow or deny (Kafka's `AclPermissionType`). `Any` appears only in filters.
    AclPermission {
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
}

wire_enum! {
    /// A SCRAM mechanism (Kafka's `ScramMechanism`: 1 and 2 on the wire).
    ScramMechanism {
        Sha256 = 1, "SCRAM-SHA-256";
        Sha512 = 2, "SCRAM-SHA-512";
    }
}

/// The one name of the cluster resource.
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";

/// The wildcard resource name, principal and host.
pub const WILDCARD: &str = "*";

/// One ACL, as CreateAcls gives it and the metadata log stores it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    /// `Literal` or `Prefixed` in a stored binding.
    pub pattern_type: PatternType,
    /// `User:alice`, or `User:*` for every user.
    pub principal: String,
    /// An IP address, or `*` for every host.
    pub host: String,
    pub operation: AclOperation,
    /// `Allow` or `Deny` in a stored binding.
    pub permission: AclPermission,
}

/// A stored SCRAM credential (RFC 5802): never the password itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    /// H(HMAC(SaltedPassword, "Client Key"))
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key")
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_whatever_the_separator_and_case() {
        for operation in AclOperation::ALL {
            assert_eq!(AclOperation::parse(operation.name()), Some(*operation));
            assert_eq!(AclOperation::from_code(operation.code()), Some(*operation));
        }
        assert_eq!(
            AclOperation::parse("describe-configs"),
            Some(AclOperation::DescribeConfigs)
        );
        assert_eq!(
            ScramMechanism::parse("SCRAM-SHA-256"),
            Some(ScramMechanism::Sha256)
        );
        assert_eq!(
            ScramMechanism::parse("scram_sha_512"),
            Some(ScramMechanism::Sha512)
        );
        assert_eq!(
            ResourceType::parse("transactional-id"),
            Some(ResourceType::TransactionalId)
        );
        assert_eq!(PatternType::from_code(0), None);
        assert_eq!(ScramMechanism::parse("SCRAM-SHA-1"), None);
    }
}
