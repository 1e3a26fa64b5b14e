//! bucketfs: mount an S3 bucket as a directory.
//!
//! `bucketfs mount BUCKET DIR` daemonizes by default and returns once the
//! mount is ready; SIGTERM/SIGINT unmount cleanly. `bucketfs umount DIR`.
//! `mount -t fuse.bucketfs` and /etc/fstab come in through `helper`.

pub(crate) mod absence;
pub mod attrs;
pub(crate) mod aws_config;
pub(crate) mod batch;
pub(crate) mod cache;
pub(crate) mod deletes;
pub(crate) mod dir_writes;
pub(crate) mod dirty;
pub(crate) mod disk_cache;
pub mod error;
pub(crate) mod file_locks;
pub mod fs;
pub(crate) mod fuse;
pub(crate) mod helper;
pub(crate) mod history_cli;
pub mod journal;
pub mod memory;
pub(crate) mod metrics;
pub(crate) mod names;
pub(crate) mod parts;
pub mod replay;
pub(crate) mod s3;
pub(crate) mod scan;
pub(crate) mod staging;
pub mod store;
pub(crate) mod tree;
pub(crate) mod watcher;
pub(crate) mod writer;
pub(crate) mod xml;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

#[derive(Debug, clap::Parser)]
#[command(name = "bucketfs", version, about = "Mount an S3 bucket as a directory")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Mount BUCKET at MOUNTPOINT.
    Mount(Box<MountArgs>),
    /// Unmount a bucketfs mount.
    Umount { mountpoint: PathBuf },
    /// Named moments of a versioned bucket: `create BUCKET NAME`, `list
    /// BUCKET`, `delete BUCKET NAME`.
    Snapshot(history_cli::SnapshotArgs),
    /// Make NEWBUCKET with BUCKET's keys as of a moment, sharing their data
    /// (nothing is copied): `fork BUCKET@TIME|SNAPSHOT NEWBUCKET`.
    Fork(history_cli::ForkArgs),
    /// Make the keys under BUCKET/PREFIX what they were at a moment (new
    /// versions sharing the old data; keys made since are deleted).
    Restore(history_cli::RestoreArgs),
    /// What was added, removed, changed and renamed between two moments:
    /// `diff BUCKET@T1 [BUCKET@T2] [PREFIX]` (no T2: now).
    Diff(history_cli::DiffArgs),
    /// (Started by the daemon.) Removes the mount at MOUNTPOINT if the
    /// daemon ends without unmounting (see `watcher.rs`).
    #[command(hide = true)]
    WatchMount { mountpoint: PathBuf, fsname: String },
}

/// Where the store is and who calls it: every command that talks to it.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// S3 endpoint; else $AWS_ENDPOINT_URL, else `endpoint_url` in ~/.aws/config.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint: Option<String>,
    /// Also trust this PEM certificate (a CA, or a self-signed server's)
    /// for an https endpoint; the local cluster exports its own.
    #[arg(long, env = "BUCKETFS_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// The credentials file to read keys from (AWS format, the --profile
    /// section) instead of ~/.aws/credentials; readable by its owner only.
    #[arg(long)]
    pub credentials_file: Option<PathBuf>,
    /// Else $AWS_ACCESS_KEY_ID, else ~/.aws/credentials.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key: Option<String>,
    /// Else $AWS_SECRET_ACCESS_KEY, else ~/.aws/credentials.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Else $AWS_REGION / $AWS_DEFAULT_REGION, else ~/.aws/config, else us-east-1.
    #[arg(long)]
    pub region: Option<String>,
    /// The ~/.aws profile to read (also $AWS_PROFILE).
    #[arg(long, env = "AWS_PROFILE", default_value = "default")]
    pub profile: String,
}

