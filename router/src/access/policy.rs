//! Bucket policies: the JSON documents of S3 (`Version`, `Statement` with
//! `Effect`, `Principal`/`NotPrincipal`, `Action`/`NotAction`,
//! `Resource`/`NotResource`, `Condition`), parsed once when put and
//! evaluated on every request to the bucket: an explicit Deny wins, then an
//! Allow, else the policy says nothing.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::Principal;
use crate::error::{Error, Result};

/// The longest policy document accepted, as S3 limits it.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// What a policy says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Deny,
    Allow,
    /// No statement applies.
    Silent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// A list of patterns a statement matches, or (the `Not` form) does not.
#[derive(Debug, Clone)]
struct Patterns {
    values: Vec<String>,
    negated: bool,
}

#[derive(Debug, Clone)]
enum Principals {
    /// `"*"` or `{"AWS": "*"}`: everyone, signed or not.
    Anyone,
    /// Users by canonical id or name (from ARNs, ids and names).
    Users(Vec<String>),
}

#[derive(Debug, Clone)]
struct Condition {
    operator: Operator,
    /// `...IfExists`: true when the key is absent.
    if_exists: bool,
    key: String,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    IpAddress,
    NotIpAddress,
    Null,
}

const OPERATORS: [(&str, Operator); 22] = [
    ("StringEquals", Operator::StringEquals),
    ("StringNotEquals", Operator::StringNotEquals),
    ("StringEqualsIgnoreCase", Operator::StringEqualsIgnoreCase),
    ("StringNotEqualsIgnoreCase", Operator::StringNotEqualsIgnoreCase),
    ("StringLike", Operator::StringLike),
    ("StringNotLike", Operator::StringNotLike),
    ("NumericEquals", Operator::NumericEquals),
    ("NumericNotEquals", Operator::NumericNotEquals),
    ("NumericLessThan", Operator::NumericLessThan),
    ("NumericLessThanEquals", Operator::NumericLessThanEquals),
    ("NumericGreaterThan", Operator::NumericGreaterThan),
    ("NumericGreaterThanEquals", Operator::NumericGreaterThanEquals),
    ("DateEquals", Operator::DateEquals),
    ("DateNotEquals", Operator::DateNotEquals),
    ("DateLessThan", Operator::DateLessThan),
    ("DateLessThanEquals", Operator::DateLessThanEquals),
    ("DateGreaterThan", Operator::DateGreaterThan),
    ("DateGreaterThanEquals", Operator::DateGreaterThanEquals),
    ("Bool", Operator::Bool),
    ("IpAddress", Operator::IpAddress),
    ("NotIpAddress", Operator::NotIpAddress),
    ("Null", Operator::Null),
];

impl Operator {
    /// Negated operators hold when the key is absent, as in AWS.
    fn negated(self) -> bool {
        matches!(
            self,
            Operator::StringNotEquals
                | Operator::StringNotEqualsIgnoreCase
                | Operator::StringNotLike
                | Operator::NumericNotEquals
                | Operator::DateNotEquals
                | Operator::NotIpAddress
        )
    }
}

#[derive(Debug, Clone)]
struct Statement {
    effect: Effect,
    principals: Option<(Principals, bool)>,
    actions: Patterns,
    resources: Patterns,
    conditions: Vec<Condition>,
}

/// A parsed bucket policy.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// The request a policy judges.
pub struct Request<'a> {
    pub principal: &'a Principal,
    /// `s3:GetObject` and the like.
    pub action: &'a str,
    /// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`.
    pub resource: &'a str,
    /// Condition keys (lowercase) with their values: `aws:sourceip`,
    /// `aws:securetransport`, `aws:currenttime`, `s3:prefix`, ...
    pub context: &'a HashMap<String, String>,
}

fn malformed(why: impl Into<String>) -> Error {
    Error::MalformedPolicy(why.into())
}

/// One string or a list of strings, as policies allow either.
fn strings(value: &Value, what: &str) -> Result<Vec<String>> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(malformed(format!("{what} must hold strings"))),
            })
            .collect(),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        Value::Number(n) => Ok(vec![n.to_string()]),
        _ => Err(malformed(format!("{what} must be a string or a list of strings"))),
    }
}

