//! The background worker: one router at a time, elected through ZooKeeper,
//! repairs under-replicated chunks and collects unreferenced ones.
//!
//! Election: the leader holds the ephemeral znode `LEADER_PATH`; the others
//! watch it and try again when it vanishes. A leader that loses its session
//! (or even its connection) stops working at once, so two routers never run
//! passes at the same time for longer than a session timeout.
//!
//! A pass: (1) chunks with fewer than 3 replicas on counted nodes get copies
//! from a verified replica onto the best-ranked nodes lacking one, and
//! chunks with more than 3 on live nodes lose the lowest-ranked ones once
//! the 3 kept have been read back whole and verified; (2) chunks
//! referenced by no version and no upload part whose lease has run out
//! (`crate::lease`) lose their rows first and then their files. Between
//! the two, versions fragmented by patches are compacted (`crate::compaction`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bucketfs_common::background::Background;
use bucketfs_common::membership::{self, LEADER_PATH};
use bucketfs_common::peer_auth::ClusterSecret;
use zookeeper_client as zk;

use crate::chunks::ChunkIo;
use crate::meta::Meta;
use crate::meta::PassReport;
use crate::metrics::Metrics;
use crate::quorum::REPLICAS;

const BATCH: i64 = 500;
/// How often the leader looks for a nearly full node.
const PRESSURE_CHECK: Duration = Duration::from_secs(2);
/// How long a collection under pressure that found nothing holds off the next.
const PRESSURE_QUIET: Duration = Duration::from_secs(30);

/// Tuning of the worker (router flags).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerConfig {
    /// Seconds between two passes of the elected worker.
    #[arg(long, default_value_t = 30.0)]
    pub worker_interval_secs: f64,
    /// How long a new chunk is leased to the request that wrote it: a chunk
    /// is recorded as soon as it is durable, and the part or version naming
    /// it commits later. Requests renew their chunks' leases while they
    /// stream, so this only needs to exceed a router's longest stall;
    /// unreferenced chunks go once their lease has run out.
    #[arg(long, default_value_t = 60.0)]
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
    /// When a live node's free space falls below this share of its disk
    /// (percent), garbage is collected at once rather than at the next pass.
    #[arg(long, default_value_t = 10.0)]
    pub gc_pressure_free_percent: f64,
    /// The length of a lifecycle rule's day, in seconds (a day; shorter
    /// only to test rules).
    #[arg(long, default_value_t = 86400.0)]
    pub lifecycle_day_secs: f64,
    /// Multipart uploads started this many seconds ago and neither
    /// completed nor aborted are aborted, their parts' space given back (a
    /// client that died mid-upload: a `cp` onto a mount killed half way); 0:
    /// never. Buckets' lifecycle rules may abort sooner.
    #[arg(long, default_value_t = 86400.0)]
    pub abort_uploads_after_secs: f64,
    /// Seconds between two inventories of the nodes (each node lists its
    /// chunk files; see `inventory.rs`); 0: none.
    #[arg(long, default_value_t = 3600.0)]
    pub inventory_interval_secs: f64,
    /// A chunk file no row records is removed once it is this old. Writes
    /// never take this long; one that did would fail rather than record
    /// a chunk whose files were removed.
    #[arg(long, default_value_t = 3600.0)]
    pub orphan_grace_secs: f64,
    /// Even out the replica bytes the nodes hold (a node that joins starts
    /// empty), moving replicas throttled as repair is (`--repair-throttle`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub rebalance: bool,
    /// Seconds between two censuses of the buckets' logical bytes (the
    /// `bucketfs_router_logical_*` gauges: a scan of every version, about
    /// 3 s per million, apart from the passes); 0: none.
    #[arg(long, default_value_t = 300.0)]
    pub census_interval_secs: f64,
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
    /// When this router last took the nodes' inventory.
    pub last_inventory: std::sync::Mutex<Option<Instant>>,
}

