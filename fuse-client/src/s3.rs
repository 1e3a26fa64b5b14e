//! The store seam (`store.rs`) over HTTP: the S3 calls the filesystem
//! makes. Requests are signed as presigned URLs
//! (SigV4 through rusty-s3's signer) and sent with reqwest, so the client
//! speaks standard S3 to any server; `rename` and small `put`s use the
//! bucketfs router's extensions when the server has them, and fall back to
//! copy and delete, and to one PUT each, when it does not. Server errors and dropped connections are retried with
//! backoff, so a router or node dying under a long copy does not fail it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bucketfs_common::extension::{
    format_patch_ranges, parse_links, BATCH_QUERY, ETAG_FROM_CHUNKS, ETAG_HEADER, FOLLOW_LINKS_HEADER,
    LINKS_HEADER, LINK_FROM_HEADER, LINK_QUERY, LINK_TO_HEADER, METADATA_HEADER, METADATA_ITEMS, META_PREFIX,
    NO_REPLACE_HEADER, PATCH_BASE_HEADER, PATCH_QUERY, PATCH_RANGES_HEADER, PATCH_SIZE_HEADER,
    RENAME_FROM_HEADER, RENAME_PREFIX_HEADER, RENAME_QUERY, RENAME_TO_HEADER,
};
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use rusty_s3::{Bucket, Credentials, UrlStyle};

use crate::batch;
use crate::error::FsError;
use crate::store::{
    BlockBuffer, Listing, LockAnswer, LockRange, Metadata, ObjectInfo, ObjectStore, Source, VersionEntry,
    VersionListing,
};
use crate::xml::{encode_path, parse_iso, unescape, url_decode, xml_blocks, xml_field};

const SIGNED_FOR: Duration = Duration::from_secs(3600);
const ATTEMPTS: u32 = 8;

#[path = "s3_check.rs"]
mod check;
#[path = "s3_ext.rs"]
mod ext;
#[path = "s3_history.rs"]
pub mod history;

pub struct S3 {
    /// This client, for the task that sends queued batches.
    me: Weak<S3>,
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
    /// False once the server turned the rename extension down.
    server_renames: AtomicBool,
    /// The server answered a patch as a stranger to it: upload whole objects.
    server_patches: AtomicBool,
    /// False once the server turned the batch extension down.
    server_batches: AtomicBool,
    /// Small puts waiting for a batch call.
    batches: batch::Queue,
}

/// One request to sign and send.
struct Call<'a> {
    method: Method,
    key: Option<&'a str>,
    query: Vec<(&'a str, String)>,
    headers: Vec<(String, String)>,
    body: Bytes,
    attempts: u32,
}

impl<'a> Call<'a> {
    fn new(method: Method, key: Option<&'a str>) -> Self {
        Self {
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: Bytes::new(),
            attempts: ATTEMPTS,
        }
    }

    fn query(mut self, k: &'a str, v: impl Into<String>) -> Self {
        self.query.push((k, v.into()));
        self
    }

    fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_ascii_lowercase(), v.into()));
        self
    }

    /// An object's or a part's bytes, sent with their crc32c (the store
    /// checks it, so the bytes are covered from here to the disk) and asking
    /// for an ETag that names the stored chunks: the daemon needs ETags only
    /// to change with every write, and MD5 was a tenth of a large write's CPU.
    fn data(self, body: Bytes) -> Self {
        use base64::Engine;
        let crc = crc32c::crc32c(&body).to_be_bytes();
        let mut call = self
            .header(
                "x-amz-checksum-crc32c",
                base64::engine::general_purpose::STANDARD.encode(crc),
            )
            .header(ETAG_HEADER, ETAG_FROM_CHUNKS);
        call.body = body;
        call
    }

    fn metadata(mut self, meta: &Metadata) -> Self {
        for (k, v) in meta {
            self = self.header(&format!("{META_PREFIX}{k}"), v.clone());
        }
        self
    }

    fn body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }
}

