//! Running the real S3 clients (AWS CLI, s3cmd, rclone) against a cluster,
//! each with its own throwaway configuration so nothing on the machine leaks in.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::Cluster;

/// The output of a client, failing with its stderr when it failed.
pub fn check(out: Output, what: &str) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Cluster {
    fn scratch(&self, name: &str) -> PathBuf {
        let dir = self.dir.join("clients");
        fs::create_dir_all(&dir).expect("client config dir");
        dir.join(name)
    }

    /// `aws` with this cluster's endpoint and keys.
    pub fn aws(&self, args: &[&str]) -> Command {
        self.aws_at(&self.endpoint(), args)
    }

    pub fn aws_at(&self, endpoint: &str, args: &[&str]) -> Command {
        let config = self.scratch("aws-config");
        if !config.exists() {
            fs::write(
                &config,
                "[default]\nregion = us-east-1\ns3 =\n  max_concurrent_requests = 8\n",
            )
            .unwrap();
        }
        let mut cmd = Command::new("aws");
        cmd.env("AWS_CONFIG_FILE", &config)
            .env("AWS_SHARED_CREDENTIALS_FILE", self.scratch("aws-credentials"))
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_CA_BUNDLE")
            .arg("--endpoint-url")
            .arg(endpoint)
            .args(args);
        cmd
    }

    /// Runs `aws ARGS` and returns stdout, failing on a non-zero exit.
    pub fn aws_ok(&self, args: &[&str]) -> Result<String> {
        check(self.aws(args).output()?, &format!("aws {}", args.join(" ")))
    }

    /// `aws s3 mb` and versioning enabled.
    pub fn versioned_bucket(&self, bucket: &str) -> Result<()> {
        self.aws_ok(&["s3", "mb", &format!("s3://{bucket}")])?;
        self.aws_ok(&[
            "s3api",
            "put-bucket-versioning",
            "--bucket",
            bucket,
            "--versioning-configuration",
            "Status=Enabled",
        ])?;
        Ok(())
    }

    /// Chunk bytes the storage nodes have written, all three summed.
    pub fn node_bytes_written(&self) -> u64 {
        (1..=3)
            .filter_map(|i| self.node_metric(i, "bucketfs_node_bytes_written_total"))
            .sum()
    }

    /// `bucketfs ARGS... --endpoint` this cluster, with its keys; the output.
    pub fn bucketfs(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(crate::bin_dir().join("bucketfs"))
            .args(args)
            .args(["--endpoint", &self.endpoint()])
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .output()?;
        check(out, &format!("bucketfs {}", args.join(" ")))
    }

    /// `s3cmd` with a config file for this cluster (path-style).
    /// A SigV4 presigned URL (boto3) for `operation` on `bucket`/`key`,
    /// valid five minutes. (The AWS CLI here presigns with SigV2, which
    /// routers refuse.)
    pub fn presigned(&self, operation: &str, bucket: &str, key: &str) -> Result<String> {
        let script = format!(
            "import boto3\nfrom botocore.config import Config\n\
             s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', config=Config(signature_version='s3v4', s3={{'addressing_style': 'path'}}))\n\
             print(s3.generate_presigned_url('{operation}', Params={{'Bucket': '{bucket}', 'Key': '{key}'}}, ExpiresIn=300))",
            self.endpoint()
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .output()?;
        Ok(check(out, "presigning a URL")?.trim().to_string())
    }

    /// `aws s3 cp --no-progress FROM TO` (a local path or an s3:// URL each).
    pub fn s3_cp(
        &self,
        from: impl AsRef<std::ffi::OsStr>,
        to: impl AsRef<std::ffi::OsStr>,
    ) -> Result<String> {
        let (from, to) = (from.as_ref().to_string_lossy(), to.as_ref().to_string_lossy());
        self.aws_ok(&["s3", "cp", "--no-progress", &from, &to])
    }

    /// `python3 tests/scripts/NAME ARGS` as the cluster's user.
    fn script_command(&self, name: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("python3");
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name))
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key);
        cmd
    }

    /// Runs `tests/scripts/NAME` with `args`, as the cluster's user
    /// (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY); fails unless it exits 0
    /// having printed OK.
    pub fn run_script(&self, name: &str, args: &[&str]) -> Result<()> {
        let out = self.script_command(name, args).output()?;
        let stdout = check(out, name)?;
        if !stdout.contains("OK") {
            bail!("{name} did not finish:\n{stdout}");
        }
        Ok(())
    }

    /// Runs `scripts/NAME` with the cluster's credentials; answers the JSON
    /// of the last line it printed (its stderr passes through).
    pub fn script_json(&self, name: &str, args: &[&str]) -> Result<serde_json::Value> {
        let out = self
            .script_command(name, args)
            .stderr(std::process::Stdio::inherit())
            .output()?;
        let text = check(out, name)?;
        serde_json::from_str(text.lines().last().unwrap_or_default())
            .with_context(|| format!("{name} printed {text}"))
    }

    pub fn s3cmd(&self, args: &[&str]) -> Command {
        let config = self.scratch("s3cfg");
        let host = format!("127.0.0.1:{}", self.ports.haproxy);
        fs::write(
            &config,
            format!(
                "[default]\naccess_key = {}\nsecret_key = {}\nhost_base = {host}\nhost_bucket = {host}\n\
                 use_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n",
                self.access_key, self.secret_key
            ),
        )
        .unwrap();
        let mut cmd = Command::new("s3cmd");
        cmd.arg("-c").arg(config).args(args);
        cmd
    }

    /// `rclone` with a remote named `bfs` of provider Other.
    pub fn rclone(&self, args: &[&str]) -> Command {
        let config = self.scratch("rclone.conf");
        fs::write(
            &config,
            format!(
                "[bfs]\ntype = s3\nprovider = Other\naccess_key_id = {}\nsecret_access_key = {}\n\
                 endpoint = {}\nregion = us-east-1\nforce_path_style = true\n",
                self.access_key,
                self.secret_key,
                self.endpoint()
            ),
        )
        .unwrap();
        let mut cmd = Command::new("rclone");
        cmd.env_remove("AWS_CA_BUNDLE")
            .arg("--config")
            .arg(config)
            .args(args);
        cmd
    }
}

