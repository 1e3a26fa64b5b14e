//! The cluster's health in one place, for `router status` and the status
//! page (`/ui`): every node ever seen, live or gone, with its space, the
//! replicas recorded on it and the chunks it quarantined; chunks that are
//! under-replicated or unavailable against the live nodes; the background
//! worker's leader and its last pass; and whether Postgres and ZooKeeper
//! answer.
//!
//! The live set comes from ZooKeeper: the command opens its own session
//! ([`ask_zookeeper`]), a serving router uses its membership watch
//! ([`from_membership`]). Everything else is read from Postgres.

use std::fmt::Write;
use std::time::{Duration, Instant};

use bucketfs_common::membership::{self, NodeInfo, NODES_PATH};
use bucketfs_common::peer_auth::ClusterSecret;
use serde::Serialize;

use crate::membership::Membership;
use crate::meta::Meta;
use crate::quorum::REPLICAS;

/// How long the command waits for ZooKeeper.
const ZOOKEEPER_WAIT: Duration = Duration::from_secs(5);

/// Whether a service answered, how fast, or why not.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub ok: bool,
    pub ms: Option<f64>,
    pub error: Option<String>,
}

impl Probe {
    fn answered(took: Duration) -> Self {
        Probe {
            ok: true,
            ms: Some(took.as_secs_f64() * 1e3),
            error: None,
        }
    }

    fn failed(error: impl ToString) -> Self {
        Probe {
            ok: false,
            ms: None,
            error: Some(error.to_string()),
        }
    }

    fn text(&self) -> String {
        match (self.ok, self.ms, &self.error) {
            (true, Some(ms), _) => format!("ok ({ms:.1} ms)"),
            (true, None, _) => "ok".into(),
            (false, _, Some(e)) => format!("DOWN: {e}"),
            (false, _, None) => "DOWN".into(),
        }
    }
}

/// What ZooKeeper says: the live nodes, or nothing when it could not be asked.
pub struct ZookeeperView {
    pub live: Option<Vec<NodeInfo>>,
    pub probe: Probe,
}

/// Asks ZooKeeper for the live nodes with a session of the command's own.
pub async fn ask_zookeeper(zookeeper: &str, secret: &ClusterSecret) -> ZookeeperView {
    let started = Instant::now();
    let asked = tokio::time::timeout(ZOOKEEPER_WAIT, async {
        let client = membership::connect(zookeeper, secret).await?;
        let children = client.list_children(NODES_PATH).await?;
        crate::membership::read_nodes(&client, children).await
    })
    .await;
    match asked {
        Ok(Ok(live)) => ZookeeperView {
            live: Some(live),
            probe: Probe::answered(started.elapsed()),
        },
        Ok(Err(e)) => ZookeeperView {
            live: None,
            probe: Probe::failed(e),
        },
        Err(_) => ZookeeperView {
            live: None,
            probe: Probe::failed(format!("no answer in {} s", ZOOKEEPER_WAIT.as_secs())),
        },
    }
}

/// A serving router's view: its membership watch.
pub fn from_membership(membership: &Membership) -> ZookeeperView {
    if membership.is_connected() {
        ZookeeperView {
            live: Some(membership.live_nodes()),
            probe: Probe {
                ok: true,
                ms: None,
                error: None,
            },
        }
    } else {
        ZookeeperView {
            live: None,
            probe: Probe::failed("this router's session is down"),
        }
    }
}

/// One storage node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub id: String,
    pub addr: String,
    /// `live` (registered in ZooKeeper), `gone`, or `unknown` (ZooKeeper
    /// did not answer).
    pub state: &'static str,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    /// Bytes its chunk files take on disk.
    pub chunk_bytes: u64,
    /// Replicas recorded on it.
    pub replicas: u64,
    pub quarantined: u64,
    /// Seconds since a router last mirrored its record.
    pub seen_secs_ago: f64,
    /// Being drained: its replicas move elsewhere (`router drain`).
    pub draining: bool,
}

impl NodeStatus {
    /// A live node as its ZooKeeper record describes it (no replicas
    /// counted yet, seen now).
    fn live(n: &NodeInfo) -> Self {
        NodeStatus {
            id: n.id.clone(),
            addr: n.addr.clone(),
            state: "live",
            capacity_bytes: n.capacity_bytes,
            used_bytes: n.capacity_bytes.saturating_sub(n.free_bytes),
            free_bytes: n.free_bytes,
            chunk_bytes: n.chunk_disk_bytes,
            replicas: 0,
            quarantined: n.quarantined_chunks,
            seen_secs_ago: 0.0,
            draining: false,
        }
    }
}

/// Chunks against the live nodes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Chunks {
    pub total: u64,
    /// Fewer than `replicas_wanted` replicas on live nodes.
    pub under_replicated: u64,
    /// No replica on a live node.
    pub unavailable: u64,
    /// Set aside by the nodes as corrupt.
    pub quarantined: u64,
    pub replicas_wanted: u64,
}

/// The background worker's leader and last pass.
#[derive(Debug, Clone, Serialize)]
pub struct Worker {
    pub leader: String,
    pub started_secs_ago: f64,
    pub finished_secs_ago: Option<f64>,
    pub passes: u64,
    pub repaired: u64,
    pub repair_left: u64,
    pub collected: u64,
    pub last_error: Option<String>,
}

/// The cluster's status.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub postgres: Probe,
    pub zookeeper: Probe,
    pub nodes: Vec<NodeStatus>,
    /// None when Postgres did not answer.
    pub chunks: Option<Chunks>,
    pub worker: Option<Worker>,
}

