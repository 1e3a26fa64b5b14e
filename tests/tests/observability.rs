//! Metrics and request ids: after a known workload the routers', the
//! nodes' and the mount daemon's metrics moved by what it did, and one S3
//! request's id is in a router's log and in the logs of the nodes that
//! stored its chunk.

use std::fs;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bucketfs_tests::{free_port, http_get, metric, wait_until, Cluster};

const MIB: u64 = 1 << 20;

const PUTS: &str = r#"bucketfs_router_request_duration_seconds_count{operation="PutObject",status="200"}"#;
const NOT_FOUND: &str = r#"bucketfs_router_errors_total{code="NoSuchKey"}"#;
const BYTES_IN: &str = "bucketfs_router_bytes_in_total";
const NODE_PUTS: &str = r#"bucketfs_node_request_duration_seconds_count{op="put",status="201"}"#;
const NODE_BYTES: &str = "bucketfs_node_bytes_written_total";
const REPLICA_WRITES: &str = r#"bucketfs_router_node_request_duration_seconds_count{op="put",outcome="ok"}"#;

/// The figures the S3 workload moves, summed over routers and nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Figures {
    puts: u64,
    not_found: u64,
    bytes_in: u64,
    node_puts: u64,
    node_bytes: u64,
    replica_writes: u64,
}

impl Figures {
    fn read(cluster: &Cluster) -> Self {
        Figures {
            puts: cluster.routers_metric(PUTS),
            not_found: cluster.routers_metric(NOT_FOUND),
            bytes_in: cluster.routers_metric(BYTES_IN),
            node_puts: cluster.nodes_metric(NODE_PUTS),
            node_bytes: cluster.nodes_metric(NODE_BYTES),
            replica_writes: cluster.routers_metric(REPLICA_WRITES),
        }
    }

    fn since(self, before: Figures) -> Figures {
        Figures {
            puts: self.puts - before.puts,
            not_found: self.not_found - before.not_found,
            bytes_in: self.bytes_in - before.bytes_in,
            node_puts: self.node_puts - before.node_puts,
            node_bytes: self.node_bytes - before.node_bytes,
            replica_writes: self.replica_writes - before.replica_writes,
        }
    }
}

/// Sends `curl` with `args` and returns the answer's status line and
/// `x-amz-request-id`.
fn curl(args: &[&str]) -> Result<(String, String)> {
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null"])
        .args(args)
        .output()
        .context("running curl")?;
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = head.lines().next().unwrap_or_default().trim().to_string();
    let id = head
        .lines()
        .find_map(|l| l.strip_prefix("x-amz-request-id:"))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("no request id in {head}"))?;
    Ok((status, id))
}

