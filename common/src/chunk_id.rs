//! Chunk ids: 128 random bits written as 32 lowercase hex digits.
//!
//! Ids are random rather than content hashes so that a garbage collector and a
//! writer can never race over one shared id. Parsing is strict because a chunk
//! id becomes a file name on a storage node: anything but 32 hex digits is
//! rejected, so no request can name a path outside the data directory.

use std::fmt;
use std::str::FromStr;

/// Identifier of one immutable chunk.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId([u8; 16]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid chunk id: expected 32 lowercase hex digits")]
pub struct InvalidChunkId;

impl ChunkId {
    pub fn random() -> Self {
        Self(rand::random())
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Two hex digits used to fan chunk files out over 256 directories.
    pub fn shard(&self) -> String {
        hex::encode(&self.0[..1])
    }
}

impl FromStr for ChunkId {
    type Err = InvalidChunkId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(InvalidChunkId);
        }
        let mut id = [0u8; 16];
        hex::decode_to_slice(s, &mut id).map_err(|_| InvalidChunkId)?;
        Ok(Self(id))
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let id = ChunkId::random();
        assert_eq!(id.to_string().parse::<ChunkId>(), Ok(id));
        assert_eq!(id.shard(), id.to_string()[..2]);
    }

    #[test]
    fn rejects_anything_that_could_be_a_path() {
        for bad in [
            "",
            "../../../../etc/passwd",
            "0123456789abcdef0123456789abcde/",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef/123456789abcdef",
        ] {
            assert_eq!(bad.parse::<ChunkId>(), Err(InvalidChunkId), "{bad:?}");
        }
    }
}
