//! The webhook outbox on SQL: events written with a job's final state,
//! claimed by one replica at a time under a lease and a fencing token.

use super::rows::{delivery_from_row, to_i64};
use super::{corrupt, unavailable, Change, SqlStore};
use crate::error::StoreError;
use crate::jobs::{JobRecord, JobState, Listing};
use crate::store::StoreKind;
use crate::webhooks::{
    webhook_id, Attempt, AttemptOutcome, Delivery, DeliveryClaim, DeliveryState, DisabledEndpoint,
    EventMask, EventType, Outbox, RetrySelector,
};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A job that just ended: what its event needs.
pub(super) struct Ended<'a> {
    job_id: &'a str,
    client_id: String,
    request_id: String,
    events: EventMask,
    state: JobState,
}

impl<'a> Ended<'a> {
    /// From a row `RETURNING client_id, request_id, events`.
    pub(super) fn of_row(
        job_id: &'a str,
        row: &AnyRow,
        state: JobState,
    ) -> Result<Self, StoreError> {
        Ok(Ended {
            job_id,
            client_id: row.try_get("client_id").map_err(|_| corrupt("client_id"))?,
            request_id: row
                .try_get("request_id")
                .map_err(|_| corrupt("request_id"))?,
            events: EventMask::from_bits(row.try_get("events").map_err(|_| corrupt("events"))?),
            state,
        })
    }

    /// From the job as it now is.
    pub(super) fn of_job(job: &'a JobRecord) -> Self {
        Ended {
            job_id: &job.id,
            client_id: job.client_id.clone(),
            request_id: job.request_id.clone(),
            events: job.events,
            state: job.state,
        }
    }
}

/// Writes the event of a job that just ended, if its client asked for it,
/// in the transaction that ended it.
pub(super) async fn raise(
    conn: &mut sqlx::AnyConnection,
    ended: &Ended<'_>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let Some(event) = EventType::of_state(ended.state).filter(|e| ended.events.contains(*e)) else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO lacre_deliveries (id, client_id, job_id, request_id, event, state, next_at_ms, created_ms, updated_ms)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(webhook_id(ended.job_id, event))
    .bind(ended.client_id.clone())
    .bind(ended.job_id.to_owned())
    .bind(ended.request_id.clone())
    .bind(event.as_str())
    .bind(now_ms)
    .execute(conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

/// Due: pending and its time has come, its endpoint enabled; or claimed by
/// a sender whose lease ran out.
const DUE: &str = "((d.state = 'pending' AND d.next_at_ms <= $1
      AND NOT EXISTS (SELECT 1 FROM lacre_disabled_endpoints e WHERE e.client_id = d.client_id))
    OR (d.state = 'sending' AND d.lease_until_ms < $1))";

