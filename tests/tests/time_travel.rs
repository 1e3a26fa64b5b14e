//! Past views (issue 24): a view "as of T" is a consistent cut, so a
//! transaction (a directory rename, a batch) shows wholly or not at all.

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use anyhow::{Context, Result};
use bucketfs_tests::Cluster;
use jiff::{SignedDuration, Timestamp};

/// One entry of ListObjectVersions: a version or a delete marker.
#[derive(Debug, Clone)]
struct Listed {
    key: String,
    modified: Timestamp,
    deleted: bool,
}

/// Every version and delete marker of `bucket`, newest first per key.
fn list_versions(cluster: &Cluster, bucket: &str) -> Result<Vec<Listed>> {
    let out = cluster.aws_ok(&[
        "s3api",
        "list-object-versions",
        "--bucket",
        bucket,
        "--output",
        "json",
    ])?;
    let json: serde_json::Value = serde_json::from_str(&out)?;
    let mut listed = Vec::new();
    for (field, deleted) in [("Versions", false), ("DeleteMarkers", true)] {
        for v in json[field].as_array().into_iter().flatten() {
            listed.push(Listed {
                key: v["Key"].as_str().context("Key")?.to_string(),
                modified: v["LastModified"].as_str().context("LastModified")?.parse()?,
                deleted,
            });
        }
    }
    Ok(listed)
}

/// The keys that exist in the view as of `at`: each key's newest entry no
/// later than `at`, unless that is a delete marker.
fn view_at(listed: &[Listed], at: Timestamp) -> Vec<String> {
    let mut newest: BTreeMap<&str, &Listed> = BTreeMap::new();
    for v in listed.iter().filter(|v| v.modified <= at) {
        match newest.get(v.key.as_str()) {
            Some(seen) if seen.modified >= v.modified => {}
            _ => {
                newest.insert(&v.key, v);
            }
        }
    }
    newest
        .into_values()
        .filter(|v| !v.deleted)
        .map(|v| v.key.clone())
        .collect()
}

/// The files under `prefix` (not the directory's own `prefix` object).
fn count_under(keys: &[String], prefix: &str) -> usize {
    keys.iter()
        .filter(|k| k.len() > prefix.len() && k.starts_with(prefix))
        .count()
}

