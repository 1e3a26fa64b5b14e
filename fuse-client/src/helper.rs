//! Mounting the Unix way. `mount -t fuse.bucketfs BUCKET DIR -o OPTIONS`
//! (and an /etc/fstab line `BUCKET DIR fuse.bucketfs OPTIONS 0 0`) runs
//! `/sbin/mount.fuse.bucketfs BUCKET DIR -o OPTIONS`, a link to this binary;
//! without that link, fuse3's `mount.fuse` runs `bucketfs BUCKET DIR -o
//! OPTIONS`. Both arrive here and become the command line
//! `bucketfs mount BUCKET DIR --option value ...`, so there is one parser
//! and one set of checks for every way in.
//!
//! An option `name=value` is the flag `--name value` (`cache_size=512`,
//! `write_back=64`, `credentials=/etc/bucketfs/credentials`...), a bare
//! `name` is `--name` (`allow_other`, `foreground`), `ro` is `--read-only`.
//! What mount(8) and fstab add for themselves (`rw`, `defaults`, `_netdev`,
//! `noauto`, `nofail`, `x-systemd.*`...) and the kernel's generic flags the
//! mount sets on its own (`nosuid`, `nodev`, `noatime`...) are skipped.
//! Keys never travel in options (they would show in `ps`): they come from
//! the credentials file, the environment or ~/.aws.

use std::ffi::OsString;

use anyhow::{bail, Result};

/// Options mount(8), fstab and systemd use themselves, and the generic
/// mount flags a FUSE mount decides on its own.
const SKIPPED: &[&str] = &[
    "rw",
    "defaults",
    "auto",
    "noauto",
    "_netdev",
    "nofail",
    "user",
    "users",
    "nouser",
    "owner",
    "group",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "exec",
    "noexec",
    "atime",
    "noatime",
    "relatime",
    "norelatime",
    "strictatime",
    "diratime",
    "nodiratime",
    "lazytime",
    "sync",
    "async",
];

/// Options that take a value, as this binary's flags spell them.
const VALUED: &[&str] = &[
    "endpoint",
    "ca_file",
    "credentials",
    "region",
    "profile",
    "cache_size",
    "cache_dir",
    "disk_cache_size",
    "at",
    "attr_ttl",
    "dir_ttl",
    "write_back",
    "log",
    "metrics",
];

/// Options that are flags.
const FLAGS: &[&str] = &["allow_other", "read_only", "foreground"];

/// What the command line asks for: the arguments to parse (the binary's own
/// form, translated from the mount helper's if need be), or nothing to do
/// (`mount -f`, a fake mount).
pub enum Invocation {
    Run(Vec<OsString>),
    Nothing,
}

/// Reads `args` (the whole command line, program name first) in either
/// form. The helper's form is taken when the program is called as
/// `mount.*`, or when its first argument is no subcommand or flag and its
/// second is a directory (how `mount.fuse` calls it).
pub fn invocation(args: Vec<OsString>) -> Result<Invocation> {
    let program = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let called_as_helper = std::path::Path::new(&program)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("mount."));
    let helper_form = args.len() >= 3
        && !args[1].to_string_lossy().starts_with('-')
        && !["mount", "umount", "watch-mount", "help"].contains(&args[1].to_string_lossy().as_ref())
        && std::path::Path::new(&args[2]).is_dir();
    if !called_as_helper && !helper_form {
        return Ok(Invocation::Run(args));
    }
    translate(&args[1..]).map(|translated| match translated {
        Some(rest) => {
            let mut out = vec![OsString::from(program)];
            out.extend(rest.into_iter().map(OsString::from));
            Invocation::Run(out)
        }
        None => Invocation::Nothing,
    })
}

