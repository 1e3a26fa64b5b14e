//! The change feed: a close on one mount is seen by another within a
//! second, though the second caches attributes and names for a minute;
//! and a mount's own changes, echoed back a moment later, undo nothing.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bucketfs_tests::Cluster;

/// Polls `seen` until it holds; how long that took, at most `limit`.
fn time_until(limit: Duration, mut seen: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if seen() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

fn size(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.len())
}

#[test]
fn another_mounts_changes_show_within_a_second() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://feed"])?;
    let (a_dir, b_dir) = (cluster.dir.join("a"), cluster.dir.join("b"));
    let _a = cluster.mount_with("feed", &a_dir, &["--attr-ttl", "60"])?;
    let _b = cluster.mount_with("feed", &b_dir, &["--attr-ttl", "60"])?;
    let limit = Duration::from_secs(1);

    // A new name: B has looked it up (and cached its absence) first.
    ensure!(!b_dir.join("new").exists());
    fs::write(a_dir.join("new"), b"made on A")?;
    let took = time_until(limit, || b_dir.join("new").exists());
    ensure!(
        took.is_some(),
        "a file made on A did not show on B within {limit:?}"
    );
    assert_eq!(fs::read(b_dir.join("new"))?, b"made on A");

    // 200 closes on A, each seen in B's stat (cached for a minute) and read.
    let (on_a, on_b) = (a_dir.join("f"), b_dir.join("f"));
    fs::write(&on_a, b"0")?;
    time_until(limit, || size(&on_b) == Some(1));
    let mut times = Vec::new();
    for i in 1..=200u64 {
        let body = "x".repeat(i as usize + 1);
        fs::write(&on_a, &body)?;
        let took = time_until(limit, || size(&on_b) == Some(i + 1))
            .ok_or_else(|| anyhow::anyhow!("change {i} did not show on B within {limit:?}"))?;
        times.push(took);
        if i % 50 == 0 {
            assert_eq!(fs::read_to_string(&on_b)?, body, "B read change {i}");
        }
    }
    times.sort();
    let (p50, p99) = (times[times.len() / 2], times[times.len() * 99 / 100]);
    println!(
        "propagation of a close from mount A to a stat on mount B over 200 changes: p50 {p50:?}, p99 {p99:?}"
    );

    // A removal, seen in B's stat and in its listing of the directory.
    fs::remove_file(&on_a)?;
    let took = time_until(limit, || !on_b.exists());
    ensure!(took.is_some(), "a file removed on A stayed on B");
    let names: Vec<String> = fs::read_dir(&b_dir)?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    assert_eq!(names, ["new"], "B lists what A left");
    Ok(())
}

/// git in four repositories at once (it makes, renames and removes each
/// lock file many times a second), beside shells that make and remove a
/// file over and over, and shells that remove a tree, make its directory
/// again and work in it. The feed brings each change back to
/// the mount that made it a moment later, often after the name was made
/// again; listings run all the while. Before echoes and late listings were
/// kept from undoing later changes, about one repository in four failed
/// ("Unable to create '.git/packed-refs.lock': File exists"), four loops
/// of `: > lock; rm lock` failed within 150 rounds ("rm: cannot remove
/// 'lock': No such file or directory"), and shells lost their working
/// directory or could not make the directory again.
#[test]
fn names_made_again_at_once_stay_as_last_made() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://again"])?;
    let mnt = cluster.dir.join("mnt");
    let _mount = cluster.mount("again", &mnt)?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(&src)
        .arg(mnt.join("src"))
        .status()?;
    ensure!(copied.success(), "cp -r src");

    let git = "mkdir repo$N && cd repo$N && git init -q -b main . && cp -r ../src/* . && git add -A \
        && git -c user.name=t -c user.email=t@e commit -qm first \
        && echo change >> lib.rs && git -c user.name=t -c user.email=t@e commit -qam second \
        && git checkout -q HEAD~1 -- lib.rs && git status --short && git checkout -q main -- lib.rs \
        && git checkout -q -b side && git checkout -q main && git gc -q && git fsck && git log --oneline";
    let remake = "for k in 1 2 3 4 5; do rm -rf w$N; mkdir -p w$N; cp -r src w$N/x; rm -rf w$N; \
        mkdir w$N; cd w$N; sleep 0.2; /bin/pwd; touch f; cd ..; done";
    // A lock file's life at its quickest: made, closed, removed, again.
    let lock = "mkdir lock$N && cd lock$N && for i in $(seq 300); do : > lock; rm lock; done";
    let mut children = Vec::new();
    for n in 0..4 {
        for (what, script) in [("git", git), ("remake", remake), ("lock", lock)] {
            let child = Command::new("bash")
                .args(["-euo", "pipefail", "-c", script])
                .env("N", n.to_string())
                .current_dir(&mnt)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("{what} {n}"))?;
            children.push((format!("{what} {n}"), child));
        }
    }
    let mut failed = Vec::new();
    for (what, child) in children {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            failed.push(format!(
                "{what}: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    ensure!(failed.is_empty(), "{}", failed.join("\n"));
    for n in 0..4 {
        let log = fs::read_to_string(mnt.join(format!("repo{n}/.git/HEAD")))?;
        ensure!(log.trim() == "ref: refs/heads/main", "repo{n} HEAD: {log}");
        ensure!(mnt.join(format!("w{n}/f")).exists(), "w{n}/f is missing");
    }
    Ok(())
}