impl S3 {
    pub fn new(
        endpoint: &str,
        bucket: &str,
        access_key: &str,
        secret_key: &str,
        region: &str,
        ca_file: Option<&std::path::Path>,
    ) -> anyhow::Result<Arc<Self>> {
        let url = endpoint.parse()?;
        let bucket = Bucket::new(url, UrlStyle::Path, bucket.to_string(), region.to_string())?;
        // Idle connections are dropped before the server's keep-alive
        // timeout (HAProxy's 30 s in the quick start, a router's 20 s)
        // closes them under a request.
        let mut http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(64)
            .pool_idle_timeout(Duration::from_secs(15));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        }
        let http = http.build()?;
        Ok(Arc::new_cyclic(|me| Self {
            me: me.clone(),
            bucket,
            credentials: Credentials::new(access_key, secret_key),
            http,
            server_renames: AtomicBool::new(true),
            server_patches: AtomicBool::new(true),
            server_batches: AtomicBool::new(true),
            batches: batch::Queue::default(),
        }))
    }

    /// Signs and sends `call`, retrying 5xx answers and transport errors.
    async fn send(&self, mut call: Call<'_>) -> Result<reqwest::Response, FsError> {
        let url = match call.key {
            Some(key) => self.bucket.object_url(key),
            None => self.bucket.base_url().clone(),
        };
        call.query.sort();
        call.headers.sort();
        let method = match call.method {
            Method::GET => rusty_s3::Method::Get,
            Method::HEAD => rusty_s3::Method::Head,
            Method::PUT => rusty_s3::Method::Put,
            Method::POST => rusty_s3::Method::Post,
            _ => rusty_s3::Method::Delete,
        };
        let signed = rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            method,
            url,
            self.credentials.key(),
            self.credentials.secret(),
            None,
            self.bucket.region(),
            SIGNED_FOR.as_secs(),
            call.query.iter().map(|(k, v)| (*k, v.as_str())),
            call.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let mut delay = Duration::from_millis(100);
        let mut last = String::new();
        for attempt in 0..call.attempts {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            let mut req = self.http.request(call.method.clone(), signed.clone());
            for (k, v) in &call.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            if !call.body.is_empty() || call.method == Method::PUT {
                req = req.body(call.body.clone());
            }
            let sent = std::time::Instant::now();
            match req.send().await {
                Ok(resp) if retryable(resp.status()) => last = format!("status {}", resp.status()),
                Ok(resp) => {
                    tracing::debug!(
                        method = %call.method,
                        key = call.key.unwrap_or(""),
                        status = resp.status().as_u16(),
                        ms = sent.elapsed().as_secs_f64() * 1e3,
                        "S3 request"
                    );
                    return Ok(resp);
                }
                Err(e) => last = causes(&e.without_url()),
            }
            if attempt + 1 < call.attempts {
                tracing::warn!(attempt, error = %last, "S3 request failed; retrying");
            }
        }
        Err(FsError::Io(last))
    }

    /// Sends `call` and fails unless the answer is a success.
    async fn send_ok(&self, call: Call<'_>) -> Result<reqwest::Response, FsError> {
        let resp = self.send(call).await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(error_of(resp).await)
        }
    }

    /// Sends `call` and answers the body of its successful answer.
    async fn send_text(&self, call: Call<'_>) -> Result<String, FsError> {
        self.send_ok(call)
            .await?
            .text()
            .await
            .map_err(|e| FsError::Io(e.to_string()))
    }

    /// Sends queued small puts, a batch per call, until none is left.
    async fn send_batches(self: Arc<Self>) {
        while let Some(puts) = self.batches.next_batch() {
            self.send_batch(puts).await;
        }
    }

    async fn send_batch(&self, puts: Vec<batch::Put>) {
        if self.server_batches.load(Ordering::Relaxed) {
            use base64::Engine;
            use md5::Digest;
            let body = batch::encode(&puts);
            let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
            let call = Call::new(Method::POST, None)
                .query(BATCH_QUERY, "")
                .header("content-md5", md5)
                .header("content-type", "application/octet-stream")
                .body(body);
            let results = match self.send(call).await {
                Ok(resp) if resp.status().is_success() => match resp.text().await {
                    Ok(text) => batch::decode(&text, puts.len()),
                    Err(e) => Err(FsError::Io(e.to_string())),
                },
                Ok(resp)
                    if matches!(
                        resp.status(),
                        StatusCode::BAD_REQUEST
                            | StatusCode::METHOD_NOT_ALLOWED
                            | StatusCode::NOT_IMPLEMENTED
                    ) =>
                {
                    let e = error_of(resp).await;
                    tracing::info!(error = %e, "the server has no batch extension; one PUT per object");
                    self.server_batches.store(false, Ordering::Relaxed);
                    Ok(Vec::new())
                }
                Ok(resp) => Err(error_of(resp).await),
                Err(e) => Err(e),
            };
            match results {
                Ok(results) if results.len() == puts.len() => {
                    for (put, stored) in puts.into_iter().zip(results) {
                        put.answer(stored);
                    }
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(objects = puts.len(), error = %e, "batch put failed");
                    for put in puts {
                        put.answer(Err(e.clone()));
                    }
                    return;
                }
            }
        }
        for put in puts {
            let stored = self
                .put(&put.key, put.body.clone(), &put.meta)
                .await
                .map(|info| (info.etag, info.version_id));
            put.answer(stored);
        }
    }

    fn copy_source(&self, source: &Source) -> String {
        let path = format!("{}/{}", self.bucket.name(), source.key);
        let mut s = encode_path(&path);
        if let Some(v) = &source.version_id {
            s.push_str("?versionId=");
            s.push_str(v);
        }
        s
    }

    /// ListObjectsV2, asking for each key's metadata (`metadata=true`, which
    /// bucketfs's router answers; other servers ignore it or answer in their
    /// own way, and their listings carry sizes and times only).
    async fn list_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        from: Option<(&'static str, &str)>,
        max_keys: usize,
    ) -> Result<Listing, FsError> {
        let mut call = Call::new(Method::GET, None)
            .query("list-type", "2")
            .query("prefix", prefix)
            .query("encoding-type", "url")
            .query("metadata", "true")
            .query("max-keys", max_keys.to_string());
        if let Some(delimiter) = delimiter {
            call = call.query("delimiter", delimiter);
        }
        if let Some((param, value)) = from {
            call = call.query(param, value);
        }
        let resp = self.send_ok(call).await?;
        let attributes = header(resp.headers(), METADATA_HEADER) == METADATA_ITEMS;
        let text = resp.text().await.map_err(|e| FsError::Io(e.to_string()))?;
        let objects = xml_blocks(&text, "Contents")
            .map(|block| {
                let key = url_decode(&xml_field(block, "Key").unwrap_or_default());
                (key, listed_info(block, attributes))
            })
            .collect();
        let mut prefixes = Vec::new();
        let mut markers = HashMap::new();
        for block in xml_blocks(&text, "CommonPrefixes") {
            let Some(prefix) = xml_field(block, "Prefix").map(|p| url_decode(&p)) else {
                continue;
            };
            if let Some(dir) = xml_blocks(block, "Directory").next().filter(|_| attributes) {
                let marker =
                    (xml_field(dir, "Marker").as_deref() == Some("true")).then(|| listed_info(dir, true));
                markers.insert(prefix.clone(), marker);
            }
            prefixes.push(prefix);
        }
        let truncated = xml_field(&text, "IsTruncated").as_deref() == Some("true");
        Ok(Listing {
            objects,
            prefixes,
            markers,
            next: xml_field(&text, "NextContinuationToken").filter(|_| truncated),
            attributes,
        })
    }

    async fn rename_by_copy(&self, from: &str, to: &str, prefix: bool) -> Result<(), FsError> {
        let mut keys = Vec::new();
        if prefix {
            let mut token = None;
            loop {
                let mut call = Call::new(Method::GET, None)
                    .query("list-type", "2")
                    .query("prefix", from)
                    .query("encoding-type", "url");
                if let Some(t) = &token {
                    call = call.query("continuation-token", String::clone(t));
                }
                let text = self.send_text(call).await?;
                keys.extend(
                    xml_blocks(&text, "Contents")
                        .filter_map(|b| xml_field(b, "Key"))
                        .map(|k| url_decode(&k)),
                );
                token = xml_field(&text, "NextContinuationToken");
                if xml_field(&text, "IsTruncated").as_deref() != Some("true") || token.is_none() {
                    break;
                }
            }
        } else {
            keys.push(from.to_string());
        }
        for key in &keys {
            let dest = format!("{to}{}", &key[from.len()..]);
            let source = Source {
                key: key.clone(),
                ..Source::default()
            };
            let call =
                Call::new(Method::PUT, Some(&dest)).header("x-amz-copy-source", self.copy_source(&source));
            self.send_ok(call).await?;
        }
        for key in &keys {
            self.delete(key).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ObjectStore for S3 {
    async fn head(&self, key: &str, version_id: Option<&str>) -> Result<Option<ObjectInfo>, FsError> {
        let mut call = Call::new(Method::HEAD, Some(key));
        if let Some(v) = version_id {
            call = call.query("versionId", v);
        }
        let resp = self.send(call).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(info_from_headers(resp.headers()))),
            // A delete marker read by version id.
            StatusCode::METHOD_NOT_ALLOWED => Ok(None),
            _ => Err(error_of(resp).await),
        }
    }

    /// Bytes `start..start+len` of the object `source` names.
    async fn get_range(&self, source: &Source, start: u64, len: u64) -> Result<Bytes, FsError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let mut call = Call::new(Method::GET, Some(&source.key));
        match &source.version_id {
            Some(v) => call = call.query("versionId", v.clone()),
            None if !source.etag.is_empty() => call = call.header("if-match", format!("\"{}\"", source.etag)),
            None => {}
        }
        let call = call.header("range", format!("bytes={}-{}", start, start + len - 1));
        let resp = self.send(call).await?;
        match resp.status() {
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(Bytes::new()),
            StatusCode::PRECONDITION_FAILED => Err(FsError::Stale),
            s if s.is_success() => resp.bytes().await.map_err(|e| FsError::Io(e.to_string())),
            _ => Err(error_of(resp).await),
        }
    }

    /// As `get_range`, cut into buffers of `block` bytes each (the last may
    /// be short), filled as the body arrives: cached blocks then own their
    /// memory, where slices of one buffer would keep it all alive while any
    /// one of them is cached. Each buffer comes from `buffer` (which may
    /// hand out a recycled one).
    async fn get_range_blocks(
        &self,
        source: &Source,
        start: u64,
        len: u64,
        block: usize,
        buffer: BlockBuffer<'_>,
    ) -> Result<Vec<Bytes>, FsError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let mut call = Call::new(Method::GET, Some(&source.key));
        match &source.version_id {
            Some(v) => call = call.query("versionId", v.clone()),
            None if !source.etag.is_empty() => call = call.header("if-match", format!("\"{}\"", source.etag)),
            None => {}
        }
        let call = call.header("range", format!("bytes={}-{}", start, start + len - 1));
        let mut resp = self.send(call).await?;
        match resp.status() {
            StatusCode::RANGE_NOT_SATISFIABLE => return Ok(Vec::new()),
            StatusCode::PRECONDITION_FAILED => return Err(FsError::Stale),
            s if s.is_success() => {}
            _ => return Err(error_of(resp).await),
        }
        let mut blocks = Vec::new();
        let mut current = buffer();
        while let Some(mut frame) = resp.chunk().await.map_err(|e| FsError::Io(e.to_string()))? {
            while !frame.is_empty() {
                let n = (block - current.len()).min(frame.len());
                current.extend_from_slice(&frame.split_to(n));
                if current.len() == block {
                    let full = std::mem::replace(&mut current, buffer());
                    blocks.push(full.freeze());
                }
            }
        }
        if !current.is_empty() {
            blocks.push(current.freeze());
        }
        Ok(blocks)
    }

    /// Stores `body` as the new version of `key`, like `put`, but for a
    /// background commit: on a bucketfs router a small body waits for the
    /// batch call in flight and shares the next with the puts queued
    /// meanwhile (less work per object for the store, more latency).
    async fn put_batched(&self, key: &str, body: Bytes, meta: &Metadata) -> Result<ObjectInfo, FsError> {
        let size = body.len() as u64;
        if body.len() > batch::MAX_OBJECT || !self.server_batches.load(Ordering::Relaxed) {
            return self.put(key, body, meta).await;
        }
        let (put, answer) = batch::Put::new(key, body, meta);
        if self.batches.push(put) {
            if let Some(me) = self.me.upgrade() {
                tokio::spawn(me.send_batches());
            }
        }
        let (etag, version_id) = answer
            .await
            .unwrap_or_else(|_| Err(FsError::Io("a batched put was dropped".into())))?;
        Ok(ObjectInfo {
            size,
            etag,
            version_id,
            mtime: SystemTime::now(),
            metadata: meta.clone(),
            links: None,
        })
    }

    /// Stores `body` as the new version of `key` (one PutObject call).
    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        meta: &Metadata,
        base: Option<Option<&str>>,
    ) -> Result<ObjectInfo, FsError> {
        self.put_call(key, body, meta, base).await
    }

    async fn patch(
        &self,
        base: &Source,
        size: u64,
        ranges: &[(u64, u64)],
        body: Bytes,
        meta: &Metadata,
    ) -> Result<ObjectInfo, FsError> {
        self.patch_call(base, size, ranges, body, meta).await
    }

    /// Replaces the metadata of `source` by copying the object onto itself
    /// (by reference on bucketfs: no data moves).
    async fn copy(&self, source: &Source, key: &str, meta: &Metadata) -> Result<String, FsError> {
        let call = Call::new(Method::PUT, Some(key))
            .header("x-amz-copy-source", self.copy_source(source))
            .header("x-amz-metadata-directive", "REPLACE")
            .header(FOLLOW_LINKS_HEADER, "true")
            .metadata(meta);
        let call = match source.etag.is_empty() {
            true => call,
            false => call.header("x-amz-copy-source-if-match", format!("\"{}\"", source.etag)),
        };
        let resp = self.send(call).await?;
        if resp.status() == StatusCode::PRECONDITION_FAILED {
            return Err(FsError::Stale);
        }
        if !resp.status().is_success() {
            return Err(error_of(resp).await);
        }
        let text = resp.text().await.map_err(|e| FsError::Io(e.to_string()))?;
        etag_of_result(&text)
    }

    async fn delete(&self, key: &str) -> Result<(), FsError> {
        let resp = self.send(Call::new(Method::DELETE, Some(key))).await?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(error_of(resp).await),
        }
    }

    /// Deletes up to 1,000 keys with one DeleteObjects call; answers the
    /// keys the store could not delete, with their error codes.
    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, String)>, FsError> {
        let objects: Vec<rusty_s3::actions::ObjectIdentifier> = keys
            .iter()
            .map(|k| rusty_s3::actions::ObjectIdentifier::new(k.clone()))
            .collect();
        let mut action = rusty_s3::actions::DeleteObjects::new(&self.bucket, None, objects.iter());
        action.set_quiet(true);
        let (body, md5) = action.body_with_md5();
        let call = Call::new(Method::POST, None)
            .query("delete", "")
            .header("content-md5", md5)
            .body(Bytes::from(body));
        let text = self.send_text(call).await?;
        let answer = rusty_s3::actions::DeleteObjectsResponse::parse(&text)
            .map_err(|e| FsError::Io(format!("unreadable DeleteObjects answer: {e}")))?;
        Ok(answer.errors.into_iter().map(|e| (e.key, e.code)).collect())
    }

    async fn create_upload(&self, key: &str, meta: &Metadata) -> Result<String, FsError> {
        let call = Call::new(Method::POST, Some(key))
            .query("uploads", "")
            .metadata(meta);
        let text = self.send_text(call).await?;
        xml_field(&text, "UploadId").ok_or_else(|| FsError::Io(format!("no UploadId in {text}")))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        body: Bytes,
    ) -> Result<String, FsError> {
        let call = Call::new(Method::PUT, Some(key))
            .query("partNumber", number.to_string())
            .query("uploadId", upload)
            .data(body);
        let resp = self.send_ok(call).await?;
        Ok(header(resp.headers(), "etag").trim_matches('"').to_string())
    }

    /// A part made of bytes `start..end` of `source`, by reference.
    async fn upload_part_copy(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        source: &Source,
        start: u64,
        end: u64,
    ) -> Result<String, FsError> {
        let mut call = Call::new(Method::PUT, Some(key))
            .query("partNumber", number.to_string())
            .query("uploadId", upload)
            .header("x-amz-copy-source", self.copy_source(source))
            .header("x-amz-copy-source-range", format!("bytes={}-{}", start, end - 1));
        if source.version_id.is_none() && !source.etag.is_empty() {
            call = call.header("x-amz-copy-source-if-match", format!("\"{}\"", source.etag));
        }
        let resp = self.send(call).await?;
        if resp.status() == StatusCode::PRECONDITION_FAILED {
            return Err(FsError::Stale);
        }
        if !resp.status().is_success() {
            return Err(error_of(resp).await);
        }
        let text = resp.text().await.map_err(|e| FsError::Io(e.to_string()))?;
        etag_of_result(&text)
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload: &str,
        etags: &[String],
    ) -> Result<ObjectInfo, FsError> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, etag) in etags.iter().enumerate() {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>\"{}\"</ETag></Part>",
                i + 1,
                etag
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let call = Call::new(Method::POST, Some(key))
            .query("uploadId", upload)
            .header(FOLLOW_LINKS_HEADER, "true")
            .body(Bytes::from(xml));
        let resp = self.send_ok(call).await?;
        let version_id = resp
            .headers()
            .get("x-amz-version-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.map_err(|e| FsError::Io(e.to_string()))?;
        Ok(ObjectInfo {
            etag: etag_of_result(&text)?,
            version_id,
            mtime: SystemTime::now(),
            ..ObjectInfo::default()
        })
    }

    async fn abort_upload(&self, key: &str, upload: &str) {
        let call = Call::new(Method::DELETE, Some(key)).query("uploadId", upload);
        if let Err(e) = self.send(call).await {
            tracing::warn!(%key, error = %e, "could not abort a multipart upload");
        }
    }

    /// One page of the keys under `prefix`, folded at `/`.
    async fn list(&self, prefix: &str, token: Option<&str>, max_keys: usize) -> Result<Listing, FsError> {
        self.list_page(
            prefix,
            Some("/"),
            token.map(|t| ("continuation-token", t)),
            max_keys,
        )
        .await
    }

    /// One page of the keys under `prefix` that sort after `after`, folded at `/`.
    async fn list_after(&self, prefix: &str, after: &str, max_keys: usize) -> Result<Listing, FsError> {
        self.list_page(prefix, Some("/"), Some(("start-after", after)), max_keys)
            .await
    }

    /// The first `max_keys` keys under `prefix`, at any depth (no delimiter).
    async fn list_tree(&self, prefix: &str, max_keys: usize) -> Result<Listing, FsError> {
        self.list_page(prefix, None, None, max_keys).await
    }

    /// One page of every version under `prefix`, folded at `/`.
    async fn snapshots(&self) -> Result<Vec<(String, SystemTime)>, FsError> {
        Ok(self.snapshot_times().await)
    }

    async fn list_versions(
        &self,
        prefix: &str,
        marker: Option<&(String, String)>,
    ) -> Result<VersionListing, FsError> {
        let mut call = Call::new(Method::GET, None)
            .query("versions", "")
            .query("prefix", prefix)
            .query("delimiter", "/")
            .query("encoding-type", "url");
        if let Some((key, version)) = marker {
            call = call
                .query("key-marker", key.clone())
                .query("version-id-marker", version.clone());
        }
        let text = self.send_text(call).await?;
        let entry = |block: &str, delete_marker: bool| VersionEntry {
            key: url_decode(&xml_field(block, "Key").unwrap_or_default()),
            version_id: xml_field(block, "VersionId").unwrap_or_default(),
            delete_marker,
            info: ObjectInfo {
                size: xml_field(block, "Size").and_then(|s| s.parse().ok()).unwrap_or(0),
                etag: xml_field(block, "ETag")
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string(),
                version_id: xml_field(block, "VersionId"),
                mtime: xml_field(block, "LastModified").map_or(SystemTime::UNIX_EPOCH, |t| parse_iso(&t)),
                metadata: HashMap::new(),
                links: None,
            },
        };
        let mut versions: Vec<VersionEntry> = xml_blocks(&text, "Version").map(|b| entry(b, false)).collect();
        versions.extend(xml_blocks(&text, "DeleteMarker").map(|b| entry(b, true)));
        let prefixes = xml_blocks(&text, "CommonPrefixes")
            .filter_map(|b| xml_field(b, "Prefix"))
            .map(|p| url_decode(&p))
            .collect();
        let truncated = xml_field(&text, "IsTruncated").as_deref() == Some("true");
        let next = match (
            xml_field(&text, "NextKeyMarker"),
            xml_field(&text, "NextVersionIdMarker"),
        ) {
            (Some(k), v) if truncated => Some((url_decode(&k), v.unwrap_or_default())),
            _ => None,
        };
        Ok(VersionListing {
            versions,
            prefixes,
            next,
        })
    }

    async fn rename(&self, from: &str, to: &str, prefix: bool, no_replace: bool) -> Result<(), FsError> {
        self.rename_keys(from, to, prefix, no_replace).await
    }

    async fn link_names(&self, key: &str) -> Result<Vec<String>, FsError> {
        self.names_of_group(key).await
    }

    async fn link(&self, from: &str, to: &str, meta: &Metadata) -> Result<ObjectInfo, FsError> {
        self.link_key(from, to, meta).await
    }

    async fn lock(
        &self,
        key: &str,
        session: &str,
        owner: u64,
        change: &LockRange,
    ) -> Result<LockAnswer, FsError> {
        self.change_lock_call(key, session, owner, change).await
    }

    async fn test_lock(
        &self,
        key: &str,
        session: &str,
        owner: u64,
        want: &LockRange,
    ) -> Result<Option<LockRange>, FsError> {
        self.test_lock_call(key, session, owner, want).await
    }

    async fn changes(&self, after: Option<u64>, wait: bool) -> Result<crate::store::ChangePage, FsError> {
        self.changes_call(after, wait).await
    }

    async fn renew_locks(&self, session: &str, release: bool) -> Result<(), FsError> {
        self.renew_call(session, release).await
    }
}

