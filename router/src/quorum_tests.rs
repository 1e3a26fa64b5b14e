//! The replication rules over scripted nodes: each node answers after a
//! delay, well or badly, and every request is recorded. The clock is
//! paused, so delays are exact and cost nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::FutureExt;

use super::*;

/// How a scripted node answers a put: after `ms`, well or not.
#[derive(Clone, Copy)]
struct Answer {
    ms: u64,
    ok: bool,
}

const fn ok(ms: u64) -> Answer {
    Answer { ms, ok: true }
}

const fn fails(ms: u64) -> Answer {
    Answer { ms, ok: false }
}

/// Nodes that answer puts as scripted and remember what they were asked.
#[derive(Clone, Default)]
struct Nodes {
    script: Arc<HashMap<String, Answer>>,
    asked: Arc<Mutex<Vec<(String, Fsync)>>>,
}

impl Nodes {
    fn new(script: &[(&str, Answer)]) -> Self {
        Self {
            script: Arc::new(script.iter().map(|(n, a)| (n.to_string(), *a)).collect()),
            asked: Arc::default(),
        }
    }

    fn ranked(&self, order: &[&str]) -> Vec<String> {
        order.iter().map(|n| n.to_string()).collect()
    }

    fn put(&self, node: String, fsync: Fsync) -> PutReplica {
        self.asked.lock().unwrap().push((node.clone(), fsync));
        let answer = self.script[&node];
        async move {
            tokio::time::sleep(Duration::from_millis(answer.ms)).await;
            let result = if answer.ok {
                Ok(())
            } else {
                Err(ChunkError::Failed(format!("{node} is down")))
            };
            (node, fsync, result)
        }
        .boxed()
    }

    fn asked(&self) -> Vec<(String, Fsync)> {
        self.asked.lock().unwrap().clone()
    }
}

fn asked(list: &[(&str, Fsync)]) -> Vec<(String, Fsync)> {
    list.iter().map(|(n, f)| (n.to_string(), *f)).collect()
}

