//! Unit tests of `writer.rs`: commit plans, patches, streaming parts.

use std::sync::Arc;

use super::*;
use crate::memory::MemoryStore;

const MIB: u64 = 1 << 20;

#[test]
fn plan_copies_what_equals_the_base_and_uploads_the_rest() {
    let parts = [
        Remote::Base,
        Remote::Stale,
        Remote::Uploaded("e".into()),
        Remote::Base,
    ];
    let plan = plan_parts(&parts, 3 * PART + 5, 3 * PART + 5);
    assert_eq!(
        plan,
        [
            PartPlan::Copy { start: 0, end: PART },
            PartPlan::Upload,
            PartPlan::Keep("e".into()),
            PartPlan::Copy {
                start: 3 * PART,
                end: 3 * PART + 5
            },
        ]
    );
    // Cut to 1.5 parts, then grown again: the base holds only the first
    // half of part 1, so part 1 is uploaded whatever it says.
    let plan = plan_parts(&[Remote::Base, Remote::Base], 2 * PART, PART + PART / 2);
    assert_eq!(plan[1], PartPlan::Upload);
}

#[test]
fn plans_agree_with_a_naive_reading_for_random_parts() {
    let mut rng = bucketfs_common::testing::Xorshift::new(0x2545_f491_4f6c_dd1du64);
    let mut next = |n: u64| rng.below(n);
    for _ in 0..2_000 {
        let count = 1 + next(6) as usize;
        let size = (count as u64 - 1) * PART + 1 + next(PART);
        let base_len = next(size + 1);
        let parts: Vec<Remote> = (0..count)
            .map(|i| match next(3) {
                0 => Remote::Base,
                1 => Remote::Stale,
                _ => Remote::Uploaded(format!("e{i}")),
            })
            .collect();
        let plan = plan_parts(&parts, size, base_len);
        assert_eq!(plan.len(), count);
        for (i, (remote, step)) in parts.iter().zip(&plan).enumerate() {
            let (start, end) = (i as u64 * PART, ((i as u64 + 1) * PART).min(size));
            let want = match remote {
                Remote::Uploaded(e) => PartPlan::Keep(e.clone()),
                Remote::Base if end <= base_len => PartPlan::Copy { start, end },
                _ => PartPlan::Upload,
            };
            assert_eq!(*step, want, "part {i} of {parts:?}, size {size}, base {base_len}");
        }
    }
}

fn store() -> (Arc<MemoryStore>, Store) {
    let memory = Arc::new(MemoryStore::new(false));
    (memory.clone(), memory)
}

async fn committed(store: &Store, key: &str, size: u64) -> Source {
    let info = store.head(key, None).await.unwrap().expect("committed");
    assert_eq!(info.size, size);
    Source {
        key: key.into(),
        version_id: None,
        etag: info.etag,
    }
}

/// A committed 3-part object "big" and its bytes.
async fn three_parts(dir: &Path, store: &Store, meta: &Metadata) -> (Source, Vec<u8>) {
    let size = 3 * PART;
    let mut writer = Writer::new(dir, "big", None, 0).unwrap();
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    for (i, piece) in data.chunks(MIB as usize).enumerate() {
        writer.write(store, meta, i as u64 * MIB, piece).await.unwrap();
    }
    writer.commit(store, meta, false).await.unwrap();
    (committed(store, "big", size).await, data)
}

#[tokio::test]
async fn a_one_byte_change_is_patched_as_one_block() {
    let dir = tempfile::tempdir().unwrap();
    let (memory, store) = store();
    let meta = Metadata::new();
    let (source, data) = three_parts(dir.path(), &store, &meta).await;
    assert_eq!(memory.contents("big").unwrap(), data);

    let before = memory.bytes_in();
    let mut writer = Writer::new(dir.path(), "big", Some(source), 3 * PART).unwrap();
    writer.write(&store, &meta, PART + 7, b"X").await.unwrap();
    // A write that ends at a part's end does not send the part.
    writer.write(&store, &meta, 2 * PART - 4, b"edge").await.unwrap();
    writer.write(&store, &meta, 3 * PART, b"tail").await.unwrap();
    assert!(writer.dirty());
    writer.commit(&store, &meta, false).await.unwrap();
    assert_eq!(
        memory.bytes_in() - before,
        2 * 4096 + 4,
        "two blocks and the appended bytes"
    );
    let mut want = data;
    want[(PART + 7) as usize] = b'X';
    want[(2 * PART - 4) as usize..(2 * PART) as usize].copy_from_slice(b"edge");
    want.extend_from_slice(b"tail");
    assert_eq!(memory.contents("big").unwrap(), want);
    assert_eq!(memory.open_uploads(), 0);
}

