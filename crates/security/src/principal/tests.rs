//! Expected texts come from Java 17 (`X500Principal.getName()`) and from Kafka's own
//! `SslPrincipalMapper` (and its tests) run on the same inputs.

use proptest::prelude::*;
use x509_parser::pem::parse_x509_pem;

use super::{distinguished_name, subject_dn, PrincipalError, PrincipalMapper};

/// The DER of a PEM certificate under `tests/fixtures` (made once with `openssl req -x509`).
fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read(&path).expect("the fixture exists");
    let (_, pem) = parse_x509_pem(&text).expect("the fixture is PEM");
    pem.contents
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&text[index..index + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn a_plain_subject_prints_most_specific_first() {
    assert_eq!(
        subject_dn(&fixture("plain.pem")),
        Ok("CN=bob,OU=eng,O=Acme,L=San Francisco,ST=California,C=US".to_string())
    );
}

#[test]
fn a_subject_with_special_characters_prints_as_java_prints_it() {
    let expected = concat!(
        "1.2.840.113549.1.9.1=#160f7a6f65406578616d706c652e636f6d,",
        "CN=Zoë Smith+UID=zsmith,",
        r"OU=\ leading and trailing\ ,",
        r"OU=\#ops\ ,",
        r#"O=Acme\, Inc. \<R\+D\>\; \"Labs\" \\ x\=y,"#,
        "DC=example,DC=com",
    );
    assert_eq!(
        subject_dn(&fixture("escaped.pem")),
        Ok(expected.to_string())
    );
}

/// DER names (made with Python's `cryptography`, or by hand) and what Java 17 prints for them.
const JAVA_NAMES: &[(&str, &str, &str)] = &[
    (
        "BMPString, whose content Java decodes as UTF-8",
        "30153113301106035504031e0a0062006f0062002000e9",
        "CN=\\00b\\00o\\00b\\00 \\00\u{fffd}",
    ),
    (
        "T61String",
        "300e310c300a06035504031403626f62",
        "CN=bob",
    ),
    (
        "IA5String",
        "301531133011060a0992268993f22c6401191603636f6d",
        "DC=com",
    ),
    (
        "UniversalString, not a string to Java",
        "30173115301306035504031c0c000000620000006f00000062",
        "CN=#1c0c000000620000006f00000062",
    ),
    (
        "VisibleString, not a string to Java",
        "300e310c300a06035504031a03626f62",
        "CN=#1a03626f62",
    ),
    (
        "NUL",
        "300e310c300a06035504030c03610062",
        "CN=a\\00b",
    ),
    (
        "every escaped character",
        "301f311d301b06035504030c1423612c622b6322645c653c663e673b683d69236a",
        "CN=\\#a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h\\=i\\#j",
    ),
    (
        "spaces and carriage returns at the ends",
        "30133111300f06035504030c08202061202062200d",
        "CN=\\ \\ a  b\\ \\\r",
    ),
    (
        "other white space left alone",
        "3011310f300d06035504030c060d610a620920",
        "CN=\\\ra\nb\t\\ ",
    ),
    (
        "an escape at an end stops the run of spaces",
        "300e310c300a06035504030c03202c20",
        "CN=\\ \\,\\ ",
    ),
    (
        "non-ASCII and unescaped punctuation",
        "301c311a301806035504030c115a6fc3ab20e697a5e69cac205f402a2621",
        "CN=Zoë 日本 _@*&!",
    ),
    (
        "emailAddress",
        concat!(
            "303b310b3009060355040613025553311e301c06092a864886f70d010901160f626f62406578616d",
            "706c652e636f6d310c300a06035504030c03626f62",
        ),
        "CN=bob,1.2.840.113549.1.9.1=#160f626f62406578616d706c652e636f6d,C=US",
    ),
    (
        "a multi-valued RDN",
        concat!(
            "303b310d300b060355040a0c0441636d65312a300a06035504030c03626f62300a060355040b0c03",
            "656e673010060a0992268993f22c6401010c026231",
        ),
        "CN=bob+OU=eng+UID=b1,O=Acme",
    ),
    (
        "a multi-valued RDN out of DER order keeps its order",
        "3020311e3010060a0992268993f22c6401010c026231300a06035504030c03626f62",
        "UID=b1+CN=bob",
    ),
    (
        "every keyword and some types without one",
        concat!(
            "3081a631133011060a0992268993f22c6401191603636f6d31173015060a0992268993f22c640119",
            "16076578616d706c653112301006035504090c0931204d61696e205374310e300c06035504070c05",
            "5061726973310c300a06035504080c03494446310b3009060355040513023432310d300b06035504",
            "0c0c04626f7373310c300a060355042a0c03426f62310e300c06035504040c05536d697468310a30",
            "08060355042e130171",
        ),
        "2.5.4.46=#130171,2.5.4.4=#0c05536d697468,2.5.4.42=#0c03426f62,2.5.4.12=#0c04626f7373,2.5.4.5=#13023432,ST=IDF,L=Paris,STREET=1 Main St,DC=example,DC=com",
    ),
    (
        "an unknown type",
        "300d310b300906042a0304050c0178",
        "1.2.3.4.5=#0c0178",
    ),
    (
        "a keyword with a value that is no string",
        "300f310d300b06035504030404626f6221",
        "CN=#0404626f6221",
    ),
    (
        "empty and blank values",
        "301731093007060355040b0c00310a300806035504030c0120",
        "CN=\\ ,OU=",
    ),
    (
        "blank values",
        "300e310c300a06035504030c03202020",
        "CN=\\ \\ \\ ",
    ),
    (
        "no RDN at all",
        "3000",
        "",
    ),
    (
        "invalid UTF-8",
        "300e310c300a06035504030c03ff6162",
        "CN=\u{fffd}ab",
    ),
];

#[test]
fn names_print_as_java_prints_them() {
    for &(case, der, expected) in JAVA_NAMES {
        assert_eq!(
            distinguished_name(&hex(der)),
            Ok(expected.to_string()),
            "{case}"
        );
    }
}

#[test]
fn long_values_have_long_form_lengths_in_their_hex() {
    for (length, length_octets) in [(200, "81c8"), (300, "82012c")] {
        let value = "x".repeat(length);
        let attribute_value = format!("0c{length_octets}{}", "78".repeat(length));
        let der = der_name_with_one_attribute("06022a03", &attribute_value);
        let expected = format!("1.2.3=#{attribute_value}");
        assert_eq!(
            distinguished_name(&hex(&der)),
            Ok(expected),
            "{}",
            value.len()
        );
    }
}

/// A DER Name of one RDN of one attribute, from the hex of its OID and value.
fn der_name_with_one_attribute(oid: &str, value: &str) -> String {
    let wrap = |tag: &str, content: String| {
        let length = content.len() / 2;
        let length = match length {
            0..=0x7f => format!("{length:02x}"),
            0x80..=0xff => format!("81{length:02x}"),
            _ => format!("82{length:04x}"),
        };
        format!("{tag}{length}{content}")
    };
    let attribute = wrap("30", format!("{oid}{value}"));
    wrap("30", wrap("31", attribute))
}

#[test]
fn what_is_not_der_is_refused() {
    let certificate = fixture("plain.pem");
    for bytes in [
        &b""[..],
        b"\x30",
        b"hello",
        &certificate[..certificate.len() - 1],
    ] {
        assert!(matches!(
            subject_dn(bytes),
            Err(PrincipalError::Certificate(_))
        ));
    }
    let mut trailing = certificate.clone();
    trailing.push(0);
    assert!(matches!(
        subject_dn(&trailing),
        Err(PrincipalError::Certificate(_))
    ));
    assert!(matches!(
        distinguished_name(b"\x30\x02\x31"),
        Err(PrincipalError::Certificate(_))
    ));
}

#[test]
fn the_principal_is_user_and_the_mapped_subject() {
    let mapper = PrincipalMapper::parse("RULE:^CN=([^,]+),.*$/$1/L").expect("valid rules");
    assert_eq!(
        mapper.principal(&fixture("plain.pem")),
        Ok("User:bob".to_string())
    );
    let default = PrincipalMapper::default();
    let escaped = subject_dn(&fixture("escaped.pem")).expect("a DN");
    assert_eq!(
        default.principal(&fixture("escaped.pem")),
        Ok(format!("User:{escaped}"))
    );
}

mod rules {
    use super::*;

    fn mapper(rules: &str) -> PrincipalMapper {
        PrincipalMapper::parse(rules).expect("valid rules")
    }

    fn map(rules: &str, distinguished_name: &str) -> String {
        mapper(rules)
            .map(distinguished_name)
            .expect("a rule applies")
    }

    #[test]
    fn kafkas_valid_rules_parse() {
        for rules in [
            "DEFAULT",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
            "RULE:^cn=(.?),ou=(.?),dc=(.?),dc=(.?)$/$1@$2/U",
            "RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/",
            "RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/",
        ] {
            assert!(PrincipalMapper::parse(rules).is_ok(), "{rules}");
        }
    }

    #[test]
    fn kafkas_invalid_rules_do_not() {
        for rules in [
            "default",
            "DEFAUL",
            "DEFAULT/L",
            "DEFAULT/U",
            "RULE:CN=(.*?),OU=ServiceUsers.*/$1",
            "rule:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
        ] {
            let parsed = PrincipalMapper::parse(rules);
            assert!(
                matches!(parsed, Err(PrincipalError::InvalidRule(_))),
                "{rules}"
            );
        }
    }

    #[test]
    fn invalid_rules_are_reported_as_kafka_reports_them() {
        let error = PrincipalMapper::parse("DEFAULT/L").expect_err("invalid");
        assert_eq!(
            error.to_string(),
            "Invalid rule: `DEFAULT/L`, unmatched substring: `/L`"
        );
        let error = PrincipalMapper::parse("RULE:a/b/L/U").expect_err("invalid");
        assert_eq!(
            error.to_string(),
            "Invalid rule: `RULE:a/b/L/U`, unmatched substring: `/U`"
        );
    }

    #[test]
    fn the_first_rule_that_matches_the_whole_dn_names_it() {
        let rules = [
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
            "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
            "DEFAULT",
        ]
        .join(", ");
        let mapper = mapper(&rules);
        for (distinguished_name, name) in [
            ("CN=Duke,OU=ServiceUsers,O=Org,C=US", "duke"),
            ("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US", "duke@sme"),
            ("cn=duke,ou=sme,dc=mycp,dc=com", "DUKE@SME"),
            ("cN=duke,OU=JavaSoft,O=Sun Microsystems", "DUKE"),
            (
                "OU=JavaSoft,O=Sun Microsystems,C=US",
                "OU=JavaSoft,O=Sun Microsystems,C=US",
            ),
        ] {
            assert_eq!(mapper.map(distinguished_name), Ok(name.to_string()));
        }
    }

    #[test]
    fn an_escaped_comma_stays_in_the_name() {
        let rules = r"RULE:^CN=((\\, *|\w)+)(,.*|$)/$1/,DEFAULT";
        let name = map(rules, r"CN=Tkac\, Adam,OU=ITZ,DC=geodis,DC=cz");
        assert_eq!(name, r"Tkac\, Adam");
    }

    /// Kafka's `testRulesSplitting`: the rules as Kafka lists them after parsing.
    #[test]
    fn rules_split_as_kafka_splits_them() {
        for (expected, rules) in [
            ("[]", ""),
            ("[DEFAULT]", "DEFAULT"),
            ("[RULE:/]", "RULE://"),
            ("[RULE:/.*]", "RULE:/.*/"),
            ("[RULE:/.*/L]", "RULE:/.*/L"),
            ("[RULE:/, DEFAULT]", "RULE://,DEFAULT"),
            ("[RULE:/, DEFAULT]", "  RULE:// ,  DEFAULT  "),
            (
                "[RULE:   /     , DEFAULT]",
                "  RULE:   /     / ,  DEFAULT  ",
            ),
            (
                "[RULE:  /     /U, DEFAULT]",
                "  RULE:  /     /U   ,DEFAULT  ",
            ),
            (
                "[RULE:([A-Z]*)/$1/U, RULE:([a-z]+)/$1, DEFAULT]",
                "  RULE:([A-Z]*)/$1/U   ,RULE:([a-z]+)/$1/,   DEFAULT  ",
            ),
            ("[]", ",   , , ,      , , ,   "),
            ("[RULE:/, DEFAULT]", ",,RULE://,,,DEFAULT,,"),
            (
                "[RULE: /   , DEFAULT]",
                ",  , RULE: /   /    ,,,   DEFAULT, ,   ",
            ),
            (
                "[RULE:   /  /U, DEFAULT]",
                "     ,  , RULE:   /  /U    ,,  ,DEFAULT, ,",
            ),
            (r"[RULE:\/\\\(\)\n\t/\/\/]", r"RULE:\/\\\(\)\n\t/\/\//"),
            (
                r"[RULE:\**\/+/*/L, RULE:\/*\**/**]",
                r"RULE:\**\/+/*/L,RULE:\/*\**/**/",
            ),
            (
                r"[RULE:,RULE:,/,RULE:,\//U, RULE:,/RULE:,, RULE:,RULE:,/L,RULE:,/L, RULE:, DEFAULT, /DEFAULT, DEFAULT]",
                r"RULE:,RULE:,/,RULE:,\//U,RULE:,/RULE:,/,RULE:,RULE:,/L,RULE:,/L,RULE:, DEFAULT, /DEFAULT/,DEFAULT",
            ),
        ] {
            assert_eq!(mapper(rules).to_string(), expected, "{rules}");
        }
    }

    #[test]
    fn no_matching_rule_is_an_error_as_in_kafka() {
        let error = mapper("RULE:^CN=(.*)$/$1/")
            .map("O=x")
            .expect_err("no rule applies");
        assert_eq!(
            error.to_string(),
            "No rules apply to O=x, rules [RULE:^CN=(.*)$/$1]"
        );
        let no_rules = mapper("");
        assert_eq!(
            no_rules.map("CN=a").map_err(|error| error.to_string()),
            Err("No rules apply to CN=a, rules []".to_string())
        );
    }

    #[test]
    fn default_leaves_the_dn_as_it_is() {
        assert_eq!(PrincipalMapper::default().to_string(), "[DEFAULT]");
        let distinguished_name = r"CN=a\,b+UID=c,O=d";
        assert_eq!(
            PrincipalMapper::default().map(distinguished_name),
            Ok(distinguished_name.to_string())
        );
    }

    #[test]
    fn every_match_is_replaced_as_java_replaces_them() {
        // An empty match follows a match that ends where the text does.
        assert_eq!(map("RULE:.*/X/", "abc"), "XX");
        assert_eq!(map("RULE:a*/X/", "aaa"), "XX");
    }

    #[test]
    fn replacements_follow_java_and_kafka() {
        // $2 did not take part, $3 is beyond the groups (literal, as Kafka makes it), $15 is
        // group 1 then "5" (Java takes the longest group number there is), $0 is the match.
        assert_eq!(map("RULE:(a)(b)?/$2-$3-$15-$0/", "a"), "-$3-a5-a");
        assert_eq!(
            map("RULE:^CN=(?<user>[^,]+),.*$/${user}!/", "CN=zoë,O=x"),
            "zoë!"
        );
        assert_eq!(map("RULE:^CN=([^,]+),.*$/$1/U", "CN=zoë,O=x"), "ZOË");
        assert_eq!(
            map(r"RULE:^CN=([^,]+),.*$/\$1 \\ $1/", "CN=bob,O=x"),
            r"$1 \ bob"
        );
    }

    #[test]
    fn replacements_java_cannot_apply_fail_the_dns_they_match_as_in_kafka() {
        for (rule, reason) in [
            ("RULE:a/$1/", "No group 1"),
            (
                "RULE:(a)/$/",
                "Illegal group reference: group index is missing",
            ),
            ("RULE:(a)/$x/", "Illegal group reference"),
            ("RULE:(?<n>a)/${m}/", "No group with name {m}"),
            (
                "RULE:(?<n>a)/${n/",
                "named capturing group is missing trailing '}'",
            ),
            (
                "RULE:(?<n>a)/${}/",
                "named capturing group has 0 length name",
            ),
        ] {
            // Kafka takes the rule, and a rule before it can still name the DN.
            let mapper = mapper(&format!("RULE:b/c/, {rule}, DEFAULT"));
            assert_eq!(mapper.map("b"), Ok("c".to_string()), "{rule}");
            match mapper.map("a") {
                Err(PrincipalError::Replacement { reason: actual, .. }) => {
                    assert_eq!(actual, reason, "{rule}");
                }
                other => panic!("{rule}: {other:?}"),
            }
        }
    }

    #[test]
    fn patterns_the_regex_crate_cannot_run_are_refused() {
        for rules in [r"RULE:(a)\1/x/", "RULE:a(?=b)/x/", "RULE:(a/x/"] {
            let parsed = PrincipalMapper::parse(rules);
            assert!(
                matches!(parsed, Err(PrincipalError::InvalidRule(_))),
                "{rules}"
            );
        }
    }
}

proptest! {
    #[test]
    fn any_bytes_give_a_name_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = distinguished_name(&bytes);
        let _ = subject_dn(&bytes);
    }

    #[test]
    fn a_damaged_certificate_gives_a_name_or_an_error(
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut certificate = fixture("escaped.pem");
        let at = index.index(certificate.len());
        certificate[at] = byte;
        let _ = subject_dn(&certificate);
    }

    #[test]
    fn any_rules_text_parses_or_is_refused(rules in "[A-Z:/$\\\\,.*()LU ]{0,40}") {
        if let Ok(mapper) = PrincipalMapper::parse(&rules) {
            let _ = mapper.map("CN=bob,O=Acme");
        }
    }
}
