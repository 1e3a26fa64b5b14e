//! The FUSE adapter: each kernel request becomes one task on the tokio
//! runtime that calls the filesystem core and replies, so many requests are
//! in flight at once and no lock is held across I/O.

use std::ffi::OsStr;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use fuser::{
    CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyLock, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};

use crate::attrs::S_IFREG;
use crate::error::FsError;
use crate::fs::{Attr, DirEntry, Fs, Kind, SetAttr};
use crate::metrics::METRICS;
use crate::store::{LockKind, LockRange};
use bucketfs_common::file_locks::LOCK_END;

pub struct Adapter {
    pub fs: Arc<Fs>,
    pub runtime: tokio::runtime::Handle,
    pub ttl: Duration,
}

fn errno(e: &FsError) -> Errno {
    if matches!(e, FsError::Io(_)) {
        tracing::warn!(error = %e, "request failed");
    } else {
        tracing::debug!(error = %e, "request answered an error");
    }
    Errno::from_i32(e.errno())
}

fn name_of(name: &OsStr) -> Result<String, FsError> {
    name.to_str().map(str::to_string).ok_or(FsError::Invalid)
}

fn time_of(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
        Kind::CharDevice => FileType::CharDevice,
        Kind::BlockDevice => FileType::BlockDevice,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    let p = &a.posix;
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: p.atime,
        mtime: p.mtime,
        ctime: p.ctime,
        crtime: p.ctime,
        kind: file_type(a.kind),
        perm: (p.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: p.uid,
        gid: p.gid,
        rdev: p.rdev,
        blksize: 4096,
        flags: 0,
    }
}

/// The reply types, as far as failing them goes.
trait Fail {
    fn fail(self, e: Errno);
}

macro_rules! fail_by_error {
    ($($t:ty),*) => { $(impl Fail for $t { fn fail(self, e: Errno) { self.error(e) } })* };
}
fail_by_error!(
    ReplyLock,
    ReplyEntry,
    ReplyAttr,
    ReplyEmpty,
    ReplyData,
    ReplyOpen,
    ReplyCreate,
    ReplyWrite,
    ReplyDirectory,
    ReplyDirectoryPlus,
    ReplyXattr
);

impl Adapter {
    /// Answers with `ok` on `work`'s value or with its errno. The work is
    /// polled once on this FUSE thread and becomes a task only if it has
    /// to wait: a request served from memory (a cached read, a buffered
    /// write, a known attribute) then costs no hand-over between threads,
    /// which was most of a cached 4 KiB read's time.
    fn run<T, R, W, K>(&self, op: &'static str, reply: R, work: W, ok: K)
    where
        T: Send + 'static,
        R: Fail + Send + 'static,
        W: Future<Output = Result<T, FsError>> + Send + 'static,
        K: FnOnce(R, T) + Send + 'static,
    {
        let _runtime = self.runtime.enter();
        let started = Instant::now();
        let mut task = Box::pin(async move {
            let result = work.await;
            let answered = result.is_ok();
            match result {
                Ok(v) => ok(reply, v),
                Err(e) => reply.fail(errno(&e)),
            }
            METRICS.answered(op, answered, started.elapsed());
        });
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if task.as_mut().poll(&mut cx).is_pending() {
            self.runtime.spawn(task);
        }
    }

    fn entry(&self) -> impl FnOnce(ReplyEntry, Attr) + Send + 'static {
        let ttl = self.ttl;
        move |r, a| r.entry(&ttl, &file_attr(&a), Generation(0))
    }

    fn attr(&self) -> impl FnOnce(ReplyAttr, Attr) + Send + 'static {
        let ttl = self.ttl;
        move |r, a| r.attr(&ttl, &file_attr(&a))
    }
}

/// An open directory's attributes and entries, for readdir and readdirplus.
async fn listing(
    fs: &Fs,
    ino: INodeNo,
    fh: FileHandle,
    offset: u64,
) -> Result<(Attr, Arc<Vec<DirEntry>>), FsError> {
    let entries = fs.readdir(ino.0, fh.0, offset).await?;
    Ok((fs.known_attr(ino.0)?, entries))
}

