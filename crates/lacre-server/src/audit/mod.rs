//! The audit log (SPEC §10.7): every authenticated request, exactly as
//! received, and the signed reply sent for it, appended to the store in a
//! hash chain that anyone holding the keys can re-verify.
//!
//! Each server process writes a chain of its own (a fresh chain id at
//! start, sequence numbers from 1): appends never wait for another replica,
//! a chain never forks, and nothing is read before the first write. The
//! request path only hands the two byte strings to a bounded queue; a
//! writer task hashes them, links them and writes them in batches, one
//! transaction per batch, so no disk flush is waited for by a request.

mod memory;
pub mod verify;

pub use memory::MemoryAudit;

use crate::error::StoreError;
use lacre_proto::{to_hex, Clock, Map, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The `prev` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The writer's chain (a UUID per server process).
    pub chain: String,
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When the reply was signed (its `ts_ms`).
    pub at_ms: i64,
    /// The authenticated client.
    pub client_id: String,
    /// The tool it named (from the request; not hashed on its own).
    pub tool: String,
    /// Its request id (from the request; not hashed on its own).
    pub request_id: String,
    /// The request exactly as received, signature included.
    pub request: String,
    /// The reply exactly as sent.
    pub reply: String,
    /// The previous entry's `hash` ([`GENESIS`] for the first).
    pub prev: String,
    /// [`entry_hash`] of this entry.
    pub hash: String,
}

/// SHA-256 of the canonical JSON of `{"at_ms", "chain", "client_id",
/// "prev", "reply_sha256", "request_sha256", "seq"}`, in hex: what links an
/// entry to the next.
pub fn entry_hash(e: &AuditEntry) -> String {
    let digest = |s: &str| to_hex(&Sha256::digest(s.as_bytes()));
    let mut m = Map::new();
    m.insert("at_ms".into(), Value::from(e.at_ms));
    m.insert("chain".into(), Value::from(e.chain.as_str()));
    m.insert("client_id".into(), Value::from(e.client_id.as_str()));
    m.insert("prev".into(), Value::from(e.prev.as_str()));
    m.insert("reply_sha256".into(), Value::from(digest(&e.reply)));
    m.insert("request_sha256".into(), Value::from(digest(&e.request)));
    m.insert("seq".into(), Value::from(e.seq));
    to_hex(&Sha256::digest(lacre_proto::canonical(&Value::Object(m))))
}

/// Which entries to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this chain's.
    pub chain: Option<String>,
    /// Only this client's.
    pub client_id: Option<String>,
    /// Only those at or after this time.
    pub since_ms: Option<i64>,
    /// Entries after this `(chain, seq)`, in `(chain, seq)` order.
    pub after: Option<(String, i64)>,
    /// At most this many.
    pub limit: usize,
}

/// Where audit entries are kept (the job store's database).
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends entries (one transaction).
    async fn append(&self, entries: &[AuditEntry]) -> Result<(), StoreError>;
    /// Entries in `(chain, seq)` order.
    async fn entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
    /// Removes entries older than `before_ms`; returns how many.
    async fn prune_audit(&self, before_ms: i64) -> Result<u64, StoreError>;
}

/// The `[audit]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditSettings {
    /// How long entries are kept (days).
    pub retention_days: u32,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings { retention_days: 30 }
    }
}

/// A request and its reply, on their way to the log.
pub(crate) struct Pending {
    pub(crate) client_id: String,
    pub(crate) tool: String,
    pub(crate) request_id: String,
    pub(crate) at_ms: i64,
    pub(crate) request: Vec<u8>,
    pub(crate) reply: Vec<u8>,
}

/// Requests waiting for the writer at most; past it, requests wait for
/// room (the log slows the server down rather than lose entries).
const QUEUE: usize = 8192;
/// Entries written per transaction at most.
const BATCH: usize = 512;

/// The request path's end of the log.
#[derive(Clone)]
pub(crate) struct AuditSink {
    tx: mpsc::Sender<Pending>,
}

impl AuditSink {
    /// Queues one request and its reply.
    pub(crate) async fn record(&self, pending: Pending) {
        if self.tx.send(pending).await.is_err() {
            tracing::error!("the audit writer stopped; an entry is lost");
        }
    }
}

