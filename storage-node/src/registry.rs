//! Membership: the node announces itself in ZooKeeper as an ephemeral znode
//! holding its `NodeInfo`, refreshes its free space, and registers again after
//! any session loss, so routers see it join, leave and come back.

use std::sync::Arc;
use std::time::Duration;

use bucketfs_common::background::Background;
use bucketfs_common::membership::{self, NodeInfo, NODES_PATH};
use bucketfs_common::peer_auth::ClusterSecret;
use zookeeper_client as zk;

use crate::metrics::Metrics;
use crate::store::ChunkStore;

const REFRESH: Duration = Duration::from_secs(10);

pub struct Registration {
    pub zookeeper: String,
    pub node_id: String,
    pub addr: String,
    pub store: Arc<ChunkStore>,
    pub secret: ClusterSecret,
    pub metrics: Arc<Metrics>,
}

impl Registration {
    fn info(&self) -> NodeInfo {
        let (capacity_bytes, free_bytes) = self.store.disk_space().unwrap_or((0, 0));
        NodeInfo {
            id: self.node_id.clone(),
            addr: self.addr.clone(),
            capacity_bytes,
            free_bytes,
            chunk_disk_bytes: self.metrics.chunk_disk_bytes(),
            quarantined_chunks: self.store.quarantined().unwrap_or(0),
        }
    }

    /// Keeps the registration alive, registering again after each lost
    /// session, until shutdown (which closes the session: the node's znode
    /// goes at once, not a session timeout later).
    pub fn spawn(self, background: &Background) {
        let registration = Arc::new(self);
        background.retry("zookeeper registration", move || {
            let registration = registration.clone();
            async move { registration.run_session().await }
        });
    }

    async fn run_session(&self) -> Result<(), zk::Error> {
        let client = membership::connect(&self.zookeeper, &self.secret).await?;
        membership::secure_dir(&client, NODES_PATH).await?;
        let path = format!("{NODES_PATH}/{}", self.node_id);
        let data = serde_json::to_vec(&self.info()).expect("NodeInfo serialises");
        let ephemeral = membership::members_only(zk::CreateMode::Ephemeral);
        match client.create(&path, &data, &ephemeral).await {
            Ok(_) => {}
            // A znode left by our previous session that has not expired yet.
            Err(zk::Error::NodeExists) => {
                client.delete(&path, None).await.or_else(|e| match e {
                    zk::Error::NoNode => Ok(()),
                    e => Err(e),
                })?;
                client.create(&path, &data, &ephemeral).await?;
            }
            Err(e) => return Err(e),
        }
        tracing::info!(%path, "registered in zookeeper");
        let mut state = client.state_watcher();
        loop {
            tokio::select! {
                s = state.changed() => {
                    if s.is_terminated() {
                        return Err(zk::Error::SessionExpired);
                    }
                }
                _ = tokio::time::sleep(REFRESH) => {
                    let data = serde_json::to_vec(&self.info()).expect("NodeInfo serialises");
                    client.set_data(&path, &data, None).await?;
                }
            }
        }
    }
}
