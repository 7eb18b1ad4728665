//! The job store on SQL: create, claim, heartbeat, finish, cancel, rescue, prune.

use super::group::{Scope, Wake, Wrote};
use super::outbox::{raise, Ended};
use super::rows::{job_from_row, json_text, status_from_row, summary_from_row, to_i64};
use super::{corrupt, unavailable, Change, SqlStore, PRUNE_BATCH};
use crate::error::{Cause, StoreError};
use crate::jobs::{
    Claim, CreateOutcome, Finish, Heartbeat, JobOutcome, JobRecord, JobState, JobStatus, JobStore,
    JobWatch, LeaseStatus, Listing, NewJob, Prune, PruneStats, WorkSignal,
};
use crate::store::StoreKind;
use crate::webhooks::{EventMask, EventType};
use lacre_proto::builtin::JobSummary;
use sqlx::Row;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::watch;

#[async_trait::async_trait]
impl JobStore for SqlStore {
    async fn create(&self, job: NewJob) -> Result<CreateOutcome, StoreError> {
        // A free worker of this process takes the job as it is created: the
        // job is written already claimed for it (SPEC §10.4), and handed
        // over once committed, without a claim of its own. That runs in a
        // task of its own, to the end even if the caller goes away (a
        // client that hangs up): a job written claimed that did not reach
        // its worker would wait for its lease to lapse.
        let reserved = self.work.reserve();
        let me = self.me.upgrade();
        match (reserved, me) {
            (Some(reserved), Some(me)) => {
                tokio::spawn(async move { me.create_job(job, Some(reserved)).await })
                    .await
                    // Only a panic in the task (the runtime shutting down
                    // drops the caller too): the create's outcome is unknown.
                    .unwrap_or_else(|e| Err(StoreError::Unavailable(Cause::new(e))))
            }
            _ => self.create_job(job, None).await,
        }
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.fetch_job(id).await
    }

    async fn list(&self, which: Listing<'_, JobState>) -> Result<Vec<JobRecord>, StoreError> {
        self.newest_first(which).await
    }

