//! Browser form uploads (POST to a bucket, `multipart/form-data`), made
//! whole before s3s reads them: a `key` field holding `${filename}` gets
//! the uploaded file's name, as S3 substitutes it, and the form's `acl`
//! field becomes the request's `x-amz-acl`, the name the upload path reads.
//! s3s 0.14 passes on neither. A form upload's headers are not signed (its
//! policy is), so an `x-amz-acl` header sent with the form is dropped: only
//! the policy-checked field may set the ACL.
//!
//! Only the fields before the file are read (S3 requires the file last);
//! at most `FIELDS_MAX` bytes of them are held, and the file streams on.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;

/// The most bytes of form fields read ahead of the file.
const FIELDS_MAX: usize = 64 << 10;

/// The middleware.
pub async fn complete(request: Request, next: Next) -> Response {
    let boundary = boundary_of(&request);
    let Some(boundary) = boundary else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    parts.headers.remove("x-amz-acl");
    let mut stream = body.into_data_stream();
    let mut head = Vec::new();
    let mut failed = None;
    while file_part_start(&head, &boundary).is_none() && head.len() < FIELDS_MAX {
        match stream.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(e)) => {
                failed = Some(e);
                break;
            }
            None => break,
        }
    }
    let fields = file_part_start(&head, &boundary).and_then(|end| Form::read(&head[..end], &boundary));
    if let Some(form) = fields {
        if let Some(acl) = form.field("acl").and_then(|v| HeaderValue::from_bytes(v).ok()) {
            parts.headers.insert("x-amz-acl", acl);
        }
        if let Some(rewritten) = form.with_file_name(&head) {
            let grown = rewritten.len() as i64 - head.len() as i64;
            head = rewritten;
            let length = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<i64>().ok());
            if let Some(length) = length {
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(length + grown));
            }
        }
    }
    let head = futures::stream::iter([Ok::<Bytes, axum::Error>(Bytes::from(head))]);
    let failed = futures::stream::iter(failed.map(Err));
    let body = Body::from_stream(head.chain(failed).chain(stream));
    next.run(Request::from_parts(parts, body)).await
}

/// The multipart boundary of a form upload to a bucket, if this is one.
fn boundary_of(request: &Request) -> Option<String> {
    if request.method() != Method::POST || request.uri().path().trim_matches('/').contains('/') {
        return None;
    }
    let content_type = request.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (name, value) = p.trim().split_once('=')?;
        name.eq_ignore_ascii_case("boundary")
            .then(|| value.trim_matches('"').to_string())
    })
}

/// Where the `file` part's headers end in `head`, once read that far.
fn file_part_start(head: &[u8], boundary: &str) -> Option<usize> {
    let form = Form::parts(head, boundary)?;
    form.into_iter().find(|p| p.name == "file").map(|p| p.value.start)
}

/// One part of the form: its name, file name, and where its value lies.
struct Part {
    name: String,
    file_name: Option<String>,
    value: std::ops::Range<usize>,
}

/// The fields of a form read up to its file part.
struct Form {
    parts: Vec<Part>,
    head_len: usize,
    values: Vec<Vec<u8>>,
}

impl Form {
    fn read(head: &[u8], boundary: &str) -> Option<Form> {
        let parts = Self::parts(head, boundary)?;
        let values = parts.iter().map(|p| head[p.value.clone()].to_vec()).collect();
        Some(Form {
            parts,
            head_len: head.len(),
            values,
        })
    }

    /// The parts whose headers are complete in `head` (a value still being
    /// read runs to the end of `head`).
    fn parts(head: &[u8], boundary: &str) -> Option<Vec<Part>> {
        let delimiter = format!("--{boundary}");
        let mut at = find(head, delimiter.as_bytes(), 0)? + delimiter.len();
        let mut parts = Vec::new();
        loop {
            if !head[at..].starts_with(b"\r\n") {
                return Some(parts);
            }
            let headers_end = find(head, b"\r\n\r\n", at)?;
            // `get`: a part may end its headers where they begin (found by the fuzzer).
            let headers = std::str::from_utf8(head.get(at + 2..headers_end)?).ok()?;
            let start = headers_end + 4;
            let end = find(head, format!("\r\n{delimiter}").as_bytes(), start);
            let (name, file_name) = disposition(headers)?;
            let is_file = name == "file";
            parts.push(Part {
                name,
                file_name,
                value: start..end.unwrap_or(head.len()),
            });
            match end {
                Some(end) if !is_file => at = end + 2 + delimiter.len(),
                _ => return Some(parts),
            }
        }
    }