#[test]
fn metrics_count_a_known_workload_and_a_request_id_reaches_the_nodes() -> Result<()> {
    let cluster = Cluster::start_with_log_filter("info,router=debug,storage_node=debug")?;
    cluster.aws_ok(&["s3", "mb", "s3://obs"])?;

    // Five PUTs of 1 MiB (one chunk each, three replicas) and a GET of a
    // key that is not there.
    let before = Figures::read(&cluster);
    let file = cluster.dir.join("one.bin");
    fs::write(&file, vec![7u8; MIB as usize])?;
    let body = format!("@{}", file.display());
    let mut ids = Vec::new();
    for i in 0..5 {
        let url = cluster.presigned("put_object", "obs", &format!("o{i}"))?;
        let (status, id) = curl(&["-X", "PUT", "--data-binary", &body, &url])?;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        ids.push(id);
    }
    let url = cluster.presigned("get_object", "obs", "absent")?;
    let (status, _) = curl(&[&url])?;
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
    // A third replica may land after the answer; the router counts a
    // replica write once the node's answer is back.
    wait_until("every replica written", Duration::from_secs(30), || {
        let moved = Figures::read(&cluster).since(before);
        moved.node_puts >= 15 && moved.replica_writes >= 15
    })?;
    let moved = Figures::read(&cluster).since(before);
    println!("S3 workload moved: {moved:?}");
    assert_eq!(
        moved,
        Figures {
            puts: 5,
            not_found: 1,
            bytes_in: 5 * MIB,
            node_puts: 15,
            node_bytes: 15 * MIB,
            replica_writes: 15,
        }
    );

    // The first PUT's id, in a router's request span and in the span of
    // each node request that stored its chunk.
    let id = &ids[0];
    let logged = |prefix: &str, needle: &str| -> Result<usize> {
        let mut n = 0;
        for entry in fs::read_dir(cluster.dir.join("logs"))? {
            let path = entry?.path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if name.starts_with(prefix) {
                n += fs::read_to_string(&path)?.matches(needle).count();
            }
        }
        Ok(n)
    };
    assert!(
        logged("router-", &format!("id={id} "))? > 0,
        "request {id} not in a router's log"
    );
    let node_lines = logged("storage-node-", &format!("request_id={id} "))?;
    assert!(
        node_lines >= 3,
        "request {id} in {node_lines} node log lines, expected one per replica"
    );

    // The mount daemon's own metrics: a 3 MiB file written, a 1 MiB object read.
    let port = free_port()?;
    let address = format!("127.0.0.1:{port}");
    let mnt = cluster.dir.join("mnt");
    let _mount = cluster.mount_with("obs", &mnt, &["--metrics", &address])?;
    let before = Figures::read(&cluster);
    let dd = Command::new("dd")
        .arg("if=/dev/urandom")
        .arg(format!("of={}", mnt.join("three.bin").display()))
        .args(["bs=1M", "count=3", "conv=fsync", "status=none"])
        .status()?;
    if !dd.success() {
        bail!("dd failed");
    }
    assert_eq!(fs::read(mnt.join("o0"))?, vec![7u8; MIB as usize]);
    // dd, like a shell's `>`, opens the file and moves the descriptor with
    // dup2, closing the first: that close commits the new empty file (so
    // that other clients see it, as after any close), then the fsync its
    // 3 MiB.
    let moved = Figures::read(&cluster).since(before);
    assert_eq!(
        (moved.puts, moved.bytes_in),
        (2, 3 * MIB),
        "an empty PUT, then the bytes"
    );

    let text = http_get(port, "/metrics").context("the daemon serves /metrics")?;
    let value = |name: &str| metric(&text, name).unwrap_or(0);
    assert_eq!(value("bucketfs_fuse_written_bytes_total"), 3 * MIB, "{text}");
    assert_eq!(value("bucketfs_fuse_read_bytes_total"), MIB, "{text}");
    let ops = |op: &str| {
        value(&format!(
            r#"bucketfs_fuse_operation_duration_seconds_count{{op="{op}",outcome="ok"}}"#
        ))
    };
    assert!(ops("write") >= 3, "{text}");
    assert!(
        ops("read") >= 1 && ops("create") == 1 && ops("fsync") == 1,
        "{text}"
    );
    assert!(
        value(r#"bucketfs_fuse_cache_misses_total{tier="memory"}"#) >= 1,
        "{text}"
    );
    assert_eq!(value("bucketfs_fuse_uploads_queued"), 0, "{text}");

    // The Grafana dashboard in docker/ charts only metrics these processes export.
    let mut pages = vec![text];
    for port in cluster.ports.routers.iter().copied() {
        pages.push(http_get(port, "/_bucketfs/metrics").context("router metrics")?);
    }
    for port in cluster.ports.nodes.iter().copied() {
        pages.push(http_get(port, "/metrics").context("node metrics")?);
    }
    let exported: std::collections::BTreeSet<String> = pages
        .iter()
        .flat_map(|p| p.lines())
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let charted = dashboard_metrics()?;
    assert!(charted.len() > 20, "{charted:?}");
    for name in &charted {
        let base = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|b| exported.contains(*b)))
            .unwrap_or(name);
        assert!(
            exported.contains(base),
            "the dashboard charts {name}, which nothing exports"
        );
    }
    Ok(())
}

/// Every `bucketfs_*` metric name in the dashboard's queries.
fn dashboard_metrics() -> Result<std::collections::BTreeSet<String>> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/grafana/bucketfs-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path)?)?;
    let mut names = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().context("panels")? {
        for target in panel["targets"].as_array().context("targets")? {
            let expr = target["expr"].as_str().context("expr")?;
            for (at, _) in expr.match_indices("bucketfs_") {
                let name: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                names.insert(name);
            }
        }
    }
    Ok(names)
}

/// The `state` of node `id` in a `router status --json`.
fn node_state(status: &serde_json::Value, id: &str) -> Option<String> {
    status["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"] == id)
        .and_then(|n| n["state"].as_str())
        .map(str::to_string)
}

