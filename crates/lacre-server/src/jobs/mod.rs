//! Jobs: their records, the store they live in, and the context a running
//! handler sees.
//!
//! A job moves `queued → running → done | failed | cancelled`; a running job
//! whose lease expires goes back to `queued` (at-least-once execution), and
//! each claim increments a fencing token so that only the latest claimant
//! can record the result (exactly-once result).

mod memory;
mod signal;
mod waiters;
mod worker;

pub use memory::MemoryJobStore;
pub use signal::{Reserved, Wake, WorkSignal};
pub use waiters::{JobWatch, JobWatchers};
pub use worker::{WorkerConfig, Workers};

use crate::error::StoreError;
use crate::webhooks::{EventMask, Outbox};
use lacre_proto::Map;
use std::sync::Arc;
use tokio::sync::watch;

pub use lacre_proto::JobState;

/// How long a job whose worker was lost waits before it may be claimed
/// again, after its `attempt`-th claim: 2 s, 4 s, 8 s ... at most 60 s.
/// Every store uses this one rule.
pub fn requeue_delay_ms(attempt: u32) -> i64 {
    1000i64.saturating_mul(1i64 << attempt.min(6)).min(60_000)
}

/// Everything known about a job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// The job id (a UUID).
    pub id: String,
    /// The client that started it; no one else may see it.
    pub client_id: String,
    /// The request that started it.
    pub request_id: String,
    /// The tool.
    pub tool: String,
    /// The tool's arguments.
    pub args: Map,
    /// Where it is.
    pub state: JobState,
    /// Progress fraction in `[0, 1]`, if the handler reported one.
    pub progress: Option<f64>,
    /// Progress message, if any.
    pub message: Option<String>,
    /// The result, once done.
    pub result: Option<Map>,
    /// The error message, once failed.
    pub error: Option<String>,
    /// How many times it was claimed.
    pub attempt: u32,
    /// Creation time (ms since the epoch).
    pub created_ms: i64,
    /// Last change (ms since the epoch).
    pub updated_ms: i64,
    /// When it reached a terminal state.
    pub finished_ms: Option<i64>,
    /// Increments at every change; long polls wait for it to move.
    pub version: u64,
    /// The events its client is told of (fixed when it was created).
    pub events: EventMask,
}

/// What `poll_job` needs of a job: no arguments, and the result only once
/// the job is done (a store reads nothing else).
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatus {
    /// The job id.
    pub id: String,
    /// Its owner.
    pub client_id: String,
    /// Where it is.
    pub state: JobState,
    /// Progress fraction, if reported.
    pub progress: Option<f64>,
    /// Progress message, if any.
    pub message: Option<String>,
    /// The result, when done.
    pub result: Option<Map>,
    /// The error, when failed.
    pub error: Option<String>,
    /// Moves at every change.
    pub version: u64,
}

impl JobStatus {
    /// The status of a record (its arguments are not copied).
    pub fn of(j: &JobRecord) -> JobStatus {
        JobStatus {
            id: j.id.clone(),
            client_id: j.client_id.clone(),
            state: j.state,
            progress: j.progress,
            message: j.message.clone(),
            result: j.result.clone().filter(|_| j.state == JobState::Done),
            error: j.error.clone(),
            version: j.version,
        }
    }
}

/// A job to create.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its id.
    pub id: String,
    /// The caller.
    pub client_id: String,
    /// The caller's request id (the idempotency key with `client_id`).
    pub request_id: String,
    /// Hash of the canonical request without nonce and timestamp; a retry
    /// with another hash is an idempotency conflict.
    pub request_hash: String,
    /// The tool.
    pub tool: String,
    /// Its arguments (already validated).
    pub args: Map,
    /// Now.
    pub now_ms: i64,
    /// How long the idempotency record is kept.
    pub idempotency_ttl_ms: i64,
    /// The client's queued + running jobs may number at most this many
    /// (with this one) ...
    pub max_jobs: u64,
    /// ... and hold at most this many bytes of arguments (canonical JSON).
    pub max_job_bytes: u64,
    /// The events its client is told of: when the job ends with one of
    /// them, the event is written to the outbox with the final state.
    pub events: EventMask,
}

