//! Large files on a real mount: partial re-uploads, `--at` views, two
//! mounts of one bucket, failures under a long copy, and bounded memory.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use bucketfs_tests::tools::{check, random_file, sha256_file};
use bucketfs_tests::Cluster;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn cp(from: &Path, to: &Path) -> Result<()> {
    check(Command::new("cp").arg(from).arg(to).output()?, "cp")?;
    Ok(())
}

#[test]
fn a_one_byte_change_uploads_one_chunk_and_at_shows_the_old_bytes() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.versioned_bucket("big")?;
    let mnt = cluster.dir.join("mnt");
    let _mount = cluster.mount("big", &mnt)?;
    let original = cluster.dir.join("orig.bin");
    random_file(&original, GIB, 21)?;
    let sha = sha256_file(&original)?;
    cp(&original, &mnt.join("big.bin"))?;

    std::thread::sleep(Duration::from_millis(1500));
    let before_change = check(
        Command::new("date")
            .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
            .output()?,
        "date",
    )?;
    std::thread::sleep(Duration::from_millis(1500));

    let before = cluster.routers_metric("bucketfs_router_bytes_in_total");
    let offset = 500 * MIB + 3;
    {
        let mut f = fs::OpenOptions::new().write(true).open(mnt.join("big.bin"))?;
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(&[0x42])?;
    }
    let uploaded = cluster.routers_metric("bucketfs_router_bytes_in_total") - before;
    println!("a one-byte change to a 1 GiB file uploaded {uploaded} bytes");
    assert!(
        uploaded <= 8 * MIB,
        "uploaded {uploaded} bytes for a one-byte change"
    );

    let mut byte = [0u8];
    let mut f = fs::File::open(mnt.join("big.bin"))?;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(&mut byte)?;
    assert_eq!(byte[0], 0x42);
    assert_eq!(fs::metadata(mnt.join("big.bin"))?.len(), GIB);

    // A read-only view of the bucket before the change.
    let at = cluster.dir.join("at");
    let _view = cluster.mount_with("big", &at, &["--at", before_change.trim()])?;
    assert_eq!(sha256_file(&at.join("big.bin"))?, sha);
    let err = fs::write(at.join("new.txt"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(nix::errno::Errno::EROFS as i32));
    Ok(())
}

#[test]
fn two_mounts_see_each_other_and_concurrent_writers_keep_both_versions() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.versioned_bucket("two")?;
    let a = cluster.dir.join("a");
    let b = cluster.dir.join("b");
    let _ma = cluster.mount_with("two", &a, &["--attr-ttl", "1"])?;
    let _mb = cluster.mount_with("two", &b, &["--attr-ttl", "1"])?;

    fs::write(a.join("f.txt"), "first")?;
    bucketfs_tests::wait_until("b sees f.txt", Duration::from_secs(5), || {
        fs::read_to_string(b.join("f.txt")).is_ok_and(|s| s == "first")
    })?;
    // Overwritten on a, seen on b once the TTL has passed.
    fs::write(a.join("f.txt"), "second, longer")?;
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fs::read_to_string(b.join("f.txt"))?, "second, longer");

    // Two writers of one file, one per mount: each close is its own version.
    let mut wa = fs::File::create(a.join("c.txt"))?;
    let mut wb = fs::File::create(b.join("c.txt"))?;
    wa.write_all(b"written on a")?;
    wb.write_all(b"written on b")?;
    drop(wa);
    drop(wb);
    let versions = cluster.aws_ok(&[
        "s3api",
        "list-object-versions",
        "--bucket",
        "two",
        "--prefix",
        "c.txt",
        "--query",
        "Versions[].Size",
    ])?;
    let sizes: Vec<&str> = versions
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    assert!(sizes.iter().filter(|s| **s == "12").count() >= 2, "{versions}");
    Ok(())
}

#[test]
fn a_long_copy_survives_a_dead_node_and_a_dead_router() -> Result<()> {
    let mut cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://kill"])?;
    let mnt = cluster.dir.join("mnt");
    let _mount = cluster.mount("kill", &mnt)?;
    let original = cluster.dir.join("orig.bin");
    random_file(&original, GIB, 33)?;
    let sha = sha256_file(&original)?;

    let target = mnt.join("k.bin");
    let copy = {
        let (from, to) = (original.clone(), target.clone());
        std::thread::spawn(move || Command::new("cp").arg(from).arg(to).output())
    };
    std::thread::sleep(Duration::from_secs(2));
    assert!(!copy.is_finished(), "cp ended before the node was killed");
    cluster.kill9("storage-node-1")?;
    std::thread::sleep(Duration::from_secs(2));
    assert!(!copy.is_finished(), "cp ended before the router was killed");
    cluster.kill9("router-1")?;
    let out = copy.join().map_err(|_| anyhow::anyhow!("cp thread panicked"))??;
    check(out, "cp under failures")?;
    assert_eq!(sha256_file(&target)?, sha);
    Ok(())
}

/// Memory the daemon may use beyond its block cache: parts uploading in
/// the background (4 × 8 MiB), parts of a commit in flight (8 × 8 MiB) and
/// the runtime. README "Memory" documents the same figure.
const MARGIN: u64 = 160 * MIB;

#[test]
fn memory_stays_bounded_while_writing_4_gib() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://mem"])?;
    let mnt = cluster.dir.join("mnt");
    let cache_mib = 64;
    let _mount = cluster.mount_with("mem", &mnt, &["--cache-size", &cache_mib.to_string()])?;
    let writer = {
        let target = mnt.join("four.bin");
        std::thread::spawn(move || {
            Command::new("dd")
                .arg("if=/dev/zero")
                .arg(format!("of={}", target.display()))
                .args(["bs=1M", "count=4096", "conv=fsync"])
                .output()
        })
    };
    let mut peak = bucketfs_tests::tools::DaemonMemory::default();
    while !writer.is_finished() {
        if let Ok(now) = bucketfs_tests::tools::daemon_memory(&mnt) {
            if now.rss > peak.rss {
                peak = now;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    check(
        writer.join().map_err(|_| anyhow::anyhow!("dd panicked"))??,
        "dd 4 GiB",
    )?;
    println!(
        "peak RSS while writing 4 GiB: {} MiB (cache {cache_mib} MiB; {})",
        peak.rss / MIB,
        peak.detail
    );
    assert!(peak.rss > 0, "the daemon was never seen");
    assert!(
        peak.rss < cache_mib * MIB + MARGIN,
        "peak RSS {} MiB ({})",
        peak.rss / MIB,
        peak.detail
    );
    assert_eq!(fs::metadata(mnt.join("four.bin"))?.len(), 4 * GIB);
    Ok(())
}
