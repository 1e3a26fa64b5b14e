//! The ZooKeeper record a storage node publishes about itself.
//!
//! Each live node owns an ephemeral znode `NODES_PATH/<node id>` whose data is
//! a JSON `NodeInfo`; when its session ends the znode vanishes and routers stop
//! placing chunks on it.

use serde::{Deserialize, Serialize};

/// Parent znode of the live storage nodes.
pub const NODES_PATH: &str = "/bucketfs/nodes";
/// Parent znode of router leader election.
pub const LEADER_PATH: &str = "/bucketfs/leader";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Stable node id, also the name of its znode.
    pub id: String,
    /// `host:port` that serves the chunk API.
    pub addr: String,
    pub capacity_bytes: u64,
    pub free_bytes: u64,
}

impl NodeInfo {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