/// Server errors worth another try: not "not implemented" nor "disk full".
fn retryable(status: StatusCode) -> bool {
    status.is_server_error()
        && status != StatusCode::NOT_IMPLEMENTED
        && status != StatusCode::INSUFFICIENT_STORAGE
}

fn header<'h>(headers: &'h reqwest::header::HeaderMap, name: &str) -> &'h str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn info_from_headers(headers: &reqwest::header::HeaderMap) -> ObjectInfo {
    let metadata = headers
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str().strip_prefix(META_PREFIX)?;
            Some((name.to_string(), v.to_str().ok()?.to_string()))
        })
        .collect();
    ObjectInfo {
        size: header(headers, "content-length").parse().unwrap_or(0),
        etag: header(headers, "etag").trim_matches('"').to_string(),
        version_id: headers
            .get("x-amz-version-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| *v != "null")
            .map(str::to_string),
        mtime: jiff::fmt::rfc2822::parse(header(headers, "last-modified"))
            .map(|z| SystemTime::from(z.timestamp()))
            .unwrap_or(SystemTime::UNIX_EPOCH),
        metadata,
        links: parse_links(header(headers, LINKS_HEADER)),
    }
}

/// `e` and its causes, outermost first ("connection refused" is a cause).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The error a failed answer stands for, with the server's code in the log.
async fn error_of(resp: reqwest::Response) -> FsError {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let code = xml_field(&text, "Code").unwrap_or_default();
    tracing::debug!(%status, %code, "S3 error answer");
    FsError::from_s3(status, &code)
}

