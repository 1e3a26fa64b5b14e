//! The default mount lets close return before the upload (write-back),
//! keeping what it owes the store in a journal under its cache directory:
//! a daemon killed with closes (one with a new mode), an unlink and a mkdir still on
//! their way loses none of them; the next mount replays them, and a key
//! another client wrote meanwhile keeps that client's bytes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::{ensure, Result};
use bucketfs_tests::tools::daemon_pid;
use bucketfs_tests::{is_mounted, wait_until, Cluster};
use nix::sys::signal::Signal;

/// Files written while the store cannot take them.
const FILES: usize = 30;

fn body(i: usize) -> String {
    format!("file {i}\n").repeat(i + 1)
}

#[test]
fn a_killed_default_mount_loses_no_acknowledged_change() -> Result<()> {
    let mut cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://crash"])?;
    let src = cluster.dir.join("src.txt");
    for key in ["keep.txt", "gone.txt", "race.txt"] {
        fs::write(&src, format!("stored {key}\n"))?;
        cluster.aws_ok(&["s3", "cp", &src.to_string_lossy(), &format!("s3://crash/{key}")])?;
    }
    // Through router 2 alone, which is then stopped: nothing the mount
    // sends lands. Names are cached for a minute, so only the uploads wait.
    let mnt = cluster.dir.join("mnt");
    let endpoint = cluster.router_endpoint(2);
    let mount = cluster.mount_default_at(&endpoint, "crash", &mnt, &["--attr-ttl", "60"])?;
    ensure!(fs::read_dir(&mnt)?.count() == 3, "the mount lists the bucket");
    for key in ["keep.txt", "gone.txt", "race.txt"] {
        fs::metadata(mnt.join(key))?;
    }
    cluster.signal("router-2", Signal::SIGSTOP)?;

    for i in 0..FILES {
        let mut file = fs::File::create(mnt.join(format!("n{i:02}")))?;
        std::io::Write::write_all(&mut file, body(i).as_bytes())?;
        if i == 3 {
            // fchmod before the close: its mode is in the journaled close.
            // (A chmod after the close waits for an upload already under way,
            // which the stopped router holds; the model test covers that.)
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
    }
    fs::write(mnt.join("keep.txt"), "rewritten by the mount\n")?;
    fs::write(mnt.join("race.txt"), "rewritten by the mount\n")?;
    fs::remove_file(mnt.join("gone.txt"))?;
    fs::create_dir(mnt.join("dir"))?;
    fs::write(mnt.join("dir/inner"), "inside\n")?;
    let daemon = daemon_pid(&mnt)?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon as i32), Signal::SIGKILL)?;
    wait_until("the killed mount to go", Duration::from_secs(60), || {
        !is_mounted(&mnt)
    })?;
    drop(mount);
    // Its requests die with router 2; router 1 serves meanwhile.
    cluster.kill9("router-2")?;
    let router1 = cluster.router_endpoint(1);
    let ls = bucketfs_tests::tools::check(
        cluster.aws_at(&router1, &["s3", "ls", "s3://crash/"]).output()?,
        "ls",
    )?;
    ensure!(
        !ls.contains("n00") && ls.contains("gone.txt"),
        "changes landed before the crash: {ls}"
    );
    // Another client writes one of the keys after the mount's close.
    fs::write(&src, "written by another client\n")?;
    let mut cp = cluster.aws_at(
        &router1,
        &["s3", "cp", &src.to_string_lossy(), "s3://crash/race.txt"],
    );
    bucketfs_tests::tools::check(cp.output()?, "cp")?;

    // The next mount of the bucket (same endpoint, same cache directory)
    // replays.
    cluster.start_router(2)?;
    let _again = cluster.mount_default_at(&endpoint, "crash", &mnt, &[])?;
    let get = |key: &str| cluster.aws_ok(&["s3", "cp", &format!("s3://crash/{key}"), "-"]);
    for i in 0..FILES {
        ensure!(get(&format!("n{i:02}"))? == body(i), "n{i:02} after the replay");
    }
    let head = cluster.aws_ok(&["s3api", "head-object", "--bucket", "crash", "--key", "n03"])?;
    ensure!(head.contains(&format!("\"{}\"", 0o100600)), "n03's chmod: {head}");
    ensure!(get("keep.txt")? == "rewritten by the mount\n");
    ensure!(get("dir/inner")? == "inside\n");
    ensure!(fs::metadata(mnt.join("dir"))?.is_dir());
    ensure!(
        get("race.txt")? == "written by another client\n",
        "the later write stays"
    );
    let ls = cluster.aws_ok(&["s3", "ls", "s3://crash/"])?;
    ensure!(!ls.contains("gone.txt"), "the unlink after the replay: {ls}");
    Ok(())
}
