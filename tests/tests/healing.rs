//! Self-healing beyond repair: a node that comes back after its replicas
//! were made again elsewhere does not leave chunks with four copies; the
//! worker's inventory removes chunk files nothing records (planted, or left
//! by a router killed mid-PUT) and drops the rows of replicas a wiped disk
//! lost, which repair then makes again. No referenced chunk is ever touched.

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Result;
use bucketfs_tests::tools::{random_file, sha256_file};
use bucketfs_tests::{wait_until, Cluster};

fn chunk_files(cluster: &Cluster, nodes: usize) -> usize {
    (1..=nodes).map(|i| cluster.chunk_file_count(i)).sum()
}

/// `router status`'s count of under-replicated chunks.
fn under_replicated(cluster: &Cluster) -> Option<u64> {
    cluster.status().ok()?["chunks"]["under_replicated"].as_u64()
}

/// Which of the cluster's routers (1, 2) leads the background work.
fn leader(cluster: &Cluster) -> Option<usize> {
    let status = cluster.status().ok()?;
    let addr = status["worker"]["leader"].as_str()?.to_string();
    cluster
        .ports
        .routers
        .iter()
        .position(|p| addr == format!("127.0.0.1:{p}"))
        .map(|i| i + 1)
}

/// Reads every `(key, sha256)` of bucket `bkt` back and checks its bytes.
fn read_back(cluster: &Cluster, work: &std::path::Path, objects: &[(String, String)]) -> Result<()> {
    for (key, sha) in objects {
        let out = work.join(format!("{key}.got"));
        cluster.aws_ok(&[
            "s3",
            "cp",
            &format!("s3://bkt/{key}"),
            out.to_str().expect("UTF-8"),
        ])?;
        assert_eq!(&sha256_file(&out)?, sha, "{key}");
        fs::remove_file(out)?;
    }
    Ok(())
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
        // Trim alone: rebalance would also move replicas among the four
        // (and off the killed node while ZooKeeper still counts it live).
        "--rebalance",
        "false",
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
    wait_until("repair around the dead node", Duration::from_secs(90), || {
        chunk_files(&cluster, nodes) == 36 + held && under_replicated(&cluster) == Some(0)
    })?;

    cluster.start_node(1)?;
    wait_until("surplus replicas trimmed", Duration::from_secs(90), || {
        chunk_files(&cluster, nodes) == 36
    })?;
    let trimmed: u64 = (1..=2)
        .filter_map(|i| cluster.router_metric(i, "bucketfs_router_replicas_trimmed_total"))
        .sum();
    assert_eq!(trimmed, held as u64);
    assert_eq!(under_replicated(&cluster), Some(0));
    read_back(&cluster, &work, &objects)?;
    Ok(())
}

