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
