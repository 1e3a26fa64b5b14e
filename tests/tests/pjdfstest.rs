//! pjdfstest, the POSIX conformance suite, on a real bucketfs mount. The
//! cases bucketfs cannot pass are listed, with their reasons, in
//! tests/pjdfstest-expected-failures.txt; anything else failing (or one of
//! those passing) fails the test.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use anyhow::{bail, Context, Result};
use bucketfs_tests::Cluster;

#[test]
fn pjdfstest_passes_except_for_documented_gaps() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://pjd"])?;
    let mnt = cluster.dir.join("mnt");
    // Attributes uncached: pjdfstest checks ctime and mtime right after changes.
    let mount = cluster.mount_with("pjd", &mnt, &["--allow-other", "--attr-ttl", "0"])?;
    run_suite(&cluster, &mnt.join("pjd"))?;
    drop(mount);
    // Write-back (close and unlink return before the store has the change)
    // must look the same from the mount.
    let _mount = cluster.mount_with(
        "pjd",
        &mnt,
        &["--allow-other", "--attr-ttl", "0", "--write-back", "64"],
    )?;
    // As short a name as the first run's: a unix socket's path has at most
    // 107 bytes, and pjdfstest binds sockets two random names deep.
    run_suite(&cluster, &mnt.join("pjw"))
}

/// Runs pjdfstest in `work` (made here) and checks its verdicts.
fn run_suite(cluster: &Cluster, work: &std::path::Path) -> Result<()> {
    let pjdfstest = which("pjdfstest")
        .context("pjdfstest is not installed: `make test` runs `cargo install pjdfstest`")?;
    fs::create_dir(work)?;
    fs::set_permissions(work, fs::Permissions::from_mode(0o777))?;

    let expected: Vec<String> = include_str!("../pjdfstest-expected-failures.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| format!("{l:?}"))
        .collect();
    let config = cluster.dir.join("pjdfstest.toml");
    fs::write(
        &config,
        format!(
            "[features]\nposix_fallocate = {{}}\nutimensat = {{}}\nutime_now = {{}}\nrename_ctime = {{}}\n\
             [settings]\nnaptime = 0.01\nallow_remount = false\nexpected_failures = [{}]\n\
             [dummy_auth]\nentries = [[\"nobody\", \"nogroup\"], [\"tests\", \"tests\"]]\n",
            expected.join(", ")
        ),
    )?;
    let out = Command::new(pjdfstest)
        .arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(work)
        .current_dir(work)
        .env("NO_COLOR", "1")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Per group: passed, expected failures, skipped.
    let mut groups: BTreeMap<String, [u32; 3]> = BTreeMap::new();
    let mut unexpected = Vec::new();
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(result)) = (words.next(), words.last()) else {
            continue;
        };
        let Some((group, _)) = name.split_once("::") else {
            continue;
        };
        let counts = groups.entry(group.to_string()).or_default();
        match result {
            "ok" => counts[0] += 1,
            "skipped" => counts[2] += 1,
            "expected" => counts[1] += 1, // "failed as expected"
            "FAILED" | "UNEXPECTEDLY" => unexpected.push(name.to_string()),
            _ => {}
        }
    }
    println!("group: passed / failed (expected) / skipped");
    for (group, [ok, failed, skipped]) in &groups {
        println!("{group}: {ok} / {failed} / {skipped}");
    }
    if !out.status.success() || !unexpected.is_empty() {
        bail!(
            "pjdfstest in {} failed ({}); unexpected failures: {unexpected:?}\n{stdout}\n{}",
            work.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        groups.values().map(|c| c[0]).sum::<u32>() > 150,
        "too few cases ran:\n{stdout}"
    );
    Ok(())
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    let home = std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo/bin"));
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(home)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
