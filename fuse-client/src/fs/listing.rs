//! Listings: what the store holds at a path or under a prefix, taken into
//! the inode table; a directory's entries for readdir; the past view of a
//! `--at` mount.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::table::Node;
use super::{history, DirEntry, Fs};
use crate::error::FsError;
use crate::names::{dir_prefix, just_before, parent_of, valid_listed_name};
use crate::store::{Listing, ObjectInfo, VersionEntry};
use crate::tree::{self, TREE_PAGE};

/// Keys asked for per listing page.
const LIST_PAGE: usize = 1000;

/// What the store holds under a directory's prefix.
#[derive(Default)]
pub(super) struct DirContents {
    /// The directory's own key, if it has one.
    pub(super) marker: Option<ObjectInfo>,
    /// Any key or prefix under it besides the marker.
    pub(super) children: bool,
}

/// What a scan showed at the name it started from.
enum Scanned {
    Found(Box<Node>),
    Absent,
    /// A name the listing did not reach or could not show whole.
    Unknown,
}

impl Fs {
    /// What the store holds at `path`: a file, a directory or nothing.
    pub(super) async fn fetch_node(&self, path: &str) -> Result<Option<Node>, FsError> {
        if history::is_virtual(path) {
            return self.fetch_virtual(path).await;
        }
        if let Some(at) = self.config.at {
            return self.fetch_node_at(path, at).await;
        }
        if let Some(info) = self.store.head(path, None).await? {
            return Ok(Some(self.object_node(path, info, true)));
        }
        let contents = self.dir_contents(&dir_prefix(path)).await?;
        if contents.marker.is_none() && !contents.children {
            return Ok(None);
        }
        Ok(Some(self.dir_node(path, contents.marker)))
    }

    /// What the store holds under a directory's `prefix`, less what this
    /// mount is deleting: pages on past deleted keys until one that is not.
    pub(super) async fn dir_contents(&self, prefix: &str) -> Result<DirContents, FsError> {
        let mut contents = DirContents::default();
        if self.deletes.is_removed(prefix) {
            return Ok(contents);
        }
        tracing::debug!(%prefix, "listing what a directory holds");
        let page = (2 + self.deletes.pending_under(prefix)).min(LIST_PAGE);
        let reading = self.deletes.reading();
        let mut token = None;
        loop {
            let mut listing = self.store.list(prefix, token.as_deref(), page).await?;
            reading.hide(&mut listing.objects);
            reading.hide_prefixes(&mut listing.prefixes);
            contents.children |= !listing.prefixes.is_empty();
            for (key, info) in listing.objects {
                match key == prefix {
                    true if listing.attributes => contents.marker = Some(info),
                    true => contents.marker = self.store.head(prefix, None).await?,
                    false => contents.children = true,
                }
            }
            match listing.next {
                Some(next) if !contents.children => token = Some(next),
                _ => return Ok(contents),
            }
        }
    }

    /// [`Self::fetch_node`] for a lookup the table could not answer: when
    /// the misses walk the directory in order (see `scan.rs`), one listing
    /// with attributes refreshes `path` and the names after it.
    pub(super) async fn fetch_missed(&self, path: &str) -> Result<Option<Node>, FsError> {
        let dir = parent_of(path);
        let name = &path[dir_prefix(dir).len()..];
        if self.config.at.is_none() && !history::is_virtual(path) {
            if let Some(page) = self.scans.miss(dir, name) {
                match self.scan_from(dir, path, page).await? {
                    Scanned::Found(node) => return Ok(Some(*node)),
                    Scanned::Absent => return Ok(None),
                    Scanned::Unknown => {}
                }
            }
        }
        self.fetch_node(path).await
    }