    async fn claim(&self, now_ms: i64, lease_ms: i64) -> Result<Option<Claim>, StoreError> {
        const SET: &str = "state = 'running', attempt = attempt + 1, fence = fence + 1,
             lease_until_ms = $2, updated_ms = $1, version = version + 1";
        // Fair between clients: first the jobs of clients with the fewest
        // running jobs (per-client job limits keep the candidates few).
        const FAIR: &str = "(SELECT COUNT(*) FROM lacre_jobs r
             WHERE r.client_id = q.client_id AND r.state = 'running')";
        // The clients with queued jobs, one index lookup each.
        const CLIENTS: &str = "clients(c) AS (
             SELECT (SELECT MIN(client_id) FROM lacre_jobs WHERE state = 'queued')
             UNION ALL
             SELECT (SELECT MIN(client_id) FROM lacre_jobs WHERE state = 'queued' AND client_id > c)
               FROM clients WHERE c IS NOT NULL)";
        let sql = match self.kind {
            // At a cost that does not grow with the queue: the clients with
            // queued jobs are walked through the index of the queue (one
            // lookup each), each one's oldest due job is its candidate, and
            // the candidates are ordered as above. (Counting each queued
            // job's client's running jobs, as a plain ORDER BY does, made a
            // claim cost queue × running.) PostgreSQL locks each client's
            // candidate, skipping one another replica holds, for the length
            // of the statement. Its commit does not wait for the WAL to
            // reach the disk (`synchronous_commit` off for this transaction
            // alone, set as the claimed row is returned): a claim the
            // database loses in a crash leaves the job queued, to be run
            // again, as when a lease lapses (at-least-once, SPEC §10.4),
            // and one fsync fewer a job is a third of the commits that wait.
            StoreKind::Postgres => format!(
                "WITH RECURSIVE {CLIENTS}, next AS (
                   SELECT h.id FROM (SELECT c AS client_id FROM clients WHERE c IS NOT NULL) q
                   CROSS JOIN LATERAL (
                       SELECT id, available_at_ms, created_ms FROM lacre_jobs
                       WHERE state = 'queued' AND client_id = q.client_id AND available_at_ms <= $1
                       ORDER BY available_at_ms, created_ms LIMIT 1 FOR UPDATE SKIP LOCKED) h
                   ORDER BY {FAIR}, h.available_at_ms, h.created_ms LIMIT 1)
                 UPDATE lacre_jobs AS j SET {SET} FROM next WHERE j.id = next.id
                 RETURNING j.*, set_config('synchronous_commit', 'off', true) AS unflushed"
            ),
            _ => format!(
                "UPDATE lacre_jobs SET {SET} WHERE id = (
                   WITH RECURSIVE {CLIENTS}, heads AS (
                     SELECT c AS client_id, (SELECT id FROM lacre_jobs
                         WHERE state = 'queued' AND client_id = c AND available_at_ms <= $1
                         ORDER BY available_at_ms, created_ms LIMIT 1) AS id
                       FROM clients WHERE c IS NOT NULL
                   )
                   SELECT q.id FROM heads q JOIN lacre_jobs j ON j.id = q.id
                   ORDER BY {FAIR}, j.available_at_ms, j.created_ms LIMIT 1) RETURNING *"
            ),
        };
        // The row is decoded once committed: a row that does not decode is
        // still claimed (its attempts count), as it would be on its own.
        let row = self
            .write(Scope::Statement, move |conn| {
                Box::pin(async move {
                    let row = sqlx::query(&sql)
                        .bind(now_ms)
                        .bind(now_ms.saturating_add(lease_ms))
                        .fetch_optional(conn)
                        .await
                        .map_err(unavailable)?;
                    let wake = row
                        .as_ref()
                        .and_then(|r| r.try_get::<String, _>("id").ok())
                        .map_or(Wake::Nobody, Wake::Job);
                    Ok(Wrote::kept(row, wake))
                })
            })
            .await?;
        let Some(row) = row else { return Ok(None) };
        let fence: i64 = row.try_get("fence").map_err(|_| corrupt("fence"))?;
        let job = job_from_row(&row, self.limits)?;
        Ok(Some(Claim {
            job,
            fence: u64::try_from(fence).unwrap_or(0),
        }))
    }

    async fn heartbeat(&self, beat: Heartbeat<'_>) -> Result<LeaseStatus, StoreError> {
        let has_progress = beat.progress.is_some();
        let (fraction, message) = match beat.progress {
            Some((f, m)) => (Some(f), m),
            None => (None, None),
        };
        let id = beat.id.to_owned();
        let (fence, lease_until_ms, now_ms) = (
            to_i64(beat.fence),
            beat.now_ms.saturating_add(beat.lease_ms),
            beat.now_ms,
        );
        let held = self
            .write(Scope::Statement, move |conn| {
                Box::pin(async move {
                    let held = sqlx::query(
                        "UPDATE lacre_jobs SET lease_until_ms = $3,
                            progress = CASE WHEN $4 = 1 THEN $5 ELSE progress END,
                            message = CASE WHEN $4 = 1 THEN $6 ELSE message END,
                            updated_ms = CASE WHEN $4 = 1 THEN $7 ELSE updated_ms END,
                            version = version + $4
                         WHERE id = $1 AND fence = $2 AND state = 'running'",
                    )
                    .bind(id.clone())
                    .bind(fence)
                    .bind(lease_until_ms)
                    .bind(i64::from(has_progress))
                    .bind(fraction)
                    .bind(message)
                    .bind(now_ms)
                    .execute(conn)
                    .await
                    .map_err(unavailable)?
                    .rows_affected()
                        == 1;
                    let wake = if held && has_progress {
                        Wake::Job(id)
                    } else {
                        Wake::Nobody
                    };
                    Ok(Wrote::kept(held, wake))
                })
            })
            .await?;
        if held {
            return Ok(LeaseStatus::Held);
        }
        Ok(match self.fetch_job(beat.id).await? {
            Some(job) if job.state == JobState::Cancelled => LeaseStatus::Cancelled,
            _ => LeaseStatus::Lost,
        })
    }

    async fn finish(&self, end: Finish<'_>) -> Result<bool, StoreError> {
        let (state, result, error) = match end.outcome {
            JobOutcome::Done(m) => (JobState::Done, Some(json_text(&m)), None),
            JobOutcome::Failed(e) => (JobState::Failed, None, Some(e)),
        };
        let ending = Ending {
            id: end.id.to_owned(),
            fence: to_i64(end.fence),
            state,
            result,
            error,
            now_ms: end.now_ms,
        };
        let bit = EventType::of_state(state).map_or(0, |e| EventMask::of(&[e]).bits());
        // A job whose client asked for no event of this end: one statement.
        let plain = {
            let ending = ending.clone();
            self.write(Scope::Statement, move |conn| {
                Box::pin(async move {
                    let sql = format!("{END} AND (events & $7) = 0");
                    let n = ending
                        .bound(&sql)
                        .bind(bit)
                        .execute(conn)
                        .await
                        .map_err(unavailable)?
                        .rows_affected();
                    let wake = if n == 1 {
                        Wake::Job(ending.id)
                    } else {
                        Wake::Nobody
                    };
                    Ok(Wrote::kept(n == 1, wake))
                })
            })
            .await?
        };
        if plain {
            return Ok(true);
        }
        // Otherwise the final state and its event, together (or a stale
        // fence, and nothing changes).
        self.write(Scope::Savepoint, move |conn| {
            Box::pin(async move {
                let sql = format!("{END} RETURNING client_id, request_id, events");
                let ended = ending
                    .bound(&sql)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                let Some(row) = ended else {
                    return Ok(Wrote::undone(false));
                };
                let (id, now_ms) = (ending.id, ending.now_ms);
                raise(conn, &Ended::of_row(&id, &row, state)?, now_ms).await?;
                Ok(Wrote::kept(true, Wake::Job(id)))
            })
        })
        .await
    }

    async fn cancel(
        &self,
        id: &str,
        client_id: &str,
        now_ms: i64,
    ) -> Result<Option<JobRecord>, StoreError> {
        let (job_id, client, limits) = (id.to_owned(), client_id.to_owned(), self.limits);
        let cancelled = self
            .write(Scope::Savepoint, move |conn| {
                Box::pin(async move {
                    let row = sqlx::query(
                        "UPDATE lacre_jobs SET state = 'cancelled', finished_ms = $3, updated_ms = $3, version = version + 1
                         WHERE id = $1 AND client_id = $2 AND state IN ('queued', 'running') RETURNING *",
                    )
                    .bind(job_id.clone())
                    .bind(client)
                    .bind(now_ms)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                    let Some(row) = row else {
                        return Ok(Wrote::undone(None));
                    };
                    let job = job_from_row(&row, limits)?;
                    raise(conn, &Ended::of_job(&job), now_ms).await?;
                    Ok(Wrote::kept(Some(job), Wake::Job(job_id)))
                })
            })
            .await?;
        if cancelled.is_some() {
            return Ok(cancelled);
        }
        // Not cancellable: finished (returned unchanged), or not this client's.
        Ok(self
            .fetch_job(id)
            .await?
            .filter(|j| j.client_id == client_id))
    }

    async fn rescue(&self, now_ms: i64, max_attempts: u32) -> Result<u64, StoreError> {
        // Two steps, so that the delay before the next claim is computed by
        // the one rule every store uses (`requeue_delay_ms`). Each update is
        // fenced: a job renewed or finished in between is left alone.
        let query = sqlx::query(
            "SELECT id, attempt, fence FROM lacre_jobs
             WHERE state = 'running' AND lease_until_ms < $1 LIMIT 1000",
        )
        .bind(now_ms);
        let expired = self.read_rows(query).await?;
        let mut touched = 0;
        for row in expired {
            let id: String = row.try_get("id").map_err(|_| corrupt("id"))?;
            let attempt: i64 = row.try_get("attempt").map_err(|_| corrupt("attempt"))?;
            let fence: i64 = row.try_get("fence").map_err(|_| corrupt("fence"))?;
            let attempt = u32::try_from(attempt).unwrap_or(u32::MAX);
            let (state, error, finished, available) = if attempt >= max_attempts {
                let error = format!("worker lost after {attempt} attempts");
                ("failed", Some(error), Some(now_ms), now_ms)
            } else {
                let delay = crate::jobs::requeue_delay_ms(attempt);
                ("queued", None, None, now_ms.saturating_add(delay))
            };
            // A job failed here raises its event in the same transaction.
            let mut tx = self.begin().await?;
            let row = sqlx::query(
                "UPDATE lacre_jobs SET state = $1, error = COALESCE($2, error),
                    finished_ms = $3, available_at_ms = $4,
                    updated_ms = $5, version = version + 1
                 WHERE id = $6 AND fence = $7 AND state = 'running' AND lease_until_ms < $5
                 RETURNING client_id, request_id, events",
            )
            .bind(state)
            .bind(error)
            .bind(finished)
            .bind(available)
            .bind(now_ms)
            .bind(&id)
            .bind(fence)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
            if let Some(row) = row {
                touched += 1;
                if let Some(state) = JobState::parse(state).filter(|s| s.is_terminal()) {
                    raise(&mut tx, &Ended::of_row(&id, &row, state)?, now_ms).await?;
                }
            }
            tx.commit().await.map_err(unavailable)?;
        }
        if touched > 0 {
            tracing::info!(jobs = touched, "rescued jobs whose lease expired");
            self.changed(Change::Many);
        }
        Ok(touched)
    }

    async fn prune(&self, prune: Prune) -> Result<PruneStats, StoreError> {
        let mut stats = PruneStats::default();
        let cutoff = prune.now_ms.saturating_sub(prune.retention_ms);
        // Records shared by every replica expire by the skew allowance later.
        let expired = prune.now_ms.saturating_sub(prune.replica_skew_ms.max(0));
        let batches: [(&str, i64, &mut u64); 4] = [
            (
                "DELETE FROM lacre_jobs WHERE id IN (
                   SELECT id FROM lacre_jobs WHERE finished_ms IS NOT NULL AND finished_ms <= $1 LIMIT $2)",
                cutoff,
                &mut stats.jobs,
            ),
            (
                "DELETE FROM lacre_idempotency WHERE (client_id, request_id) IN (
                   SELECT client_id, request_id FROM lacre_idempotency WHERE expires_at_ms <= $1 LIMIT $2)",
                expired,
                &mut stats.idempotency,
            ),
            (
                "DELETE FROM lacre_deliveries WHERE id IN (
                   SELECT id FROM lacre_deliveries WHERE state IN ('delivered', 'failed') AND updated_ms <= $1 LIMIT $2)",
                cutoff,
                &mut stats.deliveries,
            ),
            (
                "DELETE FROM lacre_nonces WHERE (client_id, nonce) IN (
                   SELECT client_id, nonce FROM lacre_nonces WHERE expires_at_ms < $1 LIMIT $2)",
                expired,
                &mut stats.nonces,
            ),
        ];
        for (sql, bound, count) in batches {
            loop {
                let n = sqlx::query(sql)
                    .bind(bound)
                    .bind(PRUNE_BATCH)
                    .execute(&mut *self.writer().await?)
                    .await
                    .map_err(unavailable)?
                    .rows_affected();
                *count += n;
                if n < PRUNE_BATCH as u64 {
                    break;
                }
            }
        }
        self.nonce_count.fetch_sub(
            usize::try_from(stats.nonces)
                .unwrap_or(0)
                .min(self.nonce_count.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        Ok(stats)
    }

    async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        let query = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM lacre_jobs GROUP BY state ORDER BY state",
        );
        let rows = self.read_rows(query).await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state").map_err(|_| corrupt("state"))?;
                let n: i64 = r.try_get("n").map_err(|_| corrupt("count"))?;
                let state = JobState::parse(&state).ok_or_else(|| corrupt("unknown job state"))?;
                Ok((state, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    fn watch_job(&self, id: &str) -> JobWatch {
        self.watchers.watch(id)
    }

    async fn status(&self, id: &str) -> Result<Option<JobStatus>, StoreError> {
        // Never the arguments; the result only once done.
        let row = sqlx::query(
            "SELECT id, client_id, state, progress, message, error, version,
                CASE WHEN state = 'done' THEN result END AS result
             FROM lacre_jobs WHERE id = $1",
        )
        .bind(id.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.map(|r| status_from_row(&r)).transpose()
    }

    async fn summaries(&self, which: Listing<'_, JobState>) -> Result<Vec<JobSummary>, StoreError> {
        let columns = "id, tool, state, created_ms, updated_ms, progress, message";
        let rows = self.newest_rows(columns, which).await?;
        Ok(rows
            .iter()
            .filter_map(|row| match summary_from_row(row) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a job row that does not decode");
                    None
                }
            })
            .collect())
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn work_signal(&self) -> Option<Arc<WorkSignal>> {
        Some(Arc::clone(&self.work))
    }
}

/// A job's final state, recorded only by the holder of its current claim.
const END: &str =
    "UPDATE lacre_jobs SET state = $3, result = $4, error = $5, finished_ms = $6, updated_ms = $6,
        progress = CASE WHEN $3 = 'done' THEN 1.0 ELSE progress END, version = version + 1
     WHERE id = $1 AND fence = $2 AND state = 'running'";

/// The parameters of [`END`].
#[derive(Clone)]
struct Ending {
    id: String,
    fence: i64,
    state: JobState,
    result: Option<String>,
    error: Option<String>,
    now_ms: i64,
}

impl Ending {
    /// `sql` (a form of [`END`]) with `$1` to `$6` bound.
    fn bound<'q>(
        &self,
        sql: &'q str,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        sqlx::query(sql)
            .bind(self.id.clone())
            .bind(self.fence)
            .bind(self.state.as_str())
            .bind(self.result.clone())
            .bind(self.error.clone())
            .bind(self.now_ms)
    }
}

