//! Small PUTs batched: on a bucketfs router, small objects put while other
//! batch calls are on their way wait here and go out together, many per
//! `POST /{bucket}?bucketfs-batch` call (the router stores them as one
//! chunk and commits them in one statement; see its `s3/batch.rs`). A burst
//! of small commits (tar -x, cp -r, git checkout) batches itself: up to
//! `CALLS` calls run at once, and what queues meanwhile makes up the next.
//!
//! This module holds the queue and the wire format; `S3::put` sends.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::oneshot;

use crate::error::FsError;

/// Bodies up to this size are batched; larger ones go alone.
pub const MAX_OBJECT: usize = 1 << 20;
use bucketfs_common::extension::{BatchAnswer, BatchEntry, BatchOutcome};
/// Most bytes and objects in one call (the router's limits).
use bucketfs_common::extension::{BATCH_MAX_BYTES as MAX_BYTES, BATCH_MAX_OBJECTS as MAX_OBJECTS};
/// Batch calls in flight at once.
const CALLS: usize = 1;

/// What the store answered for one put: its ETag and version id.
pub type Stored = Result<(String, Option<String>), FsError>;

/// One queued put and where its answer goes.
pub struct Put {
    pub key: String,
    pub body: Bytes,
    pub meta: HashMap<String, String>,
    answer: oneshot::Sender<Stored>,
}

impl Put {
    pub fn new(key: &str, body: Bytes, meta: &HashMap<String, String>) -> (Self, oneshot::Receiver<Stored>) {
        let (answer, rx) = oneshot::channel();
        let put = Put {
            key: key.to_string(),
            body,
            meta: meta.clone(),
            answer,
        };
        (put, rx)
    }

    pub fn answer(self, stored: Stored) {
        // The caller may have gone away; its put is stored all the same.
        let _ = self.answer.send(stored);
    }
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Put>,
    calls: usize,
}

#[derive(Default)]
pub struct Queue {
    state: Mutex<State>,
}

impl Queue {
    /// Queues `put`; true when the caller must start a sender (which then
    /// takes batches until none is left).
    pub fn push(&self, put: Put) -> bool {
        let mut state = self.state.lock().unwrap();
        state.waiting.push_back(put);
        let start = state.calls < CALLS;
        if start {
            state.calls += 1;
        }
        start
    }

    /// The next batch, oldest first; `None` (and one sender fewer) when the
    /// queue is empty. A key already in the batch ends it, so a key's puts
    /// reach the store in the order they were made.
    pub fn next_batch(&self) -> Option<Vec<Put>> {
        let mut state = self.state.lock().unwrap();
        if state.waiting.is_empty() {
            state.calls -= 1;
            return None;
        }
        let (mut batch, mut keys, mut bytes) = (Vec::new(), HashSet::new(), 0);
        while let Some(next) = state.waiting.front() {
            let full = batch.len() == MAX_OBJECTS || bytes + next.body.len() > MAX_BYTES;
            if !batch.is_empty() && (full || keys.contains(&next.key)) {
                break;
            }
            let put = state.waiting.pop_front().expect("front exists");
            bytes += put.body.len();
            keys.insert(put.key.clone());
            batch.push(put);
        }
        Some(batch)
    }
}

/// The request body: the one-line manifest, then the bodies back to back.
pub fn encode(puts: &[Put]) -> Bytes {
    let manifest: Vec<BatchEntry> = puts
        .iter()
        .map(|p| BatchEntry {
            key: p.key.clone(),
            size: p.body.len() as u64,
            metadata: p.meta.clone(),
            ..BatchEntry::default()
        })
        .collect();
    let manifest = serde_json::to_vec(&manifest).expect("a manifest serialises");
    let total: usize = puts.iter().map(|p| p.body.len()).sum();
    let mut body = BytesMut::with_capacity(manifest.len() + 1 + total);
    body.put_slice(&manifest);
    body.put_u8(b'\n');
    for put in puts {
        body.put_slice(&put.body);
    }
    body.freeze()
}

/// Each put's result from the answer to a batch of `n`.
pub fn decode(text: &str, n: usize) -> Result<Vec<Stored>, FsError> {
    let answer: BatchAnswer =
        serde_json::from_str(text).map_err(|e| FsError::Io(format!("malformed batch answer: {e}")))?;
    if answer.results.len() != n {
        return Err(FsError::Io(format!(
            "the batch answer has {} results for {n} objects",
            answer.results.len()
        )));
    }
    Ok(answer
        .results
        .into_iter()
        .map(|outcome| match outcome {
            BatchOutcome::Stored { etag, version_id } => Ok((etag, version_id)),
            BatchOutcome::Failed { error } => {
                let status = reqwest::StatusCode::from_u16(error.status)
                    .unwrap_or(reqwest::StatusCode::INTERNAL_SERVER_ERROR);
                Err(FsError::from_s3(status, &error.code))
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, len: usize) -> Put {
        Put::new(key, Bytes::from(vec![b'x'; len]), &HashMap::new()).0
    }

    #[test]
    fn batches_are_bounded_and_never_repeat_a_key() {
        let queue = Queue::default();
        let puts = [
            ("a", 10),
            ("k0", 10),
            ("k1", 10),
            ("k2", 10),
            ("a", 10),
            ("big", MAX_BYTES - 15),
            ("next", 10),
        ];
        let started = puts
            .iter()
            .filter(|(key, len)| queue.push(put(key, *len)))
            .count();
        assert_eq!(started, CALLS.min(puts.len()), "at most CALLS senders at once");
        let keys = |b: Vec<Put>| b.into_iter().map(|p| p.key).collect::<Vec<_>>();
        assert_eq!(keys(queue.next_batch().unwrap()), ["a", "k0", "k1", "k2"]);
        assert_eq!(keys(queue.next_batch().unwrap()), ["a", "big"]);
        assert_eq!(keys(queue.next_batch().unwrap()), ["next"]);
        for _ in 0..CALLS {
            assert!(queue.next_batch().is_none());
        }
        assert!(queue.push(put("again", 1)), "senders are counted back down");
    }

    #[test]
    fn encodes_a_manifest_line_then_the_bytes() {
        let (a, _) = Put::new(
            "a b",
            Bytes::from_static(b"hello"),
            &HashMap::from([("mode".into(), "1".into())]),
        );
        let (b, _) = Put::new("c", Bytes::new(), &HashMap::new());
        let body = encode(&[a, b]);
        let text = std::str::from_utf8(&body).unwrap();
        assert_eq!(
            text,
            "[{\"key\":\"a b\",\"size\":5,\"metadata\":{\"mode\":\"1\"}},{\"key\":\"c\",\"size\":0}]\nhello"
        );
    }

    #[test]
    fn decodes_each_result() {
        let text = r#"{"results":[{"etag":"e1"},{"etag":"e2","version_id":"v"},{"error":{"status":412,"code":"PreconditionFailed","message":"m"}}]}"#;
        let results = decode(text, 3).unwrap();
        assert_eq!(results[0].as_ref().unwrap(), &("e1".to_string(), None));
        assert_eq!(
            results[1].as_ref().unwrap(),
            &("e2".to_string(), Some("v".to_string()))
        );
        assert!(matches!(results[2], Err(FsError::Stale)));
        assert!(decode(text, 2).is_err());
        assert!(decode("<Error/>", 1).is_err());
    }
}
