//! The audit log in memory (tests, `lacre demo`).

use super::{AuditEntry, AuditQuery, AuditStore};
use crate::error::StoreError;
use std::sync::Mutex;

/// Entries in a vector behind a mutex.
#[derive(Default)]
pub struct MemoryAudit {
    entries: Mutex<Vec<AuditEntry>>,
}

impl MemoryAudit {
    /// An empty log.
    pub fn new() -> MemoryAudit {
        MemoryAudit::default()
    }
}

#[async_trait::async_trait]
impl AuditStore for MemoryAudit {
    async fn append(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let mut all = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        all.extend_from_slice(entries);
        Ok(())
    }

    async fn entries(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let all = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut found: Vec<&AuditEntry> = all
            .iter()
            .filter(|e| q.chain.as_ref().is_none_or(|c| &e.chain == c))
            .filter(|e| q.client_id.as_ref().is_none_or(|c| &e.client_id == c))
            .filter(|e| q.since_ms.is_none_or(|t| e.at_ms >= t))
            .filter(|e| {
                q.after
                    .as_ref()
                    .is_none_or(|(c, s)| (&e.chain, e.seq) > (c, *s))
            })
            .collect();
        found.sort_by(|a, b| (&a.chain, a.seq).cmp(&(&b.chain, b.seq)));
        Ok(found.into_iter().take(q.limit).cloned().collect())
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut all = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let before = all.len();
        all.retain(|e| e.at_ms >= before_ms);
        Ok((before - all.len()) as u64)
    }
}