/// Whether work done every `interval` seconds and last done at `last` is
/// due now; if so, records it as done.
fn due(last: &std::sync::Mutex<Option<Instant>>, interval: f64) -> bool {
    let mut last = last.lock().unwrap();
    let due = last.is_none_or(|at| at.elapsed().as_secs_f64() >= interval);
    if due {
        *last = Some(Instant::now());
    }
    due
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
        let mut pressure = tokio::time::interval(PRESSURE_CHECK);
        // A census is a scan of every version: on its own cadence, so it
        // never lengthens the pass (3.5 s at a million objects).
        let census_every = match self.config.census_interval_secs {
            s if s > 0.0 => Duration::from_secs_f64(s),
            _ => Duration::from_secs(86400 * 365),
        };
        let mut census = tokio::time::interval(census_every);
        let mut quiet_until = Instant::now();
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
                _ = census.tick(), if self.config.census_interval_secs > 0.0 => {
                    if let Err(e) = self.take_census().await {
                        tracing::warn!(error = %e, "census of the buckets' bytes failed");
                    }
                }
                _ = pressure.tick() => {
                    if Instant::now() < quiet_until {
                        continue;
                    }
                    if let Some(node) = self.node_under_pressure() {
                        tracing::info!(%node, "node nearly full: collecting garbage now");
                        self.metrics.gc_pressure_runs.inc();
                        match self.collect().await {
                            // Nothing to free: a full disk of live data is not
                            // worth a scan every 2 s.
                            Ok(0) => quiet_until = Instant::now() + PRESSURE_QUIET,
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
                        }
                    }
                }
            }
        }
    }

    /// The nodes' inventory, when one is due.
    async fn take_inventory(&self) {
        let interval = self.config.inventory_interval_secs;
        if interval > 0.0 && due(&self.last_inventory, interval) {
            let grace = Duration::from_secs_f64(self.config.orphan_grace_secs.max(0.0));
            if let Err(e) = crate::inventory::pass(&self.meta, &self.io, &self.metrics, grace).await {
                tracing::warn!(error = %e, "inventory pass failed");
            }
            // The one scan of every chunk: whatever changed replicas
            // without leaving a check (a row edited by hand) is found here.
            match self.meta.check_every_chunk(REPLICAS as i64).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(chunks = n, "chunks off their replica count had no check"),
                Err(e) => tracing::warn!(error = %e, "checking every chunk's replicas failed"),
            }
        }
    }

    /// Removes replicas past `REPLICAS` on live nodes, throttled as repair is.
    async fn trim_surplus(&self, live: &[String]) -> crate::error::Result<()> {
        for chunk in self.meta.over_replicated(live, REPLICAS as i64, BATCH).await? {
            let started = Instant::now();
            match self.io.trim(&chunk).await {
                Ok(n) => {
                    self.metrics.replicas_trimmed.inc_by(n as u64);
                }
                Err(e) => tracing::warn!(chunk = %chunk.id, error = %e, "trimming surplus replicas failed"),
            }
            let pause = started.elapsed().mul_f64(self.config.repair_throttle.max(0.0));
            tokio::time::sleep(pause).await;
        }
        Ok(())
    }

    /// One repair, lifecycle and collection pass, recorded in Postgres for
    /// `router status` and the status page.
    pub async fn pass(&self) -> crate::error::Result<()> {
        if let Err(e) = self.meta.worker_pass_started(&self.router_id).await {
            tracing::warn!(error = %e, "could not record the pass's start");
        }
        let mut report = PassReport::default();
        let result = self.run_pass(&mut report).await;
        report.error = result.as_ref().err().map(ToString::to_string);
        if let Err(e) = self.meta.worker_pass_finished(&self.router_id, &report).await {
            tracing::warn!(error = %e, "could not record the pass's end");
        }
        result
    }

    async fn run_pass(&self, report: &mut PassReport) -> crate::error::Result<()> {
        // Drains as Postgres has them now, not as of the last membership refresh.
        self.io
            .membership()
            .set_draining(self.meta.draining_nodes().await?);
        let live = self.io.membership().live_ids();
        if self.io.membership().placement_ids().len() >= REPLICAS {
            // Checks made from here on are left for the next pass.
            let checked_from = self.meta.clock().await?;
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
            // The queue gauge falls as the pass repairs chunks, and ends at
            // what it could not repair.
            let pending = &self.metrics.repair_pending;
            pending.set(crate::metrics::gauge_value(chunks.len()));
            for chunk in chunks.iter().filter(|c| !c.replicas.is_empty()) {
                let started = Instant::now();
                match self.io.repair(chunk).await {
                    Ok(n) => {
                        self.metrics.replicas_repaired.inc_by(n as u64);
                        report.repaired += n as i64;
                        pending.dec();
                    }
                    Err(e) => tracing::warn!(chunk = %chunk.id, error = %e, "repair failed"),
                }
                let pause = started.elapsed().mul_f64(self.config.repair_throttle.max(0.0));
                tokio::time::sleep(pause).await;
            }
            report.repair_left = pending.get();
            let lost = chunks.iter().filter(|c| c.replicas.is_empty()).count();
            if lost > 0 {
                tracing::error!(lost, "chunks have no readable replica on any counted node");
            }
            self.trim_surplus(&live).await?;
            let placement = self.io.membership().placement_ids();
            let left = self
                .meta
                .settle_checks(&placement, REPLICAS as i64, checked_from)
                .await?;
            self.metrics
                .chunk_checks
                .set(crate::metrics::gauge_value(usize::try_from(left).unwrap_or(0)));
            // Repair first: nothing moves for balance while a chunk lacks a copy.
            if self.config.rebalance && chunks.is_empty() {
                let throttle = self.config.repair_throttle;
                match crate::rebalance::pass(&self.meta, &self.io, &self.metrics, throttle, BATCH).await {
                    Ok(0) => {}
                    Ok(moved) => tracing::info!(moved, "rebalance pass"),
                    Err(e) => tracing::warn!(error = %e, "rebalance failed"),
                }
            }
        }
        self.take_inventory().await;
        let day = Duration::from_secs_f64(self.config.lifecycle_day_secs.max(0.001));
        if self.config.abort_uploads_after_secs > 0.0 {
            let age = Duration::from_secs_f64(self.config.abort_uploads_after_secs);
            if let Err(e) = crate::lifecycle::abort_abandoned(&self.meta, &self.metrics, age).await {
                tracing::warn!(error = %e, "aborting abandoned uploads failed");
            }
        }
        if let Err(e) = crate::lifecycle::apply_all(&self.meta, &self.metrics, day).await {
            tracing::warn!(error = %e, "lifecycle pass failed");
        }
        let lease = self.config.gc_grace_secs;
        if let Err(e) = crate::compaction::pass(&self.meta, &self.io, &self.metrics, lease).await {
            tracing::warn!(error = %e, "compaction pass failed");
        }
        let collected = self.collect().await?;
        report.collected = collected as i64;
        self.metrics
            .gc_last_pass_chunks
            .set(crate::metrics::gauge_value(collected));
        self.measure_space().await
    }

    /// A live node whose free space is under `--gc-pressure-free-percent`.
    fn node_under_pressure(&self) -> Option<String> {
        let threshold = self.config.gc_pressure_free_percent / 100.0;
        self.io
            .membership()
            .live_nodes()
            .into_iter()
            .find(|n| n.capacity_bytes > 0 && (n.free_bytes as f64) < threshold * n.capacity_bytes as f64)
            .map(|n| n.id)
    }

    /// Folds the running totals and sets the replica and disk bytes gauges.
    async fn measure_space(&self) -> crate::error::Result<()> {
        self.meta.fold_tallies().await?;
        let space = self.meta.space(false, false).await?;
        let m = &self.metrics;
        m.replica_bytes
            .set(crate::metrics::gauge_value(space.replica_bytes));
        m.node_disk_bytes
            .set(crate::metrics::gauge_value(space.node_disk_bytes));
        Ok(())
    }

    /// Sets the gauges of the buckets' logical bytes (a scan of every version).
    async fn take_census(&self) -> crate::error::Result<()> {
        let space = self.meta.space(true, false).await?;
        let m = &self.metrics;
        m.logical_current_bytes
            .set(crate::metrics::gauge_value(space.current_bytes()));
        m.logical_all_bytes
            .set(crate::metrics::gauge_value(space.all_bytes()));
        Ok(())
    }

    /// Frees every unreferenced chunk whose lease has run out, rows first,
    /// then files; returns how many.
    async fn collect(&self) -> crate::error::Result<u64> {
        let mut total = 0;
        loop {
            let garbage = self.meta.collect_garbage(BATCH).await?;
            for chunk in &garbage {
                tracing::debug!(chunk = %chunk.id, "collecting");
                self.io.delete_replicas(chunk).await;
            }
            self.metrics.chunks_collected.inc_by(garbage.len() as u64);
            total += garbage.len() as u64;
            if (garbage.len() as i64) < BATCH {
                return Ok(total);
            }
        }
    }
}
