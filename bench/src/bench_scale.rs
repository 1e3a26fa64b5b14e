//! `bench-scale` (`make bench-scale`, not part of `make test`): metadata at
//! scale. For each size (default 100,000 and 10,000,000 objects) a fresh
//! cluster is filled through the batch extension with that many 32-byte
//! objects spread over 1,000 directories (`tests/scripts/scale.py fill`), and
//! `chunk_rows` more chunk rows are recorded directly (3 replica rows each,
//! leased for a day, no files: only the worker's queries see them) so that
//! the worker's pass faces as many chunks as objects. Then it measures HEAD
//! and GET latency, the top-level delimiter listing (1,000 common
//! prefixes), a directory's listing, a flat listing's rate, `ls` of the
//! root and of one directory through a fresh mount, and the worker's pass
//! (repair, trim, collection, lifecycle) as `router status` times it, and
//! `bucketfs fork` of the whole bucket (no chunk byte may be written).
//! Results: `bench/results/<date>-<host>-scale.md`.
//!
//! `bench-scale [--no-fork] [OBJECTS ...]` runs other sizes (without the
//! fork, which takes about a minute per million objects).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bucketfs_tests::{tools::check, wait_until, Cluster};

const DIRS: u64 = 1000;
const BUCKET: &str = "scale";

fn main() -> Result<()> {
    let fork = !std::env::args().any(|a| a == "--no-fork");
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter(|a| a != "--no-fork")
        .map(|a| a.replace('_', "").parse().context("a number of objects"))
        .collect::<Result<_>>()?;
    let sizes = if sizes.is_empty() {
        vec![100_000, 10_000_000]
    } else {
        sizes
    };
    let mut rows = Vec::new();
    for &n in &sizes {
        println!("== {n} objects");
        let row = run(n, fork)?;
        println!("{row:#}");
        rows.push((n, row));
    }
    let md = report(&rows);
    println!("\n{md}");
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let date = jiff::Zoned::now().strftime("%Y-%m-%d").to_string();
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    fs::create_dir_all(&results)?;
    let path = results.join(format!("{date}-{}-scale.md", host.trim()));
    fs::write(&path, &md)?;
    println!("written to {}", path.display());
    Ok(())
}

/// One size: fill, measure, and answer the figures as JSON.
fn run(objects: u64, fork: bool) -> Result<serde_json::Value> {
    // Passes every 5 s, so one starts soon after the fill; no inventory
    // (it would drop the rows of the chunks without files).
    let cluster =
        Cluster::start_with_router_args(&["--worker-interval-secs", "5", "--inventory-interval-secs", "0"])?;
    cluster.aws_ok(&["s3", "mb", &format!("s3://{BUCKET}")])?;
    let python = |args: &[&str]| cluster.script_json("scale.py", args);
    let endpoint = cluster.router_endpoint(1);
    let filled = python(&["fill", &endpoint, BUCKET, &objects.to_string(), &DIRS.to_string()])?;
    println!("{filled}");
    let chunks_made = Instant::now();
    let chunks = add_chunk_rows(&cluster, objects)?;
    println!(
        "{chunks} chunk rows in {:.0} s",
        chunks_made.elapsed().as_secs_f64()
    );
    let pass = worker_pass_secs(&cluster)?;
    let measured = python(&["measure", &endpoint, BUCKET, &DIRS.to_string()])?;

    let mnt = cluster.dir.join("mnt");
    let _mount = cluster.mount(BUCKET, &mnt)?;
    let ls_root = time(|| Ok(fs::read_dir(&mnt)?.count()))?;
    let ls_dir = time(|| Ok(fs::read_dir(mnt.join("d0500"))?.count()))?;
    if ls_root.1 != DIRS as usize {
        bail!("ls of the mount's root found {} entries, not {DIRS}", ls_root.1);
    }
    let fork = match fork {
        true => Some(fork_secs(&cluster, objects)?),
        false => None,
    };
    Ok(serde_json::json!({
        "fill": filled,
        "chunk_rows": chunks,
        "pass_secs": pass,
        "s3": measured,
        "ls_root_secs": ls_root.0,
        "ls_dir_secs": ls_dir.0,
        "ls_dir_entries": ls_dir.1,
        "fork_secs": fork,
    }))
}

fn time(f: impl FnOnce() -> Result<usize>) -> Result<(f64, usize)> {
    let started = Instant::now();
    let n = f()?;
    Ok((started.elapsed().as_secs_f64(), n))
}

