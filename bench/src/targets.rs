//! The filesystems the benchmarks mount side by side (bucketfs with the
//! default options and with write-back, s3fs and `rclone mount` on buckets
//! of the same cluster, MooseFS, a local directory and bindfs), how each
//! is mounted, and how to wait until what was written is in its store.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bucketfs_tests::tools::{check, Mount};
use bucketfs_tests::{is_mounted, Cluster};

#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Local,
    Bindfs,
    Bucketfs,
    /// bucketfs as `bucketfs mount` sets it up with no options.
    BucketfsDefault,
    S3fs,
    Rclone,
    Moosefs,
}

/// Files bucketfs may upload after their close (`--write-back`), as rclone
/// runs with `--vfs-cache-mode writes`.
const WRITE_BACK: &str = "64";
/// rclone's remote-control port, to ask whether its uploads are done.
const RCLONE_RC: &str = "127.0.0.1:45572";

pub struct Target {
    pub name: &'static str,
    pub kind: Kind,
    pub dir: PathBuf,
    /// bindfs's source directory.
    source: PathBuf,
    pub bucket: String,
    mount: Option<Mount>,
    /// rclone's mount process: its remote control cannot run with --daemon.
    child: Option<std::process::Child>,
}

impl Target {
    fn is_bucketfs(&self) -> bool {
        matches!(self.kind, Kind::Bucketfs | Kind::BucketfsDefault)
    }

    pub fn new(kind: Kind, work: &Path) -> Self {
        let name = match kind {
            Kind::Local => "local",
            Kind::Bindfs => "bindfs",
            Kind::Bucketfs => "bucketfs",
            Kind::BucketfsDefault => "bucketfs-default",
            Kind::S3fs => "s3fs",
            Kind::Rclone => "rclone",
            Kind::Moosefs => "moosefs",
        };
        Self {
            name,
            kind,
            dir: work.join(format!("t-{name}")),
            source: work.join(format!("t-{name}-source")),
            bucket: format!("bench-{name}"),
            mount: None,
            child: None,
        }
    }

    pub fn mount(&mut self, cluster: &Cluster) -> Result<()> {
        fs::create_dir_all(&self.dir)?;
        let dir = self.dir.to_str().context("path")?.to_string();
        match self.kind {
            Kind::Local => return Ok(()),
            Kind::Moosefs => {
                let work = self.source.to_str().context("path")?;
                if !self.source.join("master.cfg").exists() {
                    moosefs(&["start", work])?;
                }
                moosefs(&["mount", work, &dir])?;
            }
            Kind::Bindfs => {
                fs::create_dir_all(&self.source)?;
                let src = self.source.to_str().context("path")?;
                check(
                    Command::new("bindfs")
                        .args(["--multithreaded", src, &dir])
                        .output()?,
                    "bindfs",
                )?;
            }
            Kind::BucketfsDefault => {
                let endpoint = cluster.endpoint();
                self.mount = Some(cluster.mount_default_at(&endpoint, &self.bucket, &self.dir, &[])?);
                return Ok(());
            }
            Kind::Bucketfs => {
                self.mount = Some(cluster.mount_with(
                    &self.bucket,
                    &self.dir,
                    &[
                        "--cache-size",
                        "256",
                        "--disk-cache-size",
                        "2048",
                        "--write-back",
                        WRITE_BACK,
                    ],
                )?);
                return Ok(());
            }
            Kind::S3fs => self.mount = Some(cluster.mount_s3fs(&self.bucket, &self.dir)?),
            Kind::Rclone => {
                let cache = cluster.dir.join("rclone-cache");
                let log = fs::File::create(cluster.dir.join("logs/rclone-mount.log"))?;
                // Uploads start at close (the default waits 5 s first).
                let child = cluster
                    .rclone(&[
                        "mount",
                        &format!("bfs:{}", self.bucket),
                        &dir,
                        "--vfs-cache-mode",
                        "writes",
                        "--vfs-write-back",
                        "0s",
                        "--cache-dir",
                        cache.to_str().context("path")?,
                        "--rc",
                        "--rc-no-auth",
                        "--rc-addr",
                        RCLONE_RC,
                    ])
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .spawn()
                    .context("starting rclone mount")?;
                self.child = Some(child);
            }
        }
        bucketfs_tests::wait_until("mounted", Duration::from_secs(20), || is_mounted(&self.dir))
    }

