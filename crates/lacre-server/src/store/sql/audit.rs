//! The audit log on SQL (`lacre_audit`).

use super::{corrupt, unavailable, SqlStore};
use crate::audit::{AuditEntry, AuditQuery, AuditStore};
use crate::error::StoreError;
use sqlx::Row;

#[async_trait::async_trait]
impl AuditStore for SqlStore {
    async fn append(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        // Many rows a statement: one round trip (and one parse) per
        // hundred entries instead of one each.
        const ROWS: usize = 8;
        let mut tx = self.begin().await?;
        for chunk in entries.chunks(ROWS) {
            let mut sql = String::from(
                "INSERT INTO lacre_audit (chain, seq, at_ms, client_id, tool, request_id, request, reply, prev, hash) VALUES ",
            );
            for i in 0..chunk.len() {
                let b = i * 10;
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8,
                    b + 9,
                    b + 10
                ));
            }
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = q
                    .bind(e.chain.clone())
                    .bind(e.seq)
                    .bind(e.at_ms)
                    .bind(e.client_id.clone())
                    .bind(e.tool.clone())
                    .bind(e.request_id.clone())
                    .bind(e.request.clone())
                    .bind(e.reply.clone())
                    .bind(e.prev.clone())
                    .bind(e.hash.clone());
            }
            q.execute(&mut *tx).await.map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn entries(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let (after_chain, after_seq) = q.after.clone().unwrap_or_default();
        let query = sqlx::query(
            "SELECT * FROM lacre_audit
             WHERE ($1 = '' OR chain = $1) AND ($2 = '' OR client_id = $2) AND at_ms >= $3
               AND ($4 = 0 OR chain > $5 OR (chain = $5 AND seq > $6))
             ORDER BY chain, seq LIMIT $7",
        )
        .bind(q.chain.clone().unwrap_or_default())
        .bind(q.client_id.clone().unwrap_or_default())
        .bind(q.since_ms.unwrap_or(i64::MIN))
        .bind(i64::from(q.after.is_some()))
        .bind(after_chain)
        .bind(after_seq)
        .bind(i64::try_from(q.limit).unwrap_or(i64::MAX));
        let rows = self.read_rows(query).await?;
        rows.iter()
            .map(|r| {
                let s = |c: &str| r.try_get::<String, _>(c).map_err(|_| corrupt(c));
                let i = |c: &str| r.try_get::<i64, _>(c).map_err(|_| corrupt(c));
                Ok(AuditEntry {
                    chain: s("chain")?,
                    seq: i("seq")?,
                    at_ms: i("at_ms")?,
                    client_id: s("client_id")?,
                    tool: s("tool")?,
                    request_id: s("request_id")?,
                    request: s("request")?,
                    reply: s("reply")?,
                    prev: s("prev")?,
                    hash: s("hash")?,
                })
            })
            .collect()
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM lacre_audit WHERE (chain, seq) IN (
                   SELECT chain, seq FROM lacre_audit WHERE at_ms < $1 LIMIT $2)",
            )
            .bind(before_ms)
            .bind(super::PRUNE_BATCH)
            .execute(&mut *self.writer().await?)
            .await
            .map_err(unavailable)?
            .rows_affected();
            total += n;
            if n < super::PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}
