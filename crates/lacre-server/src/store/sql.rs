//! The SQL store, for SQLite and PostgreSQL through one code path
//! (`sqlx::Any`); the two differ only where noted: how a job is claimed
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL, a single writer on SQLite), how
//! a write transaction starts (`BEGIN IMMEDIATE` on SQLite), and wake-ups
//! across replicas (`LISTEN/NOTIFY` on PostgreSQL).
//!
//! Jobs follow the lease pattern of mature PostgreSQL queues: a claim sets
//! `state = 'running'`, a lease expiry, and increments the job's fencing
//! token; heartbeats renew the lease; only the holder of the current token
//! can record the outcome; a rescuer re-queues jobs whose lease expired.
//! Execution is therefore at-least-once and the recorded result exactly once.

use super::StoreKind;
use crate::error::{Cause, StoreError};
use crate::jobs::{
    Claim, CreateOutcome, JobOutcome, JobRecord, JobState, JobStore, LeaseStatus, NewJob,
    PruneStats,
};
use crate::nonce::NonceBackend;
use lacre_proto::{Map, NonceError, ParseLimits, Value};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// The schema, in statements valid on both SQLite and PostgreSQL.
const MIGRATIONS: &[&[&str]] = &[&[
    "CREATE TABLE IF NOT EXISTS lacre_jobs (
        id TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        request_id TEXT NOT NULL,
        tool TEXT NOT NULL,
        args TEXT NOT NULL,
        state TEXT NOT NULL,
        progress DOUBLE PRECISION,
        message TEXT,
        result TEXT,
        error TEXT,
        attempt BIGINT NOT NULL DEFAULT 0,
        fence BIGINT NOT NULL DEFAULT 0,
        lease_until_ms BIGINT NOT NULL DEFAULT 0,
        available_at_ms BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        finished_ms BIGINT,
        version BIGINT NOT NULL DEFAULT 1
    )",
    "CREATE INDEX IF NOT EXISTS lacre_jobs_queue ON lacre_jobs (state, available_at_ms, created_ms)",
    "CREATE INDEX IF NOT EXISTS lacre_jobs_client ON lacre_jobs (client_id, created_ms)",
    "CREATE INDEX IF NOT EXISTS lacre_jobs_finished ON lacre_jobs (finished_ms)",
    "CREATE TABLE IF NOT EXISTS lacre_idempotency (
        client_id TEXT NOT NULL,
        request_id TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        job_id TEXT NOT NULL,
        expires_at_ms BIGINT NOT NULL,
        PRIMARY KEY (client_id, request_id)
    )",
    "CREATE INDEX IF NOT EXISTS lacre_idempotency_expiry ON lacre_idempotency (expires_at_ms)",
    "CREATE TABLE IF NOT EXISTS lacre_nonces (
        client_id TEXT NOT NULL,
        nonce TEXT NOT NULL,
        expires_at_ms BIGINT NOT NULL,
        PRIMARY KEY (client_id, nonce)
    ) {without_rowid}",
    "CREATE INDEX IF NOT EXISTS lacre_nonces_expiry ON lacre_nonces (expires_at_ms)",
]];

/// Rows deleted per statement when pruning, so no statement holds locks long.
const PRUNE_BATCH: i64 = 1000;

/// The PostgreSQL notification channel (payload-less).
const CHANNEL: &str = "lacre_jobs";

