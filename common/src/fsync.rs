//! Whether a storage node must have a chunk on disk before it answers a PUT:
//! the router asks the write quorum's nodes to fsync and the node beyond it
//! not to (its copy reaches the disk with the kernel's writeback).

/// The PUT header carrying the choice; absent or unknown means `Now`.
pub const FSYNC_HEADER: &str = "x-bucketfs-fsync";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Durable before the answer: a quorum replica.
    Now,
    /// Written through the page cache and left to the kernel's writeback
    /// (`vm.dirty_expire_centisecs`, 30 s by default): the replica beyond the
    /// quorum. A crash before then leaves a short or empty file, which reads
    /// find corrupt and repair replaces.
    Deferred,
}

impl Fsync {
    pub fn header_value(self) -> &'static str {
        match self {
            Fsync::Now => "now",
            Fsync::Deferred => "deferred",
        }
    }

    pub fn from_header_value(value: Option<&[u8]>) -> Self {
        match value {
            Some(b"deferred") => Fsync::Deferred,
            _ => Fsync::Now,
        }
    }
}
