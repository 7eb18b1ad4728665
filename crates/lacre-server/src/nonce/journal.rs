//! The nonce journal: replay protection for one machine (a SQLite store)
//! without a database write per request.
//!
//! Nonces are kept in memory (a [`NonceSet`]) and appended, 12 bytes each,
//! to files named by the end of their ten-second expiry bucket
//! (`<end second>.nonces`). A request waits for its nonce's `write(2)`
//! (and, with `fsync`, for a group `fdatasync(2)`) before it is
//! dispatched; at start the live files are read back into memory, and a
//! bucket's file is dropped whole once its second has passed (the sweep
//! reads it to forget its digests, so no expiry index is kept in memory).
//!
//! Layout of a file: 8 bytes of magic, 8 bytes of the key's fingerprint,
//! then 12-byte digests. A crash can leave a partial digest at the end;
//! it is cut off at start. The directory holds the digest key (`key`, 32
//! random bytes, mode 0600) and a `lock` file that one process holds.

use super::set::{expiry_second, live, Digest, Keyer, NonceSet, DIGEST_BYTES};
use lacre_proto::{NonceError, NonceUse};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Seconds of expiry one file holds.
const BUCKET_S: u32 = 10;
const MAGIC: &[u8; 8] = b"lacrenj1";
const HEADER: usize = 16;
const SUFFIX: &str = ".nonces";
/// Digests forgotten under one hold of the set's lock while sweeping.
const SWEEP_CHUNK: usize = 4096;