impl SqlStore {
    /// Creates `job`, already claimed for the worker `reserved` if any.
    async fn create_job(
        &self,
        job: NewJob,
        reserved: Option<crate::jobs::Reserved>,
    ) -> Result<CreateOutcome, StoreError> {
        let kind = self.kind;
        let start = reserved
            .as_ref()
            .map(|r| job.now_ms.saturating_add(r.lease_ms()));
        // PostgreSQL: the common case (a free key, a client with room) in
        // one statement, without a transaction's round trips.
        if kind == StoreKind::Postgres {
            let first = job.clone();
            let row = self
                .write(Scope::Statement, move |conn| {
                    Box::pin(create_at_once(conn, first, start))
                })
                .await?;
            if let Some(row) = row {
                return Ok(CreateOutcome::Created(self.created(&row, reserved)?));
            }
        }
        let created = self
            .write(Scope::Statements, move |conn| {
                Box::pin(create_in(conn, job, kind, start))
            })
            .await?;
        Ok(match created {
            Created::New(row) => CreateOutcome::Created(self.created(&row, reserved)?),
            Created::Existing(row) => CreateOutcome::Existing(job_from_row(&row, self.limits)?),
            Created::Conflict => CreateOutcome::Conflict,
            Created::OverLimit(limit) => CreateOutcome::OverLimit(limit),
        })
    }

