//! Replay protection: where `(client_id, nonce)` pairs are remembered.

use crate::error::StoreError;
use lacre_proto::{NonceError, NonceUse};
use std::sync::{Mutex, MutexGuard};

/// An asynchronous nonce store (a database-backed one must not block the
/// runtime). Same contract as [`lacre_proto::NonceStore`].
#[async_trait::async_trait]
pub trait NonceBackend: Send + Sync + 'static {
    /// Records the pair if new; [`NonceError::Replayed`] if seen and not
    /// expired; [`NonceError::Unavailable`] if the store cannot answer.
    async fn check_and_record(&self, used: &NonceUse<'_>) -> Result<(), NonceError>;

    /// Number of remembered nonces (for metrics).
    fn len(&self) -> usize;

    /// Bytes of memory the records kept in this process take (for
    /// metrics; 0 where none are kept here).
    fn memory_bytes(&self) -> usize {
        0
    }

    /// Whether no nonce is remembered.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

mod journal;
mod set;

pub use journal::{JournalError, NonceJournal};
use set::{expiry_second, Digest, Keyer, NonceSet};

struct Inner {
    set: NonceSet,
    /// The same digests by expiry second, so a sweep touches only what
    /// expired (a full scan of millions of entries would stall requests).
    by_expiry: std::collections::BTreeMap<u32, Vec<Digest>>,
    /// The next second to sweep.
    next_sweep_s: u32,
}

impl Inner {
    fn sweep(&mut self, now_ms: i64) {
        while let Some(entry) = self.by_expiry.first_entry() {
            let second = *entry.key();
            if set::live(second, now_ms) {
                break;
            }
            for d in entry.remove() {
                // Re-used pairs carry a later expiry: keep those.
                self.set.expire(d, second);
            }
        }
    }
}

/// A key for digests that live only as long as the process: from the
/// standard library's random hasher keys (drawn from the operating system
/// once a thread, as `HashMap` draws them).
fn process_key() -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    let mut key = [0u8; 32];
    for (i, chunk) in key.chunks_exact_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    key
}

/// Nonces in memory, forgotten once their envelope's timestamp has left the
/// window (after that the envelope is refused as stale anyway).
///
/// A pair is remembered as a 96-bit keyed digest (see [`set`]), 16 bytes
/// a table slot and 12 more in the list of its expiry second.
pub struct MemoryNonceStore {
    inner: Mutex<Inner>,
    keyer: Keyer,
}

impl Default for MemoryNonceStore {
    fn default() -> Self {
        MemoryNonceStore {
            inner: Mutex::new(Inner {
                set: NonceSet::default(),
                by_expiry: std::collections::BTreeMap::new(),
                next_sweep_s: 0,
            }),
            keyer: Keyer::new(&process_key()),
        }
    }
}

