//! POSIX attributes kept in object metadata, under the header names s3fs
//! uses, so a bucket written by s3fs mounts here with the same owners, modes
//! and times, and the reverse.
//!
//! - `x-amz-meta-mode`: the whole `st_mode` in decimal, file type bits included
//!   (that is how a symlink or a directory marker is told apart);
//! - `x-amz-meta-uid`, `x-amz-meta-gid`: decimal ids;
//! - `x-amz-meta-rdev`: the device number of a character or block device,
//!   decimal (`makedev` encoding), written only when not 0;
//! - `x-amz-meta-mtime`, `x-amz-meta-atime`, `x-amz-meta-ctime`: `SECONDS.NANOSECONDS`
//!   (s3fs also reads plain seconds, and so do we);
//! - `x-amz-meta-xattr`: extended attributes as percent-encoded JSON mapping
//!   each name to its base64 value.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use base64::Engine;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFIFO: u32 = 0o010000;
pub const S_IFSOCK: u32 = 0o140000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;

/// Metadata keys (without `x-amz-meta-`) this module owns.
const MODE: &str = "mode";
const UID: &str = "uid";
const GID: &str = "gid";
const RDEV: &str = "rdev";
const MTIME: &str = "mtime";
const ATIME: &str = "atime";
const CTIME: &str = "ctime";
const XATTR: &str = "xattr";

/// Extended attributes of one file.
pub type Xattrs = BTreeMap<String, Vec<u8>>;

/// The owner, permissions and times of a file of any type, and the device
/// number of a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Posix {
    /// Full `st_mode`: type bits and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The device a character or block device stands for; else 0.
    pub rdev: u32,
    pub mtime: SystemTime,
    /// Set by `utimensat` only: reads do not update it (as with `noatime`).
    pub atime: SystemTime,
    pub ctime: SystemTime,
    pub xattrs: Xattrs,
}

impl Posix {
    /// Attributes for a new object of type `kind_bits` (`S_IF*`).
    pub fn new(kind_bits: u32, perm: u32, uid: u32, gid: u32) -> Self {
        let now = SystemTime::now();
        Self {
            mode: kind_bits | (perm & 0o7777),
            uid,
            gid,
            rdev: 0,
            mtime: now,
            atime: now,
            ctime: now,
            xattrs: Xattrs::new(),
        }
    }

    pub fn kind_bits(&self) -> u32 {
        self.mode & S_IFMT
    }

    /// Reads the attributes from user metadata (keys without `x-amz-meta-`),
    /// using `fallback` for whatever is missing, as for objects written by
    /// clients that know nothing of POSIX.
    pub fn from_metadata(meta: &HashMap<String, String>, fallback: &Posix) -> Self {
        let num = |k: &str| meta.get(k).and_then(|v| v.trim().parse::<u32>().ok());
        let time = |k: &str| meta.get(k).and_then(|v| parse_time(v));
        let mut mode = num(MODE).unwrap_or(fallback.mode);
        if mode & S_IFMT == 0 {
            mode |= fallback.mode & S_IFMT;
        }
        let mtime = time(MTIME).unwrap_or(fallback.mtime);
        Self {
            mode,
            uid: num(UID).unwrap_or(fallback.uid),
            gid: num(GID).unwrap_or(fallback.gid),
            rdev: num(RDEV).unwrap_or(0),
            mtime,
            atime: time(ATIME).unwrap_or(mtime),
            ctime: time(CTIME).unwrap_or(mtime),
            xattrs: meta.get(XATTR).map(|v| decode_xattrs(v)).unwrap_or_default(),
        }
    }