/// A SQLite or PostgreSQL store for jobs, idempotency records and nonces.
pub struct SqlStore {
    pool: AnyPool,
    kind: StoreKind,
    changes: watch::Sender<u64>,
    /// Wakes the task that sends `NOTIFY` (PostgreSQL only).
    notifier: Option<Arc<Notify>>,
    /// The notification channel: one per schema, so that replicas in
    /// different schemas do not wake each other.
    channel: String,
    nonce_count: AtomicUsize,
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(Cause::new(e))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

/// Splits our own `schema=NAME` parameter off a PostgreSQL URL (each test,
/// or each tenant, can live in its own schema).
fn split_schema(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("schema=") {
            Some(s) => {
                schema = Some(s.to_owned());
                false
            }
            None => true,
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, schema)
}

fn valid_schema_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl SqlStore {
    /// Connects, applies the schema, and (PostgreSQL) starts listening for
    /// other replicas' changes.
    pub async fn connect(url: &str) -> Result<Arc<SqlStore>, StoreError> {
        sqlx::any::install_default_drivers();
        let kind = super::StoreKind::of(url)
            .ok_or_else(|| StoreError::UnsupportedUrl(super::redact(url)))?;
        let (url, schema) = split_schema(url);
        if let Some(s) = &schema {
            if !valid_schema_name(s) {
                return Err(StoreError::InvalidUrl(format!("invalid schema name {s:?}")));
            }
        }
        let url = match kind {
            // Create the database file if missing.
            StoreKind::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
            }
            _ => url,
        };
        let search_path = schema.clone();
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(3));
        options = match kind {
            StoreKind::Sqlite => options.max_connections(4).after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers run beside the one writer; NORMAL
                    // sync is durable across process crashes in WAL mode.
                    // Small pages (for a new database; set before WAL):
                    // nonces land on random leaves, and each commit writes
                    // every page it touched, so 1 KiB pages write a quarter
                    // of what 4 KiB pages do (+8% req/s, half the p99, in
                    // bench/compare.sh).
                    for pragma in [
                        "PRAGMA page_size=1024",
                        "PRAGMA journal_mode=WAL",
                        "PRAGMA synchronous=NORMAL",
                        "PRAGMA busy_timeout=5000",
                    ] {
                        sqlx::Executor::execute(&mut *conn, pragma).await?;
                    }
                    Ok(())
                })
            }),
            _ => options.max_connections(16).after_connect(move |conn, _| {
                let search_path = search_path.clone();
                Box::pin(async move {
                    if let Some(s) = search_path {
                        let set = format!("SET search_path TO \"{s}\"");
                        sqlx::Executor::execute(&mut *conn, set.as_str()).await?;
                    }
                    Ok(())
                })
            }),
        };
        let pool = options.connect(&url).await.map_err(unavailable)?;
        if let (StoreKind::Postgres, Some(s)) = (kind, &schema) {
            sqlx::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS \"{s}\""))
                .execute(&pool)
                .await
                .map_err(unavailable)?;
        }
        let notifier = (kind == StoreKind::Postgres).then(|| Arc::new(Notify::new()));
        let channel = match &schema {
            Some(s) => format!("{CHANNEL}_{s}"),
            None => CHANNEL.to_owned(),
        };
        let store = Arc::new(SqlStore {
            pool,
            kind,
            changes: watch::channel(0).0,
            notifier,
            channel,
            nonce_count: AtomicUsize::new(0),
        });
        store.migrate().await?;
        if kind == StoreKind::Postgres {
            let listening = store.spawn_pg_tasks(url);
            // Return once LISTEN is in place, so no change made after this
            // store is opened can be missed (the slow fallback poll would
            // still catch it, late).
            if tokio::time::timeout(Duration::from_secs(5), listening)
                .await
                .is_err()
            {
                tracing::warn!("postgres LISTEN not ready after 5 s; relying on the fallback poll");
            }
        }
        Ok(store)
    }

    /// The kind of database.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        if self.kind == StoreKind::Postgres {
            // Replicas starting together must not race on CREATE TABLE.
            sqlx::raw_sql("SELECT pg_advisory_lock(735806)")
                .execute(&mut *conn)
                .await
                .map_err(unavailable)?;
        }
        let result = async {
            sqlx::raw_sql("CREATE TABLE IF NOT EXISTS lacre_schema (version BIGINT NOT NULL)")
                .execute(&mut *conn)
                .await?;
            let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM lacre_schema")
                .fetch_one(&mut *conn)
                .await?;
            let current = current.unwrap_or(0);
            for (i, statements) in MIGRATIONS.iter().enumerate() {
                let version = i as i64 + 1;
                if version <= current {
                    continue;
                }
                for statement in *statements {
                    // SQLite stores a table keyed by its primary key alone
                    // more compactly (one B-tree instead of two).
                    let without_rowid = if self.kind == StoreKind::Sqlite {
                        "WITHOUT ROWID"
                    } else {
                        ""
                    };
                    let statement = statement.replace("{without_rowid}", without_rowid);
                    sqlx::raw_sql(&statement).execute(&mut *conn).await?;
                }
                sqlx::query("INSERT INTO lacre_schema (version) VALUES ($1)")
                    .bind(version)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok::<(), sqlx::Error>(())
        }
        .await;
        if self.kind == StoreKind::Postgres {
            let _ = sqlx::raw_sql("SELECT pg_advisory_unlock(735806)")
                .execute(&mut *conn)
                .await;
        }
        result.map_err(unavailable)
    }

    /// Starts the listener (other replicas' changes wake this one's long
    /// polls and workers) and the notifier (this one's changes wake theirs).
    fn spawn_pg_tasks(self: &Arc<Self>, url: String) -> tokio::sync::oneshot::Receiver<()> {
        let weak = Arc::downgrade(self);
        let channel = self.channel.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let listener = async {
                    let mut l = sqlx::postgres::PgListener::connect(&url).await?;
                    l.listen(&channel).await?;
                    Ok::<_, sqlx::Error>(l)
                }
                .await;
                match listener {
                    Ok(mut l) => {
                        backoff = Duration::from_millis(100);
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                        while let Ok(_n) = l.recv().await {
                            let Some(store) = weak.upgrade() else { return };
                            store.changes.send_modify(|v| *v = v.wrapping_add(1));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "postgres LISTEN failed; retrying"),
                }
                if weak.strong_count() == 0 {
                    return;
                }
                // A lost connection may have missed notifications: wake everyone.
                if let Some(store) = weak.upgrade() {
                    store.changes.send_modify(|v| *v = v.wrapping_add(1));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
        let Some(notify) = self.notifier.clone() else {
            return ready_rx;
        };
        let weak = Arc::downgrade(self);
        let channel = self.channel.clone();
        tokio::spawn(async move {
            loop {
                // Many changes while a NOTIFY is in flight collapse into one
                // (a `Notify` keeps at most one permit): debounced, payload-less.
                notify.notified().await;
                let Some(store) = weak.upgrade() else { return };
                if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(channel.clone())
                    .execute(&store.pool)
                    .await
                {
                    tracing::debug!(error = %e, "NOTIFY failed");
                }
            }
        });
        ready_rx
    }

    /// Marks a change: wakes local waiters and, on PostgreSQL, the other replicas.
    fn changed(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
        if let Some(n) = &self.notifier {
            n.notify_one();
        }
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        match self.kind {
            // Take the write lock up front: a deferred transaction that
            // reads and then writes can fail with SQLITE_BUSY mid-way.
            StoreKind::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            _ => self.pool.begin().await,
        }
        .map_err(unavailable)
    }

    /// Jobs, newest first, optionally of one client and in one state.
    async fn newest_first(
        &self,
        client_id: Option<&str>,
        state: Option<JobState>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let mut sql = String::from("SELECT * FROM lacre_jobs WHERE 1 = 1");
        let mut n = 0;
        let mut param = |sql: &mut String, column: &str| {
            n += 1;
            sql.push_str(&format!(" AND {column} = ${n}"));
        };
        if client_id.is_some() {
            param(&mut sql, "client_id");
        }
        if state.is_some() {
            param(&mut sql, "state");
        }
        sql.push_str(&format!(
            " ORDER BY created_ms DESC, id DESC LIMIT ${}",
            n + 1
        ));
        let mut q = sqlx::query(&sql);
        if let Some(c) = client_id {
            q = q.bind(c.to_owned());
        }
        if let Some(s) = state {
            q = q.bind(s.as_str().to_owned());
        }
        let rows = q
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn fetch_job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM lacre_jobs WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| job_from_row(&r)).transpose()
    }
}