    /// A job just created, decoded; one created already claimed is handed
    /// to the worker `reserved` for it.
    fn created(
        &self,
        row: &sqlx::any::AnyRow,
        reserved: Option<crate::jobs::Reserved>,
    ) -> Result<JobRecord, StoreError> {
        let job = job_from_row(row, self.limits)?;
        if let Some(reserved) = reserved.filter(|_| job.state == JobState::Running) {
            let fence: i64 = row.try_get("fence").map_err(|_| corrupt("fence"))?;
            reserved.give(Claim {
                job: job.clone(),
                fence: u64::try_from(fence).unwrap_or(0),
            });
        }
        Ok(job)
    }
}

/// How a job is written: queued, or (`Some(lease_until_ms)`) already
/// claimed, as a claim would leave it: `running`, first attempt, first
/// fencing token.
fn initial(start: Option<i64>) -> (&'static str, i64, i64) {
    match start {
        Some(lease_until_ms) => ("running", 1, lease_until_ms),
        None => ("queued", 0, 0),
    }
}

/// What a create found, its rows decoded once committed.
enum Created {
    New(sqlx::any::AnyRow),
    Existing(sqlx::any::AnyRow),
    Conflict,
    OverLimit(crate::jobs::JobLimit),
}

/// Creates `job` unless its idempotency key is taken or its client's
/// limits are reached. It changes nothing unless it creates the job, so it
/// needs no savepoint of its own in a group: the client's load is checked
/// in the statement that takes the key, before anything is written.
async fn create_in(
    conn: &mut sqlx::AnyConnection,
    job: NewJob,
    kind: StoreKind,
    start: Option<i64>,
) -> Result<Wrote<Created>, StoreError> {
    let expires = job.now_ms.saturating_add(job.idempotency_ttl_ms);
    let new_bytes = to_i64(crate::jobs::args_bytes(&job.args));
    let taken = take_key(&take_key_sql(kind), &job)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?
        .rows_affected()
        == 1;
    if !taken {
        // A live record holds the key (a retry of a job already created is
        // answered, whatever its client's load), or the client is full.
        let held = sqlx::query(
            "SELECT request_hash, job_id FROM lacre_idempotency
             WHERE client_id = $1 AND request_id = $2 AND expires_at_ms > $3",
        )
        .bind(job.client_id.clone())
        .bind(job.request_id.clone())
        .bind(job.now_ms)
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)?;
        let Some(row) = held else {
            return Ok(Wrote::kept(
                Created::OverLimit(
                    full_limit(conn, &job, kind)
                        .await?
                        .unwrap_or(crate::jobs::JobLimit::Jobs),
                ),
                Wake::Nobody,
            ));
        };
        let hash: String = row
            .try_get("request_hash")
            .map_err(|_| corrupt("request_hash"))?;
        let job_id: String = row.try_get("job_id").map_err(|_| corrupt("job_id"))?;
        if hash != job.request_hash {
            return Ok(Wrote::kept(Created::Conflict, Wake::Nobody));
        }
        let existing = sqlx::query("SELECT * FROM lacre_jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?;
        if let Some(row) = existing {
            return Ok(Wrote::kept(Created::Existing(row), Wake::Nobody));
        }
        // The record outlived its job (pruned): point it at the new one,
        // once the client's limits allow a new job.
        if let Some(limit) = full_limit(conn, &job, kind).await? {
            return Ok(Wrote::kept(Created::OverLimit(limit), Wake::Nobody));
        }
        sqlx::query(
            "UPDATE lacre_idempotency SET job_id = $3, expires_at_ms = $4 WHERE client_id = $1 AND request_id = $2",
        )
        .bind(job.client_id.clone())
        .bind(job.request_id.clone())
        .bind(job.id.clone())
        .bind(expires)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    }
    let (state, claims, lease_until_ms) = initial(start);
    let row = sqlx::query(
        "INSERT INTO lacre_jobs (id, client_id, request_id, tool, args, state, available_at_ms, created_ms, updated_ms, events, args_bytes, attempt, fence, lease_until_ms)
         VALUES ($1, $2, $3, $4, $5, $9, $6, $6, $6, $7, $8, $10, $10, $11)
         RETURNING *",
    )
    .bind(job.id.clone())
    .bind(job.client_id.clone())
    .bind(job.request_id.clone())
    .bind(job.tool.clone())
    .bind(json_text(&job.args))
    .bind(job.now_ms)
    .bind(job.events.bits())
    .bind(new_bytes)
    .bind(state)
    .bind(claims)
    .bind(lease_until_ms)
    .fetch_one(&mut *conn)
    .await
    .map_err(unavailable)?;
    // A job written claimed goes to its worker; nobody else is woken.
    let wake = if start.is_some() {
        Wake::Nobody
    } else {
        Wake::New
    };
    Ok(Wrote::kept(Created::New(row), wake))
}

