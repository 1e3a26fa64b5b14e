//! Fifos, unix sockets and devices on the mount: empty objects whose mode
//! (`x-amz-meta-mode`, as s3fs writes it) and device number
//! (`x-amz-meta-rdev`) say what they are, so the kernel gives them their
//! behaviour.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use anyhow::{ensure, Context, Result};
use bucketfs_tests::Cluster;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

/// Type, permission bits and device number, as stat shows them.
fn kind_of(path: &Path) -> Result<(&'static str, u32, u64)> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("stat {}", path.display()))?;
    let t = meta.file_type();
    let kind = match () {
        _ if t.is_fifo() => "fifo",
        _ if t.is_socket() => "socket",
        _ if t.is_char_device() => "char",
        _ if t.is_block_device() => "block",
        _ if t.is_file() => "file",
        _ => "other",
    };
    Ok((kind, meta.mode() & 0o7777, meta.rdev()))
}

/// `mode` as a file made with it gets it: less the process's umask, read
/// rather than set, since the other end-to-end tests share this process.
fn made(mode: u32) -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let umask = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|m| u32::from_str_radix(m.trim(), 8).ok())
        .unwrap_or(0o022);
    mode & !umask
}

#[test]
fn fifos_sockets_and_devices_keep_their_type_and_work() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://special"])?;
    let mnt = cluster.dir.join("mnt");
    let mount = cluster.mount("special", &mnt)?;

    // A fifo carries bytes from a writer to a reader on the mount.
    let fifo = mnt.join("pipe");
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o640))?;
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::write(&fifo, b"through the pipe"))
    };
    let got = fs::read(&fifo)?;
    writer.join().expect("writer thread")?;
    assert_eq!(got, b"through the pipe");

    // A unix socket bound in the mount accepts a connection.
    let socket = mnt.join("socket");
    let listener = UnixListener::bind(&socket)?;
    let client = {
        let socket = socket.clone();
        std::thread::spawn(move || -> std::io::Result<()> {
            UnixStream::connect(&socket)?.write_all(b"hello over the socket")
        })
    };
    let (mut conn, _) = listener.accept()?;
    let mut said = String::new();
    conn.read_to_string(&mut said)?;
    client.join().expect("client thread")?;
    assert_eq!(said, "hello over the socket");

    // Devices keep their numbers.
    let null = makedev(1, 3);
    let disk = makedev(8, 3);
    mknod(
        &mnt.join("null"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        null,
    )?;
    mknod(
        &mnt.join("sda3"),
        SFlag::S_IFBLK,
        Mode::from_bits_truncate(0o600),
        disk,
    )?;

    let want = [
        ("pipe", ("fifo", made(0o640), 0)),
        ("socket", ("socket", kind_of(&socket)?.1, 0)),
        ("null", ("char", made(0o666), null)),
        ("sda3", ("block", made(0o600), disk)),
    ];
    // s3fs (1.90, Debian's) keeps no device numbers, its own or ours:
    // it shows types and modes.
    let check = |root: &Path, who: &str, rdev: bool| -> Result<()> {
        for (name, (kind, mode, dev)) in &want {
            let want = (*kind, *mode, if rdev { *dev } else { 0 });
            let got = kind_of(&root.join(name))?;
            ensure!(got == want, "{who}: {name} is {got:?}, want {want:?}");
        }
        Ok(())
    };
    let check_all = |root: &Path, who: &str| check(root, who, true);
    check_all(&mnt, "the mount")?;
    drop(listener);

    // The same after a remount, in the objects' metadata, and through s3fs.
    drop(mount);
    let mount = cluster.mount("special", &mnt)?;
    check_all(&mnt, "after a remount")?;
    let head = cluster.aws_ok(&["s3api", "head-object", "--bucket", "special", "--key", "null"])?;
    let head: serde_json::Value = serde_json::from_str(&head)?;
    assert_eq!(head["ContentLength"], 0);
    assert_eq!(
        head["Metadata"]["mode"],
        (SFlag::S_IFCHR.bits() | made(0o666)).to_string()
    );
    assert_eq!(head["Metadata"]["rdev"], null.to_string());
    let s3fs = cluster.mount_s3fs("special", &cluster.dir.join("s3fs"))?;
    check(&s3fs.dir, "s3fs", false)?;
    // And the reverse: what s3fs makes, the mount shows as such.
    mknod(
        &s3fs.dir.join("s3fs-null"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o644),
        null,
    )?;
    nix::unistd::mkfifo(&s3fs.dir.join("s3fs-pipe"), Mode::from_bits_truncate(0o600))?;
    drop(s3fs);
    assert_eq!(kind_of(&mnt.join("s3fs-null"))?, ("char", made(0o644), 0));
    assert_eq!(kind_of(&mnt.join("s3fs-pipe"))?, ("fifo", made(0o600), 0));

    // Renamed, they stay what they are; removed, they are gone.
    fs::rename(mnt.join("pipe"), mnt.join("pipe2"))?;
    assert_eq!(kind_of(&mnt.join("pipe2"))?, ("fifo", made(0o640), 0));
    fs::set_permissions(mnt.join("sda3"), fs::Permissions::from_mode(0o640))?;
    assert_eq!(kind_of(&mnt.join("sda3"))?, ("block", 0o640, disk));
    for name in ["pipe2", "socket", "null", "sda3", "s3fs-null", "s3fs-pipe"] {
        fs::remove_file(mnt.join(name))?;
    }
    assert_eq!(fs::read_dir(&mnt)?.count(), 0);
    drop(mount);
    let listed = cluster.aws_ok(&["s3", "ls", "s3://special/"])?;
    assert!(listed.trim().is_empty(), "left in the bucket: {listed}");
    Ok(())
}
