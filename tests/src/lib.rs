//! The cluster harness: real Postgres, ZooKeeper, HAProxy, routers and
//! storage nodes as processes on loopback. The end-to-end tests, the
//! benchmarks and `make up` all start clusters through it.
//!
//! Each process writes its pid to `<dir>/pids/<name>.pid` and its output to
//! `<dir>/logs/<name>.log`. A test cluster lives in a temporary directory on
//! free ports and is killed on drop; `make up` detaches its cluster and
//! `bucketfs-cluster down` stops it from the pid files.

pub mod hosts;
pub mod soak;
pub mod tallies;
pub mod tools;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bucketfs_common::peer_auth::ClusterSecret;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, User};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
pub const STORAGE_NODES: usize = 3;
pub const ROUTERS: usize = 2;

/// Ports of every service of a cluster.
#[derive(Debug, Clone)]
pub struct Ports {
    pub postgres: u16,
    pub zookeeper: u16,
    pub haproxy: u16,
    /// HAProxy's HTTPS port (TLS ends there; see `Cluster::https_endpoint`).
    pub haproxy_https: u16,
    pub routers: Vec<u16>,
    pub nodes: Vec<u16>,
}

impl Ports {
    /// Free ports picked by the kernel.
    pub fn free() -> Result<Self> {
        Ok(Self {
            postgres: free_port()?,
            zookeeper: free_port()?,
            haproxy: free_port()?,
            haproxy_https: free_port()?,
            routers: (0..ROUTERS).map(|_| free_port()).collect::<Result<_>>()?,
            nodes: (0..STORAGE_NODES).map(|_| free_port()).collect::<Result<_>>()?,
        })
    }

    /// The fixed ports of the `make up` quick start.
    pub fn quick_start() -> Self {
        Self {
            postgres: 15432,
            zookeeper: 12181,
            haproxy: 9000,
            haproxy_https: 9443,
            routers: vec![9001, 9002],
            nodes: vec![9101, 9102, 9103],
        }
    }
}

/// A bindable port below the kernel's ephemeral range (32768+), so that
/// outgoing client connections can never take it before our server binds it.
/// A process-wide cursor keeps parallel clusters in one test binary apart.
pub fn free_port() -> Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static CURSOR: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = CURSOR.compare_exchange(
        u32::MAX,
        rand::random::<u32>() % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + CURSOR.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port between {LOW} and {}", LOW + SPAN)
}

/// A running cluster.
pub struct Cluster {
    pub dir: PathBuf,
    pub ports: Ports,
    pub access_key: String,
    pub secret_key: String,
    bin_dir: PathBuf,
    /// Extra flags for every `router serve`.
    router_args: Vec<String>,
    children: BTreeMap<String, Child>,
    /// `RUST_LOG` of the routers and nodes, if not the caller's.
    log_filter: Option<String>,
    /// Temporary clusters delete their directory when dropped.
    temporary: bool,
    detached: bool,
}

