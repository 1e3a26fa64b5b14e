//! S3 ignores a Range header it cannot parse (`bytes=abc`, several ranges,
//! another unit) and serves the whole object; s3s answers such a request
//! 400. The header is usually signed, so it cannot simply be dropped: a
//! GET or HEAD with one is verified here (Signature Version 4 in the
//! Authorization header, with the key's secret) and signed again without
//! it, with the same key, time and scope, before s3s sees it. A request
//! whose signature does not verify is passed on untouched, for s3s to
//! refuse; a presigned URL that signs the Range keeps it (and its 400).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use hmac::{Hmac, Mac};
use s3s::auth::S3Auth;
use sha2::{Digest, Sha256};

use crate::access::Identities;
use crate::escape::{percent_decode, percent_encode};

type HmacSha256 = Hmac<Sha256>;

/// The middleware: drops a Range header S3 would ignore.
pub async fn lenient(State(identities): State<Identities>, mut request: Request, next: Next) -> Response {
    let unparsable = matches!(*request.method(), Method::GET | Method::HEAD)
        && request
            .headers()
            .get(axum::http::header::RANGE)
            .is_some_and(|v| !parses(v.as_bytes()));
    if unparsable {
        drop_range(&identities, &mut request).await;
    }
    next.run(request).await
}

/// A Range header s3s takes: `bytes=FIRST-LAST`, `bytes=FIRST-` or `bytes=-SUFFIX`.
fn parses(value: &[u8]) -> bool {
    let Some(spec) = value.strip_prefix(b"bytes=") else {
        return false;
    };
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return false;
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    let number = |s: &[u8]| !s.is_empty() && s.len() <= 19 && s.iter().all(u8::is_ascii_digit);
    let value = |s: &[u8]| std::str::from_utf8(s).ok().and_then(|s| s.parse::<u64>().ok());
    match (first.is_empty(), last.is_empty()) {
        (false, false) => number(first) && number(last) && value(first) <= value(last),
        (false, true) => number(first),
        (true, false) => number(last),
        (true, true) => false,
    }
}

/// The parts of a Signature Version 4 Authorization header.
struct Authorization<'a> {
    access_key: &'a str,
    /// `DATE/REGION/SERVICE/aws4_request`.
    scope: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=')?;
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let (access_key, scope) = credential?.split_once('/')?;
    Some(Authorization {
        access_key,
        scope,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    })
}

/// Removes the request's Range header, signing it again if it was signed.
async fn drop_range(identities: &Identities, request: &mut Request) {
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(header) = header else {
        // Anonymous, or presigned: only an unsigned Range may go.
        if !query_signs_range(request.uri().query()) {
            request.headers_mut().remove(axum::http::header::RANGE);
        }
        return;
    };
    let Some(auth) = authorization(&header) else {
        return;
    };
    if !auth.signed_headers.contains(&"range") {
        request.headers_mut().remove(axum::http::header::RANGE);
        return;
    }
    let Ok(secret) = identities.get_secret_key(auth.access_key).await else {
        return;
    };
    let signer = Signer {
        secret: secret.expose(),
        scope: auth.scope,
        method: request.method().as_str(),
        path: request.uri().path(),
        query: request.uri().query().unwrap_or(""),
    };
    let Some(signature) = signer.sign(request.headers(), &auth.signed_headers) else {
        return;
    };
    if !constant_time_eq(signature.as_bytes(), auth.signature.as_bytes()) {
        return;
    }
    let signed: Vec<&str> = auth
        .signed_headers
        .iter()
        .copied()
        .filter(|h| *h != "range")
        .collect();
    let mut headers = request.headers().clone();
    headers.remove(axum::http::header::RANGE);
    let Some(signature) = signer.sign(&headers, &signed) else {
        return;
    };
    let value = format!(
        "AWS4-HMAC-SHA256 Credential={}/{},SignedHeaders={},Signature={signature}",
        auth.access_key,
        auth.scope,
        signed.join(";")
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(axum::http::header::AUTHORIZATION, value);
        *request.headers_mut() = headers;
        tracing::debug!("dropped a Range header S3 would ignore, and signed the request again");
    }
}