/// Takes the `(client_id, request_id)` key of a job while its client has
/// room for it; an expired record is taken over. It binds `$1` to `$9`
/// ([`take_key`]).
fn take_key_sql(kind: StoreKind) -> String {
    format!(
        "INSERT INTO lacre_idempotency (client_id, request_id, request_hash, job_id, expires_at_ms)
         SELECT $1, $2, $3, $4, $5
         WHERE (SELECT jobs < $7 AND bytes + $8 <= $9 FROM ({}) AS load)
         ON CONFLICT (client_id, request_id) DO UPDATE
           SET request_hash = excluded.request_hash, job_id = excluded.job_id, expires_at_ms = excluded.expires_at_ms
           WHERE lacre_idempotency.expires_at_ms <= $6",
        load(kind, "$1")
    )
}

/// `sql` (which starts with [`take_key_sql`]) with the key's parameters
/// bound for `job`.
fn take_key<'q>(
    sql: &'q str,
    job: &NewJob,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(sql)
        .bind(job.client_id.clone())
        .bind(job.request_id.clone())
        .bind(job.request_hash.clone())
        .bind(job.id.clone())
        .bind(job.now_ms.saturating_add(job.idempotency_ttl_ms))
        .bind(job.now_ms)
        .bind(to_i64(job.max_jobs))
        .bind(to_i64(crate::jobs::args_bytes(&job.args)))
        .bind(to_i64(job.max_job_bytes))
}

