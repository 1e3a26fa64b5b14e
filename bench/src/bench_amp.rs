//! `make bench-amp`: what a small write costs in bytes sent to the store
//! and in disk, for bucketfs (default mount and the write-back mount) and
//! the peers on the same cluster (s3fs, `rclone mount`), in one run.
//!
//! Workloads, each on a file made beforehand (not counted):
//! (a) 8 MiB of 4 KiB random writes with an fsync every 16 writes into a
//!     1 GiB file (fio); (b) 1,000 SQLite transactions, each rewriting one
//!     4000-byte row of a 256 MiB database (rollback journal, fsync on
//!     commit); (c) fsx-style mixed writes, truncates and reads of one file
//!     of up to 24 MiB (`tests/scripts/fsx.py`).
//! Bytes changed: what the workload passed to write calls (fio's count,
//! the others' own). Bytes uploaded: the routers' `bytes_in` over the
//! workload, once the client's uploads settle. Disk: the nodes' chunk
//! files once the collector has had its default grace and two passes,
//! against the logical bytes of the files the workloads leave.
//!
//! `bench-amp --quick`: a 256 MiB file for (a), a 64 MiB database and 300
//! fsx operations; target names after it run only those. s3fs uploads the
//! whole file at every fsync, so its (a) and (b) send the file 128 and 1,000
//! times over (hours at full size). Results: `bench/results/<date>-<host>-amp.md`.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bucketfs_tests::tools::check;
use bucketfs_tests::{Cluster, STORAGE_NODES};

use bucketfs_bench::targets::{self, fio, Kind, Target};

/// How long the collector needs by default to free garbage: its grace
/// (60 s) plus a pass (30 s), plus slack.
const GC_WAIT: Duration = Duration::from_secs(100);

/// `bytes_in` once it has not moved for 5 s (uploads after close settle).
fn settled_bytes_in(cluster: &Cluster) -> u64 {
    let mut last = (
        cluster.routers_metric("bucketfs_router_bytes_in_total"),
        Instant::now(),
    );
    while last.1.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(500));
        let now = cluster.routers_metric("bucketfs_router_bytes_in_total");
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    last.0
}

/// Bytes the nodes' chunk files take on disk.
fn disk_bytes(cluster: &Cluster) -> u64 {
    (1..=STORAGE_NODES).map(|i| cluster.chunk_disk_bytes(i)).sum()
}

/// `wrote N` from a script's output.
fn wrote(out: &str) -> Result<u64> {
    out.split_whitespace()
        .skip_while(|w| *w != "wrote" && *w != "wrote:")
        .nth(1)
        .and_then(|n| n.trim_end_matches([',', ':']).parse().ok())
        .with_context(|| format!("no byte count in {out:?}"))
}

fn python(script: &Path, args: &[&str]) -> Result<String> {
    check(
        Command::new("python3").arg(script).args(args).output()?,
        "workload",
    )
}

struct Figures {
    changed: u64,
    uploaded: u64,
}

