//! The soak: a workload through S3 and through a mount (`scripts/soak.py`)
//! runs on a cluster of hosts (`hosts.rs`) while a nemesis, on a schedule
//! drawn from a seed, injects one fault at a time: `kill -9` and restart of
//! a storage node or a router, a node SIGSTOPped past the ZooKeeper session
//! timeout, ZooKeeper and Postgres restarts, a node or router cut off the
//! network, a node's disk filled, a byte flipped in a chunk file. Then the
//! cluster is healed and checked: every acknowledged write is there (by
//! checksum), nothing deleted came back, listings match, every chunk is
//! back at 3 replicas, and after collection nothing unreferenced is left on
//! the nodes' disks.
//!
//! One fault at a time is what the cluster promises to survive (3
//! replicas, 2 acknowledged): two nodes down together may make a write
//! fail, never lose an acknowledged one, but a chunk whose only good copy
//! sits on the one node that is down is unreadable until it returns. Bytes
//! are flipped on node 1 only, so no chunk ever has two bad copies.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bucketfs_common::testing::Xorshift;
use nix::sys::signal::Signal;
use router::meta::sql::UNREFERENCED_CHUNK;

use crate::hosts::Hosts;
use crate::tools::TinyDisk;

/// The faults the nemesis injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    KillNode,
    KillRouter,
    StopNode,
    RestartZookeeper,
    RestartPostgres,
    Partition,
    FillDisk,
    FlipByte,
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::KillNode,
        Fault::KillRouter,
        Fault::StopNode,
        Fault::RestartZookeeper,
        Fault::RestartPostgres,
        Fault::Partition,
        Fault::FillDisk,
        Fault::FlipByte,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::KillNode => "kill -9 a storage node",
            Fault::KillRouter => "kill -9 a router",
            Fault::StopNode => "SIGSTOP a node past the session timeout",
            Fault::RestartZookeeper => "restart ZooKeeper",
            Fault::RestartPostgres => "restart Postgres",
            Fault::Partition => "cut a node or router off the network",
            Fault::FillDisk => "fill a node's disk",
            Fault::FlipByte => "flip a byte in a chunk file",
        }
    }
}

/// What a soak ran and found.
#[derive(Debug)]
pub struct Report {
    pub seconds: u64,
    pub seed: u64,
    pub faults: BTreeMap<Fault, u32>,
    /// The checker's figures (operations by kind, lost, anomalies).
    pub checked: serde_json::Value,
    /// The checker's lines: lost writes and anomalies, then OK if none.
    pub findings: Vec<String>,
    /// From the end of the workload to no chunk under 3 replicas.
    pub full_replication: Duration,
    /// From then to every node's chunk files matching its replica rows.
    pub collected: Duration,
}

