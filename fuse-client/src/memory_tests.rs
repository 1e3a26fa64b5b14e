//! Tests of the in-memory store (`memory.rs`).
use super::*;

fn meta() -> Metadata {
    Metadata::new()
}

fn source(key: &str, etag: &str) -> Source {
    Source {
        key: key.into(),
        version_id: None,
        etag: etag.into(),
    }
}

#[tokio::test]
async fn reads_insist_on_the_etag_or_version_they_name() {
    let store = MemoryStore::new(true);
    let first = store.put("k", Bytes::from("one"), &meta()).await.unwrap();
    let second = store.put("k", Bytes::from("two"), &meta()).await.unwrap();
    assert_ne!(first.etag, second.etag);
    let stale = store.get_range(&source("k", &first.etag), 0, 10).await;
    assert!(matches!(stale, Err(FsError::Stale)));
    let old = Source {
        version_id: first.version_id.clone(),
        ..source("k", "")
    };
    assert_eq!(store.get_range(&old, 0, 10).await.unwrap(), "one");
    assert_eq!(
        store.get_range(&source("k", &second.etag), 1, 10).await.unwrap(),
        "wo"
    );
    store.delete("k").await.unwrap();
    assert!(store.head("k", None).await.unwrap().is_none());
    assert_eq!(store.get_range(&old, 0, 3).await.unwrap(), "one");
    let versions = store.list_versions("", None).await.unwrap().versions;
    assert_eq!(versions.len(), 3);
    assert!(versions[0].delete_marker, "newest first");
}

#[tokio::test]
async fn unversioned_writes_replace_the_only_version() {
    let store = MemoryStore::new(false);
    let info = store.put("k", Bytes::from("one"), &meta()).await.unwrap();
    assert_eq!(info.version_id, None);
    store.put("k", Bytes::from("two"), &meta()).await.unwrap();
    assert_eq!(store.list_versions("", None).await.unwrap().versions.len(), 1);
    store.delete("k").await.unwrap();
    assert!(store.keys().is_empty());
}

#[tokio::test]
async fn listings_fold_page_and_tell_markers() {
    let store = MemoryStore::new(false);
    for key in ["a", "d/", "d/x", "d/y/z", "e/f", "g"] {
        store.put(key, Bytes::new(), &meta()).await.unwrap();
    }
    let top = store.list("", None, 1000).await.unwrap();
    let keys: Vec<&str> = top.objects.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a", "g"]);
    assert_eq!(top.prefixes, ["d/", "e/"]);
    assert!(top.markers["d/"].is_some() && top.markers["e/"].is_none());
    // One entry a page: a, d/, e/, g.
    let mut token = None;
    let mut seen = Vec::new();
    loop {
        let page = store.list("", token.as_deref(), 1).await.unwrap();
        seen.extend(page.objects.iter().map(|(k, _)| k.clone()));
        seen.extend(page.prefixes.iter().cloned());
        match page.next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "d/", "e/", "g"]);
    // Started inside `d/`: its marker cannot be told.
    let inside = store.list_after("", "d/x", 10).await.unwrap();
    assert_eq!(inside.prefixes, ["d/", "e/"]);
    assert!(!inside.markers.contains_key("d/"));
    let tree = store.list_tree("d/", 2).await.unwrap();
    assert_eq!(tree.objects.len(), 2);
    assert!(tree.next.is_some());
}

/// Paging through a listing with any page size, by continuation token
/// or by start-after, shows exactly the folded listing a naive reading
/// of the keys gives.
#[tokio::test]
async fn pages_of_any_size_add_up_to_the_whole_listing() {
    let store = MemoryStore::new(false);
    let mut keys = Vec::new();
    for a in ["a", "b", "c/", "d"] {
        for b in ["", "x", "y/", "y/z", "0/1"] {
            keys.push(format!("{a}{b}"));
        }
    }
    for key in &keys {
        store.put(key, Bytes::new(), &meta()).await.unwrap();
    }
    for prefix in ["", "c/", "by/", "a"] {
        let mut want: Vec<String> = Vec::new();
        for key in keys.iter().filter(|k| k.starts_with(prefix)) {
            let entry = match key[prefix.len()..].find('/') {
                Some(i) => key[..prefix.len() + i + 1].to_string(),
                None => key.clone(),
            };
            if !want.contains(&entry) {
                want.push(entry);
            }
        }
        want.sort();
        for page in 1..8 {
            let mut seen = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let listing = store.list(prefix, token.as_deref(), page).await.unwrap();
                assert!(listing.objects.len() + listing.prefixes.len() <= page);
                let mut entries: Vec<String> = listing.objects.iter().map(|(k, _)| k.clone()).collect();
                entries.extend(listing.prefixes.iter().cloned());
                entries.sort();
                seen.extend(entries);
                match listing.next {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
            assert_eq!(seen, want, "prefix {prefix:?}, pages of {page}");
        }
    }
}

#[tokio::test]
async fn renames_move_keys_or_prefixes_whole() {
    let store = MemoryStore::new(false);
    for key in ["d/", "d/a", "d/b/c", "e"] {
        store
            .put(key, Bytes::from(key.to_string()), &meta())
            .await
            .unwrap();
    }
    let refused = store.rename("d/", "e/", true, false).await;
    assert!(refused.is_ok());
    assert_eq!(store.keys(), ["e", "e/", "e/a", "e/b/c"]);
    assert!(matches!(
        store.rename("x", "y", false, false).await,
        Err(FsError::NotFound)
    ));
    assert!(matches!(
        store.rename("e/a", "e", false, true).await,
        Err(FsError::Exists)
    ));
    assert!(matches!(
        store.rename("e/", "e/b/", true, false).await,
        Err(FsError::Invalid)
    ));
    assert_eq!(store.contents("e/b/c").unwrap(), "d/b/c");
}

#[tokio::test]
async fn multipart_completes_from_parts_and_copies() {
    let store = MemoryStore::new(false);
    let base = store.put("k", Bytes::from("abcdef"), &meta()).await.unwrap();
    let up = store.create_upload("k", &meta()).await.unwrap();
    let p1 = store
        .upload_part_copy("k", &up, 1, &source("k", &base.etag), 0, 3)
        .await
        .unwrap();
    let p2 = store.upload_part("k", &up, 2, Bytes::from("XYZ")).await.unwrap();
    let wrong = store.complete_upload("k", &up, &[p2.clone(), p1.clone()]).await;
    assert!(matches!(wrong, Err(FsError::Invalid)));
    store.complete_upload("k", &up, &[p1, p2]).await.unwrap();
    assert_eq!(store.contents("k").unwrap(), "abcXYZ");
    assert_eq!(store.open_uploads(), 0);
}

#[tokio::test]
async fn faults_hit_the_planned_call() {
    let store = MemoryStore::new(false);
    store.fault_at(1, Fault::Fail(FsError::Io("boom".into())));
    store.fault_at(2, Fault::FailAfter(FsError::Io("lost answer".into())));
    assert!(store.put("a", Bytes::from("1"), &meta()).await.is_err());
    assert!(store.contents("a").is_none(), "failed before taking effect");
    assert!(store.put("b", Bytes::from("2"), &meta()).await.is_err());
    assert_eq!(store.contents("b").unwrap(), "2", "took effect, answer lost");
    assert!(store.put("c", Bytes::from("3"), &meta()).await.is_ok());
    store.random_faults(7, 1_000_000);
    let mut failed = 0;
    for _ in 0..30 {
        failed += store.head("c", None).await.is_err() as u32;
    }
    assert!(failed > 0 && failed < 30, "about two thirds fail: {failed}");
}