/// On PostgreSQL, creates `job` in one statement when its key is free (or
/// expired) and its client has room: the key's insert feeds the job's
/// (a data-modifying `WITH`), so either both rows are written or neither.
/// `None` when it wrote nothing: [`create_in`] then finds out why.
async fn create_at_once(
    conn: &mut sqlx::AnyConnection,
    job: NewJob,
    start: Option<i64>,
) -> Result<Wrote<Option<sqlx::any::AnyRow>>, StoreError> {
    let sql = format!(
        "WITH taken AS ({} RETURNING job_id)
         INSERT INTO lacre_jobs (id, client_id, request_id, tool, args, state, available_at_ms, created_ms, updated_ms, events, args_bytes, attempt, fence, lease_until_ms)
         SELECT taken.job_id, $1, $2, $10, $11, $13, $6, $6, $6, $12, $8, $14, $14, $15 FROM taken
         RETURNING *",
        take_key_sql(StoreKind::Postgres)
    );
    let (state, claims, lease_until_ms) = initial(start);
    let row = take_key(&sql, &job)
        .bind(job.tool.clone())
        .bind(json_text(&job.args))
        .bind(job.events.bits())
        .bind(state)
        .bind(claims)
        .bind(lease_until_ms)
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)?;
    // A job written claimed goes to its worker; nobody else is woken.
    let wake = if row.is_some() && start.is_none() {
        Wake::New
    } else {
        Wake::Nobody
    };
    Ok(Wrote::kept(row, wake))
}

