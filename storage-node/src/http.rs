//! The chunk HTTP API routers talk to (paths, headers and error codes in
//! `bucketfs_common::chunk_api`), and `GET /health`, `GET /metrics`. Every
//! chunk request is timed and logged under the id of the S3 request it
//! serves ([`observe`]).
//!
//! Every chunk request must be signed by a cluster member
//! (`bucketfs_common::peer_auth`): [`authenticate`] refuses any other with
//! 403 before a handler sees it, and a PUT's body must hash to what was
//! signed. Errors become HTTP statuses in exactly one place,
//! `IntoResponse for ApiError`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, RawQuery, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bucketfs_common::chunk_api::{self, ErrorCode, CHUNKS_PATH, CRC32C_HEADER, ERROR_HEADER, LENGTH_HEADER};
use bucketfs_common::peer_auth::{
    AuthError, ClusterSecret, ContentHasher, Signed, CONTENT_HASH_HEADER, DATE_HEADER, SIGNATURE_HEADER,
};
use bucketfs_common::{request_id, ChunkId, Fsync};
use futures::StreamExt;
use serde::Deserialize;

use crate::metrics::Metrics;
use crate::store::{ChunkStore, Incoming, StoreError, MAX_CHUNK_BYTES};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<ChunkStore>,
    pub metrics: Arc<Metrics>,
    pub secret: ClusterSecret,
}

pub fn router(state: AppState) -> Router {
    let chunks = Router::new()
        .route(
            &format!("{CHUNKS_PATH}/{{id}}"),
            get(get_chunk)
                .put(put_chunk)
                .head(head_chunk)
                .delete(delete_chunk),
        )
        .route(CHUNKS_PATH, get(list_chunks))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route_layer(middleware::from_fn_with_state(state.clone(), observe));
    Router::new()
        .merge(chunks)
        .route("/health", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move {
                let text = s.metrics.render();
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        bucketfs_common::metrics::CONTENT_TYPE,
                    )],
                    text,
                )
            }),
        )
        .layer(DefaultBodyLimit::max(MAX_CHUNK_BYTES))
        .with_state(state)
}

/// Why a chunk request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid chunk id: expected 32 lowercase hex digits")]
    BadId,
    #[error("malformed {CRC32C_HEADER} header")]
    BadCrcHeader,
    #[error("could not read the body: {0}")]
    Body(String),
    #[error("refused: {0}")]
    Unauthenticated(#[from] AuthError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::BadId => (StatusCode::BAD_REQUEST, ErrorCode::BadId),
            ApiError::BadCrcHeader => (StatusCode::BAD_REQUEST, ErrorCode::BadCrcHeader),
            ApiError::Body(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadBody),
            ApiError::Unauthenticated(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            ApiError::Store(StoreError::NotFound) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            ApiError::Store(StoreError::Corrupt(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Corrupt)
            }
            ApiError::Store(StoreError::TransferChecksum { .. }) => {
                (StatusCode::BAD_REQUEST, ErrorCode::BadChecksum)
            }
            ApiError::Store(StoreError::TooLarge(_)) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge),
            ApiError::Store(StoreError::LengthMismatch { .. }) => {
                (StatusCode::BAD_REQUEST, ErrorCode::BadLength)
            }
            ApiError::Store(StoreError::BadRange) => (StatusCode::RANGE_NOT_SATISFIABLE, ErrorCode::BadRange),
            ApiError::Store(StoreError::DiskFull) => (StatusCode::INSUFFICIENT_STORAGE, ErrorCode::DiskFull),
            ApiError::Store(StoreError::Io(_)) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Io),
        };
        if status.is_server_error() {
            tracing::warn!(error = %self, "chunk request failed");
        }
        (status, [(ERROR_HEADER, code.as_str())], self.to_string()).into_response()
    }
}

/// Runs a chunk request in a span that names the S3 request it serves (the
/// id the router sent, when it is one a log line may hold), records its
/// latency, and logs it at debug level.
async fn observe(State(s): State<AppState>, request: Request, next: Next) -> Response {
    use tracing::Instrument;
    let id = request
        .headers()
        .get(request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| request_id::is_loggable(v))
        .unwrap_or("-")
        .to_owned();
    let op = match *request.method() {
        Method::PUT => "put",
        Method::GET if request.uri().path() == CHUNKS_PATH => "list",
        Method::GET => "get",
        Method::HEAD => "head",
        Method::DELETE => "delete",
        _ => "other",
    };
    let span = tracing::info_span!("chunk_request", request_id = %id, op, path = %request.uri().path());
    async move {
        let started = Instant::now();
        let response = next.run(request).await;
        let status = response.status().as_u16();
        let seconds = started.elapsed().as_secs_f64();
        s.metrics
            .requests
            .get_or_create(&crate::metrics::Request { op, status })
            .observe(seconds);
        tracing::debug!(status, ms = seconds * 1e3, "chunk request done");
        response
    }
    .instrument(span)
    .await
}

