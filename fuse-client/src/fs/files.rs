//! File data: create, open, read, write and the commits that flush, fsync
//! and close make (close-to-open consistency); the handles of open files.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};

use super::handles::{Handle, OpenFile, Opened, Shared};
use super::table::Node;
use super::{Attr, Fs, Kind};
use crate::attrs::S_IFREG;
use crate::cache::Readahead;
use crate::error::FsError;
use crate::names::{check_name, join, MAX_KEY};
use crate::writer::{Span, Writer};

/// Random reads of files this large fetch only the bytes asked for; smaller
/// files are read a whole block at a time and cached.
const RANDOM_READS_FROM: u64 = 16 << 20;

impl Fs {
    /// Creates and opens a new empty file; it reaches the store on flush.
    #[allow(clippy::too_many_arguments)]
    pub async fn create(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        flags: i32,
    ) -> Result<(Attr, u64), FsError> {
        self.writable(&[parent])?;
        check_name(name)?;
        let dir = self.dir(parent)?;
        let path = join(&dir.path, name);
        super::history::refuse_new(&path)?;
        if path.len() >= MAX_KEY {
            return Err(FsError::NameTooLong);
        }
        if let Ok(existing) = self.lookup(parent, name).await {
            if flags & libc::O_EXCL != 0 {
                return Err(FsError::Exists);
            }
            let (fh, _) = self.open(existing.ino, flags).await?;
            return Ok((self.getattr(existing.ino).await?, fh));
        }
        let attr = self.remember(Node {
            local: true,
            ..Node::new(path.clone(), Kind::File, self.new_posix(S_IFREG, mode, uid, gid))
        });
        let node = self.node(attr.ino)?;
        let state = self.acquire(attr.ino);
        let mut file = state.lock().await;
        if let Err(e) = self.writer(&mut file, &node) {
            drop(file);
            self.unacquire(attr.ino);
            return Err(e);
        }
        drop(file);
        self.touch_dir(parent);
        let append = flags & libc::O_APPEND != 0;
        let fh = self.new_handle(attr.ino, state, true, append);
        Ok((attr, fh))
    }

    /// Opens a file; also says whether the kernel may keep its cached pages.
    pub async fn open(&self, ino: u64, flags: i32) -> Result<(u64, bool), FsError> {
        let node = self.node(ino)?;
        if node.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY;
        if write {
            self.writable(&[ino])?;
        }
        let state = self.acquire(ino);
        let mut file = state.lock().await;
        if write && flags & libc::O_TRUNC != 0 {
            let truncated = match self.writer(&mut file, &node) {
                Ok(writer) => writer.resize(&self.store, 0).await,
                Err(e) => Err(e),
            };
            if let Err(e) = truncated {
                drop(file);
                self.unacquire(ino);
                return Err(e);
            }
            self.update(ino, |n| {
                n.size = 0;
                n.posix.mtime = SystemTime::now();
                n.posix.ctime = n.posix.mtime;
            });
        }
        drop(file);
        let keep_cache = !node.etag.is_empty() && node.cached_etag == node.etag;
        self.update(ino, |n| n.cached_etag = n.etag.clone());
        Ok((
            self.new_handle(ino, state, write, flags & libc::O_APPEND != 0),
            keep_cache,
        ))
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes, FsError> {
        let handle = self.handle(fh)?;
        let mut file = handle.state.lock().await;
        if let Some(writer) = &mut file.writer {
            let base = writer.base().cloned();
            let mut out = BytesMut::new();
            for span in writer.read_spans(offset, size as u64).await? {
                match span {
                    Span::Local(data) => out.extend_from_slice(&data),
                    Span::Base(at, len) => {
                        let base = base.as_ref().ok_or(FsError::Io("no base object".into()))?;
                        let data = self.cache.read(&self.store, base, writer.size(), at, len).await?;
                        out.extend_from_slice(&data);
                    }
                }
            }
            return Ok(out.freeze());
        }
        drop(file);
        let node = self.node(handle.ino)?;
        let source = Self::source_of(&node);
        let len = (size as u64).min(node.size.saturating_sub(offset));
        let (prefetch, random) = {
            let mut readahead = handle.readahead.lock().unwrap();
            (readahead.advance(offset, len), readahead.is_random())
        };
        if let Some((from, n)) = prefetch {
            let (cache, store, source) = (self.cache.clone(), self.store.clone(), source.clone());
            let keep = cache.readahead_keep(node.size);
            tokio::spawn(async move { cache.prefetch(&store, &source, node.size, from, n, keep).await });
        }
        if random && offset > 0 && node.size >= RANDOM_READS_FROM {
            self.cache.fill_in_background(&self.store, &source, node.size);
            return self
                .cache
                .read_small(&self.store, &source, node.size, offset, len)
                .await;
        }
        self.cache
            .read(&self.store, &source, node.size, offset, len)
            .await
    }

    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        let handle = self.handle(fh)?;
        if !handle.writable {
            return Err(FsError::BadHandle);
        }
        let mut file = handle.state.lock().await;
        let node = self.node(handle.ino)?;
        let meta = node.posix.to_metadata();
        let writer = self.writer(&mut file, &node)?;
        let offset = if handle.append { writer.size() } else { offset };
        writer.write(&self.store, &meta, offset, data).await?;
        let size = writer.size();
        self.update(handle.ino, |n| {
            n.size = size;
            n.posix.mtime = SystemTime::now();
            n.posix.ctime = n.posix.mtime;
        });
        Ok(data.len() as u32)
    }

