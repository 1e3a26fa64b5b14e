//! Entry points for the fuzz targets in `fuzz/` (`make fuzz`): every
//! parser of untrusted input the router owns, fed arbitrary bytes. Each
//! must return, never panic. Not an API: hidden from the docs.

use std::collections::HashMap;

use bytes::Bytes;

use crate::access::acl::{Acl, GRANT_HEADERS};
use crate::access::policy::{Policy, Request};
use crate::access::Principal;

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// A bucket policy, parsed and, if it parses, judged against a request.
pub fn policy(data: &[u8]) {
    let text = text(data);
    if let Ok(policy) = Policy::parse(&text, "b") {
        let context: HashMap<String, String> = [
            ("aws:sourceip", "10.0.0.1"),
            ("aws:currenttime", "2026-01-01T00:00:00Z"),
            ("s3:prefix", "a/"),
            ("s3:max-keys", "5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for principal in [
            Principal::Anonymous,
            Principal::User {
                id: "i".into(),
                name: "n".into(),
            },
        ] {
            let _ = policy.evaluate(&Request {
                principal: &principal,
                action: "s3:GetObject",
                resource: "arn:aws:s3:::b/a/k",
                context: &context,
            });
        }
        let _ = policy.is_public();
    }
}

/// The value of an `x-amz-grant-*` header, and a canned ACL name.
pub fn acl(data: &[u8]) {
    let text = text(data);
    let mut acl = Acl::default();
    for (_, permission) in GRANT_HEADERS {
        let _ = acl.add_header_grants(permission, &text);
    }
    let _ = Acl::canned(&text);
    let _ = Acl::from_json(&serde_json::from_slice(data).unwrap_or_default());
}

/// A listing continuation token.
pub fn listing_token(data: &[u8]) {
    let _ = crate::s3::list::Resume::from_token(&text(data));
}

/// A batch PUT body: manifest line and bytes.
pub fn batch(data: &[u8]) {
    let _ = crate::s3::batch::parse(&Bytes::copy_from_slice(data));
}

/// A rename header, a query string and a copy source, as the gate and the
/// extensions decode them.
pub fn request_line(data: &[u8]) {
    let text = text(data);
    let _ = crate::escape::percent_decode(&text);
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_bytes(data) {
        headers.insert("x-amz-copy-source", value.clone());
        headers.insert("authorization", value);
    }
    let _ = crate::gate::Gate::default().judge(Some(&text), &headers);
}

/// A bucket's settings as clients give them: an `x-amz-tagging` header,
/// CORS rules (as stored JSON) judged against a preflight, and lifecycle
/// rules read back.
pub fn bucket_settings(data: &[u8]) {
    let text = text(data);
    if let Ok(tags) = crate::s3::tagging::Tags::from_header(&text) {
        let _ = crate::s3::tagging::Tags::from_json(&tags.to_json());
    }
    let json: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
    let rules = crate::cors::rules_of(&json);
    for rule in &rules {
        let _ = rule.problem();
    }
    let (origin, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = crate::cors::first_match(&rules, origin, "GET", &[rest.to_string()]);
    let _ = crate::lifecycle::rules_of(&json);
}

/// What the router reads of a request before s3s does: a Range header, a
/// Signature Version 4 Authorization header and query (as signed again),
/// and a browser form's fields up to its file.
pub fn request_head(data: &[u8]) {
    crate::lenient_range::fuzz(data);
    crate::form_upload::fuzz(data);
}