#[derive(Debug, clap::Args)]
pub struct MountArgs {
    pub bucket: String,
    pub mountpoint: PathBuf,
    #[command(flatten)]
    pub connection: Connection,
    /// Memory for cached object blocks, in MiB.
    #[arg(long, default_value_t = 256)]
    pub cache_size: usize,
    /// Directory for the staging files of files being written, and for the
    /// disk cache.
    #[arg(long, default_value = "/var/tmp")]
    pub cache_dir: PathBuf,
    /// Disk for cached object blocks, in MiB (0: no disk cache). Default: a
    /// tenth of the space free under --cache-dir, at most 2048 MiB, and none
    /// when that is under 64 MiB.
    #[arg(long)]
    pub disk_cache_size: Option<u64>,
    /// Show the bucket read-only as it was at this time (RFC 3339, e.g.
    /// 2026-11-22T10:00:00Z) or snapshot (`bucketfs snapshot`); needs a
    /// versioned bucket.
    #[arg(long)]
    pub at: Option<String>,
    /// Stay in the foreground instead of daemonizing.
    #[arg(long, short)]
    pub foreground: bool,
    /// Seconds the kernel caches attributes and entries.
    #[arg(long, default_value_t = 1.0)]
    pub attr_ttl: f64,
    /// Seconds a directory listing held by this mount answers "no such
    /// file" without asking the store; files made elsewhere in a directory
    /// this mount listed show up after at most this long.
    #[arg(long, default_value_t = 60.0)]
    pub dir_ttl: f64,
    /// Let close return before the upload: up to this many closed files
    /// upload in the background (0: close waits for its upload). Unlinks
    /// return before their delete too. What a close still owes the store is
    /// kept in a journal under --cache-dir, which the next mount replays if
    /// the daemon dies first. fsync of a file waits for its upload; fsync
    /// of a directory (`sync DIR`) and unmount wait for all uploads and
    /// deletes. Other mounts and S3 clients see a change once it has landed.
    #[arg(long, default_value_t = 64)]
    pub write_back: usize,
    #[arg(long)]
    pub read_only: bool,
    /// Let other users use the mount (needs user_allow_other for non-root).
    #[arg(long)]
    pub allow_other: bool,
    /// Serve the daemon's Prometheus metrics at http://ADDR/metrics
    /// (e.g. 127.0.0.1:9100).
    #[arg(long)]
    pub metrics: Option<std::net::SocketAddr>,
    /// The daemon's log file (else it logs nowhere once in the background).
    #[arg(long, env = "BUCKETFS_LOG")]
    pub log: Option<PathBuf>,
    /// This command line in the binary's own form, for the daemon it starts.
    #[arg(skip)]
    pub argv: Vec<OsString>,
}

/// The disk cache a mount of `bucket` at `endpoint` keeps for the next one.
fn disk_cache_name(endpoint: &str, bucket: &str) -> String {
    use md5::Digest;
    let digest = md5::Md5::digest(format!("{endpoint}\n{bucket}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the command line `args` (program name first), in the binary's own
/// form or a mount helper's.
pub fn run(args: Vec<OsString>) -> Result<()> {
    use clap::Parser;
    let args = match helper::invocation(args)? {
        helper::Invocation::Run(args) => args,
        helper::Invocation::Nothing => return Ok(()),
    };
    let mut cli = Cli::parse_from(&args);
    if let Command::Mount(mount) = &mut cli.command {
        mount.argv = args[1..].to_vec();
    }
    main(cli)
}

pub fn main(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Mount(args) => mount(*args),
        Command::Umount { mountpoint } => umount(&mountpoint),
        Command::WatchMount { mountpoint, fsname } => watcher::watch(&mountpoint, &fsname),
        Command::Snapshot(args) => history_cli::snapshot(args),
        Command::Fork(args) => history_cli::fork(args),
        Command::Restore(args) => history_cli::restore(args),
        Command::Diff(args) => history_cli::diff(args),
    }
}

/// Is a FUSE file system mounted at `dir`?
pub fn is_mounted(dir: &Path) -> bool {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return false;
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let dir = dir.to_string_lossy();
    mounts.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        f.get(4) == Some(&dir.as_ref()) && l.contains(" - fuse")
    })
}

pub fn umount(dir: &Path) -> Result<()> {
    nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH)
        .with_context(|| format!("unmounting {}", dir.display()))
}