#[test]
fn a_renamed_tree_is_wholly_at_one_name_in_every_past_view() -> Result<()> {
    const FILES: usize = 1000;
    let cluster = Cluster::start()?;
    cluster.versioned_bucket("travel")?;
    let mnt = cluster.dir.join("mnt");
    {
        let _mount = cluster.mount("travel", &mnt)?;
        fs::create_dir(mnt.join("a"))?;
        for i in 0..FILES {
            fs::write(mnt.join(format!("a/f{i:04}")), format!("{i}\n"))?;
        }
    }
    {
        let _mount = cluster.mount("travel", &mnt)?;
        fs::rename(mnt.join("a"), mnt.join("b"))?;
    }

    // The rename's new versions and delete markers carry one time.
    let listed = list_versions(&cluster, "travel")?;
    let renamed: Vec<&Listed> = listed
        .iter()
        .filter(|v| v.key.starts_with("b/") || (v.key.starts_with("a/") && v.deleted))
        .collect();
    // (mkdir made the directory's own object, `a/`, which moved too.)
    assert_eq!(
        renamed.len(),
        2 * (FILES + 1),
        "a version at b/ and a marker at a/ per name"
    );
    let stamps: std::collections::BTreeSet<Timestamp> = renamed.iter().map(|v| v.modified).collect();
    assert_eq!(
        stamps.len(),
        1,
        "the rename's entries carry {} times",
        stamps.len()
    );
    let moment = *stamps.first().unwrap();

    // Every past view the listing can express shows the tree at one name.
    let mut moments: Vec<Timestamp> = listed.iter().map(|v| v.modified).collect();
    moments.sort();
    moments.dedup();
    for &at in &moments {
        let keys = view_at(&listed, at);
        let (a, b) = (count_under(&keys, "a/"), count_under(&keys, "b/"));
        assert!(
            (b == 0 && at < moment) || (a == 0 && b == FILES && at >= moment),
            "the view at {at} shows {a} files in a/ and {b} in b/"
        );
    }

    // So do mounts of the moments just before, at and after it.
    let millisecond = SignedDuration::from_millis(1);
    for (i, at) in [moment - millisecond, moment, moment + millisecond]
        .into_iter()
        .enumerate()
    {
        let dir = cluster.dir.join(format!("at{i}"));
        let _view = cluster.mount_with("travel", &dir, &["--at", &at.to_string()])?;
        let count = |name: &str| fs::read_dir(dir.join(name)).map_or(0, |d| d.count());
        let (a, b) = (count("a"), count("b"));
        let expected = if at < moment { (FILES, 0) } else { (0, FILES) };
        assert_eq!((a, b), expected, "a mount at {at} (the rename at {moment})");
    }
    Ok(())
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// `diff -r a b`: empty when the trees match.
fn diff_r(a: &std::path::Path, b: &std::path::Path) -> Result<String> {
    let out = std::process::Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// Deletes every version and delete marker under `prefix` of `bucket`
/// (DeleteObjects by version, through boto3).
fn delete_versions(cluster: &Cluster, bucket: &str, prefix: &str) -> Result<()> {
    let script = "import boto3,sys
s3=boto3.client('s3',endpoint_url=sys.argv[1],region_name='us-east-1')
for page in s3.get_paginator('list_object_versions').paginate(Bucket=sys.argv[2],Prefix=sys.argv[3]):
    gone=[{'Key':v['Key'],'VersionId':v['VersionId']} for v in page.get('Versions',[])+page.get('DeleteMarkers',[])]
    if gone:
        errors=s3.delete_objects(Bucket=sys.argv[2],Delete={'Objects':gone,'Quiet':True}).get('Errors')
        assert not errors, errors
print('OK')";
    let out = std::process::Command::new("python3")
        .args(["-c", script, &cluster.endpoint(), bucket, prefix])
        .env("AWS_ACCESS_KEY_ID", &cluster.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &cluster.secret_key)
        .output()?;
    bucketfs_tests::tools::check(out, &format!("deleting the versions under {bucket}/{prefix}"))?;
    Ok(())
}

#[test]
fn snapshots_diffs_restores_and_forks_work_by_reference() -> Result<()> {
    // Garbage collected within seconds, to show the fork keeps its chunks.
    let cluster = Cluster::start_with_router_args(&["--worker-interval-secs", "1", "--gc-grace-secs", "1"])?;
    cluster.versioned_bucket("hist")?;
    let mnt = cluster.dir.join("mnt");
    let mount = cluster.mount("hist", &mnt)?;
    let d = mnt.join("d");
    fs::create_dir_all(d.join("sub"))?;
    for i in 0..10 {
        fs::write(d.join(format!("f{i}")), format!("file {i}\n").repeat(1000))?;
    }
    fs::write(d.join("sub/deep"), "deep\n")?;
    fs::write(mnt.join("outside"), "outside\n")?;
    nix::unistd::sync();
    drop(mount);

    let made = cluster.bucketfs(&["snapshot", "create", "hist", "before"])?;
    assert!(made.starts_with("before\t"), "{made}");
    let err = cluster
        .bucketfs(&["snapshot", "create", "hist", "before"])
        .unwrap_err();
    assert!(format!("{err:#}").contains("SnapshotAlreadyExists"), "{err:#}");

    // A scripted workload, then the diff lists exactly it.
    let mount = cluster.mount("hist", &mnt)?;
    fs::write(d.join("f1"), "changed\n")?;
    fs::write(d.join("f2"), "changed too\n")?;
    fs::remove_file(d.join("f3"))?;
    fs::write(d.join("new"), "new\n")?;
    fs::rename(d.join("f4"), d.join("sub/f4-moved"))?;
    fs::write(mnt.join("outside"), "outside, changed\n")?;
    drop(mount);
    let expected = [
        "A\td/new",
        "D\td/f3",
        "M\td/f1",
        "M\td/f2",
        "R\td/f4\td/sub/f4-moved",
        "M\toutside",
    ];
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    let listed = cluster.bucketfs(&["diff", "hist@before", "hist"])?;
    assert_eq!(sorted_lines(&listed), expected, "{listed}");
    cluster.bucketfs(&["snapshot", "create", "hist", "after"])?;
    let listed = cluster.bucketfs(&["diff", "hist@before", "hist@after", "d/"])?;
    assert_eq!(sorted_lines(&listed).len(), expected.len() - 1, "{listed}");
    let json: serde_json::Value =
        serde_json::from_str(&cluster.bucketfs(&["diff", "hist@before", "hist@after", "--json"])?)?;
    assert_eq!(json["changes"].as_array().map(Vec::len), Some(expected.len()));
    let listed = cluster.bucketfs(&["snapshot", "list", "hist"])?;
    assert_eq!(
        listed
            .lines()
            .map(|l| l.split('\t').next().unwrap())
            .collect::<Vec<_>>(),
        ["before", "after"]
    );

    // A restore of d/ to the first snapshot moves no data: the live tree
    // and the snapshot's view are the same again; outside d/ stays.
    let bytes_in = cluster.routers_metric("bucketfs_router_bytes_in_total");
    let restored = cluster.bucketfs(&["restore", "hist/d/", "--to", "before"])?;
    assert!(restored.contains("deleted\td/new"), "{restored}");
    let moved = cluster.routers_metric("bucketfs_router_bytes_in_total") - bytes_in;
    assert!(moved < 1 << 20, "the restore sent {moved} bytes to the routers");
    let live = cluster.mount("hist", &mnt)?;
    let past_dir = cluster.dir.join("before");
    let past = cluster.mount_with("hist", &past_dir, &["--at", "before"])?;
    assert_eq!(diff_r(&mnt.join("d"), &past_dir.join("d"))?, "");
    assert_eq!(fs::read_to_string(mnt.join("outside"))?, "outside, changed\n");
    assert_eq!(cluster.bucketfs(&["diff", "hist@before", "hist", "d/"])?, "");
    drop(past);
    drop(live);

    // A fork of the second snapshot writes no chunk; each side's writes
    // stay its own; the fork outlives its source.
    let written = cluster.node_bytes_written();
    let forked = cluster.bucketfs(&["fork", "hist@after", "forked"])?;
    assert_eq!(cluster.node_bytes_written(), written, "a fork wrote chunk bytes");
    let fork_keys = cluster.aws_ok(&["s3", "ls", "--recursive", "s3://forked"])?;
    assert!(
        forked.starts_with(&format!("forked\t{} keys", fork_keys.lines().count())),
        "{forked} for {fork_keys}"
    );
    let after_dir = cluster.dir.join("after");
    let fork_dir = cluster.dir.join("fork");
    let fork_mount = cluster.mount("forked", &fork_dir)?;
    {
        let _after = cluster.mount_with("hist", &after_dir, &["--at", "after"])?;
        assert_eq!(diff_r(&after_dir, &fork_dir)?, "");
    }
    fs::write(fork_dir.join("only-in-fork"), "fork\n")?;
    let file = cluster.dir.join("only-in-source");
    fs::write(&file, "source\n")?;
    cluster.aws_ok(&["s3", "cp", file.to_str().unwrap(), "s3://hist/only-in-source"])?;
    let source_keys = cluster.aws_ok(&["s3", "ls", "--recursive", "s3://hist"])?;
    assert!(!source_keys.contains("only-in-fork"), "{source_keys}");
    nix::unistd::sync();
    let fork_keys = cluster.aws_ok(&["s3", "ls", "--recursive", "s3://forked"])?;
    assert!(
        fork_keys.contains("only-in-fork") && !fork_keys.contains("only-in-source"),
        "{fork_keys}"
    );

    // Every version of the source gone, and the bucket with them; once the
    // collector has run, the fork still reads every byte.
    let copy = cluster.dir.join("fork-copy");
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(&fork_dir)
        .arg(&copy)
        .output()?;
    bucketfs_tests::tools::check(out, "cp -a")?;
    drop(fork_mount);
    delete_versions(&cluster, "hist", "")?;
    cluster.aws_ok(&["s3api", "delete-bucket", "--bucket", "hist"])?;
    // No garbage left whose lease ran out seconds ago (a count of collected
    // chunks read after the deletions could miss a collection that came
    // first).
    let garbage = format!(
        "SELECT count(*) FROM chunks c WHERE c.lease_until < now() - interval '5 s' AND {}",
        router::meta::sql::UNREFERENCED_CHUNK
    );
    bucketfs_tests::wait_until(
        "the collector freed the source's own chunks",
        Duration::from_secs(60),
        || cluster.psql(&garbage).is_ok_and(|n| n.trim() == "0"),
    )?;
    let _fork = cluster.mount("forked", &fork_dir)?;
    assert_eq!(diff_r(&copy, &fork_dir)?, "");
    Ok(())
}

#[test]
fn old_versions_and_snapshots_read_as_files_under_dot_bucketfs() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.versioned_bucket("files")?;
    let mnt = cluster.dir.join("mnt");
    let contents = ["first\n", "second, longer\n", "third\n"];
    for text in contents {
        let _mount = cluster.mount("files", &mnt)?;
        fs::create_dir_all(mnt.join("dir"))?;
        fs::write(mnt.join("dir/notes.txt"), text)?;
        // Versions a millisecond apart at least.
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.bucketfs(&["snapshot", "create", "files", "three"])?;
    let _mount = cluster.mount("files", &mnt)?;
    fs::remove_file(mnt.join("dir/notes.txt"))?;

    // Not in the root's listing, there by name.
    let root: Vec<String> = fs::read_dir(&mnt)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    assert!(!root.iter().any(|n| n == ".bucketfs"), "{root:?}");
    let history = mnt.join(".bucketfs/versions/dir/notes.txt");
    let mut versions: Vec<std::path::PathBuf> = fs::read_dir(&history)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    versions.sort();
    assert_eq!(versions.len(), 3, "{versions:?}");
    for (path, text) in versions.iter().zip(contents) {
        let out = std::process::Command::new("cat").arg(path).output()?;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            text,
            "cat {}",
            path.display()
        );
    }
    let copy = cluster.dir.join("copy");
    let out = std::process::Command::new("cp")
        .arg(&versions[0])
        .arg(&copy)
        .output()?;
    bucketfs_tests::tools::check(out, "cp")?;
    assert_eq!(fs::read_to_string(&copy)?, contents[0]);
    // The deleted file's history is there; its directory lists it.
    let listed: Vec<String> = fs::read_dir(mnt.join(".bucketfs/versions/dir"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    assert_eq!(listed, ["notes.txt"]);
    // A snapshot reads as the tree it shows.
    let snap = mnt.join(".bucketfs/snapshots/three/dir/notes.txt");
    assert_eq!(fs::read_to_string(&snap)?, contents[2]);
    // Nothing there can change.
    let err = fs::write(&versions[0], "x").unwrap_err();
    assert!(
        matches!(
            err.raw_os_error(),
            Some(nix::libc::EROFS) | Some(nix::libc::EACCES)
        ),
        "{err}"
    );
    let err = fs::write(mnt.join(".bucketfs/versions/dir/new"), "x").unwrap_err();
    assert!(
        matches!(
            err.raw_os_error(),
            Some(nix::libc::EROFS) | Some(nix::libc::EACCES)
        ),
        "{err}"
    );
    // Nor can the name be taken at the root.
    let err = fs::create_dir(mnt.join(".bucketfs")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(nix::libc::EEXIST), "{err}");
    fs::create_dir(mnt.join("elsewhere"))?;
    let err = fs::rename(mnt.join("elsewhere"), mnt.join(".bucketfs")).unwrap_err();
    assert!(
        matches!(
            err.raw_os_error(),
            Some(nix::libc::EROFS) | Some(nix::libc::ENOTEMPTY) | Some(nix::libc::EEXIST)
        ),
        "{err}"
    );
    assert!(mnt.join("elsewhere").is_dir());
    Ok(())
}

/// Issue 24's fork at full size: a bucket of 1,000,000 objects (filled
/// through the batch extension, 1,000 directories) forked whole. The fork
/// makes exactly the source's keys and etags, writes no chunk byte, keeps
/// each side's writes its own, and reads the bytes of source versions that
/// were deleted since (their maps passed to the fork's versions, the
/// collector having run). Prints how long the fork took; `make
/// bench-scale` reports it against the 30 s target.
#[test]
fn a_million_object_bucket_forks_by_reference() -> Result<()> {
    const OBJECTS: u64 = 1_000_000;
    let cluster = Cluster::start_with_router_args(&["--worker-interval-secs", "1", "--gc-grace-secs", "1"])?;
    cluster.versioned_bucket("big")?;
    let filled = cluster.script_json(
        "scale.py",
        &[
            "fill",
            &cluster.router_endpoint(1),
            "big",
            &OBJECTS.to_string(),
            "1000",
        ],
    )?;
    println!("filled: {filled}");

    let written = cluster.node_bytes_written();
    let at = Timestamp::now().to_string();
    let started = std::time::Instant::now();
    let answer = cluster.bucketfs(&["fork", &format!("big@{at}"), "big-fork"])?;
    println!(
        "fork of {OBJECTS} objects: {:.1} s ({answer})",
        started.elapsed().as_secs_f64()
    );
    assert!(answer.contains(&format!("\t{OBJECTS} keys")), "{answer}");
    assert_eq!(cluster.node_bytes_written(), written, "a fork wrote chunk bytes");
    let differ = cluster.psql(
        "SELECT count(*) FROM (
           (SELECT c.key, v.etag, v.size FROM current_versions c JOIN versions v ON v.id = c.version
            WHERE c.bucket_id = (SELECT id FROM buckets WHERE name = 'big')
            EXCEPT
            SELECT c.key, v.etag, v.size FROM current_versions c JOIN versions v ON v.id = c.version
            WHERE c.bucket_id = (SELECT id FROM buckets WHERE name = 'big-fork'))
           UNION ALL
           (SELECT c.key, v.etag, v.size FROM current_versions c JOIN versions v ON v.id = c.version
            WHERE c.bucket_id = (SELECT id FROM buckets WHERE name = 'big-fork')
            EXCEPT
            SELECT c.key, v.etag, v.size FROM current_versions c JOIN versions v ON v.id = c.version
            WHERE c.bucket_id = (SELECT id FROM buckets WHERE name = 'big'))) d",
    )?;
    assert_eq!(differ.trim(), "0", "keys differ between the source and its fork");

    // Each side's writes stay its own.
    let file = cluster.dir.join("changed");
    fs::write(&file, "changed in the fork\n")?;
    cluster.aws_ok(&["s3", "cp", file.to_str().unwrap(), "s3://big-fork/d0001/f0001000"])?;
    cluster.aws_ok(&["s3", "cp", file.to_str().unwrap(), "s3://big/only-in-source"])?;
    let get = |uri: &str| cluster.aws_ok(&["s3", "cp", uri, "-"]);
    let original = |key: &str| format!("{key:.<32}");
    assert_eq!(get("s3://big/d0001/f0001000")?, original("d0001/f0001000"));
    assert_eq!(get("s3://big-fork/d0001/f0001000")?, "changed in the fork\n");
    let missing = cluster
        .aws(&["s3", "cp", "s3://big-fork/only-in-source", "-"])
        .output()?;
    assert!(!missing.status.success(), "the fork has the source's new key");

    // Every version of one directory of the source deleted; once the
    // collector has passed twice, the fork still reads those bytes.
    delete_versions(&cluster, "big", "d0002/")?;
    assert_eq!(
        cluster.psql("SELECT count(*) FROM current_versions WHERE bucket_id = (SELECT id FROM buckets WHERE name = 'big') AND key LIKE 'd0002/%'")?.trim(),
        "0"
    );
    let passes = || {
        cluster
            .status()
            .map(|s| s["worker"]["passes"].as_u64().unwrap_or(0))
    };
    let first = passes()?;
    bucketfs_tests::wait_until("two worker passes", Duration::from_secs(120), || {
        passes().is_ok_and(|p| p >= first + 2)
    })?;
    for key in ["d0002/f0002000", "d0002/f0002500", "d0002/f0002999"] {
        assert_eq!(get(&format!("s3://big-fork/{key}"))?, original(key));
    }
    if let Some(differ) = bucketfs_tests::tallies::mismatches(|sql| cluster.psql(sql))? {
        panic!("running totals differ from a recount: {differ}");
    }
    Ok(())
}
