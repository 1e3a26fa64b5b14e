//! The chunk API between a router and a storage node: its paths, headers
//! and error codes, written once for the node that answers and the router
//! that asks.
//!
//! - `PUT /chunks/{id}` stores a body ([`CRC32C_HEADER`]: its crc32c in hex;
//!   `?`[`crate::DEFERRED_QUERY`]: answer before it is on disk)
//! - `GET /chunks/{id}?start=S&end=E` returns verified payload bytes `[S, E)`
//! - `HEAD /chunks/{id}` answers with the payload length ([`LENGTH_HEADER`])
//! - `DELETE /chunks/{id}` removes a chunk
//! - `GET /chunks` lists the chunks held, one per line: the id and the
//!   file's age in seconds ([`inventory_line`]), for the worker's inventory
//!
//! Every request under [`CHUNKS_PATH`] is signed with the cluster secret
//! ([`crate::peer_auth`]); a PUT signs the BLAKE3 hash of its body.
//!
//! A failed request names why in [`ERROR_HEADER`], so that a router tells a
//! corrupt replica (read another, repair it) from a missing one.

use std::fmt::Display;

/// The collection of chunks on a node.
pub const CHUNKS_PATH: &str = "/chunks";
/// The header carrying the crc32c (8 hex digits) of a PUT body.
pub const CRC32C_HEADER: &str = "x-bucketfs-crc32c";
/// The header naming why a request failed (an [`ErrorCode`]).
pub const ERROR_HEADER: &str = "x-bucketfs-error";
/// The header of a HEAD answer carrying the payload length.
pub const LENGTH_HEADER: &str = "x-bucketfs-length";

/// The path of one chunk (a [`crate::ChunkId`], or its text).
pub fn chunk_path(id: &impl Display) -> String {
    format!("{CHUNKS_PATH}/{id}")
}

/// The path of bytes `[start, end)` of a chunk's payload.
pub fn range_path(id: &impl Display, start: u64, end: u64) -> String {
    format!("{CHUNKS_PATH}/{id}?start={start}&end={end}")
}

/// One line of a node's inventory (`GET /chunks`): a chunk id and how many
/// seconds ago its file was last written.
pub fn inventory_line(id: &impl Display, age_secs: u64) -> String {
    format!("{id} {age_secs}\n")
}

/// A line of [`inventory_line`]'s, read back.
pub fn parse_inventory_line(line: &str) -> Option<(&str, u64)> {
    let (id, age) = line.trim().split_once(' ')?;
    Some((id, age.parse().ok()?))
}

/// The crc32c of a body as [`CRC32C_HEADER`] carries it.
pub fn crc32c_value(crc: u32) -> String {
    format!("{crc:08x}")
}

/// Why a chunk request failed, as [`ERROR_HEADER`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadId,
    BadCrcHeader,
    BadBody,
    NotFound,
    /// The stored bytes fail their checksums.
    Corrupt,
    /// The body does not match its [`CRC32C_HEADER`].
    BadChecksum,
    TooLarge,
    BadLength,
    BadRange,
    DiskFull,
    Io,
    /// The request is not signed by a cluster member, or not recently
    /// (see [`crate::peer_auth`]).
    Forbidden,
}

const CODES: [(ErrorCode, &str); 12] = [
    (ErrorCode::BadId, "bad-id"),
    (ErrorCode::BadCrcHeader, "bad-crc-header"),
    (ErrorCode::BadBody, "bad-body"),
    (ErrorCode::NotFound, "not-found"),
    (ErrorCode::Corrupt, "corrupt"),
    (ErrorCode::BadChecksum, "bad-checksum"),
    (ErrorCode::TooLarge, "too-large"),
    (ErrorCode::BadLength, "bad-length"),
    (ErrorCode::BadRange, "bad-range"),
    (ErrorCode::DiskFull, "disk-full"),
    (ErrorCode::Io, "io"),
    (ErrorCode::Forbidden, "forbidden"),
];

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        CODES
            .iter()
            .find(|(c, _)| *c == self)
            .map(|(_, s)| *s)
            .expect("every code is listed")
    }

    /// The code a header value names; `None` for an unknown one.
    pub fn parse(value: &str) -> Option<Self> {
        CODES.iter().find(|(_, s)| *s == value).map(|(c, _)| *c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for (code, text) in CODES {
            assert_eq!(code.as_str(), text);
            assert_eq!(ErrorCode::parse(text), Some(code));
        }
        assert_eq!(ErrorCode::parse("nonsense"), None);
        assert_eq!(crc32c_value(0xab), "000000ab");
    }
}
