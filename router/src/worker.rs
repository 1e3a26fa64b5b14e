//! The background worker: one router at a time, elected through ZooKeeper,
//! repairs under-replicated chunks and collects unreferenced ones.
//!
//! Election: the leader holds the ephemeral znode `LEADER_PATH`; the others
//! watch it and try again when it vanishes. A leader that loses its session
//! (or even its connection) stops working at once, so two routers never run
//! passes at the same time for longer than a session timeout.
//!
//! A pass: (1) chunks with fewer than 3 replicas on counted nodes get copies
//! from a verified replica onto the best-ranked nodes lacking one; (2) chunks
//! referenced by no version and no upload part, older than the grace period,
//! lose their rows first and then their files.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bucketfs_common::background::Background;
use bucketfs_common::membership::{self, LEADER_PATH};
use bucketfs_common::peer_auth::ClusterSecret;
use zookeeper_client as zk;

use crate::chunks::ChunkIo;
use crate::meta::Meta;
use crate::metrics::Metrics;
use crate::quorum::REPLICAS;

const BATCH: i64 = 500;

/// Tuning of the worker (router flags).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerConfig {
    /// Seconds between two passes of the elected worker.
    #[arg(long, default_value_t = 30.0)]
    pub worker_interval_secs: f64,
    /// Unreferenced chunks younger than this are kept: a chunk is recorded
    /// as soon as it is durable, and the part or version naming it commits
    /// later. Keep it above the longest upload of one part or object.
    #[arg(long, default_value_t = 3600.0)]
    pub gc_grace_secs: f64,
    /// A node absent from ZooKeeper for less than this still counts as holding its replicas.
    #[arg(long, default_value_t = 300.0)]
    pub repair_after_secs: f64,
    /// Chunks younger than this are not repaired (their third replica may be in flight).
    #[arg(long, default_value_t = 30.0)]
    pub repair_min_age_secs: f64,
    /// After each chunk repaired, the worker sleeps this many times as long
    /// as the repair took, so repair takes a bounded share of the nodes'
    /// disks and network (as the scrubber does); 0: no pause.
    #[arg(long, default_value_t = 1.0)]
    pub repair_throttle: f64,
    /// The length of a lifecycle rule's day, in seconds (a day; shorter
    /// only to test rules).
    #[arg(long, default_value_t = 86400.0)]
    pub lifecycle_day_secs: f64,
}

pub struct Worker {
    pub config: WorkerConfig,
    pub zookeeper: String,
    /// The cluster secret, whose derived credential opens the ZooKeeper session.
    pub secret: ClusterSecret,
    pub router_id: String,
    pub meta: Meta,
    pub io: ChunkIo,
    pub metrics: std::sync::Arc<Metrics>,
}

impl Worker {
    /// Runs for election, and leads when elected, until shutdown.
    pub fn spawn(self, background: &Background) {
        let worker = Arc::new(self);
        background.retry("worker election", move || {
            let worker = worker.clone();
            async move { worker.campaign().await }
        });
    }

    async fn campaign(&self) -> Result<(), zk::Error> {
        let client = membership::connect(&self.zookeeper, &self.secret).await?;
        let parent = LEADER_PATH.rsplit_once('/').map(|(p, _)| p).unwrap_or("/");
        membership::secure_dir(&client, parent).await?;
        let ephemeral = membership::members_only(zk::CreateMode::Ephemeral);
        loop {
            match client
                .create(LEADER_PATH, self.router_id.as_bytes(), &ephemeral)
                .await
            {
                Ok(_) => {
                    tracing::info!(router = %self.router_id, "elected background worker");
                    return self.lead(&client).await;
                }
                Err(zk::Error::NodeExists) => {
                    let (stat, watcher) = client.check_and_watch_stat(LEADER_PATH).await?;
                    if stat.is_some() {
                        let event = watcher.changed().await;
                        if event.event_type == zk::EventType::Session {
                            return Err(zk::Error::ConnectionLoss);
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn lead(&self, client: &zk::Client) -> Result<(), zk::Error> {
        let mut state = client.state_watcher();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(self.config.worker_interval_secs));
        loop {
            tokio::select! {
                s = state.changed() => {
                    if s != zk::SessionState::SyncConnected {
                        tracing::warn!(?s, "worker lost its zookeeper session; stepping down");
                        return Err(zk::Error::ConnectionLoss);
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = self.pass().await {
                        tracing::warn!(error = %e, "worker pass failed");
                    }
                }
            }
        }
    }

    /// One repair, lifecycle and collection pass.
    pub async fn pass(&self) -> crate::error::Result<()> {
        let live = self.io.membership().live_ids();
        if live.len() >= REPLICAS {
            let chunks = self
                .meta
                .under_replicated(
                    &live,
                    REPLICAS as i64,
                    self.config.repair_min_age_secs,
                    self.config.repair_after_secs,
                    BATCH,
                )
                .await?;
            for chunk in chunks.iter().filter(|c| !c.replicas.is_empty()) {
                let started = Instant::now();
                match self.io.repair(chunk).await {
                    Ok(n) => Metrics::add(&self.metrics.replicas_repaired, n as u64),
                    Err(e) => tracing::warn!(chunk = %chunk.id, error = %e, "repair failed"),
                }
                let pause = started.elapsed().mul_f64(self.config.repair_throttle.max(0.0));
                tokio::time::sleep(pause).await;
            }
            let lost = chunks.iter().filter(|c| c.replicas.is_empty()).count();
            if lost > 0 {
                tracing::error!(lost, "chunks have no readable replica on any counted node");
            }
        }
        let day = Duration::from_secs_f64(self.config.lifecycle_day_secs.max(0.001));
        if let Err(e) = crate::lifecycle::apply_all(&self.meta, &self.metrics, day).await {
            tracing::warn!(error = %e, "lifecycle pass failed");
        }
        loop {
            let garbage = self
                .meta
                .collect_garbage(self.config.gc_grace_secs, BATCH)
                .await?;
            for chunk in &garbage {
                self.io.delete_replicas(chunk).await;
            }
            Metrics::add(&self.metrics.chunks_collected, garbage.len() as u64);
            if (garbage.len() as i64) < BATCH {
                return Ok(());
            }
        }
    }
}
