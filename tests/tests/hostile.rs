//! Hostile and malformed input through HAProxy: each gets a clear error or
//! is cut off after its timeout, nothing is stored from it, and a client
//! doing honest work beside it is served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::Result;
use bucketfs_tests::Cluster;

/// Sends `request` raw and returns the status line and body of the answer.
fn raw(cluster: &Cluster, request: &str) -> Result<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", cluster.ports.haproxy))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    // The peer may answer and close before taking all of a huge request.
    let _ = s.write_all(request.as_bytes());
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&answer);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_string)
                        })
                        .and_then(|v| v.trim().parse::<usize>().ok());
                    if length.is_some_and(|n| body.len() >= n) {
                        break;
                    }
                }
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.lines().next().unwrap_or("").to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n")
}

#[test]
fn malformed_and_unsupported_requests_get_clear_errors() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://bkt"])?;
    let cases: [(String, &str, &str); 9] = [
        (get("/bkt/k", "Authorization: AWS AKIDEXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=\r\n"), "400", "InvalidRequest"),
        (get("/bkt/k?AWSAccessKeyId=AKID&Expires=99999999999&Signature=x", ""), "400", "InvalidRequest"),
        (
            get("/bkt/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=604801&X-Amz-Signature=x", ""),
            "400",
            "AuthorizationQueryParametersError",
        ),
        (
            get("/bkt/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=-1&X-Amz-Signature=x", ""),
            "400",
            "AuthorizationQueryParametersError",
        ),
        (get("/bkt?list-type=2&prefix=a%00b", ""), "400", "InvalidArgument"),
        (get("/bkt?list-type=2&max-keys=-1", ""), "400", "InvalidArgument"),
        (get("/bkt/k?versionId=%00", ""), "400", "InvalidArgument"),
        (get("/bkt?uploads&key-marker=%zz", ""), "400", "InvalidArgument"),
        (
            "PUT /bkt/copy HTTP/1.1\r\nHost: 127.0.0.1\r\nx-amz-copy-source: bkt/a%00b\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_string(),
            "400",
            "InvalidArgument",
        ),
    ];
    for (request, status, code) in cases {
        let (line, body) = raw(&cluster, &request)?;
        let first = request.lines().next().unwrap_or("");
        assert!(line.contains(status), "{first}: answered {line}");
        assert!(body.contains(&format!("<Code>{code}</Code>")), "{first}: {body}");
        assert!(body.contains("<RequestId>"), "{first}: no request id in {body}");
    }
    // A 1 MiB header, and a 1 MiB request line: refused by HAProxy (its
    // buffer is 16 KiB) before a router sees them.
    let huge = "a".repeat(1 << 20);
    for request in [
        format!(
            "PUT /bkt/big HTTP/1.1\r\nHost: 127.0.0.1\r\nx-amz-meta-big: {huge}\r\nContent-Length: 0\r\n\r\n"
        ),
        format!("GET /bkt/{huge} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ] {
        let (line, _) = raw(&cluster, &request)?;
        assert!(
            line.contains(" 400 ") || line.contains(" 414 ") || line.contains(" 431 ") || line.is_empty(),
            "answered {line}"
        );
    }
    // Nothing was stored from any of them.
    let listed = cluster.aws_ok(&["s3api", "list-object-versions", "--bucket", "bkt"])?;
    assert!(!listed.contains("\"Key\""), "{listed}");
    // Signed requests still work.
    cluster.aws_ok(&["s3api", "list-objects-v2", "--bucket", "bkt", "--max-keys", "0"])?;
    Ok(())
}

