use super::*;

fn alice() -> Principal {
    Principal::User {
        id: "a1".into(),
        name: "alice".into(),
    }
}

fn bob() -> Principal {
    Principal::User {
        id: "b2".into(),
        name: "bob".into(),
    }
}

fn judge(
    policy: &Policy,
    who: &Principal,
    action: &str,
    resource: &str,
    context: &[(&str, &str)],
) -> Decision {
    let context = context
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    policy.evaluate(&Request {
        principal: who,
        action,
        resource,
        context: &context,
    })
}

const PUBLIC_READ: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [{
        "Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
        "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::photos/*"
    }]
}"#;

#[test]
fn an_allow_for_everyone_covers_anonymous_reads_of_objects_only() {
    let p = Policy::parse(PUBLIC_READ, "photos").unwrap();
    let obj = "arn:aws:s3:::photos/cat.jpg";
    assert_eq!(
        judge(&p, &Principal::Anonymous, "s3:GetObject", obj, &[]),
        Decision::Allow
    );
    assert_eq!(
        judge(&p, &Principal::Anonymous, "s3:PutObject", obj, &[]),
        Decision::Silent
    );
    assert_eq!(
        judge(
            &p,
            &Principal::Anonymous,
            "s3:ListBucket",
            "arn:aws:s3:::photos",
            &[]
        ),
        Decision::Silent
    );
    assert!(p.is_public());
}

#[test]
fn a_deny_beats_an_allow() {
    let p = Policy::parse(
        r#"{"Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::000000000000:user/bob"]}, "Action": "s3:*", "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::b/keep/*"}
        ]}"#,
        "b",
    )
    .unwrap();
    assert_eq!(
        judge(&p, &bob(), "s3:GetObject", "arn:aws:s3:::b/x", &[]),
        Decision::Allow
    );
    assert_eq!(
        judge(&p, &bob(), "s3:DeleteObject", "arn:aws:s3:::b/x", &[]),
        Decision::Allow
    );
    assert_eq!(
        judge(&p, &bob(), "s3:DeleteObject", "arn:aws:s3:::b/keep/y", &[]),
        Decision::Deny
    );
    assert_eq!(
        judge(&p, &alice(), "s3:GetObject", "arn:aws:s3:::b/x", &[]),
        Decision::Silent
    );
    assert_eq!(
        judge(&p, &alice(), "s3:DeleteObject", "arn:aws:s3:::b/keep/y", &[]),
        Decision::Deny
    );
    assert!(!p.is_public());
}

#[test]
fn conditions_narrow_statements() {
    let p = Policy::parse(
        r#"{"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
             "Condition": {"StringLike": {"s3:prefix": ["public/*", "shared/*"]}, "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*",
             "Condition": {"Bool": {"aws:SecureTransport": "false"}, "NotIpAddress": {"aws:SourceIp": ["127.0.0.1/32", "::1"]}}},
            {"Effect": "Allow", "Principal": {"CanonicalUser": "a1"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*",
             "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}, "NumericLessThanEquals": {"s3:max-keys": "10"}}}
        ]}"#,
        "b",
    )
    .unwrap();
    let list =
        |ctx: &[(&str, &str)]| judge(&p, &Principal::Anonymous, "s3:ListBucket", "arn:aws:s3:::b", ctx);
    assert_eq!(
        list(&[("s3:prefix", "public/x"), ("aws:sourceip", "10.1.2.3")]),
        Decision::Allow
    );
    assert_eq!(
        list(&[("s3:prefix", "private/x"), ("aws:sourceip", "10.1.2.3")]),
        Decision::Silent
    );
    assert_eq!(
        list(&[("s3:prefix", "public/x"), ("aws:sourceip", "192.168.0.1")]),
        Decision::Silent
    );
    assert_eq!(
        list(&[("aws:sourceip", "10.1.2.3")]),
        Decision::Silent,
        "no prefix: StringLike fails"
    );

    let get = |ctx: &[(&str, &str)]| judge(&p, &alice(), "s3:GetObject", "arn:aws:s3:::b/k", ctx);
    let plain_remote = [("aws:securetransport", "false"), ("aws:sourceip", "198.18.0.7")];
    assert_eq!(get(&plain_remote), Decision::Deny);
    let plain_local = [
        ("aws:securetransport", "false"),
        ("aws:sourceip", "127.0.0.1"),
        ("aws:currenttime", "2026-12-01T00:00:00Z"),
        ("s3:max-keys", "5"),
    ];
    assert_eq!(get(&plain_local), Decision::Allow);
    let late = [
        ("aws:securetransport", "true"),
        ("aws:currenttime", "2031-01-01T00:00:00Z"),
        ("s3:max-keys", "5"),
    ];
    assert_eq!(get(&late), Decision::Silent);
}