/// Directory holding the workspace binaries built with the same profile as the caller.
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("BUCKETFS_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

impl Cluster {
    /// Starts a whole cluster in a fresh temporary directory on free ports.
    pub fn start() -> Result<Self> {
        Self::start_with_router_args(&[])
    }

    /// Like `start`, passing extra flags to every router (e.g. worker tuning).
    pub fn start_with_router_args(router_args: &[&str]) -> Result<Self> {
        let base = std::env::temp_dir().join(format!("bucketfs-test-{:016x}", rand::random::<u64>()));
        Self::start_in(&base, Ports::free()?, true, router_args)
    }

    /// Like `start`, with the routers and nodes logging as `filter` says
    /// (`RUST_LOG` syntax), e.g. every request at debug level.
    pub fn start_with_log_filter(filter: &str) -> Result<Self> {
        let base = std::env::temp_dir().join(format!("bucketfs-test-{:016x}", rand::random::<u64>()));
        Self::start_configured(&base, Ports::free()?, true, &[], Some(filter.to_string()))
    }

    pub fn start_in(dir: &Path, ports: Ports, temporary: bool, router_args: &[&str]) -> Result<Self> {
        Self::start_configured(dir, ports, temporary, router_args, None)
    }

    fn start_configured(
        dir: &Path,
        ports: Ports,
        temporary: bool,
        router_args: &[&str],
        log_filter: Option<String>,
    ) -> Result<Self> {
        for sub in ["pids", "logs", "nodes"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let mut cluster = Self {
            dir: dir.to_path_buf(),
            ports,
            access_key: format!("BFS{}", hex::encode_upper(rand::random::<[u8; 8]>())),
            secret_key: hex::encode(rand::random::<[u8; 20]>()),
            bin_dir: bin_dir(),
            router_args: router_args.iter().map(|a| a.to_string()).collect(),
            children: BTreeMap::new(),
            log_filter,
            temporary,
            detached: false,
        };
        cluster.write_cluster_secret()?;
        cluster.write_tls_certificate()?;
        cluster.start_postgres(true)?;
        cluster.start_zookeeper()?;
        for i in 1..=STORAGE_NODES {
            cluster.start_node(i)?;
        }
        cluster.create_access_key()?;
        for i in 1..=ROUTERS {
            cluster.start_router(i)?;
        }
        cluster.start_haproxy()?;
        for i in 1..=ROUTERS {
            cluster.wait_live_nodes(i, STORAGE_NODES)?;
        }
        Ok(cluster)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.haproxy)
    }

    /// The same service over HTTPS: HAProxy ends TLS with a certificate of
    /// the cluster's own CA (`tls_ca_path`, which clients trust).
    pub fn https_endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.ports.haproxy_https)
    }

    /// The certificate of the cluster's own CA, which clients trust.
    pub fn tls_ca_path(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    /// The servers' certificate (for 127.0.0.1 and localhost), issued by
    /// the cluster's CA.
    pub fn tls_cert_path(&self) -> PathBuf {
        self.dir.join("tls/cert.pem")
    }

    pub fn tls_key_path(&self) -> PathBuf {
        self.dir.join("tls/key.pem")
    }

    /// Makes a CA and a server certificate it signs (rustls, like browsers,
    /// refuses a CA certificate as a server's), and the one file of
    /// certificate and key HAProxy reads (`tls/haproxy.pem`).
    fn write_tls_certificate(&self) -> Result<()> {
        let tls = self.dir.join("tls");
        fs::create_dir_all(&tls)?;
        let openssl = |args: &[&str]| -> Result<()> {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&tls)
                .output()
                .context("running openssl (install it: scripts/install-deps.sh)")?;
            if !out.status.success() {
                bail!("openssl {}: {}", args[0], String::from_utf8_lossy(&out.stderr));
            }
            Ok(())
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &["-days", "3650", "-subj", "/CN=bucketfs local CA"],
                &["-keyout", "ca.key", "-out", "ca.pem"],
            ]
            .concat(),
        )?;
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-subj",
                    "/CN=127.0.0.1",
                    "-keyout",
                    "key.pem",
                    "-out",
                    "server.csr",
                ],
            ]
            .concat(),
        )?;
        fs::write(
            tls.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            "server.ext",
            "-out",
            "cert.pem",
        ])?;
        let combined = [fs::read(self.tls_cert_path())?, fs::read(self.tls_key_path())?].concat();
        fs::write(tls.join("haproxy.pem"), combined)?;
        Ok(())
    }

    pub fn router_endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports.routers[i - 1])
    }

    pub fn database_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.ports.postgres)
    }

    /// Runs `sql` on the metadata database; answers its unaligned output.
    pub fn psql(&self, sql: &str) -> Result<String> {
        let out = Command::new("psql")
            .args([&self.database_url(), "-XAtc", sql])
            .output()?;
        tools::check(out, "psql")
    }

    pub fn node_data_dir(&self, i: usize) -> PathBuf {
        self.dir.join("nodes").join(format!("storage-node-{i}"))
    }

    /// The file with the secret the cluster's routers and nodes share.
    pub fn cluster_secret_path(&self) -> PathBuf {
        self.dir.join("cluster-secret")
    }

    /// Writes a fresh cluster secret (readable by its owner only), unless
    /// the directory has one from an earlier start.
    fn write_cluster_secret(&self) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.cluster_secret_path();
        if path.exists() {
            return Ok(());
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        writeln!(file, "{}", ClusterSecret::generate())?;
        Ok(())
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// Leaves the processes running when this value is dropped.
    pub fn detach(mut self) {
        self.detached = true;
    }

    fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(name))?;
        if let Some(filter) = &self.log_filter {
            cmd.env("RUST_LOG", filter);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        fs::write(
            self.dir.join("pids").join(format!("{name}.pid")),
            format!("{}\n", child.id()),
        )?;
        self.children.insert(name.to_string(), child);
        Ok(())
    }

    // ---- postgres ----------------------------------------------------------

    fn start_postgres(&mut self, init: bool) -> Result<()> {
        let user = User::from_name("postgres")?
            .context("the postgres user is missing (apt-get install postgresql)")?;
        let data = self.dir.join("postgres");
        if init && !data.join("PG_VERSION").exists() {
            initdb(&data, &user)?;
        }
        let mut cmd = Command::new(format!("{PG_BIN}/postgres"));
        cmd.args(["-D", data.to_str().unwrap()])
            .args(["-p", &self.ports.postgres.to_string()])
            .args(["-k", data.to_str().unwrap()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"])
            // Autovacuum looks every second, not every minute: the routers'
            // cached plans are made from the statistics of the last ANALYZE,
            // and one taken right after a mass delete describes empty
            // tables. Until the next, every listing and commit scanned the
            // whole table: extracting 9,000 files after deleting 5,000 took
            // 21-37 s instead of 8-10.
            .args(["-c", "autovacuum_naptime=1"])
            .uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .current_dir("/");
        // BUCKETFS_PG_SLOW_MS=N logs every statement slower than N ms to
        // logs/postgres.log (with BUCKETFS_KEEP_TEST_DIRS=1 to keep it).
        if let Ok(ms) = std::env::var("BUCKETFS_PG_SLOW_MS") {
            cmd.args(["-c", &format!("log_min_duration_statement={ms}")]);
        }
        self.spawn("postgres", cmd)?;
        let port = self.ports.postgres;
        wait_for("postgres", Duration::from_secs(60), || {
            Command::new(format!("{PG_BIN}/pg_isready"))
                .args(["-h", "127.0.0.1", "-U", "postgres", "-p", &port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// Stops Postgres (fast shutdown) and starts it again on the same data.
    pub fn restart_postgres(&mut self) -> Result<()> {
        self.stop("postgres", Signal::SIGINT)?;
        self.start_postgres(false)
    }

    // ---- zookeeper ---------------------------------------------------------

    fn start_zookeeper(&mut self) -> Result<()> {
        let data = self.dir.join("zookeeper");
        fs::create_dir_all(&data)?;
        let cfg = write_zookeeper_config(&data, self.ports.zookeeper, Some("127.0.0.1"))?;
        let mut cmd = Command::new("java");
        cmd.args(ZOOKEEPER_ARGS).arg(&cfg);
        self.spawn("zookeeper", cmd)?;
        let port = self.ports.zookeeper;
        wait_for("zookeeper", Duration::from_secs(60), || {
            four_letter_word(port, "ruok").is_some_and(|r| r == "imok")
        })
    }

    // ---- storage nodes and routers -----------------------------------------

    pub fn start_node(&mut self, i: usize) -> Result<()> {
        let name = format!("storage-node-{i}");
        let port = self.ports.nodes[i - 1];
        let mut cmd = Command::new(self.bin_dir.join("storage-node"));
        cmd.args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(self.node_data_dir(i))
            .args(["--node-id", &name])
            .args(["--zookeeper", &format!("127.0.0.1:{}", self.ports.zookeeper)])
            .arg("--cluster-secret-file")
            .arg(self.cluster_secret_path());
        self.spawn(&name, cmd)?;
        wait_for(&name, Duration::from_secs(30), || {
            http_get(port, "/health").is_some()
        })
    }

    /// Starts one more storage node on a free port; returns its index.
    pub fn add_node(&mut self) -> Result<usize> {
        self.ports.nodes.push(free_port()?);
        let i = self.ports.nodes.len();
        self.start_node(i)?;
        Ok(i)
    }

    /// The quick start's user, `admin`, with the cluster's own key.
    fn create_access_key(&self) -> Result<()> {
        self.router_key(&[
            "create",
            "--user",
            "admin",
            "--access-key",
            &self.access_key,
            "--secret-key",
            &self.secret_key,
        ])
        .map(drop)
    }

    /// Runs `router key ARGS` against the cluster's Postgres; its output.
    pub fn router_key(&self, args: &[&str]) -> Result<String> {
        self.router_admin("key", args)
    }

    /// Runs `router COMMAND ARGS` (an admin command) against the cluster's
    /// Postgres; its output.
    pub fn router_admin(&self, command: &str, args: &[&str]) -> Result<String> {
        let out = Command::new(self.bin_dir.join("router"))
            .args([command, "--database-url", &self.database_url()])
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!(
                "router {command} {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `router status` of the cluster, as JSON.
    pub fn status(&self) -> Result<serde_json::Value> {
        let zookeeper = format!("127.0.0.1:{}", self.ports.zookeeper);
        let secret = self.cluster_secret_path().display().to_string();
        let args = ["--zookeeper", &zookeeper, "--cluster-secret-file", &secret];
        let out = self.router_admin("status", &[&args[..], &["--json"]].concat())?;
        serde_json::from_str(&out).with_context(|| format!("router status printed {out}"))
    }

    /// `router status` of the cluster, as its text.
    pub fn status_text(&self) -> Result<String> {
        let zookeeper = format!("127.0.0.1:{}", self.ports.zookeeper);
        let secret = self.cluster_secret_path().display().to_string();
        self.router_admin(
            "status",
            &["--zookeeper", &zookeeper, "--cluster-secret-file", &secret],
        )
    }

    /// Makes user `name` with a fresh key: (canonical id, access key, secret).
    pub fn create_user(&self, name: &str) -> Result<(String, String, String)> {
        let out = self.router_key(&["create", "--user", name])?;
        let field = |k: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(str::to_string)
                .with_context(|| format!("no {k} in {out:?}"))
        };
        Ok((field("user_id")?, field("access_key")?, field("secret_key")?))
    }

    /// `router serve` on `port` with the cluster's settings.
    fn router_command(&self, port: u16) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("router"));
        cmd.arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--database-url", &self.database_url()])
            .args(["--zookeeper", &format!("127.0.0.1:{}", self.ports.zookeeper)])
            .arg("--cluster-secret-file")
            .arg(self.cluster_secret_path());
        cmd
    }

    /// Starts one more router, outside HAProxy, with `args` instead of the
    /// cluster's router arguments; returns its port once it accepts
    /// connections (it may serve HTTPS, so no health request is made).
    pub fn start_extra_router(&mut self, name: &str, args: &[&str]) -> Result<u16> {
        let port = free_port()?;
        let mut cmd = self.router_command(port);
        cmd.args(args);
        self.spawn(name, cmd)?;
        wait_for(name, Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?;
        Ok(port)
    }

    /// [`Self::start_extra_router`] logging at debug level into a pipe
    /// whose reading end it answers (drop it to close the router's log).
    pub fn start_extra_router_logging_to_pipe(
        &mut self,
        name: &str,
        args: &[&str],
    ) -> Result<(u16, std::process::ChildStderr)> {
        let port = free_port()?;
        let mut cmd = self.router_command(port);
        cmd.args(args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let stderr = child.stderr.take().context("the router's stderr")?;
        self.children.insert(name.to_string(), child);
        wait_for(name, Duration::from_secs(30), || {
            http_get(port, "/_bucketfs/health").is_some()
        })?;
        Ok((port, stderr))
    }

    pub fn start_router(&mut self, i: usize) -> Result<()> {
        let name = format!("router-{i}");
        let port = self.ports.routers[i - 1];
        let mut cmd = self.router_command(port);
        cmd.args(&self.router_args);
        self.spawn(&name, cmd)?;
        wait_for(&name, Duration::from_secs(30), || {
            http_get(port, "/_bucketfs/health").is_some()
        })
    }

    /// Waits until router `i` sees `n` live storage nodes.
    pub fn wait_live_nodes(&self, i: usize, n: usize) -> Result<()> {
        let port = self.ports.routers[i - 1];
        let want = format!("bucketfs_router_live_storage_nodes {n}\n");
        wait_for(
            &format!("router-{i} to see {n} nodes"),
            Duration::from_secs(30),
            || http_get(port, "/_bucketfs/metrics").is_some_and(|m| m.contains(&want)),
        )
    }

    /// A counter from router `i`'s metrics.
    pub fn router_metric(&self, i: usize, name: &str) -> Option<u64> {
        let text = http_get(self.ports.routers[i - 1], "/_bucketfs/metrics")?;
        metric(&text, name)
    }

    /// A counter summed over the cluster's routers (a router that does not
    /// answer counts 0).
    pub fn routers_metric(&self, name: &str) -> u64 {
        (1..=self.ports.routers.len())
            .filter_map(|i| self.router_metric(i, name))
            .sum()
    }

    /// The chunk files of storage node `i`.
    fn chunk_files(&self, i: usize) -> impl Iterator<Item = fs::DirEntry> {
        chunk_files_in(&self.node_data_dir(i))
    }

    /// How many chunk files storage node `i` holds.
    pub fn chunk_file_count(&self, i: usize) -> usize {
        self.chunk_files(i).count()
    }

    /// Bytes storage node `i`'s chunk files take on disk (allocated blocks).
    pub fn chunk_disk_bytes(&self, i: usize) -> u64 {
        use std::os::unix::fs::MetadataExt;
        self.chunk_files(i)
            .map(|f| f.metadata().map(|m| m.blocks() * 512).unwrap_or(0))
            .sum()
    }

    /// A counter from storage node `i`'s metrics.
    pub fn node_metric(&self, i: usize, name: &str) -> Option<u64> {
        let text = http_get(self.ports.nodes[i - 1], "/metrics")?;
        metric(&text, name)
    }

    /// A counter summed over the cluster's storage nodes (a node that does
    /// not answer counts 0).
    pub fn nodes_metric(&self, name: &str) -> u64 {
        (1..=self.ports.nodes.len())
            .filter_map(|i| self.node_metric(i, name))
            .sum()
    }

    // ---- haproxy -----------------------------------------------------------

    fn start_haproxy(&mut self) -> Result<()> {
        let servers: String = self
            .ports
            .routers
            .iter()
            .enumerate()
            .map(|(i, p)| format!("  server router-{} 127.0.0.1:{p} check\n", i + 1))
            .collect();
        // Bodies are spliced through the kernel, not copied through
        // HAProxy: half its CPU on 1 GiB reads and writes. A request with
        // `Expect: 100-continue` refused before its body was asked for
        // (an access check) closes the client's connection: a client that
        // then never sends the body (boto3) and reuses the connection
        // would otherwise have its next request taken for that body.
        // Slow or idle clients are cut off: a request's headers must
        // arrive within 10 s, a client may stay silent 30 s (mid-body or
        // between requests), so idle connections cannot use up `maxconn`
        // and a stalled upload does not hold a router's buffers for long.
        // HAProxy needs two descriptors per connection and two per splice
        // pipe (a pipe per four connections), and refuses to start with a
        // maxconn the hard limit cannot serve.
        let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(_, hard)| hard)
            .unwrap_or(4096);
        let maxconn = (hard.saturating_sub(1000) * 2 / 5).clamp(256, 20_000);
        let cfg = self.dir.join("haproxy.cfg");
        fs::write(
            &cfg,
            format!(
                "global\n  maxconn {maxconn}\n\
                 defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 600s\n\
                 \x20 timeout http-request 10s\n  timeout http-keep-alive 30s\n\
                 \x20 retries 3\n  option redispatch 1\n  retry-on conn-failure empty-response response-timeout\n\
                 \x20 option splice-request\n  option splice-response\n\
                 frontend s3\n  bind 127.0.0.1:{}\n  bind 127.0.0.1:{} ssl crt {}\n  option forwardfor\n\
                 \x20 http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}\n\
                 \x20 http-request set-header X-Forwarded-Proto http if !{{ ssl_fc }}\n\
                 \x20 http-request set-var(txn.expect) req.hdr(expect)\n\
                 \x20 http-after-response set-header Connection close if {{ status ge 400 }} {{ var(txn.expect) -m found }}\n\
                 \x20 default_backend routers\n\
                 backend routers\n  balance roundrobin\n  option httpchk GET /_bucketfs/health\n\
                 \x20 default-server inter 500ms fall 2 rise 1\n{servers}",
                self.ports.haproxy,
                self.ports.haproxy_https,
                self.dir.join("tls/haproxy.pem").display(),
            ),
        )?;
        let mut cmd = Command::new("haproxy");
        cmd.arg("-db").arg("-f").arg(&cfg);
        self.spawn("haproxy", cmd)?;
        let port = self.ports.haproxy;
        wait_for("haproxy", Duration::from_secs(30), || {
            http_get(port, "/_bucketfs/health").is_some()
        })
    }

    // ---- process control ---------------------------------------------------

    /// `kill -9` of one process (by its name, e.g. `storage-node-2`).
    pub fn kill9(&mut self, name: &str) -> Result<()> {
        self.stop(name, Signal::SIGKILL)
    }

    /// Sends `signal` to `name` without waiting for it (SIGSTOP, SIGCONT).
    pub fn signal(&self, name: &str, signal: Signal) -> Result<()> {
        let child = self
            .children
            .get(name)
            .with_context(|| format!("{name} is not running"))?;
        kill(Pid::from_raw(child.id() as i32), signal)?;
        Ok(())
    }

    /// Stops `name` with SIGTERM (a clean stop) and waits for it.
    pub fn terminate(&mut self, name: &str) -> Result<()> {
        self.stop(name, Signal::SIGTERM)
    }

    fn stop(&mut self, name: &str, signal: Signal) -> Result<()> {
        let mut child = self
            .children
            .remove(name)
            .with_context(|| format!("{name} is not running"))?;
        let _ = kill(Pid::from_raw(child.id() as i32), signal);
        child.wait()?;
        let _ = fs::remove_file(self.dir.join("pids").join(format!("{name}.pid")));
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        let names: Vec<String> = self.children.keys().cloned().collect();
        for name in names {
            // Postgres: immediate shutdown, so its backends exit with it.
            let signal = if name == "postgres" {
                Signal::SIGQUIT
            } else {
                Signal::SIGKILL
            };
            let _ = self.stop(&name, signal);
        }
        if self.temporary && std::env::var_os("BUCKETFS_KEEP_TEST_DIRS").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Stops every process recorded under `<dir>/pids`, for `make down`.
pub fn stop_from_pid_files(dir: &Path) -> Result<()> {
    let pids = dir.join("pids");
    let Ok(entries) = fs::read_dir(&pids) else {
        return Ok(());
    };
    let mut waiting = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let pid: i32 = fs::read_to_string(&path)?.trim().parse()?;
        let signal = if name == "postgres" {
            Signal::SIGINT
        } else {
            Signal::SIGTERM
        };
        if kill(Pid::from_raw(pid), signal).is_ok() {
            waiting.push((name, pid));
        }
        fs::remove_file(&path)?;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for (name, pid) in waiting {
        while kill(Pid::from_raw(pid), None).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if kill(Pid::from_raw(pid), None).is_ok() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        println!("stopped {name} (pid {pid})");
    }
    Ok(())
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("timed out waiting for {what}")
}

/// `java` arguments that run a ZooKeeper server (its config file follows).
const ZOOKEEPER_ARGS: [&str; 4] = [
    "-Xmx256m",
    "-cp",
    "/usr/share/java/*",
    "org.apache.zookeeper.server.ZooKeeperServerMain",
];

/// Writes `data/zoo.cfg` for a standalone server on `port` (of `address`
/// only, if given); returns its path.
fn write_zookeeper_config(data: &Path, port: u16, address: Option<&str>) -> Result<PathBuf> {
    let cfg = data.join("zoo.cfg");
    let bind = address.map_or_else(String::new, |a| format!("clientPortAddress={a}\n"));
    fs::write(
        &cfg,
        format!(
            "tickTime=500\ndataDir={}\nclientPort={port}\n{bind}\
             admin.enableServer=false\n4lw.commands.whitelist=ruok,stat\nmaxSessionTimeout=20000\n",
            data.display()
        ),
    )?;
    Ok(cfg)
}

/// Makes a Postgres data directory at `data`, owned by `user`, that trusts
/// local connections.
fn initdb(data: &Path, user: &User) -> Result<()> {
    fs::create_dir_all(data)?;
    nix::unistd::chown(data, Some(user.uid), Some(user.gid))?;
    let out = Command::new(format!("{PG_BIN}/initdb"))
        .arg("-D")
        .arg(data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        .uid(user.uid.as_raw())
        .gid(user.gid.as_raw())
        .current_dir("/")
        .output()?;
    if !out.status.success() {
        bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The chunk files under a storage node's data directory.
pub fn chunk_files_in(data_dir: &Path) -> impl Iterator<Item = fs::DirEntry> {
    fs::read_dir(data_dir.join("chunks"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|shard| fs::read_dir(shard.path()).into_iter().flatten().flatten())
}

/// A plain HTTP/1.0 GET on loopback; the body if the status is 200.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    (head.split(' ').nth(1) == Some("200")).then(|| body.to_string())
}

fn four_letter_word(port: u16, word: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(word.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The integer value of metric `name` (labels included, as rendered:
/// `x_count{op="put"}`) in a Prometheus text page.
pub fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Polls `f` every 200 ms until it holds or `timeout` passes.
pub fn wait_until(what: &str, timeout: std::time::Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if f() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    anyhow::bail!("timed out: {what}")
}

/// Is anything mounted at `dir`?
pub fn is_mounted(dir: &Path) -> bool {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&*dir.to_string_lossy()))
}
