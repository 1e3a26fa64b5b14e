//! Prompt garbage collection: garbage leaves the nodes' disks within the
//! default grace, a nearly full node is collected at once, a write still
//! streaming keeps its chunks however short the grace, and an upload its
//! client abandoned is aborted and its parts collected.

use std::fs;
use std::time::{Duration, Instant};

use anyhow::Result;
use bucketfs_tests::tools::{random_file, sha256_file, TinyDisk};
use bucketfs_tests::{wait_until, Cluster, STORAGE_NODES};

fn chunk_files(cluster: &Cluster) -> usize {
    (1..=STORAGE_NODES).map(|i| cluster.chunk_file_count(i)).sum()
}

/// `name=value` from `router space`'s output.
fn figure(report: &str, name: &str) -> i64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

#[test]
fn garbage_leaves_the_disks_within_the_default_grace() -> Result<()> {
    // The default grace (60 s); passes every 5 s instead of 30 to keep
    // the test short.
    let cluster = Cluster::start_with_router_args(&["--worker-interval-secs", "5"])?;
    cluster.aws_ok(&["s3", "mb", "s3://bkt"])?;
    let work = cluster.dir.join("work");
    fs::create_dir_all(&work)?;
    let (a, b) = (work.join("a.bin"), work.join("b.bin"));
    random_file(&a, 20 << 20, 1)?;
    random_file(&b, 12 << 20, 2)?;
    let put = |file: &std::path::Path, key: &str| cluster.s3_cp(file, format!("s3://bkt/{key}"));
    put(&a, "kept")?;
    put(&b, "overwritten")?;
    put(&a, "overwritten")?;
    put(&b, "deleted")?;
    cluster.aws_ok(&["s3", "rm", "s3://bkt/deleted"])?;
    let started = Instant::now();
    // Live: two 20 MiB objects of 3 chunks each, 3 replicas of each.
    wait_until("garbage collected", Duration::from_secs(150), || {
        chunk_files(&cluster) == 18
    })?;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(120), "collection took {took:?}");
    let collected: u64 = (1..=2)
        .filter_map(|i| cluster.router_metric(i, "bucketfs_router_chunks_collected_total"))
        .sum();
    assert_eq!(collected, 4, "the overwritten and the deleted object's chunks");

    // The space report sees the same: 40 MiB live, 3 replicas of it, and
    // (once the nodes have measured) files on disk about that size.
    wait_until("nodes report their disk use", Duration::from_secs(60), || {
        cluster
            .router_admin("space", &[])
            .is_ok_and(|r| figure(&r, "node_disk_bytes") < 3 * (41 << 20))
    })?;
    let report = cluster.router_admin("space", &[])?;
    println!("{report}");
    assert_eq!(figure(&report, "logical_current_bytes"), 40 << 20);
    assert_eq!(figure(&report, "replica_bytes"), 3 * (40 << 20));
    assert_eq!(figure(&report, "unreferenced_chunk_bytes"), 0);
    assert!(figure(&report, "node_disk_bytes") >= 3 * (40 << 20), "{report}");
    assert!(report.contains("bkt"), "{report}");
    if let Some(differ) = bucketfs_tests::tallies::mismatches(|sql| cluster.psql(sql))? {
        panic!("{differ}");
    }
    Ok(())
}

#[test]
fn a_nearly_full_node_is_collected_at_once() -> Result<()> {
    // Passes once an hour: only disk pressure can collect in this test.
    let mut cluster = Cluster::start_with_router_args(&[
        "--worker-interval-secs",
        "3600",
        "--gc-grace-secs",
        "1",
        "--gc-pressure-free-percent",
        "50",
    ])?;
    cluster.aws_ok(&["s3", "mb", "s3://bkt"])?;
    // storage-node-1 comes back on a 64 MiB disk: one copy of the object
    // leaves it more than half free, two do not.
    cluster.kill9("storage-node-1")?;
    let data = cluster.node_data_dir(1);
    fs::remove_dir_all(&data)?;
    let _disk = TinyDisk::mount(&data, "64m")?;
    cluster.start_node(1)?;
    cluster.wait_live_nodes(1, STORAGE_NODES)?;
    let file = cluster.dir.join("p.bin");
    random_file(&file, 24 << 20, 3)?;
    let sha = sha256_file(&file)?;
    let put = |key: &str| cluster.s3_cp(&file, format!("s3://bkt/{key}"));
    put("x")?;
    assert_eq!(cluster.chunk_file_count(1), 3);
    // Overwriting makes the first copy garbage and fills the disk past
    // half: the worker collects within seconds, not an hour.
    put("x")?;
    wait_until("collection under pressure", Duration::from_secs(60), || {
        cluster.chunk_file_count(1) == 3
    })?;
    let runs: u64 = (1..=2)
        .filter_map(|i| cluster.router_metric(i, "bucketfs_router_gc_pressure_runs_total"))
        .sum();
    assert!(runs >= 1);
    let got = cluster.dir.join("p.got");
    cluster.s3_cp("s3://bkt/x", &got)?;
    assert_eq!(sha256_file(&got)?, sha);
    Ok(())
}

