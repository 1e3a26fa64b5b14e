//! The router: a stateless S3 endpoint. Metadata lives in Postgres, live
//! storage nodes are learned from ZooKeeper, object bytes are chunked and
//! replicated to storage nodes. Any number of routers serve the same cluster.

pub(crate) mod access;
pub(crate) mod admin;
pub mod chunk_map;
pub(crate) mod chunks;
pub(crate) mod compaction;
pub(crate) mod cors;
pub mod error;
pub(crate) mod escape;
pub(crate) mod form_upload;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod gate;
pub(crate) mod history;
pub(crate) mod host;
pub(crate) mod inventory;
pub(crate) mod lease;
pub(crate) mod lenient_range;
pub(crate) mod lifecycle;
pub(crate) mod membership;
pub mod meta;
pub(crate) mod metrics;
pub(crate) mod quorum;
pub(crate) mod rebalance;
pub(crate) mod recent;
pub(crate) mod request_id;
pub mod s3;
pub(crate) mod server;
pub(crate) mod status;
pub(crate) mod status_page;
pub(crate) mod worker;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::routing::get;

use bucketfs_common::background::{self, Background};
use bucketfs_common::peer_auth::ClusterSecret;

use crate::chunks::ChunkIo;
use crate::membership::Membership;
use crate::meta::Meta;
use crate::metrics::Metrics;

#[derive(Debug, clap::Parser)]
#[command(name = "router", version, about = "bucketfs S3 router")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve the S3 API.
    Serve(Box<ServeConfig>),
    /// Manage users' access keys: create, list, revoke.
    Key {
        #[arg(long, env = "BUCKETFS_DATABASE_URL")]
        database_url: String,
        #[command(subcommand)]
        command: admin::KeyCommand,
    },
    /// Drains a storage node: it takes no new replicas, and the worker copies
    /// its replicas to other nodes and then removes them, until it holds
    /// none (see `router status`); `--undo` ends the drain.
    Drain {
        #[arg(long, env = "BUCKETFS_DATABASE_URL")]
        database_url: String,
        /// The node's id (its `--node-id`).
        node: String,
        #[arg(long)]
        undo: bool,
    },
    /// Prints logical bytes (current versions, all versions) per bucket
    /// against the bytes chunks take: recorded once, replicated, unreferenced,
    /// and on the nodes' disks.
    Space {
        #[arg(long, env = "BUCKETFS_DATABASE_URL")]
        database_url: String,
    },
    /// Prints the cluster's health: nodes live and gone with their space,
    /// replicas and quarantined chunks; under-replicated chunks; the
    /// background worker's leader and last pass; Postgres and ZooKeeper.
    Status {
        #[arg(long, env = "BUCKETFS_DATABASE_URL")]
        database_url: String,
        #[arg(long, default_value = "127.0.0.1:2181", env = "BUCKETFS_ZOOKEEPER")]
        zookeeper: String,
        /// The cluster secret (ZooKeeper lets cluster members only read the membership).
        #[arg(long, env = "BUCKETFS_CLUSTER_SECRET_FILE")]
        cluster_secret_file: std::path::PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Address to serve S3 on.
    #[arg(long, default_value = "127.0.0.1:9000", env = "BUCKETFS_LISTEN")]
    pub listen: SocketAddr,
    /// Postgres URL, e.g. postgres://user@127.0.0.1:5432/bucketfs
    #[arg(long, env = "BUCKETFS_DATABASE_URL")]
    pub database_url: String,
    /// ZooKeeper connection string.
    #[arg(long, default_value = "127.0.0.1:2181", env = "BUCKETFS_ZOOKEEPER")]
    pub zookeeper: String,
    /// File holding the cluster secret that signs every request to a
    /// storage node (at least 32 bytes; shared by the cluster's routers and nodes).
    #[arg(long, env = "BUCKETFS_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: std::path::PathBuf,
    /// Base domain for virtual-host-style requests (BUCKET.DOMAIN); repeatable.
    /// Other Host headers are path style.
    #[arg(long = "domain", env = "BUCKETFS_DOMAINS", value_delimiter = ',')]
    pub domains: Vec<String>,
    /// Accept requests signed with Signature Version 2 (deprecated by
    /// AWS; refused unless given).
    #[arg(long, env = "BUCKETFS_ALLOW_SIGV2")]
    pub allow_sigv2: bool,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "BUCKETFS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "BUCKETFS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Seconds a client has to send a request's headers; also the longest
    /// an idle keep-alive connection is kept.
    #[arg(long, default_value_t = 20, env = "BUCKETFS_HEADER_TIMEOUT_SECS")]
    pub header_timeout_secs: u64,
    /// Load balancers whose X-Forwarded-For and X-Forwarded-Proto are
    /// believed (for policies' aws:SourceIp and aws:SecureTransport);
    /// repeatable. Others' are ignored.
    #[arg(
        long = "trusted-proxy",
        env = "BUCKETFS_TRUSTED_PROXIES",
        value_delimiter = ',',
        default_values = ["127.0.0.1", "::1"]
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Serve the read-only status page at /ui (and /ui/status.json) to
    /// anyone who can reach the router: node addresses, space and request
    /// rates, no data. Off unless given.
    #[arg(long, env = "BUCKETFS_STATUS_PAGE")]
    pub status_page: bool,
    #[command(flatten)]
    pub worker: worker::WorkerConfig,
}

