//! The FUSE adapter: each kernel request becomes one task on the tokio
//! runtime that calls the filesystem core and replies, so many requests are
//! in flight at once and no lock is held across I/O.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::error::FsError;
use crate::fs::{Attr, Fs, Kind};

pub struct Adapter {
    pub fs: Arc<Fs>,
    pub runtime: tokio::runtime::Handle,
    pub ttl: Duration,
    pub uid: u32,
    pub gid: u32,
}

fn errno(e: &FsError) -> Errno {
    if matches!(e, FsError::Io(_)) {
        tracing::warn!(error = %e, "request failed");
    }
    Errno::from_i32(e.errno())
}

fn name_of(name: &OsStr) -> Result<&str, FsError> {
    name.to_str().ok_or(FsError::Invalid)
}

impl Adapter {
    fn spawn<F>(&self, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.runtime.spawn(f);
    }
}

impl Filesystem for Adapter {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (fs, ttl, name) = (self.fs.clone(), self.ttl, name.to_owned());
        let this = self.shallow();
        self.spawn(async move {
            match async { fs.lookup(parent.0, name_of(&name)?).await }.await {
                Ok(a) => reply.entry(&ttl, &this.file_attr(&a), Generation(0)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let (fs, ttl, this) = (self.fs.clone(), self.ttl, self.shallow());
        self.spawn(async move {
            match fs.getattr(ino.0).await {
                Ok(a) => reply.attr(&ttl, &this.file_attr(&a)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let (fs, ttl, this) = (self.fs.clone(), self.ttl, self.shallow());
        self.spawn(async move {
            match fs.setattr(ino.0, size, fh.map(|h| h.0)).await {
                Ok(a) => reply.attr(&ttl, &this.file_attr(&a)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let (fs, ttl, this, name) = (self.fs.clone(), self.ttl, self.shallow(), name.to_owned());
        self.spawn(async move {
            match async { fs.mkdir(parent.0, name_of(&name)?).await }.await {
                Ok(a) => reply.entry(&ttl, &this.file_attr(&a), Generation(0)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (fs, name) = (self.fs.clone(), name.to_owned());
        self.spawn(async move {
            match async { fs.unlink(parent.0, name_of(&name)?).await }.await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (fs, name) = (self.fs.clone(), name.to_owned());
        self.spawn(async move {
            match async { fs.rmdir(parent.0, name_of(&name)?).await }.await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
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
        let (fs, name, newname) = (self.fs.clone(), name.to_owned(), newname.to_owned());
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            reply.error(Errno::EINVAL);
            return;
        }
        self.spawn(async move {
            let result = async {
                fs.rename(
                    parent.0,
                    name_of(&name)?,
                    newparent.0,
                    name_of(&newname)?,
                    no_replace,
                )
                .await
            }
            .await;
            match result {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let fs = self.fs.clone();
        let raw = flags.0;
        let write = raw & libc::O_ACCMODE != libc::O_RDONLY;
        let truncate = raw & libc::O_TRUNC != 0;
        self.spawn(async move {
            match fs.open(ino.0, write, truncate).await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (fs, ttl, this, name) = (self.fs.clone(), self.ttl, self.shallow(), name.to_owned());
        let exclusive = flags & libc::O_EXCL != 0;
        self.spawn(async move {
            match async { fs.create(parent.0, name_of(&name)?, exclusive).await }.await {
                Ok((a, fh)) => reply.created(
                    &ttl,
                    &this.file_attr(&a),
                    Generation(0),
                    FileHandle(fh),
                    FopenFlags::empty(),
                ),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.read(ino.0, fh.0, offset, size).await {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(errno(&e)),
            }
        });
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
        self.spawn(async move {
            match fs.write(fh.0, offset, &data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.flush(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.flush(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.release(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let fs = self.fs.clone();
        self.spawn(async move {
            let entries = match fs.readdir(ino.0).await {
                Ok(e) => e,
                Err(e) => return reply.error(errno(&e)),
            };
            let dots = [
                (ino.0, FileType::Directory, ".".to_string()),
                (ino.0, FileType::Directory, "..".to_string()),
            ];
            let all = dots.into_iter().chain(entries.into_iter().map(|e| {
                let kind = if e.attr.kind == Kind::Dir {
                    FileType::Directory
                } else {
                    FileType::RegularFile
                };
                (e.attr.ino, kind, e.name)
            }));
            for (i, (ino, kind, name)) in all.enumerate().skip(offset as usize) {
                if reply.add(INodeNo(ino), i as u64 + 1, kind, &name) {
                    break;
                }
            }
            reply.ok();
        });
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Object storage has no fixed size: report plenty of room.
        reply.statfs(1 << 40, 1 << 39, 1 << 39, 1 << 30, 1 << 29, 4096, 255, 4096);
    }
}

impl Adapter {
    /// The fields `file_attr` needs, to move into a task.
    fn shallow(&self) -> AttrMaker {
        AttrMaker {
            uid: self.uid,
            gid: self.gid,
        }
    }
}

struct AttrMaker {
    uid: u32,
    gid: u32,
}

impl AttrMaker {
    fn file_attr(&self, a: &Attr) -> FileAttr {
        let (kind, perm, nlink) = match a.kind {
            Kind::Dir => (FileType::Directory, 0o755, 2),
            Kind::File => (FileType::RegularFile, 0o644, 1),
        };
        FileAttr {
            ino: INodeNo(a.ino),
            size: a.size,
            blocks: a.size.div_ceil(512),
            atime: a.mtime,
            mtime: a.mtime,
            ctime: a.mtime,
            crtime: a.mtime,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }
}
