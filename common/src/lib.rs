//! What two bucketfs processes must agree on, and nothing else: chunk ids,
//! the on-disk block checksum layout, rendezvous placement and the ZooKeeper
//! membership record, the chunk API between router and node (`chunk_api`) and the router's
//! client for it (`chunk_client`),
//! the S3 extensions between client and router (`extension`, `file_locks`); the
//! allocator setting every bucketfs process starts with, the runner of
//! every process's background loops (`background`), the latency buckets and
//! rendering all three processes' metrics share (`metrics`), and the request
//! id the router sends to the nodes (`request_id`).

pub mod background;
pub mod blocks;
pub mod chunk_api;
pub mod chunk_client;
pub mod chunk_id;
pub mod extension;
pub mod file_locks;
pub mod fsync;
pub mod logging;
pub mod membership;
pub mod memory;
pub mod metrics;
pub mod peer_auth;
pub mod placement;
pub mod request_id;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time_travel;

pub use chunk_id::ChunkId;
pub use fsync::{Fsync, DEFERRED_QUERY};
