//! `make bench-idle`: the latency one client sees while others hold
//! connections open, against the same client on an idle cluster in the
//! same run.
//!
//! Rows: 500 GETs of a 4 KiB object over one keep-alive connection through
//! HAProxy (a presigned URL, so the client costs nothing to sign, valid
//! for the few seconds the run takes), first
//! alone, then beside 5,000 connections that never send a request (or as
//! many as the descriptor limit allows), then beside 500 clients sending
//! their headers a byte at a time. The ratios of p50 and p99 to the idle
//! run are what matters: the brief's bound is 2x.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bucketfs_tests::Cluster;

const GETS: usize = 500;
const IDLE: usize = 5_000;
const SLOW: usize = 500;

/// Latencies (ms) of `GETS` sequential GETs of `target` on one connection.
fn get_latencies(port: u16, target: &str) -> Result<Vec<f64>> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut latencies = Vec::with_capacity(GETS);
    for _ in 0..GETS {
        let started = Instant::now();
        writer.write_all(request.as_bytes())?;
        let mut status = String::new();
        reader.read_line(&mut status)?;
        if !status.contains(" 200 ") {
            bail!("GET answered {status:?}");
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse()?;
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok(latencies)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut latencies: Vec<f64>) -> (f64, f64) {
    latencies.sort_by(f64::total_cmp);
    (percentile(&latencies, 0.5), percentile(&latencies, 0.99))
}

fn main() -> Result<()> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // Raised before the cluster starts: HAProxy inherits the limit and the
    // harness sizes its maxconn from it.
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://idle"])?;
    let file = cluster.dir.join("small.bin");
    bucketfs_tests::tools::random_file(&file, 4096, 7)?;
    cluster.aws_ok(&["s3", "cp", file.to_str().unwrap(), "s3://idle/small.bin"])?;
    let url = cluster.presigned("get_object", "idle", "small.bin")?;
    let target = url
        .trim()
        .split_once("127.0.0.1")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
        .context("presigned URL")?;
    let port = cluster.ports.haproxy;

    get_latencies(port, &target)?; // warm up
    let alone = summary(get_latencies(port, &target)?);

    let idle_count = IDLE.min((hard.saturating_sub(1000) * 2 / 5).saturating_sub(500) as usize);
    let idle: Vec<TcpStream> = (0..idle_count)
        .map(|_| TcpStream::connect(("127.0.0.1", port)))
        .collect::<std::io::Result<_>>()?;
    let beside_idle = summary(get_latencies(port, &target)?);
    drop(idle);

    // Slow clients: one header byte each, every 100 ms, from one thread.
    let mut slow: Vec<TcpStream> = (0..SLOW)
        .map(|_| TcpStream::connect(("127.0.0.1", port)))
        .collect::<std::io::Result<_>>()?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dripping = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let header = b"GET /idle/small.bin HTTP/1.1\r\nHost: x\r\nX-Slow: ";
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let byte = header.get(i).copied().unwrap_or(b'a');
                for s in &mut slow {
                    let _ = s.write_all(&[byte]);
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let beside_slow = summary(get_latencies(port, &target)?);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    dripping.join().ok();

    let row = |name: &str, (p50, p99): (f64, f64)| {
        format!(
            "| {name} | {p50:.2} ms | {p99:.2} ms | {:.2} | {:.2} |\n",
            p50 / alone.0,
            p99 / alone.1
        )
    };
    let table = format!(
        "# bench-idle: {GETS} GETs of 4 KiB over one keep-alive connection through HAProxy\n\n\
         | client beside | p50 | p99 | p50 ratio | p99 ratio |\n| --- | --- | --- | --- | --- |\n{}{}{}",
        row("nothing (idle cluster)", alone),
        row(&format!("{idle_count} idle connections"), beside_idle),
        row(&format!("{SLOW} clients dripping headers"), beside_slow),
    );
    println!("{table}");
    Ok(())
}
