//! The storage node: keeps immutable chunks on local disk and serves them over
//! HTTP to routers. It knows nothing of buckets or objects.

pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod registry;
pub(crate) mod scrub;
pub(crate) mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use bucketfs_common::background::{self, Background};
use bucketfs_common::peer_auth::ClusterSecret;
use std::future::IntoFuture;

/// Command-line configuration of one storage node.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "storage-node", version, about)]
pub struct Config {
    /// Address to serve the chunk API on.
    #[arg(long, default_value = "127.0.0.1:9100", env = "BUCKETFS_LISTEN")]
    pub listen: SocketAddr,
    /// Address routers should use to reach this node (defaults to --listen).
    #[arg(long, env = "BUCKETFS_ADVERTISE")]
    pub advertise: Option<String>,
    /// Directory holding the chunk files.
    #[arg(long, env = "BUCKETFS_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Stable id of this node; its ZooKeeper znode name.
    #[arg(long, env = "BUCKETFS_NODE_ID")]
    pub node_id: String,
    /// ZooKeeper connection string (host:port[,host:port]).
    #[arg(long, default_value = "127.0.0.1:2181", env = "BUCKETFS_ZOOKEEPER")]
    pub zookeeper: String,
    /// File holding the cluster secret that every router request must be
    /// signed with (at least 32 bytes; shared by the cluster's routers and nodes).
    #[arg(long, env = "BUCKETFS_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: PathBuf,
    /// Seconds between two scrubber passes over every chunk (0 disables it).
    #[arg(long, default_value_t = 3600, env = "BUCKETFS_SCRUB_INTERVAL_SECS")]
    pub scrub_interval_secs: u64,
}

/// Runs the node until SIGTERM or SIGINT (see `background::serve_until_terminated`).
pub async fn run(config: Config) -> anyhow::Result<()> {
    let secret = ClusterSecret::from_file(&config.cluster_secret_file)?;
    let store = Arc::new(store::ChunkStore::open(&config.data_dir).context("opening data directory")?);
    let metrics = Arc::new(metrics::Metrics::default());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let advertise = config
        .advertise
        .clone()
        .unwrap_or_else(|| listener.local_addr().unwrap().to_string());
    tracing::info!(node = %config.node_id, %advertise, data = %config.data_dir.display(), "storage node starting");

    let registration = registry::Registration {
        zookeeper: config.zookeeper.clone(),
        node_id: config.node_id.clone(),
        addr: advertise,
        store: store.clone(),
        secret: secret.clone(),
        metrics: metrics.clone(),
    };
    let background = Background::new();
    registration.spawn(&background);
    scrub::spawn_usage(
        &background,
        store.clone(),
        metrics.clone(),
        Duration::from_secs(15),
    );
    if config.scrub_interval_secs > 0 {
        let interval = Duration::from_secs(config.scrub_interval_secs);
        scrub::spawn(&background, store.clone(), metrics.clone(), interval);
    }

    let app = http::router(http::AppState {
        store,
        metrics,
        secret,
    });
    // Without TCP_NODELAY a small response's body waits for the ACK of its
    // headers: a 4 KiB GET took 40 ms (the peer's delayed ACK).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "setting TCP_NODELAY");
        }
    });
    background::serve_until_terminated(background, |stopping| {
        axum::serve(listener, app)
            .with_graceful_shutdown(stopping)
            .into_future()
    })
    .await
    .context("serving")
}
