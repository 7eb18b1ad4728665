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
        let mut writer = self.writer().await.map_err(|e| {
            tracing::warn!(error = %e, "nonce store unavailable");
            NonceError::Unavailable
        })?;
        let inserted = sqlx::query(
            "INSERT INTO lacre_nonces (client_id, nonce, expires_at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (client_id, nonce) DO UPDATE SET expires_at_ms = excluded.expires_at_ms
               WHERE lacre_nonces.expires_at_ms < $4",
        )
        .bind(u.client_id.to_owned())
        .bind(u.nonce.to_owned())
        .bind(u.expires_at_ms)
        .bind(u.now_ms)
        .execute(&mut *writer)
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
            .fetch_all(&mut *self.writer().await?)
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

impl SqlStore {
    /// Moves the live nonces of the database's table into `journal` (a
    /// store that kept them in SQLite before the journal existed), then
    /// empties the table. A crash part-way leaves the rows, moved again at
    /// the next start. Returns how many were moved.
    pub async fn move_nonces_into(
        &self,
        journal: &crate::nonce::NonceJournal,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        const PAGE: i64 = 10_000;
        let (mut client, mut nonce) = (String::new(), String::new());
        let mut moved = 0;
        loop {
            let rows = sqlx::query(
                "SELECT client_id, nonce, expires_at_ms FROM lacre_nonces
                 WHERE expires_at_ms >= $1 AND (client_id > $2 OR (client_id = $2 AND nonce > $3))
                 ORDER BY client_id, nonce LIMIT $4",
            )
            .bind(now_ms)
            .bind(client.clone())
            .bind(nonce.clone())
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
            let last = rows.len() < usize::try_from(PAGE).unwrap_or(usize::MAX);
            for r in &rows {
                let c: String = r.try_get(0).map_err(unavailable)?;
                let n: String = r.try_get(1).map_err(unavailable)?;
                let e: i64 = r.try_get(2).map_err(unavailable)?;
                journal
                    .import(&c, &n, e, now_ms)
                    .map_err(|e| StoreError::Journal(crate::error::Cause::new(e)))?;
                (client, nonce) = (c, n);
                moved += 1;
            }
            if last {
                break;
            }
        }
        journal
            .sync_all()
            .map_err(|e| StoreError::Journal(crate::error::Cause::new(e)))?;
        sqlx::query("DELETE FROM lacre_nonces")
            .execute(&mut *self.writer().await?)
            .await
            .map_err(unavailable)?;
        self.nonce_count.store(0, Ordering::Relaxed);
        Ok(moved)
    }
}
