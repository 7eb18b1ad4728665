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

mod audit;
mod group;
mod jobs;
mod nonces;
mod outbox;
mod rows;
mod schema;

use super::StoreKind;
use crate::error::{Cause, StoreError};
use crate::jobs::{JobRecord, JobState, Listing};
use lacre_proto::ParseLimits;
use rows::job_from_row;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Rows deleted per statement when pruning, so no statement holds locks long.
const PRUNE_BATCH: i64 = 1000;

/// The PostgreSQL notification channel; payloads list the changed job ids
/// (SPEC §10.6).
const CHANNEL: &str = "lacre_jobs";

/// A SQLite or PostgreSQL store for jobs, idempotency records and nonces.
pub struct SqlStore {
    pool: AnyPool,
    /// SQLite: the one connection that writes. SQLite keeps a page cache a
    /// connection and drops it whenever another connection has written;
    /// with every write on one connection its cache stays warm (writes take
    /// turns anyway), and only the readers re-read what it changed. Opened
    /// once the schema is up to date: a connection that prepares a
    /// statement over a schema another connection then changes would
    /// describe the rows with the old columns.
    writes: std::sync::OnceLock<AnyPool>,
    kind: StoreKind,
    changes: watch::Sender<u64>,
    /// Long polls waiting for one job each.
    watchers: Arc<crate::jobs::JobWatchers>,
    /// Idle workers waiting for a claimable job.
    work: Arc<crate::jobs::WorkSignal>,
    /// Jobs changed here since the last NOTIFY (PostgreSQL): its payload,
    /// so other replicas wake only the long polls of those jobs.
    to_notify: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Wakes the task that sends `NOTIFY` (PostgreSQL only).
    notifier: Option<Arc<Notify>>,
    /// The notification channel: one per schema, so that replicas in
    /// different schemas do not wake each other.
    channel: String,
    nonce_count: AtomicUsize,
    /// How stored JSON is parsed.
    limits: ParseLimits,
    /// SQLite: writes wait here, in arrival order, rather than in SQLite's
    /// busy handler, which polls with sleeps of up to 100 ms and lets later
    /// writers overtake: at 32 connections some writes waited past the
    /// 5-second busy timeout and failed, and jobs ran at 9 a second.
    write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
    /// SQLite: the task that commits the busiest writes in groups.
    group: Option<group::Writes>,
    /// The store itself, for work that must finish when its caller goes
    /// away (a job written claimed for a worker must reach that worker).
    me: std::sync::Weak<SqlStore>,
}

/// A connection or transaction that writes (and, on SQLite, holds this
/// process's turn to write until it is dropped).
pub(super) struct Writing<C> {
    inner: C,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// A write transaction.
pub(super) type WriteTx = Writing<sqlx::Transaction<'static, sqlx::Any>>;

/// A connection for one writing statement.
pub(super) type WriteConn = Writing<sqlx::pool::PoolConnection<sqlx::Any>>;

impl WriteTx {
    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }

    pub(super) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}

impl<C: std::ops::Deref<Target = sqlx::AnyConnection>> std::ops::Deref for Writing<C> {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.inner
    }
}

impl<C: std::ops::DerefMut<Target = sqlx::AnyConnection>> std::ops::DerefMut for Writing<C> {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.inner
    }
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

/// Creates a missing SQLite database file readable by its owner only
/// (0600, less the umask): it holds every client's arguments and results.
/// SQLite gives the `-wal` and `-shm` files the database file's mode.
/// The database file a `sqlite:` URL names (`None`: in memory).
pub(super) fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| path.into())
}

fn create_private(url: &str) -> Result<(), StoreError> {
    let Some(path) = sqlite_file(url) else {
        return Ok(());
    };
    if path.exists() {
        return Ok(());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        // Another process created it first: it owns the mode.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(crate::error::Cause::new(e))),
    }
}

/// What changed, for wake-ups.
#[derive(Debug, Clone, Copy)]
pub(super) enum Change<'a> {
    /// A job was queued: workers wake, no long poll waits for it yet.
    New,
    /// This job changed: its long polls wake.
    Job(&'a str),
    /// Several jobs changed: every long poll wakes.
    Many,
}

/// The NOTIFY token for a new job (job ids are UUIDs, never `+`).
const NEW_JOB: &str = "+";

/// NOTIFY payloads listing the tokens `ids` (job ids, [`NEW_JOB`], or `""`
/// for "wake every poll"), comma-separated, each under PostgreSQL's
/// 8000-byte payload limit.
fn notify_payloads(ids: &[String]) -> Vec<String> {
    const MAX: usize = 7900;
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        let last = out.last_mut().filter(|p| p.len() + id.len() < MAX);
        match last {
            Some(p) => {
                p.push(',');
                p.push_str(id);
            }
            None => out.push(id.clone()),
        }
    }
    out
}