fn mount(args: MountArgs) -> Result<()> {
    if !args.mountpoint.is_dir() {
        bail!("{} is not a directory", args.mountpoint.display());
    }
    // Before daemonizing, so a mount that cannot work fails with the reason.
    let at = check_bucket(&args)?;
    if let Some(addr) = args.metrics {
        std::net::TcpListener::bind(addr).with_context(|| format!("serving metrics at {addr}"))?;
    }
    if !args.foreground {
        // The parent returns once the child's mount is visible.
        match unsafe_free_fork(&args.argv, args.log.as_deref())? {
            Some(child) => return wait_for_mount(&args.mountpoint, child),
            None => {
                nix::unistd::setsid()?;
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    let creds = args.connection.credentials()?;
    let s3 = args.connection.client(&args.bucket, &creds)?;
    std::fs::create_dir_all(&args.cache_dir)
        .with_context(|| format!("creating {}", args.cache_dir.display()))?;
    let read_only = args.read_only || args.at.is_some();
    let config = fs::Config {
        read_only,
        cache_dir: args.cache_dir.clone(),
        cache_bytes: args.cache_size << 20,
        disk_cache_bytes: args
            .disk_cache_size
            .unwrap_or_else(|| default_disk_cache_mib(&args.cache_dir))
            << 20,
        disk_cache_name: Some(disk_cache_name(&creds.endpoint, &args.bucket)),
        attr_ttl: Duration::from_secs_f64(args.attr_ttl),
        dir_ttl: Duration::from_secs_f64(args.dir_ttl),
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        at: at.map(std::time::SystemTime::from),
        write_back: args.write_back,
    };
    let store: store::Store = s3.clone();
    let mut fs = fs::Fs::new(s3, config).context("setting up the caches")?;
    if !read_only && args.write_back > 0 {
        let name = disk_cache_name(&creds.endpoint, &args.bucket);
        let journal = runtime
            .block_on(replay::open_journal(&store, &args.cache_dir, &name))
            .context("replaying the write-back journal")?;
        fs = fs.with_journal(Arc::new(journal));
    }
    let fs = Arc::new(fs);
    if let Some(addr) = args.metrics {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("serving metrics at {addr}"))?;
        let mount = fs.clone();
        runtime.spawn(metrics::serve(listener, move || mount.queued()));
    }
    let adapter = fuse::Adapter {
        fs: fs.clone(),
        runtime: runtime.handle().clone(),
        ttl: Duration::from_secs_f64(args.attr_ttl),
    };
    let fsname = format!("bucketfs:{}", args.bucket);
    let mut options = vec![fuser::MountOption::FSName(fsname.clone())];
    options.push(fuser::MountOption::Subtype("bucketfs".into()));
    options.push(fuser::MountOption::DefaultPermissions);
    // A crashed daemon leaves no stale mount behind.
    options.push(fuser::MountOption::AutoUnmount);
    if read_only {
        options.push(fuser::MountOption::RO);
    }
    let mut config = fuser::Config::default();
    config.mount_options = options;
    // auto_unmount needs allow_other or allow_root.
    config.acl = if args.allow_other {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::RootAndOwner
    };
    config.n_threads = Some(4);
    // Other clients' changes show within the feed's delay, not the TTL's.
    if args.at.is_none() {
        runtime.spawn(fs.clone().follow_changes());
    }
    let mountpoint = args.mountpoint.clone();
    runtime.spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("signal received; unmounting");
        let _ = umount(&mountpoint);
    });
    std::thread::spawn({
        let dir = args.mountpoint.clone();
        move || raise_readahead(&dir)
    });
    // A crashed daemon leaves no stale mount behind, whatever fusermount3's
    // auto_unmount makes of it.
    let mut watcher = watcher::spawn(&args.mountpoint, &fsname)?;
    tracing::info!(bucket = %args.bucket, mountpoint = %args.mountpoint.display(), "mounting");
    let mounted = fuser::Session::new(adapter, &args.mountpoint, &config)
        .and_then(|session| {
            fs.set_kernel_cache(Arc::new(fuse::Notifier(session.notifier())));
            watcher.mounted();
            session.run()
        })
        .context("mounting");
    watcher.unmounted();
    runtime.block_on(fs.release_locks());
    // Unmounted: files closed in write-back mode still upload before exit.
    if let Err(e) = runtime.block_on(fs.sync_all()) {
        tracing::error!(error = %e, "unmounted with changes lost");
    }
    mounted?;
    Ok(())
}