impl MemoryNonceStore {
    /// An empty store.
    pub fn new() -> MemoryNonceStore {
        MemoryNonceStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(
        &self,
        client_id: &str,
        nonce: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), NonceError> {
        let d = self.keyer.digest(client_id, nonce);
        let expires_s = expiry_second(expires_at_ms);
        let mut inner = self.lock();
        if !set::live(inner.next_sweep_s, now_ms) {
            inner.sweep(now_ms);
            inner.next_sweep_s = expiry_second(now_ms);
        }
        inner.set.record(d, expires_s, now_ms)?;
        inner.by_expiry.entry(expires_s).or_default().push(d);
        Ok(())
    }

    /// Number of remembered nonces.
    pub fn len(&self) -> usize {
        self.lock().set.len()
    }

    /// Bytes of memory the records take: the table and the expiry lists.
    pub fn memory_bytes(&self) -> usize {
        let inner = self.lock();
        let lists: usize = inner.by_expiry.values().map(Vec::capacity).sum();
        inner.set.table_bytes() + lists * std::mem::size_of::<Digest>()
    }

    /// Forgets a pair (its durable recording failed).
    fn forget(&self, client_id: &str, nonce: &str) {
        let d = self.keyer.digest(client_id, nonce);
        self.lock().set.forget(d);
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl lacre_proto::NonceStore for MemoryNonceStore {
    fn check_and_record(&self, u: &NonceUse<'_>) -> Result<(), NonceError> {
        self.record(u.client_id, u.nonce, u.expires_at_ms, u.now_ms)
    }
}

#[async_trait::async_trait]
impl NonceBackend for MemoryNonceStore {
    async fn check_and_record(&self, u: &NonceUse<'_>) -> Result<(), NonceError> {
        self.record(u.client_id, u.nonce, u.expires_at_ms, u.now_ms)
    }

    fn len(&self) -> usize {
        MemoryNonceStore::len(self)
    }

    fn memory_bytes(&self) -> usize {
        MemoryNonceStore::memory_bytes(self)
    }
}

/// A durable nonce table that can record many nonces in one transaction.
#[async_trait::async_trait]
pub trait NonceBatchSink: Send + Sync + 'static {
    /// Records each `(client_id, nonce, expires_at_ms)` that is new (or whose
    /// earlier record expired before `now_ms`); returns, in order, whether
    /// each was recorded (`false`: a live record exists, a replay).
    async fn record_batch(
        &self,
        items: &[(String, String, i64)],
        now_ms: i64,
    ) -> Result<Vec<bool>, StoreError>;
}

/// Most nonces committed in one transaction.
const MAX_BATCH: usize = 512;

struct Pending {
    client_id: String,
    nonce: String,
    expires_at_ms: i64,
    now_ms: i64,
    reply: tokio::sync::oneshot::Sender<Result<(), NonceError>>,
}

/// Replay protection on a durable store without a write per request on the
/// critical path's throughput: an in-memory front set refuses local replays
/// at once, and new nonces are group-committed (one transaction for all the
/// nonces that arrived while the previous commit ran). A request waits for
/// its nonce's commit before it is dispatched, so a replay is refused before
/// and after a restart alike, and on every replica sharing the database.
pub struct BatchedNonceStore {
    front: MemoryNonceStore,
    queue: tokio::sync::mpsc::UnboundedSender<Pending>,
}

impl BatchedNonceStore {
    /// Starts the committer task over `sink`.
    pub fn new(sink: std::sync::Arc<dyn NonceBatchSink>) -> BatchedNonceStore {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(commit_loop(sink, rx));
        BatchedNonceStore {
            front: MemoryNonceStore::new(),
            queue: tx,
        }
    }
}

async fn commit_loop(
    sink: std::sync::Arc<dyn NonceBatchSink>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Pending>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        // Let the requests already in flight reach this point too: a few
        // yields cost microseconds and make batches (and commits) fewer.
        for _ in 0..32 {
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            tokio::task::yield_now().await;
        }
        tracing::trace!(size = batch.len(), "nonce batch");
        // The earliest `now` of the batch: a record counts as expired only
        // if it had expired for every request in the batch (never later
        // than the instant each request's timestamp was checked at).
        let now = batch.iter().map(|p| p.now_ms).min().unwrap_or(0);
        let items: Vec<(String, String, i64)> = batch
            .iter()
            .map(|p| (p.client_id.clone(), p.nonce.clone(), p.expires_at_ms))
            .collect();
        let outcome = sink.record_batch(&items, now).await;
        for (i, p) in batch.drain(..).enumerate() {
            let r = match &outcome {
                Ok(recorded) if recorded.get(i).copied().unwrap_or(false) => Ok(()),
                Ok(_) => Err(NonceError::Replayed),
                Err(e) => {
                    tracing::warn!(error = %e, "nonce store unavailable");
                    Err(NonceError::Unavailable)
                }
            };
            let _ = p.reply.send(r);
        }
    }
}

#[async_trait::async_trait]
impl NonceBackend for BatchedNonceStore {
    async fn check_and_record(&self, u: &NonceUse<'_>) -> Result<(), NonceError> {
        let NonceUse {
            client_id,
            nonce,
            expires_at_ms,
            now_ms,
        } = *u;
        // A replay of a nonce this process has seen is refused without I/O.
        self.front.record(client_id, nonce, expires_at_ms, now_ms)?;
        let (reply, wait) = tokio::sync::oneshot::channel();
        let pending = Pending {
            client_id: client_id.to_owned(),
            nonce: nonce.to_owned(),
            expires_at_ms,
            now_ms,
            reply,
        };
        let outcome = match self.queue.send(pending) {
            Ok(()) => wait.await.unwrap_or(Err(NonceError::Unavailable)),
            Err(_) => Err(NonceError::Unavailable),
        };
        if outcome == Err(NonceError::Unavailable) {
            // Not recorded anywhere: do not let the front set claim otherwise.
            self.front.forget(client_id, nonce);
        }
        outcome
    }

    fn len(&self) -> usize {
        self.front.len()
    }

    fn memory_bytes(&self) -> usize {
        self.front.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_refused_until_expiry_then_swept() {
        let s = MemoryNonceStore::new();
        assert_eq!(s.record("c", "n", 100, 0), Ok(()));
        assert_eq!(s.record("c", "n", 100, 50), Err(NonceError::Replayed));
        assert_eq!(s.record("c2", "n", 100, 50), Ok(()));
        // The pair ("1:c", "2n") must not collide with ("1:c2", "n").
        assert_eq!(s.record("c", "2n", 100, 50), Ok(()));
        assert_eq!(s.len(), 3);
        assert_eq!(s.record("x", "y", 5000, 2000), Ok(()));
        assert_eq!(s.len(), 1, "expired nonces are swept");
    }
}