/// `.`, `..` and the entries from `offset` on, each with the offset of the
/// one after it. The kernel makes no entries of the dots (in readdirplus
/// their attributes only fill the slots).
fn numbered<'a>(
    dir: &'a Attr,
    entries: &'a [DirEntry],
    offset: u64,
) -> impl Iterator<Item = (u64, &'a str, &'a Attr)> {
    [(".", dir), ("..", dir)]
        .into_iter()
        .chain(entries.iter().map(|e| (e.name.as_str(), &e.attr)))
        .enumerate()
        .skip(offset as usize)
        .map(|(i, (name, attr))| (i as u64 + 1, name, attr))
}

/// A lock request's range as the store takes it.
fn lock_range(typ: i32, start: u64, end: u64, pid: u32) -> Result<LockRange, FsError> {
    let kind = match typ {
        libc::F_RDLCK => LockKind::Read,
        libc::F_WRLCK => LockKind::Write,
        libc::F_UNLCK => LockKind::Unlock,
        _ => return Err(FsError::Invalid),
    };
    if start > end {
        return Err(FsError::Invalid);
    }
    Ok(LockRange {
        kind,
        start,
        end: end.min(LOCK_END),
        pid,
    })
}

/// The kernel's caches, as the core drops them.
pub struct Notifier(pub fuser::Notifier);

impl crate::fs::KernelCache for Notifier {
    fn invalidate_inode(&self, ino: u64) {
        // ENOENT: the kernel holds nothing of it.
        if let Err(e) = self.0.inval_inode(INodeNo(ino), 0, 0) {
            tracing::debug!(ino, error = %e, "the kernel refused an invalidation");
        }
    }

    fn invalidate_entry(&self, parent: u64, name: &str) {
        if let Err(e) = self.0.inval_entry(INodeNo(parent), OsStr::new(name)) {
            tracing::debug!(parent, name, error = %e, "the kernel refused an invalidation");
        }
    }
}

fn empty(r: ReplyEmpty, _: ()) {
    r.ok()
}

/// Answers an xattr query: the size when asked for it, else the bytes.
fn xattr_reply(size: u32) -> impl FnOnce(ReplyXattr, Vec<u8>) {
    move |r, data| {
        if size == 0 {
            r.size(data.len() as u32)
        } else if data.len() > size as usize {
            r.error(Errno::ERANGE)
        } else {
            r.data(&data)
        }
    }
}

