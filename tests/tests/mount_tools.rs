//! Unmodified Unix tools on a real bucketfs mount, names at the edges, and
//! a random read/write/truncate exerciser checked across a remount.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use bucketfs_tests::tools::check;
use bucketfs_tests::Cluster;

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    check(cmd.output()?, what)
}

fn sh(dir: &Path, script: &str) -> Result<String> {
    run(
        Command::new("bash")
            .arg("-euo")
            .arg("pipefail")
            .arg("-c")
            .arg(script)
            .current_dir(dir),
        script,
    )
}

/// A real source tarball: the largest crate archive cargo downloaded.
fn source_tarball() -> Result<PathBuf> {
    let home = PathBuf::from(std::env::var_os("CARGO_HOME").unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cargo")
            .into()
    }));
    let mut best: Option<(u64, PathBuf)> = None;
    for registry in fs::read_dir(home.join("registry/cache"))? {
        for entry in fs::read_dir(registry?.path())? {
            let path = entry?.path();
            let len = fs::metadata(&path)?.len();
            if path.extension().is_some_and(|e| e == "crate")
                && len < (4 << 20)
                && best.as_ref().is_none_or(|(l, _)| len > *l)
            {
                best = Some((len, path));
            }
        }
    }
    best.map(|(_, p)| p)
        .context("no crate archive in the cargo cache")
}

#[test]
fn unix_tools_keep_the_data_exact() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://tools"])?;
    let mnt = cluster.dir.join("mnt");
    let _mount = cluster.mount("tools", &mnt)?;
    let local = cluster.dir.join("local");
    fs::create_dir_all(&local)?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");

    // cp -a keeps modes and times; diff -r finds nothing.
    run(
        Command::new("cp").arg("-a").arg(&src).arg(mnt.join("cpa")),
        "cp -a",
    )?;
    run(
        Command::new("diff").arg("-r").arg(&src).arg(mnt.join("cpa")),
        "diff -r after cp -a",
    )?;
    let want = fs::metadata(src.join("lib.rs"))?;
    let got = fs::metadata(mnt.join("cpa/lib.rs"))?;
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (got.mode(), got.mtime()),
        (want.mode(), want.mtime()),
        "cp -a kept mode and mtime"
    );

    // tar -x of a real source tarball, compared with the same extraction on local disk.
    let tarball = source_tarball()?;
    run(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&local),
        "tar -x local",
    )?;
    fs::create_dir(mnt.join("untar"))?;
    run(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(mnt.join("untar")),
        "tar -x on the mount",
    )?;
    run(
        Command::new("diff").arg("-r").arg(&local).arg(mnt.join("untar")),
        "diff -r after tar -x",
    )?;

    // rsync -a twice: the second run transfers nothing.
    run(
        Command::new("rsync")
            .arg("-a")
            .arg(format!("{}/", local.display()))
            .arg(mnt.join("rsync")),
        "rsync 1",
    )?;
    let second = run(
        Command::new("rsync")
            .arg("-a")
            .arg("--stats")
            .arg(format!("{}/", local.display()))
            .arg(mnt.join("rsync")),
        "rsync 2",
    )?;
    assert!(
        second.contains("Number of regular files transferred: 0"),
        "{second}"
    );
    run(
        Command::new("diff").arg("-r").arg(&local).arg(mnt.join("rsync")),
        "diff -r after rsync",
    )?;

    // git in a repository on the mount.
    fs::create_dir(mnt.join("repo"))?;
    let repo = mnt.join("repo");
    let log = sh(
        &repo,
        "git init -q -b main . && cp -r ../cpa/* . && git add -A \
         && git -c user.name=t -c user.email=t@e commit -qm first \
         && echo change >> lib.rs && git -c user.name=t -c user.email=t@e commit -qam second \
         && git checkout -q HEAD~1 -- lib.rs && git status --short && git checkout -q main -- lib.rs \
         && git checkout -q -b side && git checkout -q main && git gc -q && git fsck && git log --oneline",
    )?;
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("first") || l.contains("second"))
            .count(),
        2,
        "{log}"
    );

    // sqlite3: 10,000 rows, then an integrity check.
    let out = sh(
        &mnt,
        "sqlite3 db.sqlite 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);' \
         && sqlite3 db.sqlite 'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 10000) \
            INSERT INTO t(v) SELECT hex(randomblob(32)) FROM n;' \
         && sqlite3 db.sqlite 'SELECT count(*) FROM t; PRAGMA integrity_check;'",
    )?;
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["10000", "ok"],
        "{out}"
    );

    // make of a small C project.
    fs::create_dir(mnt.join("cproj"))?;
    fs::write(mnt.join("cproj/main.c"), "#include <stdio.h>\nint add(int, int);\nint main(void) { printf(\"%d\\n\", add(2, 3)); return 0; }\n")?;
    fs::write(
        mnt.join("cproj/add.c"),
        "int add(int a, int b) { return a + b; }\n",
    )?;
    fs::write(
        mnt.join("cproj/Makefile"),
        "prog: main.o add.o\n\tcc -o $@ $^\n%.o: %.c\n\tcc -c $<\n",
    )?;
    assert_eq!(sh(&mnt.join("cproj"), "make -s && ./prog")?.trim(), "5");

    // find, du, ls -lR.
    let found = sh(&mnt, "find untar -type f | wc -l")?;
    let local_count = sh(&local, "find . -type f | wc -l")?;
    assert_eq!(found.trim(), local_count.trim());
    assert!(!sh(&mnt, "du -s untar")?.trim().is_empty());
    let ls = sh(&mnt, "ls -lR cpa")?;
    assert!(ls.contains("lib.rs") && ls.contains("-rw-"), "{ls}");

    // mv of a directory holding 1,000 files.
    fs::create_dir(mnt.join("many"))?;
    sh(&mnt, "for i in $(seq 1 1000); do echo $i > many/f$i; done")?;
    run(
        Command::new("mv").arg(mnt.join("many")).arg(mnt.join("moved")),
        "mv of 1,000 files",
    )?;
    assert_eq!(fs::read_dir(mnt.join("moved"))?.count(), 1000);
    assert_eq!(fs::read_to_string(mnt.join("moved/f777"))?, "777\n");
    assert!(!mnt.join("many").exists());
    Ok(())
}

