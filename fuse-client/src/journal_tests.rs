use super::*;

fn meta(mode: &str) -> Metadata {
    Metadata::from([("mode".to_string(), mode.to_string())])
}

fn done(key: &str, upto: u64) -> Record {
    Record::Done {
        keys: vec![(key.into(), upto)],
    }
}

fn put(key: &str) -> Record {
    Record::Put {
        key: key.into(),
        meta: meta("33188"),
        base: None,
    }
}

#[test]
fn records_read_back_until_a_torn_one() {
    let mut bytes = frame(1, &put("a"), b"hello");
    bytes.extend(frame(2, &done("a", 1), &[]));
    let whole = bytes.len();
    bytes.extend(frame(3, &put("b"), b"world"));
    let read = read_segment(&bytes);
    assert_eq!(read.len(), 3);
    assert_eq!(
        (read[0].0, &read[0].1, &read[0].2[..]),
        (1, &put("a"), &b"hello"[..])
    );
    // A record cut short (the machine died mid-write) ends the segment.
    assert_eq!(read_segment(&bytes[..bytes.len() - 2]).len(), 2);
    // So does a damaged one.
    let mut damaged = bytes.clone();
    damaged[whole + FRAME + 3] ^= 1;
    assert_eq!(read_segment(&damaged).len(), 2);
}

#[test]
fn the_latest_record_of_a_key_decides_what_is_owed() {
    let mut ledger = Ledger::default();
    ledger.apply(1, put("d/a"), Bytes::from_static(b"1"));
    ledger.apply(2, put("d/b"), Bytes::from_static(b"2"));
    ledger.apply(
        3,
        Record::Meta {
            key: "d/a".into(),
            meta: meta("33261"),
        },
        Bytes::new(),
    );
    // d/b landed, and was then deleted.
    ledger.apply(4, done("d/b", 3), Bytes::new());
    ledger.apply(
        5,
        Record::Delete {
            key: "d/b".into(),
            etag: Some("e".into()),
        },
        Bytes::new(),
    );
    ledger.apply(6, put("x"), Bytes::from_static(b"x"));
    // A Done taken before x's latest record does not cover it.
    ledger.apply(7, put("x"), Bytes::from_static(b"x2"));
    ledger.apply(8, done("x", 6), Bytes::new());
    ledger.apply(
        9,
        Record::Moved {
            from: "d/".into(),
            to: "e/".into(),
        },
        Bytes::new(),
    );
    let owed = ledger.into_owed();
    assert_eq!(
        owed,
        vec![
            (
                "e/a".to_string(),
                Owed::Put {
                    meta: meta("33261"),
                    bases: vec![None],
                    body: Bytes::from_static(b"1")
                }
            ),
            (
                "e/b".to_string(),
                Owed::Delete {
                    etag: Some("e".into())
                }
            ),
            (
                "x".to_string(),
                Owed::Put {
                    meta: meta("33188"),
                    bases: vec![None],
                    body: Bytes::from_static(b"x2")
                }
            ),
        ]
    );
}

fn open(cache: &Path) -> (Journal, Vec<(String, Owed)>) {
    let leftovers = leftovers(cache, "n").unwrap();
    let owed = leftovers.owed.clone();
    (Journal::open(cache, "n", leftovers, &[]).unwrap(), owed)
}

#[test]
fn a_journal_outlives_its_mount_until_everything_is_done() {
    let cache = tempfile::tempdir().unwrap();
    let (journal, owed) = open(cache.path());
    assert!(owed.is_empty());
    journal.append(put("a"), b"A").unwrap();
    journal.append(put("b"), b"B").unwrap();
    journal.done(vec![("a".into(), journal.seq())]);
    // A second mount of the bucket meanwhile takes a journal of its own.
    let (other, owed) = open(cache.path());
    assert!(owed.is_empty());
    other.append(put("c"), b"C").unwrap();
    drop(journal);
    drop(other);
    // The next mount finds what both still owe, and starts afresh.
    let (journal, owed) = open(cache.path());
    let keys: Vec<&str> = owed.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["b", "c"]);
    assert!(!journal.owes());
    drop(journal);
    assert!(open(cache.path()).1.is_empty());
}

#[test]
fn unreplayed_changes_are_kept_for_the_next_mount() {
    let cache = tempfile::tempdir().unwrap();
    let (journal, _) = open(cache.path());
    journal.append(put("a"), b"A").unwrap();
    drop(journal);
    let leftovers = leftovers(cache.path(), "n").unwrap();
    let owed = leftovers.owed.clone();
    let journal = Journal::open(cache.path(), "n", leftovers, &owed).unwrap();
    assert!(journal.owes());
    drop(journal);
    assert_eq!(open(cache.path()).1, owed);
}

#[test]
fn segments_go_once_nothing_first_recorded_in_them_is_owed() {
    let cache = tempfile::tempdir().unwrap();
    let (journal, _) = open(cache.path());
    let body = vec![7u8; 1 << 20];
    for i in 0..40 {
        journal.append(put(&format!("k{i}")), &body).unwrap();
        journal.done(vec![(format!("k{i}"), journal.seq())]);
    }
    journal.append(put("last"), b"L").unwrap();
    let dir = journal.dir.clone();
    // 40 MiB written: three segments; the two full ones are gone.
    assert_eq!(segments(&dir).unwrap().len(), 1);
    drop(journal);
    let keys: Vec<String> = open(cache.path()).1.into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["last"]);
}

#[test]
fn a_new_file_over_an_owed_delete_may_find_either() {
    let mut ledger = Ledger::default();
    let delete = Record::Delete {
        key: "a".into(),
        etag: Some("old".into()),
    };
    ledger.apply(1, delete, Bytes::new());
    ledger.apply(2, put("a"), Bytes::from_static(b"new"));
    ledger.apply(3, put("a"), Bytes::from_static(b"newer"));
    let bases = vec![None, Some("old".to_string())];
    let body = Bytes::from_static(b"newer");
    let owed = ledger.into_owed();
    assert_eq!(
        owed,
        vec![(
            "a".to_string(),
            Owed::Put {
                meta: meta("33188"),
                bases,
                body
            }
        )]
    );
}
