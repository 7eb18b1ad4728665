//! The schema of the SQL store, as migrations: one list of statements a
//! version, each version applied once, all or nothing.

use super::{unavailable, SqlStore};
use crate::error::StoreError;
use crate::store::StoreKind;

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
], &[
    // Webhooks (SPEC §9.6): the events a job's client is told of, and the
    // outbox its final state writes in the same transaction.
    "ALTER TABLE lacre_jobs ADD COLUMN events BIGINT NOT NULL DEFAULT 0",
    "CREATE TABLE IF NOT EXISTS lacre_deliveries (
        id TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        job_id TEXT NOT NULL,
        request_id TEXT NOT NULL,
        event TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        fence BIGINT NOT NULL DEFAULT 0,
        next_at_ms BIGINT NOT NULL,
        lease_until_ms BIGINT NOT NULL DEFAULT 0,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        last_status BIGINT,
        last_error TEXT,
        delivered_ms BIGINT
    )",
    "CREATE INDEX IF NOT EXISTS lacre_deliveries_due ON lacre_deliveries (state, next_at_ms)",
    "CREATE INDEX IF NOT EXISTS lacre_deliveries_client ON lacre_deliveries (client_id, created_ms)",
    "CREATE TABLE IF NOT EXISTS lacre_disabled_endpoints (
        client_id TEXT PRIMARY KEY,
        disabled_ms BIGINT NOT NULL,
        reason TEXT NOT NULL
    )",
], &[
    // The audit log (SPEC §10.7): one hash chain per server process.
    "CREATE TABLE IF NOT EXISTS lacre_audit (
        chain TEXT NOT NULL,
        seq BIGINT NOT NULL,
        at_ms BIGINT NOT NULL,
        client_id TEXT NOT NULL,
        tool TEXT NOT NULL,
        request_id TEXT NOT NULL,
        request TEXT NOT NULL,
        reply TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (chain, seq)
    )",
    "CREATE INDEX IF NOT EXISTS lacre_audit_time ON lacre_audit (at_ms)",
    "CREATE INDEX IF NOT EXISTS lacre_audit_client ON lacre_audit (client_id, at_ms)",
], &[
    // Costs that stay flat as jobs accumulate: a client's load (jobs
    // queued and running, their arguments' bytes) is read from an index
    // instead of its every job's row, and a claim picks the client from
    // an index of the queue instead of counting per queued job.
    "ALTER TABLE lacre_jobs ADD COLUMN args_bytes BIGINT",
    "UPDATE lacre_jobs SET args_bytes = LENGTH(args)",
    "CREATE INDEX IF NOT EXISTS lacre_jobs_load ON lacre_jobs (client_id, state, args_bytes)",
    "CREATE INDEX IF NOT EXISTS lacre_jobs_due ON lacre_jobs (state, client_id, available_at_ms, created_ms)",
], &[
    // SQLite: each client's load (its queued and running jobs, their
    // arguments' bytes) kept in a row of its own by triggers, so that a new
    // job reads one row instead of counting its client's every queued job
    // (a cost that grew with the queue: 37 % of a job's time with a few
    // thousand queued). Not on PostgreSQL, where replicas would queue on
    // the one row a client's every job changes; it counts from the index.
    "-- sqlite only
    CREATE TABLE IF NOT EXISTS lacre_client_load (
        client_id TEXT PRIMARY KEY,
        jobs BIGINT NOT NULL,
        bytes BIGINT NOT NULL
    ) WITHOUT ROWID",
    "-- sqlite only
    INSERT INTO lacre_client_load (client_id, jobs, bytes)
        SELECT client_id, COUNT(*), COALESCE(SUM(args_bytes), 0) FROM lacre_jobs
        WHERE state IN ('queued', 'running') GROUP BY client_id",
    "-- sqlite only
    CREATE TRIGGER IF NOT EXISTS lacre_load_insert AFTER INSERT ON lacre_jobs
    WHEN NEW.state IN ('queued', 'running')
    BEGIN
        INSERT INTO lacre_client_load (client_id, jobs, bytes)
            VALUES (NEW.client_id, 1, COALESCE(NEW.args_bytes, 0))
            ON CONFLICT (client_id) DO UPDATE
            SET jobs = jobs + excluded.jobs, bytes = bytes + excluded.bytes;
    END",
    "-- sqlite only
    CREATE TRIGGER IF NOT EXISTS lacre_load_update AFTER UPDATE OF state ON lacre_jobs
    WHEN (OLD.state IN ('queued', 'running')) <> (NEW.state IN ('queued', 'running'))
    BEGIN
        INSERT INTO lacre_client_load (client_id, jobs, bytes)
            VALUES (NEW.client_id,
                    CASE WHEN NEW.state IN ('queued', 'running') THEN 1 ELSE -1 END,
                    CASE WHEN NEW.state IN ('queued', 'running') THEN 1 ELSE -1 END
                        * COALESCE(NEW.args_bytes, 0))
            ON CONFLICT (client_id) DO UPDATE
            SET jobs = jobs + excluded.jobs, bytes = bytes + excluded.bytes;
    END",
    "-- sqlite only
    CREATE TRIGGER IF NOT EXISTS lacre_load_delete AFTER DELETE ON lacre_jobs
    WHEN OLD.state IN ('queued', 'running')
    BEGIN
        UPDATE lacre_client_load
            SET jobs = jobs - 1, bytes = bytes - COALESCE(OLD.args_bytes, 0)
            WHERE client_id = OLD.client_id;
    END",
], &[
    // PostgreSQL: the indexes of the queue, of the active jobs and of the
    // finished ones hold only those rows. A change of a job's state writes
    // a new version of its row with an entry in every index whose rows it
    // belongs to (the state is indexed, so no update is in place); with
    // them partial, a job that is created and finished writes 7 entries
    // instead of 12, and one given to a worker as it is created (SPEC
    // §10.4) never enters the queue's.
    "-- postgres only
    DROP INDEX IF EXISTS lacre_jobs_finished",
    "-- postgres only
    CREATE INDEX lacre_jobs_finished ON lacre_jobs (finished_ms) WHERE finished_ms IS NOT NULL",
    "-- postgres only
    DROP INDEX IF EXISTS lacre_jobs_due",
    "-- postgres only
    CREATE INDEX lacre_jobs_due ON lacre_jobs (state, client_id, available_at_ms, created_ms)
        WHERE state = 'queued'",
    "-- postgres only
    DROP INDEX IF EXISTS lacre_jobs_load",
    "-- postgres only
    CREATE INDEX lacre_jobs_load ON lacre_jobs (client_id, state, args_bytes)
        WHERE state IN ('queued', 'running')",
    "-- postgres only
    DROP INDEX IF EXISTS lacre_jobs_queue",
    "-- postgres only
    CREATE INDEX lacre_jobs_queue ON lacre_jobs (state, available_at_ms, created_ms)
        WHERE state IN ('queued', 'running')",
]];