/// What [`JobStore::create`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// A new job.
    Created(JobRecord),
    /// A retry of an earlier request: the job it created.
    Existing(JobRecord),
    /// The `request_id` was used with other arguments.
    Conflict,
    /// The client is at its limit of queued + running jobs (`jobs`) or of
    /// their argument bytes (`bytes`); nothing was created.
    OverLimit(JobLimit),
}

/// Which per-client job limit a create would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobLimit {
    /// Queued + running jobs.
    Jobs,
    /// Their argument bytes.
    Bytes,
}

/// The size a job's arguments count for, in the per-client byte limit.
pub fn args_bytes(args: &Map) -> u64 {
    lacre_proto::canonical(&lacre_proto::Value::Object(args.clone())).len() as u64
}

/// A job handed to a worker, with the fencing token of this claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The job (state `running`).
    pub job: JobRecord,
    /// Only this token may report on the job.
    pub fence: u64,
}

/// A worker's heartbeat on the job it holds: renew the lease, and record
/// progress if there is new progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat<'a> {
    /// The job.
    pub id: &'a str,
    /// The fencing token of the claim; a stale one has lost the job.
    pub fence: u64,
    /// Now.
    pub now_ms: i64,
    /// The lease runs until `now_ms + lease_ms`.
    pub lease_ms: i64,
    /// New progress, if any.
    pub progress: Option<ProgressReport>,
}

/// A worker's report that the job it holds ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish<'a> {
    /// The job.
    pub id: &'a str,
    /// The fencing token of the claim; a stale one records nothing.
    pub fence: u64,
    /// How it ended.
    pub outcome: JobOutcome,
    /// Now.
    pub now_ms: i64,
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStatus {
    /// The lease is renewed.
    Held,
    /// The client cancelled the job: stop working on it.
    Cancelled,
    /// Another worker took the job over (or it finished): stop.
    Lost,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// With a result.
    Done(Map),
    /// With an error message.
    Failed(String),
}

/// What to prune, and by whose clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prune {
    /// Now, by the pruning replica's clock.
    pub now_ms: i64,
    /// How long finished jobs are kept.
    pub retention_ms: i64,
    /// How far apart replicas' clocks may be. A nonce record is deleted only
    /// once it expired by this much: a replica whose clock is ahead must not
    /// delete a record that a replica behind would still need to refuse a
    /// replay (that replica accepts timestamps up to its own window's edge).
    pub replica_skew_ms: i64,
}

/// Default allowance between replicas' clocks.
pub const DEFAULT_REPLICA_SKEW_MS: i64 = 60_000;

/// Counts of what pruning removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneStats {
    /// Finished jobs past retention.
    pub jobs: u64,
    /// Idempotency records past their expiry.
    pub idempotency: u64,
    /// Nonces past their expiry (stores that keep nonces with the jobs).
    pub nonces: u64,
    /// Webhook deliveries delivered or given up, past retention.
    pub deliveries: u64,
}

/// Which records a listing returns, newest first: at most `limit`, of
/// one client or of every client, in one state or in any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listing<'a, S> {
    /// The client whose records are listed; `None` lists every client's.
    pub client_id: Option<&'a str>,
    /// The state the records are in; `None` lists every state.
    pub state: Option<S>,
    /// How many records at the most.
    pub limit: usize,
}

impl<'a, S: Copy + PartialEq> Listing<'a, S> {
    /// The records of one client.
    pub fn of(client_id: &'a str, state: Option<S>, limit: usize) -> Self {
        Listing {
            client_id: Some(client_id),
            state,
            limit,
        }
    }

    /// The records of every client.
    pub fn all(state: Option<S>, limit: usize) -> Self {
        Listing {
            client_id: None,
            state,
            limit,
        }
    }

    /// Whether a record of `client_id` in `state` is listed.
    pub fn keeps(&self, client_id: &str, state: S) -> bool {
        self.client_id.is_none_or(|c| c == client_id) && self.state.is_none_or(|s| s == state)
    }
}

