//! Nonces on SQL: one atomic insert per nonce, or a batch (group commit).

use super::{unavailable, SqlStore};
use crate::error::StoreError;
use crate::nonce::NonceBackend;
use lacre_proto::{NonceError, NonceUse};
use sqlx::Row;
use std::sync::atomic::Ordering;

#[async_trait::async_trait]
impl NonceBackend for SqlStore {
    async fn check_and_record(&self, u: &NonceUse<'_>) -> Result<(), NonceError> {
        // Insert if absent; an expired record may be reused. One statement,
        // atomic on every replica.
        let inserted = sqlx::query(
            "INSERT INTO lacre_nonces (client_id, nonce, expires_at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (client_id, nonce) DO UPDATE SET expires_at_ms = excluded.expires_at_ms
               WHERE lacre_nonces.expires_at_ms < $4",
        )
        .bind(u.client_id.to_owned())
        .bind(u.nonce.to_owned())
        .bind(u.expires_at_ms)
        .bind(u.now_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "nonce store unavailable");
            NonceError::Unavailable
        })?
        .rows_affected();
        if inserted == 1 {
            self.nonce_count.fetch_add(1, Ordering::Relaxed);
            Ok(())
        } else {
            Err(NonceError::Replayed)
        }
    }

    fn len(&self) -> usize {
        self.nonce_count.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl crate::nonce::NonceBatchSink for SqlStore {
    async fn record_batch(
        &self,
        items: &[(String, String, i64)],
        now_ms: i64,
    ) -> Result<Vec<bool>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql =
            String::from("INSERT INTO lacre_nonces (client_id, nonce, expires_at_ms) VALUES ");
        for i in 0..items.len() {
            if i > 0 {
                sql.push(',');
            }
            let b = i * 3;
            sql.push_str(&format!("(${}, ${}, ${})", b + 1, b + 2, b + 3));
        }
        sql.push_str(&format!(
            " ON CONFLICT (client_id, nonce) DO UPDATE SET expires_at_ms = excluded.expires_at_ms
               WHERE lacre_nonces.expires_at_ms < ${} RETURNING client_id, nonce",
            items.len() * 3 + 1
        ));
        let mut q = sqlx::query(&sql);
        for (c, n, e) in items {
            q = q.bind(c.clone()).bind(n.clone()).bind(*e);
        }
        // One statement is atomic on its own: no BEGIN/COMMIT round trips.
        let rows = q
            .bind(now_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let recorded: std::collections::HashSet<(String, String)> = rows
            .iter()
            .filter_map(|r| {
                Some((
                    r.try_get::<String, _>(0).ok()?,
                    r.try_get::<String, _>(1).ok()?,
                ))
            })
            .collect();
        self.nonce_count
            .fetch_add(recorded.len(), Ordering::Relaxed);
        Ok(items
            .iter()
            .map(|(c, n, _)| recorded.contains(&(c.clone(), n.clone())))
            .collect())
    }
}