fn count(n: i64) -> u64 {
    n.max(0) as u64
}

/// Reads the status from Postgres and `zookeeper`'s view.
pub async fn gather(meta: &Meta, zookeeper: ZookeeperView) -> Status {
    let postgres = match meta.ping().await {
        Ok(took) => Probe::answered(took),
        Err(e) => Probe::failed(e),
    };
    let rows = if postgres.ok {
        meta.node_rows().await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let live = zookeeper.live.as_deref();
    let mut nodes: Vec<NodeStatus> = rows
        .iter()
        .map(|r| match live.and_then(|l| l.iter().find(|n| n.id == r.id)) {
            Some(n) => NodeStatus {
                replicas: count(r.replicas),
                seen_secs_ago: r.seen_secs_ago,
                draining: r.draining,
                ..NodeStatus::live(n)
            },
            None => NodeStatus {
                id: r.id.clone(),
                addr: r.addr.clone(),
                state: if live.is_some() { "gone" } else { "unknown" },
                capacity_bytes: count(r.capacity),
                used_bytes: count(r.capacity).saturating_sub(count(r.free)),
                free_bytes: count(r.free),
                chunk_bytes: count(r.chunk_disk_bytes),
                replicas: count(r.replicas),
                quarantined: count(r.quarantined),
                seen_secs_ago: r.seen_secs_ago,
                draining: r.draining,
            },
        })
        .collect();
    // A node registered a moment ago may not be mirrored into Postgres yet.
    for n in live.unwrap_or_default() {
        if !nodes.iter().any(|s| s.id == n.id) {
            nodes.push(NodeStatus::live(n));
        }
    }
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    let live_ids: Vec<String> = nodes
        .iter()
        .filter(|n| n.state == "live")
        .map(|n| n.id.clone())
        .collect();
    let chunks = match postgres.ok && zookeeper.live.is_some() {
        true => meta.chunk_health(&live_ids, REPLICAS as i64).await.ok(),
        false => None,
    }
    .map(|h| Chunks {
        total: count(h.chunks),
        under_replicated: count(h.under_replicated),
        unavailable: count(h.unavailable),
        quarantined: nodes.iter().map(|n| n.quarantined).sum(),
        replicas_wanted: REPLICAS as u64,
    });
    let worker = match postgres.ok {
        true => meta.worker_progress().await.ok().flatten(),
        false => None,
    }
    .map(|w| Worker {
        leader: w.leader,
        started_secs_ago: w.started_secs_ago,
        finished_secs_ago: w.finished_secs_ago,
        passes: count(w.passes),
        repaired: count(w.repaired),
        repair_left: count(w.repair_left),
        collected: count(w.collected),
        last_error: w.last_error,
    });
    Status {
        postgres,
        zookeeper: zookeeper.probe,
        nodes,
        chunks,
        worker,
    }
}

/// Bytes in binary units, as `df -h` shows them.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

impl Status {
    /// Healthy: both services answer, no node is gone, every chunk has all
    /// its replicas and none is quarantined.
    pub fn is_healthy(&self) -> bool {
        self.postgres.ok
            && self.zookeeper.ok
            && self.nodes.iter().all(|n| n.state == "live")
            && self
                .chunks
                .is_some_and(|c| c.under_replicated == 0 && c.quarantined == 0)
    }

    /// The status as the command prints it.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let health = if self.is_healthy() { "healthy" } else { "DEGRADED" };
        let _ = writeln!(out, "cluster: {health}");
        let _ = writeln!(out, "postgres: {}", self.postgres.text());
        let _ = writeln!(out, "zookeeper: {}", self.zookeeper.text());
        let _ = writeln!(
            out,
            "\n{:<24} {:<22} {:<8} {:>11} {:>11} {:>11} {:>9} {:>11}",
            "node", "address", "state", "size", "used", "free", "replicas", "quarantined"
        );
        for n in &self.nodes {
            let _ = writeln!(
                out,
                "{:<24} {:<22} {:<8} {:>11} {:>11} {:>11} {:>9} {:>11}",
                n.id,
                n.addr,
                if n.draining { "draining" } else { n.state },
                human_bytes(n.capacity_bytes),
                human_bytes(n.used_bytes),
                human_bytes(n.free_bytes),
                n.replicas,
                n.quarantined
            );
        }
        match &self.chunks {
            Some(c) => {
                let _ = writeln!(
                    out,
                    "\nchunks: {} total, {} under-replicated (fewer than {} replicas on live nodes), {} unavailable, {} quarantined",
                    c.total, c.under_replicated, c.replicas_wanted, c.unavailable, c.quarantined
                );
            }
            None => {
                let _ = writeln!(out, "\nchunks: unknown (Postgres or ZooKeeper did not answer)");
            }
        }
        match &self.worker {
            Some(w) => {
                let finished = match w.finished_secs_ago {
                    Some(s) => format!("last pass finished {s:.0} s ago"),
                    None => "first pass running".into(),
                };
                let _ = writeln!(
                    out,
                    "worker: led by {}, pass started {:.0} s ago, {finished}; {} passes; last pass repaired {} replicas, left {} under-replicated, collected {} chunks{}",
                    w.leader,
                    w.started_secs_ago,
                    w.passes,
                    w.repaired,
                    w.repair_left,
                    w.collected,
                    w.last_error.as_deref().map(|e| format!("; failed: {e}")).unwrap_or_default()
                );
            }
            None => {
                let _ = writeln!(out, "worker: no pass recorded yet");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_df_shows_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
