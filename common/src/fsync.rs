//! Whether a storage node must have a chunk on disk before it answers a PUT:
//! the router asks the write quorum's nodes to fsync and the node beyond it
//! not to (its copy reaches the disk with the kernel's writeback).

/// The query of a PUT that asks for `Deferred` (absent: `Now`). In the
/// query, not a header, so the request's signature covers it: no one on
/// the way can turn a quorum replica into a deferred one.
pub const DEFERRED_QUERY: &str = "fsync=deferred";

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
    /// The PUT path of a chunk with this choice.
    pub fn put_path(self, chunk_path: &str) -> String {
        match self {
            Fsync::Now => chunk_path.to_string(),
            Fsync::Deferred => format!("{chunk_path}?{DEFERRED_QUERY}"),
        }
    }

    /// The choice a PUT's query makes.
    pub fn from_query(query: Option<&str>) -> Self {
        match query {
            Some(q) if q.split('&').any(|p| p == DEFERRED_QUERY) => Fsync::Deferred,
            _ => Fsync::Now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_choice_travels_in_the_signed_path() {
        for fsync in [Fsync::Now, Fsync::Deferred] {
            let path = fsync.put_path("/chunks/abc");
            assert_eq!(Fsync::from_query(path.split_once('?').map(|(_, q)| q)), fsync);
        }
        assert_eq!(Fsync::from_query(Some("fsync=deferredx")), Fsync::Now);
    }
}
