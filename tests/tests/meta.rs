//! The metadata store's SQL against a real Postgres (the harness's): the
//! router's `Meta` called directly, without S3 in between, so each statement's
//! meaning is checked on its own — commits and their preconditions, chunk
//! maps, deletes in unversioned and versioned buckets, renames, and garbage
//! collection of unreferenced chunks.

use std::collections::HashMap;

use anyhow::Result;
use bucketfs_tests::Cluster;
use router::meta::{Meta, NewVersion, Piece, WritePrecondition};

fn new_version(key: &str, chunk: &str, size: i64, precondition: WritePrecondition) -> NewVersion {
    NewVersion {
        key: key.into(),
        size,
        etag: format!("etag-of-{key}-{chunk}"),
        content_type: None,
        metadata: HashMap::from([("mode".to_string(), "33188".to_string())]),
        parts_count: None,
        pieces: vec![Piece {
            chunk_id: chunk.into(),
            chunk_offset: 0,
            length: size,
        }],
        precondition,
        follow_links: false,
    }
}

/// A commit through the mount: it goes to every name of the key's link group.
fn followed(key: &str, chunk: &str, size: i64) -> NewVersion {
    NewVersion {
        follow_links: true,
        ..new_version(key, chunk, size, WritePrecondition::None)
    }
}

#[test]
fn metadata_statements_keep_their_promises() -> Result<()> {
    let cluster = Cluster::start()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let meta = Meta::connect_lazy(&cluster.database_url())?;
        let owner = meta.ensure_user("meta-test").await?;
        assert_eq!(meta.ensure_user("meta-test").await?, owner, "made once");
        meta.create_bucket("m", &owner.id, &serde_json::json!([])).await?;
        let bucket = meta.bucket_uncached("m").await?;
        assert_eq!(bucket.owner_id.as_deref(), Some(owner.id.as_str()));
        assert!(matches!(
            meta.create_bucket("m", &owner.id, &serde_json::json!([])).await,
            Err(router::error::Error::BucketExists)
        ));
        let other = meta.ensure_user("meta-other").await?;
        assert!(matches!(
            meta.create_bucket("m", &other.id, &serde_json::json!([])).await,
            Err(router::error::Error::BucketTaken)
        ));
        let nodes = ["n1".to_string(), "n2".to_string()];
        for (chunk, size) in [("c1", 100), ("c2", 50)] {
            meta.record_chunk(chunk, size, (7, "h"), &nodes, 0.0).await?;
        }

        // A commit is read back with its metadata and its chunk map.
        let a = meta
            .commit_version(&bucket, new_version("a", "c1", 100, WritePrecondition::None))
            .await?;
        let read = meta.version(&bucket, "a", None).await?;
        assert_eq!(
            (read.id, read.size, read.etag.as_str()),
            (a.id, 100, "etag-of-a-c1")
        );
        assert_eq!(read.user_metadata()["mode"], "33188");
        let pieces = meta.pieces(a.id, 10, 20).await?;
        assert_eq!(pieces.len(), 1);
        assert_eq!((pieces[0].chunk_id.as_str(), pieces[0].replicas.len()), ("c1", 2));

        // Preconditions: Absent fails over an existing key; EtagIs must match.
        let again = new_version("a", "c2", 50, WritePrecondition::Absent);
        assert!(meta.commit_version(&bucket, again).await.is_err());
        let wrong = new_version("a", "c2", 50, WritePrecondition::EtagIs("nope".into()));
        assert!(meta.commit_version(&bucket, wrong).await.is_err());
        let right = new_version("a", "c2", 50, WritePrecondition::EtagIs("etag-of-a-c1".into()));
        meta.commit_version(&bucket, right).await?;
        assert_eq!(meta.version(&bucket, "a", None).await?.size, 50);

        // Unversioned: the replaced version is gone, so c1 is garbage; c2 is not.
        let garbage: Vec<String> = meta
            .collect_garbage(100)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert!(garbage.contains(&"c1".to_string()), "{garbage:?}");
        assert!(!garbage.contains(&"c2".to_string()));
        // A chunk whose writer holds a lease is not garbage yet, however
        // unreferenced; renewing finds it still there.
        meta.record_chunk("leased", 10, (7, "h"), &nodes, 60.0).await?;
        assert_eq!(meta.renew_leases(&["leased".to_string()], 60.0).await?, 1);
        let garbage = meta.collect_garbage(100).await?;
        assert!(garbage.iter().all(|c| c.id != "leased"), "{garbage:?}");

        // Renames move the current version; no_replace refuses an existing name.
        meta.record_chunk("c3", 10, (7, "h"), &nodes, 0.0).await?;
        meta.commit_version(&bucket, new_version("d/x", "c3", 10, WritePrecondition::None))
            .await?;
        assert!(meta.rename(&bucket, "a", "d/x", false, true).await.is_err());
        assert_eq!(meta.rename(&bucket, "d/", "e/", true, false).await?, 1);
        assert!(meta.version(&bucket, "d/x", None).await.is_err());
        assert_eq!(meta.version(&bucket, "e/x", None).await?.etag, "etag-of-d/x-c3");

        // DeleteObjects in one call: each key answered, in order.
        let keys = vec!["e/x".to_string(), "a".to_string(), "missing".to_string()];
        let deleted = meta.delete_objects(&bucket, &keys).await?;
        assert_eq!(deleted.len(), 3);
        assert!(deleted.iter().all(|d| !d.delete_marker));
        assert!(meta.version(&bucket, "a", None).await.is_err());

        // Versioned: a delete leaves a marker, and older versions stay readable.
        meta.set_versioning(&bucket, "Enabled").await?;
        let bucket = meta.bucket_uncached("m").await?;
        meta.record_chunk("c4", 5, (7, "h"), &nodes, 0.0).await?;
        meta.record_chunk("c5", 6, (7, "h"), &nodes, 0.0).await?;
        let v1 = meta
            .commit_version(&bucket, new_version("v", "c4", 5, WritePrecondition::None))
            .await?;
        meta.commit_version(&bucket, new_version("v", "c5", 6, WritePrecondition::None))
            .await?;
        let marker = meta.delete_object(&bucket, "v").await?;
        assert!(marker.delete_marker);
        assert!(meta.version(&bucket, "v", None).await.is_err());
        assert_eq!(meta.version(&bucket, "v", Some(&v1.version_id)).await?.size, 5);
        let versions = meta.list_versions(&bucket, "", None, "v", 10).await?;
        assert_eq!(versions.len(), 3, "two versions and a marker");
        let garbage: Vec<String> = meta
            .collect_garbage(100)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert!(
            !garbage.contains(&"c4".to_string()),
            "an old version still holds c4"
        );
        Ok::<_, anyhow::Error>(())
    })
}

