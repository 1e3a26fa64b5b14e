//! The daemon's own guard against a stale mount: a small process of ours
//! (`bucketfs watch-mount`), started before the FUSE device is opened, that
//! holds the read end of a pipe only the daemon writes to (once mounted, the
//! mount's device). When the daemon is gone however it died (kill -9
//! included), the pipe ends; if that mount is still the topmost one at the
//! mount point (not a later mount there), the watcher aborts its FUSE
//! connection (so nothing waits on a daemon that will never answer) and
//! detaches it.
//!
//! fusermount3's `auto_unmount` stays on as well, but it unmounts only when
//! opening the mount point answers ENOTCONN: an open that races the end of
//! the connection (ECONNABORTED), or one that waits on it, leaves the mount
//! in place — CI runs saw both, a dead daemon's mount lasting past 60 s.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

/// The daemon's end of the pipe to its watcher.
pub struct Watcher {
    pipe: std::process::ChildStdin,
    mountpoint: PathBuf,
    fsname: String,
}

/// Starts the watcher of `mountpoint` (which will show `fsname` as its
/// source). Call before the FUSE device is opened: a process started later
/// would inherit the device (fuser does not mark it close-on-exec) and keep
/// a dead daemon's connection alive.
pub fn spawn(mountpoint: &Path, fsname: &str) -> Result<Watcher> {
    let mountpoint = std::fs::canonicalize(mountpoint)?;
    let exe = std::env::current_exe().context("finding the bucketfs binary")?;
    let mut child = Command::new(exe)
        .arg("watch-mount")
        .arg(&mountpoint)
        .arg(fsname)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the mount's watcher")?;
    let pipe = child.stdin.take().context("the watcher's pipe")?;
    // Reaped by init once it outlives us; it never ends before we do.
    std::mem::forget(child);
    Ok(Watcher {
        pipe,
        mountpoint,
        fsname: fsname.to_string(),
    })
}

impl Watcher {
    /// The mount is made: tells the watcher its device, so that it does
    /// not take another mount at the same place for this one.
    pub fn mounted(&mut self) {
        if let Some((major, minor)) = our_mount(&self.mountpoint, &self.fsname, None) {
            self.tell(&format!("{major}:{minor}"));
        }
    }

    /// The session has ended and the mount is gone (fuser unmounts when
    /// its session ends): the watcher must then leave the mount point alone
    /// — the next mount there (a remount, made while this daemon still
    /// uploads) can even get the same device number. Keeps the pipe open
    /// until this process ends.
    pub fn unmounted(mut self) {
        self.tell(UNMOUNTED);
        std::mem::forget(self.pipe);
    }

    fn tell(&mut self, line: &str) {
        use std::io::Write;
        if let Err(e) = writeln!(self.pipe, "{line}") {
            tracing::warn!(error = %e, "could not tell the mount's watcher");
        }
    }
}

/// What the daemon tells its watcher once its session has ended.
const UNMOUNTED: &str = "unmounted";

/// The watcher: waits for the daemon to end, then removes its mount if it
/// is still there.
pub fn watch(mountpoint: &Path, fsname: &str) -> Result<()> {
    // A session of its own: a terminal's ^C or hangup, meant for a
    // foreground daemon (which then unmounts cleanly), does not end it.
    let _ = nix::unistd::setsid();
    // The daemon writes its mount's device once mounted, and UNMOUNTED
    // when its session has ended; the pipe ends with the daemon.
    let mut told = String::new();
    let _ = std::io::stdin().read_to_string(&mut told);
    let Some(device) = told.lines().last().and_then(parse_device) else {
        return Ok(());
    };
    if our_mount(mountpoint, fsname, Some(device)).is_none() {
        return Ok(());
    }
    tracing::warn!(mountpoint = %mountpoint.display(), "the daemon ended without unmounting; removing its mount");
    // The connection's id is the device's minor number (major is 0).
    let abort = format!("/sys/fs/fuse/connections/{}/abort", device.1);
    if let Err(e) = std::fs::write(&abort, "1") {
        tracing::info!(%abort, error = %e, "could not abort the FUSE connection");
    }
    if nix::unistd::geteuid().is_root() {
        crate::umount(mountpoint)
    } else {
        let status = Command::new("fusermount3")
            .args(["-u", "-z", "--"])
            .arg(mountpoint)
            .status()
            .context("running fusermount3 -u -z")?;
        anyhow::ensure!(status.success(), "fusermount3 -u -z failed");
        Ok(())
    }
}

/// The device (major, minor) of the topmost mount at `mountpoint` if it is
/// this mount: a bucketfs FUSE mount with source `fsname`, and on `device`
/// if given.
fn our_mount(mountpoint: &Path, fsname: &str, device: Option<(u32, u32)>) -> Option<(u32, u32)> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let top = table
        .lines()
        .rev()
        .filter_map(parse_mountinfo_line)
        .find(|m| m.point == mountpoint)?;
    let ours =
        top.fstype.starts_with("fuse") && top.source == fsname && device.is_none_or(|d| d == top.device);
    ours.then_some(top.device)
}

/// `MAJOR:MINOR`.
fn parse_device(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

struct MountLine {
    device: (u32, u32),
    point: PathBuf,
    fstype: String,
    source: String,
}

/// One line of /proc/self/mountinfo: `ID PARENT MAJ:MIN ROOT POINT OPTS
/// [TAGS...] - FSTYPE SOURCE SUPEROPTS`, with spaces in paths as `\040`.
fn parse_mountinfo_line(line: &str) -> Option<MountLine> {
    let (head, tail) = line.split_once(" - ")?;
    let head: Vec<&str> = head.split(' ').collect();
    let mut tail = tail.split(' ');
    Some(MountLine {
        device: parse_device(head.get(2)?)?,
        point: PathBuf::from(unescape(head.get(4)?)),
        fstype: tail.next()?.to_string(),
        source: unescape(tail.next()?),
    })
}

/// Undoes the kernel's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |v, c| v.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_are_read_with_their_escapes() {
        let line = "97 29 0:52 / /tmp/my\\040dir rw,nosuid,nodev,relatime shared:55 - fuse.bucketfs bucketfs:data rw,user_id=0,group_id=0,default_permissions,allow_other";
        let m = parse_mountinfo_line(line).unwrap();
        assert_eq!(m.device, (0, 52));
        assert_eq!(m.point, PathBuf::from("/tmp/my dir"));
        assert_eq!(m.fstype, "fuse.bucketfs");
        assert_eq!(m.source, "bucketfs:data");
        assert!(parse_mountinfo_line("garbage").is_none());
        assert_eq!(parse_device("0:52\n"), Some((0, 52)));
    }
}
