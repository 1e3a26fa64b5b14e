//! Mounting the Unix way: `mount -t fuse.bucketfs` with `-o` options, an
//! fstab line (`mount DIR`), fuse3's `mount.fuse` calling the binary by its
//! name, and `umount`. Keys come from a credentials file named in the
//! options, as a boot-time mount has no environment to take them from.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Result};
use bucketfs_tests::tools::Mount;
use bucketfs_tests::{bin_dir, is_mounted, Cluster};

/// `/sbin/mount.fuse.bucketfs`, where mount(8) looks for the helper of
/// type `fuse.bucketfs`: a link to the binary under test while it lives
/// (any earlier one is put back).
struct HelperLink {
    path: PathBuf,
    before: Option<PathBuf>,
}

impl HelperLink {
    fn install() -> Result<Self> {
        let path = PathBuf::from("/sbin/mount.fuse.bucketfs");
        let before = fs::read_link(&path).ok();
        let _ = fs::remove_file(&path);
        std::os::unix::fs::symlink(bin_dir().join("bucketfs"), &path)?;
        Ok(Self { path, before })
    }
}

impl Drop for HelperLink {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        if let Some(before) = &self.before {
            let _ = std::os::unix::fs::symlink(before, &self.path);
        }
    }
}

fn run(command: &mut Command) -> Result<String> {
    let out = command.output()?;
    ensure!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn umount(dir: &Path) -> Result<()> {
    run(Command::new("umount").arg(dir))?;
    bucketfs_tests::wait_until("umount", std::time::Duration::from_secs(10), || !is_mounted(dir))
}

#[test]
fn mount_t_fstab_and_mount_fuse_mount_a_bucket_and_umount_ends_it() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://unix"])?;
    let credentials = cluster.dir.join("credentials");
    fs::write(
        &credentials,
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            cluster.access_key, cluster.secret_key
        ),
    )?;
    fs::set_permissions(&credentials, fs::Permissions::from_mode(0o600))?;
    let options = |extra: &str| {
        format!(
            "_netdev,endpoint={},credentials={},cache_dir={},cache_size=64,allow_other,log={}{extra}",
            cluster.endpoint(),
            credentials.display(),
            cluster.dir.join("cache").display(),
            cluster.dir.join("logs/unix-mount.log").display(),
        )
    };
    let _helper = HelperLink::install()?;

    // mount -t with -o options.
    let dir = cluster.dir.join("mnt");
    fs::create_dir_all(&dir)?;
    let mount_t = |extra: &str| {
        let mut command = Command::new("mount");
        command
            .args(["-t", "fuse.bucketfs", "unix"])
            .arg(&dir)
            .arg("-o")
            .arg(options(extra));
        command
    };
    run(&mut mount_t(""))?;
    let _guard = Mount { dir: dir.clone() };
    ensure!(is_mounted(&dir), "not mounted after mount -t");
    fs::write(dir.join("hello"), b"from mount -t")?;
    let types = fs::read_to_string("/proc/self/mounts")?;
    ensure!(
        types
            .lines()
            .any(|l| l.contains(&*dir.to_string_lossy()) && l.contains("fuse.bucketfs")),
        "the mount is not of type fuse.bucketfs"
    );
    umount(&dir)?;
    ensure!(
        cluster.aws_ok(&["s3", "cp", "s3://unix/hello", "-"])? == "from mount -t",
        "the file written through mount -t is not in the bucket"
    );

    // An fstab line, read-only: `mount DIR` finds the rest.
    let fstab = cluster.dir.join("fstab");
    fs::write(
        &fstab,
        format!("unix {} fuse.bucketfs {} 0 0\n", dir.display(), options(",ro")),
    )?;
    run(Command::new("mount").arg("-T").arg(&fstab).arg(&dir))?;
    ensure!(
        fs::read(dir.join("hello"))? == b"from mount -t",
        "fstab mount reads wrong bytes"
    );
    let refused = fs::write(dir.join("nope"), b"x").unwrap_err();
    ensure!(
        refused.raw_os_error() == Some(libc_erofs()),
        "write on ro mount: {refused}"
    );
    umount(&dir)?;

    // fuse3's mount.fuse runs `bucketfs BUCKET DIR -o OPTIONS` from PATH.
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run(Command::new("mount.fuse3")
        .arg("bucketfs#unix")
        .arg(&dir)
        .arg("-o")
        .arg(options(""))
        .env("PATH", path))?;
    ensure!(
        fs::read(dir.join("hello"))? == b"from mount -t",
        "mount.fuse mount reads wrong bytes"
    );
    umount(&dir)?;

    // A world-readable credentials file and an unknown option are refused
    // with their reasons, and nothing is mounted.
    let refused = |extra: &str, reason: &str| -> Result<()> {
        let out = mount_t(extra).output()?;
        let said = String::from_utf8_lossy(&out.stderr);
        ensure!(!out.status.success() && said.contains(reason), "{said}");
        Ok(())
    };
    fs::set_permissions(&credentials, fs::Permissions::from_mode(0o644))?;
    refused("", "readable by others")?;
    fs::set_permissions(&credentials, fs::Permissions::from_mode(0o600))?;
    refused(",colour=blue", "colour=blue")?;
    ensure!(!is_mounted(&dir), "a refused mount left a mount behind");
    Ok(())
}

fn libc_erofs() -> i32 {
    30
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() -> Result<()> {
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd");
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    for entry in fs::read_dir(&units)? {
        let path = entry?.path();
        // The binaries under test stand in for /usr/local/bin's.
        let text = fs::read_to_string(&path)?.replace("/usr/local/bin", &bin_dir().to_string_lossy());
        let copy = dir.join(path.file_name().expect("a unit file"));
        fs::write(&copy, text)?;
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()?;
        let said = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.success() && !said.contains(&*copy.to_string_lossy()),
            "{}: {said}",
            path.display()
        );
    }
    Ok(())
}
