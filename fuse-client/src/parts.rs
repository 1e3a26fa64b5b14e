//! Part buffers: the `PART`-sized buffers a writer fills and uploads come
//! from a small pool and go back to it when the last `Bytes` made from one
//! is dropped (the upload done, the staging copy written), instead of going
//! through the allocator for every 8 MiB.
//!
//! Why: a fresh buffer's pages are faulted in and zeroed on first touch
//! (most of a large write's CPU, before buffers were kept), and freed 8 MiB
//! chunks kept by the allocator sit in whichever thread's arena freed them,
//! where other threads cannot reuse them: while writing 4 GiB the daemon's
//! RSS depended on how its threads happened to be scheduled. The pool keeps
//! at most `KEEP` spare buffers, so the memory held for parts is bounded by
//! what is in use plus `KEEP` parts.

use std::sync::Mutex;

use bytes::Bytes;

/// A part's size: the router's chunk size.
pub(crate) const PART: usize = bucketfs_common::extension::CHUNK_SIZE;
/// Spare buffers kept for reuse: a file's uploads in flight and the part
/// being filled (see `writer.rs`), with one to spare.
const KEEP: usize = 6;

static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// One part's bytes, in a buffer that returns to the pool when dropped.
pub(crate) struct PartBuf(Vec<u8>);

impl PartBuf {
    /// An empty buffer with room for a whole part.
    pub(crate) fn new() -> Self {
        let spare = SPARE.lock().unwrap().pop();
        PartBuf(spare.unwrap_or_else(|| Vec::with_capacity(PART)))
    }

    /// `len` (at most `PART`) zero bytes, to read into.
    pub(crate) fn zeroed(len: usize) -> Self {
        let mut buf = Self::new();
        buf.0.resize(len, 0);
        buf
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Appends `data`; the caller keeps a part within `PART` bytes.
    pub(crate) fn extend_from_slice(&mut self, data: &[u8]) {
        self.0.extend_from_slice(data);
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Shares the bytes; the buffer returns to the pool when the last
    /// clone is dropped.
    pub(crate) fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }

    /// Spare buffers in the pool now.
    #[cfg(test)]
    fn spare() -> usize {
        SPARE.lock().unwrap().len()
    }
}

impl AsRef<[u8]> for PartBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for PartBuf {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        if buf.capacity() != PART {
            return; // grown past a part, or never a part: not kept
        }
        let mut spare = SPARE.lock().unwrap();
        if spare.len() < KEEP {
            buf.clear();
            spare.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_when_their_last_bytes_go() {
        let mut a = PartBuf::new();
        a.extend_from_slice(b"hello");
        let bytes = a.freeze();
        let clone = bytes.clone();
        drop(bytes);
        assert_eq!(&clone[..], b"hello");
        drop(clone);
        let b = PartBuf::zeroed(10);
        assert_eq!(b.as_ref(), &[0; 10], "a reused buffer reads as zeros");
        // However many are freed at once, at most KEEP stay.
        let many: Vec<PartBuf> = (0..KEEP + 3).map(|_| PartBuf::new()).collect();
        drop(many);
        assert!(PartBuf::spare() <= KEEP);
    }
}
