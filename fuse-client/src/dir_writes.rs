//! Write-back of directory attributes: with `--write-back`, a chmod, chown
//! or utimens of a directory changes it on this mount at once, and its
//! marker (`dir/`) is rewritten in the background, once for a burst of
//! changes. tar sets each directory's times, owner and mode as it finishes
//! it: three synchronous marker rewrites per directory before this.
//!
//! This module tracks which directories have a marker write queued or
//! running; `Fs` does the writing. While pending, the directory's
//! attributes on this mount are the truth (a listing or HEAD does not
//! replace them). A writer holds `Fs::dir_moves` for reading while it reads
//! the directory's path and writes; a directory rename or removal holds it
//! for writing, so no marker lands at a name the directory has left.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting to start: it will write the attributes as they are then.
    Queued,
    /// Being written; `again`: changed since the write read them.
    Writing { again: bool },
}

#[derive(Default)]
pub struct DirWrites {
    phases: Mutex<HashMap<u64, Phase>>,
}

impl DirWrites {
    /// The attributes of `ino` changed; true when the caller must start a
    /// writer for it (none is queued or running).
    pub fn changed(&self, ino: u64) -> bool {
        let mut phases = self.phases.lock().unwrap();
        match phases.get_mut(&ino) {
            Some(Phase::Queued) => false,
            Some(Phase::Writing { again }) => {
                *again = true;
                false
            }
            None => {
                phases.insert(ino, Phase::Queued);
                true
            }
        }
    }

    /// The writer of `ino` reads the attributes now.
    pub fn writing(&self, ino: u64) {
        self.phases
            .lock()
            .unwrap()
            .insert(ino, Phase::Writing { again: false });
    }

    /// The writer of `ino` is done; true when it must write again (the
    /// attributes changed while it wrote).
    pub fn written(&self, ino: u64) -> bool {
        let mut phases = self.phases.lock().unwrap();
        if phases.get(&ino) == Some(&Phase::Writing { again: true }) {
            phases.insert(ino, Phase::Queued);
            return true;
        }
        phases.remove(&ino);
        false
    }

    /// Does `ino` have a write queued or running?
    pub fn is_pending(&self, ino: u64) -> bool {
        self.phases.lock().unwrap().contains_key(&ino)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_changes_is_one_write_and_a_late_change_another() {
        let writes = DirWrites::default();
        assert!(writes.changed(7), "the first change starts a writer");
        assert!(!writes.changed(7), "later ones ride on the queued write");
        assert!(writes.is_pending(7));
        writes.writing(7);
        assert!(!writes.written(7), "nothing changed during the write");
        assert!(!writes.is_pending(7));

        assert!(writes.changed(7));
        writes.writing(7);
        assert!(!writes.changed(7), "the running writer will write again");
        assert!(writes.written(7), "changed while writing: write again");
        writes.writing(7);
        assert!(!writes.written(7));
        assert!(!writes.is_pending(7));
    }
}