#[tokio::test]
async fn a_large_change_uploads_its_part_and_copies_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (memory, store) = store();
    let meta = Metadata::new();
    let (source, mut want) = three_parts(dir.path(), &store, &meta).await;
    let before = memory.bytes_in();
    let mut writer = Writer::new(dir.path(), "big", Some(source), 3 * PART).unwrap();
    let part = vec![b'Y'; PART as usize];
    writer.write(&store, &meta, PART, &part).await.unwrap();
    writer.commit(&store, &meta, false).await.unwrap();
    assert_eq!(memory.bytes_in() - before, PART, "one part uploaded, two copied");
    want[PART as usize..2 * PART as usize].copy_from_slice(&part);
    assert_eq!(memory.contents("big").unwrap(), want);
}

#[tokio::test]
async fn a_patch_over_someone_elses_write_falls_back_to_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let (memory, store) = store();
    let meta = Metadata::new();
    let data = vec![1u8; 300 << 10];
    store.put("f", Bytes::from(data.clone()), &meta).await.unwrap();
    let source = committed(&store, "f", data.len() as u64).await;
    let mut writer = Writer::new(dir.path(), "f", Some(source), data.len() as u64).unwrap();
    writer.write(&store, &meta, 10, b"mine").await.unwrap();
    store.put("f", Bytes::from(vec![2u8; 10]), &meta).await.unwrap();
    // The whole file is staged (one part, loaded by the write), so the
    // fallback's upload lands: the last writer wins, never a mix.
    writer.commit(&store, &meta, false).await.unwrap();
    let mut want = data;
    want[10..14].copy_from_slice(b"mine");
    assert_eq!(memory.contents("f").unwrap(), want);
}

#[tokio::test]
async fn reads_see_writes_before_the_commit_and_truncation_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (memory, store) = store();
    let meta = Metadata::new();
    store
        .put("f", Bytes::from_static(b"0123456789"), &meta)
        .await
        .unwrap();
    let source = committed(&store, "f", 10).await;
    let mut writer = Writer::new(dir.path(), "f", Some(source), 10).unwrap();
    writer.write(&store, &meta, 2, b"ab").await.unwrap();
    let spans = writer.read_spans(0, 10).await.unwrap();
    let mut read = Vec::new();
    for span in spans {
        match span {
            Span::Local(b) => read.extend_from_slice(&b),
            Span::Base(..) => panic!("a loaded part reads locally"),
        }
    }
    assert_eq!(read, b"01ab456789");
    writer.resize(&store, 4).await.unwrap();
    writer.commit(&store, &meta, false).await.unwrap();
    assert_eq!(memory.contents("f").unwrap(), "01ab");
    assert!(!writer.dirty());
    // Cut at a part boundary, where no part changes: still a change.
    writer.resize(&store, 0).await.unwrap();
    assert!(writer.dirty());
    writer.commit(&store, &meta, false).await.unwrap();
    assert_eq!(memory.contents("f").unwrap(), "");
}

#[tokio::test]
async fn a_failed_part_upload_fails_the_commit_and_a_retry_lands_it() {
    use crate::memory::Fault;
    let dir = tempfile::tempdir().unwrap();
    let (memory, store) = store();
    let meta = Metadata::new();
    let mut writer = Writer::new(dir.path(), "k", None, 0).unwrap();
    let data = vec![7u8; (2 * PART + 10) as usize];
    writer.write(&store, &meta, 0, &data).await.unwrap();
    // The next 8 calls fail: the commit cannot land.
    let planned = memory.calls();
    for n in 1..=8 {
        memory.fault_at(n, Fault::Fail(FsError::Io("injected".into())));
    }
    assert!(writer.commit(&store, &meta, false).await.is_err());
    assert!(memory.contents("k").is_none());
    while memory.calls() < planned + 8 {
        let _ = store.head("x", None).await;
    }
    writer.commit(&store, &meta, false).await.unwrap();
    assert_eq!(memory.contents("k").unwrap(), data);
}

#[tokio::test(start_paused = true)]
async fn an_upload_of_a_part_truncated_away_is_not_taken_for_its_successor() {
    use crate::memory::Fault;
    let dir = tempfile::tempdir().unwrap();
    let (memory, store) = store();
    let meta = Metadata::new();
    let mut writer = Writer::new(dir.path(), "k", None, 0).unwrap();
    // Part 0 of the first bytes streams out slowly (create the upload,
    // then the part: the second call from now).
    memory.fault_at(2, Fault::Delay(std::time::Duration::from_secs(5)));
    let old = vec![1u8; (PART + 10) as usize];
    writer.write(&store, &meta, 0, &old).await.unwrap();
    // Truncated to nothing and written again: part 0 is a new part, its
    // upload in flight beside the old one, which lands last.
    writer.resize(&store, 0).await.unwrap();
    memory.fault_at(1, Fault::Delay(std::time::Duration::from_secs(1)));
    let new = vec![2u8; (PART + 10) as usize];
    writer.write(&store, &meta, 0, &new).await.unwrap();
    writer.commit(&store, &meta, false).await.unwrap();
    assert_eq!(memory.contents("k").unwrap(), new);
}