#[test]
fn idle_and_stalled_connections_are_cut_off_while_others_are_served() -> Result<()> {
    // Raised first (as far as the hard limit allows): HAProxy inherits the
    // limit and the harness sizes its maxconn from it.
    let hard = raise_fd_limit()?;
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://bkt"])?;
    // The latency an honest client sees, idle and then beside the hostile
    // connections: GETs of a small object over fresh connections, as a
    // browser's presigned link would be fetched.
    cluster.aws_ok(&["s3api", "put-object", "--bucket", "bkt", "--key", "probe"])?;
    let probe = get_signed(&cluster, "bkt", "probe")?;
    let idle_latency = median_get_latency(&cluster, &probe)?;
    // 5,000 connections that never send a request, and one that stops in
    // the middle of a PUT's body.
    // 5,000, unless this machine's descriptor limit cannot hold them
    // beside HAProxy's (the harness gives HAProxy 2/5 of it as maxconn).
    let count = 5_000.min((hard.saturating_sub(1000) * 2 / 5).saturating_sub(500) as usize);
    if count < 5_000 {
        println!("descriptor limit {hard}: {count} idle connections, not 5,000");
    }
    let idle: Vec<TcpStream> = (0..count)
        .map(|_| TcpStream::connect(("127.0.0.1", cluster.ports.haproxy)))
        .collect::<std::io::Result<_>>()?;
    let url = cluster.presigned("put_object", "bkt", "stalled")?;
    let target = url.split_once("127.0.0.1").map(|(_, rest)| rest).unwrap_or("");
    let target = &target[target.find('/').unwrap_or(0)..];
    let mut stalled = TcpStream::connect(("127.0.0.1", cluster.ports.haproxy))?;
    stalled.write_all(
        format!(
            "PUT {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 6000000\r\n\r\npartial",
            cluster.ports.haproxy
        )
        .as_bytes(),
    )?;
    // An honest client works beside them.
    let busy_latency = median_get_latency(&cluster, &probe)?;
    println!(
        "median GET beside {count} idle connections and a stalled PUT: {busy_latency:?}, \
         idle: {idle_latency:?} ({:.2}x)",
        busy_latency.as_secs_f64() / idle_latency.as_secs_f64()
    );
    let started = Instant::now();
    for i in 0..5 {
        cluster.aws_ok(&[
            "s3api",
            "put-object",
            "--bucket",
            "bkt",
            "--key",
            &format!("ok-{i}"),
        ])?;
    }
    println!("5 PUTs beside {count} idle connections: {:?}", started.elapsed());
    // After the request timeout (10 s) every idle connection is closed.
    std::thread::sleep(Duration::from_secs(12));
    let mut closed = 0;
    for mut c in idle {
        c.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut buf = [0u8; 512];
        // A 408 answer or a plain close both end the connection.
        if c.read(&mut buf).is_ok() {
            closed += 1;
        }
    }
    assert_eq!(
        closed, count,
        "idle connections still open after the request timeout"
    );
    // The stalled body is cut off after the client timeout (30 s).
    stalled.set_read_timeout(Some(Duration::from_secs(40)))?;
    let mut buf = [0u8; 512];
    let n = stalled.read(&mut buf).unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(
        n == 0 || !answer.contains(" 200 "),
        "stalled PUT answered {answer}"
    );
    let listed = cluster.aws_ok(&["s3api", "list-objects-v2", "--bucket", "bkt"])?;
    assert!(
        !listed.contains("stalled"),
        "a version appeared from the stalled PUT"
    );
    assert_eq!(listed.matches("\"ok-").count(), 5, "{listed}");
    Ok(())
}

/// The median time of 21 sends of `request` (a GET from `get_signed`),
/// each on a new connection; every one must succeed.
fn median_get_latency(cluster: &Cluster, request: &str) -> Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        let (line, _) = raw(cluster, request)?;
        times.push(started.elapsed());
        anyhow::ensure!(line.contains(" 200 "), "probe GET answered {line}");
    }
    times.sort();
    Ok(times[times.len() / 2])
}

fn raise_fd_limit() -> Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

#[test]
fn edge_cases_get_the_answers_s3_gives() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://edges"])?;
    cluster.run_script("edges.py", &[&cluster.endpoint(), "edges"])?;
    Ok(())
}

#[test]
fn an_object_whose_chunk_has_no_replica_fails_before_its_headers() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://bkt"])?;
    let file = cluster.dir.join("obj");
    std::fs::write(&file, vec![7u8; 100_000])?;
    cluster.aws_ok(&[
        "s3",
        "cp",
        "--no-progress",
        file.to_str().unwrap(),
        "s3://bkt/orphan",
    ])?;
    let psql = std::process::Command::new("psql")
        .args([&cluster.database_url(), "-c", "DELETE FROM chunk_replicas"])
        .output()?;
    assert!(psql.status.success(), "{}", String::from_utf8_lossy(&psql.stderr));
    let (line, body) = raw(&cluster, &get_signed(&cluster, "bkt", "orphan")?)?;
    assert!(line.contains(" 503 "), "answered {line}");
    assert!(body.contains("<Code>ServiceUnavailable</Code>"), "{body}");
    Ok(())
}

/// A GET of a presigned (SigV4) URL, as raw request text.
fn get_signed(cluster: &Cluster, bucket: &str, key: &str) -> Result<String> {
    let url = cluster.presigned("get_object", bucket, key)?;
    let target = url.split_once("127.0.0.1").map(|(_, rest)| rest).unwrap_or("");
    let target = &target[target.find('/').unwrap_or(0)..];
    Ok(format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        cluster.ports.haproxy
    ))
}
