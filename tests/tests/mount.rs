//! bucketfs on a real FUSE mount over a real cluster, driven by unmodified tools.

use std::fs;
use std::process::Command;

use anyhow::Result;
use bucketfs_tests::tools::{check, random_file, sha256_file};
use bucketfs_tests::Cluster;

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    check(cmd.output()?, what)
}

#[test]
fn unmodified_tools_on_a_mounted_bucket() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://fsb"])?;
    let mnt = cluster.dir.join("mnt");
    let mount = cluster.mount("fsb", &mnt)?;
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");

    // cp -r of a source tree, diff -r, then a file larger than a chunk.
    run(
        Command::new("cp").arg("-r").arg(&src).arg(mnt.join("tree")),
        "cp -r",
    )?;
    run(
        Command::new("diff").arg("-r").arg(&src).arg(mnt.join("tree")),
        "diff -r",
    )?;
    let big = cluster.dir.join("big.bin");
    random_file(&big, 20 << 20, 11)?;
    run(Command::new("cp").arg(&big).arg(mnt.join("big.bin")), "cp big")?;
    assert_eq!(sha256_file(&mnt.join("big.bin"))?, sha256_file(&big)?);

    // What the mount wrote is ordinary S3 objects.
    let listing = cluster.aws_ok(&["s3", "ls", "--recursive", "s3://fsb/"])?;
    assert!(
        listing.contains("tree/lib.rs") && listing.contains("big.bin"),
        "{listing}"
    );

    // mkdir, appends, overwrite, rename of a whole directory, rmdir, rm -rf.
    fs::create_dir(mnt.join("empty"))?;
    assert!(mnt.join("empty").is_dir());
    fs::write(mnt.join("note.txt"), "one\n")?;
    fs::OpenOptions::new()
        .append(true)
        .open(mnt.join("note.txt"))?
        .write_all_str("two\n")?;
    assert_eq!(fs::read_to_string(mnt.join("note.txt"))?, "one\ntwo\n");
    run(
        Command::new("mv").arg(mnt.join("tree")).arg(mnt.join("moved")),
        "mv dir",
    )?;
    run(
        Command::new("diff").arg("-r").arg(&src).arg(mnt.join("moved")),
        "diff -r after mv",
    )?;
    assert!(!mnt.join("tree").exists());
    let err = fs::remove_dir(mnt.join("moved")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc_enotempty()));
    fs::remove_dir(mnt.join("empty"))?;
    run(Command::new("rm").arg("-rf").arg(mnt.join("moved")), "rm -rf")?;
    let mut names: Vec<String> = fs::read_dir(&mnt)?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["big.bin", "note.txt"]);
    assert_eq!(fs::read_dir(&mnt)?.count(), 2);

    // Names: 255 bytes work, 256 get ENAMETOOLONG.
    fs::write(mnt.join("n".repeat(255)), "x")?;
    let err = fs::write(mnt.join("n".repeat(256)), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(36), "ENAMETOOLONG");

    // bucketfs umount; a new mount sees the same files.
    run(
        Command::new(bucketfs_tests::bin_dir().join("bucketfs"))
            .arg("umount")
            .arg(&mnt),
        "umount",
    )?;
    drop(mount);
    let _again = cluster.mount("fsb", &mnt)?;
    assert_eq!(fs::read_to_string(mnt.join("note.txt"))?, "one\ntwo\n");
    assert_eq!(sha256_file(&mnt.join("big.bin"))?, sha256_file(&big)?);
    Ok(())
}

fn libc_enotempty() -> i32 {
    39
}

trait WriteStr {
    fn write_all_str(&mut self, s: &str) -> std::io::Result<()>;
}

impl WriteStr for fs::File {
    fn write_all_str(&mut self, s: &str) -> std::io::Result<()> {
        std::io::Write::write_all(self, s.as_bytes())
    }
}