/// Lets a request through only if a cluster member signed it, recently.
async fn authenticate(State(s): State<AppState>, request: Request, next: Next) -> Response {
    match check_signature(&s.secret, &request) {
        Ok(()) => next.run(request).await,
        Err(e) => {
            s.metrics.refused_requests.inc();
            tracing::warn!(method = %request.method(), uri = %request.uri(), error = %e, "refused an unauthenticated chunk request");
            ApiError::from(e).into_response()
        }
    }
}

fn check_signature(secret: &ClusterSecret, request: &Request) -> Result<(), AuthError> {
    let header = |name: &'static str| {
        request
            .headers()
            .get(name)
            .ok_or(AuthError::Missing(name))?
            .to_str()
            .map_err(|_| AuthError::Malformed(name))
    };
    let date = header(DATE_HEADER)?
        .parse()
        .map_err(|_| AuthError::Malformed(DATE_HEADER))?;
    let signed = Signed {
        method: request.method().as_str(),
        path_and_query: request.uri().path_and_query().map_or("", |p| p.as_str()),
        date,
        content_hash: header(CONTENT_HASH_HEADER)?,
    };
    secret.verify(&signed, header(SIGNATURE_HEADER)?)
}

fn parse_id(id: &str) -> Result<ChunkId, ApiError> {
    id.parse().map_err(|_| ApiError::BadId)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(StoreError::Io(std::io::Error::other(e))))
}

async fn put_chunk(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let crc = match headers.get(CRC32C_HEADER) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| u32::from_str_radix(v, 16).ok())
                .ok_or(ApiError::BadCrcHeader)?,
        ),
    };
    let fsync = Fsync::from_query(query.as_deref());
    let (chunk, content_hash) = receive(&headers, body).await?;
    // The signature covers the hash header (see `authenticate`): a body
    // that does not match it was not the one signed.
    if headers.get(CONTENT_HASH_HEADER).map(|v| v.as_bytes()) != Some(content_hash.as_bytes()) {
        s.metrics.refused_requests.inc();
        tracing::warn!(chunk = %id, "refused a PUT whose body is not the one signed");
        return Err(AuthError::BodyMismatch.into());
    }
    let len = chunk.payload_len() as u64;
    let store = s.store.clone();
    blocking(move || store.put_incoming(&id, chunk, crc, fsync)).await?;
    s.metrics.chunks_written.inc();
    s.metrics.bytes_written.inc_by(len);
    Ok(StatusCode::CREATED)
}

/// Reads a PUT body straight into a chunk image, hashing it on the way:
/// sized by Content-Length when announced, else collected first (up to the
/// chunk limit).
async fn receive(headers: &HeaderMap, body: Body) -> Result<(Incoming, String), ApiError> {
    let mut hasher = ContentHasher::default();
    let announced = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let Some(len) = announced else {
        let bytes = axum::body::to_bytes(body, MAX_CHUNK_BYTES)
            .await
            .map_err(|e| ApiError::Body(e.to_string()))?;
        let mut chunk = Incoming::new(bytes.len())?;
        chunk.extend(&bytes)?;
        hasher.update(&bytes);
        return Ok((chunk, hasher.finish()));
    };
    let mut chunk = Incoming::new(len)?;
    let mut frames = body.into_data_stream();
    while let Some(frame) = frames.next().await {
        let frame = frame.map_err(|e| ApiError::Body(e.to_string()))?;
        chunk.extend(&frame)?;
        hasher.update(&frame);
    }
    Ok((chunk, hasher.finish()))
}

#[derive(Deserialize)]
struct ReadRange {
    #[serde(default)]
    start: u64,
    end: Option<u64>,
}

async fn get_chunk(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(range): Query<ReadRange>,
) -> Result<Vec<u8>, ApiError> {
    let id = parse_id(&id)?;
    let store = s.store.clone();
    let data = blocking(move || store.read(&id, range.start, range.end))
        .await
        .inspect_err(|e| {
            if matches!(e, StoreError::Corrupt(_)) {
                s.metrics.checksum_failures.inc();
                tracing::error!(chunk = %id, error = %e, "checksum mismatch on read");
            }
        })?;
    s.metrics.bytes_read.inc_by(data.len() as u64);
    Ok(data)
}

async fn head_chunk(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let store = s.store.clone();
    let len = blocking(move || store.len(&id)).await?;
    Ok(([(LENGTH_HEADER, len.to_string())], StatusCode::OK).into_response())
}

async fn delete_chunk(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let store = s.store.clone();
    match blocking(move || store.delete(&id)).await {
        Ok(()) => {
            s.metrics.chunks_deleted.inc();
            Ok(StatusCode::NO_CONTENT)
        }
        Err(StoreError::NotFound) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(e.into()),
    }
}

async fn list_chunks(State(s): State<AppState>) -> Result<String, ApiError> {
    let store = s.store.clone();
    let chunks = blocking(move || store.list().map_err(StoreError::from)).await?;
    Ok(chunks
        .iter()
        .map(|(id, age)| chunk_api::inventory_line(id, age.as_secs()))
        .collect())
}
