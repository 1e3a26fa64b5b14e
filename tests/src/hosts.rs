//! Several hosts on one machine: each service in a network namespace of
//! its own with its own address on a private bridge, configured only as an
//! operator configures separate machines (listen on every interface,
//! advertise the host's address, reach Postgres and ZooKeeper by address),
//! so nothing works by way of loopback. The bridge lives in a namespace of
//! its own too: the host's interfaces and firewall are never touched, and
//! the addresses (198.18.1.0/24, from the benchmarking range) stay private
//! to each `Hosts`.
//!
//! Processes join a namespace with `nsenter --net` only, so a FUSE mount
//! made in the client's namespace is visible to the test. Fault tests cut a
//! host off with [`Hosts::isolate`].

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::unistd::User;

use crate::{wait_for, PG_BIN};

/// The private network's first three octets.
const SUBNET: &str = "198.18.1";
const NODE_PORT: u16 = 9100;
const ROUTER_PORT: u16 = 9000;
const POSTGRES_PORT: u16 = 5432;
const ZOOKEEPER_PORT: u16 = 2181;

/// A host: its name and the last octet of its address.
#[derive(Debug, Clone)]
struct Host {
    name: String,
    octet: u8,
}

/// A cluster spread over hosts: `postgres`, `zookeeper`, `node1`..`node3`,
/// `router1`, `router2` and `client`.
pub struct Hosts {
    pub dir: PathBuf,
    /// Prefix of this cluster's namespace names.
    id: String,
    hosts: Vec<Host>,
    children: Vec<(String, Child)>,
    /// Extra flags of every router and extra environment of every node (`start_with`).
    router_args: Vec<String>,
    node_env: Vec<(String, String)>,
    pub access_key: String,
    pub secret_key: String,
}

impl Hosts {
    /// Builds the network and starts every service on its host.
    pub fn start() -> Result<Self> {
        Self::start_with(&[], &[], |_| Ok(()))
    }

    /// As `start`, the routers with `router_args` and the nodes with
    /// `node_env`; `prepare` runs once the directory exists and before any
    /// service starts (to put a node's data on a small disk, say).
    pub fn start_with(
        router_args: &[&str],
        node_env: &[(&str, &str)],
        prepare: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Self> {
        let id = format!("bfs{:06x}", rand::random::<u32>() & 0xff_ffff);
        let dir = std::env::temp_dir().join(format!("bucketfs-hosts-{id}"));
        fs::create_dir_all(dir.join("logs"))?;
        let mut hosts = Hosts {
            dir,
            id,
            hosts: Vec::new(),
            children: Vec::new(),
            router_args: router_args.iter().map(|a| a.to_string()).collect(),
            node_env: node_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            access_key: format!("BFS{}", hex::encode_upper(rand::random::<[u8; 8]>())),
            secret_key: hex::encode(rand::random::<[u8; 20]>()),
        };
        hosts.build_network()?;
        prepare(&hosts.dir)?;
        fs::write(hosts.secret_path(), hex::encode(rand::random::<[u8; 32]>()))?;
        hosts.start_postgres()?;
        hosts.start_zookeeper()?;
        for i in 1..=3 {
            hosts.start_node(i)?;
        }
        let out = hosts
            .in_host("router1", &crate::bin_dir().join("router"))
            .args([
                "key",
                "--database-url",
                &hosts.database_url(),
                "create",
                "--user",
                "admin",
            ])
            .args([
                "--access-key",
                &hosts.access_key,
                "--secret-key",
                &hosts.secret_key,
            ])
            .output()
            .context("creating the access key")?;
        crate::tools::check(out, "router key create")?;
        for i in 1..=2 {
            hosts.start_router(i)?;
        }
        Ok(hosts)
    }

    fn namespace(&self, host: &str) -> String {
        format!("{}-{host}", self.id)
    }

    /// The address of `host`.
    pub fn addr(&self, host: &str) -> String {
        let octet = self.hosts.iter().find(|h| h.name == host).map_or(0, |h| h.octet);
        format!("{SUBNET}.{octet}")
    }

    /// The S3 endpoint of router `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://{}:{ROUTER_PORT}", self.addr(&format!("router{i}")))
    }