/// Replica rows in Postgres.
fn replica_rows(cluster: &Cluster) -> Result<usize> {
    let out = Command::new("psql")
        .arg(cluster.database_url())
        .args(["-tAc", "SELECT count(*) FROM chunk_replicas"])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

#[test]
fn the_inventory_removes_orphans_and_the_rows_of_lost_replicas() -> Result<()> {
    let mut cluster = Cluster::start_with_router_args(&[
        "--worker-interval-secs",
        "0.5",
        "--inventory-interval-secs",
        "1",
        "--orphan-grace-secs",
        "3",
        "--repair-after-secs",
        "1",
        "--repair-min-age-secs",
        "0",
        "--repair-throttle",
        "0",
    ])?;
    let nodes = bucketfs_tests::STORAGE_NODES;
    cluster.aws_ok(&["s3", "mb", "s3://bkt"])?;
    let work = cluster.dir.join("work");
    fs::create_dir_all(&work)?;
    let mut objects = Vec::new();
    for i in 0..2 {
        let file = work.join(format!("o{i}.bin"));
        random_file(&file, 20 << 20, 60 + i)?;
        cluster.s3_cp(&file, format!("s3://bkt/o{i}"))?;
        objects.push((format!("o{i}"), sha256_file(&file)?));
    }
    assert_eq!(chunk_files(&cluster, nodes), 18);

    // Two files no row names, planted on storage-node-2.
    let shard = cluster.node_data_dir(2).join("chunks").join("00");
    fs::create_dir_all(&shard)?;
    for id in [
        "00aa00aa00aa00aa00aa00aa00aa00aa",
        "00bb00bb00bb00bb00bb00bb00bb00bb",
    ] {
        fs::write(shard.join(id), b"not a chunk anyone wrote")?;
    }
    // A router killed while a 64 MiB upload streams through it.
    let port = cluster.start_extra_router("router-doomed", &[])?;
    let big = work.join("big.bin");
    random_file(&big, 64 << 20, 70)?;
    let before = chunk_files(&cluster, nodes);
    let mut upload = cluster
        .aws_at(
            &format!("http://127.0.0.1:{port}"),
            &["s3", "cp", big.to_str().expect("UTF-8"), "s3://bkt/big"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait_until("the upload's first chunks", Duration::from_secs(60), || {
        chunk_files(&cluster, nodes) >= before + 6
    })?;
    cluster.kill9("router-doomed")?;
    upload.kill()?;
    upload.wait()?;

    // storage-node-3 comes back with an empty disk.
    cluster.kill9("storage-node-3")?;
    fs::remove_dir_all(cluster.node_data_dir(3).join("chunks"))?;
    cluster.start_node(3)?;

    // Every file on a disk is one a row names, and every row's file is there.
    wait_until(
        "the inventory reconciled and repair done",
        Duration::from_secs(120),
        || {
            replica_rows(&cluster).is_ok_and(|rows| rows == chunk_files(&cluster, nodes))
                && under_replicated(&cluster) == Some(0)
                && !shard.join("00aa00aa00aa00aa00aa00aa00aa00aa").exists()
        },
    )?;
    let metric = |name: &str| -> u64 { (1..=2).filter_map(|i| cluster.router_metric(i, name)).sum() };
    let orphans = metric("bucketfs_router_orphans_removed_total");
    let stale = metric("bucketfs_router_stale_replica_rows_total");
    println!("orphans removed: {orphans}, stale rows dropped: {stale}");
    assert!(orphans >= 2, "the planted orphans: {orphans}");
    assert!(
        stale >= 6,
        "storage-node-3 held a replica of each of the 6 chunks: {stale}"
    );
    assert!(
        cluster.chunk_file_count(3) >= 6,
        "repair put storage-node-3's replicas back"
    );
    read_back(&cluster, &work, &objects)?;

    // A swept chunk can never be recorded afterwards (a write stalled past
    // the grace fails instead of naming files that are gone).
    let recorded = Command::new("psql")
        .arg(cluster.database_url())
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "INSERT INTO chunks (id, size, crc32c, lease_until) \
             VALUES ('00aa00aa00aa00aa00aa00aa00aa00aa', 24, 0, now())",
        ])
        .output()?;
    let said = String::from_utf8_lossy(&recorded.stderr);
    assert!(
        !recorded.status.success() && said.contains("swept"),
        "{said} {:?} {}",
        recorded.status,
        String::from_utf8_lossy(&recorded.stdout)
    );
    Ok(())
}

/// `router drain` of one node of four: it takes no new replicas, its
/// replicas are copied to the others and then removed, and it ends empty
/// with nothing under-replicated; every object reads back, and a write
/// made after the drain began has no replica on it.
#[test]
fn a_drained_node_ends_empty_with_nothing_under_replicated() -> Result<()> {
    let mut cluster = Cluster::start_with_router_args(&[
        "--worker-interval-secs",
        "0.5",
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
    let mut write = |cluster: &Cluster, i: u64| -> Result<()> {
        let file = work.join(format!("d{i}.bin"));
        random_file(&file, 20 << 20, 100 + i)?;
        cluster.s3_cp(&file, format!("s3://bkt/d{i}"))?;
        objects.push((format!("d{i}"), sha256_file(&file)?));
        Ok(())
    };
    for i in 0..4 {
        write(&cluster, i)?;
    }
    assert!(cluster.chunk_file_count(1) > 0, "storage-node-1 holds no replica");

    let said = cluster.router_admin("drain", &["storage-node-1"])?;
    println!("{said}");
    assert!(said.contains("draining storage-node-1"), "{said}");
    // Routers learn of the drain within their membership refresh (10 s).
    std::thread::sleep(Duration::from_secs(11));
    write(&cluster, 4)?;
    let node1 = |c: &Cluster| -> Option<(u64, bool)> {
        let status = c.status().ok()?;
        let node = status["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["id"] == "storage-node-1")?
            .clone();
        Some((node["replicas"].as_u64()?, node["draining"].as_bool()?))
    };
    wait_until("storage-node-1 drained", Duration::from_secs(120), || {
        cluster.chunk_file_count(1) == 0
            && node1(&cluster) == Some((0, true))
            && under_replicated(&cluster) == Some(0)
    })?;
    // 5 objects of 3 chunks, 3 replicas each, none on the drained node.
    assert_eq!(chunk_files(&cluster, nodes), 45);
    println!("{}", cluster.status_text()?);
    read_back(&cluster, &work, &objects)?;
    Ok(())
}

/// A fourth node joins a cluster holding 2 GiB: rebalance moves replicas
/// onto it until the four nodes hold replica bytes within 15% of each
/// other, while a reader reads every object back over and over: no read
/// fails, and every one is exact.
#[test]
fn a_joining_node_gets_its_share_while_reads_go_on() -> Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let mut cluster =
        Cluster::start_with_router_args(&["--worker-interval-secs", "0.5", "--repair-throttle", "0"])?;
    cluster.aws_ok(&["s3", "mb", "s3://bkt"])?;
    let work = cluster.dir.join("work");
    fs::create_dir_all(&work)?;
    let file = work.join("quarter.bin");
    random_file(&file, 256 << 20, 110)?;
    let sha = sha256_file(&file)?;
    let keys: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
    for key in &keys {
        cluster.s3_cp(&file, format!("s3://bkt/{key}"))?;
    }
    fs::remove_file(&file)?;
    let replicas = |c: &Cluster| -> Option<Vec<u64>> {
        let status = c.status().ok()?;
        status["nodes"]
            .as_array()?
            .iter()
            .map(|n| n["replicas"].as_u64())
            .collect()
    };
    println!("replicas per node before: {:?}", replicas(&cluster));

    let nodes = cluster.add_node()?;
    let (stop, reads, failures) = (AtomicBool::new(false), AtomicU64::new(0), AtomicU64::new(0));
    let balanced = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let key = &keys[i % keys.len()];
                let out = work.join("read.bin");
                let got = cluster
                    .aws_ok(&[
                        "s3",
                        "cp",
                        "--no-progress",
                        &format!("s3://bkt/{key}"),
                        out.to_str().expect("UTF-8"),
                    ])
                    .and_then(|_| sha256_file(&out));
                match got {
                    Ok(s) if s == sha => reads.fetch_add(1, Ordering::SeqCst),
                    other => {
                        eprintln!("read of {key} during rebalance: {other:?}");
                        failures.fetch_add(1, Ordering::SeqCst)
                    }
                };
                i += 1;
            }
        });
        let balanced = wait_until(
            "four nodes within 15% of each other",
            Duration::from_secs(300),
            || {
                replicas(&cluster).is_some_and(|r| {
                    let (min, max) = (
                        r.iter().min().copied().unwrap_or(0),
                        r.iter().max().copied().unwrap_or(0),
                    );
                    r.len() == nodes && max > 0 && (max - min) as f64 <= 0.15 * max as f64
                }) && chunk_files(&cluster, nodes) == 8 * 32 * 3
            },
        );
        stop.store(true, Ordering::SeqCst);
        balanced
    });
    balanced?;
    let moved = cluster.routers_metric("bucketfs_router_replicas_moved_total");
    println!(
        "replicas per node after: {:?}; moved {moved}; reads during rebalance: {} exact, {} failed",
        replicas(&cluster),
        reads.load(Ordering::SeqCst),
        failures.load(Ordering::SeqCst)
    );
    assert_eq!(failures.load(Ordering::SeqCst), 0);
    assert!(
        reads.load(Ordering::SeqCst) > 0,
        "no read ran during the rebalance"
    );
    // (Balanced means also every chunk with exactly 3 replica files: a move
    // in flight has written its copy and not yet deleted the donor's.)
    Ok(())
}

