//! What the router and the storage node must agree on, and nothing else:
//! chunk ids, the on-disk block checksum layout, rendezvous placement and the
//! ZooKeeper membership record, whether a chunk PUT is fsynced; and the allocator setting every bucketfs
//! process starts with.

pub mod blocks;
pub mod chunk_id;
pub mod fsync;
pub mod membership;
pub mod memory;
pub mod placement;

pub use chunk_id::ChunkId;
pub use fsync::{Fsync, FSYNC_HEADER};