impl Policy {
    /// Parses and checks a policy for `bucket`: every resource must name it
    /// or objects in it.
    pub fn parse(text: &str, bucket: &str) -> Result<Self> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(Error::InvalidArgument(format!(
                "the policy is larger than {MAX_POLICY_BYTES} bytes"
            )));
        }
        let doc: Value = serde_json::from_str(text).map_err(|e| malformed(format!("not JSON: {e}")))?;
        let statements = match doc.get("Statement") {
            Some(Value::Array(list)) => list.clone(),
            Some(one @ Value::Object(_)) => vec![one.clone()],
            _ => return Err(malformed("missing Statement")),
        };
        if statements.is_empty() {
            return Err(malformed("no statements"));
        }
        let statements = statements
            .iter()
            .map(|s| Statement::parse(s, bucket))
            .collect::<Result<Vec<_>>>()?;
        Ok(Policy { statements })
    }

    pub fn evaluate(&self, request: &Request<'_>) -> Decision {
        let mut decision = Decision::Silent;
        for statement in &self.statements {
            if statement.applies(request) {
                match statement.effect {
                    Effect::Deny => return Decision::Deny,
                    Effect::Allow => decision = Decision::Allow,
                }
            }
        }
        decision
    }

    /// Whether the policy allows anyone at all something, without a
    /// condition narrowing who (S3's "public" test, simplified: any
    /// condition counts as narrowing).
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            s.effect == Effect::Allow
                && s.conditions.is_empty()
                && matches!(s.principals, Some((Principals::Anyone, false)))
        })
    }
}

impl Statement {
    fn parse(value: &Value, bucket: &str) -> Result<Self> {
        let field = |name: &str| value.get(name);
        let effect = match field("Effect").and_then(Value::as_str) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            _ => return Err(malformed("Effect must be Allow or Deny")),
        };
        let principals = match (field("Principal"), field("NotPrincipal")) {
            (Some(p), None) => Some((parse_principals(p)?, false)),
            (None, Some(p)) => Some((parse_principals(p)?, true)),
            (None, None) => return Err(malformed("a bucket policy statement needs a Principal")),
            _ => return Err(malformed("Principal and NotPrincipal together")),
        };
        let actions = patterns(field("Action"), field("NotAction"), "Action")?;
        for action in &actions.values {
            if !(action == "*" || action.to_ascii_lowercase().starts_with("s3:")) {
                return Err(malformed(format!("unknown action {action:?}")));
            }
        }
        let resources = patterns(field("Resource"), field("NotResource"), "Resource")?;
        for resource in &resources.values {
            let rest = resource
                .strip_prefix("arn:aws:s3:::")
                .ok_or_else(|| malformed(format!("resource {resource:?} is not an S3 ARN")))?;
            let named = rest.split('/').next().unwrap_or("");
            if !wildcard_match(named, bucket, false) {
                return Err(malformed(format!(
                    "resource {resource:?} is not in bucket {bucket}"
                )));
            }
        }
        let mut conditions = Vec::new();
        if let Some(block) = field("Condition") {
            let block = block
                .as_object()
                .ok_or_else(|| malformed("Condition must be an object"))?;
            for (name, keys) in block {
                let bare = name
                    .strip_prefix("ForAnyValue:")
                    .or_else(|| name.strip_prefix("ForAllValues:"))
                    .unwrap_or(name);
                let (bare, if_exists) = match bare.strip_suffix("IfExists") {
                    Some(b) => (b, true),
                    None => (bare, false),
                };
                let operator = OPERATORS
                    .iter()
                    .find(|(n, _)| *n == bare)
                    .map(|(_, o)| *o)
                    .ok_or_else(|| malformed(format!("unknown condition operator {name}")))?;
                let keys = keys
                    .as_object()
                    .ok_or_else(|| malformed(format!("{name} must map keys to values")))?;
                for (key, values) in keys {
                    conditions.push(Condition {
                        operator,
                        if_exists,
                        key: key.to_ascii_lowercase(),
                        values: strings(values, key)?,
                    });
                }
            }
        }
        Ok(Statement {
            effect,
            principals,
            actions,
            resources,
            conditions,
        })
    }

    fn applies(&self, request: &Request<'_>) -> bool {
        let principal_matches = match &self.principals {
            Some((who, negated)) => who.matches(request.principal) != *negated,
            None => true,
        };
        principal_matches
            && self.actions.matches(request.action, true)
            && self.resources.matches(request.resource, false)
            && self.conditions.iter().all(|c| c.holds(request.context))
    }
}

fn parse_principals(value: &Value) -> Result<Principals> {
    match value {
        Value::String(s) if s == "*" => Ok(Principals::Anyone),
        Value::Object(map) => {
            let mut users = Vec::new();
            for (kind, ids) in map {
                let ids = strings(ids, kind)?;
                match kind.as_str() {
                    "AWS" if ids.iter().any(|i| i == "*") => return Ok(Principals::Anyone),
                    "AWS" => users.extend(ids.iter().map(|i| user_of_arn(i))),
                    "CanonicalUser" => users.extend(ids),
                    other => return Err(malformed(format!("unsupported principal type {other}"))),
                }
            }
            Ok(Principals::Users(users))
        }
        _ => Err(malformed("Principal must be \"*\" or an object")),
    }
}

/// A user's name or id from `arn:aws:iam::<account>:user/<name>`, or the
/// value itself (a canonical id or a name).
fn user_of_arn(value: &str) -> String {
    match value.strip_prefix("arn:aws:iam::") {
        Some(rest) => rest
            .split_once(":user/")
            .map(|(_, name)| name)
            .or_else(|| rest.split_once(':').map(|(account, _)| account))
            .unwrap_or(rest)
            .to_string(),
        None => value.to_string(),
    }
}

