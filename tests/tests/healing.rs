//! Self-healing beyond repair: a node that comes back after its replicas
//! were made again elsewhere does not leave chunks with four copies.

use std::fs;
use std::time::Duration;

use anyhow::Result;
use bucketfs_tests::tools::{random_file, sha256_file};
use bucketfs_tests::{wait_until, Cluster};

fn chunk_files(cluster: &Cluster, nodes: usize) -> usize {
    (1..=nodes).map(|i| cluster.chunk_file_count(i)).sum()
}

/// Four nodes; one goes (kill -9) and repair copies its replicas onto the
/// others; it comes back with its files, so each chunk it held has four
/// live copies. The worker reads the three it keeps back, verified, and
/// removes the fourth: every chunk ends at three, every object readable.
#[test]
fn a_returning_nodes_surplus_replicas_are_trimmed() -> Result<()> {
    let mut cluster = Cluster::start_with_router_args(&[
        "--worker-interval-secs",
        "0.5",
        "--repair-after-secs",
        "1",
        "--repair-min-age-secs",
        "0",
        "--repair-throttle",
        "0",
    ])?;
    let nodes = cluster.add_node()?;
    cluster.wait_live_nodes(1, nodes)?;
    cluster.aws_ok(&["s3", "mb", "s3://bkt"])?;
    let work = cluster.dir.join("work");
    fs::create_dir_all(&work)?;
    let mut objects = Vec::new();
    for i in 0..4 {
        let file = work.join(format!("o{i}.bin"));
        random_file(&file, 20 << 20, 40 + i)?;
        cluster.s3_cp(&file, format!("s3://bkt/o{i}"))?;
        objects.push((format!("o{i}"), sha256_file(&file)?));
    }
    // 4 objects of 3 chunks, 3 replicas each.
    assert_eq!(chunk_files(&cluster, nodes), 36);
    let held = cluster.chunk_file_count(1);
    assert!(held > 0, "storage-node-1 holds no replica");

    cluster.kill9("storage-node-1")?;
    let under = |c: &Cluster| {
        c.status()
            .ok()
            .and_then(|s| s["chunks"]["under_replicated"].as_u64())
    };
    wait_until("repair around the dead node", Duration::from_secs(90), || {
        chunk_files(&cluster, nodes) == 36 + held && under(&cluster) == Some(0)
    })?;

    cluster.start_node(1)?;
    wait_until("surplus replicas trimmed", Duration::from_secs(90), || {
        chunk_files(&cluster, nodes) == 36
    })?;
    let trimmed: u64 = (1..=2)
        .filter_map(|i| cluster.router_metric(i, "bucketfs_router_replicas_trimmed_total"))
        .sum();
    assert_eq!(trimmed, held as u64);
    assert_eq!(under(&cluster), Some(0));
    for (key, sha) in objects {
        let out = work.join(format!("{key}.got"));
        cluster.aws_ok(&[
            "s3",
            "cp",
            &format!("s3://bkt/{key}"),
            out.to_str().expect("UTF-8"),
        ])?;
        assert_eq!(sha256_file(&out)?, sha, "{key}");
    }
    Ok(())
}
