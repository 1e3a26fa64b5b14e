//! `make bench`: one suite of filesystem workloads against several targets
//! in the same run, so the ratios mean something on a shared, noisy machine.
//!
//! Targets: a local directory (the disk's limit), bindfs over it (the cost of
//! FUSE alone), bucketfs (the benchmarked write-back mount, and the default
//! mount as `bucketfs mount` makes it), s3fs and `rclone mount` on a bucket of the same
//! local cluster, and MooseFS (one master, three chunkservers, goal 3) in a
//! network namespace of its own (`moosefs.sh`). Workloads: fio sequential write and cold read, 4k random
//! reads (1 and 4 jobs) and writes, 4 KiB files created/statted/deleted, a
//! source tree untarred/`du`ed/removed, a `git clone`, and how soon a
//! second mount's stat shows a close (bucketfs, s3fs and MooseFS).
//!
//! `bench-fs --quick` shrinks every size for a run of a few minutes.
//! Results: `bench/results/<date>-<host>-fs.{md,json,png}`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use bucketfs_tests::tools::check;
use bucketfs_tests::Cluster;

use bucketfs_bench::fs_report::{chart, targets_met, Row, PEERS};
use bucketfs_bench::targets::{self, fio, sh, timed, Kind, Target};

const MIB: f64 = (1 << 20) as f64;

/// Sizes of one run.
struct Sizes {
    seq: &'static str,
    randwrite: &'static str,
    runtime: &'static str,
    files: usize,
    tree: &'static str,
}

const FULL: Sizes = Sizes {
    seq: "1g",
    randwrite: "256m",
    runtime: "20",
    files: 5000,
    tree: "/usr/include",
};

const QUICK: Sizes = Sizes {
    seq: "256m",
    randwrite: "64m",
    runtime: "6",
    files: 500,
    tree: "/usr/include/linux",
};

struct Suite {
    rows: Vec<Row>,
}

impl Suite {
    fn record(&mut self, workload: &str, unit: &'static str, higher: bool, target: &str, value: f64) {
        println!("  {target:9} {workload:34} {value:10.1} {unit}");
        match self.rows.iter_mut().find(|r| r.workload == workload) {
            Some(row) => {
                row.values.insert(target.to_string(), value);
            }
            None => self.rows.push(Row {
                workload: workload.to_string(),
                unit,
                higher_is_better: higher,
                values: BTreeMap::from([(target.to_string(), value)]),
            }),
        }
    }
}