pub async fn main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(config) => serve(*config).await,
        Command::Key {
            database_url,
            command,
        } => {
            let meta = Meta::connect_lazy(&database_url)?;
            meta.migrate().await;
            admin::run(&meta, command).await
        }
        Command::Status {
            database_url,
            zookeeper,
            cluster_secret_file,
            json,
        } => {
            let secret = ClusterSecret::from_file(&cluster_secret_file)?;
            let meta = Meta::connect_lazy(&database_url)?;
            let view = status::ask_zookeeper(&zookeeper, &secret).await;
            let status = status::gather(&meta, view).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", status.text());
            }
            Ok(())
        }
        Command::Drain {
            database_url,
            node,
            undo,
        } => {
            let meta = Meta::connect_lazy(&database_url)?;
            meta.migrate().await;
            admin::drain(&meta, &node, !undo).await
        }
        Command::Space { database_url } => {
            let meta = Meta::connect_lazy(&database_url)?;
            meta.migrate().await;
            admin::print_space(&meta).await
        }
    }
}

#[derive(Clone)]
struct Admin {
    metrics: Arc<Metrics>,
    membership: Membership,
    meta: Meta,
    /// This router's address, as the status page names it.
    router: String,
}

/// The status page (`status_page`).
async fn ui_page(State(a): State<Admin>) -> axum::response::Html<String> {
    let status = status::gather(&a.meta, status::from_membership(&a.membership)).await;
    axum::response::Html(status_page::page(&status, &a.metrics.recent.points(), &a.router))
}

/// The status page's facts as JSON, as `router status --json` prints them.
async fn ui_json(State(a): State<Admin>) -> axum::Json<status::Status> {
    axum::Json(status::gather(&a.meta, status::from_membership(&a.membership)).await)
}