/// The running writer.
pub struct AuditWriter {
    handle: JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
    /// The chain this process writes.
    pub chain: String,
}

impl AuditWriter {
    /// Starts a writer of a new chain to `store`.
    pub(crate) fn spawn(
        store: Arc<dyn AuditStore>,
        chain: String,
        settings: AuditSettings,
        clock: Arc<dyn Clock>,
    ) -> (AuditSink, AuditWriter) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let handle = tokio::spawn(write(store, chain.clone(), settings, clock, rx, stopped));
        (
            AuditSink { tx },
            AuditWriter {
                handle,
                stop,
                chain,
            },
        )
    }

    /// Writes what is queued and stops, waiting up to `grace` (call it once
    /// the server answers no more requests).
    pub async fn finish(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut handle = self.handle;
        if tokio::time::timeout(grace, &mut handle).await.is_err() {
            tracing::error!("audit entries still unwritten at shutdown");
            handle.abort();
        }
    }
}

async fn write(
    store: Arc<dyn AuditStore>,
    chain: String,
    settings: AuditSettings,
    clock: Arc<dyn Clock>,
    mut rx: mpsc::Receiver<Pending>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut seq: i64 = 0;
    let mut prev = GENESIS.to_owned();
    let mut batch: Vec<Pending> = Vec::with_capacity(BATCH);
    let mut last_prune: Option<std::time::Instant> = None;
    let retention_ms = i64::from(settings.retention_days).saturating_mul(86_400_000);
    loop {
        let stopping = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => n == 0,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopping {
            // Whatever was queued before the stop is written, then done.
            while let Ok(p) = rx.try_recv() {
                batch.push(p);
            }
            if batch.is_empty() {
                return;
            }
        }
        let mut entries = Vec::with_capacity(batch.len());
        for p in batch.drain(..) {
            seq += 1;
            let mut e = AuditEntry {
                chain: chain.clone(),
                seq,
                at_ms: p.at_ms,
                client_id: p.client_id,
                tool: p.tool,
                request_id: p.request_id,
                // A verified request is UTF-8 JSON, and so is every reply.
                request: String::from_utf8_lossy(&p.request).into_owned(),
                reply: String::from_utf8_lossy(&p.reply).into_owned(),
                prev: std::mem::take(&mut prev),
                hash: String::new(),
            };
            e.hash = entry_hash(&e);
            prev.clone_from(&e.hash);
            entries.push(e);
        }
        // A failed write is retried: the chain must not skip entries.
        let mut backoff = Duration::from_millis(50);
        while let Err(e) = store.append(&entries).await {
            tracing::error!(error = %e, entries = entries.len(), "cannot write the audit log; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        if stopping {
            return;
        }
        if last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(600)) {
            last_prune = Some(std::time::Instant::now());
            let now = clock.now_ms();
            match store.prune_audit(now.saturating_sub(retention_ms)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(entries = n, "pruned audit entries past retention"),
                Err(e) => tracing::warn!(error = %e, "cannot prune the audit log"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, prev: &str) -> AuditEntry {
        let mut e = AuditEntry {
            chain: "c".into(),
            seq,
            at_ms: 1_000 + seq,
            client_id: "client-001".into(),
            tool: "batch_sum".into(),
            request_id: format!("r{seq}"),
            request: format!("{{\"request\":{seq}}}"),
            reply: format!("{{\"reply\":{seq}}}"),
            prev: prev.into(),
            hash: String::new(),
        };
        e.hash = entry_hash(&e);
        e
    }

    #[test]
    fn the_hash_covers_every_hashed_field() {
        let e = entry(1, GENESIS);
        assert_eq!(e.hash.len(), 64);
        let changes: [fn(&mut AuditEntry); 7] = [
            |e| e.chain.push('x'),
            |e| e.seq += 1,
            |e| e.at_ms += 1,
            |e| e.client_id.push('x'),
            |e| e.request.push(' '),
            |e| e.reply.push(' '),
            |e| e.prev = "1".repeat(64),
        ];
        for change in changes {
            let mut changed = e.clone();
            change(&mut changed);
            assert_ne!(entry_hash(&changed), e.hash, "{changed:?}");
        }
        // The derived columns are not hashed: they come from the request.
        let mut derived = e.clone();
        derived.tool.push('x');
        assert_eq!(entry_hash(&derived), e.hash);
    }
}