fn valid_schema_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl SqlStore {
    /// Connects, applies the schema, and (PostgreSQL) starts listening for
    /// other replicas' changes. Stored JSON is read back with `limits`:
    /// the server's own, so that whatever it accepted it can read again.
    pub async fn connect(url: &str, limits: ParseLimits) -> Result<Arc<SqlStore>, StoreError> {
        sqlx::any::install_default_drivers();
        let kind = super::StoreKind::of(url)
            .ok_or_else(|| StoreError::UnsupportedUrl(super::redact(url)))?;
        let (url, schema) = split_schema(url);
        if let Some(s) = &schema {
            if !valid_schema_name(s) {
                return Err(StoreError::InvalidUrl(format!("invalid schema name {s:?}")));
            }
        }
        if kind == StoreKind::Sqlite {
            create_private(&url)?;
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
            StoreKind::Sqlite => options.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers run beside the one writer; NORMAL
                    // sync is durable across process crashes in WAL mode.
                    // Pages of SQLite's default size (4 KiB): the 1 KiB
                    // pages that suited a table of random nonces split job
                    // rows over overflow pages, and `lacre serve` keeps its
                    // nonces in the journal. A 16 MiB page cache a
                    // connection keeps the queue's indexes in memory.
                    for pragma in [
                        "PRAGMA cache_size=-16384",
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
        let writer_options =
            (kind == StoreKind::Sqlite).then(|| options.clone().max_connections(1));
        if kind == StoreKind::Sqlite {
            options = options.max_connections(4);
        }
        let pool = options.connect(&url).await.map_err(unavailable)?;
        let notifier = (kind == StoreKind::Postgres).then(|| Arc::new(Notify::new()));
        let channel = match &schema {
            Some(s) => format!("{CHANNEL}_{s}"),
            None => CHANNEL.to_owned(),
        };
        let store = Arc::new_cyclic(|weak| SqlStore {
            pool,
            writes: std::sync::OnceLock::new(),
            kind,
            changes: watch::channel(0).0,
            watchers: crate::jobs::JobWatchers::new(),
            work: Arc::default(),
            to_notify: std::sync::Mutex::new(std::collections::HashSet::new()),
            notifier,
            channel,
            nonce_count: AtomicUsize::new(0),
            limits,
            write_gate: (kind == StoreKind::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(()))),
            group: (kind == StoreKind::Sqlite).then(|| group::spawn(weak.clone())),
            me: weak.clone(),
        });
        store.migrate(schema.as_deref()).await?;
        if let Some(o) = writer_options {
            let writer = o.connect(&url).await.map_err(unavailable)?;
            let _ = store.writes.set(writer);
        }
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

    /// Starts the listener (other replicas' changes wake this one's long
    /// polls and workers) and the notifier (this one's changes wake theirs).
    fn spawn_pg_tasks(self: &Arc<Self>, url: String) -> tokio::sync::oneshot::Receiver<()> {
        let weak = Arc::downgrade(self);
        let channel = self.channel.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            let mut listened_before = false;
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
                        // Listening again: what changed while this replica
                        // was not listening was not heard. Wake everyone.
                        if std::mem::replace(&mut listened_before, true) {
                            if let Some(store) = weak.upgrade() {
                                store.changes.send_modify(|v| *v = v.wrapping_add(1));
                                store.watchers.notify_all();
                                store.work.all();
                            }
                        }
                        // `try_recv` says when the connection is lost
                        // (`recv` would reconnect silently, and notifications
                        // sent meanwhile would be lost unnoticed): the outer
                        // loop then listens again and wakes everyone.
                        while let Ok(Some(n)) = l.try_recv().await {
                            let Some(store) = weak.upgrade() else { return };
                            store.changes.send_modify(|v| *v = v.wrapping_add(1));
                            // The payload names the jobs that changed;
                            // without one (an older replica), wake every poll.
                            for token in n.payload().split(',') {
                                match token {
                                    "" => {
                                        store.watchers.notify_all();
                                        store.work.all();
                                    }
                                    NEW_JOB => {
                                        store.work.one();
                                    }
                                    id => store.watchers.notify(id),
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "postgres LISTEN failed; retrying"),
                }
                if weak.strong_count() == 0 {
                    return;
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
                // (a `Notify` keeps at most one permit), whose payload lists
                // the jobs that changed (in several notifications if they do
                // not fit PostgreSQL's 8000-byte payload).
                notify.notified().await;
                let Some(store) = weak.upgrade() else { return };
                let ids: Vec<String> = store
                    .to_notify
                    .lock()
                    .map(|mut set| set.drain().collect())
                    .unwrap_or_default();
                for payload in notify_payloads(&ids) {
                    if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(channel.clone())
                        .bind(payload)
                        .execute(&store.pool)
                        .await
                    {
                        tracing::debug!(error = %e, "NOTIFY failed");
                    }
                }
            }
        });
        ready_rx
    }

    /// Runs one write in the process's write turn; the rows it changed.
    /// When any did, waiters are told of `change`.
    /// Every row `query` reads, on a reading connection.
    pub(super) async fn read_rows<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
        query.fetch_all(&self.pool).await.map_err(unavailable)
    }

    async fn write_rows<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        change: Change<'_>,
    ) -> Result<u64, StoreError> {
        let n = query
            .execute(&mut *self.writer().await?)
            .await
            .map_err(unavailable)?
            .rows_affected();
        if n > 0 {
            self.changed(change);
        }
        Ok(n)
    }

    /// Marks a change: wakes local workers and the long polls of the job
    /// that changed and, on PostgreSQL, the other replicas'.
    fn changed(&self, change: Change<'_>) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
        let token = match change {
            // Other replicas are told of a new job only when no worker
            // here was free for it: theirs would race this one's for it.
            Change::New if self.work.one() => return,
            Change::New => NEW_JOB,
            Change::Job(id) => {
                self.watchers.notify(id);
                id
            }
            Change::Many => {
                self.watchers.notify_all();
                self.work.all();
                ""
            }
        };
        if let Some(n) = &self.notifier {
            if let Ok(mut set) = self.to_notify.lock() {
                set.insert(token.to_owned());
            }
            n.notify_one();
        }
    }

    /// This process's turn to write (SQLite), in arrival order.
    async fn turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.write_gate {
            Some(gate) => Some(Arc::clone(gate).lock_owned().await),
            None => None,
        }
    }

    async fn begin(&self) -> Result<WriteTx, StoreError> {
        let turn = self.turn().await;
        let tx = match self.kind {
            // Take the write lock up front: a deferred transaction that
            // reads and then writes can fail with SQLITE_BUSY mid-way.
            StoreKind::Sqlite => self.write_pool().begin_with("BEGIN IMMEDIATE").await,
            _ => self.pool.begin().await,
        }
        .map_err(unavailable)?;
        Ok(Writing {
            inner: tx,
            _turn: turn,
        })
    }

    fn write_pool(&self) -> &AnyPool {
        self.writes.get().unwrap_or(&self.pool)
    }

    /// A connection for one writing statement outside a transaction.
    async fn writer(&self) -> Result<WriteConn, StoreError> {
        let turn = self.turn().await;
        let conn = self.write_pool().acquire().await.map_err(unavailable)?;
        Ok(Writing {
            inner: conn,
            _turn: turn,
        })
    }

    /// Runs a claim (`sql` binds now as `$1` and the lease's end as `$2`,
    /// and returns the claimed row); the row and its new fencing token. One
    /// statement, its own transaction: a writing statement takes SQLite's
    /// write lock before it reads, so it cannot fail half-way as a deferred
    /// transaction that reads first can.
    pub(super) async fn claim_row(
        &self,
        sql: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<(sqlx::any::AnyRow, u64)>, StoreError> {
        use sqlx::Row;
        let row = sqlx::query(sql)
            .bind(now_ms)
            .bind(now_ms.saturating_add(lease_ms))
            .fetch_optional(&mut *self.writer().await?)
            .await
            .map_err(unavailable)?;
        let Some(row) = row else { return Ok(None) };
        let fence: i64 = row.try_get("fence").map_err(|_| corrupt("fence"))?;
        Ok(Some((row, u64::try_from(fence).unwrap_or(0))))
    }

    /// The jobs `which` selects, newest first.
    async fn newest_first(
        &self,
        which: Listing<'_, JobState>,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let rows = self.newest_rows("*", which).await?;
        // One row that no longer decodes must not hide every other job.
        Ok(rows
            .iter()
            .filter_map(|row| match job_from_row(row, self.limits) {
                Ok(job) => Some(job),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a job row that does not decode");
                    None
                }
            })
            .collect())
    }

    /// The `columns` of the jobs `which` selects, newest first.
    pub(super) async fn newest_rows(
        &self,
        columns: &str,
        which: Listing<'_, JobState>,
    ) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
        let Listing {
            client_id,
            state,
            limit,
        } = which;
        let mut sql = format!("SELECT {columns} FROM lacre_jobs WHERE 1 = 1");
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
        self.read_rows(q.bind(i64::try_from(limit).unwrap_or(i64::MAX)))
            .await
    }

    async fn fetch_job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM lacre_jobs WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| job_from_row(&r, self.limits)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_payloads_fit_and_keep_every_token() {
        let ids: Vec<String> = (0..500).map(|i| format!("{i:036}")).collect();
        let payloads = notify_payloads(&ids);
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() < 8000));
        let back: Vec<&str> = payloads.iter().flat_map(|p| p.split(',')).collect();
        assert_eq!(back, ids.iter().map(String::as_str).collect::<Vec<_>>());
        let many = notify_payloads(&["".to_owned(), "a".to_owned()]);
        assert_eq!(many, [",a"]);
    }

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
