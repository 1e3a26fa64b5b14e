//! Cross-origin resource sharing, as S3 does it: a bucket's CORS rules
//! (PutBucketCors, stored as `Rule`s in `buckets.cors`) answer a browser's
//! preflight `OPTIONS` request here, before s3s (which has no OPTIONS and
//! no signature to check), and add `Access-Control-*` headers to the
//! answer of any request that carries an `Origin` the rules allow.
//!
//! Requests without `Origin` (every non-browser client) pass untouched and
//! cost nothing more.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::gate::Refusal;
use crate::host::Domains;
use crate::meta::Meta;

/// Rules a bucket may carry, as in S3.
pub const MAX_RULES: usize = 100;
/// Methods a rule may allow, as in S3.
pub const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

/// One CORS rule, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default)]
    pub id: Option<String>,
    /// Origins, each with at most one `*` wildcard.
    pub allowed_origins: Vec<String>,
    /// Some of `METHODS`.
    pub allowed_methods: Vec<String>,
    /// Headers a preflight may ask for, each with at most one `*`.
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Response headers the browser may show the page.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub max_age_seconds: Option<i32>,
}

impl Rule {
    /// Why the rule is invalid, if it is.
    pub fn problem(&self) -> Option<String> {
        if self.allowed_origins.is_empty() || self.allowed_methods.is_empty() {
            return Some("a CORS rule needs an AllowedOrigin and an AllowedMethod".into());
        }
        if let Some(m) = self
            .allowed_methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return Some(format!("unsupported HTTP method in CORS config: {m}"));
        }
        let wild = |p: &String| p.matches('*').count() > 1;
        if let Some(p) = self
            .allowed_origins
            .iter()
            .chain(&self.allowed_headers)
            .find(|p| wild(p))
        {
            return Some(format!("{p:?} has more than one wildcard"));
        }
        None
    }

    /// The rule's answer for `origin`: `*` when it allows any origin,
    /// otherwise the origin itself.
    fn allows_origin(&self, origin: &str) -> Option<String> {
        let pattern = self.allowed_origins.iter().find(|p| wildcard_match(p, origin))?;
        Some(if pattern == "*" { "*".into() } else { origin.into() })
    }

    fn allows_method(&self, method: &str) -> bool {
        self.allowed_methods.iter().any(|m| m == method)
    }

    fn allows_header(&self, header: &str) -> bool {
        let header = header.to_ascii_lowercase();
        self.allowed_headers
            .iter()
            .any(|p| wildcard_match(&p.to_ascii_lowercase(), &header))
    }
}

/// Whether `text` matches `pattern`, where one `*` stands for any run of
/// characters.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.len() >= head.len() + tail.len() && text.starts_with(head) && text.ends_with(tail)
        }
    }
}

/// The rules stored for a bucket (unreadable rules are none).
pub fn rules_of(json: &serde_json::Value) -> Vec<Rule> {
    serde_json::from_value(json.clone()).unwrap_or_default()
}

/// The first rule that allows `origin` to use `method` with `headers`,
/// and the `Access-Control-Allow-Origin` it answers.
pub(crate) fn first_match<'r>(
    rules: &'r [Rule],
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<(&'r Rule, String)> {
    rules.iter().find_map(|rule| {
        let allowed = rule.allows_origin(origin)?;
        (rule.allows_method(method) && headers.iter().all(|h| rule.allows_header(h)))
            .then_some((rule, allowed))
    })
}

/// The headers a matching rule adds to an answer.
fn allow_headers(
    rule: &Rule,
    allowed_origin: String,
    asked_headers: &[String],
    preflight: bool,
) -> HeaderMap {
    let mut out = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            out.insert(name, v);
        }
    };
    let any_origin = allowed_origin == "*";
    put("access-control-allow-origin", allowed_origin);
    put("access-control-allow-methods", rule.allowed_methods.join(", "));
    if !any_origin {
        put("access-control-allow-credentials", "true".into());
    }
    if !rule.expose_headers.is_empty() {
        put("access-control-expose-headers", rule.expose_headers.join(", "));
    }
    if preflight {
        if !asked_headers.is_empty() {
            put("access-control-allow-headers", asked_headers.join(", "));
        }
        if let Some(age) = rule.max_age_seconds {
            put("access-control-max-age", age.to_string());
        }
    }
    put(
        "vary",
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method".into(),
    );
    out
}

/// What the CORS layer needs: the bucket rows and how hosts name buckets.
#[derive(Clone)]
pub struct Cors {
    pub meta: Meta,
    pub domains: std::sync::Arc<Domains>,
}

