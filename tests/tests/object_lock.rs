//! Object lock, judged by boto3 (`tests/scripts/object_lock.py`): governance
//! yields only to the bypass, compliance to no one until its date, a legal
//! hold to no one, and the garbage collector keeps every locked version.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Result;
use bucketfs_tests::Cluster;

#[test]
fn locked_versions_resist_deletion_and_collection() -> Result<()> {
    // A collector that runs every second with no grace: whatever it may
    // collect, it collects at once.
    let cluster = Cluster::start_with_router_args(&["--worker-interval-secs", "1", "--gc-grace-secs", "0"])?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/object_lock.py");
    let mut child = Command::new("python3")
        .args([script, &cluster.endpoint()])
        .env("AWS_ACCESS_KEY_ID", &cluster.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &cluster.secret_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    if line.starts_with("READY") {
        // The collector runs: it collects the chunks of the versions the
        // script deleted for good, and must leave the locked one's alone.
        bucketfs_tests::wait_until("a collector pass", Duration::from_secs(30), || {
            collected(&cluster) > 0
        })?;
        std::thread::sleep(Duration::from_secs(2));
        child.stdin.take().expect("piped").write_all(b"go\n")?;
    }
    let out = child.wait_with_output()?;
    let mut rest = String::new();
    stdout.read_to_string_lossy(&mut rest);
    assert!(
        out.status.success() && rest.contains("OK"),
        "object_lock.py failed:\n{line}{rest}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn collected(cluster: &Cluster) -> u64 {
    (1..=2)
        .filter_map(|i| cluster.router_metric(i, "bucketfs_router_chunks_collected_total"))
        .sum()
}

trait ReadLossy {
    fn read_to_string_lossy(&mut self, into: &mut String);
}

impl<R: std::io::Read> ReadLossy for BufReader<R> {
    fn read_to_string_lossy(&mut self, into: &mut String) {
        let mut bytes = Vec::new();
        let _ = std::io::Read::read_to_end(self, &mut bytes);
        into.push_str(&String::from_utf8_lossy(&bytes));
    }
}