impl Report {
    /// No acknowledged write lost, no anomaly.
    pub fn ok(&self) -> bool {
        self.findings.last().is_some_and(|l| l == "OK")
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "soak: {} s, seed {}", self.seconds, self.seed)?;
        writeln!(f, "faults injected:")?;
        for (fault, n) in &self.faults {
            writeln!(f, "  {:>4}  {}", n, fault.name())?;
        }
        if let Some(ops) = self.checked["ops"].as_object() {
            writeln!(f, "operations:")?;
            for (op, n) in ops {
                writeln!(f, "  {:>6}  {op}", n)?;
            }
        }
        for figure in [
            "acknowledged operations",
            "keys checked",
            "acknowledged writes lost",
            "anomalies",
        ] {
            writeln!(f, "{figure}: {}", self.checked[figure])?;
        }
        writeln!(
            f,
            "back to 3 replicas {:.1} s after the workload; disks hold only referenced chunks {:.1} s later",
            self.full_replication.as_secs_f64(),
            self.collected.as_secs_f64()
        )?;
        for line in &self.findings {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// Router flags of the soak: passes, repair and collection in seconds
/// rather than minutes, so that the checks at the end need not wait long.
const ROUTER_ARGS: [&str; 16] = [
    "--worker-interval-secs",
    "2",
    "--gc-grace-secs",
    "10",
    "--repair-after-secs",
    "10",
    "--repair-min-age-secs",
    "5",
    "--repair-throttle",
    "0",
    "--inventory-interval-secs",
    "15",
    "--orphan-grace-secs",
    "20",
    "--rebalance",
    "false",
];
/// Nodes scrub every chunk this often, so a flipped byte is found soon.
const NODE_ENV: [(&str, &str); 1] = [("BUCKETFS_SCRUB_INTERVAL_SECS", "10")];
/// Node 3's disk, small enough to fill.
const NODE3_DISK: &str = "2g";

/// Runs a soak of `seconds` with the schedule drawn from `seed`; `say`
/// hears of each fault as it happens.
pub fn run(seconds: u64, seed: u64, mut say: impl FnMut(&str)) -> Result<Report> {
    let mut disk = None;
    let mut hosts = Hosts::start_with(&ROUTER_ARGS, &NODE_ENV, |dir| {
        disk = Some(TinyDisk::mount(&dir.join("node3"), NODE3_DISK)?);
        Ok(())
    })?;
    let bucket = "soak";
    crate::tools::check(
        hosts.aws(1, &["s3", "mb", &format!("s3://{bucket}")]).output()?,
        "aws s3 mb",
    )?;
    let mnt = hosts.dir.join("mnt");
    let mount = hosts.mount(bucket, &mnt)?;
    let state = hosts.dir.join("soak-state.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/soak.py");
    let endpoints = format!("{},{}", hosts.endpoint(1), hosts.endpoint(2));
    let workload = hosts
        .in_host("client", Path::new("python3"))
        .arg(&script)
        .args(["run", "--endpoints", &endpoints, "--bucket", bucket])
        .arg("--mount")
        .arg(&mnt)
        .args(["--seconds", &seconds.to_string(), "--seed", &seed.to_string()])
        .arg("--state")
        .arg(&state)
        .env("AWS_ACCESS_KEY_ID", &hosts.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &hosts.secret_key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the soak workload")?;

    let mut nemesis = Nemesis {
        rng: Xorshift::new(seed),
        faults: BTreeMap::new(),
        flipped: Vec::new(),
    };
    let end = Instant::now() + Duration::from_secs(seconds);
    // Each kind once, in an order drawn from the seed, then at random.
    let mut order = Fault::ALL.to_vec();
    for i in (1..order.len()).rev() {
        order.swap(i, nemesis.rng.below(i as u64 + 1) as usize);
    }
    let mut next = 0;
    std::thread::sleep(Duration::from_secs(3));
    while Instant::now() + Duration::from_secs(12) < end {
        let fault = match order.get(next) {
            Some(f) => *f,
            None => Fault::ALL[nemesis.rng.below(Fault::ALL.len() as u64) as usize],
        };
        next += 1;
        let what = nemesis.inject(&mut hosts, fault)?;
        say(&what);
        std::thread::sleep(Duration::from_millis(1000 + nemesis.rng.below(3000)));
    }
    let out = workload.wait_with_output()?;
    let ran = crate::tools::check(out, "the soak workload")?;
    say(ran.trim());
    let workload_ended = Instant::now();

    // Every chunk back at 3 replicas, and every flipped replica found (by
    // a read or the scrubber: set aside) and replaced.
    crate::wait_until("every chunk at 3 good replicas", Duration::from_secs(300), || {
        nemesis.flipped.iter().all(|f| !f.exists())
            && hosts
                .status()
                .is_ok_and(|s| s["chunks"]["under_replicated"].as_u64() == Some(0))
    })?;
    let full_replication = workload_ended.elapsed();

    let out = hosts
        .in_host("client", Path::new("python3"))
        .arg(&script)
        .args(["check", "--endpoints", &hosts.endpoint(2), "--bucket", bucket])
        .arg("--state")
        .arg(&state)
        .env("AWS_ACCESS_KEY_ID", &hosts.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &hosts.secret_key)
        .output()?;
    let text = crate::tools::check(out, "the soak checker")?;
    let mut lines = text.lines();
    let checked: serde_json::Value = serde_json::from_str(lines.next().unwrap_or_default())
        .with_context(|| format!("the checker printed {text}"))?;
    let findings = lines.map(str::to_string).collect();

    // Garbage collected and orphans swept: each node's files are its rows.
    let collecting = Instant::now();
    let mut seen = String::new();
    let settled = crate::wait_until(
        "the nodes' disks to hold only referenced chunks",
        Duration::from_secs(240),
        || match disks_match_rows(&hosts) {
            Ok(None) => true,
            Ok(Some(diff)) => {
                seen = diff;
                false
            }
            Err(e) => {
                seen = format!("{e:#}");
                false
            }
        },
    );
    if settled.is_err() {
        bail!("after the soak the nodes' disks do not match the replica rows: {seen}");
    }
    let collected = collecting.elapsed();
    drop(mount);
    drop(hosts);
    drop(disk);
    Ok(Report {
        seconds,
        seed,
        faults: nemesis.faults,
        checked,
        findings,
        full_replication,
        collected,
    })
}

/// None when every node's chunk files are exactly its replica rows, no
/// chunk is unreferenced and the running totals match a recount; else what
/// differs.
fn disks_match_rows(hosts: &Hosts) -> Result<Option<String>> {
    let unreferenced: u64 = hosts
        .psql(&format!(
            "SELECT count(*) FROM chunks c WHERE {UNREFERENCED_CHUNK}"
        ))?
        .trim()
        .parse()?;
    let rows = hosts.psql("SELECT node_id, count(*) FROM chunk_replicas GROUP BY node_id")?;
    let rows: BTreeMap<String, usize> = rows
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(n, c)| (n.to_string(), c.parse().unwrap_or(0)))
        .collect();
    let mut differences = Vec::new();
    if unreferenced > 0 {
        differences.push(format!("{unreferenced} unreferenced chunks"));
    }
    if let Some(differ) = crate::tallies::mismatches(|sql| hosts.psql(sql))? {
        differences.push(differ);
    }
    for i in 1..=3 {
        let node = format!("node{i}");
        let files = chunk_files(&hosts.data_dir(&node)).len();
        let recorded = rows.get(&node).copied().unwrap_or(0);
        if files != recorded {
            differences.push(format!("{node}: {files} chunk files, {recorded} replica rows"));
        }
    }
    Ok((!differences.is_empty()).then(|| differences.join("; ")))
}

/// The chunk files under a node's data directory.
fn chunk_files(dir: &Path) -> Vec<PathBuf> {
    crate::chunk_files_in(dir).map(|f| f.path()).collect()
}

struct Nemesis {
    rng: Xorshift,
    faults: BTreeMap<Fault, u32>,
    /// Chunk files with a byte flipped.
    flipped: Vec<PathBuf>,
}

impl Nemesis {
    /// Injects `fault`, holds it a few seconds, heals it; says what it did.
    fn inject(&mut self, hosts: &mut Hosts, fault: Fault) -> Result<String> {
        *self.faults.entry(fault).or_default() += 1;
        let node = format!("node{}", 1 + self.rng.below(3));
        let router = format!("router{}", 1 + self.rng.below(2));
        let hold = Duration::from_millis(2000 + self.rng.below(4000));
        let started = Instant::now();
        let what = match fault {
            Fault::KillNode | Fault::KillRouter => {
                let name = if fault == Fault::KillNode { &node } else { &router };
                hosts.signal(name, Signal::SIGKILL)?;
                std::thread::sleep(hold);
                hosts.restart(name)?;
                format!("killed {name} (kill -9), started it again")
            }
            Fault::StopNode => {
                hosts.signal(&node, Signal::SIGSTOP)?;
                // Past the 6 s ZooKeeper session: the node's membership ends.
                std::thread::sleep(common_session_timeout() + hold);
                hosts.signal(&node, Signal::SIGCONT)?;
                format!("stopped {node} (SIGSTOP), continued it")
            }
            Fault::RestartZookeeper | Fault::RestartPostgres => {
                let (name, signal) = match fault {
                    Fault::RestartZookeeper => ("zookeeper", Signal::SIGKILL),
                    _ => ("postgres", Signal::SIGINT),
                };
                hosts.signal(name, signal)?;
                std::thread::sleep(hold / 2);
                hosts.restart(name)?;
                format!("restarted {name}")
            }
            Fault::Partition => {
                let name = if self.rng.below(2) == 0 { &node } else { &router };
                hosts.isolate(name, true)?;
                std::thread::sleep(hold);
                hosts.isolate(name, false)?;
                format!("cut {name} off the network, then back")
            }
            Fault::FillDisk => {
                let ballast = hosts.data_dir("node3").join("ballast");
                fill(&ballast)?;
                std::thread::sleep(hold);
                fs::remove_file(&ballast)?;
                "filled node3's disk, then freed it".to_string()
            }
            Fault::FlipByte => {
                let files = chunk_files(&hosts.data_dir("node1"));
                match files.get(self.rng.below(files.len() as u64) as usize) {
                    Some(file) => {
                        let at = flip_byte(file, &mut self.rng)?;
                        self.flipped.push(file.clone());
                        format!("flipped byte {at} of {}", file.display())
                    }
                    None => "no chunk file on node1 to flip a byte in".to_string(),
                }
            }
        };
        Ok(format!("{:>6.1} s  {what}", started.elapsed().as_secs_f64()))
    }
}

fn common_session_timeout() -> Duration {
    bucketfs_common::membership::SESSION_TIMEOUT
}

/// Writes `path` until its file system is full.
fn fill(path: &Path) -> Result<()> {
    use std::io::Write;
    let mut out = fs::File::create(path)?;
    let block = vec![0xa5u8; 1 << 20];
    loop {
        match out.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Flips one byte of `file` in place; answers its offset.
fn flip_byte(file: &Path, rng: &mut Xorshift) -> Result<u64> {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new().read(true).write(true).open(file)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let at = rng.below(len);
    let mut byte = [0u8];
    f.read_exact_at(&mut byte, at)?;
    byte[0] ^= 0x20;
    f.write_all_at(&byte, at)?;
    Ok(at)
}