/// The leader killed mid-rebalance: the other router is elected and
/// finishes it (the work's state is Postgres's, not the leader's).
#[test]
fn a_rebalance_survives_its_leader() -> Result<()> {
    let mut cluster =
        Cluster::start_with_router_args(&["--worker-interval-secs", "0.5", "--repair-throttle", "4"])?;
    cluster.aws_ok(&["s3", "mb", "s3://bkt"])?;
    let work = cluster.dir.join("work");
    fs::create_dir_all(&work)?;
    let file = work.join("part.bin");
    random_file(&file, 64 << 20, 120)?;
    let sha = sha256_file(&file)?;
    for i in 0..4 {
        cluster.s3_cp(&file, format!("s3://bkt/k{i}"))?;
    }
    let nodes = cluster.add_node()?;
    // Moving, slowly (each move is followed by a pause four times as long).
    wait_until("the rebalance under way", Duration::from_secs(60), || {
        cluster.routers_metric("bucketfs_router_replicas_moved_total") >= 2
    })?;
    let first = leader(&cluster).expect("a leader");
    cluster.kill9(&format!("router-{first}"))?;
    let per_node = |c: &Cluster| (1..=nodes).map(|i| c.chunk_file_count(i)).collect::<Vec<_>>();
    println!(
        "leader router-{first} killed; chunk files per node: {:?}",
        per_node(&cluster)
    );
    wait_until(
        "another leader finishes the rebalance",
        Duration::from_secs(120),
        || {
            let files = per_node(&cluster);
            let (min, max) = (
                files.iter().min().copied().unwrap_or(0),
                files.iter().max().copied().unwrap_or(0),
            );
            max > 0 && (max - min) as f64 <= 0.15 * max as f64
        },
    )?;
    let second = leader(&cluster).expect("a leader");
    println!(
        "finished by router-{second}; chunk files per node: {:?}",
        per_node(&cluster)
    );
    assert_ne!(first, second);
    assert_eq!(chunk_files(&cluster, nodes), 4 * 8 * 3);
    let objects: Vec<(String, String)> = (0..4).map(|i| (format!("k{i}"), sha.clone())).collect();
    read_back(&cluster, &work, &objects)?;
    Ok(())
}