fn query_signs_range(query: Option<&str>) -> bool {
    query.unwrap_or("").split('&').any(|p| {
        p.split_once('=').is_some_and(|(n, v)| {
            n == "X-Amz-SignedHeaders"
                && percent_decode(v).is_some_and(|v| v.split(';').any(|h| h == "range"))
        })
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Signature Version 4 over one request, as S3 computes it.
struct Signer<'a> {
    secret: &'a str,
    scope: &'a str,
    method: &'a str,
    /// The path as sent (already URI-encoded by the client).
    path: &'a str,
    query: &'a str,
}

impl Signer<'_> {
    /// The signature of the request with `headers`, signing `signed` (the
    /// lowercase names, in order).
    fn sign(&self, headers: &HeaderMap, signed: &[&str]) -> Option<String> {
        let mut canonical = format!(
            "{}\n{}\n{}\n",
            self.method,
            self.path,
            canonical_query(self.query)?
        );
        for name in signed {
            let values: Vec<String> = headers
                .get_all(*name)
                .iter()
                .map(|v| Some(v.to_str().ok()?.split_whitespace().collect::<Vec<_>>().join(" ")))
                .collect::<Option<_>>()?;
            canonical.push_str(&format!("{name}:{}\n", values.join(",")));
        }
        let payload = headers.get("x-amz-content-sha256")?.to_str().ok()?;
        canonical.push_str(&format!("\n{}\n{payload}", signed.join(";")));
        let amz_date = headers.get("x-amz-date")?.to_str().ok()?;
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{}\n{}",
            self.scope,
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut key = format!("AWS4{}", self.secret).into_bytes();
        for part in self.scope.split('/') {
            key = hmac(&key, part.as_bytes());
        }
        Some(hex::encode(hmac(&key, to_sign.as_bytes())))
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The query's pairs decoded, encoded the SigV4 way and sorted.
fn canonical_query(query: &str) -> Option<String> {
    let encode = |s: &str| percent_encode(s, b"");
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((encode(&percent_decode(name)?), encode(&percent_decode(value)?)));
    }
    pairs.sort();
    Some(
        pairs
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

/// For the fuzz target: every parser here over arbitrary bytes.
pub(crate) fn fuzz(data: &[u8]) {
    let _ = parses(data);
    let text = String::from_utf8_lossy(data);
    if let Some(auth) = authorization(&text) {
        let signer = Signer {
            secret: "s",
            scope: auth.scope,
            method: "GET",
            path: "/b/k",
            query: &text,
        };
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let _ = signer.sign(&headers, &auth.signed_headers);
    }
    let _ = canonical_query(&text);
    let _ = query_signs_range(Some(&text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_s3s_parses_passes() {
        for good in ["bytes=0-9", "bytes=5-", "bytes=-3", "bytes=7-7"] {
            assert!(parses(good.as_bytes()), "{good}");
        }
        for bad in [
            "bytes=abc",
            "bytes=0-1,3-4",
            "chars=0-9",
            "bytes=9-0",
            "bytes=-",
            "bytes= 1-2",
            "",
        ] {
            assert!(!parses(bad.as_bytes()), "{bad}");
        }
    }

    /// AWS's worked example of a signed GET with a Range ("Example: GET
    /// Object", Signature Version 4 for Amazon S3).
    #[test]
    fn signs_as_aws_documents() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("examplebucket.s3.amazonaws.com"));
        headers.insert("range", HeaderValue::from_static("bytes=0-9"));
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        headers.insert("x-amz-content-sha256", HeaderValue::from_static(empty));
        headers.insert("x-amz-date", HeaderValue::from_static("20130524T000000Z"));
        let signer = Signer {
            secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            scope: "20130524/us-east-1/s3/aws4_request",
            method: "GET",
            path: "/test.txt",
            query: "",
        };
        let signed = ["host", "range", "x-amz-content-sha256", "x-amz-date"];
        assert_eq!(
            signer.sign(&headers, &signed).as_deref(),
            Some("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        );
        let value = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
        let auth = authorization(value).expect("parses");
        assert_eq!(
            (auth.access_key, auth.signed_headers.len()),
            ("AKIAIOSFODNN7EXAMPLE", 4)
        );
    }

    #[test]
    fn query_pairs_sort_and_encode_as_sigv4_says() {
        assert_eq!(
            canonical_query("prefix=a%20b&max-keys=2&list-type=2").as_deref(),
            Some("list-type=2&max-keys=2&prefix=a%20b")
        );
        assert_eq!(canonical_query("acl").as_deref(), Some("acl="));
    }
}