impl Cors {
    /// The bucket a request addresses: `BUCKET.DOMAIN`, or the first path
    /// segment.
    fn bucket_of(&self, request: &Request) -> Option<String> {
        let host = request.headers().get("host").and_then(|h| h.to_str().ok());
        if let Some(bucket) = host.and_then(|h| self.domains.bucket_of(h)) {
            return Some(bucket.to_ascii_lowercase());
        }
        let first = request.uri().path().trim_start_matches('/').split('/').next()?;
        (!first.is_empty()).then(|| first.to_string())
    }

    async fn rules(&self, bucket: &str) -> Option<Vec<Rule>> {
        let bucket = self.meta.bucket(bucket).await.ok()?;
        bucket.cors.as_ref().map(rules_of)
    }
}

fn forbidden(message: &str) -> Response {
    Refusal::new(
        StatusCode::FORBIDDEN,
        "AccessForbidden",
        format!("CORSResponse: {message}"),
    )
    .into_response()
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The middleware: preflights answered here, other requests with an
/// `Origin` given the headers their bucket's rules allow.
pub async fn layer(State(cors): State<Cors>, request: Request, next: Next) -> Response {
    let Some(origin) = header_text(request.headers(), "origin").map(str::to_string) else {
        if request.method() == Method::OPTIONS {
            return Refusal::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Insufficient information. Origin request header needed.".into(),
            )
            .into_response();
        }
        return next.run(request).await;
    };
    let bucket = cors.bucket_of(&request);
    if request.method() == Method::OPTIONS {
        let Some(method) = header_text(request.headers(), "access-control-request-method") else {
            return Refusal::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Invalid Access-Control-Request-Method: (null)".into(),
            )
            .into_response();
        };
        let asked: Vec<String> = header_text(request.headers(), "access-control-request-headers")
            .unwrap_or("")
            .split(',')
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect();
        let rules = match &bucket {
            Some(b) => cors.rules(b).await,
            None => None,
        };
        let Some(rules) = rules else {
            return forbidden("CORS is not enabled for this bucket.");
        };
        return match first_match(&rules, &origin, method, &asked) {
            Some((rule, allowed)) => {
                let mut response = StatusCode::OK.into_response();
                response.headers_mut().extend(allow_headers(rule, allowed, &asked, true));
                response
            }
            None => forbidden("This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec."),
        };
    }
    let method = request.method().as_str().to_string();
    let mut response = next.run(request).await;
    if let Some(rules) = match &bucket {
        Some(b) => cors.rules(b).await,
        None => None,
    } {
        if let Some((rule, allowed)) = first_match(&rules, &origin, &method, &[]) {
            response
                .headers_mut()
                .extend(allow_headers(rule, allowed, &[], false));
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> Rule {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Rule {
            allowed_origins: v(origins),
            allowed_methods: v(methods),
            allowed_headers: v(headers),
            ..Rule::default()
        }
    }

    #[test]
    fn wildcards_stand_for_any_run() {
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("https://*.example.com", "https://app.example.com"));
        assert!(!wildcard_match("https://*.example.com", "https://example.org"));
        assert!(wildcard_match("*.suffix", "foo.suffix"));
        assert!(wildcard_match("prefix*", "prefix"));
        assert!(!wildcard_match("ab*ba", "aba"));
        assert!(wildcard_match("exact", "exact"));
    }

    #[test]
    fn the_first_rule_allowing_origin_method_and_headers_answers() {
        let rules = [
            rule(&["https://*.example.com"], &["GET", "PUT"], &["x-amz-*"]),
            rule(&["*"], &["GET"], &[]),
        ];
        let (r, origin) =
            first_match(&rules, "https://app.example.com", "PUT", &["X-Amz-Date".into()]).unwrap();
        assert_eq!((r, origin.as_str()), (&rules[0], "https://app.example.com"));
        let (r, origin) = first_match(&rules, "https://else.org", "GET", &[]).unwrap();
        assert_eq!((r, origin.as_str()), (&rules[1], "*"));
        assert!(first_match(&rules, "https://else.org", "PUT", &[]).is_none());
        assert!(first_match(
            &rules,
            "https://app.example.com",
            "PUT",
            &["authorization".into()]
        )
        .is_none());
    }

    #[test]
    fn invalid_rules_are_named() {
        assert!(rule(&["*"], &["GET"], &[]).problem().is_none());
        assert!(rule(&[], &["GET"], &[]).problem().is_some());
        assert!(rule(&["*"], &["PATCH"], &[]).problem().is_some());
        assert!(rule(&["a*b*"], &["GET"], &[]).problem().is_some());
    }
}