/// `BUCKET DIR [-sfnv] [-o OPTIONS]` → `mount BUCKET DIR --flag ...`; `None`
/// for a fake mount (`-f`).
fn translate(args: &[OsString]) -> Result<Option<Vec<String>>> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut fake = false;
    let mut args = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-o" => match args.next() {
                Some(list) => options.extend(list.split(',').filter(|o| !o.is_empty()).map(str::to_string)),
                None => bail!("-o needs a list of options"),
            },
            // Sloppy, no mtab, verbose: nothing to do for a FUSE mount.
            "-s" | "-n" | "-v" => {}
            "-f" => fake = true,
            a if a.starts_with("-o") => options.extend(a[2..].split(',').map(str::to_string)),
            a if a.starts_with('-') => bail!("unknown mount helper flag {a}"),
            _ => positional.push(arg),
        }
    }
    let [bucket, dir] = positional.as_slice() else {
        bail!("usage: mount.fuse.bucketfs BUCKET MOUNTPOINT [-o OPTIONS]");
    };
    // `mount.fuse` style sources may carry the type: `bucketfs#BUCKET`.
    let bucket = bucket.strip_prefix("bucketfs#").unwrap_or(bucket);
    let mut out = vec!["mount".to_string(), bucket.to_string(), dir.clone()];
    for option in options {
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (option.as_str(), None),
        };
        if SKIPPED.contains(&name) || name.starts_with("x-") || name == "comment" {
            continue;
        }
        let name = match name {
            "ro" => "read_only",
            "credentials" | "credentials_file" => "credentials",
            other => other,
        };
        match value {
            _ if name == "access_key" || name == "secret_key" => {
                bail!("keys are not taken as mount options (they would show in ps); name a credentials=FILE")
            }
            Some(value) if VALUED.contains(&name) => {
                out.push(flag(name));
                out.push(value.to_string());
            }
            None if FLAGS.contains(&name) => out.push(flag(name)),
            _ => bail!("unknown mount option {option}"),
        }
    }
    Ok((!fake).then_some(out))
}

/// `cache_size` → `--cache-size`; `credentials` → `--credentials-file`.
fn flag(name: &str) -> String {
    match name {
        "credentials" => "--credentials-file".to_string(),
        _ => format!("--{}", name.replace('_', "-")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Vec<String> {
        let args = args.iter().map(OsString::from).collect();
        match invocation(args).unwrap() {
            Invocation::Run(out) => out.into_iter().map(|a| a.into_string().unwrap()).collect(),
            Invocation::Nothing => vec!["nothing".into()],
        }
    }

    #[test]
    fn mount_options_become_flags() {
        let tmp = std::env::temp_dir();
        let dir = tmp.to_str().unwrap();
        assert_eq!(
            run(&[
                "/sbin/mount.fuse.bucketfs",
                "photos",
                dir,
                "-o",
                "rw,_netdev,noatime,ro,cache_size=512,credentials=/etc/c,allow_other,x-systemd.automount"
            ]),
            [
                "/sbin/mount.fuse.bucketfs",
                "mount",
                "photos",
                dir,
                "--read-only",
                "--cache-size",
                "512",
                "--credentials-file",
                "/etc/c",
                "--allow-other"
            ]
        );
        // mount.fuse's call: the binary's own name, the helper's form.
        assert_eq!(
            run(&["bucketfs", "bucketfs#b", dir, "-o", "write_back=8"]),
            ["bucketfs", "mount", "b", dir, "--write-back", "8"]
        );
        assert_eq!(run(&["mount.fuse.bucketfs", "b", dir, "-f"]), ["nothing"]);
        // The binary's own form passes through.
        assert_eq!(
            run(&["bucketfs", "mount", "b", dir]),
            ["bucketfs", "mount", "b", dir]
        );
    }

    #[test]
    fn bad_options_are_refused_with_the_reason() {
        let dir = std::env::temp_dir();
        let dir = dir.to_str().unwrap();
        let err = |args: &[&str]| {
            invocation(args.iter().map(OsString::from).collect())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(&["mount.fuse.bucketfs", "b", dir, "-o", "colour=blue"])
            .contains("unknown mount option colour=blue"));
        assert!(err(&["mount.fuse.bucketfs", "b", dir, "-o", "secret_key=x"]).contains("credentials=FILE"));
        assert!(err(&["mount.fuse.bucketfs", "b", dir, "-o", "cache_size"]).contains("unknown mount option"));
        assert!(err(&["mount.fuse.bucketfs", "b"]).contains("usage"));
    }
}