/// The leader killed mid-repair: the other router is elected and finishes
/// it; every chunk ends with 3 replicas on the live nodes.
#[test]
fn a_repair_survives_its_leader() -> Result<()> {
    let mut cluster = Cluster::start_with_router_args(&[
        "--worker-interval-secs",
        "0.5",
        "--repair-after-secs",
        "0",
        "--repair-min-age-secs",
        "0",
        "--repair-throttle",
        "4",
        "--rebalance",
        "false",
    ])?;
    let nodes = cluster.add_node()?;
    cluster.wait_live_nodes(1, nodes)?;
    cluster.aws_ok(&["s3", "mb", "s3://bkt"])?;
    let work = cluster.dir.join("work");
    fs::create_dir_all(&work)?;
    let file = work.join("part.bin");
    random_file(&file, 64 << 20, 130)?;
    let sha = sha256_file(&file)?;
    for i in 0..4 {
        cluster.s3_cp(&file, format!("s3://bkt/k{i}"))?;
    }
    let lost = cluster.chunk_file_count(1);
    assert!(lost >= 4, "storage-node-1 holds {lost} replicas");
    cluster.kill9("storage-node-1")?;
    // Repairing, slowly (each copy is followed by a pause four times as long).
    wait_until("the repair under way", Duration::from_secs(60), || {
        cluster.routers_metric("bucketfs_router_replicas_repaired_total") >= 2
    })?;
    let first = leader(&cluster).expect("a leader");
    cluster.kill9(&format!("router-{first}"))?;
    let live_files = |c: &Cluster| (2..=nodes).map(|i| c.chunk_file_count(i)).sum::<usize>();
    println!(
        "leader router-{first} killed with {} of 96 replicas on live nodes",
        live_files(&cluster)
    );
    wait_until(
        "another leader finishes the repair",
        Duration::from_secs(120),
        || live_files(&cluster) == 4 * 8 * 3 && under_replicated(&cluster) == Some(0),
    )?;
    let second = leader(&cluster).expect("a leader");
    println!("finished by router-{second}");
    assert_ne!(first, second);
    let objects: Vec<(String, String)> = (0..4).map(|i| (format!("k{i}"), sha.clone())).collect();
    read_back(&cluster, &work, &objects)?;
    Ok(())
}
