//! O_DIRECT reads and writes, writable shared mmap, fallocate's modes and
//! sparse files on the mount (`tests/scripts/posix_io.py`), checked again
//! after a remount and through the AWS CLI.

use anyhow::Result;
use bucketfs_tests::tools::check;
use bucketfs_tests::Cluster;

#[test]
fn direct_io_shared_mmap_fallocate_and_sparse_files() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://posixio"])?;
    let mnt = cluster.dir.join("mnt");
    let mount = cluster.mount("posixio", &mnt)?;
    let dir = mnt.to_str().expect("utf-8 path");
    cluster.run_script("posix_io.py", &["write", dir])?;
    drop(mount);
    let _mount = cluster.mount("posixio", &mnt)?;
    cluster.run_script("posix_io.py", &["check", dir])?;
    // The store has the same bytes as the mount.
    let copy = cluster.dir.join("falloc");
    cluster.aws_ok(&[
        "s3",
        "cp",
        "s3://posixio/falloc",
        copy.to_str().expect("utf-8 path"),
    ])?;
    let out = check(
        std::process::Command::new("cmp")
            .arg(&copy)
            .arg(mnt.join("falloc"))
            .output()?,
        "cmp",
    )?;
    assert!(out.is_empty(), "{out}");
    Ok(())
}