/// Why the journal could not be opened or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// Another process holds the journal.
    #[error(
        "{0} is in use by another process (one lacre process per SQLite \
         database and journal: give the other its own database, set \
         [nonces] journal = false in both to share the database's table, \
         or use PostgreSQL for replicas)"
    )]
    Locked(PathBuf),
    /// A file could not be read or written.
    #[error("nonce journal {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A file the journal cannot trust.
    #[error("nonce journal {path}: {why}")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
    /// No randomness for a new key.
    #[error("no randomness for the nonce journal's key: {0}")]
    Random(#[source] getrandom::Error),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The end second of the bucket an expiry second falls in.
fn bucket_end(expires_s: u32) -> u32 {
    expires_s.div_ceil(BUCKET_S).saturating_mul(BUCKET_S)
}

fn bucket_path(dir: &Path, end: u32) -> PathBuf {
    dir.join(format!("{end:010}{SUFFIX}"))
}

struct Bucket {
    file: Arc<File>,
    /// Bytes known to be whole records (a failed append is cut back here).
    len: u64,
}

struct Files {
    /// Buckets appended to since start, by end second.
    open: BTreeMap<u32, Bucket>,
    /// Every bucket with a file, swept when its second has passed.
    on_disk: BTreeSet<u32>,
    /// Appends made.
    written: u64,
    /// Files appended to since the last sync (`fsync` mode).
    dirty: Vec<Arc<File>>,
}

/// Replay protection on one machine: nonces in memory, made durable by an
/// append-only journal before their requests run.
pub struct NonceJournal {
    dir: PathBuf,
    keyer: Keyer,
    fingerprint: [u8; 8],
    set: Mutex<NonceSet>,
    files: Mutex<Files>,
    fsync: bool,
    /// Shared with the task that runs a sync (which outlives its caller).
    sync: Arc<SyncState>,
    /// Held for the process's life (the advisory lock).
    _lock: File,
}

/// Where syncs stand (`fsync` mode), and whether the journal can be trusted.
struct SyncState {
    /// Appends known to be on stable storage.
    synced: tokio::sync::watch::Sender<u64>,
    /// A sync is running.
    syncing: AtomicBool,
    /// Set when a write could not be undone or a sync failed: whether the
    /// journal holds what it should is then unknown, so every nonce is
    /// refused as `store_unavailable` until a restart reads it back.
    poisoned: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn private_file(path: &Path, append: bool) -> std::io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// The digest key: read, or made and written (before any file uses it).
fn load_key(dir: &Path, has_files: bool) -> Result<[u8; 32], JournalError> {
    let path = dir.join("key");
    match std::fs::read(&path) {
        Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| JournalError::Foreign {
            path,
            why: "the key file is not 32 bytes",
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if has_files {
                // Without the key the files' digests mean nothing, and
                // every nonce in them could be replayed.
                return Err(JournalError::Foreign {
                    path,
                    why: "journal files are there but their key is missing",
                });
            }
            let mut key = [0u8; 32];
            getrandom::getrandom(&mut key).map_err(JournalError::Random)?;
            let tmp = dir.join("key.tmp");
            let mut f = private_file(&tmp, false).map_err(io_at(&tmp))?;
            f.write_all(&key).map_err(io_at(&tmp))?;
            f.sync_all().map_err(io_at(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(io_at(&path))?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_at(dir))?;
            Ok(key)
        }
        Err(e) => Err(io_at(&path)(e)),
    }
}

/// The bucket files in `dir`, by end second.
fn bucket_files(dir: &Path) -> Result<Vec<(u32, PathBuf)>, JournalError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let name = entry.file_name();
        let end = name
            .to_str()
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(end) = end {
            out.push((end, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

impl NonceJournal {
    /// Opens (or creates) the journal in `dir`, reads its live files back
    /// into memory and starts the sweeper. `fsync`: wait for `fdatasync`
    /// before a request runs (survives power loss), not only for `write`
    /// (survives the process being killed).
    pub async fn open(dir: &Path, fsync: bool) -> Result<Arc<NonceJournal>, JournalError> {
        NonceJournal::open_with_clock(dir, fsync, Arc::new(lacre_proto::SystemClock)).await
    }

    /// As [`NonceJournal::open`], with the server's clock deciding what
    /// has expired.
    pub async fn open_with_clock(
        dir: &Path,
        fsync: bool,
        clock: Arc<dyn lacre_proto::Clock>,
    ) -> Result<Arc<NonceJournal>, JournalError> {
        let d = dir.to_path_buf();
        let now_ms = clock.now_ms();
        let journal = tokio::task::spawn_blocking(move || NonceJournal::load(&d, fsync, now_ms))
            .await
            .map_err(|e| io_at(dir)(std::io::Error::other(e)))??;
        let journal = Arc::new(journal);
        tokio::spawn(sweeper(Arc::downgrade(&journal), clock));
        Ok(journal)
    }

    fn load(dir: &Path, fsync: bool, now_ms: i64) -> Result<NonceJournal, JournalError> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir).map_err(io_at(dir))?;
        let lock_path = dir.join("lock");
        let lock_file = private_file(&lock_path, true).map_err(io_at(&lock_path))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(JournalError::Locked(dir.to_path_buf()))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_at(&lock_path)(e)),
        }
        let files = bucket_files(dir)?;
        let keyer = Keyer::new(&load_key(dir, !files.is_empty())?);
        let fingerprint = keyer.fingerprint();
        let mut set = NonceSet::default();
        let mut on_disk = BTreeSet::new();
        for (end, path) in files {
            if !live(end, now_ms) {
                remove(&path)?;
                continue;
            }
            let bytes = std::fs::read(&path).map_err(io_at(&path))?;
            let Some(records) = bytes.get(HEADER..) else {
                // A header cut short by a crash: nothing after it was written.
                remove(&path)?;
                continue;
            };
            if bytes.get(..8) != Some(MAGIC.as_slice()) {
                return Err(JournalError::Foreign {
                    path,
                    why: "not a nonce journal file",
                });
            }
            if bytes.get(8..HEADER) != Some(fingerprint.as_slice()) {
                return Err(JournalError::Foreign {
                    path,
                    why: "made with another key",
                });
            }
            let whole = records.len() - records.len() % DIGEST_BYTES;
            for r in records.chunks_exact(DIGEST_BYTES) {
                if let Ok(r) = <[u8; DIGEST_BYTES]>::try_from(r) {
                    set.restore(Digest::from_bytes(r), end);
                }
            }
            if whole < records.len() {
                // A digest cut short by a crash: its request never ran.
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_at(&path))?;
                f.set_len((HEADER + whole) as u64).map_err(io_at(&path))?;
            }
            on_disk.insert(end);
        }
        Ok(NonceJournal {
            dir: dir.to_path_buf(),
            keyer,
            fingerprint,
            set: Mutex::new(set),
            files: Mutex::new(Files {
                open: BTreeMap::new(),
                on_disk,
                written: 0,
                dirty: Vec::new(),
            }),
            fsync,
            sync: Arc::new(SyncState {
                synced: tokio::sync::watch::channel(0).0,
                syncing: AtomicBool::new(false),
                poisoned: AtomicBool::new(false),
            }),
            _lock: lock_file,
        })
    }

    /// Nonces remembered.
    pub fn len(&self) -> usize {
        lock(&self.set).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of memory the table of nonces holds.
    pub fn memory_bytes(&self) -> usize {
        lock(&self.set).table_bytes()
    }

    /// Records a pair (checked against what is remembered) and waits until
    /// it is durable.
    pub async fn record(&self, u: &NonceUse<'_>) -> Result<(), NonceError> {
        if self.sync.poisoned.load(Ordering::Acquire) {
            return Err(NonceError::Unavailable);
        }
        let d = self.keyer.digest(u.client_id, u.nonce);
        let end = bucket_end(expiry_second(u.expires_at_ms));
        lock(&self.set).record(d, end, u.now_ms)?;
        let seq = match self.append(end, d) {
            Ok(seq) => seq,
            Err(e) => {
                tracing::warn!(error = %e, "nonce journal unavailable");
                lock(&self.set).forget(d);
                return Err(NonceError::Unavailable);
            }
        };
        if self.fsync && !self.sync_to(seq).await {
            lock(&self.set).forget(d);
            return Err(NonceError::Unavailable);
        }
        Ok(())
    }

    /// Restores a pair recorded elsewhere (the SQL table of an earlier
    /// version) and journals it; nothing if it has expired.
    pub fn import(
        &self,
        client_id: &str,
        nonce: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), JournalError> {
        let end = bucket_end(expiry_second(expires_at_ms));
        if !live(end, now_ms) {
            return Ok(());
        }
        let d = self.keyer.digest(client_id, nonce);
        lock(&self.set).restore(d, end);
        self.append(end, d).map(|_| ())
    }

    /// Syncs every file appended to (after an import).
    pub fn sync_all(&self) -> Result<(), JournalError> {
        let files: Vec<Arc<File>> = lock(&self.files)
            .open
            .values()
            .map(|b| b.file.clone())
            .collect();
        for f in files {
            f.sync_data().map_err(io_at(&self.dir))?;
        }
        Ok(())
    }

    fn append(&self, end: u32, d: Digest) -> Result<u64, JournalError> {
        let path = bucket_path(&self.dir, end);
        let mut files = lock(&self.files);
        let files = &mut *files;
        let bucket = match files.open.entry(end) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let bucket = open_bucket(&path, &self.fingerprint)?;
                files.on_disk.insert(end);
                e.insert(bucket)
            }
        };
        if let Err(e) = (&*bucket.file).write_all(&d.to_bytes()) {
            // Cut a partial digest off, or later appends would be misread.
            if bucket.file.set_len(bucket.len).is_err() {
                self.sync.poisoned.store(true, Ordering::Release);
            }
            return Err(io_at(&path)(e));
        }
        bucket.len += DIGEST_BYTES as u64;
        files.written += 1;
        if self.fsync && !files.dirty.iter().any(|f| Arc::ptr_eq(f, &bucket.file)) {
            files.dirty.push(bucket.file.clone());
        }
        Ok(files.written)
    }

    /// Waits until append `seq` is on stable storage; one caller at a time
    /// syncs every file appended to so far (group commit). `false`: it is
    /// not, and the journal is poisoned.
    async fn sync_to(&self, seq: u64) -> bool {
        let state = &self.sync;
        let mut rx = state.synced.subscribe();
        loop {
            if state.poisoned.load(Ordering::Acquire) {
                return false;
            }
            if *rx.borrow_and_update() >= seq {
                return true;
            }
            if !state.syncing.swap(true, Ordering::AcqRel) {
                let (target, dirty) = {
                    let mut files = lock(&self.files);
                    (files.written, std::mem::take(&mut files.dirty))
                };
                // The sync and its news run in a task of their own: the
                // caller that started it may be dropped while it waits (a
                // client that hangs up), and the others wait for the news.
                let state = Arc::clone(state);
                tokio::spawn(async move {
                    let synced = tokio::task::spawn_blocking(move || {
                        dirty.iter().try_for_each(|f| f.sync_data())
                    })
                    .await;
                    if !matches!(synced, Ok(Ok(()))) {
                        // After a failed fsync the kernel may drop the dirty
                        // pages and report the next one clean: trust nothing.
                        tracing::error!(
                            ?synced,
                            "nonce journal sync failed; refusing nonces until a restart"
                        );
                        state.poisoned.store(true, Ordering::Release);
                    }
                    // Cleared before the news goes out, so a waiter woken by
                    // it can lead the next sync.
                    state.syncing.store(false, Ordering::Release);
                    state.synced.send_modify(|s| *s = (*s).max(target));
                });
                continue;
            }
            if rx.changed().await.is_err() {
                return false;
            }
        }
    }

    /// Drops every bucket whose second has passed at `now_ms`: its digests
    /// are forgotten and its file removed. Returns the digests read.
    pub fn sweep(&self, now_ms: i64) -> Result<usize, JournalError> {
        let expired: Vec<u32> = {
            let mut files = lock(&self.files);
            let ends: Vec<u32> = files
                .on_disk
                .iter()
                .take_while(|end| !live(**end, now_ms))
                .copied()
                .collect();
            for end in &ends {
                files.on_disk.remove(end);
                files.open.remove(end);
            }
            ends
        };
        let mut read = 0;
        for end in expired {
            let path = bucket_path(&self.dir, end);
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_at(&path)(e)),
            };
            let records = bytes.get(HEADER..).unwrap_or_default();
            for chunk in records.chunks(DIGEST_BYTES * SWEEP_CHUNK) {
                let mut set = lock(&self.set);
                for r in chunk.chunks_exact(DIGEST_BYTES) {
                    if let Ok(r) = <[u8; DIGEST_BYTES]>::try_from(r) {
                        set.expire(Digest::from_bytes(r), end);
                        read += 1;
                    }
                }
            }
            remove(&path)?;
        }
        Ok(read)
    }
}