    /// The user metadata (keys without `x-amz-meta-`) that stores these attributes.
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let mut meta = HashMap::from([
            (MODE.to_string(), self.mode.to_string()),
            (UID.to_string(), self.uid.to_string()),
            (GID.to_string(), self.gid.to_string()),
            (MTIME.to_string(), format_time(self.mtime)),
            (ATIME.to_string(), format_time(self.atime)),
            (CTIME.to_string(), format_time(self.ctime)),
        ]);
        if self.rdev != 0 {
            meta.insert(RDEV.to_string(), self.rdev.to_string());
        }
        if !self.xattrs.is_empty() {
            meta.insert(XATTR.to_string(), encode_xattrs(&self.xattrs));
        }
        meta
    }
}

fn format_time(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

fn parse_time(s: &str) -> Option<SystemTime> {
    let (secs, nanos) = match s.trim().split_once('.') {
        Some((s, n)) => (s, n),
        None => (s.trim(), "0"),
    };
    let secs: u64 = secs.parse().ok()?;
    // s3fs writes nine digits; be lenient with fewer (a decimal fraction).
    let digits = nanos.len().min(9);
    let nanos: u32 = nanos.get(..digits)?.parse::<u32>().ok()? * 10u32.pow(9 - digits as u32);
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

fn encode_xattrs(xattrs: &Xattrs) -> String {
    let map: BTreeMap<&str, String> = xattrs
        .iter()
        .map(|(k, v)| (k.as_str(), base64::engine::general_purpose::STANDARD.encode(v)))
        .collect();
    let json = serde_json::to_string(&map).unwrap_or_else(|_| "{}".into());
    percent_encoding::utf8_percent_encode(&json, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn decode_xattrs(value: &str) -> Xattrs {
    let json = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
    let Ok(map) = serde_json::from_str::<BTreeMap<String, String>>(&json) else {
        tracing::warn!(%value, "ignoring unreadable x-amz-meta-xattr");
        return Xattrs::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| {
            base64::engine::general_purpose::STANDARD
                .decode(v)
                .ok()
                .map(|v| (k, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_metadata() {
        let mut p = Posix::new(S_IFLNK, 0o777, 1000, 100);
        p.mtime = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        p.atime = SystemTime::UNIX_EPOCH + Duration::new(1_600_000_000, 1);
        p.xattrs.insert("user.a b".into(), vec![0, 1, 255]);
        let back = Posix::from_metadata(&p.to_metadata(), &Posix::new(S_IFREG, 0o644, 0, 0));
        assert_eq!(back, p);
        let mut device = Posix::new(S_IFBLK, 0o600, 0, 6);
        device.rdev = 0x0803; // 8:3, /dev/sda3
        let meta = device.to_metadata();
        assert_eq!((meta["mode"].as_str(), meta["rdev"].as_str()), ("24960", "2051"));
        assert_eq!(
            Posix::from_metadata(&meta, &Posix::new(S_IFREG, 0o644, 0, 0)),
            device
        );
        assert!(!Posix::new(S_IFIFO, 0o644, 0, 0)
            .to_metadata()
            .contains_key("rdev"));
        assert_eq!(p.to_metadata()["mtime"], "1700000000.123456789");
    }

    #[test]
    fn reads_what_s3fs_and_plain_clients_write() {
        let fallback = Posix::new(S_IFREG, 0o644, 7, 8);
        let meta = HashMap::from([
            ("mode".to_string(), "33261".to_string()), // S_IFREG | 0755
            ("mtime".to_string(), "1600000000".to_string()),
        ]);
        let p = Posix::from_metadata(&meta, &fallback);
        assert_eq!(p.mode, S_IFREG | 0o755);
        assert_eq!((p.uid, p.gid), (7, 8));
        assert_eq!(
            p.mtime,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000)
        );
        assert_eq!(p.ctime, p.mtime);
        // Permission bits alone take the file type from the fallback.
        let meta = HashMap::from([("mode".to_string(), "420".to_string())]);
        assert_eq!(Posix::from_metadata(&meta, &fallback).mode, S_IFREG | 0o644);
        assert_eq!(
            parse_time("5.5"),
            Some(SystemTime::UNIX_EPOCH + Duration::new(5, 500_000_000))
        );
        assert_eq!(parse_time("x"), None);
    }
}