/// Marks a statement of [`MIGRATIONS`] that runs on SQLite only.
const SQLITE_ONLY: &str = "-- sqlite only";
/// Marks a statement of [`MIGRATIONS`] that runs on PostgreSQL only.
const POSTGRES_ONLY: &str = "-- postgres only";

impl SqlStore {
    /// Brings the database to the latest schema version, one version a
    /// transaction; replicas starting together take turns (PostgreSQL).
    pub(super) async fn migrate(&self, schema: Option<&str>) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        if self.kind == StoreKind::Postgres {
            // Replicas starting together must not race on CREATE SCHEMA or
            // CREATE TABLE (`IF NOT EXISTS` does not make two concurrent
            // ones safe: the loser fails on a unique index of the catalog).
            sqlx::raw_sql("SELECT pg_advisory_lock(735806)")
                .execute(&mut *conn)
                .await
                .map_err(unavailable)?;
        }
        let result = async {
            if let (StoreKind::Postgres, Some(s)) = (self.kind, schema) {
                // The connection's search_path already names it; it takes
                // effect once the schema exists.
                sqlx::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS \"{s}\""))
                    .execute(&mut *conn)
                    .await?;
            }
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
                // One version, all or nothing (DDL is transactional on
                // both): a crash mid-way leaves the previous version.
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                for statement in *statements {
                    let only = |mark: &str, kind| statement.starts_with(mark) && self.kind != kind;
                    if only(SQLITE_ONLY, StoreKind::Sqlite)
                        || only(POSTGRES_ONLY, StoreKind::Postgres)
                    {
                        continue;
                    }
                    // SQLite stores a table keyed by its primary key alone
                    // more compactly (one B-tree instead of two).
                    let without_rowid = if self.kind == StoreKind::Sqlite {
                        "WITHOUT ROWID"
                    } else {
                        ""
                    };
                    let statement = statement.replace("{without_rowid}", without_rowid);
                    sqlx::raw_sql(&statement).execute(&mut *tx).await?;
                }
                sqlx::query("INSERT INTO lacre_schema (version) VALUES ($1)")
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
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
}
