//! Writes committed in groups (SQLite).
//!
//! SQLite has one writer at a time, and a commit costs the same whether it
//! carries one job's rows or fifty: every page the transaction changed is
//! appended to the WAL once, and `fsync`ed at the next checkpoint. So the
//! busiest writes (a job created, claimed, renewed, finished, cancelled)
//! are handed to one task, which runs whatever has queued up meanwhile in
//! one transaction, each write that needs it in a savepoint of its own, and
//! answers each caller only once the group's `COMMIT` has returned: no
//! caller is told of a write that is not yet durable.
//!
//! The task, not a caller, runs the group, so a caller that goes away (a
//! client that hangs up) cannot leave a transaction half done or the next
//! writer waiting. Its write still runs: like a request the server had
//! finished when the client left, it is kept, and the client's retry finds
//! it through the idempotency key.
//!
//! On PostgreSQL, where writers do not take turns, a write runs at once on
//! a connection of the pool (in a transaction if it needs one).

use super::{unavailable, Change, SqlStore};
use crate::error::{Cause, StoreError};
use sqlx::AnyConnection;
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;
use tokio::sync::{mpsc, oneshot};

/// The most writes one transaction carries, so the writers waiting behind
/// a group (pruning, the outbox) get their turn.
const MAX_GROUP: usize = 64;

/// A future borrowing the connection it runs on.
pub(super) type ConnFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// What a write did.
pub(super) struct Wrote<T> {
    /// What the caller is given once it is committed.
    pub value: T,
    /// Whether its changes stay (`false`: rolled back, the value given all
    /// the same, e.g. a job refused for its client's limits).
    pub keep: bool,
    /// Who is told once it is committed.
    pub wake: Wake,
}

impl<T> Wrote<T> {
    /// Kept, waking `wake`.
    pub fn kept(value: T, wake: Wake) -> Wrote<T> {
        Wrote {
            value,
            keep: true,
            wake,
        }
    }

    /// Rolled back, waking nobody (a write of [`Scope::Savepoint`] only).
    pub fn undone(value: T) -> Wrote<T> {
        Wrote {
            value,
            keep: false,
            wake: Wake::Nobody,
        }
    }
}

/// What a write needs to be all or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// One statement, atomic by itself.
    Statement,
    /// Several statements that change nothing unless they all succeed and
    /// it is kept (it never undoes itself): in a group, no savepoint (a
    /// failed statement fails the group); on its own, a transaction.
    Statements,
    /// Statements it may undo ([`Wrote::undone`]), or that may fail after
    /// a change: a savepoint in a group, a transaction on its own.
    Savepoint,
}

/// Who a committed write wakes ([`Change`], owned, or nobody).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Wake {
    Nobody,
    New,
    Job(String),
}

impl Wake {
    fn change(&self) -> Option<Change<'_>> {
        match self {
            Wake::Nobody => None,
            Wake::New => Some(Change::New),
            Wake::Job(id) => Some(Change::Job(id)),
        }
    }
}

type Erased = Box<dyn Any + Send>;
type Op = Box<
    dyn for<'c> FnOnce(&'c mut AnyConnection) -> ConnFuture<'c, Result<Wrote<Erased>, StoreError>>
        + Send,
>;

/// A write waiting for the group task.
pub(super) struct Queued {
    op: Op,
    scope: Scope,
    reply: oneshot::Sender<Result<Erased, StoreError>>,
}

/// The sending side, kept by the store; the task ends when it is dropped.
pub(super) type Writes = mpsc::UnboundedSender<Queued>;

/// Starts the task that commits `store`'s writes in groups.
pub(super) fn spawn(store: Weak<SqlStore>) -> Writes {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let Some(store) = store.upgrade() else { return };
            store.commit_group(first, &mut rx).await;
        }
    });
    tx
}

/// A write that ran, waiting for its group's commit.
struct Ran {
    result: Result<Erased, StoreError>,
    wake: Wake,
    reply: oneshot::Sender<Result<Erased, StoreError>>,
}