/// A query of one row, `jobs` and `bytes`: the load of the client that
/// `param` names (its queued and running jobs, their arguments' bytes).
/// SQLite keeps it in a row of `lacre_client_load`; PostgreSQL counts it.
fn load(kind: StoreKind, param: &str) -> String {
    match kind {
        StoreKind::Sqlite => format!(
            "SELECT COALESCE(MAX(jobs), 0) AS jobs, COALESCE(MAX(bytes), 0) AS bytes
             FROM lacre_client_load WHERE client_id = {param}"
        ),
        _ => format!(
            "SELECT COUNT(*) AS jobs, CAST(COALESCE(SUM(args_bytes), 0) AS BIGINT) AS bytes
             FROM lacre_jobs WHERE client_id = {param} AND state IN ('queued', 'running')"
        ),
    }
}

/// Which of the client's limits `job` would pass, if any: its count of
/// queued and running jobs, else their arguments' bytes.
async fn full_limit(
    conn: &mut sqlx::AnyConnection,
    job: &NewJob,
    kind: StoreKind,
) -> Result<Option<crate::jobs::JobLimit>, StoreError> {
    let load = sqlx::query(&format!(
        "SELECT jobs, bytes FROM ({}) AS load",
        load(kind, "$1")
    ))
    .bind(job.client_id.clone())
    .fetch_one(conn)
    .await
    .map_err(unavailable)?;
    let count: i64 = load.try_get("jobs").map_err(|_| corrupt("job count"))?;
    let bytes: i64 = load.try_get("bytes").map_err(|_| corrupt("job bytes"))?;
    let new_bytes = crate::jobs::args_bytes(&job.args);
    let jobs_full = u64::try_from(count).unwrap_or(0) >= job.max_jobs;
    let bytes_full =
        u64::try_from(bytes).unwrap_or(0).saturating_add(new_bytes) > job.max_job_bytes;
    Ok(if jobs_full {
        Some(crate::jobs::JobLimit::Jobs)
    } else if bytes_full {
        Some(crate::jobs::JobLimit::Bytes)
    } else {
        None
    })
}