    fn secret_path(&self) -> PathBuf {
        self.dir.join("cluster-secret")
    }

    fn database_url(&self) -> String {
        format!(
            "postgres://postgres@{}:{POSTGRES_PORT}/postgres",
            self.addr("postgres")
        )
    }

    fn zookeeper(&self) -> String {
        format!("{}:{ZOOKEEPER_PORT}", self.addr("zookeeper"))
    }

    /// The bridge's namespace, then one namespace per host wired to it by a
    /// veth pair whose host end is `eth0`.
    fn build_network(&mut self) -> Result<()> {
        let bridge = self.namespace("net");
        ip(&["netns", "add", &bridge])?;
        ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &bridge, "link", "set", "br0", "up"])?;
        let names = [
            ("postgres", 10),
            ("zookeeper", 11),
            ("node1", 21),
            ("node2", 22),
            ("node3", 23),
            ("router1", 31),
            ("router2", 32),
            ("client", 40),
        ];
        for (name, octet) in names {
            let ns = self.namespace(name);
            ip(&["netns", "add", &ns])?;
            self.hosts.push(Host {
                name: name.to_string(),
                octet,
            });
            // Interface names are at most 15 bytes: the id's digits and the octet.
            let outer = format!("v{}o{octet}", &self.id[3..]);
            let inner = format!("v{}i{octet}", &self.id[3..]);
            ip(&["link", "add", &outer, "type", "veth", "peer", "name", &inner])?;
            ip(&["link", "set", &outer, "netns", &bridge])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["-n", &bridge, "link", "set", &outer, "master", "br0", "up"])?;
            ip(&["-n", &ns, "link", "set", &inner, "name", "eth0"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{SUBNET}.{octet}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// `program` run on `host`.
    pub fn in_host(&self, host: &str, program: &Path) -> Command {
        self.in_host_as(host, program, None)
    }

    /// `program` run on `host` as `user` (nsenter enters as root, then
    /// becomes the user).
    fn in_host_as(&self, host: &str, program: &Path, user: Option<&User>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.namespace(host)));
        if let Some(user) = user {
            cmd.arg(format!("--setgid={}", user.gid))
                .arg(format!("--setuid={}", user.uid));
        }
        cmd.arg("--").arg(program);
        cmd
    }

    fn spawn(&mut self, host: &str, name: &str, mut cmd: Command) -> Result<()> {
        // Appended to: a service started again keeps its earlier log.
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("logs").join(format!("{name}.log")))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env("RUST_LOG", "info,router=debug,storage_node=debug");
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} on {host}"))?;
        self.children.push((name.to_string(), child));
        Ok(())
    }

    /// Waits until `host` can open a TCP connection to `addr`.
    fn wait_port(&self, host: &str, what: &str, addr: &str) -> Result<()> {
        let (ip, port) = addr.rsplit_once(':').context("host:port")?;
        wait_for(what, Duration::from_secs(60), || {
            self.in_host(host, Path::new("nc"))
                .args(["-z", "-w", "1", ip, port])
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    fn start_postgres(&mut self) -> Result<()> {
        let user = User::from_name("postgres")?.context("the postgres user is missing")?;
        let data = self.dir.join("postgres");
        if !data.join("PG_VERSION").exists() {
            crate::initdb(&data, &user)?;
            // The routers' hosts connect over the network.
            let hba = data.join("pg_hba.conf");
            let mut rules = fs::read_to_string(&hba)?;
            rules.push_str(&format!("host all all {SUBNET}.0/24 trust\n"));
            fs::write(&hba, rules)?;
        }
        let postgres = PathBuf::from(format!("{PG_BIN}/postgres"));
        let mut cmd = self.in_host_as("postgres", &postgres, Some(&user));
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &POSTGRES_PORT.to_string()])
            .arg("-k")
            .arg(&data)
            .args(["-c", "listen_addresses=*", "-c", "max_connections=200"])
            .current_dir("/");
        self.spawn("postgres", "postgres", cmd)?;
        let addr = format!("{}:{POSTGRES_PORT}", self.addr("postgres"));
        self.wait_port("router1", "postgres", &addr)
    }

    fn start_zookeeper(&mut self) -> Result<()> {
        let data = self.dir.join("zookeeper");
        fs::create_dir_all(&data)?;
        let cfg = crate::write_zookeeper_config(&data, ZOOKEEPER_PORT, None)?;
        let mut cmd = self.in_host("zookeeper", Path::new("java"));
        cmd.args(crate::ZOOKEEPER_ARGS).arg(&cfg);
        self.spawn("zookeeper", "zookeeper", cmd)?;
        let addr = self.zookeeper();
        self.wait_port("router1", "zookeeper", &addr)
    }

    fn start_node(&mut self, i: usize) -> Result<()> {
        let host = format!("node{i}");
        let data = self.dir.join(&host);
        fs::create_dir_all(&data)?;
        // Configured through the environment, as a container is.
        let mut cmd = self.in_host(&host, &crate::bin_dir().join("storage-node"));
        cmd.env("BUCKETFS_LISTEN", format!("0.0.0.0:{NODE_PORT}"))
            .env("BUCKETFS_ADVERTISE", format!("{}:{NODE_PORT}", self.addr(&host)))
            .env("BUCKETFS_DATA_DIR", &data)
            .env("BUCKETFS_NODE_ID", &host)
            .env("BUCKETFS_ZOOKEEPER", self.zookeeper())
            .env("BUCKETFS_CLUSTER_SECRET_FILE", self.secret_path())
            .envs(self.node_env.iter().map(|(k, v)| (k, v)));
        self.spawn(&host, &host, cmd)?;
        let addr = format!("{}:{NODE_PORT}", self.addr(&host));
        self.wait_port("router1", &host, &addr)
    }

    fn start_router(&mut self, i: usize) -> Result<()> {
        let host = format!("router{i}");
        let mut cmd = self.in_host(&host, &crate::bin_dir().join("router"));
        cmd.arg("serve")
            .args(&self.router_args)
            .env("BUCKETFS_LISTEN", format!("0.0.0.0:{ROUTER_PORT}"))
            .env("BUCKETFS_DATABASE_URL", self.database_url())
            .env("BUCKETFS_ZOOKEEPER", self.zookeeper())
            .env("BUCKETFS_CLUSTER_SECRET_FILE", self.secret_path());
        self.spawn(&host, &host, cmd)?;
        let addr = format!("{}:{ROUTER_PORT}", self.addr(&host));
        self.wait_port("client", &host, &addr)?;
        wait_for(&format!("{host} to see 3 nodes"), Duration::from_secs(30), || {
            self.in_host("client", Path::new("curl"))
                .args(["-sf", &format!("{}/_bucketfs/metrics", self.endpoint(i))])
                .output()
                .is_ok_and(|o| {
                    String::from_utf8_lossy(&o.stdout).contains("bucketfs_router_live_storage_nodes 3\n")
                })
        })
    }

    /// The AWS CLI on the client host, talking to router `router`.
    pub fn aws(&self, router: usize, args: &[&str]) -> Command {
        let mut cmd = self.in_host("client", Path::new("aws"));
        cmd.args(["--endpoint-url", &self.endpoint(router)])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_DEFAULT_REGION", "us-east-1");
        cmd
    }

    /// Mounts `bucket` at `dir` from the client host, through router 1.
    pub fn mount(&self, bucket: &str, dir: &Path) -> Result<crate::tools::Mount> {
        fs::create_dir_all(dir)?;
        let out = self
            .in_host("client", &crate::bin_dir().join("bucketfs"))
            .args(["mount", bucket])
            .arg(dir)
            .env("AWS_ENDPOINT_URL", self.endpoint(1))
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("BUCKETFS_LOG", self.dir.join("logs").join("bucketfs.log"))
            .output()?;
        crate::tools::check(out, "bucketfs mount on the client host")?;
        Ok(crate::tools::Mount {
            dir: dir.to_path_buf(),
        })
    }

    /// The TCP addresses processes on `host` listen on.
    pub fn listening(&self, host: &str) -> Result<Vec<String>> {
        let out = self.in_host(host, Path::new("ss")).args(["-Hltn"]).output()?;
        if !out.status.success() {
            bail!("ss failed on {host}");
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
            .collect())
    }

    /// The hosts' names.
    pub fn names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.name.clone()).collect()
    }

    /// The directory of `host`'s data (a storage node's chunks).
    pub fn data_dir(&self, host: &str) -> PathBuf {
        self.dir.join(host)
    }

    /// `router status --json` as router 1's host sees the cluster.
    pub fn status(&self) -> Result<serde_json::Value> {
        let out = self
            .in_host("router1", &crate::bin_dir().join("router"))
            .args(["status", "--json", "--database-url", &self.database_url()])
            .args(["--zookeeper", &self.zookeeper()])
            .arg("--cluster-secret-file")
            .arg(self.secret_path())
            .output()?;
        let text = crate::tools::check(out, "router status")?;
        serde_json::from_str(&text).with_context(|| format!("router status printed {text}"))
    }

    /// `psql -c SQL` on the Postgres host; its unaligned output.
    pub fn psql(&self, sql: &str) -> Result<String> {
        let out = self
            .in_host("postgres", Path::new(&format!("{PG_BIN}/psql")))
            .args([&self.database_url(), "-XAtc", sql])
            .output()?;
        crate::tools::check(out, "psql")
    }

    /// Sends `signal` to the service `name` (`node2`, `router1`, `postgres`,
    /// `zookeeper`); with a signal that ends it (SIGKILL, SIGTERM, SIGINT)
    /// waits for it to go. Answers whether it was running.
    pub fn signal(&mut self, name: &str, signal: nix::sys::signal::Signal) -> Result<bool> {
        use nix::sys::signal::{kill, Signal};
        let Some(at) = self.children.iter().position(|(n, _)| n == name) else {
            return Ok(false);
        };
        let pid = nix::unistd::Pid::from_raw(self.children[at].1.id() as i32);
        kill(pid, signal)?;
        if matches!(signal, Signal::SIGKILL | Signal::SIGTERM | Signal::SIGINT) {
            let (_, mut child) = self.children.remove(at);
            child.wait()?;
        }
        Ok(true)
    }

    /// Starts the service `name` again (after `signal` ended it).
    pub fn restart(&mut self, name: &str) -> Result<()> {
        let number = |prefix: &str| name.strip_prefix(prefix).and_then(|n| n.parse::<usize>().ok());
        match name {
            "postgres" => self.start_postgres(),
            "zookeeper" => self.start_zookeeper(),
            _ if number("node").is_some() => self.start_node(number("node").unwrap_or(0)),
            _ if number("router").is_some() => self.start_router(number("router").unwrap_or(0)),
            _ => bail!("no service {name}"),
        }
    }

    /// Cuts `host` off the network (its link goes down) or puts it back.
    pub fn isolate(&self, host: &str, cut: bool) -> Result<()> {
        let state = if cut { "down" } else { "up" };
        ip(&["-n", &self.namespace(host), "link", "set", "eth0", state])
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        for (name, child) in self.children.iter_mut().rev() {
            // Postgres stops at once on SIGINT; the others on SIGTERM.
            let signal = if name == "postgres" {
                Signal::SIGINT
            } else {
                Signal::SIGTERM
            };
            let _ = kill(Pid::from_raw(child.id() as i32), signal);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for host in self.names().iter().chain([&"net".to_string()]) {
            let _ = ip(&["netns", "del", &self.namespace(host)]);
        }
        if std::env::var_os("BUCKETFS_KEEP_TEST_DIRS").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs `ip ARGS`.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