/// Durable (or in-memory) job state, shared by every replica. A job that
/// ends with an event its client asked for ([`NewJob::events`]) writes the
/// event to the store's [`Outbox`] in the same transaction.
#[async_trait::async_trait]
pub trait JobStore: Outbox + Send + Sync + 'static {
    /// Creates a job, or returns the one an earlier request with the same
    /// `(client_id, request_id)` created.
    async fn create(&self, job: NewJob) -> Result<CreateOutcome, StoreError>;
    /// The job with this id, whoever owns it.
    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError>;
    /// What `poll_job` shows of a job, whoever owns it: its arguments are
    /// not read, its result only once it is done.
    async fn status(&self, id: &str) -> Result<Option<JobStatus>, StoreError>;
    /// Jobs as `list_jobs` shows them, newest first: neither arguments
    /// nor results are read.
    async fn summaries(
        &self,
        which: Listing<'_, JobState>,
    ) -> Result<Vec<lacre_proto::builtin::JobSummary>, StoreError>;
    /// Jobs, newest first (every client's: operators, `lacre jobs --store`).
    async fn list(&self, which: Listing<'_, JobState>) -> Result<Vec<JobRecord>, StoreError>;
    /// Claims the oldest queued job for `lease_ms`.
    async fn claim(&self, now_ms: i64, lease_ms: i64) -> Result<Option<Claim>, StoreError>;
    /// Renews a lease and records progress.
    async fn heartbeat(&self, beat: Heartbeat<'_>) -> Result<LeaseStatus, StoreError>;
    /// Records the outcome; `false` when the fence is stale (someone else
    /// holds the job now, or it was cancelled) and nothing was written.
    async fn finish(&self, end: Finish<'_>) -> Result<bool, StoreError>;
    /// Cancels a client's queued or running job; `None` when the client has
    /// no such job. A finished job is returned unchanged.
    async fn cancel(
        &self,
        id: &str,
        client_id: &str,
        now_ms: i64,
    ) -> Result<Option<JobRecord>, StoreError>;
    /// Re-queues running jobs whose lease expired before `now_ms`, or fails
    /// them after `max_attempts` claims. Returns how many it touched.
    async fn rescue(&self, now_ms: i64, max_attempts: u32) -> Result<u64, StoreError>;
    /// Removes finished jobs and settled deliveries past retention, and idempotency records and
    /// nonces (stores that keep them) expired by more than the replicas'
    /// clock-skew allowance.
    async fn prune(&self, prune: Prune) -> Result<PruneStats, StoreError>;
    /// How many jobs are in each state (metrics).
    async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError>;
    /// A counter that moves whenever any job changes (wake-ups for
    /// workers and the webhook sender; spurious wake-ups are allowed).
    fn changes(&self) -> watch::Receiver<u64>;
    /// Told when a job may have become claimable: idle workers wait on it
    /// rather than on every change (a claim, a finish or a progress report
    /// makes no job claimable, and waking every idle worker for each would
    /// have them all run a claim that finds nothing). `None`: the store
    /// does not say, and workers wait on [`JobStore::changes`].
    fn work_signal(&self) -> Option<Arc<WorkSignal>> {
        None
    }
    /// Wakes at changes of job `id` (long polls; spurious wake-ups are
    /// allowed, missed ones are not, within one replica; across replicas a
    /// lost notification is covered by the caller's fallback poll).
    fn watch_job(&self, id: &str) -> JobWatch;
}

/// A progress report: fraction done and an optional message.
pub type ProgressReport = (f64, Option<String>);

/// What a running handler sees: who it runs for, a way to report progress,
/// and whether it was cancelled.
#[derive(Clone)]
pub struct JobContext {
    pub(crate) job_id: String,
    pub(crate) args: Arc<Map>,
    pub(crate) attempt: u32,
    pub(crate) progress: Arc<watch::Sender<Option<ProgressReport>>>,
    pub(crate) cancelled: watch::Receiver<bool>,
}

impl JobContext {
    /// The job's id.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// The job's arguments exactly as the client sent them (the typed
    /// arguments went through serde, which rounds integers beyond 64 bits).
    pub fn raw_args(&self) -> &Map {
        &self.args
    }

    /// Which claim this is (1 for the first run). A job whose worker died is
    /// run again, so handlers with side effects should use
    /// `(job_id, attempt)` to be idempotent.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Reports progress (`fraction` is clamped to `[0, 1]`); it is stored
    /// with the next heartbeat and shown to pollers.
    pub fn progress(&self, fraction: f64, message: impl Into<String>) {
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.progress
            .send_replace(Some((fraction, Some(message.into()))));
    }

    /// Whether the client cancelled the job.
    pub fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }

    /// Resolves when the job is cancelled (never, if it is not).
    pub async fn cancelled(&self) {
        let mut rx = self.cancelled.clone();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
