//! Which storage nodes are live, learned from ZooKeeper.
//!
//! A watcher task keeps the set of ephemeral node znodes current and mirrors
//! every node it sees into Postgres, so that any router can still reach a
//! replica's node by id (the `nodes` table remembers addresses of nodes that
//! joined before this router started).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bucketfs_common::background::Background;
use bucketfs_common::membership::{self, NodeInfo, NODES_PATH};
use bucketfs_common::peer_auth::ClusterSecret;
use zookeeper_client as zk;

use crate::meta::Meta;

#[derive(Default)]
struct State {
    live: BTreeMap<String, NodeInfo>,
    known: HashMap<String, String>,
    /// Whether the watch's ZooKeeper session is up.
    connected: bool,
    /// Nodes being drained (`router drain`): live, read from, never written to.
    draining: std::collections::HashSet<String>,
}

/// A shared, cheaply cloned view of cluster membership.
#[derive(Clone, Default)]
pub struct Membership {
    state: Arc<RwLock<State>>,
}

impl Membership {
    /// Ids of the live nodes, sorted.
    pub fn live_ids(&self) -> Vec<String> {
        self.state.read().unwrap().live.keys().cloned().collect()
    }

    /// Ids of the live nodes new replicas may go to: not those draining.
    pub fn placement_ids(&self) -> Vec<String> {
        let state = self.state.read().unwrap();
        state
            .live
            .keys()
            .filter(|id| !state.draining.contains(*id))
            .cloned()
            .collect()
    }

    pub fn is_draining(&self, id: &str) -> bool {
        self.state.read().unwrap().draining.contains(id)
    }

    /// The nodes being drained, as Postgres says.
    pub fn set_draining(&self, nodes: Vec<String>) {
        self.state.write().unwrap().draining = nodes.into_iter().collect();
    }

    pub fn is_live(&self, id: &str) -> bool {
        self.state.read().unwrap().live.contains_key(id)
    }

    /// Address of a node, live or last known.
    pub fn addr(&self, id: &str) -> Option<String> {
        let state = self.state.read().unwrap();
        state
            .live
            .get(id)
            .map(|n| n.addr.clone())
            .or_else(|| state.known.get(id).cloned())
    }

    /// Whether this router's ZooKeeper session is up (the live set is current).
    pub fn is_connected(&self) -> bool {
        self.state.read().unwrap().connected
    }

    pub fn live_nodes(&self) -> Vec<NodeInfo> {
        self.state.read().unwrap().live.values().cloned().collect()
    }

    fn set_live(&self, nodes: Vec<NodeInfo>) {
        let mut state = self.state.write().unwrap();
        for n in &nodes {
            state.known.insert(n.id.clone(), n.addr.clone());
        }
        state.live = nodes.into_iter().map(|n| (n.id.clone(), n)).collect();
    }

    fn learn(&self, known: HashMap<String, String>) {
        let mut state = self.state.write().unwrap();
        for (id, addr) in known {
            state.known.entry(id).or_insert(addr);
        }
    }

    /// Starts the watcher, reconnecting after each lost session until shutdown.
    pub fn spawn_watcher(
        &self,
        background: &Background,
        zookeeper: String,
        meta: Meta,
        secret: ClusterSecret,
    ) {
        let this = self.clone();
        background.retry("membership watch", move || {
            let (this, zookeeper, meta, secret) =
                (this.clone(), zookeeper.clone(), meta.clone(), secret.clone());
            async move {
                if let Ok(known) = meta.node_addrs().await {
                    this.learn(known);
                }
                this.watch(&zookeeper, &meta, &secret).await
            }
        });
    }

    async fn watch(&self, zookeeper: &str, meta: &Meta, secret: &ClusterSecret) -> Result<(), zk::Error> {
        let result = self.follow(zookeeper, meta, secret).await;
        self.state.write().unwrap().connected = false;
        result
    }

    async fn follow(&self, zookeeper: &str, meta: &Meta, secret: &ClusterSecret) -> Result<(), zk::Error> {
        let client = membership::connect(zookeeper, secret).await?;
        membership::secure_dir(&client, NODES_PATH).await?;
        loop {
            let (children, _, watcher) = client.get_and_watch_children(NODES_PATH).await?;
            let nodes = read_nodes(&client, children).await?;
            self.state.write().unwrap().connected = true;
            let before = self.live_ids();
            for n in &nodes {
                if let Err(e) = meta.upsert_node(n).await {
                    tracing::debug!(error = %e, "could not mirror node into postgres");
                }
            }
            self.set_live(nodes);
            if let Ok(draining) = meta.draining_nodes().await {
                self.set_draining(draining);
            }
            let after = self.live_ids();
            if before != after {
                tracing::info!(live = ?after, "storage node membership changed");
            }
            tokio::select! {
                event = watcher.changed() => {
                    if event.event_type == zk::EventType::Session {
                        return Err(zk::Error::SessionExpired);
                    }
                }
                // Refresh free space now and then even without membership
                // changes (the worker collects garbage at once on a full node).
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            }
        }
    }
}

/// The records of the live nodes `children` (znodes under `NODES_PATH`); one
/// that vanished meanwhile is left out.
pub async fn read_nodes(client: &zk::Client, children: Vec<String>) -> Result<Vec<NodeInfo>, zk::Error> {
    let mut nodes = Vec::with_capacity(children.len());
    for child in children {
        match client.get_data(&format!("{NODES_PATH}/{child}")).await {
            Ok((data, _)) => match serde_json::from_slice::<NodeInfo>(&data) {
                Ok(info) => nodes.push(info),
                Err(e) => tracing::warn!(%child, error = %e, "unreadable node record"),
            },
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(nodes)
}