fn run_target(
    suite: &mut Suite,
    t: &mut Target,
    cluster: &Cluster,
    sizes: &Sizes,
    tarball: &Path,
) -> Result<()> {
    let name = t.name;
    let file = t.dir.join("seq.bin");
    let filename = format!("--filename={}", file.display());
    let runtime = format!("--runtime={}", sizes.runtime);

    // Write rows are timed by the clock around fio, so that a close that
    // uploads (rclone's) counts, plus any upload still queued after it.
    let mut job = serde_json::Value::Null;
    let since = jiff::Timestamp::now();
    let secs = timed(|| {
        job = fio(&[
            filename.clone(),
            "--rw=write".into(),
            "--bs=1m".into(),
            format!("--size={}", sizes.seq),
            "--end_fsync=1".into(),
        ])?;
        Ok(())
    })? + t.settle_written(cluster, &file, since)?;
    let bytes = job["write"]["io_bytes"].as_f64().unwrap_or(0.0);
    suite.record("seq write 1M (MiB/s)", "MiB/s", true, name, bytes / secs / MIB);
    t.go_cold(cluster)?;
    let job = fio(&[
        filename.clone(),
        "--rw=read".into(),
        "--bs=1m".into(),
        format!("--size={}", sizes.seq),
    ])?;
    suite.record(
        "seq read 1M cold (MiB/s)",
        "MiB/s",
        true,
        name,
        job["read"]["bw_bytes"].as_f64().unwrap_or(0.0) / MIB,
    );
    for jobs in [1, 4] {
        t.go_cold(cluster)?;
        let job = fio(&[
            filename.clone(),
            "--rw=randread".into(),
            "--bs=4k".into(),
            format!("--size={}", sizes.seq),
            format!("--numjobs={jobs}"),
            "--time_based".into(),
            runtime.clone(),
        ])?;
        suite.record(
            &format!("4k rand read, {jobs} job(s) (IOPS)"),
            "IOPS",
            true,
            name,
            job["read"]["iops"].as_f64().unwrap_or(0.0),
        );
    }
    let rand_file = t.dir.join("rand.bin");
    let rand = format!("--filename={}", rand_file.display());
    let since = jiff::Timestamp::now();
    fio(&[
        rand.clone(),
        "--rw=write".into(),
        "--bs=1m".into(),
        format!("--size={}", sizes.randwrite),
        "--end_fsync=1".into(),
    ])?;
    t.settle_written(cluster, &rand_file, since)?;
    let mut job = serde_json::Value::Null;
    let since = jiff::Timestamp::now();
    let secs = timed(|| {
        job = fio(&[
            rand.clone(),
            "--rw=randwrite".into(),
            "--bs=4k".into(),
            format!("--size={}", sizes.randwrite),
            "--time_based".into(),
            runtime.clone(),
            "--end_fsync=1".into(),
        ])?;
        Ok(())
    })? + t.settle_written(cluster, &rand_file, since)?;
    let ios = job["write"]["total_ios"].as_f64().unwrap_or(0.0);
    suite.record("4k rand write (IOPS)", "IOPS", true, name, ios / secs);
    fs::remove_file(&file).ok();
    fs::remove_file(t.dir.join("rand.bin")).ok();

    // Small files.
    let small = t.dir.join("small");
    fs::create_dir_all(&small)?;
    let block = vec![0x61u8; 4096];
    let n = sizes.files;
    let since = jiff::Timestamp::now();
    let create = timed(|| {
        for i in 0..n {
            fs::write(small.join(format!("f{i:05}")), &block)?;
        }
        t.settle_written(cluster, &small, since).map(drop)
    })?;
    suite.record(
        "create 4 KiB files (files/s)",
        "files/s",
        true,
        name,
        n as f64 / create,
    );
    let stat = |suite: &mut Suite, label: &str| -> Result<()> {
        let secs = timed(|| {
            for i in 0..n {
                fs::metadata(small.join(format!("f{i:05}")))?;
            }
            Ok(())
        })?;
        suite.record(label, "stats/s", true, name, n as f64 / secs);
        Ok(())
    };
    stat(suite, "stat warm (stats/s)")?;
    t.go_cold(cluster)?;
    stat(suite, "stat cold (stats/s)")?;
    let delete = timed(|| {
        for i in 0..n {
            fs::remove_file(small.join(format!("f{i:05}")))?;
        }
        t.settle_deleted()
    })?;
    suite.record("delete files (files/s)", "files/s", true, name, n as f64 / delete);

    // A source tree.
    let tree = t.dir.join("tree");
    fs::create_dir_all(&tree)?;
    let since = jiff::Timestamp::now();
    let secs = timed(|| {
        sh(&format!("tar -xf {} -C {}", tarball.display(), tree.display()))?;
        t.settle_written(cluster, &tree, since).map(drop)
    })?;
    suite.record("tar -x source tree (s)", "s", false, name, secs);
    let secs = timed(|| sh(&format!("du -s {} >/dev/null", tree.display())))?;
    suite.record("du of the tree (s)", "s", false, name, secs);
    let secs = timed(|| {
        sh(&format!("rm -rf {}", tree.display()))?;
        t.settle_deleted()
    })?;
    suite.record("rm -rf of the tree (s)", "s", false, name, secs);

    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let clone = t.dir.join("clone");
    let since = jiff::Timestamp::now();
    let secs = timed(|| {
        sh(&format!(
            "git clone -q --no-hardlinks {} {}",
            repo.display(),
            clone.display()
        ))?;
        t.settle_written(cluster, &clone, since).map(drop)
    })?;
    suite.record("git clone (s)", "s", false, name, secs);
    sh(&format!("rm -rf {}", t.dir.join("clone").display()))?;

    // Last: a peer that never sees the change fails here, its other rows kept.
    if let Some(observer) = t.observer(cluster)? {
        let (p50, p99) = propagation(&t.dir.join("seen"), &observer.dir.join("seen"), PROPAGATIONS)?;
        suite.record("close → other mount's stat, p50 (ms)", "ms", false, name, p50);
        suite.record("close → other mount's stat, p99 (ms)", "ms", false, name, p99);
        fs::remove_file(t.dir.join("seen")).ok();
    }
    Ok(())
}