impl SqlStore {
    /// Runs `op` as a write: in this process's next group on SQLite, at
    /// once on PostgreSQL, as its `scope` needs. Its value comes back once
    /// it is committed, and its `wake` is told then.
    pub(super) async fn write<T, F>(&self, scope: Scope, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> ConnFuture<'c, Result<Wrote<T>, StoreError>>
            + Send
            + 'static,
    {
        let Some(group) = &self.group else {
            return self.write_now(scope, op).await;
        };
        let (reply, answer) = oneshot::channel();
        let op: Op = Box::new(move |conn| {
            Box::pin(async move {
                op(conn).await.map(|w| Wrote {
                    value: Box::new(w.value) as Erased,
                    keep: w.keep,
                    wake: w.wake,
                })
            })
        });
        let queued = Queued { op, scope, reply };
        if group.send(queued).is_err() {
            return Err(stopped());
        }
        let value = answer.await.map_err(|_| stopped())??;
        value
            .downcast::<T>()
            .map(|v| *v)
            .map_err(|_| StoreError::Corrupt("a grouped write's value of another type".into()))
    }

    /// A write on its own (PostgreSQL).
    async fn write_now<T, F>(&self, scope: Scope, op: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut AnyConnection) -> ConnFuture<'c, Result<Wrote<T>, StoreError>>,
    {
        let wrote = if scope != Scope::Statement {
            let mut tx = self.begin().await?;
            let wrote = op(&mut tx).await?;
            if wrote.keep {
                tx.commit().await.map_err(unavailable)?;
            } else {
                tx.rollback().await.map_err(unavailable)?;
            }
            wrote
        } else {
            op(&mut *self.writer().await?).await?
        };
        if let Some(change) = wrote.wake.change() {
            self.changed(change);
        }
        Ok(wrote.value)
    }

    /// Runs `first` and whatever queued behind it, commits, then answers
    /// each (and wakes whom the kept ones name).
    async fn commit_group(&self, first: Queued, queue: &mut mpsc::UnboundedReceiver<Queued>) {
        let mut ran = Vec::new();
        match self.run_group(first, queue, &mut ran).await {
            Ok(()) => {
                for r in ran {
                    if r.result.is_ok() {
                        if let Some(change) = r.wake.change() {
                            self.changed(change);
                        }
                    }
                    let _ = r.reply.send(r.result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, writes = ran.len(), "a group of writes was rolled back");
                for r in ran {
                    // A write's own error stands; the others failed with the group.
                    let _ = r.reply.send(r.result.and(Err(e.clone())));
                }
            }
        }
    }

    /// The group's transaction. Every write taken from the queue ends in
    /// `ran`, with its own result; an `Err` rolls the whole group back.
    async fn run_group(
        &self,
        first: Queued,
        queue: &mut mpsc::UnboundedReceiver<Queued>,
        ran: &mut Vec<Ran>,
    ) -> Result<(), StoreError> {
        let mut tx = match self.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                let _ = first.reply.send(Err(e.clone()));
                return Err(e);
            }
        };
        let mut next = Some(first);
        while let Some(q) = next.take() {
            let (own, fatal) = match run_one(&mut tx, q.op, q.scope).await {
                Ok(own) => (own, None),
                Err((own, fatal)) => (own, Some(fatal)),
            };
            let (result, wake) = match own {
                Ok(Wrote { value, keep, wake }) => {
                    (Ok(value), if keep { wake } else { Wake::Nobody })
                }
                Err(e) => (Err(e), Wake::Nobody),
            };
            ran.push(Ran {
                result,
                wake,
                reply: q.reply,
            });
            if let Some(e) = fatal {
                return Err(e);
            }
            if ran.len() < MAX_GROUP {
                next = queue.try_recv().ok();
            }
        }
        tx.commit().await.map_err(unavailable)
    }
}

/// One write's own result, or (its result, the group's error) when the
/// group cannot go on.
type Step =
    Result<Result<Wrote<Erased>, StoreError>, (Result<Wrote<Erased>, StoreError>, StoreError)>;

/// Runs one write in the open transaction, in a savepoint if its scope
/// asks (rolled back to it if the write fails or undoes itself). Any other
/// write that fails ends the group: SQLite rolls the whole transaction
/// back on some errors, so nothing after it could be trusted to be in it.
/// So does a savepoint that cannot be set, released or rolled back to.
async fn run_one(conn: &mut AnyConnection, op: Op, scope: Scope) -> Step {
    if scope != Scope::Savepoint {
        return match op(conn).await {
            Ok(w) => Ok(Ok(w)),
            Err(e) => Err((Err(e.clone()), e)),
        };
    }
    if let Err(e) = statement(conn, "SAVEPOINT lacre_write").await {
        return Err((Err(e.clone()), e));
    }
    let wrote = op(conn).await;
    let keep = wrote.as_ref().is_ok_and(|w| w.keep);
    let mut ended = Ok(());
    if !keep {
        ended = statement(conn, "ROLLBACK TO lacre_write").await;
    }
    if ended.is_ok() {
        ended = statement(conn, "RELEASE lacre_write").await;
    }
    match ended {
        Ok(()) => Ok(wrote),
        Err(e) => Err((wrote, e)),
    }
}

async fn statement(conn: &mut AnyConnection, sql: &str) -> Result<(), StoreError> {
    sqlx::Executor::execute(conn, sql)
        .await
        .map(drop)
        .map_err(unavailable)
}