#[async_trait::async_trait]
impl Outbox for SqlStore {
    async fn claim_delivery(
        &self,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<DeliveryClaim>, StoreError> {
        // A look without the write lock first: the loop asks often, and
        // most often nothing is due.
        let any = sqlx::query(&format!(
            "SELECT d.id FROM lacre_deliveries d WHERE {DUE} LIMIT 1"
        ))
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        if any.is_none() {
            return Ok(None);
        }
        const SET: &str = "state = 'sending', attempts = attempts + 1, fence = fence + 1,
             lease_until_ms = $2, updated_ms = $1";
        let sql = match self.kind {
            StoreKind::Postgres => format!(
                "WITH next AS (
                   SELECT d.id FROM lacre_deliveries d WHERE {DUE}
                   ORDER BY d.next_at_ms, d.created_ms, d.id LIMIT 1 FOR UPDATE SKIP LOCKED)
                 UPDATE lacre_deliveries AS u SET {SET} FROM next WHERE u.id = next.id RETURNING u.*"
            ),
            _ => format!(
                "UPDATE lacre_deliveries SET {SET} WHERE id = (
                   SELECT d.id FROM lacre_deliveries d WHERE {DUE}
                   ORDER BY d.next_at_ms, d.created_ms, d.id LIMIT 1) RETURNING *"
            ),
        };
        let Some((row, fence)) = self.claim_row(&sql, now_ms, lease_ms).await? else {
            return Ok(None);
        };
        Ok(Some(DeliveryClaim {
            delivery: delivery_from_row(&row)?,
            fence,
        }))
    }

    async fn record_attempt(&self, attempt: Attempt<'_>) -> Result<bool, StoreError> {
        let now = attempt.now_ms;
        let r = attempt.outcome.recorded(now);
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE lacre_deliveries SET state = $3, next_at_ms = COALESCE($4, next_at_ms),
                last_status = $5, last_error = $6, delivered_ms = $7, updated_ms = $8
             WHERE id = $1 AND fence = $2 AND state = 'sending' RETURNING client_id",
        )
        .bind(attempt.id.to_owned())
        .bind(to_i64(attempt.fence))
        .bind(r.state.as_str())
        .bind(r.next_attempt_ms)
        .bind(r.last_status.map(i64::from))
        .bind(r.last_error)
        .bind(r.delivered_ms)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        let Some(row) = row else {
            tx.rollback().await.map_err(unavailable)?;
            return Ok(false);
        };
        if attempt.outcome == AttemptOutcome::EndpointGone {
            let client_id: String = row.try_get("client_id").map_err(|_| corrupt("client_id"))?;
            sqlx::query(
                "INSERT INTO lacre_disabled_endpoints (client_id, disabled_ms, reason) VALUES ($1, $2, $3)
                 ON CONFLICT (client_id) DO NOTHING",
            )
            .bind(client_id)
            .bind(now)
            .bind(format!("HTTP 410 Gone answering {}", attempt.id))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn deliveries(
        &self,
        which: Listing<'_, DeliveryState>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let query = sqlx::query(
            "SELECT * FROM lacre_deliveries
             WHERE ($1 = '' OR client_id = $1) AND ($2 = '' OR state = $2)
             ORDER BY created_ms DESC, id DESC LIMIT $3",
        )
        .bind(which.client_id.unwrap_or_default().to_owned())
        .bind(which.state.map_or("", DeliveryState::as_str))
        .bind(i64::try_from(which.limit).unwrap_or(i64::MAX));
        let rows = self.read_rows(query).await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn retry_deliveries(
        &self,
        which: RetrySelector<'_>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        const SET: &str =
            "UPDATE lacre_deliveries SET state = 'pending', attempts = 0, next_at_ms = $1, updated_ms = $1";
        let (sql, arg) = match which {
            RetrySelector::Id(id) => (
                format!("{SET} WHERE id = $2 AND state IN ('failed', 'pending')"),
                Some(id),
            ),
            RetrySelector::FailedOf(c) => (
                format!("{SET} WHERE client_id = $2 AND state = 'failed'"),
                Some(c),
            ),
            RetrySelector::AllFailed => (format!("{SET} WHERE state = 'failed'"), None),
        };
        let mut q = sqlx::query(&sql).bind(now_ms);
        if let Some(a) = arg {
            q = q.bind(a.to_owned());
        }
        self.write_rows(q, Change::Many).await
    }

    async fn disabled_endpoints(&self) -> Result<Vec<DisabledEndpoint>, StoreError> {
        let query = sqlx::query(
            "SELECT client_id, disabled_ms, reason FROM lacre_disabled_endpoints ORDER BY client_id",
        );
        let rows = self.read_rows(query).await?;
        rows.iter()
            .map(|r| {
                Ok(DisabledEndpoint {
                    client_id: r.try_get("client_id").map_err(|_| corrupt("client_id"))?,
                    disabled_ms: r
                        .try_get("disabled_ms")
                        .map_err(|_| corrupt("disabled_ms"))?,
                    reason: r.try_get("reason").map_err(|_| corrupt("reason"))?,
                })
            })
            .collect()
    }

    async fn enable_endpoint(&self, client_id: &str) -> Result<bool, StoreError> {
        let q = sqlx::query("DELETE FROM lacre_disabled_endpoints WHERE client_id = $1")
            .bind(client_id.to_owned());
        Ok(self.write_rows(q, Change::Many).await? > 0)
    }
}