#[test]
fn names_at_the_edges() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://names"])?;
    // Keys that are no file name, written by another S3 client.
    let scratch = cluster.dir.join("x.txt");
    fs::write(&scratch, "x")?;
    for key in ["odd/a//b", "odd/./dot", "odd/ok"] {
        cluster.aws_ok(&[
            "s3api",
            "put-object",
            "--bucket",
            "names",
            "--key",
            key,
            "--body",
            scratch.to_str().unwrap(),
        ])?;
    }
    let mnt = cluster.dir.join("mnt");
    let _mount = cluster.mount("names", &mnt)?;

    fs::write(mnt.join("n".repeat(255)), "255")?;
    assert_eq!(fs::read_to_string(mnt.join("n".repeat(255)))?, "255");
    let err = fs::write(mnt.join("n".repeat(256)), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(nix::errno::Errno::ENAMETOOLONG as i32));
    for name in ["with space", "new\nline", "ünïcødé ✓", "tab\there", "-dash"] {
        fs::write(mnt.join(name), name)?;
        assert_eq!(fs::read_to_string(mnt.join(name))?, name);
    }
    let names: Vec<String> = fs::read_dir(&mnt)?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for name in ["with space", "new\nline", "ünïcødé ✓"] {
        assert!(names.contains(&name.to_string()), "{names:?}");
    }
    // The keys round-trip to S3 as written.
    let listing = cluster.aws_ok(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        "names",
        "--query",
        "Contents[].Key",
    ])?;
    assert!(
        listing.contains("ünïcødé ✓") || listing.contains("\\u00fcn"),
        "{listing}"
    );

    // Invalid names are skipped, with a warning, not a crash.
    // `odd/./` names no directory; `odd/a/` does, but its `odd/a//` names nothing in it.
    let mut odd: Vec<String> = fs::read_dir(mnt.join("odd"))?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    odd.sort();
    assert_eq!(odd, ["a", "ok"]);
    assert_eq!(fs::read_dir(mnt.join("odd/a"))?.count(), 0);
    let log = fs::read_to_string(cluster.log_path("bucketfs-names-mnt"))?;
    assert!(log.contains("not a valid file name"), "{log}");
    assert!(mnt.join("odd/ok").is_file());
    Ok(())
}

#[test]
fn random_io_matches_a_model_across_remounts() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://fsx"])?;
    let mnt = cluster.dir.join("mnt");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fsx.py");
    let model = cluster.dir.join("fsx.model");
    let mount = cluster.mount("fsx", &mnt)?;
    let out = run(
        Command::new("python3")
            .arg(&script)
            .arg(mnt.join("fsx.bin"))
            .args(["600", "7"])
            .arg("--model")
            .arg(&model),
        "fsx",
    )?;
    println!("{out}");
    // fio's own verifier over random writes (it saves its verify state in
    // its working directory).
    let fio = run(
        Command::new("fio")
            .current_dir(&cluster.dir)
            .args([
                "--name=verify",
                "--rw=randwrite",
                "--bs=4k",
                "--size=48m",
                "--ioengine=psync",
            ])
            .args([
                "--verify=crc32c",
                "--do_verify=1",
                "--verify_fatal=1",
                "--randrepeat=1",
            ])
            .arg(format!("--filename={}", mnt.join("fio.bin").display())),
        "fio write+verify",
    )?;
    assert!(!fio.contains("verify failed"), "{fio}");
    drop(mount);
    bucketfs_tests::wait_until("unmounted", std::time::Duration::from_secs(10), || {
        !bucketfs_tests::is_mounted(&mnt)
    })?;

    // After a remount everything reads back the same.
    let _again = cluster.mount("fsx", &mnt)?;
    run(
        Command::new("python3")
            .arg(&script)
            .arg(mnt.join("fsx.bin"))
            .args(["0", "0"])
            .arg("--model")
            .arg(&model)
            .arg("--verify-only"),
        "fsx verify after remount",
    )?;
    run(
        Command::new("fio")
            .current_dir(&cluster.dir)
            .args([
                "--name=verify",
                "--rw=randwrite",
                "--bs=4k",
                "--size=48m",
                "--ioengine=psync",
            ])
            .args([
                "--verify=crc32c",
                "--verify_only",
                "--verify_fatal=1",
                "--randrepeat=1",
            ])
            .arg(format!("--filename={}", mnt.join("fio.bin").display())),
        "fio verify after remount",
    )?;
    Ok(())
}