#[test]
fn negated_forms_and_absent_keys_behave_as_in_aws() {
    let p = Policy::parse(
        r#"{"Statement": [
            {"Effect": "Deny", "NotPrincipal": {"AWS": "alice"}, "NotAction": ["s3:Get*", "s3:List*"], "Resource": "arn:aws:s3:::b/*"},
            {"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject", "NotResource": "arn:aws:s3:::b/secret/*",
             "Condition": {"StringNotEquals": {"s3:x-amz-acl": "public-read"}, "StringEqualsIfExists": {"aws:Referer": "https://ok"}, "Null": {"aws:UserAgent": "false"}}}
        ]}"#,
        "b",
    )
    .unwrap();
    assert_eq!(
        judge(&p, &bob(), "s3:DeleteObject", "arn:aws:s3:::b/x", &[]),
        Decision::Deny
    );
    assert_eq!(
        judge(&p, &alice(), "s3:DeleteObject", "arn:aws:s3:::b/x", &[]),
        Decision::Silent
    );
    assert_eq!(
        judge(&p, &bob(), "s3:GetObject", "arn:aws:s3:::b/x", &[]),
        Decision::Silent
    );
    let put = |key: &str, ctx: &[(&str, &str)]| judge(&p, &alice(), "s3:PutObject", key, ctx);
    assert_eq!(
        put("arn:aws:s3:::b/x", &[("aws:useragent", "boto3")]),
        Decision::Allow,
        "no acl, no referer"
    );
    assert_eq!(
        put("arn:aws:s3:::b/x", &[]),
        Decision::Silent,
        "Null false needs the key"
    );
    assert_eq!(
        put(
            "arn:aws:s3:::b/x",
            &[("aws:useragent", "boto3"), ("s3:x-amz-acl", "public-read")]
        ),
        Decision::Silent
    );
    assert_eq!(
        put(
            "arn:aws:s3:::b/x",
            &[("aws:useragent", "b"), ("aws:referer", "https://evil")]
        ),
        Decision::Silent
    );
    assert_eq!(
        put("arn:aws:s3:::b/secret/x", &[("aws:useragent", "b")]),
        Decision::Silent
    );
}

#[test]
fn malformed_policies_are_refused_with_a_reason() {
    for (text, why) in [
        ("not json", "not JSON"),
        (r#"{"Statement": []}"#, "no statements"),
        (
            r#"{"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}]}"#,
            "Effect",
        ),
        (
            r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}]}"#,
            "Principal",
        ),
        (
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "ec2:Run", "Resource": "arn:aws:s3:::b"}]}"#,
            "action",
        ),
        (
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::other/*"}]}"#,
            "not in bucket",
        ),
        (
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "b"}]}"#,
            "not an S3 ARN",
        ),
        (
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b", "Condition": {"Sometimes": {"k": "v"}}}]}"#,
            "operator",
        ),
    ] {
        match Policy::parse(text, "b") {
            Err(Error::MalformedPolicy(m)) => assert!(m.contains(why), "{text}: {m}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    assert!(Policy::parse(&"x".repeat(MAX_POLICY_BYTES + 1), "b").is_err());
}

#[test]
fn wildcards_and_cidrs() {
    assert!(wildcard_match("s3:Get*", "s3:getobject", true));
    assert!(!wildcard_match("s3:Get*", "s3:getobject", false));
    assert!(wildcard_match("a*b?d", "aXXbcd", false));
    assert!(wildcard_match("*", "", false));
    assert!(!wildcard_match("a?", "a", false));
    assert!(wildcard_match(
        "arn:aws:s3:::b/*/x",
        "arn:aws:s3:::b/1/2/x",
        false
    ));
    assert!(in_cidr("10.9.8.7", "10.0.0.0/8"));
    assert!(!in_cidr("11.9.8.7", "10.0.0.0/8"));
    assert!(in_cidr("1.2.3.4", "0.0.0.0/0"));
    assert!(in_cidr("::ffff:10.0.0.1", "10.0.0.0/8"));
    assert!(in_cidr("2001:db8::1", "2001:db8::/32"));
    assert!(!in_cidr("2001:db9::1", "2001:db8::/32"));
    assert!(!in_cidr("nonsense", "10.0.0.0/8"));
}
