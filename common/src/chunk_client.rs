//! The client side of the chunk API ([`crate::chunk_api`]): one small type
//! that sends each request to a node and reads its answer, so that the
//! router's replication logic speaks of chunks and nodes, never of URLs,
//! headers and status codes.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus_client::encoding::EncodeLabelSet;

use crate::chunk_api::{self, ErrorCode, CRC32C_HEADER, ERROR_HEADER};
use crate::metrics::Latencies;
use crate::peer_auth::{
    self, ClusterSecret, ContentHasher, CONTENT_HASH_HEADER, DATE_HEADER, SIGNATURE_HEADER,
};
use crate::{request_id, Fsync};

/// How long a connection attempt to a node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one request may take in all (an 8 MiB chunk on a slow disk).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a delete may take: a node that died a moment ago is still
/// listed, and its port may already belong to something that never answers.
const DELETE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a node may take to list its chunks.
const INVENTORY_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a chunk request failed, as far as a caller chooses what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// The node holds the chunk but its bytes fail their checksums.
    #[error("the replica is corrupt")]
    Corrupt,
    /// The node does not hold the chunk.
    #[error("the node does not hold the chunk")]
    Missing,
    /// Anything else: the node is unreachable, busy, full, or refused.
    #[error("{0}")]
    Failed(String),
}

impl ChunkError {
    /// The outcome label of a node request that ended in this error.
    fn outcome(&self) -> &'static str {
        match self {
            ChunkError::Corrupt => "corrupt",
            ChunkError::Missing => "missing",
            ChunkError::Failed(_) => "failed",
        }
    }
}

/// The labels of a node request's latency: `put`, `get` or `delete`, and
/// `ok`, `missing`, `corrupt` or `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeRequest {
    pub op: &'static str,
    pub outcome: &'static str,
}

/// A body kept as the buffers it was received in, so that passing it on
/// copies nothing.
#[derive(Debug, Default)]
pub struct Frames(Vec<Bytes>);

impl Frames {
    pub fn push(&mut self, frame: Bytes) {
        if !frame.is_empty() {
            self.0.push(frame);
        }
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn crc32c(&self) -> u32 {
        self.0.iter().fold(0, |crc, f| crc32c::crc32c_append(crc, f))
    }

    /// The BLAKE3 hash of the whole body ([`peer_auth::content_hash`]).
    pub fn content_hash(&self) -> String {
        let mut hasher = ContentHasher::default();
        self.0.iter().for_each(|f| hasher.update(f));
        hasher.finish()
    }

    /// One contiguous buffer (copied only when there is more than one frame).
    pub fn concat(self) -> Bytes {
        match self.0.len() {
            0 => Bytes::new(),
            1 => self.0.into_iter().next().unwrap_or_default(),
            _ => self.0.concat().into(),
        }
    }

    pub fn into_frames(self) -> Vec<Bytes> {
        self.0
    }
}

impl From<Vec<Bytes>> for Frames {
    fn from(frames: Vec<Bytes>) -> Self {
        let mut all = Frames::default();
        frames.into_iter().for_each(|f| all.push(f));
        all
    }
}

/// Sends chunk requests to storage nodes, each named by its `host:port`,
/// signed with the cluster secret.
#[derive(Clone)]
pub struct ChunkClient {
    http: reqwest::Client,
    secret: ClusterSecret,
    /// The content hash of an empty body, signed by every bodiless request.
    empty_hash: String,
    /// Where each request's latency is recorded, if anywhere.
    latencies: Option<Latencies<NodeRequest>>,
}

impl ChunkClient {
    pub fn new(secret: ClusterSecret) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(64)
            .build()
            .expect("an HTTP client with timeouts builds");
        Self {
            http,
            secret,
            empty_hash: peer_auth::content_hash(b""),
            latencies: None,
        }
    }

    /// The client, recording every request's latency in `latencies`.
    pub fn observed_by(mut self, latencies: Latencies<NodeRequest>) -> Self {
        self.latencies = Some(latencies);
        self
    }

    /// Runs request `work` of kind `op`, recording how long it took.
    async fn timed<T>(
        &self,
        op: &'static str,
        work: impl Future<Output = Result<T, ChunkError>>,
    ) -> Result<T, ChunkError> {
        let started = Instant::now();
        let result = work.await;
        if let Some(latencies) = &self.latencies {
            let outcome = result.as_ref().map_or_else(ChunkError::outcome, |_| "ok");
            latencies
                .get_or_create(&NodeRequest { op, outcome })
                .observe(started.elapsed().as_secs_f64());
        }
        result
    }

    /// A request to `path` on the node, signed for a body hashing to
    /// `content_hash`, naming the S3 request it serves (if any).
    fn request(
        &self,
        method: reqwest::Method,
        addr: &str,
        path: &str,
        content_hash: &str,
    ) -> reqwest::RequestBuilder {
        let signed = self.secret.sign(method.as_str(), path, content_hash.to_string());
        let request = self
            .http
            .request(method, format!("http://{addr}{path}"))
            .header(DATE_HEADER, signed.date)
            .header(CONTENT_HASH_HEADER, signed.content_hash)
            .header(SIGNATURE_HEADER, signed.signature);
        match request_id::current() {
            Some(id) => request.header(request_id::HEADER, id),
            None => request,
        }
    }

