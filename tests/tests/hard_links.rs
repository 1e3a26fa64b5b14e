//! Hard links on the mount: names of one file are a link group in the
//! store (every write through any name gives all of them the new version),
//! one inode with its link count on the mount, and ordinary objects for
//! S3 clients.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use bucketfs_tests::Cluster;

fn ino_links(path: &Path) -> Result<(u64, u64)> {
    let meta = fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    Ok((meta.ino(), meta.nlink()))
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `du -sbc DIRS...`'s total, in bytes.
fn du_total(dirs: &[&Path]) -> Result<u64> {
    let out = run(Command::new("du").arg("-sbc").args(dirs))?;
    let total = out.lines().last().context("du printed nothing")?;
    Ok(total.split_whitespace().next().unwrap_or("").parse()?)
}

#[test]
fn hard_links_share_one_file_across_names_mounts_and_clients() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://links"])?;
    let mnt = cluster.dir.join("mnt");
    let mount = cluster.mount_with("links", &mnt, &["--attr-ttl", "0"])?;

    // ln a b: one inode, two names, nlink 2 on both.
    fs::write(mnt.join("a"), b"first version\n")?;
    fs::create_dir(mnt.join("dir"))?;
    fs::hard_link(mnt.join("a"), mnt.join("dir/b"))?;
    let (ino_a, links_a) = ino_links(&mnt.join("a"))?;
    let (ino_b, links_b) = ino_links(&mnt.join("dir/b"))?;
    assert_eq!((ino_a, links_a), (ino_b, 2), "a and dir/b after ln");
    assert_eq!(links_b, 2);

    // A write through a is read back through b: here, after a remount and
    // on a second mount.
    fs::OpenOptions::new()
        .append(true)
        .open(mnt.join("a"))?
        .write_all(b"appended through a\n")?;
    let want = b"first version\nappended through a\n".to_vec();
    assert_eq!(fs::read(mnt.join("dir/b"))?, want, "dir/b on the same mount");
    drop(mount);
    let mount = cluster.mount_with("links", &mnt, &["--attr-ttl", "0"])?;
    assert_eq!(fs::read(mnt.join("dir/b"))?, want, "dir/b after a remount");
    assert_eq!(ino_links(&mnt.join("a"))?, ino_links(&mnt.join("dir/b"))?);
    assert_eq!(ino_links(&mnt.join("a"))?.1, 2);
    let other = cluster.dir.join("other");
    let second = cluster.mount_with("links", &other, &["--attr-ttl", "0"])?;
    fs::write(other.join("dir/b"), b"rewritten through b on the second mount\n")?;
    let want = b"rewritten through b on the second mount\n".to_vec();
    assert_eq!(fs::read(mnt.join("a"))?, want, "a on the first mount");

    // Both keys are ordinary objects with the same bytes.
    let got_a = cluster.s3_cp("s3://links/a", "-")?;
    let got_b = cluster.s3_cp("s3://links/dir/b", "-")?;
    assert_eq!((got_a.as_bytes(), got_b.as_bytes()), (&want[..], &want[..]));

    // chmod through one name is every name's.
    fs::set_permissions(mnt.join("a"), std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    assert_eq!(fs::metadata(other.join("dir/b"))?.mode() & 0o777, 0o600);

    // rm a leaves b whole, with nlink 1, on both mounts.
    fs::remove_file(mnt.join("a"))?;
    assert_eq!(fs::read(mnt.join("dir/b"))?, want);
    assert_eq!(ino_links(&mnt.join("dir/b"))?.1, 1);
    assert_eq!(ino_links(&other.join("dir/b"))?.1, 1);
    ensure!(!other.join("a").exists(), "a still seen on the second mount");

    // A plain S3 PUT to one name takes it out of its group: the other
    // name keeps its bytes.
    fs::hard_link(mnt.join("dir/b"), mnt.join("c"))?;
    let put = cluster.dir.join("put");
    fs::write(&put, b"an S3 client's own object\n")?;
    cluster.s3_cp(&put, "s3://links/c")?;
    assert_eq!(fs::read(mnt.join("dir/b"))?, want, "dir/b after a PUT to c");
    assert_eq!(fs::read(mnt.join("c"))?, b"an S3 client's own object\n");
    assert_eq!(ino_links(&mnt.join("dir/b"))?.1, 1);
    assert_eq!(ino_links(&mnt.join("c"))?.1, 1);

    // Renaming a name keeps it in the group.
    fs::hard_link(mnt.join("dir/b"), mnt.join("d"))?;
    fs::rename(mnt.join("d"), mnt.join("e"))?;
    fs::write(mnt.join("e"), b"through the renamed name\n")?;
    assert_eq!(fs::read(other.join("dir/b"))?, b"through the renamed name\n");
    assert_eq!(ino_links(&other.join("e"))?.1, 2);

    // cp -al and rsync --link-dest make trees of links; du counts the
    // linked bytes once.
    let tree = mnt.join("tree");
    fs::create_dir_all(tree.join("sub"))?;
    let big = vec![7u8; 3 << 20];
    fs::write(tree.join("big"), &big)?;
    fs::write(tree.join("sub/small"), b"small file\n")?;
    run(Command::new("cp").arg("-al").arg(&tree).arg(mnt.join("copy")))?;
    assert_eq!(ino_links(&tree.join("big"))?, ino_links(&mnt.join("copy/big"))?);
    assert_eq!(ino_links(&mnt.join("copy/sub/small"))?.1, 2);
    let one = du_total(&[&tree])?;
    let both = du_total(&[&tree, &mnt.join("copy")])?;
    ensure!(
        both == one,
        "du counts linked bytes twice: {one} for one tree, {both} for both"
    );
    ensure!(one >= big.len() as u64, "du of the tree: {one}");

    run(Command::new("rsync")
        .arg("-a")
        .arg(format!("{}/", tree.display()))
        .arg(mnt.join("backup1")))?;
    fs::write(tree.join("sub/small"), b"changed since the first backup\n")?;
    run(Command::new("rsync")
        .arg("-a")
        .arg("--link-dest=../backup1")
        .arg(format!("{}/", tree.display()))
        .arg(mnt.join("backup2")))?;
    assert_eq!(
        ino_links(&mnt.join("backup1/big"))?.0,
        ino_links(&mnt.join("backup2/big"))?.0,
        "an unchanged file is a link to the first backup"
    );
    assert_eq!(fs::read(mnt.join("backup2/big"))?, big);
    assert_eq!(
        fs::read(mnt.join("backup2/sub/small"))?,
        b"changed since the first backup\n"
    );
    assert_eq!(fs::read(mnt.join("backup1/sub/small"))?, b"small file\n");

    // A directory's link count counts its subdirectories, here and, once
    // listed, on another mount.
    let nlink = |p: &Path| -> Result<u64> { Ok(fs::metadata(p)?.nlink()) };
    assert_eq!(nlink(&tree)?, 3, "tree and tree/sub");
    fs::create_dir(tree.join("sub2"))?;
    assert_eq!(nlink(&tree)?, 4, "after mkdir tree/sub2");
    fs::rename(tree.join("sub2"), mnt.join("copy/sub2"))?;
    assert_eq!((nlink(&tree)?, nlink(&mnt.join("copy"))?), (3, 4), "after mv");
    assert_eq!(fs::read_dir(other.join("copy"))?.count(), 3);
    assert_eq!(nlink(&other.join("copy"))?, 4, "copy on the second mount");

    drop(second);
    drop(mount);
    // Links, unlinks and rewrites of linked files kept the running totals
    // equal to a recount.
    if let Some(differ) = bucketfs_tests::tallies::mismatches(|sql| cluster.psql(sql))? {
        panic!("{differ}");
    }
    Ok(())
}
