//! Real S3 clients against a real cluster, through HAProxy.

use std::fs;

use anyhow::Result;
use bucketfs_tests::tools::{check, random_file, sha256_file};
use bucketfs_tests::Cluster;

#[test]
fn aws_cli_large_file_sync_and_recursive_delete() -> Result<()> {
    let cluster = Cluster::start()?;
    let work = cluster.dir.join("work");
    fs::create_dir_all(&work)?;
    cluster.aws_ok(&["s3", "mb", "s3://data"])?;

    // 1 GiB up and back down: multipart both ways (8 MiB parts, ranged GETs).
    let big = work.join("big.bin");
    random_file(&big, 1 << 30, 42)?;
    cluster.aws_ok(&[
        "s3",
        "cp",
        "--no-progress",
        big.to_str().unwrap(),
        "s3://data/big.bin",
    ])?;
    let back = work.join("big.back");
    cluster.aws_ok(&[
        "s3",
        "cp",
        "--no-progress",
        "s3://data/big.bin",
        back.to_str().unwrap(),
    ])?;
    assert_eq!(sha256_file(&big)?, sha256_file(&back)?);
    fs::remove_file(&back)?;
    fs::remove_file(&big)?;

    let listing = cluster.aws_ok(&["s3", "ls", "s3://data/"])?;
    assert!(listing.contains("1073741824 big.bin"), "{listing}");

    // 1,000 small files up and back with sync.
    let src = work.join("small");
    for i in 0..1000 {
        let dir = src.join(format!("d{}", i % 10));
        fs::create_dir_all(&dir)?;
        fs::write(
            dir.join(format!("f{i:04}.txt")),
            format!("file {i}\n").repeat(i % 7 + 1),
        )?;
    }
    cluster.aws_ok(&[
        "s3",
        "sync",
        "--only-show-errors",
        src.to_str().unwrap(),
        "s3://data/small/",
    ])?;
    let dst = work.join("small.back");
    cluster.aws_ok(&[
        "s3",
        "sync",
        "--only-show-errors",
        "s3://data/small/",
        dst.to_str().unwrap(),
    ])?;
    check(
        std::process::Command::new("diff")
            .arg("-r")
            .arg(&src)
            .arg(&dst)
            .output()?,
        "diff -r",
    )?;
    // A second sync has nothing to do.
    let again = cluster.aws_ok(&["s3", "sync", src.to_str().unwrap(), "s3://data/small/"])?;
    assert!(again.trim().is_empty(), "second sync uploaded: {again}");

    cluster.aws_ok(&["s3", "rm", "--recursive", "--only-show-errors", "s3://data/"])?;
    let left = cluster.aws_ok(&["s3", "ls", "--recursive", "s3://data/"])?;
    assert!(left.trim().is_empty(), "left after rm --recursive: {left}");
    cluster.aws_ok(&["s3", "rb", "s3://data"])?;
    Ok(())
}

#[test]
fn s3cmd_and_rclone_round_trips() -> Result<()> {
    let cluster = Cluster::start()?;
    let work = cluster.dir.join("work");
    fs::create_dir_all(&work)?;
    let file = work.join("payload.bin");
    random_file(&file, 3 * 1024 * 1024 + 17, 7)?;

    // s3cmd: make bucket, put, list, get, delete.
    check(cluster.s3cmd(&["mb", "s3://tools"]).output()?, "s3cmd mb")?;
    check(
        cluster
            .s3cmd(&["put", file.to_str().unwrap(), "s3://tools/s3cmd/payload.bin"])
            .output()?,
        "s3cmd put",
    )?;
    let ls = check(cluster.s3cmd(&["ls", "s3://tools/s3cmd/"]).output()?, "s3cmd ls")?;
    assert!(ls.contains("s3://tools/s3cmd/payload.bin"), "{ls}");
    let got = work.join("s3cmd.back");
    check(
        cluster
            .s3cmd(&["get", "s3://tools/s3cmd/payload.bin", got.to_str().unwrap()])
            .output()?,
        "s3cmd get",
    )?;
    assert_eq!(sha256_file(&file)?, sha256_file(&got)?);
    check(
        cluster.s3cmd(&["del", "s3://tools/s3cmd/payload.bin"]).output()?,
        "s3cmd del",
    )?;
    let ls = check(
        cluster.s3cmd(&["ls", "s3://tools/s3cmd/"]).output()?,
        "s3cmd ls after del",
    )?;
    assert!(!ls.contains("payload.bin"), "{ls}");

    // rclone: copy a tree up, list, check (MD5 against ETags), copy back, delete.
    let tree = work.join("tree");
    fs::create_dir_all(tree.join("sub"))?;
    for i in 0..20 {
        fs::write(
            tree.join(format!("f{i}.txt")),
            format!("rclone {i}\n").repeat(100 * i + 1),
        )?;
    }
    fs::copy(&file, tree.join("sub/payload.bin"))?;
    check(
        cluster
            .rclone(&["copy", tree.to_str().unwrap(), "bfs:tools/rclone"])
            .output()?,
        "rclone copy",
    )?;
    let ls = check(cluster.rclone(&["ls", "bfs:tools/rclone"]).output()?, "rclone ls")?;
    assert_eq!(ls.lines().count(), 21, "{ls}");
    let out = cluster
        .rclone(&["check", tree.to_str().unwrap(), "bfs:tools/rclone"])
        .output()?;
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rclone check: {report}");
    assert!(report.contains("0 differences found"), "{report}");
    assert!(!report.contains("hashes could not be checked"), "{report}");
    let back = work.join("tree.back");
    check(
        cluster
            .rclone(&["copy", "bfs:tools/rclone", back.to_str().unwrap()])
            .output()?,
        "rclone copy back",
    )?;
    check(
        std::process::Command::new("diff")
            .arg("-r")
            .arg(&tree)
            .arg(&back)
            .output()?,
        "diff -r",
    )?;
    check(
        cluster.rclone(&["purge", "bfs:tools/rclone"]).output()?,
        "rclone purge",
    )?;
    let ls = check(
        cluster.rclone(&["ls", "bfs:tools"]).output()?,
        "rclone ls after purge",
    )?;
    assert!(ls.trim().is_empty(), "{ls}");
    Ok(())
}
