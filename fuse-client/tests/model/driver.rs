//! Applies random operations to `Fs` and to the reference model and
//! compares them. Paths come from a small pool of names, so operations
//! collide: a create over an existing name, a rename onto a directory, an
//! unlink of an open file.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bucketfs::error::FsError;
use bucketfs::fs::{Attr, Config, Fs, Kind, SetAttr, ROOT};
use bucketfs::memory::MemoryStore;

use crate::reference::{join, parent, Body, Model};
use crate::rng::Rng;

const NAMES: [&str; 4] = ["a", "b", "c", "d"];
/// The multipart part size: writes near it make files of several parts.
const PART: u64 = bucketfs_common::extension::CHUNK_SIZE as u64;
/// No operation of the in-memory store takes this long, even in virtual
/// time with every retry: past it, something hangs.
const HANG: Duration = Duration::from_secs(600);

/// How a sequence mounts.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub write_back: usize,
    pub versioned: bool,
    /// The store has a change feed, which the mount follows; the harness
    /// holds it back and releases it at random, so the mount's echoes of
    /// its own changes come late (see `deliver`).
    pub feed: bool,
}

impl Settings {
    pub fn random(rng: &mut Rng) -> Self {
        Settings {
            write_back: if rng.chance(50) { 0 } else { 4 },
            versioned: rng.chance(30),
            feed: rng.chance(50),
        }
    }
}

/// An open handle, as the model knows it.
#[derive(Debug, Clone)]
pub struct Open {
    pub fh: u64,
    pub ino: u64,
    pub path: String,
    pub write: bool,
    pub append: bool,
}

pub struct Harness {
    pub settings: Settings,
    pub store: Arc<MemoryStore>,
    pub fs: Arc<Fs>,
    pub model: Model,
    pub open: Vec<Open>,
    pub log: String,
    /// Keeps staging files for the harness's life.
    pub dir: tempfile::TempDir,
    /// The mount's follower of the change feed, if the store has one.
    follower: Option<tokio::task::JoinHandle<()>>,
    /// How far the follower may read the feed.
    released: u64,
}

pub fn config(settings: Settings, dir: &std::path::Path) -> Config {
    Config {
        read_only: false,
        cache_dir: dir.to_path_buf(),
        cache_bytes: 16 << 20,
        disk_cache_bytes: 0,
        disk_cache_name: None,
        attr_ttl: Duration::from_secs(1),
        dir_ttl: Duration::from_secs(60),
        uid: 0,
        gid: 0,
        at: None,
        write_back: settings.write_back,
    }
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(HANG, f)
        .await
        .map_err(|_| format!("{what} hung"))
}

