//! Open files and their handles: the state every handle of one file
//! shares (its writer), counted so that the last close frees it.

use std::sync::{Arc, Mutex};

use crate::cache::Readahead;
use crate::store::Source;
use crate::writer::Writer;

/// State shared by every handle of one open file.
#[derive(Default)]
pub(super) struct OpenFile {
    pub(super) writer: Option<Writer>,
    /// Unlinked while open: readable until closed, never committed.
    pub(super) orphan: bool,
    /// A write-back commit is queued and has not started yet.
    pub(super) queued: bool,
    /// The write-back journal holds the file as of this many writer edits,
    /// until its commit lands (see `journal.rs`).
    pub(super) journaled: Option<u64>,
    /// The object this file was made a copy of by `copy_file_range` (see
    /// `copy.rs`), while nothing has been written to it since.
    pub(super) copy_of: Option<Source>,
}

/// An open file in the table: its state and how many handles use it,
/// counted under the table's lock so a close racing an open never drops
/// state the open still uses.
pub(super) struct Opened {
    pub(super) handles: usize,
    pub(super) state: Shared<OpenFile>,
}

pub(super) struct Handle {
    pub(super) ino: u64,
    pub(super) state: Shared<OpenFile>,
    pub(super) writable: bool,
    pub(super) append: bool,
    pub(super) readahead: Mutex<Readahead>,
}

pub(super) type Shared<T> = Arc<tokio::sync::Mutex<T>>;
