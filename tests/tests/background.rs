//! Background work that cannot die: a router whose log can no longer be
//! written (its stderr a pipe nobody reads) keeps serving and keeps doing
//! the elected worker's passes, dropping and counting its log lines.

use std::io::Read;
use std::time::Duration;

use anyhow::Result;
use bucketfs_tests::tools::random_file;
use bucketfs_tests::{wait_until, Cluster, STORAGE_NODES};

fn chunk_files(cluster: &Cluster) -> usize {
    (1..=STORAGE_NODES).map(|i| cluster.chunk_file_count(i)).sum()
}

#[test]
fn a_router_whose_log_pipe_closed_keeps_serving_and_leading() -> Result<()> {
    let mut cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://bkt"])?;
    let args = ["--worker-interval-secs", "0.5", "--gc-grace-secs", "1"];
    let (port, mut log) = cluster.start_extra_router_logging_to_pipe("router-piped", &args)?;
    // The cluster's routers stop cleanly (their ZooKeeper sessions end
    // with them): the piped router is the one left to lead.
    cluster.terminate("router-1")?;
    cluster.terminate("router-2")?;
    let me = format!("127.0.0.1:{port}");
    wait_until("the piped router leads", Duration::from_secs(60), || {
        cluster
            .status()
            .is_ok_and(|s| s["worker"]["leader"].as_str() == Some(me.as_str()))
    })?;
    let mut first = [0; 4096];
    assert!(log.read(&mut first)? > 0, "the router logs into the pipe");
    drop(log);

    // Every request logs (debug), into a closed pipe: the router goes on.
    let endpoint = format!("http://127.0.0.1:{port}");
    let file = cluster.dir.join("obj.bin");
    random_file(&file, 3 << 20, 7)?;
    let path = file.to_str().expect("a UTF-8 path");
    let aws = |args: &[&str]| bucketfs_tests::tools::check(cluster.aws_at(&endpoint, args).output()?, "aws");
    aws(&["s3", "cp", path, "s3://bkt/a"])?;
    aws(&["s3", "cp", path, "s3://bkt/b"])?;
    // Counted before the delete: with a 1 s grace the collector may free
    // b's chunk before `aws s3 rm` has even exited (a loaded CI host did).
    assert_eq!(
        chunk_files(&cluster),
        6,
        "two objects of one chunk, three replicas each"
    );
    aws(&["s3", "rm", "s3://bkt/b"])?;

    // The worker, still elected, collects the deleted object's chunk.
    wait_until(
        "garbage collected by the piped router",
        Duration::from_secs(60),
        || chunk_files(&cluster) == 3,
    )?;
    let status = cluster.status()?;
    assert_eq!(status["worker"]["leader"].as_str(), Some(me.as_str()));
    let metrics = bucketfs_tests::http_get(port, "/_bucketfs/metrics").unwrap_or_default();
    let dropped = bucketfs_tests::metric(&metrics, "bucketfs_log_lines_dropped_total").unwrap_or(0);
    assert!(dropped > 0, "no log line counted as dropped:\n{metrics}");
    let back = cluster.dir.join("back.bin");
    aws(&["s3", "cp", "s3://bkt/a", back.to_str().expect("a UTF-8 path")])?;
    assert_eq!(std::fs::read(&back)?, std::fs::read(&file)?);
    Ok(())
}