    /// Lists up to `page` names of `dir` from `path` on and remembers them,
    /// and tells what the listing shows at `path`.
    async fn scan_from(&self, dir: &str, path: &str, page: usize) -> Result<Scanned, FsError> {
        let prefix = dir_prefix(dir);
        // One more than the page: the name a continuing walk misses next.
        let reading = self.deletes.reading();
        let started = Instant::now();
        let mut listing = self
            .store
            .list_after(&prefix, &just_before(path), page + 1)
            .await?;
        reading.hide(&mut listing.objects);
        reading.hide_prefixes(&mut listing.prefixes);
        if !listing.attributes {
            return Ok(Scanned::Unknown);
        }
        if listing.objects.is_empty() && listing.prefixes.is_empty() && listing.next.is_none() {
            self.absence.empty_from(dir, path, started);
        }
        let as_dir = format!("{path}/");
        // Keys come in order from `path` on: past it (or at the listing's
        // end) with neither `path` nor `path/` seen, nothing is there.
        let shown_absent = !listing.objects.iter().any(|(k, _)| k == path || *k == as_dir)
            && !listing.prefixes.contains(&as_dir)
            && (listing.next.is_none()
                || listing.objects.iter().any(|(k, _)| *k > as_dir)
                || listing.prefixes.iter().any(|p| *p > as_dir));
        let mut markers = listing.markers;
        let mut names: Vec<(String, Option<Node>)> = listing
            .objects
            .into_iter()
            .map(|(k, info)| {
                let node = self.object_node(&k, info, true);
                (k, Some(node))
            })
            .chain(listing.prefixes.into_iter().map(|p| {
                // A directory, known when the listing told of its marker.
                let node = markers
                    .remove(&p)
                    .map(|marker| self.dir_node(&p[..p.len() - 1], marker));
                (p, node)
            }))
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let next = (names.len() > page).then(|| names[page].0.trim_end_matches('/').to_string());
        names.truncate(page);
        let mut found = None;
        for (key, node) in names {
            let Some(mut node) = node else { continue };
            // As of when the listing was sent (see `remember`).
            node.fetched = started;
            let name = key[prefix.len()..].trim_end_matches('/');
            if name.is_empty() || !valid_listed_name(name) {
                continue;
            }
            if node.path == path {
                found = Some(node.clone());
            }
            self.remember(node);
        }
        let next_name = next.as_deref().map(|n| &n[prefix.len().min(n.len())..]);
        self.scans.scanned(dir, page, next_name);
        Ok(match found {
            Some(node) => Scanned::Found(Box::new(node)),
            None if shown_absent => Scanned::Absent,
            None => Scanned::Unknown,
        })
    }

    pub async fn opendir(&self, ino: u64) -> Result<u64, FsError> {
        self.dir(ino)?;
        Ok(self.next_fh.fetch_add(1, Ordering::Relaxed))
    }

    /// The entries of an open directory, listed once when first read so a
    /// large directory pages without listing it again.
    pub async fn readdir(&self, ino: u64, fh: u64, offset: u64) -> Result<Arc<Vec<DirEntry>>, FsError> {
        if offset > 0 {
            if let Some(entries) = self.dirs.lock().unwrap().get(&fh) {
                return Ok(entries.clone());
            }
        }
        let entries = Arc::new(self.list_dir(ino).await?);
        self.dirs.lock().unwrap().insert(fh, entries.clone());
        Ok(entries)
    }

    pub fn releasedir(&self, fh: u64) {
        self.dirs.lock().unwrap().remove(&fh);
    }