#[tokio::test(start_paused = true)]
async fn two_copies_are_synced_and_the_third_is_deferred() {
    let nodes = Nodes::new(&[("a", ok(10)), ("b", ok(11)), ("c", ok(13)), ("d", ok(1))]);
    let done = write(nodes.ranked(&["a", "b", "c", "d"]), |n, f| nodes.put(n, f))
        .await
        .unwrap();
    // The third lands within the grace (half the quorum's 11 ms, at most
    // 5 ms), so it is recorded with the others; "d" is never asked.
    assert_eq!(done.stored, ["a", "b", "c"]);
    assert!(done.pending.is_empty());
    assert_eq!(done.quorum_time, Duration::from_millis(11));
    assert_eq!(
        nodes.asked(),
        asked(&[("a", Fsync::Now), ("b", Fsync::Now), ("c", Fsync::Deferred)])
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_third_replica_is_left_pending_not_waited_for() {
    let nodes = Nodes::new(&[("a", ok(10)), ("b", ok(20)), ("c", ok(500))]);
    let started = Instant::now();
    let mut done = write(nodes.ranked(&["a", "b", "c"]), |n, f| nodes.put(n, f))
        .await
        .unwrap();
    assert_eq!(done.stored, ["a", "b"]);
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(25),
        "quorum at 20 ms, then 5 ms of grace"
    );
    assert_eq!(done.pending.len(), 1);
    let (node, fsync, result) = done.pending.next().await.unwrap();
    assert_eq!((node.as_str(), fsync), ("c", Fsync::Deferred));
    assert!(result.is_ok());
}

#[tokio::test(start_paused = true)]
async fn the_grace_is_half_a_fast_quorum() {
    // Quorum at 4 ms, so the grace ends at 6 ms: a third at 5 ms is in.
    let nodes = Nodes::new(&[("a", ok(1)), ("b", ok(4)), ("c", ok(5)), ("late", ok(7))]);
    let started = Instant::now();
    let done = write(nodes.ranked(&["a", "b", "c"]), |n, f| nodes.put(n, f))
        .await
        .unwrap();
    assert_eq!(done.stored, ["a", "b", "c"]);
    assert_eq!(started.elapsed(), Duration::from_millis(5));

    let started = Instant::now();
    let done = write(nodes.ranked(&["a", "b", "late"]), |n, f| nodes.put(n, f))
        .await
        .unwrap();
    assert_eq!(done.stored, ["a", "b"]);
    assert_eq!(done.pending.len(), 1);
    assert_eq!(started.elapsed(), Duration::from_millis(6));
}

#[tokio::test(start_paused = true)]
async fn a_failed_copy_moves_down_the_ranking_with_an_fsync() {
    let nodes = Nodes::new(&[
        ("a", fails(1)),
        ("b", ok(10)),
        ("c", ok(10)),
        ("d", ok(10)),
        ("e", ok(1)),
    ]);
    let done = write(nodes.ranked(&["a", "b", "c", "d", "e"]), |n, f| nodes.put(n, f))
        .await
        .unwrap();
    // "c" was deferred and lands with "b"; "d" replaces "a" and is durable.
    assert_eq!(done.stored, ["b", "d", "c"]);
    assert_eq!(
        nodes.asked(),
        asked(&[
            ("a", Fsync::Now),
            ("b", Fsync::Now),
            ("c", Fsync::Deferred),
            ("d", Fsync::Now)
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn with_no_node_left_a_deferred_copy_is_made_durable() {
    let nodes = Nodes::new(&[("a", fails(1)), ("b", ok(10)), ("c", ok(5))]);
    let done = write(nodes.ranked(&["a", "b", "c"]), |n, f| nodes.put(n, f))
        .await
        .unwrap();
    assert_eq!(done.stored, ["b", "c"], "each node once, both durable");
    assert_eq!(
        nodes.asked(),
        asked(&[
            ("a", Fsync::Now),
            ("b", Fsync::Now),
            ("c", Fsync::Deferred),
            ("c", Fsync::Now)
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn two_live_nodes_are_a_quorum_and_fewer_are_not() {
    let nodes = Nodes::new(&[("a", ok(3)), ("b", ok(4)), ("c", fails(2))]);
    let done = write(nodes.ranked(&["a", "b"]), |n, f| nodes.put(n, f))
        .await
        .unwrap();
    assert_eq!(done.stored, ["a", "b"]);

    let one = write(nodes.ranked(&["a"]), |n, f| nodes.put(n, f)).await;
    assert_eq!(one.err(), Some(Shortfall { durable: 1 }));
    let none = write(Vec::new(), |n, f| nodes.put(n, f)).await;
    assert_eq!(none.err(), Some(Shortfall { durable: 0 }));
    let failing = write(nodes.ranked(&["c", "a"]), |n, f| nodes.put(n, f)).await;
    assert_eq!(failing.err(), Some(Shortfall { durable: 1 }));
}

#[tokio::test(start_paused = true)]
async fn every_node_failing_is_a_shortfall_after_trying_them_all() {
    let nodes = Nodes::new(&[("a", fails(1)), ("b", fails(2)), ("c", fails(3)), ("d", fails(4))]);
    let result = write(nodes.ranked(&["a", "b", "c", "d"]), |n, f| nodes.put(n, f)).await;
    assert_eq!(result.err(), Some(Shortfall { durable: 0 }));
    assert_eq!(nodes.asked().len(), 4);
}

/// A scripted replica's answer to a read: its bytes, or an error.
type ReadAnswer = Result<&'static [u8], fn() -> ChunkError>;

/// Replicas that answer reads as scripted.
fn fetcher(
    script: &[(&str, ReadAnswer)],
) -> impl Fn(String) -> BoxFuture<'static, Result<Frames, ChunkError>> {
    let script: HashMap<String, ReadAnswer> = script.iter().map(|(n, r)| (n.to_string(), *r)).collect();
    move |node| {
        let answer = script[&node];
        async move {
            match answer {
                Ok(bytes) => Ok(Frames::from(vec![Bytes::from_static(bytes)])),
                Err(make) => Err(make()),
            }
        }
        .boxed()
    }
}

fn plan(replicas: &[&str], length: u64, whole: Option<&[u8]>) -> ReadPlan {
    ReadPlan {
        replicas: replicas.iter().map(|n| n.to_string()).collect(),
        length,
        whole: whole.map(|bytes| WholeChunk {
            crc32c: crc32c::crc32c(bytes),
            content_hash: Some(bucketfs_common::peer_auth::content_hash(bytes)),
        }),
    }
}

#[test]
fn live_replicas_are_read_first_in_recorded_order() {
    let order = read_order(["x", "a", "y", "b"].map(String::from).to_vec(), |n| {
        n == "a" || n == "b"
    });
    assert_eq!(order, ["a", "b", "x", "y"]);
}

#[tokio::test]
async fn a_read_passes_over_failed_short_and_mismatched_replicas() {
    let fetch = fetcher(&[
        ("down", Err(|| ChunkError::Failed("connection refused".into()))),
        ("short", Ok(b"abc")),
        ("flipped", Ok(b"abcX")),
        ("good", Ok(b"abcd")),
    ]);
    let (frames, report) = read(
        plan(&["down", "short", "flipped", "good"], 4, Some(b"abcd")),
        fetch,
    )
    .await;
    assert_eq!(frames.unwrap().concat(), Bytes::from_static(b"abcd"));
    assert_eq!(
        report,
        ReadReport {
            checksum_failures: 1,
            lost: vec![],
            fallbacks: 3,
            hedges: 0,
        },
        "a mismatch found here is counted, but the node's record is kept"
    );
}

#[tokio::test]
async fn a_forged_replica_with_a_matching_crc32c_is_quarantined() {
    // crc32c is linear: four appended bytes chosen from the crc32c of the
    // altered text make it match the original's, as an attacker would.
    let original: &'static [u8] = b"the real content";
    let forged = bucketfs_common::testing::forge_crc32c(b"fake content", crc32c::crc32c(original));
    assert_eq!(crc32c::crc32c(&forged), crc32c::crc32c(original));
    let forged: &'static [u8] = Box::leak(forged.into_boxed_slice());
    let fetch = fetcher(&[("liar", Ok(forged)), ("good", Ok(original))]);
    let (frames, report) = read(plan(&["liar", "good"], 16, Some(original)), fetch).await;
    assert_eq!(frames.unwrap().concat(), Bytes::from_static(original));
    assert_eq!(report.lost, ["liar"]);
    assert_eq!((report.checksum_failures, report.fallbacks), (1, 1));
}

#[tokio::test]
async fn replicas_a_node_calls_corrupt_or_missing_are_lost() {
    let fetch = fetcher(&[
        ("corrupt", Err(|| ChunkError::Corrupt)),
        ("gone", Err(|| ChunkError::Missing)),
        ("good", Ok(b"bcd")),
    ]);
    let (frames, report) = read(plan(&["corrupt", "gone", "good"], 3, None), fetch).await;
    assert_eq!(frames.unwrap().concat(), Bytes::from_static(b"bcd"));
    assert_eq!(report.lost, ["corrupt", "gone"]);
    assert_eq!((report.checksum_failures, report.fallbacks), (1, 2));
}

#[tokio::test]
async fn a_part_of_a_chunk_is_not_checked_against_the_whole_checksum() {
    let fetch = fetcher(&[("a", Ok(b"cd"))]);
    let (frames, report) = read(plan(&["a"], 2, None), fetch).await;
    assert!(frames.is_some());
    assert_eq!(report, ReadReport::default());
}

#[tokio::test]
async fn no_good_replica_reads_nothing() {
    let fetch = fetcher(&[("a", Err(|| ChunkError::Missing)), ("b", Ok(b"zz"))]);
    let (frames, report) = read(plan(&["a", "b"], 4, None), fetch).await;
    assert!(frames.is_none());
    assert_eq!(report.fallbacks, 2);
    assert_eq!(report.lost, ["a"]);
}

/// A replica that never answers (a stopped node) costs the read one hedge
/// delay, not the request timeout; a slow one still wins if it is first.
#[tokio::test(start_paused = true)]
async fn a_stalled_replica_costs_a_read_one_hedge_delay() {
    let fetch = |node: String| -> BoxFuture<'static, Result<Frames, ChunkError>> {
        async move {
            match node.as_str() {
                "stopped" => futures::future::pending().await,
                "slow" => {
                    tokio::time::sleep(HEDGE_AFTER * 3).await;
                    Ok(Frames::from(vec![Bytes::from_static(b"slow")]))
                }
                _ => Ok(Frames::from(vec![Bytes::from_static(b"good")])),
            }
        }
        .boxed()
    };
    let started = tokio::time::Instant::now();
    let (frames, report) = read(plan(&["stopped", "good"], 4, None), fetch).await;
    assert_eq!(frames.unwrap().concat(), Bytes::from_static(b"good"));
    assert_eq!(started.elapsed(), HEDGE_AFTER);
    assert_eq!((report.hedges, report.fallbacks), (1, 0));

    let started = tokio::time::Instant::now();
    let (frames, report) = read(plan(&["stopped", "slow", "good"], 4, None), fetch).await;
    assert_eq!(frames.unwrap().concat(), Bytes::from_static(b"good"));
    assert_eq!(started.elapsed(), HEDGE_AFTER * 2);
    assert_eq!(report.hedges, 2);
}

/// A copy that never lands (a stopped node) holds the write up for
/// `SLOW_COPY` after the first durable copy, not the request timeout: the
/// node holding the deferred copy is asked to make it durable.
#[tokio::test(start_paused = true)]
async fn a_stalled_copy_is_not_waited_for() {
    let nodes = Nodes::new(&[
        ("a", ok(10)),
        ("stopped", ok(600_000)),
        ("c", ok(12)),
        ("d", ok(10)),
    ]);
    let started = Instant::now();
    let done = write(nodes.ranked(&["a", "stopped", "c", "d"]), |n, f| nodes.put(n, f))
        .await
        .unwrap();
    assert_eq!(done.stored, ["a", "c"]);
    assert_eq!(done.pending.len(), 1, "the stopped node's copy is left pending");
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(10) + SLOW_COPY + Duration::from_millis(12 + 5),
        "first copy at 10 ms, the slow-copy wait, c's durable copy, the grace"
    );
    assert_eq!(
        nodes.asked(),
        asked(&[
            ("a", Fsync::Now),
            ("stopped", Fsync::Now),
            ("c", Fsync::Deferred),
            ("c", Fsync::Now)
        ])
    );
}
