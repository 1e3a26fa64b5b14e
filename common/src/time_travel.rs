//! The wire of the time-travel extensions (issue 24), which the router
//! serves (`router/src/s3/history.rs`) and `bucketfs snapshot|fork|restore|
//! diff` and `mount --at SNAPSHOT` call. SigV4-signed like any request;
//! query values percent-encoded; answers are JSON.
//!
//! A moment is `at=` an RFC 3339 time or `snapshot=` a snapshot's name
//! (`from-at=`/`from-snapshot=` and `to-at=`/`to-snapshot=` in a diff).
//! A view as of a moment is each key's newest version written no later;
//! every transaction's versions carry one time, so a view shows each write
//! (a directory rename, a batch) wholly or not at all.

use serde::{Deserialize, Serialize};

/// `POST /{bucket}?bucketfs-snapshot&name=N` records the moment now as
/// snapshot N (answers a `Snapshot`; 409 if N exists); `GET` lists them
/// (`Snapshots`); `DELETE …&name=N` deletes one. Needs a versioned bucket;
/// lifecycle rules keep what a snapshot shows until it is deleted.
pub const SNAPSHOT_QUERY: &str = "bucketfs-snapshot";
/// `POST /{new}?bucketfs-fork&source=B&at=T` (or `snapshot=N`): makes
/// bucket NEW (versioned) with B's keys as of that moment, sharing their
/// chunks; one transaction, no byte copied. Answers `Forked`.
pub const FORK_QUERY: &str = "bucketfs-fork";
/// `POST /{bucket}?bucketfs-restore&prefix=P&at=T` (or `snapshot=N`): the
/// keys under P become what they were then, each changed key a new version
/// sharing the old one's chunks, each key made since deleted (its versions
/// stay); one transaction. Answers `Restored`.
pub const RESTORE_QUERY: &str = "bucketfs-restore";
/// `GET /{bucket}?bucketfs-diff&prefix=P&from-at=T1&to-at=T2` (snapshot
/// names instead with `from-snapshot=`/`to-snapshot=`; no `to`: now):
/// answers `Diff`.
pub const DIFF_QUERY: &str = "bucketfs-diff";

/// A named moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub name: String,
    /// RFC 3339.
    pub at: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshots {
    pub snapshots: Vec<Snapshot>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forked {
    pub bucket: String,
    pub keys: u64,
    /// The moment forked, RFC 3339.
    pub at: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Restored {
    /// Keys given their past version again.
    pub restored: Vec<String>,
    /// Keys made since, now deleted.
    pub deleted: Vec<String>,
}

/// What happened to a key between two moments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffKind {
    Added,
    Removed,
    /// Other content (ETag or size) under the same key.
    Changed,
    /// Removed from `from` and added at `key` with the same content.
    Renamed,
}

impl DiffKind {
    /// The letter `bucketfs diff` prints, as `git diff --name-status` does.
    pub fn letter(self) -> char {
        match self {
            DiffKind::Added => 'A',
            DiffKind::Removed => 'D',
            DiffKind::Changed => 'M',
            DiffKind::Renamed => 'R',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffEntry {
    pub change: DiffKind,
    pub key: String,
    /// The old name of a renamed key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Diff {
    /// The two moments compared, RFC 3339.
    pub from: String,
    pub to: String,
    pub changes: Vec<DiffEntry>,
}