    pub(super) async fn list_dir(&self, ino: u64) -> Result<Vec<DirEntry>, FsError> {
        let dir = self.dir(ino)?;
        if history::is_virtual(&dir.path) {
            let started = Instant::now();
            let mut names = std::collections::HashSet::new();
            for node in self.list_virtual(&dir.path).await? {
                names.insert(node.path[dir_prefix(&dir.path).len()..].to_string());
                self.remember_listed(node, started);
            }
            self.forget_unlisted(&dir.path, &names, started);
            return Ok(self.known_entries(&dir.path));
        }
        // Listed (or made) as recently as attributes are trusted, by a
        // readdir or by a listing of a tree above it.
        if self.absence.listed_within(&dir.path, self.config.attr_ttl) || self.list_tree(&dir.path).await? {
            return Ok(self.known_entries(&dir.path));
        }
        let prefix = dir_prefix(&dir.path);
        tracing::debug!(dir = %dir.path, "listing a directory");
        let started = Instant::now();
        let mut names = std::collections::HashSet::new();
        let Listing {
            objects,
            prefixes,
            markers,
            attributes,
            ..
        } = match self.config.at {
            Some(at) => {
                let (objects, prefixes) = self.versions_at(&prefix, at).await?;
                Listing {
                    objects,
                    prefixes,
                    ..Listing::default()
                }
            }
            None => self.list_all(&prefix).await?,
        };
        for (key, info) in objects {
            let name = &key[prefix.len()..];
            if name.is_empty() {
                continue; // this directory's own marker
            }
            if !valid_listed_name(name) {
                tracing::warn!(%key, "skipping a key that is not a valid file name");
                continue;
            }
            self.remember_listed(self.object_node(&key, info, attributes), started);
            names.insert(name.to_string());
        }
        for p in prefixes {
            let name = p[prefix.len()..].trim_end_matches('/');
            if !valid_listed_name(name) || p.len() - prefix.len() != name.len() + 1 {
                tracing::warn!(prefix = %p, "skipping a prefix that is not a valid file name");
                continue;
            }
            if !names.insert(name.to_string()) {
                continue; // a file and a directory of one name: the file wins
            }
            let path = &p[..p.len() - 1];
            let known = self.table.lock().unwrap().by_path.contains_key(path);
            match (markers.get(&p), known) {
                (Some(marker), _) => drop(self.remember_listed(self.dir_node(path, marker.clone()), started)),
                (None, true) => {}
                (None, false) => drop(self.remember_listed(self.dir_node(path, None), started)),
            }
        }
        // The table now holds exactly the listing, and what this mount made
        // since (files not yet committed, say).
        self.forget_unlisted(&dir.path, &names, started);
        self.absence.listed(&dir.path, started);
        Ok(self.known_entries(&dir.path))
    }

    /// The entries of `dir` as the inode table knows them.
    pub(super) fn known_entries(&self, dir: &str) -> Vec<DirEntry> {
        let skip = dir_prefix(dir).len();
        let table = self.table.lock().unwrap();
        table
            .children(dir)
            .into_iter()
            .filter(|(path, _)| path != history::ROOT)
            .filter_map(|(path, ino)| {
                let node = table.nodes.get(&ino).filter(|n| !n.unlinked)?;
                Some(DirEntry {
                    name: path[skip..].to_string(),
                    attr: Self::attr_in(&table, ino, node),
                })
            })
            .collect()
    }

    /// Lists `dir`'s whole tree in one page (see `tree.rs`), and takes in
    /// every directory the page shows whole. Was `dir` one of them?
    pub(super) async fn list_tree(&self, dir: &str) -> Result<bool, FsError> {
        if self.config.at.is_some()
            || !self.tree_listings.load(Ordering::Relaxed)
            || self.big_trees.is_big(dir)
        {
            return Ok(false);
        }
        tracing::debug!(%dir, "listing a tree");
        let started = Instant::now();
        let reading = self.deletes.reading();
        let mut page = self.store.list_tree(&dir_prefix(dir), TREE_PAGE).await?;
        if !page.attributes {
            self.tree_listings.store(false, Ordering::Relaxed);
            return Ok(false);
        }
        let last = page
            .next
            .as_ref()
            .and(page.objects.last())
            .map(|(k, _)| k.clone());
        reading.hide(&mut page.objects);
        drop(reading);
        for (path, entries) in tree::fold(dir, page.objects, valid_listed_name) {
            let skip = dir_prefix(&path).len();
            let mut names = std::collections::HashSet::new();
            for (key, info) in entries.files {
                names.insert(key[skip..].to_string());
                self.remember_listed(self.object_node(&key, info, true), started);
            }
            for (sub, marker) in entries.subdirs {
                // A file and a directory of one name: the file wins.
                if names.insert(sub[skip..].to_string()) {
                    self.remember_listed(self.dir_node(&sub, marker), started);
                }
            }
            if tree::shows_whole(&path, last.as_deref()) {
                self.forget_unlisted(&path, &names, started);
                self.absence.listed(&path, started);
            }
        }
        let whole = tree::shows_whole(dir, last.as_deref());
        if !whole {
            self.big_trees.big(dir);
        }
        Ok(whole)
    }