/// A span around every request (method, path, request id) and one log line
/// with its status and latency, recorded in the metrics under its S3
/// operation; the id is returned as `x-amz-request-id` and in an error's
/// body (`request_id`), and sent to the nodes with every chunk request made
/// for it (`bucketfs_common::request_id`).
async fn request_span(
    State(metrics): State<Arc<Metrics>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    let id = bucketfs_common::request_id::generate();
    let span = tracing::info_span!("request", %id, method = %req.method(), path = %req.uri().path());
    let is_head = req.method() == axum::http::Method::HEAD;
    let has_body = req.headers().contains_key(axum::http::header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let operation = metrics::OperationSlot::default();
    match req.uri().path() {
        "/_bucketfs/health" => operation.set("Health"),
        "/_bucketfs/metrics" => operation.set("Metrics"),
        _ => {}
    }
    req.extensions_mut().insert(operation.clone());
    let scoped = id.clone();
    let work = async move {
        let started = std::time::Instant::now();
        let mut response = next.run(req).await;
        // A HEAD of a part (partNumber) is partial content, as its GET is;
        // s3s answers every successful HEAD 200.
        if is_head
            && response.status() == axum::http::StatusCode::OK
            && response.headers().contains_key(axum::http::header::CONTENT_RANGE)
        {
            *response.status_mut() = axum::http::StatusCode::PARTIAL_CONTENT;
        }
        let status = response.status().as_u16();
        // Refused before its body was read (an access check, a bad
        // header): the client may still send it, or (with `Expect:
        // 100-continue`) never will, and a proxy in between cannot tell
        // which. Closing the connection, as S3 does, leaves no doubt.
        if status >= 400 && has_body {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        let elapsed = started.elapsed();
        let ms = elapsed.as_secs_f64() * 1000.0;
        if status >= 500 {
            tracing::warn!(status, ms, "request failed");
        } else {
            tracing::debug!(status, ms, "request done");
        }
        let (response, code) = request_id::stamp(response, &id).await;
        metrics.answered(operation.name(), status, elapsed.as_secs_f64(), code.as_deref());
        response
    };
    bucketfs_common::request_id::scope(scoped, work.instrument(span)).await
}

/// What a client gets when s3s itself fails (not an S3 error response).
async fn s3_failure(err: s3s::HttpError) -> (axum::http::StatusCode, String) {
    tracing::error!(?err, "s3 service failure");
    (
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal error\n".into(),
    )
}

/// Serves S3 until SIGTERM or SIGINT; then finishes the requests and
/// background tasks under way (for up to `SHUTDOWN_GRACE` each).
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let secret = ClusterSecret::from_file(&config.cluster_secret_file)?;
    let meta = Meta::connect_lazy(&config.database_url)?;
    meta.migrate().await;
    let metrics = Arc::new(Metrics::default());
    let membership = Membership::default();
    let background = Background::new();
    membership.spawn_watcher(
        &background,
        config.zookeeper.clone(),
        meta.clone(),
        secret.clone(),
    );
    let io = ChunkIo::new(
        membership.clone(),
        meta.clone(),
        metrics.clone(),
        background.clone(),
        secret.clone(),
        config.worker.gc_grace_secs,
    );
    worker::Worker {
        config: config.worker.clone(),
        zookeeper: config.zookeeper.clone(),
        secret,
        router_id: config.listen.to_string(),
        meta: meta.clone(),
        io: io.clone(),
        metrics: metrics.clone(),
        last_inventory: Default::default(),
    }
    .spawn(&background);

    let identities = access::Identities::new(meta.clone());
    let access = access::Access::new(meta.clone(), identities.clone());
    let fs = s3::Bucketfs::new(
        meta.clone(),
        io,
        metrics.clone(),
        access.clone(),
        config.allow_sigv2,
    );
    let mut builder = s3s::service::S3ServiceBuilder::new(fs.clone());
    // XML bodies S3 accepts stay under 2 MB (1,000 keys to delete of at
    // most 1 KiB each, 10,000 parts to complete): refuse more than 4 MiB
    // before parsing it.
    let mut s3_config = s3s::config::S3Config::default();
    s3_config.xml_max_body_size = 4 << 20;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        s3_config,
    ))));
    builder.set_auth(identities.clone());
    builder.set_access(access);
    builder.set_route(s3::ExtensionRoute { fs });
    let domains = Arc::new(host::Domains(config.domains.clone()));
    if !config.domains.is_empty() {
        builder.set_host(host::Domains(config.domains.clone()));
    }
    let s3 = builder.build();

    {
        let metrics = metrics.clone();
        background.every("request history", recent::SAMPLE, move || {
            metrics.recent.sample(std::time::SystemTime::now());
            std::future::ready(())
        });
    }
    // `_` cannot start a bucket name, nor can a two-letter name be one, so
    // these paths never shadow S3 requests.
    let mut app = axum::Router::new();
    if config.status_page {
        app = app
            .route("/ui", get(ui_page))
            .route("/ui/status.json", get(ui_json));
    }
    let app = app
        .route("/_bucketfs/health", get(|| async { "ok" }))
        .route(
            "/_bucketfs/metrics",
            get(|State(a): State<Admin>| async move {
                let text = a.metrics.render(a.membership.live_ids().len());
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        bucketfs_common::metrics::CONTENT_TYPE,
                    )],
                    text,
                )
            }),
        )
        .with_state(Admin {
            metrics: metrics.clone(),
            membership,
            meta: meta.clone(),
            router: config.listen.to_string(),
        })
        .fallback_service(axum::error_handling::HandleError::new(s3, s3_failure))
        .layer(axum::middleware::from_fn_with_state(
            identities,
            lenient_range::lenient,
        ))
        .layer(axum::middleware::from_fn(form_upload::complete))
        .layer(axum::middleware::from_fn_with_state(
            gate::Gate {
                allow_sigv2: config.allow_sigv2,
            },
            gate::admit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            cors::Cors {
                meta: meta.clone(),
                domains,
            },
            cors::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(metrics, request_span));

    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(server::tls_acceptor(cert, key)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %config.listen, https = tls.is_some(), "router serving S3");
    let connections = server::Connections {
        tls,
        proxies: server::TrustedProxies(config.trusted_proxies.clone()),
        header_timeout: std::time::Duration::from_secs(config.header_timeout_secs.max(1)),
    };
    background::serve_until_terminated(background, |stopping| {
        server::serve(listener, app, connections, stopping)
    })
    .await
    .context("serving")
}
