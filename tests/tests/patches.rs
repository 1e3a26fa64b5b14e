//! Small writes cost their size: a mounted file's small changes are
//! committed as patches (the router's `bucketfs-patch` extension), which
//! other clients read as ordinary objects.

use std::fs;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use anyhow::Result;
use bucketfs_tests::tools::random_file;
use bucketfs_tests::{wait_until, Cluster};
use sha2::{Digest, Sha256};

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The most pieces any 8 MiB part of `key`'s current chunk map has.
fn most_pieces_per_part(cluster: &Cluster, bucket: &str, key: &str) -> Result<usize> {
    let part = 8u64 << 20;
    tokio::runtime::Runtime::new()?.block_on(async {
        let meta = router::meta::Meta::connect_lazy(&cluster.database_url())?;
        let bucket = meta.bucket_uncached(bucket).await?;
        let version = meta.version(&bucket, key, None).await?;
        let map = meta.piece_refs(version.id).await?;
        Ok(router::chunk_map::most_pieces_per_part(&map, part))
    })
}

#[test]
fn a_thousand_small_patches_read_back_everywhere() -> Result<()> {
    let cluster = Cluster::start_with_router_args(&["--worker-interval-secs", "1"])?;
    cluster.aws_ok(&["s3", "mb", "s3://patch"])?;
    let mnt = cluster.dir.join("mnt");
    let _mount = cluster.mount("patch", &mnt)?;
    let size = 64u64 << 20;
    let source = cluster.dir.join("base.bin");
    random_file(&source, size, 11)?;
    fs::copy(&source, mnt.join("db.bin"))?;
    let mut model = fs::read(&source)?;

    // 1,000 commits of 100 bytes each, at random places, each fsynced.
    let before = cluster.routers_metric("bucketfs_router_bytes_in_total");
    let file = fs::OpenOptions::new().write(true).open(mnt.join("db.bin"))?;
    let mut rng = bucketfs_common::testing::Xorshift::new(0x2545_f491_4f6c_dd1d);
    for i in 0..1_000u64 {
        let offset = rng.below(size - 100);
        let data = [(i % 251) as u8; 100];
        file.write_all_at(&data, offset)?;
        model[offset as usize..offset as usize + 100].copy_from_slice(&data);
        file.sync_data()?;
    }
    drop(file);
    let sent = cluster.routers_metric("bucketfs_router_bytes_in_total") - before;
    println!("1,000 patches of 100 bytes sent {sent} bytes to the routers");
    // Each commit sends its 4 KiB block or two, not its 8 MiB part.
    assert!(sent <= 1_000 * 8192, "sent {sent} bytes");

    // The AWS CLI reads an ordinary object with exactly those bytes.
    let got = cluster.dir.join("got.bin");
    cluster.s3_cp("s3://patch/db.bin", &got)?;
    assert_eq!(sha(&fs::read(&got)?), sha(&model));
    // So does a second mount.
    let other = cluster.dir.join("other");
    let second = cluster.mount("patch", &other)?;
    assert_eq!(sha(&fs::read(other.join("db.bin"))?), sha(&model));
    drop(second);

    // Patches fragment the map; once the file is quiet the worker compacts
    // it to at most 2 pieces per part, and the bytes stay the same.
    let fragmented = most_pieces_per_part(&cluster, "patch", "db.bin")?;
    println!("before compaction: up to {fragmented} pieces per 8 MiB part");
    assert!(fragmented > 2);
    wait_until("compaction", Duration::from_secs(60), || {
        most_pieces_per_part(&cluster, "patch", "db.bin").is_ok_and(|n| n <= 2)
    })?;
    fs::remove_file(&got)?;
    cluster.s3_cp("s3://patch/db.bin", &got)?;
    assert_eq!(sha(&fs::read(&got)?), sha(&model));
    let _third = cluster.mount("patch", &other)?;
    assert_eq!(sha(&fs::read(other.join("db.bin"))?), sha(&model));
    Ok(())
}

#[test]
fn a_patch_over_a_concurrent_put_fails_cleanly() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://race"])?;
    let mnt = cluster.dir.join("mnt");
    let _mount = cluster.mount("race", &mnt)?;
    let (ours, theirs) = (cluster.dir.join("ours.bin"), cluster.dir.join("theirs.bin"));
    random_file(&ours, 24 << 20, 1)?;
    random_file(&theirs, 24 << 20, 2)?;
    // Stored by S3, so no earlier handle of the mount can commit our
    // change early (a release, which the kernel sends late, commits the
    // inode's open state).
    cluster.s3_cp(&ours, "s3://race/f.bin")?;

    // The file is opened and written by a child process of its own: the
    // other tests in this process spawn processes, and a child forked while
    // this process held the file open would close it on exec, a FUSE flush
    // that commits the change before the other client's PUT.
    let url = cluster.presigned("put_object", "race", "f.bin")?;
    let script = "import os, sys\n\
                  fd = os.open(sys.argv[1], os.O_WRONLY)\n\
                  os.pwrite(fd, b'a small change', 12 << 20)\n\
                  print('written', flush=True)\n\
                  sys.stdin.readline()\n\
                  try:\n    os.fdatasync(fd)\n    print('synced')\n\
                  except OSError as e:\n    print('errno', e.errno)\n";
    let mut writer = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(mnt.join("f.bin"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut said = std::io::BufReader::new(writer.stdout.take().expect("piped"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut said, &mut line)?;
    assert_eq!(line.trim(), "written");
    // Another client replaces the object before the change is committed.
    let body = fs::read(&theirs)?;
    let status = tokio::runtime::Runtime::new()?.block_on(async {
        reqwest::Client::new()
            .put(&url)
            .body(body)
            .send()
            .await
            .map(|r| r.status())
    })?;
    assert!(status.is_success(), "{status}");
    // The patch is refused (its base is gone) and the whole file cannot be
    // rebuilt from a base that no longer exists: fsync reports ESTALE.
    std::io::Write::write_all(writer.stdin.as_mut().expect("piped"), b"sync\n")?;
    line.clear();
    std::io::BufRead::read_line(&mut said, &mut line)?;
    assert_eq!(
        line.trim(),
        format!("errno {}", nix::libc::ESTALE),
        "the commit cannot land"
    );
    writer.wait()?;
    // The object is the other client's, whole: never a mix.
    let got = cluster.dir.join("got.bin");
    cluster.s3_cp("s3://race/f.bin", &got)?;
    assert_eq!(sha(&fs::read(&got)?), sha(&fs::read(&theirs)?));
    Ok(())
}