    /// Commits an open file's changes as a new version of its object
    /// (`background`: for a write-back, which nobody waits for).
    pub(super) async fn commit(
        &self,
        ino: u64,
        file: &mut OpenFile,
        background: bool,
    ) -> Result<(), FsError> {
        if file.orphan {
            return Ok(());
        }
        let Some(writer) = file.writer.as_mut() else {
            return Ok(());
        };
        if !writer.dirty() {
            return Ok(());
        }
        let node = self.node(ino)?;
        // A delete of the same name, made before, lands first.
        self.deletes.settled(&node.path).await;
        let upto = self.journal_seq();
        let info = writer
            .commit(&self.store, &node.posix.to_metadata(), background)
            .await?;
        if file.journaled.take().is_some() {
            self.journal_done(&node.path, upto);
        }
        self.update(ino, |n| {
            n.local = false;
            n.size = info.size;
            n.etag = info.etag.clone();
            n.version_id = info.version_id.clone();
            n.cached_etag = info.etag.clone();
            n.fetched = Instant::now();
        });
        Ok(())
    }

    /// A close: commits the file's changes, or queues them in write-back mode.
    pub async fn flush(self: &Arc<Self>, fh: u64) -> Result<(), FsError> {
        let handle = self.handle(fh)?;
        if self.write_back.is_some() {
            return self.queue_commit(handle.ino, &handle.state).await;
        }
        let mut file = handle.state.lock().await;
        self.commit(handle.ino, &mut file, false).await
    }

    /// Commits the file's changes before returning, in every mode.
    pub async fn fsync(&self, fh: u64) -> Result<(), FsError> {
        let handle = self.handle(fh)?;
        let mut file = handle.state.lock().await;
        self.commit(handle.ino, &mut file, false).await
    }

    pub async fn release(self: &Arc<Self>, fh: u64) -> Result<(), FsError> {
        let handle = self.handle(fh)?;
        self.handles.lock().unwrap().remove(&fh);
        let queued = match self.write_back {
            // Writes through a mapping may come after the last flush.
            Some(_) => self.queue_commit(handle.ino, &handle.state).await,
            None => Ok(()),
        };
        let mut file = handle.state.lock().await;
        let result = match self.write_back {
            Some(_) => queued,
            None => self.commit(handle.ino, &mut file, false).await,
        };
        let put = self.put_file(handle.ino, &mut file).await;
        result.and(put)
    }

    /// Drops one user of the open state of `ino`, whose lock the caller
    /// holds. The last user commits what is left (a truncate or chmod made
    /// while only a write-back held the file) and frees the staging file.
    pub(super) async fn put_file(&self, ino: u64, file: &mut OpenFile) -> Result<(), FsError> {
        let last = self
            .files
            .lock()
            .unwrap()
            .get(&ino)
            .is_some_and(|o| o.handles == 1);
        let result = if last {
            self.commit(ino, file, false).await
        } else {
            Ok(())
        };
        if self.unacquire(ino) {
            if let Some(mut writer) = file.writer.take() {
                writer.abandon(&self.store).await;
            }
            if file.orphan {
                self.table.lock().unwrap().drop_node(ino);
            }
        }
        result
    }
}

impl Fs {
    pub(super) fn new_handle(&self, ino: u64, state: Shared<OpenFile>, writable: bool, append: bool) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let handle = Handle {
            ino,
            state,
            writable,
            append,
            readahead: Mutex::new(Readahead::default()),
        };
        self.handles.lock().unwrap().insert(fh, Arc::new(handle));
        fh
    }

    pub(super) fn handle(&self, fh: u64) -> Result<Arc<Handle>, FsError> {
        self.handles
            .lock()
            .unwrap()
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)
    }

    /// Counts one more user of the open-file state of `ino`, created on first open.
    pub(super) fn acquire(&self, ino: u64) -> Shared<OpenFile> {
        let mut files = self.files.lock().unwrap();
        let opened = files.entry(ino).or_insert_with(|| Opened {
            handles: 0,
            state: Shared::default(),
        });
        opened.handles += 1;
        opened.state.clone()
    }

    /// Counts one user less; true when it was the last.
    pub(super) fn unacquire(&self, ino: u64) -> bool {
        let mut files = self.files.lock().unwrap();
        let Some(opened) = files.get_mut(&ino) else {
            return false;
        };
        opened.handles -= 1;
        if opened.handles == 0 {
            files.remove(&ino);
            return true;
        }
        false
    }

    /// The writer of an open file, created over its committed object.
    pub(super) fn writer<'f>(&self, file: &'f mut OpenFile, node: &Node) -> Result<&'f mut Writer, FsError> {
        // Whoever asks for the writer changes the file: no longer a copy.
        file.copy_of = None;
        if file.writer.is_none() {
            let base = (!node.local).then(|| Self::source_of(node));
            file.writer = Some(Writer::new(&self.config.cache_dir, &node.path, base, node.size)?);
        }
        Ok(file.writer.as_mut().expect("just set"))
    }
}