impl Connection {
    fn credentials(&self) -> Result<aws_config::Resolved> {
        aws_config::resolve(
            self.credentials_file.as_deref(),
            &self.profile,
            self.endpoint.clone(),
            self.access_key.clone(),
            self.secret_key.clone(),
            self.region.clone(),
        )
    }

    /// A client of `bucket`, with `creds` resolved from this connection.
    fn client(&self, bucket: &str, creds: &aws_config::Resolved) -> Result<Arc<s3::S3>> {
        s3::S3::new(
            &creds.endpoint,
            bucket,
            &creds.access_key,
            &creds.secret_key,
            &creds.region,
            self.ca_file.as_deref(),
        )
    }
}

/// Fails unless the mount can list its bucket (see `s3_check.rs`); with
/// `--at`, answers the time it names.
fn check_bucket(args: &MountArgs) -> Result<Option<jiff::Timestamp>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let s3 = args
        .connection
        .client(&args.bucket, &args.connection.credentials()?)?;
    runtime.block_on(s3.check_bucket()).map_err(anyhow::Error::msg)?;
    args.at
        .as_deref()
        .map(|at| runtime.block_on(s3.moment_time(&s3::history::Moment::parse(at))))
        .transpose()
}

/// Kernel readahead on a FUSE mount starts at 128 KiB and the mount
/// protocol can only lower it; the mount's backing device in sysfs can
/// raise it, so sequential reads reach the daemon as several 1 MiB requests
/// at once.
fn raise_readahead(dir: &Path) {
    const READ_AHEAD_KB: u32 = 8192;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !is_mounted(dir) {
        if Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Ok(meta) = std::fs::metadata(dir) else {
        return;
    };
    use std::os::unix::fs::MetadataExt;
    let dev = meta.dev();
    let path = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev)
    );
    match std::fs::write(&path, READ_AHEAD_KB.to_string()) {
        Ok(()) => tracing::info!(%path, kb = READ_AHEAD_KB, "raised kernel readahead"),
        Err(e) => tracing::info!(%path, error = %e, "kernel readahead left as it was"),
    }
}

/// `fork()`; `Some(child pid)` in the parent, `None` in the child. Called
/// before any thread exists, which is what makes forking sound here. The
/// child runs `argv` (the mount's command line) with `--foreground`.
fn unsafe_free_fork(argv: &[OsString], log: Option<&Path>) -> Result<Option<nix::unistd::Pid>> {
    use std::process::Command;
    // Re-executing ourselves with --foreground avoids fork() in a Rust
    // program entirely: the child is a fresh process.
    let exe = std::env::current_exe()?;
    let mut args = argv.to_vec();
    args.push("--foreground".into());
    let mut command = Command::new(exe);
    // The allocator's settings are made in `main` (bucketfs_common::memory).
    let child = command
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log_target(log)?)
        .spawn()
        .context("starting the mount daemon")?;
    Ok(Some(nix::unistd::Pid::from_raw(child.id() as i32)))
}

/// Where the daemon logs: `--log` / `$BUCKETFS_LOG` if set, else nowhere
/// (the caller's terminal must not be held open by a background process).
fn log_target(log: Option<&Path>) -> Result<std::process::Stdio> {
    Ok(match log {
        Some(path) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?
            .into(),
        None => std::process::Stdio::null(),
    })
}

fn wait_for_mount(dir: &Path, child: nix::unistd::Pid) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if is_mounted(dir) {
            return Ok(());
        }
        if let Ok(status) = nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            if !matches!(status, nix::sys::wait::WaitStatus::StillAlive) {
                bail!("the mount daemon exited: {status:?}");
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("timed out waiting for the mount at {}", dir.display())
}

/// The disk cache a mount gets unless told: a tenth of the free space under
/// `dir`, at most 2 GiB, none under 64 MiB. Without one, every random read
/// of a file not in memory is a ranged GET (4 KiB random reads ran at a
/// fifth of MooseFS's IOPS); the cache's files grow only as blocks are
/// cached and go when the mount ends.
fn default_disk_cache_mib(dir: &std::path::Path) -> u64 {
    let free_mib = nix::sys::statvfs::statvfs(dir)
        .map(|st| (st.blocks_available() * st.fragment_size()) >> 20)
        .unwrap_or(0);
    match (free_mib / 10).min(2048) {
        mib if mib < 64 => 0,
        mib => mib,
    }
}