impl Harness {
    pub fn new(settings: Settings) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Arc::new(match settings.feed {
            true => MemoryStore::with_feed(settings.versioned),
            false => MemoryStore::new(settings.versioned),
        });
        store.release_feed(0);
        let fs = Arc::new(Fs::new(store.clone(), config(settings, dir.path())).expect("an Fs"));
        let follower = settings.feed.then(|| tokio::spawn(fs.clone().follow_changes()));
        Harness {
            settings,
            store,
            fs,
            model: Model::new(),
            open: Vec::new(),
            log: String::new(),
            dir,
            follower,
            released: 0,
        }
    }

    /// Lets the mount's follower read some more of the feed, at random:
    /// the echoes of the mount's own changes arrive one or many operations
    /// late, applied at once or at the next moment an operation waits.
    async fn deliver(&mut self, rng: &mut Rng) {
        let len = self.store.feed_len();
        if self.follower.is_none() || len == self.released || !rng.chance(40) {
            return;
        }
        self.released += 1 + rng.below(len - self.released);
        self.store.release_feed(self.released);
        self.note(format!("feed read up to change {}", self.released));
        if rng.chance(70) {
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        }
    }

    /// The result of a run, with the log of operations on failure.
    pub fn finish(self, result: Result<(), String>) -> Result<(), String> {
        result.map_err(|e| format!("{:?}\n{}\n=> {e}", self.settings, self.log))
    }

    pub fn note(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.log, "  {}", line.as_ref());
    }

    /// Looks `path` up from the root, as the kernel would.
    pub async fn resolve(&self, path: &str) -> Result<Attr, FsError> {
        let mut attr = self.fs.getattr(ROOT).await?;
        if path.is_empty() {
            return Ok(attr);
        }
        for name in path.split('/') {
            attr = self.fs.lookup(attr.ino, name).await?;
        }
        Ok(attr)
    }

    async fn parent_ino(&self, path: &str) -> Result<u64, String> {
        self.resolve(parent(path))
            .await
            .map(|a| a.ino)
            .map_err(|e| format!("the parent of {path} did not resolve: {e}"))
    }

    /// A path whose parent is a directory in the model: an existing one
    /// most of the time, else a new name.
    fn pick_path(&self, rng: &mut Rng) -> String {
        let existing: Vec<&String> = self.model.paths.keys().filter(|p| !p.is_empty()).collect();
        if rng.chance(65) {
            if let Some(p) = rng.pick(&existing) {
                return p.to_string();
            }
        }
        self.new_path(rng)
    }

    fn new_path(&self, rng: &mut Rng) -> String {
        let dirs: Vec<String> = self
            .model
            .paths
            .keys()
            .filter(|p| self.model.is_dir(p) && p.matches('/').count() < 2)
            .cloned()
            .collect();
        let dir = rng.pick(&dirs).cloned().unwrap_or_default();
        join(&dir, NAMES[rng.below(NAMES.len() as u64) as usize])
    }

    fn pick_kind(&self, rng: &mut Rng, want: impl Fn(&Body) -> bool) -> Option<String> {
        let paths: Vec<&String> = self
            .model
            .paths
            .iter()
            .filter(|(p, i)| !p.is_empty() && want(&self.model.inodes[i].body))
            .map(|(p, _)| p)
            .collect();
        rng.pick(&paths).map(|p| p.to_string())
    }

    /// Compares an operation's result with the model's.
    fn expect<T>(
        &mut self,
        what: &str,
        got: Result<T, FsError>,
        want: Result<(), i32>,
    ) -> Result<Option<T>, String> {
        match (got, want) {
            (Ok(v), Ok(())) => {
                self.note(format!("{what}: ok"));
                Ok(Some(v))
            }
            (Err(e), Err(w)) if e.errno() == w => {
                self.note(format!("{what}: errno {w}"));
                Ok(None)
            }
            (Ok(_), Err(w)) => Err(format!("{what}: succeeded, the model says errno {w}")),
            (Err(e), want) => Err(format!(
                "{what}: failed with {e} (errno {}), the model says {want:?}",
                e.errno()
            )),
        }
    }

    pub async fn run(&mut self, rng: &mut Rng, steps: usize) -> Result<(), String> {
        for _ in 0..steps {
            bounded("an operation", self.step(rng)).await??;
            self.deliver(rng).await;
            self.check_one(rng).await?;
        }
        self.remount().await?;
        self.check_all().await
    }

    async fn step(&mut self, rng: &mut Rng) -> Result<(), String> {
        match rng.below(100) {
            0..=11 => self.create(rng).await,
            12..=19 => self.open(rng).await,
            20..=35 => self.write(rng).await,
            36..=37 => self.copy(rng).await,
            38..=45 => self.read(rng).await,
            46..=48 => self.truncate(rng).await,
            49..=50 => self.fallocate(rng).await,
            51..=55 => self.fsync(rng).await,
            56..=63 => self.close(rng).await,
            64..=70 => self.rename(rng).await,
            71..=75 => self.unlink(rng).await,
            76..=79 => self.rmdir(rng).await,
            80..=85 => self.mkdir(rng).await,
            86..=89 => self.chmod(rng).await,
            90..=91 => self.symlink(rng).await,
            92..=93 => self.link(rng).await,
            94..=95 => self.readlink(rng).await,
            96..=97 => self.readdir(rng).await,
            _ => self.remount().await,
        }
    }

    async fn create(&mut self, rng: &mut Rng) -> Result<(), String> {
        let path = self.new_path(rng);
        let perm = *rng.pick(&[0o644, 0o600, 0o755]).expect("modes");
        let parent = self.parent_ino(&path).await?;
        let name = path.rsplit('/').next().unwrap_or_default().to_string();
        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR;
        let got = self.fs.create(parent, &name, perm, 0, 0, flags).await;
        let want = self.model.create(&path, perm);
        let ino = want.as_ref().ok().copied();
        if let Some((_, fh)) = self.expect(&format!("create {path}"), got, want.map(|_| ()))? {
            let ino = ino.expect("created in the model");
            self.open.push(Open {
                fh,
                ino,
                path,
                write: true,
                append: false,
            });
        }
        Ok(())
    }

    async fn open(&mut self, rng: &mut Rng) -> Result<(), String> {
        let Some(path) = self.pick_kind(rng, |b| matches!(b, Body::File(_))) else {
            return Ok(());
        };
        let (write, trunc, append) = match rng.below(4) {
            0 => (false, false, false),
            1 => (true, false, false),
            2 => (true, true, false),
            _ => (true, false, true),
        };
        let mut flags = if write { libc::O_RDWR } else { libc::O_RDONLY };
        if trunc {
            flags |= libc::O_TRUNC;
        }
        if append {
            flags |= libc::O_APPEND;
        }
        let attr = self
            .resolve(&path)
            .await
            .map_err(|e| format!("{path} did not resolve: {e}"))?;
        let got = self.fs.open(attr.ino, flags).await;
        let ino = self.model.paths[&path];
        if let Some((fh, _)) = self.expect(&format!("open {path} {flags:#o}"), got, Ok(()))? {
            if trunc {
                self.model.truncate(ino, 0);
            }
            self.open.push(Open {
                fh,
                ino,
                path,
                write,
                append,
            });
        }
        Ok(())
    }

    fn pick_open(&self, rng: &mut Rng, write: bool) -> Option<Open> {
        let candidates: Vec<&Open> = self.open.iter().filter(|o| o.write || !write).collect();
        rng.pick(&candidates).map(|o| (*o).clone())
    }

    fn size_of(&self, ino: u64) -> u64 {
        match &self.model.inodes[&ino].body {
            Body::File(data) => data.len() as u64,
            Body::Symlink(t) => t.len() as u64,
            Body::Dir => 0,
        }
    }

    async fn write(&mut self, rng: &mut Rng) -> Result<(), String> {
        let Some(open) = self.pick_open(rng, true) else {
            return Ok(());
        };
        let size = self.size_of(open.ino);
        let (offset, len) = match rng.below(20) {
            0 => (PART - 1 - rng.below(3000), 1 + rng.below(6000)),
            1 => (size, 1 + rng.below(200_000)),
            2..=7 => (size, 1 + rng.below(4000)),
            _ => (rng.below(size + 2000), 1 + rng.below(5000)),
        };
        let data = rng.bytes(len as usize);
        let got = self.fs.write(open.fh, offset, &data).await;
        let at = if open.append { size } else { offset };
        let what = format!("write fh {} ({}) at {at} len {len}", open.fh, open.path);
        if let Some(n) = self.expect(&what, got, Ok(()))? {
            if n as u64 != len {
                return Err(format!("{what}: wrote {n}"));
            }
            self.model.write(open.ino, at, &data);
        }
        Ok(())
    }

    /// `copy_file_range` between two open files at one offset: mostly a
    /// whole file (the copy by reference), else any range. Where the mount
    /// answers "not supported" the kernel would copy through reads and
    /// writes, and so does this.
    async fn copy(&mut self, rng: &mut Rng) -> Result<(), String> {
        let (Some(from), Some(to)) = (self.pick_open(rng, false), self.pick_open(rng, true)) else {
            return Ok(());
        };
        if from.ino == to.ino || to.append {
            return Ok(());
        }
        let size = self.size_of(from.ino);
        let (offset, len) = match rng.below(4) {
            0..=1 => (0, size + rng.below(2)),
            _ => (rng.below(size + 100), 1 + rng.below(PART + 5000)),
        };
        let what = format!("copy {} -> {} at {offset} len {len}", from.path, to.path);
        let copied = match self.fs.copy_file_range(from.fh, offset, to.fh, offset, len).await {
            Err(FsError::NotSupported) => {
                let mut done = 0;
                while done < len {
                    let n = (len - done).min(1 << 20) as u32;
                    let bytes = self.fs.read(from.fh, offset + done, n).await;
                    let bytes = bytes.map_err(|e| format!("{what}: the kernel's read: {e}"))?;
                    if bytes.is_empty() {
                        break;
                    }
                    let wrote = self.fs.write(to.fh, offset + done, &bytes).await;
                    wrote.map_err(|e| format!("{what}: the kernel's write: {e}"))?;
                    done += bytes.len() as u64;
                }
                self.note(format!("{what}: copied by the kernel"));
                Ok(done)
            }
            other => other,
        };
        let Some(copied) = self.expect(&what, copied, Ok(()))? else {
            return Ok(());
        };
        let want = len.min(size.saturating_sub(offset));
        if copied != want {
            return Err(format!(
                "{what}: copied {copied}, the model has {want} bytes there"
            ));
        }
        let Body::File(data) = &self.model.inodes[&from.ino].body else {
            return Err(format!("{what}: the model's source is not a file"));
        };
        if copied > 0 {
            let bytes = data[offset as usize..(offset + copied) as usize].to_vec();
            self.model.write(to.ino, offset, &bytes);
        }
        Ok(())
    }

    /// fallocate in the modes the kernel passes on: plain and keep size
    /// (nothing; EOPNOTSUPP where the file would grow), punch hole and zero
    /// range (zeros).
    async fn fallocate(&mut self, rng: &mut Rng) -> Result<(), String> {
        let Some(open) = self.pick_open(rng, true) else {
            return Ok(());
        };
        let size = self.size_of(open.ino);
        let mode = [
            0,
            libc::FALLOC_FL_KEEP_SIZE,
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            libc::FALLOC_FL_ZERO_RANGE,
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
        ][rng.below(5) as usize];
        let offset = rng.below(size + 3000);
        let most = if rng.chance(20) { 2 * PART } else { 20_000 };
        let len = 1 + rng.below(most);
        let got = self.fs.fallocate(open.fh, offset, len, mode).await;
        let what = format!(
            "fallocate fh {} ({}) mode {mode:#x} at {offset} len {len}",
            open.fh, open.path
        );
        let grows = mode & libc::FALLOC_FL_KEEP_SIZE == 0 && offset + len > size;
        let want = if grows { Err(libc::EOPNOTSUPP) } else { Ok(()) };
        if self.expect(&what, got, want)?.is_some() {
            let end = (offset + len).min(size);
            if mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0 && offset < end {
                self.model
                    .write(open.ino, offset, &vec![0; (end - offset) as usize]);
            }
        }
        Ok(())
    }

    async fn read(&mut self, rng: &mut Rng) -> Result<(), String> {
        let Some(open) = self.pick_open(rng, false) else {
            return Ok(());
        };
        let size = self.size_of(open.ino);
        let offset = rng.below(size + 100);
        let len = 1 + rng.below(8192);
        let got = self.fs.read(open.fh, offset, len as u32).await;
        let what = format!("read fh {} ({}) at {offset} len {len}", open.fh, open.path);
        let Some(bytes) = self.expect(&what, got, Ok(()))? else {
            return Ok(());
        };
        let Body::File(data) = &self.model.inodes[&open.ino].body else {
            return Err(format!("{what}: the model's inode is not a file"));
        };
        let from = (offset as usize).min(data.len());
        let to = ((offset + len) as usize).min(data.len());
        if bytes[..] != data[from..to] {
            return Err(format!(
                "{what}: read {} bytes, the model has {}",
                bytes.len(),
                to - from
            ));
        }
        Ok(())
    }

    async fn truncate(&mut self, rng: &mut Rng) -> Result<(), String> {
        let Some(path) = self.pick_kind(rng, |b| matches!(b, Body::File(_))) else {
            return Ok(());
        };
        let ino = self.model.paths[&path];
        let size = rng.below(self.size_of(ino) + 3000);
        let attr = self.resolve(&path).await.map_err(|e| format!("{path}: {e}"))?;
        let change = SetAttr {
            size: Some(size),
            ..SetAttr::default()
        };
        let got = self.fs.setattr(attr.ino, change).await;
        if let Some(attr) = self.expect(&format!("truncate {path} to {size}"), got, Ok(()))? {
            self.model.truncate(ino, size);
            if attr.size != size {
                return Err(format!("truncate {path}: size {} after", attr.size));
            }
        }
        Ok(())
    }

    async fn fsync(&mut self, rng: &mut Rng) -> Result<(), String> {
        let Some(open) = self.pick_open(rng, false) else {
            return Ok(());
        };
        let got = self.fs.fsync(open.fh).await;
        self.expect(&format!("fsync fh {} ({})", open.fh, open.path), got, Ok(()))?;
        Ok(())
    }

    /// close(2): flush, then release.
    pub async fn close_handle(&mut self, open: &Open) -> Result<(), FsError> {
        let flushed = self.fs.flush(open.fh).await;
        let released = self.fs.release(open.fh).await;
        self.open.retain(|o| o.fh != open.fh);
        flushed.and(released)
    }

    async fn close(&mut self, rng: &mut Rng) -> Result<(), String> {
        let Some(open) = self.pick_open(rng, false) else {
            return Ok(());
        };
        let got = self.close_handle(&open).await;
        self.expect(&format!("close fh {} ({})", open.fh, open.path), got, Ok(()))?;
        self.collect();
        Ok(())
    }

    fn collect(&mut self) {
        let open: Vec<u64> = self.open.iter().map(|o| o.ino).collect();
        self.model.collect(&open);
    }

    async fn rename(&mut self, rng: &mut Rng) -> Result<(), String> {
        let from = self.pick_path(rng);
        let to = if rng.chance(80) {
            self.new_path(rng)
        } else {
            self.pick_path(rng)
        };
        let no_replace = rng.chance(20);
        let (Ok(from_parent), Ok(to_parent)) =
            (self.resolve(parent(&from)).await, self.resolve(parent(&to)).await)
        else {
            return Ok(()); // a parent moved into a file's place: skip
        };
        let from_name = from.rsplit('/').next().unwrap_or_default();
        let to_name = to.rsplit('/').next().unwrap_or_default();
        let got = self
            .fs
            .rename(from_parent.ino, from_name, to_parent.ino, to_name, no_replace)
            .await;
        let want = self.model.rename(&from, &to, no_replace);
        let what = format!(
            "rename {from} -> {to}{}",
            if no_replace { " (no replace)" } else { "" }
        );
        if self.expect(&what, got, want)?.is_some() {
            for open in &mut self.open {
                if open.path == from || open.path.starts_with(&format!("{from}/")) {
                    open.path = format!("{to}{}", &open.path[from.len()..]);
                }
            }
            self.collect();
        }
        Ok(())
    }

    async fn unlink(&mut self, rng: &mut Rng) -> Result<(), String> {
        let path = match self.pick_kind(rng, |b| !matches!(b, Body::Dir)) {
            Some(p) if rng.chance(85) => p,
            _ => self.pick_path(rng),
        };
        let parent = self.parent_ino(&path).await?;
        let name = path.rsplit('/').next().unwrap_or_default();
        let got = self.fs.unlink(parent, name).await;
        let want = self.model.unlink(&path);
        self.expect(&format!("unlink {path}"), got, want)?;
        self.collect();
        Ok(())
    }

    async fn rmdir(&mut self, rng: &mut Rng) -> Result<(), String> {
        let path = match self.pick_kind(rng, |b| *b == Body::Dir) {
            Some(p) if rng.chance(85) => p,
            _ => self.pick_path(rng),
        };
        let parent = self.parent_ino(&path).await?;
        let name = path.rsplit('/').next().unwrap_or_default();
        let got = self.fs.rmdir(parent, name).await;
        let want = self.model.rmdir(&path);
        self.expect(&format!("rmdir {path}"), got, want)?;
        Ok(())
    }

    async fn mkdir(&mut self, rng: &mut Rng) -> Result<(), String> {
        let path = self.new_path(rng);
        let perm = *rng.pick(&[0o755, 0o700, 0o750]).expect("modes");
        let parent = self.parent_ino(&path).await?;
        let name = path.rsplit('/').next().unwrap_or_default();
        let got = self.fs.mkdir(parent, name, perm, 0, 0).await;
        let want = self.model.mkdir(&path, perm);
        self.expect(&format!("mkdir {path}"), got, want)?;
        Ok(())
    }

    async fn chmod(&mut self, rng: &mut Rng) -> Result<(), String> {
        let Some(path) = self.pick_kind(rng, |b| !matches!(b, Body::Symlink(_))) else {
            return Ok(());
        };
        let perm = *rng.pick(&[0o600, 0o644, 0o700, 0o755, 0o640]).expect("modes");
        let attr = self.resolve(&path).await.map_err(|e| format!("{path}: {e}"))?;
        let change = SetAttr {
            mode: Some(perm),
            ..SetAttr::default()
        };
        let got = self.fs.setattr(attr.ino, change).await;
        if self
            .expect(&format!("chmod {path} {perm:o}"), got, Ok(()))?
            .is_some()
        {
            let ino = self.model.paths[&path];
            self.model.inodes.get_mut(&ino).expect("inode").perm = perm;
        }
        Ok(())
    }

    async fn symlink(&mut self, rng: &mut Rng) -> Result<(), String> {
        let path = self.new_path(rng);
        let target = format!("target-{}", rng.below(1000));
        let parent = self.parent_ino(&path).await?;
        let name = path.rsplit('/').next().unwrap_or_default();
        let got = self.fs.symlink(parent, name, &target, 0, 0).await;
        let want = self.model.symlink(&path, &target);
        self.expect(&format!("symlink {path} -> {target}"), got, want)?;
        Ok(())
    }

    async fn link(&mut self, rng: &mut Rng) -> Result<(), String> {
        let Some(from) = self.pick_kind(rng, |b| *b != Body::Dir) else {
            return Ok(());
        };
        let to = self.new_path(rng);
        let attr = self.resolve(&from).await.map_err(|e| format!("{from}: {e}"))?;
        let parent = self.parent_ino(&to).await?;
        let name = to.rsplit('/').next().unwrap_or_default();
        let got = self.fs.link(attr.ino, parent, name).await;
        let want = self.model.link(&from, &to);
        self.expect(&format!("link {from} {to}"), got, want)?;
        Ok(())
    }

    async fn readlink(&mut self, rng: &mut Rng) -> Result<(), String> {
        let Some(path) = self.pick_kind(rng, |b| matches!(b, Body::Symlink(_))) else {
            return Ok(());
        };
        let attr = self.resolve(&path).await.map_err(|e| format!("{path}: {e}"))?;
        let got = self.fs.readlink(attr.ino).await;
        if let Some(target) = self.expect(&format!("readlink {path}"), got, Ok(()))? {
            let want = match &self.model.get(&path).expect("picked").body {
                Body::Symlink(t) => t.clone(),
                _ => unreachable!("picked a symlink"),
            };
            if target[..] != *want.as_bytes() {
                return Err(format!("readlink {path}: {target:?}, the model has {want:?}"));
            }
        }
        Ok(())
    }

    async fn readdir(&mut self, rng: &mut Rng) -> Result<(), String> {
        let dir = self.pick_kind(rng, |b| *b == Body::Dir).unwrap_or_default();
        self.note(format!("readdir {dir:?}"));
        self.compare_dir(&dir).await
    }

    /// Closes every handle, waits for write-backs, and mounts afresh.
    pub async fn remount(&mut self) -> Result<(), String> {
        for open in self.open.clone() {
            let got = self.close_handle(&open).await;
            self.expect(
                &format!("close fh {} ({}) to remount", open.fh, open.path),
                got,
                Ok(()),
            )?;
        }
        self.collect();
        let synced = bounded("sync_all", self.fs.sync_all()).await?;
        self.expect("sync before remount", synced, Ok(()))?;
        let config = config(self.settings, self.dir.path());
        self.fs = Arc::new(Fs::new(self.store.clone(), config).map_err(|e| e.to_string())?);
        if let Some(old) = self.follower.take() {
            old.abort();
            self.follower = Some(tokio::spawn(self.fs.clone().follow_changes()));
        }
        self.note("remounted");
        Ok(())
    }

    /// Compares one path's attributes, at random.
    async fn check_one(&mut self, rng: &mut Rng) -> Result<(), String> {
        let Some(path) = self.pick_kind(rng, |_| true) else {
            return Ok(());
        };
        self.compare_attr(&path).await
    }

    async fn compare_attr(&self, path: &str) -> Result<(), String> {
        let attr = self
            .resolve(path)
            .await
            .map_err(|e| format!("stat {path}: {e}"))?;
        let node = self.model.get(path).expect("a model path");
        let (kind, size) = match &node.body {
            Body::File(d) => (Kind::File, d.len() as u64),
            Body::Dir => (Kind::Dir, attr.size),
            Body::Symlink(t) => (Kind::Symlink, t.len() as u64),
        };
        let perm = attr.posix.mode & 0o7777;
        if attr.kind != kind || attr.size != size || (kind != Kind::Symlink && perm != node.perm) {
            return Err(format!(
                "stat {path}: {:?} size {} mode {perm:o}; the model has {kind:?} size {size} mode {:o}",
                attr.kind, attr.size, node.perm
            ));
        }
        let links = self.model.links(path);
        if kind != Kind::Dir && attr.nlink != links {
            return Err(format!(
                "stat {path}: nlink {}; the model has {links}",
                attr.nlink
            ));
        }
        Ok(())
    }

    async fn compare_dir(&self, dir: &str) -> Result<(), String> {
        let attr = self.resolve(dir).await.map_err(|e| format!("{dir:?}: {e}"))?;
        let fh = self.fs.opendir(attr.ino).await.map_err(|e| e.to_string())?;
        let listed = self.fs.readdir(attr.ino, fh, 0).await;
        self.fs.releasedir(fh);
        let listed = listed.map_err(|e| format!("readdir {dir:?}: {e}"))?;
        let mut have: Vec<String> = listed.iter().map(|e| e.name.clone()).collect();
        have.sort();
        let mut want = self.model.children(dir);
        want.sort();
        if have != want {
            return Err(format!("readdir {dir:?}: {have:?}; the model has {want:?}"));
        }
        Ok(())
    }

    /// Reads all of `path` through a fresh handle.
    pub async fn contents(&self, path: &str) -> Result<Vec<u8>, FsError> {
        let attr = self.resolve(path).await?;
        let (fh, _) = self.fs.open(attr.ino, libc::O_RDONLY).await?;
        let mut out = Vec::new();
        let result = loop {
            match self.fs.read(fh, out.len() as u64, 1 << 20).await {
                Ok(b) if b.is_empty() => break Ok(()),
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => break Err(e),
            }
        };
        let released = self.fs.release(fh).await;
        result.and(released).map(|()| out)
    }

    /// Every path's attributes, every directory's entries, every file's bytes.
    pub async fn check_all(&mut self) -> Result<(), String> {
        let paths: Vec<String> = self.model.paths.keys().cloned().collect();
        for path in paths {
            self.compare_attr(&path).await?;
            match self.model.get(&path).expect("listed").body.clone() {
                Body::Dir => self.compare_dir(&path).await?,
                Body::File(want) => {
                    let have = self
                        .contents(&path)
                        .await
                        .map_err(|e| format!("read {path}: {e}"))?;
                    if have != want {
                        return Err(format!(
                            "contents of {path}: {} bytes, the model has {}",
                            have.len(),
                            want.len()
                        ));
                    }
                }
                Body::Symlink(_) => {}
            }
        }
        Ok(())
    }
}