/// Records chunk rows with 3 replica rows each on the live nodes until
/// `chunks` holds `want` rows; answers the count.
fn add_chunk_rows(cluster: &Cluster, want: u64) -> Result<u64> {
    let psql = |sql: &str| -> Result<String> {
        let out = Command::new("psql")
            .args([&cluster.database_url(), "-XAtq", "-c", sql])
            .output()?;
        check(out, "psql")
    };
    let have: u64 = psql("SELECT count(*) FROM chunks")?.trim().parse()?;
    // Committed every 5,000: each chunk insert takes an advisory lock (the
    // orphan sweep's trigger), held to the end of its transaction.
    psql(&format!(
        "DO $$ BEGIN
           FOR s IN {have}..{want} - 1 BY 5000 LOOP
             INSERT INTO chunks (id, size, crc32c, content_hash, lease_until)
               SELECT md5('bench-scale' || i), 8388608, 0, md5('h' || i), now() + interval '1 day'
               FROM generate_series(s, least(s + 4999, {want} - 1)) i;
             INSERT INTO chunk_replicas (chunk_id, node_id)
               SELECT md5('bench-scale' || i), 'storage-node-' || n
               FROM generate_series(s, least(s + 4999, {want} - 1)) i, generate_series(1, 3) n;
             COMMIT;
           END LOOP;
         END $$;"
    ))?;
    psql("ANALYZE chunks; ANALYZE chunk_replicas;")?;
    Ok(psql("SELECT count(*) FROM chunks")?.trim().parse()?)
}

/// Forks the bucket as of a second ago (`bucketfs fork`); answers how long
/// it took, after checking it made every key and wrote no chunk byte.
fn fork_secs(cluster: &Cluster, objects: u64) -> Result<f64> {
    let written = || cluster.node_bytes_written();
    let before = written();
    let at = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1)).to_string();
    let started = Instant::now();
    let answer = cluster.bucketfs(&["fork", &format!("{BUCKET}@{at}"), "scale-fork"])?;
    let took = started.elapsed().as_secs_f64();
    println!("{answer}");
    if !answer.contains(&format!("\t{objects} keys")) {
        bail!("the fork made other than {objects} keys: {answer}");
    }
    if written() != before {
        bail!("the fork wrote {} chunk bytes", written() - before);
    }
    Ok(took)
}

/// The length of the first worker pass that starts from now.
fn worker_pass_secs(cluster: &Cluster) -> Result<f64> {
    let passes = |s: &serde_json::Value| s["worker"]["passes"].as_u64().unwrap_or(0);
    let first = passes(&cluster.status()?);
    let mut took = None;
    wait_until("two more worker passes", Duration::from_secs(1800), || {
        let Ok(s) = cluster.status() else { return false };
        let w = &s["worker"];
        if passes(&s) < first + 2 {
            return false;
        }
        match (w["started_secs_ago"].as_f64(), w["finished_secs_ago"].as_f64()) {
            (Some(started), Some(finished)) if finished <= started => {
                took = Some(started - finished);
                true
            }
            _ => false,
        }
    })?;
    took.context("no pass time")
}

fn report(rows: &[(u64, serde_json::Value)]) -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut md = format!(
        "# bench-scale, {} on {}\n\nObjects of 32 bytes in 1,000 directories, stored through the batch extension; as many chunk rows again (3 replicas each, no files) recorded directly so the worker's pass faces that many chunks. Latencies through boto3 on one connection to one router.\n\n| figure |",
        jiff::Zoned::now().strftime("%Y-%m-%d %H:%M UTC"),
        host.trim()
    );
    for (n, _) in rows {
        md.push_str(&format!(" {n} objects |"));
    }
    md.push_str("\n| --- |");
    md.push_str(&" --- |".repeat(rows.len()));
    md.push('\n');
    let figures: [(&str, &[&str]); 14] = [
        ("fill (objects/s)", &["fill", "objects_per_sec"]),
        ("chunk rows", &["chunk_rows"]),
        ("worker pass (s)", &["pass_secs"]),
        ("HEAD p50 (ms)", &["s3", "head", "p50_ms"]),
        ("HEAD p99 (ms)", &["s3", "head", "p99_ms"]),
        ("GET p50 (ms)", &["s3", "get", "p50_ms"]),
        ("GET p99 (ms)", &["s3", "get", "p99_ms"]),
        (
            "delimiter listing, 1,000 prefixes, p50 (ms)",
            &["s3", "delimiter_listing", "p50_ms"],
        ),
        (
            "directory listing, p50 (ms)",
            &["s3", "directory_listing", "p50_ms"],
        ),
        ("flat listing (keys/s)", &["s3", "flat_listing_keys_per_sec"]),
        ("ls of the mount's root (s)", &["ls_root_secs"]),
        ("ls of one directory (s)", &["ls_dir_secs"]),
        ("entries in that directory", &["ls_dir_entries"]),
        ("fork of the bucket (s)", &["fork_secs"]),
    ];
    for (name, path) in figures {
        md.push_str(&format!("| {name} |"));
        for (_, row) in rows {
            let value = path.iter().fold(row, |v, k| &v[*k]);
            let text = match value.as_f64() {
                Some(f) if f.fract() != 0.0 => format!("{f:.3}"),
                _ => value.to_string(),
            };
            md.push_str(&format!(" {text} |"));
        }
        md.push('\n');
    }
    md
}