    /// Stores `data` as chunk `id` on the node; `crc` is its crc32c and
    /// `content_hash` its [`peer_auth::content_hash`].
    pub async fn put(
        &self,
        addr: &str,
        id: &impl std::fmt::Display,
        crc: u32,
        content_hash: &str,
        data: Bytes,
        fsync: Fsync,
    ) -> Result<(), ChunkError> {
        let request = self
            .request(
                reqwest::Method::PUT,
                addr,
                &fsync.put_path(&chunk_api::chunk_path(id)),
                content_hash,
            )
            .header(CRC32C_HEADER, chunk_api::crc32c_value(crc))
            .body(data);
        self.timed("put", async { send(request).await.map(drop) }).await
    }

    /// Reads verified bytes `[start, end)` of chunk `id`'s payload, as the
    /// frames they arrived in.
    pub async fn get(&self, addr: &str, id: &str, start: u64, end: u64) -> Result<Frames, ChunkError> {
        let request = self.request(
            reqwest::Method::GET,
            addr,
            &chunk_api::range_path(&id, start, end),
            &self.empty_hash,
        );
        self.timed("get", async {
            let mut resp = send(request).await?;
            let mut frames = Frames::default();
            while let Some(frame) = resp
                .chunk()
                .await
                .map_err(|e| ChunkError::Failed(e.to_string()))?
            {
                frames.push(frame);
            }
            Ok(frames)
        })
        .await
    }

    /// The node's inventory: every chunk it holds (ids as text) and the age
    /// of its file in seconds. A long answer on a big node: it may take up
    /// to [`INVENTORY_TIMEOUT`].
    pub async fn inventory(&self, addr: &str) -> Result<Vec<(String, u64)>, ChunkError> {
        let request = self
            .request(
                reqwest::Method::GET,
                addr,
                chunk_api::CHUNKS_PATH,
                &self.empty_hash,
            )
            .timeout(INVENTORY_TIMEOUT);
        self.timed("inventory", async {
            let text = send(request)
                .await?
                .text()
                .await
                .map_err(|e| ChunkError::Failed(e.to_string()))?;
            Ok(text
                .lines()
                .filter_map(chunk_api::parse_inventory_line)
                .map(|(id, age)| (id.to_string(), age))
                .collect())
        })
        .await
    }

    /// Removes chunk `id` from the node (briefly: see [`DELETE_TIMEOUT`]).
    pub async fn delete(&self, addr: &str, id: &str) -> Result<(), ChunkError> {
        let request = self
            .request(
                reqwest::Method::DELETE,
                addr,
                &chunk_api::chunk_path(&id),
                &self.empty_hash,
            )
            .timeout(DELETE_TIMEOUT);
        self.timed("delete", async { send(request).await.map(drop) })
            .await
    }
}

/// Sends `request`; the response if it succeeded.
async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, ChunkError> {
    let resp = request
        .send()
        .await
        .map_err(|e| ChunkError::Failed(e.to_string()))?;
    check(resp).await
}

/// The response if it succeeded, or the error its status and
/// [`ERROR_HEADER`] name.
async fn check(resp: reqwest::Response) -> Result<reqwest::Response, ChunkError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let code = resp
        .headers()
        .get(ERROR_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(ErrorCode::parse);
    Err(classify(status.as_u16(), code))
}

fn classify(status: u16, code: Option<ErrorCode>) -> ChunkError {
    match (status, code) {
        (_, Some(ErrorCode::Corrupt)) => ChunkError::Corrupt,
        (_, Some(ErrorCode::NotFound)) | (404, None) => ChunkError::Missing,
        (_, Some(code)) => ChunkError::Failed(format!("status {status} ({})", code.as_str())),
        (_, None) => ChunkError::Failed(format!("status {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_code_before_status() {
        assert!(matches!(
            classify(500, Some(ErrorCode::Corrupt)),
            ChunkError::Corrupt
        ));
        assert!(matches!(classify(404, None), ChunkError::Missing));
        assert!(matches!(
            classify(404, Some(ErrorCode::NotFound)),
            ChunkError::Missing
        ));
        let full = classify(507, Some(ErrorCode::DiskFull)).to_string();
        assert_eq!(full, "status 507 (disk-full)");
        assert!(matches!(classify(503, None), ChunkError::Failed(_)));
    }

    #[test]
    fn frames_skip_empty_buffers_and_join_only_when_split() {
        let frames = Frames::from(vec![
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cd"),
        ]);
        assert_eq!(frames.len(), 4);
        assert_eq!(frames.crc32c(), crc32c::crc32c(b"abcd"));
        assert_eq!(frames.content_hash(), peer_auth::content_hash(b"abcd"));
        assert_eq!(frames.concat(), Bytes::from_static(b"abcd"));
        let one = Frames::from(vec![Bytes::from_static(b"xyz")]);
        assert_eq!(one.into_frames().len(), 1);
    }
}