fn json_text(map: &Map) -> String {
    String::from_utf8_lossy(&lacre_proto::canonical(&Value::Object(map.clone()))).into_owned()
}

fn parse_map(text: &str) -> Result<Map, StoreError> {
    match lacre_proto::parse(text.as_bytes(), ParseLimits::default()) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(corrupt("stored json is not an object")),
    }
}

fn job_from_row(row: &AnyRow) -> Result<JobRecord, StoreError> {
    let get_s = |c: &str| {
        row.try_get::<String, _>(c)
            .map_err(|e| StoreError::Corrupt(format!("{c}: {e}")))
    };
    let get_i = |c: &str| {
        row.try_get::<i64, _>(c)
            .map_err(|e| StoreError::Corrupt(format!("{c}: {e}")))
    };
    let opt_s = |c: &str| {
        row.try_get::<Option<String>, _>(c)
            .map_err(|e| StoreError::Corrupt(format!("{c}: {e}")))
    };
    let state_text = get_s("state")?;
    let state = JobState::parse(&state_text).ok_or_else(|| corrupt("unknown job state"))?;
    Ok(JobRecord {
        id: get_s("id")?,
        client_id: get_s("client_id")?,
        request_id: get_s("request_id")?,
        tool: get_s("tool")?,
        args: parse_map(&get_s("args")?)?,
        state,
        progress: row
            .try_get::<Option<f64>, _>("progress")
            .map_err(|e| StoreError::Corrupt(format!("progress: {e}")))?,
        message: opt_s("message")?,
        result: opt_s("result")?.map(|t| parse_map(&t)).transpose()?,
        error: opt_s("error")?,
        attempt: u32::try_from(get_i("attempt")?).unwrap_or(u32::MAX),
        created_ms: get_i("created_ms")?,
        updated_ms: get_i("updated_ms")?,
        finished_ms: row
            .try_get::<Option<i64>, _>("finished_ms")
            .map_err(|e| StoreError::Corrupt(format!("finished_ms: {e}")))?,
        version: u64::try_from(get_i("version")?).unwrap_or(0),
    })
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl JobStore for SqlStore {
    async fn create(&self, job: NewJob) -> Result<CreateOutcome, StoreError> {
        let mut tx = self.begin().await?;
        let expires = job.now_ms.saturating_add(job.idempotency_ttl_ms);
        // Take the (client_id, request_id) key, or learn who holds it. An
        // expired record is taken over.
        let taken = sqlx::query(
            "INSERT INTO lacre_idempotency (client_id, request_id, request_hash, job_id, expires_at_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (client_id, request_id) DO UPDATE
               SET request_hash = excluded.request_hash, job_id = excluded.job_id, expires_at_ms = excluded.expires_at_ms
               WHERE lacre_idempotency.expires_at_ms <= $6",
        )
        .bind(job.client_id.clone())
        .bind(job.request_id.clone())
        .bind(job.request_hash.clone())
        .bind(job.id.clone())
        .bind(expires)
        .bind(job.now_ms)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected()
            == 1;
        if !taken {
            let row = sqlx::query(
                "SELECT request_hash, job_id FROM lacre_idempotency WHERE client_id = $1 AND request_id = $2",
            )
            .bind(job.client_id.clone())
            .bind(job.request_id.clone())
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
            let hash: String = row
                .try_get("request_hash")
                .map_err(|_| corrupt("request_hash"))?;
            let job_id: String = row.try_get("job_id").map_err(|_| corrupt("job_id"))?;
            if hash != job.request_hash {
                tx.rollback().await.map_err(unavailable)?;
                return Ok(CreateOutcome::Conflict);
            }
            let existing = sqlx::query("SELECT * FROM lacre_jobs WHERE id = $1")
                .bind(job_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
            if let Some(row) = existing {
                tx.rollback().await.map_err(unavailable)?;
                return Ok(CreateOutcome::Existing(job_from_row(&row)?));
            }
            // The record outlived its job (pruned): point it at the new one.
            sqlx::query(
                "UPDATE lacre_idempotency SET job_id = $3, expires_at_ms = $4 WHERE client_id = $1 AND request_id = $2",
            )
            .bind(job.client_id.clone())
            .bind(job.request_id.clone())
            .bind(job.id.clone())
            .bind(expires)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        let row = sqlx::query(
            "INSERT INTO lacre_jobs (id, client_id, request_id, tool, args, state, available_at_ms, created_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $6, $6) RETURNING *",
        )
        .bind(job.id.clone())
        .bind(job.client_id.clone())
        .bind(job.request_id.clone())
        .bind(job.tool.clone())
        .bind(json_text(&job.args))
        .bind(job.now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        let record = job_from_row(&row)?;
        tx.commit().await.map_err(unavailable)?;
        self.changed();
        Ok(CreateOutcome::Created(record))
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.fetch_job(id).await
    }

    async fn list(
        &self,
        client_id: &str,
        state: Option<JobState>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        self.newest_first(Some(client_id), state, limit).await
    }

    async fn claim(&self, now_ms: i64, lease_ms: i64) -> Result<Option<Claim>, StoreError> {
        const SET: &str = "state = 'running', attempt = attempt + 1, fence = fence + 1,
             lease_until_ms = $2, updated_ms = $1, version = version + 1";
        let sql = match self.kind {
            StoreKind::Postgres => format!(
                "WITH next AS (
                   SELECT id FROM lacre_jobs WHERE state = 'queued' AND available_at_ms <= $1
                   ORDER BY available_at_ms, created_ms LIMIT 1 FOR UPDATE SKIP LOCKED)
                 UPDATE lacre_jobs AS j SET {SET} FROM next WHERE j.id = next.id RETURNING j.*"
            ),
            _ => format!(
                "UPDATE lacre_jobs SET {SET} WHERE id = (
                   SELECT id FROM lacre_jobs WHERE state = 'queued' AND available_at_ms <= $1
                   ORDER BY available_at_ms, created_ms LIMIT 1) RETURNING *"
            ),
        };
        let mut tx = self.begin().await?;
        let row = sqlx::query(&sql)
            .bind(now_ms)
            .bind(now_ms.saturating_add(lease_ms))
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        let Some(row) = row else { return Ok(None) };
        let fence: i64 = row.try_get("fence").map_err(|_| corrupt("fence"))?;
        let job = job_from_row(&row)?;
        self.changed();
        Ok(Some(Claim {
            job,
            fence: u64::try_from(fence).unwrap_or(0),
        }))
    }

    async fn heartbeat(
        &self,
        id: &str,
        fence: u64,
        now_ms: i64,
        lease_ms: i64,
        progress: Option<(f64, Option<String>)>,
    ) -> Result<LeaseStatus, StoreError> {
        let has_progress = progress.is_some();
        let (fraction, message) = match progress {
            Some((f, m)) => (Some(f), m),
            None => (None, None),
        };
        let updated = sqlx::query(
            "UPDATE lacre_jobs SET lease_until_ms = $3,
                progress = CASE WHEN $4 = 1 THEN $5 ELSE progress END,
                message = CASE WHEN $4 = 1 THEN $6 ELSE message END,
                updated_ms = CASE WHEN $4 = 1 THEN $7 ELSE updated_ms END,
                version = version + $4
             WHERE id = $1 AND fence = $2 AND state = 'running'",
        )
        .bind(id.to_owned())
        .bind(to_i64(fence))
        .bind(now_ms.saturating_add(lease_ms))
        .bind(i64::from(has_progress))
        .bind(fraction)
        .bind(message)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?
        .rows_affected();
        if updated == 1 {
            if has_progress {
                self.changed();
            }
            return Ok(LeaseStatus::Held);
        }
        Ok(match self.fetch_job(id).await? {
            Some(job) if job.state == JobState::Cancelled => LeaseStatus::Cancelled,
            _ => LeaseStatus::Lost,
        })
    }

    async fn finish(
        &self,
        id: &str,
        fence: u64,
        outcome: JobOutcome,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (state, result, error) = match outcome {
            JobOutcome::Done(m) => ("done", Some(json_text(&m)), None),
            JobOutcome::Failed(e) => ("failed", None, Some(e)),
        };
        let updated = sqlx::query(
            "UPDATE lacre_jobs SET state = $3, result = $4, error = $5, finished_ms = $6, updated_ms = $6,
                progress = CASE WHEN $3 = 'done' THEN 1.0 ELSE progress END, version = version + 1
             WHERE id = $1 AND fence = $2 AND state = 'running'",
        )
        .bind(id.to_owned())
        .bind(to_i64(fence))
        .bind(state.to_owned())
        .bind(result)
        .bind(error)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?
        .rows_affected();
        if updated == 1 {
            self.changed();
        }
        Ok(updated == 1)
    }

    async fn cancel(
        &self,
        id: &str,
        client_id: &str,
        now_ms: i64,
    ) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query(
            "UPDATE lacre_jobs SET state = 'cancelled', finished_ms = $3, updated_ms = $3, version = version + 1
             WHERE id = $1 AND client_id = $2 AND state IN ('queued', 'running') RETURNING *",
        )
        .bind(id.to_owned())
        .bind(client_id.to_owned())
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        if let Some(row) = row {
            self.changed();
            return job_from_row(&row).map(Some);
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
        let expired = sqlx::query(
            "SELECT id, attempt, fence FROM lacre_jobs
             WHERE state = 'running' AND lease_until_ms < $1 LIMIT 1000",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
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
            touched += sqlx::query(
                "UPDATE lacre_jobs SET state = $1, error = COALESCE($2, error),
                    finished_ms = $3, available_at_ms = $4,
                    updated_ms = $5, version = version + 1
                 WHERE id = $6 AND fence = $7 AND state = 'running' AND lease_until_ms < $5",
            )
            .bind(state)
            .bind(error)
            .bind(finished)
            .bind(available)
            .bind(now_ms)
            .bind(&id)
            .bind(fence)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?
            .rows_affected();
        }
        if touched > 0 {
            tracing::info!(jobs = touched, "rescued jobs whose lease expired");
            self.changed();
        }
        Ok(touched)
    }

    async fn prune(&self, now_ms: i64, retention_ms: i64) -> Result<PruneStats, StoreError> {
        let mut stats = PruneStats::default();
        let cutoff = now_ms.saturating_sub(retention_ms);
        let batches: [(&str, i64, &mut u64); 3] = [
            (
                "DELETE FROM lacre_jobs WHERE id IN (
                   SELECT id FROM lacre_jobs WHERE finished_ms IS NOT NULL AND finished_ms <= $1 LIMIT $2)",
                cutoff,
                &mut stats.jobs,
            ),
            (
                "DELETE FROM lacre_idempotency WHERE (client_id, request_id) IN (
                   SELECT client_id, request_id FROM lacre_idempotency WHERE expires_at_ms <= $1 LIMIT $2)",
                now_ms,
                &mut stats.idempotency,
            ),
            (
                "DELETE FROM lacre_nonces WHERE (client_id, nonce) IN (
                   SELECT client_id, nonce FROM lacre_nonces WHERE expires_at_ms < $1 LIMIT $2)",
                now_ms,
                &mut stats.nonces,
            ),
        ];
        for (sql, bound, count) in batches {
            loop {
                let n = sqlx::query(sql)
                    .bind(bound)
                    .bind(PRUNE_BATCH)
                    .execute(&self.pool)
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

    async fn list_all(
        &self,
        state: Option<JobState>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        self.newest_first(None, state, limit).await
    }

    async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM lacre_jobs GROUP BY state ORDER BY state",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state").map_err(|_| corrupt("state"))?;
                let n: i64 = r.try_get("n").map_err(|_| corrupt("count"))?;
                let state = JobState::parse(&state).ok_or_else(|| corrupt("unknown job state"))?;
                Ok((state, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[async_trait::async_trait]
impl NonceBackend for SqlStore {
    async fn check_and_record(
        &self,
        client_id: &str,
        nonce: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), NonceError> {
        // Insert if absent; an expired record may be reused. One statement,
        // atomic on every replica.
        let inserted = sqlx::query(
            "INSERT INTO lacre_nonces (client_id, nonce, expires_at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (client_id, nonce) DO UPDATE SET expires_at_ms = excluded.expires_at_ms
               WHERE lacre_nonces.expires_at_ms < $4",
        )
        .bind(client_id.to_owned())
        .bind(nonce.to_owned())
        .bind(expires_at_ms)
        .bind(now_ms)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_parameter_is_split_off() {
        assert_eq!(
            split_schema("postgres://h/db?schema=t1&sslmode=disable"),
            (
                "postgres://h/db?sslmode=disable".to_owned(),
                Some("t1".to_owned())
            )
        );
        assert_eq!(
            split_schema("postgres://h/db?schema=t1"),
            ("postgres://h/db".to_owned(), Some("t1".to_owned()))
        );
        assert_eq!(
            split_schema("postgres://h/db"),
            ("postgres://h/db".to_owned(), None)
        );
        assert!(!valid_schema_name("a\"; DROP"));
    }
}
