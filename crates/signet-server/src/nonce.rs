//! Replay protection: where `(client_id, nonce)` pairs are remembered.

use signet_proto::NonceError;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// An asynchronous nonce store (a database-backed one must not block the
/// runtime). Same contract as [`signet_proto::NonceStore`].
#[async_trait::async_trait]
pub trait NonceBackend: Send + Sync + 'static {
    /// Records the pair if new; [`NonceError::Replayed`] if seen and not
    /// expired; [`NonceError::Unavailable`] if the store cannot answer.
    async fn check_and_record(
        &self,
        client_id: &str,
        nonce: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), NonceError>;

    /// Number of remembered nonces (for metrics).
    fn len(&self) -> usize;

    /// Whether no nonce is remembered.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How often expired nonces are swept out.
const SWEEP_EVERY_MS: i64 = 1_000;

struct Inner {
    seen: HashMap<Box<str>, i64>,
    next_sweep_ms: i64,
}

/// Nonces in memory, forgotten once their envelope's timestamp has left the
/// window (after that the envelope is refused as stale anyway).
pub struct MemoryNonceStore {
    inner: Mutex<Inner>,
}

impl Default for MemoryNonceStore {
    fn default() -> Self {
        MemoryNonceStore {
            inner: Mutex::new(Inner {
                seen: HashMap::new(),
                next_sweep_ms: i64::MIN,
            }),
        }
    }
}

/// An unambiguous key for the pair: the client id's length prefixes it.
fn key(client_id: &str, nonce: &str) -> Box<str> {
    let mut k = String::with_capacity(client_id.len() + nonce.len() + 6);
    k.push_str(&client_id.len().to_string());
    k.push(':');
    k.push_str(client_id);
    k.push_str(nonce);
    k.into_boxed_str()
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
        let mut inner = self.lock();
        if now_ms >= inner.next_sweep_ms {
            inner.seen.retain(|_, exp| *exp >= now_ms);
            inner.next_sweep_ms = now_ms.saturating_add(SWEEP_EVERY_MS);
        }
        match inner.seen.entry(key(client_id, nonce)) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                if *e.get() >= now_ms {
                    Err(NonceError::Replayed)
                } else {
                    e.insert(expires_at_ms);
                    Ok(())
                }
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(expires_at_ms);
                Ok(())
            }
        }
    }

    /// Number of remembered nonces.
    pub fn len(&self) -> usize {
        self.lock().seen.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl signet_proto::NonceStore for MemoryNonceStore {
    fn check_and_record(
        &self,
        client_id: &str,
        nonce: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), NonceError> {
        self.record(client_id, nonce, expires_at_ms, now_ms)
    }
}

#[async_trait::async_trait]
impl NonceBackend for MemoryNonceStore {
    async fn check_and_record(
        &self,
        client_id: &str,
        nonce: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), NonceError> {
        self.record(client_id, nonce, expires_at_ms, now_ms)
    }

    fn len(&self) -> usize {
        MemoryNonceStore::len(self)
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