fn stopped() -> StoreError {
    StoreError::Unavailable(Cause::new(std::io::Error::other(
        "the store's writer has stopped",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    async fn sqlite(test: &str) -> Arc<SqlStore> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "lacre-group-{test}-{}-{nanos}.db",
            std::process::id()
        ));
        let url = format!("sqlite:{}", path.display());
        SqlStore::connect(&url, lacre_proto::ParseLimits::default())
            .await
            .unwrap()
    }

    #[derive(Clone, Copy)]
    enum How {
        /// One statement, kept.
        Plain,
        /// One statement, then a failure of the plain kind: the group ends.
        PlainFailing,
        /// In a savepoint, kept.
        Atomic,
        /// In a savepoint, undone with a value all the same.
        Undone,
        /// In a savepoint, then an error: only this write is rolled back.
        AtomicFailing,
    }

    /// A write of one row (`id`) in a table of the schema, done `how`.
    async fn put(
        store: Arc<SqlStore>,
        id: &'static str,
        how: How,
    ) -> Result<&'static str, StoreError> {
        let scope = match how {
            How::Plain | How::PlainFailing => Scope::Statement,
            _ => Scope::Savepoint,
        };
        store
            .write(scope, move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO lacre_disabled_endpoints (client_id, disabled_ms, reason) VALUES ($1, 0, 'test')",
                    )
                    .bind(id)
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                    match how {
                        How::Plain | How::Atomic => Ok(Wrote::kept(id, Wake::Nobody)),
                        How::Undone => Ok(Wrote::undone(id)),
                        How::PlainFailing | How::AtomicFailing => {
                            Err(StoreError::Corrupt(format!("{id} failed")))
                        }
                    }
                })
            })
            .await
    }

    async fn rows(store: &SqlStore) -> Vec<String> {
        sqlx::query_scalar("SELECT client_id FROM lacre_disabled_endpoints ORDER BY client_id")
            .fetch_all(&store.pool)
            .await
            .unwrap()
    }

    /// Queues `writes` while the write turn is held, so that all of them
    /// are in the writer's next group; their answers, in order.
    async fn one_group(
        store: &Arc<SqlStore>,
        writes: &[(&'static str, How)],
    ) -> Vec<Result<&'static str, StoreError>> {
        let turn = store.turn().await;
        let tasks: Vec<_> = writes
            .iter()
            .map(|&(id, how)| tokio::spawn(put(Arc::clone(store), id, how)))
            .collect();
        // Every task runs to its wait for an answer; the writer has taken
        // the first write and waits for the turn.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            tasks.iter().all(|t| !t.is_finished()),
            "a write was answered before its group could commit"
        );
        drop(turn);
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        answers
    }

    #[tokio::test]
    async fn a_group_keeps_each_write_its_own_outcome() {
        let store = sqlite("outcomes").await;
        let answers = one_group(
            &store,
            &[
                ("a", How::Plain),
                ("b", How::Undone),
                ("c", How::AtomicFailing),
                ("d", How::Atomic),
            ],
        )
        .await;
        assert_eq!(answers[0], Ok("a"));
        assert_eq!(answers[1], Ok("b"));
        assert_eq!(answers[2], Err(StoreError::Corrupt("c failed".into())));
        assert_eq!(answers[3], Ok("d"));
        // The undone and the failed writes left nothing; the others stayed.
        assert_eq!(rows(&store).await, ["a", "d"]);
    }

    #[tokio::test]
    async fn a_failed_plain_write_fails_its_whole_group() {
        let store = sqlite("abort").await;
        let answers = one_group(
            &store,
            &[
                ("a", How::Atomic),
                ("b", How::PlainFailing),
                ("c", How::Plain),
            ],
        )
        .await;
        // Its own error for the write that failed, the group's for the one
        // before it; the one after it ran in a group of its own.
        assert_eq!(answers[1], Err(StoreError::Corrupt("b failed".into())));
        assert_eq!(answers[0], Err(StoreError::Corrupt("b failed".into())));
        assert_eq!(answers[2], Ok("c"));
        assert_eq!(rows(&store).await, ["c"]);
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_neither_loses_its_write_nor_stalls_the_next() {
        let store = sqlite("dropped").await;
        let turn = store.turn().await;
        {
            let mut first = std::pin::pin!(put(Arc::clone(&store), "gone", How::Atomic));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            // Polled once: queued, waiting for its answer; then dropped.
            assert!(first.as_mut().poll(&mut cx).is_pending());
        }
        drop(turn);
        let next = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            put(Arc::clone(&store), "next", How::Plain),
        )
        .await;
        assert_eq!(next.map_err(|_| "timed out"), Ok(Ok("next")));
        assert_eq!(rows(&store).await, ["gone", "next"]);
    }
}
