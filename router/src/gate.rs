//! Requests refused at the door, before s3s parses them: Signature
//! Version 2 (unless `--allow-sigv2`), presigned URLs valid for more than
//! S3's 7 days, NUL characters in the query or the copy source (which
//! Postgres text cannot hold), and `max-keys` that is not a count.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::escape::percent_decode;

/// The longest a presigned URL may be valid, as in S3.
pub const MAX_PRESIGNED_SECS: u64 = 7 * 24 * 3600;

/// What the gate lets through.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gate {
    /// Accept Signature Version 2 (deprecated by AWS; off by default).
    pub allow_sigv2: bool,
}

/// Why a request was refused, as an S3 error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: String) -> Self {
        Refusal {
            status,
            code,
            message,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
            self.code,
            xml_escape(&self.message)
        );
        (self.status, [("content-type", "application/xml")], body).into_response()
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        code: "InvalidArgument",
        message: message.into(),
    }
}

impl Gate {
    pub(crate) fn judge(&self, query: Option<&str>, headers: &HeaderMap) -> Result<(), Refusal> {
        let pairs: Vec<(String, Option<String>)> = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (n, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(n).unwrap_or_default(), percent_decode(v))
            })
            .collect();
        let has = |name: &str| pairs.iter().any(|(n, _)| n == name);
        let sigv2_header = headers
            .get("authorization")
            .is_some_and(|v| v.as_bytes().starts_with(b"AWS "));
        if !self.allow_sigv2 && (sigv2_header || (has("AWSAccessKeyId") && has("Signature"))) {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                code: "InvalidRequest",
                message: "Signature Version 2 is not accepted here; sign with Signature Version 4".into(),
            });
        }
        for (name, value) in &pairs {
            let Some(value) = value else {
                return Err(invalid(format!(
                    "the query parameter {name} is not valid percent-encoded UTF-8"
                )));
            };
            if value.contains('\0') || name.contains('\0') {
                return Err(invalid(format!(
                    "the query parameter {name} contains a NUL character"
                )));
            }
            match name.as_str() {
                "X-Amz-Expires" => match value.parse::<i64>() {
                    Ok(secs) if (1..=MAX_PRESIGNED_SECS as i64).contains(&secs) => {}
                    _ => {
                        return Err(Refusal {
                            status: StatusCode::BAD_REQUEST,
                            code: "AuthorizationQueryParametersError",
                            message: format!(
                                "X-Amz-Expires must be a number of seconds from 1 to {MAX_PRESIGNED_SECS} (7 days)"
                            ),
                        })
                    }
                },
                "max-keys" | "max-uploads" | "max-parts" if value.parse::<u32>().is_err() => {
                    return Err(invalid(format!("{name} must be a count from 0 up, not {value:?}")));
                }
                _ => {}
            }
        }
        if let Some(source) = headers.get("x-amz-copy-source") {
            let decoded = std::str::from_utf8(source.as_bytes())
                .ok()
                .and_then(percent_decode)
                .ok_or_else(|| invalid("x-amz-copy-source is not valid percent-encoded UTF-8"))?;
            if decoded.contains('\0') {
                return Err(invalid("x-amz-copy-source contains a NUL character"));
            }
        }
        Ok(())
    }
}

/// The middleware: lets a request through or answers its refusal.
pub async fn admit(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    match gate.judge(request.uri().query(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::debug!(code = refusal.code, message = %refusal.message, "refused at the gate");
            refusal.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(gate: Gate, query: &str, headers: &[(&'static str, &str)]) -> Result<(), &'static str> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().unwrap());
        }
        gate.judge(Some(query), &map).map_err(|r| r.code)
    }

    #[test]
    fn refuses_what_s3_refuses_and_passes_the_rest() {
        let strict = Gate::default();
        assert_eq!(judge(strict, "list-type=2&prefix=a%2Fb&max-keys=10", &[]), Ok(()));
        assert_eq!(
            judge(strict, "", &[("authorization", "AWS key:sig")]),
            Err("InvalidRequest")
        );
        assert_eq!(
            judge(
                Gate { allow_sigv2: true },
                "",
                &[("authorization", "AWS key:sig")]
            ),
            Ok(())
        );
        assert_eq!(
            judge(strict, "AWSAccessKeyId=k&Expires=1&Signature=s", &[]),
            Err("InvalidRequest")
        );
        assert_eq!(judge(strict, "X-Amz-Expires=604800", &[]), Ok(()));
        for bad in [
            "X-Amz-Expires=604801",
            "X-Amz-Expires=-5",
            "X-Amz-Expires=0",
            "X-Amz-Expires=x",
        ] {
            assert_eq!(
                judge(strict, bad, &[]),
                Err("AuthorizationQueryParametersError"),
                "{bad}"
            );
        }
        for bad in [
            "prefix=a%00b",
            "versionId=%00",
            "uploadId=x%00",
            "marker=%zz",
            "max-keys=-1",
            "max-keys=ten",
        ] {
            assert_eq!(judge(strict, bad, &[]), Err("InvalidArgument"), "{bad}");
        }
        assert_eq!(judge(strict, "max-keys=0", &[]), Ok(()));
        assert_eq!(
            judge(strict, "", &[("x-amz-copy-source", "b/k%00ey")]),
            Err("InvalidArgument")
        );
        assert_eq!(judge(strict, "", &[("x-amz-copy-source", "b/k%20ey")]), Ok(()));
    }
}
