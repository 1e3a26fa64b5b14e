//! The S3 calls the filesystem makes. Requests are signed as presigned URLs
//! (rusty-s3, SigV4) and sent with reqwest, so the client speaks standard S3
//! to any server; `rename` uses the bucketfs router's extension when the
//! server has it. Server errors and dropped connections are retried with
//! backoff, so a router or node dying under a long copy does not fail it.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::StatusCode;
use rusty_s3::actions::{ListObjectsV2, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};

use crate::error::FsError;

const SIGNED_FOR: Duration = Duration::from_secs(600);
const ATTEMPTS: u32 = 6;

/// What a HEAD tells about an object.
#[derive(Debug, Clone)]
pub struct ObjectMeta {
    pub size: u64,
    pub etag: String,
    pub mtime: SystemTime,
}

/// One page of a listing with delimiter `/`.
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<(String, ObjectMeta)>,
    pub prefixes: Vec<String>,
    pub next: Option<String>,
}

pub struct S3 {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
}

impl S3 {
    pub fn new(
        endpoint: &str,
        bucket: &str,
        access_key: &str,
        secret_key: &str,
        region: &str,
    ) -> anyhow::Result<Self> {
        let url = endpoint.parse()?;
        Ok(Self {
            bucket: Bucket::new(url, UrlStyle::Path, bucket.to_string(), region.to_string())?,
            credentials: Credentials::new(access_key, secret_key),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()?,
        })
    }

    /// Sends a request built by `make`, retrying 5xx answers and transport errors.
    async fn send(&self, make: impl Fn() -> reqwest::RequestBuilder) -> Result<reqwest::Response, FsError> {
        let mut delay = Duration::from_millis(100);
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            match make().send().await {
                Ok(resp) if resp.status().is_server_error() => last = format!("status {}", resp.status()),
                Ok(resp) => return Ok(resp),
                Err(e) => last = e.to_string(),
            }
            tracing::warn!(attempt, error = %last, "S3 request failed; retrying");
        }
        Err(FsError::Io(last))
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, FsError> {
        let url = self
            .bucket
            .head_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        let resp = self.send(|| self.http.head(url.clone())).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(meta_from_headers(resp.headers()))),
            s => Err(FsError::from_status(s)),
        }
    }

    pub async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes, FsError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        let range = format!("bytes={}-{}", start, start + len - 1);
        let resp = self
            .send(|| self.http.get(url.clone()).header("range", range.clone()))
            .await?;
        match resp.status() {
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(Bytes::new()),
            s if s.is_success() => resp.bytes().await.map_err(|e| FsError::Io(e.to_string())),
            s => Err(FsError::from_status(s)),
        }
    }

    pub async fn put(
        &self,
        key: &str,
        body: Bytes,
        metadata: &HashMap<String, String>,
    ) -> Result<ObjectMeta, FsError> {
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        let headers: Vec<(String, String)> = metadata
            .iter()
            .map(|(k, v)| (format!("x-amz-meta-{k}"), v.clone()))
            .collect();
        for (k, v) in &headers {
            action.headers_mut().insert(k.clone(), v.clone());
        }
        let url = action.sign(SIGNED_FOR);
        let resp = self
            .send(|| {
                let mut req = self.http.put(url.clone()).body(body.clone());
                for (k, v) in &headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                req
            })
            .await?;
        if !resp.status().is_success() {
            return Err(FsError::from_status(resp.status()));
        }
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim_matches('"');
        Ok(ObjectMeta {
            size: body.len() as u64,
            etag: etag.to_string(),
            mtime: SystemTime::now(),
        })
    }

    pub async fn delete(&self, key: &str) -> Result<(), FsError> {
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        let resp = self.send(|| self.http.delete(url.clone())).await?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            s => Err(FsError::from_status(s)),
        }
    }

    /// One page of the keys under `prefix`, folded at `/`.
    pub async fn list(&self, prefix: &str, token: Option<&str>, max_keys: usize) -> Result<Listing, FsError> {
        let mut action = ListObjectsV2::new(&self.bucket, Some(&self.credentials));
        action.with_prefix(prefix);
        action.with_delimiter("/");
        action.with_max_keys(max_keys);
        if let Some(t) = token {
            action.with_continuation_token(t);
        }
        let url = action.sign(SIGNED_FOR);
        let resp = self.send(|| self.http.get(url.clone())).await?;
        if !resp.status().is_success() {
            return Err(FsError::from_status(resp.status()));
        }
        let text = resp.text().await.map_err(|e| FsError::Io(e.to_string()))?;
        let parsed = ListObjectsV2::parse_response(&text).map_err(|e| FsError::Io(e.to_string()))?;
        Ok(Listing {
            objects: parsed
                .contents
                .into_iter()
                .map(|o| {
                    let mtime = o
                        .last_modified
                        .as_deref()
                        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                        .map(SystemTime::from)
                        .unwrap_or(SystemTime::UNIX_EPOCH);
                    let meta = ObjectMeta {
                        size: o.size.unwrap_or(0),
                        etag: o.etag.unwrap_or_default().trim_matches('"').to_string(),
                        mtime,
                    };
                    (o.key, meta)
                })
                .collect(),
            prefixes: parsed.common_prefixes.into_iter().map(|p| p.prefix).collect(),
            next: parsed.next_continuation_token,
        })
    }

    /// Moves a key (or every key under a prefix) with the router's rename
    /// extension, in one transaction and by reference.
    pub async fn rename(&self, from: &str, to: &str, prefix: bool, no_replace: bool) -> Result<(), FsError> {
        let mut url = self.bucket.base_url().clone();
        url.set_query(Some("bucketfs-rename"));
        let encode = |s: &str| -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        };
        let mut headers = vec![
            ("x-bucketfs-rename-from".to_string(), encode(from)),
            ("x-bucketfs-rename-to".to_string(), encode(to)),
        ];
        if prefix {
            headers.push(("x-bucketfs-rename-prefix".into(), "true".into()));
        }
        if no_replace {
            headers.push(("x-bucketfs-no-replace".into(), "true".into()));
        }
        let signed = rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            rusty_s3::Method::Post,
            url,
            self.credentials.key(),
            self.credentials.secret(),
            None,
            self.bucket.region(),
            SIGNED_FOR.as_secs(),
            std::iter::once(("bucketfs-rename", "")),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let resp = self
            .send(|| {
                let mut req = self.http.post(signed.clone());
                for (k, v) in &headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                req
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::PRECONDITION_FAILED => Err(FsError::Exists),
            s => Err(FsError::from_status(s)),
        }
    }
}

fn meta_from_headers(headers: &reqwest::header::HeaderMap) -> ObjectMeta {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    ObjectMeta {
        size: get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0),
        etag: get("etag").unwrap_or("").trim_matches('"').to_string(),
        mtime: get("last-modified")
            .and_then(|v| jiff::fmt::rfc2822::parse(v).ok())
            .map(|z| SystemTime::from(z.timestamp()))
            .unwrap_or(SystemTime::UNIX_EPOCH),
    }
}
