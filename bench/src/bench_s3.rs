//! `make bench-s3`: S3 throughput of a local 3-replica cluster through HAProxy,
//! printed beside the raw speed of the disk it runs on, measured in the same
//! run so the ratios mean something on a shared, noisy machine.
//!
//! Rows: 1 GiB PUT and GET with the AWS CLI (multipart, 8 MiB parts, 8
//! concurrent requests), and 4 KiB objects PUT and GET with `aws s3 sync`
//! (1,000 objects, 8 concurrent requests). The raw disk baseline writes 1 GiB
//! with fsync and reads it back after dropping the page cache; note the store
//! writes every byte three times (three replicas, each fsynced).

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use bucketfs_tests::tools::random_file;
use bucketfs_tests::Cluster;

const GIB: u64 = 1 << 30;
const SMALL_FILES: usize = 1000;

fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / secs
}

fn drop_caches() -> bool {
    nix::unistd::sync();
    fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn timed(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64())
}

fn raw_disk(dir: &Path) -> Result<(f64, f64)> {
    let path = dir.join("raw.bin");
    let block = vec![0x5au8; 1 << 20];
    let write = timed(|| {
        let mut f = fs::File::create(&path)?;
        for _ in 0..GIB >> 20 {
            f.write_all(&block)?;
        }
        f.sync_all()?;
        Ok(())
    })?;
    drop_caches();
    let read = timed(|| {
        let mut f = fs::File::open(&path)?;
        let mut buf = vec![0u8; 1 << 20];
        while f.read(&mut buf)? > 0 {}
        Ok(())
    })?;
    fs::remove_file(&path)?;
    Ok((mib_per_s(GIB, write), mib_per_s(GIB, read)))
}

fn main() -> Result<()> {
    let cluster = Cluster::start()?;
    let work = cluster.dir.join("bench");
    fs::create_dir_all(&work)?;
    let (disk_write, disk_read) = raw_disk(&work)?;
    let cold = drop_caches();

    cluster.aws_ok(&["s3", "mb", "s3://bench"])?;
    let big = work.join("big.bin");
    random_file(&big, GIB, 1)?;
    let big_s = big.to_str().unwrap();
    let put = timed(|| {
        cluster
            .aws_ok(&["s3", "cp", "--no-progress", big_s, "s3://bench/big.bin"])
            .map(drop)
    })?;
    fs::remove_file(&big)?;
    drop_caches();
    let back = work.join("big.back");
    let back_s = back.to_str().unwrap();
    let get = timed(|| {
        cluster
            .aws_ok(&["s3", "cp", "--no-progress", "s3://bench/big.bin", back_s])
            .map(drop)
    })?;
    fs::remove_file(&back)?;

    let small = work.join("small");
    fs::create_dir_all(&small)?;
    for i in 0..SMALL_FILES {
        random_file(&small.join(format!("f{i:04}")), 4096, i as u64)?;
    }
    let small_s = small.to_str().unwrap();
    let small_put = timed(|| {
        cluster
            .aws_ok(&["s3", "sync", "--only-show-errors", small_s, "s3://bench/small/"])
            .map(drop)
    })?;
    let small_back = work.join("small.back");
    let small_back_s = small_back.to_str().unwrap();
    let small_get = timed(|| {
        cluster
            .aws_ok(&[
                "s3",
                "sync",
                "--only-show-errors",
                "s3://bench/small/",
                small_back_s,
            ])
            .map(drop)
    })?;

    let put_mib = mib_per_s(GIB, put);
    let get_mib = mib_per_s(GIB, get);
    let date = String::from_utf8(
        std::process::Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d %H:%M UTC")
            .output()?
            .stdout,
    )?;
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let table = format!(
        "# bench-s3, {date_t} on {host_t} ({cores} cores)\n\n\
         3 storage nodes, 3 replicas (write quorum 2), 2 routers behind HAProxy, AWS CLI with 8 concurrent requests.\n\
         Page cache dropped before reads: {cold}.\n\n\
         | row | figure | ratio to raw disk |\n| --- | --- | --- |\n\
         | raw disk write 1 GiB (fsync) | {disk_write:.0} MiB/s | 1.00 |\n\
         | raw disk read 1 GiB | {disk_read:.0} MiB/s | 1.00 |\n\
         | S3 PUT 1 GiB | {put_mib:.0} MiB/s | {:.2} of write |\n\
         | S3 GET 1 GiB | {get_mib:.0} MiB/s | {:.2} of read |\n\
         | S3 PUT 4 KiB objects | {:.0} objects/s | |\n\
         | S3 GET 4 KiB objects | {:.0} objects/s | |\n",
        put_mib / disk_write,
        get_mib / disk_read,
        SMALL_FILES as f64 / small_put,
        SMALL_FILES as f64 / small_get,
        date_t = date.trim(),
        host_t = host.trim(),
    );
    println!("{table}");
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    fs::create_dir_all(&results)?;
    let file = results.join(format!(
        "{}-{}-s3.md",
        date.split(' ').next().unwrap_or("run"),
        host.trim()
    ));
    fs::write(&file, &table)?;
    println!("written to {}", file.display());
    Ok(())
}