/// Writes `len` bytes of pseudo-random data (fast, seeded) to `path`.
pub fn random_file(path: &Path, len: u64, seed: u64) -> Result<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(path)?);
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// A bucketfs mount, unmounted (lazily, so it never blocks) when dropped.
pub struct Mount {
    pub dir: PathBuf,
}

impl Cluster {
    /// `bucketfs mount BUCKET DIR` (daemon mode: returns once mounted).
    pub fn mount(&self, bucket: &str, dir: &Path) -> Result<Mount> {
        self.mount_with(bucket, dir, &[])
    }

    /// `bucketfs mount BUCKET DIR EXTRA...`, through HAProxy.
    pub fn mount_with(&self, bucket: &str, dir: &Path, extra: &[&str]) -> Result<Mount> {
        self.mount_at(&self.endpoint(), bucket, dir, extra)
    }

    /// `bucketfs mount BUCKET DIR EXTRA...` against `endpoint`. Unless
    /// `extra` says otherwise, closes wait for their uploads
    /// (`--write-back 0`): most tests look through S3 right after a close.
    /// `mount_default_at` mounts with the defaults.
    pub fn mount_at(&self, endpoint: &str, bucket: &str, dir: &Path, extra: &[&str]) -> Result<Mount> {
        let mut args = extra.to_vec();
        if !extra.iter().any(|a| a.starts_with("--write-back")) {
            args.extend(["--write-back", "0"]);
        }
        self.mount_default_at(endpoint, bucket, dir, &args)
    }

