//! `cp` inside the mount: a whole-file `copy_file_range` becomes a copy by
//! reference on the router, so no bytes move; every other range falls back
//! to the kernel's own copy and is exact all the same.

use std::fs;
use std::process::Command;

use anyhow::{ensure, Result};
use bucketfs_tests::tools::{check, random_file, sha256_file};
use bucketfs_tests::Cluster;

#[test]
fn cp_of_a_large_file_moves_no_bytes_and_partial_copies_stay_exact() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://copies"])?;
    let mnt = cluster.dir.join("mnt");
    let _mount = cluster.mount("copies", &mnt)?;

    let big = mnt.join("big");
    random_file(&big, 1 << 30, 7)?;
    let want = sha256_file(&big)?;
    let before = cluster.routers_metric("bucketfs_router_bytes_in_total");
    check(
        Command::new("cp").arg(&big).arg(mnt.join("big-copy")).output()?,
        "cp",
    )?;
    let moved = cluster.routers_metric("bucketfs_router_bytes_in_total") - before;
    println!("cp of 1 GiB inside the mount sent {moved} bytes to the routers");
    ensure!(moved < 1 << 20, "cp sent {moved} bytes");
    assert_eq!(sha256_file(&mnt.join("big-copy"))?, want);
    let head = cluster.aws_ok(&["s3api", "head-object", "--bucket", "copies", "--key", "big-copy"])?;
    assert!(head.contains("\"ContentLength\": 1073741824"), "{head}");

    // The copy is its own file: writing it leaves the original alone.
    fs::write(mnt.join("small"), b"the original bytes")?;
    check(
        Command::new("cp")
            .arg(mnt.join("small"))
            .arg(mnt.join("small-copy"))
            .output()?,
        "cp",
    )?;
    fs::write(mnt.join("small-copy"), b"changed")?;
    assert_eq!(fs::read(mnt.join("small"))?, b"the original bytes");
    assert_eq!(fs::read(mnt.join("small-copy"))?, b"changed");

    // Ranges the router cannot copy by reference (into the middle of a
    // file, from a file with unsaved writes) are copied by the kernel.
    let script = r#"
import os, sys
d = sys.argv[1]
src = os.open(f"{d}/small", os.O_RDONLY)
dst = os.open(f"{d}/small-copy", os.O_WRONLY)
assert os.copy_file_range(src, dst, 8, 4, 4) == 8
os.close(dst)
w = os.open(f"{d}/unsaved", os.O_CREAT | os.O_RDWR, 0o644)
os.write(w, b"not committed yet")
out = os.open(f"{d}/unsaved-copy", os.O_CREAT | os.O_WRONLY, 0o644)
n = os.copy_file_range(w, out, 100, 0, 0)
assert n == 17, n
os.close(out)
os.close(w)
os.close(src)
print("OK")
"#;
    let out = check(
        Command::new("python3").arg("-c").arg(script).arg(&mnt).output()?,
        "copy_file_range",
    )?;
    assert_eq!(out.trim(), "OK");
    assert_eq!(fs::read(mnt.join("small-copy"))?, b"chanoriginal");
    assert_eq!(fs::read(mnt.join("unsaved-copy"))?, b"not committed yet");
    Ok(())
}