    fn field(&self, name: &str) -> Option<&[u8]> {
        let i = self
            .parts
            .iter()
            .position(|p| p.name.eq_ignore_ascii_case(name))?;
        Some(&self.values[i])
    }

    /// `head` with `${filename}` in the key replaced by the file's name,
    /// if it holds one.
    fn with_file_name(&self, head: &[u8]) -> Option<Vec<u8>> {
        let file_name = self.parts.iter().find(|p| p.name == "file")?.file_name.clone()?;
        let key = self.parts.iter().find(|p| p.name.eq_ignore_ascii_case("key"))?;
        let value = std::str::from_utf8(&head[key.value.clone()]).ok()?;
        if !value.contains("${filename}") || key.value.end > self.head_len {
            return None;
        }
        // A browser sends the bare name; older ones sent a path.
        let base = file_name.rsplit(['/', '\\']).next().unwrap_or(&file_name);
        let mut out = head[..key.value.start].to_vec();
        out.extend_from_slice(value.replace("${filename}", base).as_bytes());
        out.extend_from_slice(&head[key.value.end..]);
        Some(out)
    }
}

/// The `name` and `filename` of a part's Content-Disposition header.
fn disposition(headers: &str) -> Option<(String, Option<String>)> {
    let line = headers
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
    let (mut name, mut file_name) = (None, None);
    for param in line.split(';').skip(1) {
        let Some((key, value)) = param.trim().split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(value),
            "filename" => file_name = Some(value),
            _ => {}
        }
    }
    Some((name?, file_name))
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// For the fuzz target: the form's fields read from arbitrary bytes.
pub(crate) fn fuzz(data: &[u8]) {
    let boundary = "XX";
    if let Some(end) = file_part_start(data, boundary) {
        if let Some(form) = Form::read(&data[..end], boundary) {
            let _ = form.field("acl");
            let _ = form.with_file_name(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(key: &str, extra: &str) -> Vec<u8> {
        format!(
            "--XX\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n{key}\r\n{extra}--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"n.txt\"\r\nContent-Type: text/plain\r\n\r\nbytes\r\n--XX--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn the_file_name_fills_the_key() {
        let body = body_of(
            "up/${filename}",
            "--XX\r\nContent-Disposition: form-data; name=\"acl\"\r\n\r\npublic-read\r\n",
        );
        let end = file_part_start(&body, "XX").expect("the file part");
        let form = Form::read(&body[..end], "XX").expect("fields");
        assert_eq!(form.field("acl"), Some(&b"public-read"[..]));
        let rewritten = form.with_file_name(&body[..end]).expect("rewritten");
        let text = String::from_utf8(rewritten).unwrap();
        assert!(text.contains("\r\n\r\nup/n.txt\r\n--XX"), "{text}");
        // A key without the placeholder is left alone.
        let plain = body_of("up/fixed", "");
        let end = file_part_start(&plain, "XX").unwrap();
        assert!(Form::read(&plain[..end], "XX")
            .unwrap()
            .with_file_name(&plain[..end])
            .is_none());
    }

    #[test]
    fn a_part_without_headers_is_no_form() {
        assert!(file_part_start(b"--XX\r\n\r\n", "XX").is_none());
    }

    #[test]
    fn a_form_cut_short_waits_for_more() {
        let body = body_of("k", "");
        let cut = body.len() - 15;
        assert!(file_part_start(&body[..30], "XX").is_none());
        assert!(file_part_start(&body[..cut], "XX").is_some());
    }
}