    /// Drops the children of `dir` a listing started at `started` no longer
    /// shows, unless open or touched since (or the history directory, which
    /// no listing shows), so the table holds exactly the directory's entries.
    pub(super) fn forget_unlisted(
        &self,
        dir: &str,
        names: &std::collections::HashSet<String>,
        started: Instant,
    ) {
        let open: std::collections::HashSet<u64> = self.files.lock().unwrap().keys().copied().collect();
        let mut table = self.table.lock().unwrap();
        let gone: Vec<(String, u64)> = table
            .children(dir)
            .into_iter()
            .filter(|(p, ino)| {
                !names.contains(p.rsplit('/').next().unwrap_or(""))
                    && p != history::ROOT
                    && !open.contains(ino)
                    && table
                        .nodes
                        .get(ino)
                        .is_some_and(|n| !n.local && n.fetched < started)
            })
            .collect();
        for (path, _) in gone {
            if let Some((ino, false)) = table.unbind(&path) {
                table.drop_node(ino);
            }
        }
    }

    /// Every key and common prefix under `prefix`, all pages in one.
    pub(super) async fn list_all(&self, prefix: &str) -> Result<Listing, FsError> {
        let mut all = Listing {
            attributes: true,
            ..Listing::default()
        };
        let mut token: Option<String> = None;
        let reading = self.deletes.reading();
        loop {
            let mut page = self.store.list(prefix, token.as_deref(), LIST_PAGE).await?;
            reading.hide(&mut page.objects);
            reading.hide_prefixes(&mut page.prefixes);
            all.objects.extend(page.objects);
            all.prefixes.extend(page.prefixes);
            all.markers.extend(page.markers);
            all.attributes &= page.attributes;
            match page.next {
                Some(t) => token = Some(t),
                None => return Ok(all),
            }
        }
    }

    /// The keys under `prefix` as they were at `at`: for each key its newest
    /// version no later than `at`, unless that is a delete marker.
    pub(super) async fn versions_at(
        &self,
        prefix: &str,
        at: SystemTime,
    ) -> Result<(Vec<(String, ObjectInfo)>, Vec<String>), FsError> {
        let mut newest: std::collections::BTreeMap<String, VersionEntry> = Default::default();
        let mut prefixes = Vec::new();
        let mut marker = None;
        loop {
            let page = self.store.list_versions(prefix, marker.as_ref()).await?;
            for v in page.versions {
                if v.info.mtime > at {
                    continue;
                }
                match newest.get(&v.key) {
                    Some(old) if old.info.mtime >= v.info.mtime => {}
                    _ => {
                        newest.insert(v.key.clone(), v);
                    }
                }
            }
            prefixes.extend(page.prefixes);
            match page.next {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        let objects = newest
            .into_values()
            .filter(|v| !v.delete_marker)
            .map(|v| (v.key, v.info))
            .collect();
        Ok((objects, prefixes))
    }

    pub(super) async fn fetch_node_at(&self, path: &str, at: SystemTime) -> Result<Option<Node>, FsError> {
        let (objects, prefixes) = self.versions_at(path, at).await?;
        if let Some((key, info)) = objects.into_iter().find(|(k, _)| k == path) {
            let mut full = self
                .store
                .head(&key, info.version_id.as_deref())
                .await?
                .unwrap_or(info.clone());
            full.version_id = info.version_id;
            return Ok(Some(self.object_node(path, full, true)));
        }
        if prefixes.iter().any(|p| *p == dir_prefix(path)) {
            return Ok(Some(self.dir_node(path, None)));
        }
        Ok(None)
    }
}
