//! The ZooKeeper record a storage node publishes about itself, and how
//! cluster members open their ZooKeeper sessions.
//!
//! Each live node owns an ephemeral znode `NODES_PATH/<node id>` whose data is
//! a JSON `NodeInfo`; when its session ends the znode vanishes and routers stop
//! placing chunks on it.
//!
//! Only cluster members may register or lead: every member's session is
//! authenticated as the digest user [`ZOOKEEPER_USER`] with a password
//! derived from the cluster secret, and every bucketfs znode carries an ACL
//! that lets that user, and no one else, in ([`members_only`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use zookeeper_client as zk;

use crate::peer_auth::ClusterSecret;

/// Parent znode of the live storage nodes.
pub const NODES_PATH: &str = "/bucketfs/nodes";
/// Parent znode of router leader election.
pub const LEADER_PATH: &str = "/bucketfs/leader";
/// The ZooKeeper digest user of cluster members.
pub const ZOOKEEPER_USER: &str = "bucketfs";
/// How long ZooKeeper keeps a member's session (and ephemeral znodes)
/// after it stops hearing from it.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// Opens a session authenticated as a cluster member.
pub async fn connect(zookeeper: &str, secret: &ClusterSecret) -> Result<zk::Client, zk::Error> {
    let credential = format!("{ZOOKEEPER_USER}:{}", secret.zookeeper_password());
    zk::Client::connector()
        .with_session_timeout(SESSION_TIMEOUT)
        .with_auth("digest", credential.as_bytes())
        .connect(zookeeper)
        .await
}

/// Znode options that let the cluster's members (the creating session's
/// identity) and no one else read, write or create children.
pub fn members_only(mode: zk::CreateMode) -> zk::CreateOptions<'static> {
    mode.with_acls(zk::Acls::creator_all())
}

/// Creates the persistent znode `path` (and its parents) for members only,
/// and takes back one that exists open to others (made by an older
/// version, or by someone else before the cluster first started). Fails if
/// the ACL cannot be fixed: a stranger owns the znode.
pub async fn secure_dir(client: &zk::Client, path: &str) -> Result<(), zk::Error> {
    client
        .mkdir(path, &members_only(zk::CreateMode::Persistent))
        .await?;
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at = format!("{at}/{part}");
        let (acls, _) = client.get_acl(&at).await?;
        let ours = acls.len() == 1
            && acls[0].scheme() == "digest"
            && acls[0].id().starts_with(&format!("{ZOOKEEPER_USER}:"));
        if !ours {
            tracing::warn!(path = %at, ?acls, "znode open to others; restricting it to cluster members");
            let creator = [zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("auth", ""))];
            client.set_acl(&at, &creator, None).await?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Stable node id, also the name of its znode.
    pub id: String,
    /// `host:port` that serves the chunk API.
    pub addr: String,
    pub capacity_bytes: u64,
    pub free_bytes: u64,
    /// Bytes the node's chunk files take on disk (0 from nodes that predate it).
    #[serde(default)]
    pub chunk_disk_bytes: u64,
    /// Chunks the node found corrupt and set aside (0 from nodes that predate it).
    #[serde(default)]
    pub quarantined_chunks: u64,
}

impl NodeInfo {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