fn remove(path: &Path) -> Result<(), JournalError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_at(path)(e)),
        _ => Ok(()),
    }
}

fn open_bucket(path: &Path, fingerprint: &[u8; 8]) -> Result<Bucket, JournalError> {
    let file = private_file(path, true).map_err(io_at(path))?;
    let len = file.metadata().map_err(io_at(path))?.len();
    let len = if len < HEADER as u64 {
        // New, or a header cut short: start it afresh.
        file.set_len(0).map_err(io_at(path))?;
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(MAGIC);
        header[8..].copy_from_slice(fingerprint);
        (&file).write_all(&header).map_err(io_at(path))?;
        HEADER as u64
    } else {
        // Whole digests only (the file was read back at start).
        let whole = len - (len - HEADER as u64) % DIGEST_BYTES as u64;
        if whole < len {
            file.set_len(whole).map_err(io_at(path))?;
        }
        whole
    };
    Ok(Bucket {
        file: Arc::new(file),
        len,
    })
}

/// Sweeps expired buckets once a second while the journal lives.
async fn sweeper(journal: Weak<NonceJournal>, clock: Arc<dyn lacre_proto::Clock>) {
    // Loading has just swept: the first sweep is a second away.
    let second = std::time::Duration::from_secs(1);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + second, second);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(j) = journal.upgrade() else { return };
        let now_ms = clock.now_ms();
        let swept = tokio::task::spawn_blocking(move || j.sweep(now_ms)).await;
        match swept {
            Ok(Ok(n)) if n > 0 => tracing::debug!(forgotten = n, "nonce journal swept"),
            Ok(Err(e)) => tracing::warn!(error = %e, "nonce journal sweep failed"),
            _ => {}
        }
    }
}

#[async_trait::async_trait]
impl super::NonceBackend for NonceJournal {
    async fn check_and_record(&self, u: &NonceUse<'_>) -> Result<(), NonceError> {
        self.record(u).await
    }

    fn len(&self) -> usize {
        NonceJournal::len(self)
    }

    fn memory_bytes(&self) -> usize {
        NonceJournal::memory_bytes(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_end_on_ten_second_marks() {
        assert_eq!(bucket_end(0), 0);
        assert_eq!(bucket_end(1), 10);
        assert_eq!(bucket_end(10), 10);
        assert_eq!(bucket_end(11), 20);
        assert_eq!(bucket_end(u32::MAX), u32::MAX);
        assert!(live(bucket_end(5), 10_000));
    }
}