fn etag_of_result(text: &str) -> Result<String, FsError> {
    if text.contains("<Error>") {
        let code = xml_field(text, "Code").unwrap_or_default();
        return Err(FsError::from_s3(StatusCode::INTERNAL_SERVER_ERROR, &code));
    }
    xml_field(text, "ETag")
        .map(|e| unescape(&e).trim_matches('"').to_string())
        .ok_or_else(|| FsError::Io(format!("no ETag in {text}")))
}

/// A listed object's info; with `attributes`, its version id and metadata too.
fn listed_info(block: &str, attributes: bool) -> ObjectInfo {
    let mut info = ObjectInfo {
        size: xml_field(block, "Size").and_then(|s| s.parse().ok()).unwrap_or(0),
        etag: xml_field(block, "ETag")
            .unwrap_or_default()
            .trim_matches('"')
            .to_string(),
        mtime: xml_field(block, "LastModified").map_or(SystemTime::UNIX_EPOCH, |t| parse_iso(&t)),
        ..ObjectInfo::default()
    };
    if attributes {
        info.version_id = xml_field(block, "VersionId").filter(|v| v != "null");
        info.metadata = xml_blocks(block, "Item")
            .filter_map(|item| Some((xml_field(item, "Key")?, xml_field(item, "Value")?)))
            .collect();
        info.links = xml_field(block, "Links").and_then(|l| parse_links(&l));
    }
    info
}