fn run(cluster: &Cluster, t: &Target, quick: bool, table: &mut String) -> Result<()> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sqlite = here.join("scripts/sqlite_txn.py");
    let fsx = here.join("../tests/scripts/fsx.py");
    let (file_size, db_mib, fsx_ops) = if quick {
        ("256m", "64", "300")
    } else {
        ("1g", "256", "2000")
    };
    let disk_before = disk_bytes(cluster);
    let mut rows: Vec<(&str, Figures)> = Vec::new();

    // (a) 4 KiB random writes, fsync every 16.
    let file = format!("--filename={}", t.dir.join("rand.bin").display());
    fio(&[
        file.clone(),
        "--rw=write".into(),
        "--bs=1m".into(),
        format!("--size={file_size}"),
        "--end_fsync=1".into(),
    ])?;
    t.settle()?;
    let before = settled_bytes_in(cluster);
    let job = fio(&[
        file,
        "--rw=randwrite".into(),
        "--bs=4k".into(),
        format!("--size={file_size}"),
        "--io_size=8m".into(),
        "--fsync=16".into(),
        "--randrepeat=0".into(),
    ])?;
    t.settle()?;
    let changed = job["write"]["io_bytes"].as_u64().unwrap_or(0);
    rows.push((
        "(a) 4k rand writes, fsync/16",
        Figures {
            changed,
            uploaded: settled_bytes_in(cluster) - before,
        },
    ));

    // (b) SQLite transactions.
    let db = t.dir.join("db.sqlite");
    let db = db.to_str().context("path")?;
    python(&sqlite, &["create", db, db_mib])?;
    t.settle()?;
    let before = settled_bytes_in(cluster);
    let out = python(&sqlite, &["run", db, "1000"])?;
    t.settle()?;
    rows.push((
        "(b) 1,000 SQLite transactions",
        Figures {
            changed: wrote(&out)?,
            uploaded: settled_bytes_in(cluster) - before,
        },
    ));

    // (c) fsx-style mixed operations (the file is made by the run itself).
    let model = cluster.dir.join(format!("fsx-{}.model", t.name));
    let before = settled_bytes_in(cluster);
    let out = python(
        &fsx,
        &[
            t.dir.join("fsx.bin").to_str().context("path")?,
            fsx_ops,
            "5",
            "--model",
            model.to_str().context("path")?,
        ],
    )?;
    t.settle()?;
    rows.push((
        "(c) fsx mixed operations",
        Figures {
            changed: wrote(&out)?,
            uploaded: settled_bytes_in(cluster) - before,
        },
    ));

    for (name, f) in &rows {
        let ratio = f.uploaded as f64 / f.changed.max(1) as f64;
        println!(
            "  {:18} {name:34} changed {:>12} uploaded {:>14} ({ratio:.1}x)",
            t.name, f.changed, f.uploaded
        );
        table.push_str(&format!(
            "| {} | {name} | {} | {} | {ratio:.2}× |\n",
            t.name, f.changed, f.uploaded
        ));
    }
    // Disk, once the collector has had its time.
    std::thread::sleep(GC_WAIT);
    let logical: u64 = ["rand.bin", "db.sqlite", "fsx.bin"]
        .iter()
        .map(|f| fs::metadata(t.dir.join(f)).map(|m| m.len()).unwrap_or(0))
        .sum();
    let disk = disk_bytes(cluster).saturating_sub(disk_before);
    let ratio = disk as f64 / logical.max(1) as f64;
    println!(
        "  {:18} disk {disk} for {logical} logical bytes ({ratio:.2}x)",
        t.name
    );
    table.push_str(&format!(
        "| {} | disk {} s after, all three files | {logical} logical | {disk} on disk | {ratio:.2}× |\n",
        t.name,
        GC_WAIT.as_secs()
    ));
    Ok(())
}

fn main() -> Result<()> {
    let (quick, only) = targets::args();
    let cluster = Cluster::start()?;
    let work = cluster.dir.join("bench");
    fs::create_dir_all(&work)?;
    let mut table = String::from(
        "| target | workload | bytes changed | bytes uploaded | ratio |\n| --- | --- | --- | --- | --- |\n",
    );
    let mut failures = Vec::new();
    for kind in [Kind::BucketfsDefault, Kind::Bucketfs, Kind::S3fs, Kind::Rclone] {
        let mut t = Target::new(kind, &work);
        if !only.is_empty() && !only.iter().any(|o| o == t.name) {
            continue;
        }
        cluster.aws_ok(&["s3", "mb", &format!("s3://{}", t.bucket)])?;
        println!("== {}", t.name);
        t.mount(&cluster)?;
        if let Err(e) = run(&cluster, &t, quick, &mut table) {
            println!("  {} failed: {e:#}", t.name);
            failures.push(format!("- {}: {e:#}", t.name));
        }
        t.stop()?;
    }
    let date = jiff::Zoned::now().strftime("%Y-%m-%d %H:%M UTC").to_string();
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string();
    let md = format!(
        "# bench-amp, {date} on {host}{}\n\nBytes a small write sends to the store and keeps on its disks. Cluster: 3 storage nodes, 3 replicas, 2 routers, default settings (GC grace 60 s, a pass every 30 s). bucketfs-default: `bucketfs mount` with no options; bucketfs: `--cache-size 256 --disk-cache-size 2048 --write-back 64`. Peers on the same cluster; their uploads counted at the routers.\n\n{table}{}\n",
        if quick { ", quick run" } else { "" },
        if failures.is_empty() { String::new() } else { format!("\nFailures:\n{}\n", failures.join("\n")) }
    );
    println!("\n{md}");
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    fs::create_dir_all(&results)?;
    let path = results.join(format!(
        "{}-{host}-amp.md",
        date.split(' ').next().unwrap_or("run")
    ));
    fs::write(&path, &md)?;
    println!("written to {}", path.display());
    Ok(())
}