    /// `bucketfs mount BUCKET DIR EXTRA...` against `endpoint`, nothing added.
    pub fn mount_default_at(
        &self,
        endpoint: &str,
        bucket: &str,
        dir: &Path,
        extra: &[&str],
    ) -> Result<Mount> {
        fs::create_dir_all(dir)?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let out = Command::new(crate::bin_dir().join("bucketfs"))
            .args(["mount", bucket])
            .arg(dir)
            .args(["--endpoint", endpoint])
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .args(extra)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env(
                "BUCKETFS_LOG",
                self.log_path(&format!("bucketfs-{bucket}-{name}")),
            )
            .output()?;
        check(out, "bucketfs mount")?;
        Ok(Mount {
            dir: dir.to_path_buf(),
        })
    }
}

impl Cluster {
    /// s3fs (path-style, through HAProxy) mounting `bucket` at `dir`, for
    /// what another S3 filesystem makes of bucketfs's objects.
    pub fn mount_s3fs(&self, bucket: &str, dir: &Path) -> Result<Mount> {
        use std::os::unix::fs::PermissionsExt;
        fs::create_dir_all(dir)?;
        let passwd = self.dir.join("s3fs.passwd");
        fs::write(&passwd, format!("{}:{}\n", self.access_key, self.secret_key))?;
        fs::set_permissions(&passwd, fs::Permissions::from_mode(0o600))?;
        let out = Command::new("s3fs")
            .arg(bucket)
            .arg(dir)
            .arg("-o")
            .arg(format!(
                "url={},use_path_request_style,endpoint=us-east-1",
                self.endpoint()
            ))
            .arg("-o")
            .arg(format!("passwd_file={}", passwd.display()))
            .output()?;
        check(out, "s3fs")?;
        Ok(Mount {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Resident memory of the bucketfs daemon serving `mountpoint`, in bytes.
pub fn daemon_rss(mountpoint: &Path) -> Result<u64> {
    daemon_memory(mountpoint).map(|m| m.rss)
}

/// The daemon's resident memory and what it is made of, from
/// `/proc/PID/status`: enough to tell heap from mapped files when a bound
/// is crossed.
#[derive(Debug, Clone, Default)]
pub struct DaemonMemory {
    /// VmRSS, bytes.
    pub rss: u64,
    /// The RssAnon, RssFile, VmHWM and Threads lines, as the kernel wrote them.
    pub detail: String,
}

/// Reads [`DaemonMemory`] of the daemon serving `mountpoint`.
pub fn daemon_memory(mountpoint: &Path) -> Result<DaemonMemory> {
    let pid = daemon_pid(mountpoint)?;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    let detail = status
        .lines()
        .filter(|l| {
            ["RssAnon:", "RssFile:", "VmHWM:", "Threads:"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(DaemonMemory {
        rss: kib * 1024,
        detail,
    })
}

/// The process id of the bucketfs daemon serving `mountpoint`.
pub fn daemon_pid(mountpoint: &Path) -> Result<u32> {
    let needle = mountpoint.to_string_lossy().into_owned();
    for entry in fs::read_dir("/proc")? {
        let dir = entry?.path();
        let Ok(cmdline) = fs::read(dir.join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().is_some_and(|a| a.ends_with("bucketfs")) && args.contains(&needle) {
            if let Some(pid) = dir.file_name().and_then(|n| n.to_str()?.parse().ok()) {
                return Ok(pid);
            }
        }
    }
    bail!("no bucketfs daemon for {needle}")
}

/// A small tmpfs mounted over a directory for the life of the value.
pub struct TinyDisk(PathBuf);

impl TinyDisk {
    pub fn mount(dir: &std::path::Path, size: &str) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()?;
        anyhow::ensure!(status.success(), "mount tmpfs failed");
        Ok(Self(dir.to_path_buf()))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