impl Filesystem for Adapter {
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        // Keep many requests in flight: readahead and writeback are
        // "background" requests, and every one is its own task here.
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        if let Err(max) = config.set_max_readahead(1 << 20) {
            let _ = config.set_max_readahead(max);
        }
        // READDIRPLUS: a listing's attributes reach the kernel with its
        // names, so `ls -l`, `du` and `find` need no lookup per entry.
        // AUTO: the kernel asks for them only while entries get looked up.
        for flag in [
            fuser::InitFlags::FUSE_PARALLEL_DIROPS,
            fuser::InitFlags::FUSE_CACHE_SYMLINKS,
            fuser::InitFlags::FUSE_DO_READDIRPLUS,
            fuser::InitFlags::FUSE_READDIRPLUS_AUTO,
            // Locks go to the store, so they hold between mounts.
            fuser::InitFlags::FUSE_POSIX_LOCKS,
            fuser::InitFlags::FUSE_FLOCK_LOCKS,
        ] {
            let _ = config.add_capabilities(flag);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (fs, name) = (self.fs.clone(), name_of(name));
        self.run(
            "lookup",
            reply,
            async move { fs.lookup(parent.0, &name?).await },
            self.entry(),
        );
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let fs = self.fs.clone();
        self.run(
            "getattr",
            reply,
            async move { fs.getattr(ino.0).await },
            self.attr(),
        );
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let fs = self.fs.clone();
        let change = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_of),
            mtime: mtime.map(time_of),
        };
        self.run(
            "setattr",
            reply,
            async move { fs.setattr(ino.0, change).await },
            self.attr(),
        );
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let fs = self.fs.clone();
        self.run(
            "readlink",
            reply,
            async move { fs.readlink(ino.0).await },
            |r, d| r.data(&d),
        );
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let (fs, name, uid, gid) = (self.fs.clone(), name_of(name), req.uid(), req.gid());
        let mode = mode & !(umask & 0o7777);
        self.run(
            "mknod",
            reply,
            async move {
                if !matches!(mode & crate::attrs::S_IFMT, 0 | S_IFREG) {
                    return fs.mknod(parent.0, &name?, mode, rdev, uid, gid).await;
                }
                let (attr, fh) = fs.create(parent.0, &name?, mode, uid, gid, libc::O_EXCL).await?;
                fs.release(fh).await?;
                Ok(attr)
            },
            self.entry(),
        );
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let (fs, name, uid, gid) = (self.fs.clone(), name_of(name), req.uid(), req.gid());
        self.run(
            "mkdir",
            reply,
            async move { fs.mkdir(parent.0, &name?, mode & !umask, uid, gid).await },
            self.entry(),
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (fs, name) = (self.fs.clone(), name_of(name));
        self.run(
            "unlink",
            reply,
            async move { fs.unlink(parent.0, &name?).await },
            empty,
        );
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (fs, name) = (self.fs.clone(), name_of(name));
        self.run(
            "rmdir",
            reply,
            async move { fs.rmdir(parent.0, &name?).await },
            empty,
        );
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let (fs, name, uid, gid) = (self.fs.clone(), name_of(link_name), req.uid(), req.gid());
        let target = target.to_str().map(str::to_string).ok_or(FsError::Invalid);
        self.run(
            "symlink",
            reply,
            async move { fs.symlink(parent.0, &name?, &target?, uid, gid).await },
            self.entry(),
        );
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            return reply.error(Errno::EINVAL);
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let (fs, name, newname) = (self.fs.clone(), name_of(name), name_of(newname));
        self.run(
            "rename",
            reply,
            async move {
                fs.rename(parent.0, &name?, newparent.0, &newname?, no_replace)
                    .await
            },
            empty,
        );
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let (fs, name) = (self.fs.clone(), name_of(newname));
        self.run(
            "link",
            reply,
            async move { fs.link(ino.0, newparent.0, &name?).await },
            self.entry(),
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let fs = self.fs.clone();
        self.run(
            "open",
            reply,
            async move { fs.open(ino.0, flags.0).await },
            |r, (fh, keep)| {
                let flags = if keep {
                    FopenFlags::FOPEN_KEEP_CACHE
                } else {
                    FopenFlags::empty()
                };
                r.opened(FileHandle(fh), flags)
            },
        );
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (fs, name, uid, gid, ttl) = (self.fs.clone(), name_of(name), req.uid(), req.gid(), self.ttl);
        self.run(
            "create",
            reply,
            async move { fs.create(parent.0, &name?, mode & !umask, uid, gid, flags).await },
            move |r, (a, fh)| {
                r.created(
                    &ttl,
                    &file_attr(&a),
                    Generation(0),
                    FileHandle(fh),
                    FopenFlags::empty(),
                )
            },
        );
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let fs = self.fs.clone();
        self.run(
            "read",
            reply,
            async move { fs.read(fh.0, offset, size).await },
            |r, d| {
                METRICS.bytes_read.inc_by(d.len() as u64);
                r.data(&d)
            },
        );
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let (fs, data) = (self.fs.clone(), data.to_vec());
        self.run(
            "write",
            reply,
            async move { fs.write(fh.0, offset, &data).await },
            |r, n| {
                METRICS.bytes_written.inc_by(u64::from(n));
                r.written(n)
            },
        );
    }

    /// A close: the writes are committed, and the closing process's
    /// POSIX locks of the file end.
    fn flush(&self, _req: &Request, ino: INodeNo, fh: FileHandle, lock_owner: LockOwner, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        self.run(
            "flush",
            reply,
            async move {
                fs.flush(fh.0).await?;
                fs.unlock_all(ino.0, lock_owner.0).await
            },
            empty,
        );
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.run(
            "fallocate",
            reply,
            async move { fs.fallocate(fh.0, offset, length, mode).await },
            empty,
        );
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        // The kernel asks for at most 4 GiB at a time.
        let len = len.min(u64::from(u32::MAX) & !4095);
        let fs = self.fs.clone();
        self.run(
            "copy_file_range",
            reply,
            async move {
                fs.copy_file_range(fh_in.0, offset_in, fh_out.0, offset_out, len)
                    .await
            },
            |r, n| r.written(n as u32),
        );
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        self.run("fsync", reply, async move { fs.fsync(fh.0).await }, empty);
    }

    /// `lock_owner` comes with the last close of a file that held a flock,
    /// which ends with it.
    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.run(
            "release",
            reply,
            async move {
                if let Some(owner) = lock_owner {
                    fs.unlock_all(ino.0, owner.0).await?;
                }
                fs.release(fh.0).await
            },
            empty,
        );
    }

    fn getlk(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        reply: ReplyLock,
    ) {
        let fs = self.fs.clone();
        let want = lock_range(typ, start, end, pid);
        self.run(
            "getlk",
            reply,
            async move { fs.getlk(ino.0, lock_owner.0, want?).await },
            |r, lock| {
                let typ = match lock.kind {
                    LockKind::Read => libc::F_RDLCK,
                    LockKind::Write => libc::F_WRLCK,
                    LockKind::Unlock => libc::F_UNLCK,
                };
                r.locked(lock.start, lock.end, typ, lock.pid)
            },
        );
    }

    fn setlk(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        let change = lock_range(typ, start, end, pid);
        self.run(
            "setlk",
            reply,
            async move { fs.setlk(ino.0, lock_owner.0, change?, sleep).await },
            empty,
        );
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let fs = self.fs.clone();
        self.run(
            "opendir",
            reply,
            async move { fs.opendir(ino.0).await },
            |r, fh| r.opened(FileHandle(fh), FopenFlags::empty()),
        );
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectory) {
        let fs = self.fs.clone();
        self.run(
            "readdir",
            reply,
            async move { listing(&fs, ino, fh, offset).await },
            move |mut r, (dir, entries)| {
                for (next, name, attr) in numbered(&dir, &entries, offset) {
                    if r.add(INodeNo(attr.ino), next, file_type(attr.kind), name) {
                        break;
                    }
                }
                r.ok()
            },
        );
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let (fs, ttl) = (self.fs.clone(), self.ttl);
        self.run(
            "readdirplus",
            reply,
            async move { listing(&fs, ino, fh, offset).await },
            move |mut r, (dir, entries)| {
                for (next, name, attr) in numbered(&dir, &entries, offset) {
                    if r.add(
                        INodeNo(attr.ino),
                        next,
                        name,
                        &ttl,
                        &file_attr(attr),
                        Generation(0),
                    ) {
                        break;
                    }
                }
                r.ok()
            },
        );
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // Directory changes are committed when they are made; files closed
        // in write-back mode may still be on their way (`sync DIR` waits).
        let fs = self.fs.clone();
        self.run("fsyncdir", reply, async move { fs.sync_all().await }, empty);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Object storage has no fixed size: report plenty of room.
        reply.statfs(1 << 40, 1 << 39, 1 << 39, 1 << 30, 1 << 29, 4096, 255, 4096);
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let (fs, name, value) = (self.fs.clone(), name_of(name), value.to_vec());
        self.run(
            "setxattr",
            reply,
            async move { fs.set_xattr(ino.0, &name?, Some(&value), flags).await },
            empty,
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let result = name_of(name).and_then(|n| self.fs.getxattr(ino.0, &n));
        match result {
            Ok(data) => xattr_reply(size)(reply, data),
            Err(e) => reply.error(Errno::from_i32(e.errno())),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.fs.listxattr(ino.0) {
            Ok(data) => xattr_reply(size)(reply, data),
            Err(e) => reply.error(Errno::from_i32(e.errno())),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (fs, name) = (self.fs.clone(), name_of(name));
        self.run(
            "removexattr",
            reply,
            async move { fs.set_xattr(ino.0, &name?, None, 0).await },
            empty,
        );
    }
}
