//! Locks between mounts: `fcntl` and `flock` locks taken on one mount hold
//! against processes on another, a blocked F_SETLKW wakes when the holder
//! lets go, a killed daemon's locks end with their lease, and SQLite on two
//! mounts keeps one database consistent.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bucketfs_common::file_locks::LOCK_LEASE_SECS;
use bucketfs_tests::Cluster;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/locks.py")
}

/// `locks.py ARGS...` run to its end; its output.
fn locks(args: &[&str]) -> Result<String> {
    let out = Command::new("python3").arg(script()).args(args).output()?;
    ensure!(
        out.status.success(),
        "locks.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `locks.py ARGS...` started, with its output read line by line.
struct Running {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Running {
    fn start(args: &[&str]) -> Result<Running> {
        let mut child = Command::new("python3")
            .arg(script())
            .args(args)
            .stdout(Stdio::piped())
            .spawn()?;
        let out = BufReader::new(child.stdout.take().context("stdout")?);
        Ok(Running { child, out })
    }

    fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        self.out.read_line(&mut line)?;
        ensure!(!line.is_empty(), "locks.py ended early: {:?}", self.child.wait()?);
        Ok(line.trim().to_string())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn locks_hold_between_mounts_and_end_with_their_holder() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://locks"])?;
    let (a_dir, b_dir) = (cluster.dir.join("a"), cluster.dir.join("b"));
    let a = cluster.mount_with("locks", &a_dir, &["--attr-ttl", "60"])?;
    let _b = cluster.mount_with("locks", &b_dir, &["--attr-ttl", "60"])?;
    std::fs::write(a_dir.join("f"), b"locked file\n")?;
    let (on_a, on_b) = (a_dir.join("f"), b_dir.join("f"));
    let (on_a, on_b) = (on_a.to_str().unwrap(), on_b.to_str().unwrap());

    for how in ["fcntl", "flock"] {
        // A holds the lock: B can neither take it nor, for fcntl, miss it.
        let mut holder = Running::start(&["hold", on_a, "2", how])?;
        assert_eq!(holder.line()?, "locked");
        // A lets go 2 s after it said so; the clock starts here, not after
        // the checks below (each a process of its own, slow under load).
        let held = Instant::now();
        assert_eq!(locks(&["try", on_b, how])?, "busy", "{how}: B took A's lock");
        if how == "fcntl" {
            let seen = locks(&["getlk", on_b])?;
            ensure!(
                seen == format!("write {}", holder.child.id()),
                "F_GETLK on B: {seen}"
            );
        }
        // A blocked lock on B is granted once A lets go, not before.
        let mut waiter = Running::start(&["wait", on_b, how])?;
        assert_eq!(waiter.line()?, "got");
        let waited = held.elapsed();
        assert_eq!(holder.line()?, "released", "{how}");
        ensure!(
            waited >= Duration::from_millis(1500),
            "{how}: B's blocked lock was granted {waited:?} after A took it for 2 s"
        );
        drop(waiter);
        assert_eq!(locks(&["try", on_a, how])?, "got", "{how}: the lock stayed held");
    }
    assert_eq!(locks(&["ranges", on_b])?, "OK");

    // A killed daemon's locks end within the lease.
    let mut holder = Running::start(&["hold", on_a, "600", "fcntl"])?;
    assert_eq!(holder.line()?, "locked");
    let pid = bucketfs_tests::tools::daemon_pid(&a_dir)?;
    let killed = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    drop(holder);
    drop(a);
    let mut waiter = Running::start(&["wait", on_b, "fcntl"])?;
    assert_eq!(waiter.line()?, "got");
    let freed = killed.elapsed();
    println!("a killed daemon's lock was free after {freed:?} (lease {LOCK_LEASE_SECS} s)");
    ensure!(
        freed <= Duration::from_secs(LOCK_LEASE_SECS + 2),
        "the lock outlived its lease: {freed:?}"
    );
    Ok(())
}

#[test]
fn sqlite_on_two_mounts_counts_every_transaction() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://sqlite"])?;
    let (a_dir, b_dir) = (cluster.dir.join("a"), cluster.dir.join("b"));
    // Lookups uncached: SQLite checks for a journal by name before it
    // reads. (With the default TTLs, taking a lock applies the change feed
    // up to it, and 1,000 transactions take a third of the time, but about
    // one run in 25 ended with SQLITE_IOERR_DELETE_NOENT: see the notes.)
    let _a = cluster.mount_with("sqlite", &a_dir, &["--attr-ttl", "0"])?;
    let _b = cluster.mount_with("sqlite", &b_dir, &["--attr-ttl", "0"])?;
    let (db_a, db_b) = (a_dir.join("counter.db"), b_dir.join("counter.db"));
    let (db_a, db_b) = (db_a.to_str().unwrap(), db_b.to_str().unwrap());
    assert_eq!(locks(&["sqlite-init", db_a])?, "OK");
    let started = Instant::now();
    let mut runs = Vec::new();
    for db in [db_a, db_b] {
        runs.push(Running::start(&["sqlite", db, "500"])?);
    }
    for run in &mut runs {
        let said = run.line()?;
        if said != "OK" {
            bail!("an SQLite process said {said}");
        }
    }
    println!("1,000 transactions from two mounts took {:?}", started.elapsed());
    for db in [db_a, db_b] {
        assert_eq!(locks(&["sqlite-check", db])?, "1000 ok", "{db}");
    }
    Ok(())
}