#[test]
fn link_groups_move_together_and_names_leave_them() -> Result<()> {
    let cluster = Cluster::start()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let meta = Meta::connect_lazy(&cluster.database_url())?;
        let owner = meta.ensure_user("links-test").await?;
        meta.create_bucket("l", &owner.id, &serde_json::json!([])).await?;
        let bucket = meta.bucket_uncached("l").await?;
        let nodes = ["n1".to_string(), "n2".to_string()];
        for (chunk, size) in [("k1", 10), ("k2", 20), ("k3", 30), ("k4", 40)] {
            meta.record_chunk(chunk, size, (7, "h"), &nodes, 0.0).await?;
        }
        let links = |v: &router::meta::Version| (v.link_group, v.link_count);

        // link: both names in one group of two, the source's bytes under both.
        meta.commit_version(&bucket, followed("a", "k1", 10)).await?;
        assert_eq!(links(&meta.version(&bucket, "a", None).await?), (None, None));
        let ctime = HashMap::from([("ctime".to_string(), "5".to_string())]);
        meta.link(&bucket, "a", "b", Some(&ctime)).await?;
        let (a, b) = (
            meta.version(&bucket, "a", None).await?,
            meta.version(&bucket, "b", None).await?,
        );
        assert!(a.link_group.is_some());
        assert_eq!((links(&a), a.etag.as_str()), (links(&b), b.etag.as_str()));
        assert_eq!(a.link_count, Some(2));
        assert_eq!(b.user_metadata()["ctime"], "5");
        assert_eq!(meta.piece_refs(b.id).await?[0].chunk_id, "k1");
        assert!(matches!(
            meta.link(&bucket, "a", "b", None).await,
            Err(router::error::Error::PreconditionFailed)
        ));
        assert!(matches!(
            meta.link(&bucket, "missing", "z", None).await,
            Err(router::error::Error::NoSuchKey)
        ));

        // A followed commit to either name is every name's.
        meta.link(&bucket, "b", "c", None).await?;
        meta.commit_version(&bucket, followed("c", "k2", 20)).await?;
        for key in ["a", "b", "c"] {
            let v = meta.version(&bucket, key, None).await?;
            assert_eq!((v.size, v.link_count), (20, Some(3)), "{key}");
        }
        // Listings tell each name's group and count.
        let listed = meta.list_current(&bucket, "", true, "", None, 10).await?;
        assert!(listed.iter().all(|v| v.link_count == Some(3)), "{listed:?}");

        // A plain commit (an S3 client's PUT) takes the name out.
        meta.commit_version(&bucket, new_version("c", "k3", 30, WritePrecondition::None))
            .await?;
        let (a, c) = (
            meta.version(&bucket, "a", None).await?,
            meta.version(&bucket, "c", None).await?,
        );
        assert_eq!((a.size, a.link_count), (20, Some(2)));
        assert_eq!((c.size, c.link_group), (30, None));

        // A rename keeps the name in its group; a delete takes it out.
        meta.rename(&bucket, "b", "d/b", false, false).await?;
        let moved = meta.version(&bucket, "d/b", None).await?;
        assert_eq!((moved.link_group, moved.link_count), (a.link_group, Some(2)));
        meta.commit_version(&bucket, followed("a", "k4", 40)).await?;
        assert_eq!(meta.version(&bucket, "d/b", None).await?.size, 40);
        meta.delete_object(&bucket, "a").await?;
        assert_eq!(meta.version(&bucket, "d/b", None).await?.link_count, Some(1));
        meta.delete_objects(&bucket, &["d/b".to_string()]).await?;

        // Followed commits to two names at once never deadlock for good,
        // and leave both names with one version.
        meta.commit_version(&bucket, followed("x", "k1", 10)).await?;
        meta.link(&bucket, "x", "y", None).await?;
        let mut tasks = Vec::new();
        for i in 0..40 {
            let (meta, bucket) = (meta.clone(), bucket.clone());
            let key = if i % 2 == 0 { "x" } else { "y" };
            tasks.push(tokio::spawn(async move {
                let chunk = ["k1", "k2", "k3", "k4"][i % 4];
                let size = [10, 20, 30, 40][i % 4];
                meta.commit_version(&bucket, followed(key, chunk, size)).await
            }));
        }
        for task in tasks {
            task.await??;
        }
        let (x, y) = (
            meta.version(&bucket, "x", None).await?,
            meta.version(&bucket, "y", None).await?,
        );
        assert_eq!((x.etag, x.size), (y.etag, y.size));
        anyhow::Ok(())
    })
}