    /// A second client of the same store, mounted beside this one, to see
    /// its changes from: bucketfs with `--attr-ttl 60` (the change feed
    /// tells it), s3fs and MooseFS with their defaults. None for the others
    /// (one directory, or rclone's single remote-control port).
    pub fn observer(&self, cluster: &Cluster) -> Result<Option<Mount>> {
        let dir = self.dir.with_file_name(format!("t-{}-observer", self.name));
        fs::create_dir_all(&dir)?;
        let mount = match self.kind {
            Kind::Bucketfs | Kind::BucketfsDefault => {
                cluster.mount_with(&self.bucket, &dir, &["--attr-ttl", "60"])?
            }
            Kind::S3fs => cluster.mount_s3fs(&self.bucket, &dir)?,
            Kind::Moosefs => {
                let work = self.source.to_str().context("path")?;
                moosefs(&["mount", work, dir.to_str().context("path")?])?;
                Mount { dir }
            }
            Kind::Local | Kind::Bindfs | Kind::Rclone => return Ok(None),
        };
        bucketfs_tests::wait_until("mounted", Duration::from_secs(20), || is_mounted(&mount.dir))?;
        Ok(Some(mount))
    }

    pub fn unmount(&mut self) -> Result<()> {
        if self.kind == Kind::Local {
            return Ok(());
        }
        self.settle()?;
        if self.mount.take().is_none() {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        bucketfs_tests::wait_until("unmounted", Duration::from_secs(60), || !is_mounted(&self.dir))?;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(())
    }

    /// Waits until the files under `written` (changed since `since`) are in
    /// the store, and says how long that took: rclone's close returns before
    /// its upload, and so does bucketfs's with `--write-back` (the others'
    /// do not), so their write figures include this wait.
    pub fn settle_written(&self, cluster: &Cluster, written: &Path, since: jiff::Timestamp) -> Result<f64> {
        let t = Instant::now();
        self.settle()?;
        if self.kind == Kind::Rclone {
            self.wait_uploaded(cluster, written, since)?;
        }
        Ok(t.elapsed().as_secs_f64())
    }

    /// rclone's upload queue can look empty while files still wait to be
    /// uploaded (1.60 showed none queued for 15 s after a 512 MiB file's
    /// close), so the store itself is asked: every file under `written`
    /// must be there, of its size, stored after `since`.
    fn wait_uploaded(&self, cluster: &Cluster, written: &Path, since: jiff::Timestamp) -> Result<()> {
        let rel = written
            .strip_prefix(&self.dir)
            .context("a path under the mount")?;
        let mut local = BTreeMap::new();
        let mut stack = vec![written.to_path_buf()];
        while let Some(path) = stack.pop() {
            let meta = fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                stack.extend(
                    fs::read_dir(&path)?
                        .map(|e| e.map(|e| e.path()))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            } else if meta.is_file() {
                let key = path.strip_prefix(written)?.to_string_lossy().into_owned();
                local.insert(key, meta.len());
            }
        }
        let single = fs::metadata(written)?.is_file();
        let remote = format!("bfs:{}/{}", self.bucket, rel.display());
        // Uploads that stop making progress have failed (rclone 1.60 never
        // uploads a git clone: its index.lock rename breaks the transfer).
        let mut progress = (usize::MAX, Instant::now());
        loop {
            let out = cluster
                .rclone(&["lsjson", "-R", "--files-only", "--use-server-modtime", &remote])
                .output()?;
            let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let stored: BTreeMap<String, (u64, jiff::Timestamp)> = listed
                .iter()
                .filter_map(|e| {
                    let path = if single {
                        String::new()
                    } else {
                        e["Path"].as_str()?.to_string()
                    };
                    let time = e["ModTime"].as_str()?.parse().ok()?;
                    Some((path, (e["Size"].as_u64()?, time)))
                })
                .collect();
            // Server times have whole seconds.
            let since = since - jiff::SignedDuration::from_secs(1);
            let missing = local
                .iter()
                .filter(|(key, size)| {
                    let key = if single { "" } else { key.as_str() };
                    !stored.get(key).is_some_and(|(s, t)| s == *size && *t >= since)
                })
                .count();
            if missing == 0 {
                return Ok(());
            }
            if missing < progress.0 {
                progress = (missing, Instant::now());
            } else if progress.1.elapsed() > Duration::from_secs(60) {
                bail!(
                    "{missing} of {} file(s) under {} not in the store, none uploaded for a minute",
                    local.len(),
                    written.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until unlinks have reached the store: bucketfs's with
    /// `--write-back` return before their DELETE (the others' do not).
    pub fn settle_deleted(&self) -> Result<()> {
        if self.is_bucketfs() && is_mounted(&self.dir) {
            fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Waits for the client's own queue of uploads.
    pub fn settle(&self) -> Result<f64> {
        if !is_mounted(&self.dir) {
            return Ok(0.0);
        }
        if self.is_bucketfs() {
            // fsync of a directory waits for every queued upload (`sync DIR`).
            let t = Instant::now();
            fs::File::open(&self.dir)?.sync_all()?;
            return Ok(t.elapsed().as_secs_f64());
        }
        if self.kind != Kind::Rclone {
            return Ok(0.0);
        }
        // A file's upload is queued at its release, which the kernel sends
        // after close returns: idle means idle for a whole second, counted
        // from the first idle poll.
        let t = Instant::now();
        let mut idle_since: Option<Instant> = None;
        loop {
            let out = Command::new("rclone")
                .env_remove("AWS_CA_BUNDLE")
                .args(["rc", "--url", &format!("http://{RCLONE_RC}/"), "vfs/stats"])
                .output()?;
            if !out.status.success() {
                bail!(
                    "rclone rc vfs/stats: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let cache = &stats["diskCache"];
            let busy = cache["uploadsInProgress"].as_u64().unwrap_or(1)
                + cache["uploadsQueued"].as_u64().unwrap_or(1);
            match (busy, idle_since) {
                (0, None) => idle_since = Some(Instant::now()),
                (0, Some(since)) if since.elapsed() >= Duration::from_secs(1) => {
                    return Ok((since - t).as_secs_f64());
                }
                (0, Some(_)) => {}
                _ => idle_since = None,
            }
            if t.elapsed() > Duration::from_secs(600) {
                bail!("rclone still uploading after 10 minutes: {stats}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops what the target started besides its mount.
    pub fn stop(&mut self) -> Result<()> {
        self.unmount()?;
        if self.kind == Kind::Moosefs {
            moosefs(&["stop", self.source.to_str().context("path")?])?;
        }
        Ok(())
    }

    /// Empties every cache between a write and a cold read: the kernel's,
    /// and the client's own by remounting it.
    pub fn go_cold(&mut self, cluster: &Cluster) -> Result<()> {
        if self.kind != Kind::Local && self.kind != Kind::Bindfs {
            self.unmount()?;
            if self.kind == Kind::Rclone {
                // Its disk cache outlives a remount; everything is uploaded.
                let _ = fs::remove_dir_all(cluster.dir.join("rclone-cache"));
            }
            self.mount(cluster)?;
        }
        nix::unistd::sync();
        fs::write("/proc/sys/vm/drop_caches", "3")?;
        Ok(())
    }
}

fn moosefs(args: &[&str]) -> Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("moosefs.sh");
    check(
        Command::new("bash").arg(script).args(args).output()?,
        "moosefs.sh",
    )
    .map(drop)
}

/// Runs fio with JSON output and returns its one (grouped) job.
pub fn fio(args: &[String]) -> Result<serde_json::Value> {
    let out = Command::new("fio")
        .args([
            "--output-format=json",
            "--group_reporting",
            "--ioengine=psync",
            "--name=bench",
        ])
        .args(args)
        .output()?;
    let text = check(out, &format!("fio {}", args.join(" ")))?;
    let start = text.find('{').context("no JSON from fio")?;
    let v: serde_json::Value = serde_json::from_str(&text[start..])?;
    Ok(v["jobs"][0].clone())
}

pub fn timed(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64())
}

pub fn sh(script: &str) -> Result<()> {
    check(Command::new("bash").arg("-ec").arg(script).output()?, script).map(drop)
}

/// A benchmark's command line: `--quick`, and target names to run only
/// those (none: all).
pub fn args() -> (bool, Vec<String>) {
    let quick = std::env::args().any(|a| a == "--quick");
    let only = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    (quick, only)
}