fn patterns(plain: Option<&Value>, not: Option<&Value>, what: &str) -> Result<Patterns> {
    match (plain, not) {
        (Some(v), None) => Ok(Patterns {
            values: strings(v, what)?,
            negated: false,
        }),
        (None, Some(v)) => Ok(Patterns {
            values: strings(v, what)?,
            negated: true,
        }),
        (None, None) => Err(malformed(format!("missing {what}"))),
        _ => Err(malformed(format!("{what} and Not{what} together"))),
    }
}

impl Principals {
    fn matches(&self, who: &Principal) -> bool {
        match (self, who) {
            (Principals::Anyone, _) => true,
            (Principals::Users(users), Principal::User { id, name }) => {
                users.iter().any(|u| u == id || u == name)
            }
            (Principals::Users(_), Principal::Anonymous) => false,
        }
    }
}

impl Patterns {
    fn matches(&self, value: &str, ignore_case: bool) -> bool {
        self.values.iter().any(|p| wildcard_match(p, value, ignore_case)) != self.negated
    }
}

impl Condition {
    fn holds(&self, context: &HashMap<String, String>) -> bool {
        let Some(actual) = context.get(&self.key) else {
            return match self.operator {
                Operator::Null => self.values.iter().any(|v| v == "true"),
                op => self.if_exists || op.negated(),
            };
        };
        let any = |f: &dyn Fn(&str) -> bool| self.values.iter().any(|v| f(v));
        let number = |v: &str| v.parse::<f64>().ok();
        let date = |v: &str| {
            OffsetDateTime::parse(v, &Rfc3339)
                .ok()
                .map(|d| d.unix_timestamp() as f64)
                .or_else(|| number(v))
        };
        let compare = |parse: &dyn Fn(&str) -> Option<f64>, test: fn(f64, f64) -> bool| {
            parse(actual).is_some_and(|a| any(&|v| parse(v).is_some_and(|b| test(a, b))))
        };
        match self.operator {
            Operator::StringEquals => any(&|v| v == actual),
            Operator::StringNotEquals => !any(&|v| v == actual),
            Operator::StringEqualsIgnoreCase => any(&|v| v.eq_ignore_ascii_case(actual)),
            Operator::StringNotEqualsIgnoreCase => !any(&|v| v.eq_ignore_ascii_case(actual)),
            Operator::StringLike => any(&|v| wildcard_match(v, actual, false)),
            Operator::StringNotLike => !any(&|v| wildcard_match(v, actual, false)),
            Operator::NumericEquals => compare(&number, |a, b| a == b),
            Operator::NumericNotEquals => !compare(&number, |a, b| a == b),
            Operator::NumericLessThan => compare(&number, |a, b| a < b),
            Operator::NumericLessThanEquals => compare(&number, |a, b| a <= b),
            Operator::NumericGreaterThan => compare(&number, |a, b| a > b),
            Operator::NumericGreaterThanEquals => compare(&number, |a, b| a >= b),
            Operator::DateEquals => compare(&date, |a, b| a == b),
            Operator::DateNotEquals => !compare(&date, |a, b| a == b),
            Operator::DateLessThan => compare(&date, |a, b| a < b),
            Operator::DateLessThanEquals => compare(&date, |a, b| a <= b),
            Operator::DateGreaterThan => compare(&date, |a, b| a > b),
            Operator::DateGreaterThanEquals => compare(&date, |a, b| a >= b),
            Operator::Bool => any(&|v| v.eq_ignore_ascii_case(actual)),
            Operator::IpAddress => any(&|v| in_cidr(actual, v)),
            Operator::NotIpAddress => !any(&|v| in_cidr(actual, v)),
            Operator::Null => any(&|v| v == "false"),
        }
    }
}

/// Whether address `ip` lies in `cidr` (`a.b.c.d/n`, IPv6 too; no `/n`
/// means the address alone).
fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (net, bits) = match cidr.split_once('/') {
        Some((net, bits)) => (net, bits.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let (Ok(ip), Ok(net)) = (ip.parse::<IpAddr>(), net.parse::<IpAddr>()) else {
        return false;
    };
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        (IpAddr::V6(a), IpAddr::V4(b)) => match a.to_ipv4_mapped() {
            Some(a) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
            None => return false,
        },
        _ => return false,
    };
    let bits = bits.unwrap_or(width).min(width);
    let shift = width - bits;
    shift == width || (ip >> shift) == (net >> shift)
}

/// `*` matches any run of characters, `?` any one.
pub fn wildcard_match(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let fold = |s: &str| {
        if ignore_case {
            s.to_ascii_lowercase()
        } else {
            s.to_string()
        }
    };
    let (p, v): (Vec<char>, Vec<char>) = (fold(pattern).chars().collect(), fold(value).chars().collect());
    // Iterative matching with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