#[test]
fn status_shows_a_killed_node_gone_and_repair_ends_under_replication() -> Result<()> {
    let mut cluster = Cluster::start_with_router_args(&[
        "--worker-interval-secs",
        "0.5",
        "--repair-after-secs",
        "0",
        // A fresh chunk's third replica may still be in flight.
        "--repair-min-age-secs",
        "2",
    ])?;
    cluster.aws_ok(&["s3", "mb", "s3://stat"])?;
    let file = cluster.dir.join("twenty.bin");
    fs::write(&file, (0..20 * MIB).map(|i| (i % 251) as u8).collect::<Vec<u8>>())?;
    cluster.aws_ok(&["s3", "cp", &file.display().to_string(), "s3://stat/twenty"])?;
    let under = |s: &serde_json::Value| s["chunks"]["under_replicated"].as_u64();
    wait_until("every replica written", Duration::from_secs(60), || {
        cluster
            .status()
            .is_ok_and(|s| s["chunks"]["total"] == 3 && under(&s) == Some(0))
    })?;
    let text = cluster.status_text()?;
    println!("{text}");
    assert!(text.starts_with("cluster: healthy\npostgres: ok"), "{text}");
    let live_rows = text
        .lines()
        .filter(|l| l.starts_with("storage-node-") && l.contains(" live "))
        .count();
    assert_eq!(live_rows, 3, "{text}");
    let status = cluster.status()?;
    assert!(status["zookeeper"]["ok"].as_bool() == Some(true), "{status}");
    for n in status["nodes"].as_array().context("nodes")? {
        assert_eq!(n["replicas"], 3, "{n}");
        assert!(
            n["capacity_bytes"].as_u64() > Some(0) && n["free_bytes"].as_u64() > Some(0),
            "{n}"
        );
    }

    // A node dies: it shows as gone and its chunks as under-replicated
    // (two nodes are left, so nothing can be repaired yet).
    cluster.kill9("storage-node-1")?;
    wait_until("node 1 gone", Duration::from_secs(30), || {
        cluster.status().is_ok_and(|s| {
            node_state(&s, "storage-node-1").as_deref() == Some("gone") && under(&s) == Some(3)
        })
    })?;
    let text = cluster.status_text()?;
    println!("{text}");
    assert!(text.starts_with("cluster: DEGRADED"), "{text}");

    // A new node joins; the worker copies the lost replicas onto it.
    let new = cluster.add_node()?;
    wait_until("repair onto the new node", Duration::from_secs(60), || {
        cluster.status().is_ok_and(|s| under(&s) == Some(0))
    })?;
    let status = cluster.status()?;
    let text = cluster.status_text()?;
    println!("{text}");
    assert_eq!(node_state(&status, "storage-node-1").as_deref(), Some("gone"));
    assert_eq!(
        node_state(&status, &format!("storage-node-{new}")).as_deref(),
        Some("live")
    );
    let worker = &status["worker"];
    assert!(
        worker["leader"]
            .as_str()
            .is_some_and(|l| l.starts_with("127.0.0.1:")),
        "{worker}"
    );
    assert!(worker["passes"].as_u64() > Some(0), "{worker}");
    Ok(())
}

#[test]
fn the_status_page_shows_the_nodes_and_their_space_in_a_browser() -> Result<()> {
    let mut cluster = Cluster::start_with_router_args(&["--status-page", "--worker-interval-secs", "1"])?;
    cluster.aws_ok(&["s3", "mb", "s3://page"])?;
    let url = format!("http://127.0.0.1:{}/ui", cluster.ports.routers[0]);
    let chromium = |args: &[&str]| -> Result<String> {
        let out = Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
            .args(["--window-size=1280,900", "--virtual-time-budget=2000"])
            .args(args)
            .arg(&url)
            .output()
            .context("running chromium (apt-get install chromium)")?;
        if !out.status.success() {
            bail!("chromium failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // The page as the browser built it.
    let dom = chromium(&["--dump-dom"])?;
    for i in 1..=3 {
        assert!(dom.contains(&format!("<td>storage-node-{i}</td>")), "{dom}");
    }
    assert_eq!(dom.matches("<td class=\"live\">live</td>").count(), 3, "{dom}");
    // Each node's space: "used of size" with binary units, and a bar.
    assert_eq!(
        dom.matches("iB of ").count(),
        3 + 1,
        "three nodes and the capacity card: {dom}"
    );
    assert!(
        dom.contains("healthy") && dom.contains("Requests per second"),
        "{dom}"
    );
    // And as a person sees it.
    let shot = cluster.dir.join("status-page.png");
    chromium(&[&format!("--screenshot={}", shot.display())])?;
    let png = fs::read(&shot)?;
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("BUCKETFS_STATUS_SCREENSHOT") {
        fs::copy(&shot, keep)?;
    }
    // Without the flag there is no page.
    let plain = cluster.start_extra_router("router-plain", &[])?;
    assert!(
        http_get(plain, "/ui").is_none(),
        "a router without --status-page served /ui"
    );
    Ok(())
}