/// Changes timed from one mount to another.
const PROPAGATIONS: u64 = 200;

/// Rewrites `on_a` `n` times, each one byte longer, and times how long a
/// stat of `on_b` (another mount's name of the file) takes to show each:
/// p50 and p99 in milliseconds.
fn propagation(on_a: &Path, on_b: &Path, n: u64) -> Result<(f64, f64)> {
    let limit = Duration::from_secs(5);
    let seen = |len: u64| -> Result<Duration> {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if fs::metadata(on_b).is_ok_and(|m| m.len() == len) {
                return Ok(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        bail!("a close was not seen on a second mount within {limit:?}")
    };
    fs::write(on_a, b"0")?;
    seen(1)?;
    let mut times = Vec::new();
    for len in 2..n + 2 {
        fs::write(on_a, vec![b'x'; len as usize])?;
        times.push(seen(len)?.as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let at = |q: usize| times[(times.len() * q / 100).min(times.len() - 1)];
    Ok((at(50), at(99)))
}

/// Peak RSS of the bucketfs daemon while `running` holds.
fn sample_rss(dir: PathBuf, running: Arc<AtomicBool>, peak: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while running.load(Ordering::Relaxed) {
            if let Ok(rss) = bucketfs_tests::tools::daemon_rss(&dir) {
                peak.fetch_max(rss, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    })
}

fn version(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_default()
}

fn main() -> Result<()> {
    let (quick, only) = targets::args();
    let sizes = if quick { &QUICK } else { &FULL };
    let cluster = Cluster::start()?;
    let work = cluster.dir.join("bench");
    fs::create_dir_all(&work)?;
    let tarball = work.join("tree.tar");
    // Links dereferenced, hard ones too: rclone mount (1.60) cannot make
    // symlinks, and neither rclone nor bucketfs makes hard links.
    sh(&format!(
        "tar -ch --hard-dereference -f {} -C {} .",
        tarball.display(),
        sizes.tree
    ))?;
    let tar_mb = fs::metadata(&tarball)?.len() as f64 / 1e6;

    let kinds = [
        Kind::Local,
        Kind::Bindfs,
        Kind::Bucketfs,
        Kind::BucketfsDefault,
        Kind::S3fs,
        Kind::Rclone,
        Kind::Moosefs,
    ];
    let mut suite = Suite { rows: Vec::new() };
    let mut rss_peak = 0;
    let mut failures = Vec::new();
    for kind in kinds {
        let mut t = Target::new(kind, &work);
        if !only.is_empty() && !only.iter().any(|o| o == t.name) {
            continue;
        }
        if matches!(
            kind,
            Kind::Bucketfs | Kind::BucketfsDefault | Kind::S3fs | Kind::Rclone
        ) {
            cluster.aws_ok(&["s3", "mb", &format!("s3://{}", t.bucket)])?;
        }
        println!("== {}", t.name);
        t.mount(&cluster)?;
        let running = Arc::new(AtomicBool::new(true));
        let peak = Arc::new(AtomicU64::new(0));
        let sampler =
            (kind == Kind::Bucketfs).then(|| sample_rss(t.dir.clone(), running.clone(), peak.clone()));
        if let Err(e) = run_target(&mut suite, &mut t, &cluster, sizes, &tarball) {
            println!("  {} failed: {e:#}", t.name);
            failures.push(format!("{}: {e:#}", t.name));
        }
        running.store(false, Ordering::Relaxed);
        if let Some(s) = sampler {
            let _ = s.join();
            rss_peak = peak.load(Ordering::Relaxed);
        }
        t.stop()?;
    }

    let date = check(
        Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()?,
        "date",
    )?;
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let versions = BTreeMap::from([
        (
            "bucketfs",
            version(
                "git",
                &["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short", "HEAD"],
            ),
        ),
        ("fio", version("fio", &["--version"])),
        ("bindfs", version("bindfs", &["--version"])),
        ("s3fs", version("s3fs", &["--version"])),
        ("rclone", version("rclone", &["version"])),
        ("moosefs", version("mfsmount", &["-V"])),
        ("kernel", version("uname", &["-r"])),
    ]);
    let names: Vec<&str> = kinds
        .iter()
        .map(|k| Target::new(*k, &work).name)
        .filter(|n| suite.rows.iter().any(|r| r.values.contains_key(*n)))
        .collect();

    // Markdown table: absolute figures, then bucketfs against the best peer.
    let mut md = format!(
        "# bench-fs, {} on {host} ({cores} cores){}\n\n\
         Cluster: 3 storage nodes, 3 replicas (write quorum 2), 2 routers behind HAProxy, Postgres, ZooKeeper, all on this machine.\n\
         fio psync, non-zero buffers, `--end_fsync=1` on writes; page cache dropped and FUSE clients remounted before cold reads.\n\
         Source tree: {} ({tar_mb:.0} MB tar, symlinks and hard links dereferenced). Peers on the same cluster: s3fs, `rclone mount --vfs-cache-mode writes` \
         (`--vfs-write-back 0s`; it uploads after close, so its write rows, like bucketfs's with `--write-back`, are timed by the clock until the store holds every file written, checked by listing the bucket). \
         MooseFS: 1 master, 3 chunkservers, goal 3, defaults (chunkservers do not fsync).\n\
         Versions: {}.\n\n| workload | {} | bucketfs / best peer |\n|{}\n",
        date.trim(),
        if quick { ", quick run" } else { "" },
        sizes.tree,
        versions.iter().map(|(k, v)| format!("{k} `{v}`")).collect::<Vec<_>>().join(", "),
        names.join(" | "),
        " --- |".repeat(names.len() + 2),
    );
    for row in &suite.rows {
        let cells: Vec<String> = names
            .iter()
            .map(|n| row.values.get(*n).map_or("—".into(), |v| format!("{v:.1}")))
            .collect();
        let peers = PEERS;
        let best_peer = peers
            .iter()
            .filter_map(|p| row.values.get(*p))
            .copied()
            .reduce(|a, b| if row.higher_is_better { a.max(b) } else { a.min(b) });
        let ratio = match (row.values.get("bucketfs"), best_peer) {
            (Some(b), Some(p)) if p > 0.0 && *b > 0.0 => {
                let r = if row.higher_is_better { b / p } else { p / b };
                format!("{r:.2}×")
            }
            _ => "—".into(),
        };
        md.push_str(&format!(
            "| {} | {} | {ratio} |\n",
            row.workload,
            cells.join(" | ")
        ));
    }
    md.push_str(&format!(
        "\nbucketfs daemon peak RSS: {:.0} MiB (`--cache-size 256 --disk-cache-size 2048 --write-back 64`). Ratios above 1× mean bucketfs is ahead (for times, the peer's time over bucketfs's).\n",
        rss_peak as f64 / MIB
    ));
    md.push_str(&targets_met(&suite.rows));
    if !failures.is_empty() {
        md.push_str("\nFailures:\n");
        for f in &failures {
            md.push_str(&format!("- {f}\n"));
        }
    }
    println!("\n{md}");

    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    fs::create_dir_all(&results)?;
    // A run of some targets only never replaces a whole run's files.
    let stem = results.join(format!(
        "{}-{host}-fs{}",
        date.split(' ').next().unwrap_or("run"),
        if only.is_empty() { "" } else { "-partial" }
    ));
    fs::write(stem.with_extension("md"), &md)?;
    let json = serde_json::json!({
        "date": date.trim(), "host": host, "cores": cores, "quick": quick,
        "versions": versions, "rss_peak_bytes": rss_peak, "rows": suite.rows, "failures": failures,
    });
    fs::write(stem.with_extension("json"), serde_json::to_string_pretty(&json)?)?;
    chart(&stem, &suite.rows, &names)?;
    println!("written to {}.{{md,json,png}}", stem.display());
    // A peer's own limits (rclone 1.60 cannot store a git clone) are
    // reported in the table; only bucketfs or a baseline failing fails the run.
    let ours = failures
        .iter()
        .filter(|f| {
            ["local:", "bindfs:", "bucketfs:"]
                .iter()
                .any(|t| f.starts_with(t))
        })
        .count();
    if ours > 0 {
        bail!("{ours} target(s) failed");
    }
    if !failures.is_empty() {
        eprintln!(
            "{} peer target(s) failed; see the table's Failures",
            failures.len()
        );
    }
    Ok(())
}
