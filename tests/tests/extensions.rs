//! The router's extensions the FUSE client uses: rename (atomic and
//! metadata-only) and batch PUT (many small objects in one chunk).

use std::fs;
use std::process::Command;

use anyhow::Result;
use bucketfs_tests::Cluster;

/// Runs one of `tests/scripts` with the cluster's credentials; answers its
/// output (the HTTP status and body).
fn script(cluster: &Cluster, name: &str, args: &[&str]) -> Result<String> {
    let script = format!("{}/scripts/{name}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(script)
        .arg(cluster.endpoint())
        .args(args)
        .env("AWS_ACCESS_KEY_ID", &cluster.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &cluster.secret_key)
        .output()?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn rename(cluster: &Cluster, from: &str, to: &str, flags: &[&str]) -> Result<String> {
    script(cluster, "rename.py", &[&["ren", from, to], flags].concat())
}

fn batch(cluster: &Cluster, manifest: &str, data: &str, flags: &[&str]) -> Result<String> {
    script(cluster, "batch.py", &[&["bat", manifest, data], flags].concat())
}

fn keys(cluster: &Cluster) -> Result<Vec<String>> {
    keys_in(cluster, "ren")
}

fn keys_in(cluster: &Cluster, bucket: &str) -> Result<Vec<String>> {
    let out = cluster.aws_ok(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        bucket,
        "--query",
        "Contents[].Key",
        "--output",
        "json",
    ])?;
    let mut keys: Vec<String> = serde_json::from_str(&out).unwrap_or_default();
    keys.sort();
    Ok(keys)
}

#[test]
fn files_and_directories_rename_atomically_by_reference() -> Result<()> {
    let cluster = Cluster::start()?;
    let work = cluster.dir.join("work");
    fs::create_dir_all(&work)?;
    cluster.aws_ok(&["s3", "mb", "s3://ren"])?;
    for (key, body) in [
        ("dir/a", "A"),
        ("dir/b", "B"),
        ("dir/sub/c", "C"),
        ("file", "F"),
        ("other", "O"),
    ] {
        let path = work.join("body");
        fs::write(&path, body)?;
        cluster.aws_ok(&[
            "s3api",
            "put-object",
            "--bucket",
            "ren",
            "--key",
            key,
            "--body",
            path.to_str().unwrap(),
        ])?;
    }
    let written = cluster.node_bytes_written();

    assert_eq!(
        rename(&cluster, "file", "renamed file", &[])?,
        "200 {\"renamed\":1}"
    );
    assert_eq!(
        rename(&cluster, "dir/", "moved/", &["--prefix"])?,
        "200 {\"renamed\":3}"
    );
    assert_eq!(
        keys(&cluster)?,
        ["moved/a", "moved/b", "moved/sub/c", "other", "renamed file"].map(String::from)
    );
    let got = work.join("got");
    cluster.aws_ok(&[
        "s3api",
        "get-object",
        "--bucket",
        "ren",
        "--key",
        "moved/sub/c",
        got.to_str().unwrap(),
    ])?;
    assert_eq!(fs::read_to_string(&got)?, "C");
    assert_eq!(cluster.node_bytes_written(), written, "rename moved bytes");

    // RENAME_NOREPLACE: refused, and nothing changes.
    let refused = rename(&cluster, "other", "moved/a", &["--no-replace"])?;
    assert!(refused.starts_with("412"), "{refused}");
    assert_eq!(keys(&cluster)?.len(), 5);
    // Without it, the destination is replaced.
    assert_eq!(rename(&cluster, "other", "moved/a", &[])?, "200 {\"renamed\":1}");
    cluster.aws_ok(&[
        "s3api",
        "get-object",
        "--bucket",
        "ren",
        "--key",
        "moved/a",
        got.to_str().unwrap(),
    ])?;
    assert_eq!(fs::read_to_string(&got)?, "O");

    let missing = rename(&cluster, "nothing-here", "x", &[])?;
    assert!(missing.starts_with("404"), "{missing}");
    let into_itself = rename(&cluster, "moved/", "moved/inner/", &["--prefix"])?;
    assert!(into_itself.starts_with("400"), "{into_itself}");
    let unsigned = rename(&cluster, "moved/b", "stolen", &["--unsigned"])?;
    assert!(unsigned.starts_with("403"), "{unsigned}");
    assert!(keys(&cluster)?.contains(&"moved/b".to_string()));
    Ok(())
}

fn chunks_written(cluster: &Cluster) -> u64 {
    (1..=2)
        .filter_map(|i| cluster.router_metric(i, "bucketfs_router_chunks_written_total"))
        .sum()
}

fn get(cluster: &Cluster, key: &str, version: Option<&str>) -> Result<String> {
    let got = cluster.dir.join("got");
    let mut args = vec!["s3api", "get-object", "--bucket", "bat", "--key", key];
    if let Some(v) = version {
        args.extend(["--version-id", v]);
    }
    args.push(got.to_str().unwrap());
    cluster.aws_ok(&args)?;
    Ok(fs::read_to_string(&got)?)
}

#[test]
fn small_objects_batch_into_one_chunk_and_fail_alone() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://bat"])?;
    let before = chunks_written(&cluster);
    let stored = batch(
        &cluster,
        r#"[{"key":"a","size":5,"metadata":{"mode":"33188"},"content_type":"text/plain"},{"key":"dir/empty","size":0},{"key":"c","size":3}]"#,
        "helloabc",
        &[],
    )?;
    assert_eq!(
        stored,
        r#"200 {"results":[{"etag":"5d41402abc4b2a76b9719d911017c592"},{"etag":"d41d8cd98f00b204e9800998ecf8427e"},{"etag":"900150983cd24fb0d6963f7d28e17f72"}]}"#
    );
    assert_eq!(chunks_written(&cluster), before + 1, "three objects, one chunk");
    assert_eq!(get(&cluster, "a", None)?, "hello");
    assert_eq!(get(&cluster, "c", None)?, "abc");
    assert_eq!(get(&cluster, "dir/empty", None)?, "");
    let head = cluster.aws_ok(&["s3api", "head-object", "--bucket", "bat", "--key", "a"])?;
    assert!(
        head.contains("\"mode\": \"33188\"") && head.contains("text/plain"),
        "{head}"
    );

    // One object's failed precondition or bad key fails only that object.
    let long = "k".repeat(1025);
    let mixed = batch(
        &cluster,
        &format!(
            r#"[{{"key":"a","size":3,"if_none_match":true}},{{"key":"{long}","size":1}},{{"key":"d","size":2}},{{"key":"c","size":1,"if_match":"900150983cd24fb0d6963f7d28e17f72"}}]"#
        ),
        "newXddC",
        &[],
    )?;
    assert!(mixed.starts_with("200 "), "{mixed}");
    let results: serde_json::Value = serde_json::from_str(&mixed[4..])?;
    let results = results["results"].as_array().unwrap();
    assert_eq!(results[0]["error"]["status"], 412, "{mixed}");
    assert_eq!(results[1]["error"]["code"], "KeyTooLongError", "{mixed}");
    assert!(
        results[2]["etag"].is_string() && results[3]["etag"].is_string(),
        "{mixed}"
    );
    assert_eq!(get(&cluster, "a", None)?, "hello");
    assert_eq!(get(&cluster, "d", None)?, "dd");
    assert_eq!(get(&cluster, "c", None)?, "C");

    // A malformed request stores nothing.
    let listed = keys_in(&cluster, "bat")?;
    assert_eq!(listed, ["a", "c", "d", "dir/empty"].map(String::from));
    for (manifest, data, flags, status) in [
        (r#"[{"key":"x","size":5}]"#, "four", &[][..], "400"),
        (r#"[{"key":"x","size":1},{"key":"x","size":1}]"#, "xy", &[], "400"),
        (r#"[{"key":"x","size":1}]"#, "x", &["--bad-md5"], "400"),
        (r#"[{"key":"x","size":1}]"#, "x", &["--unsigned"], "403"),
        ("not json", "", &[], "400"),
    ] {
        let answer = batch(&cluster, manifest, data, flags)?;
        assert!(answer.starts_with(status), "{manifest} {flags:?}: {answer}");
    }
    assert_eq!(keys_in(&cluster, "bat")?, listed);

    // Deleting objects that share the chunk leaves the others readable, and
    // a versioned bucket keeps the batch's earlier versions.
    cluster.aws_ok(&["s3api", "delete-object", "--bucket", "bat", "--key", "d"])?;
    assert_eq!(get(&cluster, "a", None)?, "hello");
    cluster.aws_ok(&[
        "s3api",
        "put-bucket-versioning",
        "--bucket",
        "bat",
        "--versioning-configuration",
        "Status=Enabled",
    ])?;
    let first = batch(&cluster, r#"[{"key":"v","size":3}]"#, "one", &[])?;
    let second = batch(&cluster, r#"[{"key":"v","size":3}]"#, "two", &[])?;
    let version = |answer: &str| -> Result<String> {
        let v: serde_json::Value = serde_json::from_str(&answer[4..])?;
        Ok(v["results"][0]["version_id"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    };
    let (v1, v2) = (version(&first)?, version(&second)?);
    assert!(!v1.is_empty() && v1 != v2, "{first} {second}");
    assert_eq!(get(&cluster, "v", None)?, "two");
    assert_eq!(get(&cluster, "v", Some(&v1))?, "one");
    Ok(())
}

/// More keys than Postgres's lock table holds (12,800 with the harness's
/// settings) move in one rename and come back in one restore: a write of
/// more than 1,000 keys locks its bucket rather than each key (migration
/// 0026); before, both failed with "out of shared memory".
#[test]
fn a_rename_and_a_restore_of_20000_keys_lock_the_bucket_not_each_key() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.versioned_bucket("big")?;
    cluster.script_json(
        "scale.py",
        &["fill", &cluster.router_endpoint(1), "big", "20000", "1"],
    )?;
    cluster.bucketfs(&["snapshot", "create", "big", "filled"])?;
    let count = |prefix: &str| -> Result<String> {
        Ok(cluster
            .psql(&format!(
                "SELECT count(*) FROM current_versions
                 WHERE bucket_id = (SELECT id FROM buckets WHERE name = 'big') AND starts_with(key, '{prefix}')"
            ))?
            .trim()
            .to_string())
    };
    let answer = script(&cluster, "rename.py", &["big", "d0000/", "moved/", "--prefix"])?;
    assert!(answer.starts_with("200"), "{answer}");
    assert_eq!((count("moved/")?, count("d0000/")?), ("20000".into(), "0".into()));
    let restored = cluster.bucketfs(&["restore", "big/d0000/", "--to", "filled"])?;
    assert_eq!(
        restored.lines().filter(|l| l.starts_with("restored\t")).count(),
        20000,
        "{restored:.300}"
    );
    assert_eq!(
        (count("moved/")?, count("d0000/")?),
        ("20000".into(), "20000".into())
    );
    let body = cluster.aws_ok(&["s3", "cp", "s3://big/d0000/f0012345", "-"])?;
    assert_eq!(body, format!("{:.<32}", "d0000/f0012345"));
    Ok(())
}
