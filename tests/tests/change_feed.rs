//! The change feed: a close on one mount is seen by another within a
//! second, though the second caches attributes and names for a minute.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use bucketfs_tests::Cluster;

/// Polls `seen` until it holds; how long that took, at most `limit`.
fn time_until(limit: Duration, mut seen: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if seen() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

fn size(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.len())
}

#[test]
fn another_mounts_changes_show_within_a_second() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://feed"])?;
    let (a_dir, b_dir) = (cluster.dir.join("a"), cluster.dir.join("b"));
    let _a = cluster.mount_with("feed", &a_dir, &["--attr-ttl", "60"])?;
    let _b = cluster.mount_with("feed", &b_dir, &["--attr-ttl", "60"])?;
    let limit = Duration::from_secs(1);

    // A new name: B has looked it up (and cached its absence) first.
    ensure!(!b_dir.join("new").exists());
    fs::write(a_dir.join("new"), b"made on A")?;
    let took = time_until(limit, || b_dir.join("new").exists());
    ensure!(
        took.is_some(),
        "a file made on A did not show on B within {limit:?}"
    );
    assert_eq!(fs::read(b_dir.join("new"))?, b"made on A");

    // 200 closes on A, each seen in B's stat (cached for a minute) and read.
    let (on_a, on_b) = (a_dir.join("f"), b_dir.join("f"));
    fs::write(&on_a, b"0")?;
    time_until(limit, || size(&on_b) == Some(1));
    let mut times = Vec::new();
    for i in 1..=200u64 {
        let body = "x".repeat(i as usize + 1);
        fs::write(&on_a, &body)?;
        let took = time_until(limit, || size(&on_b) == Some(i + 1))
            .ok_or_else(|| anyhow::anyhow!("change {i} did not show on B within {limit:?}"))?;
        times.push(took);
        if i % 50 == 0 {
            assert_eq!(fs::read_to_string(&on_b)?, body, "B read change {i}");
        }
    }
    times.sort();
    let (p50, p99) = (times[times.len() / 2], times[times.len() * 99 / 100]);
    println!(
        "propagation of a close from mount A to a stat on mount B over 200 changes: p50 {p50:?}, p99 {p99:?}"
    );

    // A removal, seen in B's stat and in its listing of the directory.
    fs::remove_file(&on_a)?;
    let took = time_until(limit, || !on_b.exists());
    ensure!(took.is_some(), "a file removed on A stayed on B");
    let names: Vec<String> = fs::read_dir(&b_dir)?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    assert_eq!(names, ["new"], "B lists what A left");
    Ok(())
}
