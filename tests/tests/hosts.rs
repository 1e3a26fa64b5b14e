//! The cluster as separate hosts would run it: each storage node, router,
//! Postgres and ZooKeeper in a network namespace of its own with its own
//! address on a bridge, configured as an operator would (no loopback
//! shortcuts), and a bucket mounted from a client host.

use std::process::Command;

use anyhow::Result;
use bucketfs_tests::hosts::Hosts;
use bucketfs_tests::tools::check;

#[test]
fn a_cluster_of_hosts_serves_a_mount_on_another_host() -> Result<()> {
    let hosts = Hosts::start()?;
    check(hosts.aws(1, &["s3", "mb", "s3://hosts"]).output()?, "aws s3 mb")?;
    let mnt = hosts.dir.join("mnt");
    let _mount = hosts.mount("hosts", &mnt)?;

    // A tree with files of several sizes, a symlink and modes to keep.
    let tree = hosts.dir.join("tree");
    for d in ["a/b/c", "d"] {
        std::fs::create_dir_all(tree.join(d))?;
    }
    for (name, len) in [
        ("a/one", 0usize),
        ("a/b/two", 4096),
        ("a/b/c/three", 3 << 20),
        ("d/four", 9 << 20),
    ] {
        std::fs::write(
            tree.join(name),
            (0..len).map(|i| (i % 253) as u8).collect::<Vec<u8>>(),
        )?;
    }
    std::os::unix::fs::symlink("../a/b/two", tree.join("d/link"))?;
    check(
        Command::new("chmod").arg("0750").arg(tree.join("a/b")).output()?,
        "chmod",
    )?;
    check(
        Command::new("cp")
            .arg("-a")
            .arg(&tree)
            .arg(mnt.join("tree"))
            .output()?,
        "cp -a into the mount",
    )?;
    check(
        Command::new("diff")
            .arg("-r")
            .arg(&tree)
            .arg(mnt.join("tree"))
            .output()?,
        "diff -r",
    )?;
    // Through the other router too: the objects are in the store.
    let listing = check(
        hosts
            .aws(2, &["s3", "ls", "--recursive", "s3://hosts/"])
            .output()?,
        "aws s3 ls",
    )?;
    assert!(
        listing.contains("tree/d/four") && listing.contains("9437184"),
        "{listing}"
    );

    // Every service listens on its host's address or all of them, never
    // on loopback alone.
    assert!(
        hosts.listening("router1")?.iter().any(|a| a.ends_with(":9000")),
        "ss shows the router listening"
    );
    for host in hosts.names() {
        for addr in hosts.listening(&host)? {
            assert!(
                !addr.starts_with("127.") && !addr.starts_with("[::1]"),
                "{host} listens on {addr} only"
            );
        }
    }
    Ok(())
}