#[test]
fn a_slow_upload_keeps_its_chunks_past_the_grace() -> Result<()> {
    // A grace of 1 s and a pass every 200 ms: without the upload renewing
    // its leases, its first chunks would be collected long before it commits.
    let cluster =
        Cluster::start_with_router_args(&["--worker-interval-secs", "0.2", "--gc-grace-secs", "1"])?;
    cluster.aws_ok(&["s3", "mb", "s3://bkt"])?;
    let file = cluster.dir.join("slow.bin");
    random_file(&file, 26 << 20, 4)?;
    let sha = sha256_file(&file)?;
    // About 6.5 s for 4 chunks: the first is recorded 2 s in. Meanwhile
    // multipart uploads and overwrites come and go: their chunks are
    // recorded a moment before the part or version naming them.
    let rate = (4 << 20).to_string();
    let others = cluster.dir.join("others.bin");
    random_file(&others, 20 << 20, 5)?;
    let others_sha = sha256_file(&others)?;
    std::thread::scope(|s| -> Result<()> {
        let busy = s.spawn(|| -> Result<()> {
            for i in 0..6 {
                let key = format!("s3://bkt/other-{}", i % 2);
                cluster.s3_cp(&others, &key)?;
            }
            Ok(())
        });
        cluster.run_script(
            "slow_put.py",
            &[&cluster.endpoint(), "bkt", "slow", file.to_str().unwrap(), &rate],
        )?;
        busy.join().expect("uploads thread")
    })?;
    for i in 0..2 {
        let got = cluster.dir.join("other.got");
        cluster.s3_cp(format!("s3://bkt/other-{i}"), &got)?;
        assert_eq!(sha256_file(&got)?, others_sha);
    }
    let got = cluster.dir.join("slow.got");
    cluster.s3_cp("s3://bkt/slow", &got)?;
    assert_eq!(sha256_file(&got)?, sha);
    // Nothing a live version names was collected; the overwritten
    // copies were: 4 chunks of the slow object and 3 of each other one.
    wait_until("overwritten copies collected", Duration::from_secs(30), || {
        chunk_files(&cluster) == 3 * (4 + 3 + 3)
    })?;
    Ok(())
}

/// A multipart upload whose client went away (a `cp` killed half way) is
/// aborted once older than `--abort-uploads-after-secs`, and its parts'
/// chunks leave the disks; a completed upload's object is untouched.
#[test]
fn an_abandoned_upload_is_aborted_and_its_parts_collected() -> Result<()> {
    let cluster = Cluster::start_with_router_args(&[
        "--worker-interval-secs",
        "0.5",
        "--gc-grace-secs",
        "1",
        "--abort-uploads-after-secs",
        "3",
    ])?;
    cluster.aws_ok(&["s3", "mb", "s3://bkt"])?;
    let part = cluster.dir.join("part.bin");
    random_file(&part, 9 << 20, 5)?;
    let kept = cluster.dir.join("kept.bin");
    random_file(&kept, 5 << 20, 6)?;
    cluster.s3_cp(&kept, "s3://bkt/kept")?;
    let created = cluster.aws_ok(&[
        "s3api",
        "create-multipart-upload",
        "--bucket",
        "bkt",
        "--key",
        "abandoned",
        "--query",
        "UploadId",
        "--output",
        "text",
    ])?;
    let upload = created.trim();
    cluster.aws_ok(&[
        "s3api",
        "upload-part",
        "--bucket",
        "bkt",
        "--key",
        "abandoned",
        "--upload-id",
        upload,
        "--part-number",
        "1",
        "--body",
        part.to_str().expect("a UTF-8 path"),
    ])?;
    // kept: 1 chunk; the part: 2 (chunks are 8 MiB); 3 replicas each.
    assert_eq!(chunk_files(&cluster), 9);
    let listed = |cluster: &Cluster| {
        cluster
            .aws_ok(&["s3api", "list-multipart-uploads", "--bucket", "bkt"])
            .is_ok_and(|out| out.contains(upload))
    };
    assert!(listed(&cluster), "the upload is listed at first");

    wait_until(
        "the upload aborted and its parts collected",
        Duration::from_secs(60),
        || !listed(&cluster) && chunk_files(&cluster) == 3,
    )?;
    let aborted: u64 = (1..=2)
        .filter_map(|i| cluster.router_metric(i, "bucketfs_router_uploads_abandoned_aborted_total"))
        .sum();
    assert_eq!(aborted, 1);
    let back = cluster.dir.join("back.bin");
    cluster.aws_ok(&["s3", "cp", "s3://bkt/kept", back.to_str().expect("a UTF-8 path")])?;
    assert_eq!(sha256_file(&back)?, sha256_file(&kept)?);
    Ok(())
}
