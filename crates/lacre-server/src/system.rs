//! The system tools: `server_identity` and the caller's own jobs
//! (`poll_job`, `cancel_job`, `list_jobs`). They are registered handlers
//! like any other tool, written against a [`SystemContext`] (the caller,
//! the job store, the clock and what this caller may see of the server);
//! the dispatcher routes to them once, by the registry, as it routes to
//! every tool. Every client may call them, whatever its allow-list.

use crate::error::CallError;
use crate::jobs::{JobRecord, JobState, JobStatus, JobStore, Listing};
use crate::tool::{Registry, ToolArgs, ToolOutcome};
use lacre_proto::builtin::{
    encode_result, CancelJobIn, CancelOutcome, DeliveryList, DeliverySummary, JobList, JobProgress,
    JobSummary, ListDeliveriesIn, ListJobsIn, PollJobIn, ServerIdentity, ServerIdentityIn,
    DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, MAX_WAIT_MS,
};
use lacre_proto::{Clock, Status};
use std::sync::Arc;
use std::time::Duration;

impl ToolArgs for ServerIdentityIn {}

impl ToolArgs for PollJobIn {
    fn validate(&self) -> Result<(), String> {
        match self.wait_ms {
            Some(w) if w > MAX_WAIT_MS => Err(format!(
                "wait_ms: must be between 0 and {MAX_WAIT_MS}, got {w}"
            )),
            _ => Ok(()),
        }
    }
}

impl ToolArgs for CancelJobIn {}

impl ToolArgs for ListJobsIn {
    fn validate(&self) -> Result<(), String> {
        let known = |s: &str| JobState::parse(s).is_some();
        let states = "queued, running, done, failed, cancelled";
        check_listing(self.state.as_deref(), known, states, self.limit)
    }
}

impl ToolArgs for ListDeliveriesIn {
    fn validate(&self) -> Result<(), String> {
        let known = |s: &str| crate::webhooks::DeliveryState::parse(s).is_some();
        let states = "pending, sending, delivered, failed";
        check_listing(self.state.as_deref(), known, states, self.limit)
    }
}

/// The arguments of a listing: a state among `states`, a limit in range.
fn check_listing(
    state: Option<&str>,
    known: impl Fn(&str) -> bool,
    states: &str,
    limit: Option<u64>,
) -> Result<(), String> {
    if let Some(s) = state.filter(|s| !known(s)) {
        return Err(format!("state: must be one of {states}, got {s:?}"));
    }
    match limit {
        Some(l) if !(1..=MAX_LIST_LIMIT).contains(&l) => Err(format!(
            "limit: must be between 1 and {MAX_LIST_LIMIT}, got {l}"
        )),
        _ => Ok(()),
    }
}

/// What a system tool sees of the server.
#[derive(Clone)]
pub struct SystemContext {
    /// The authenticated caller.
    pub client_id: String,
    /// The job store.
    pub jobs: Arc<dyn JobStore>,
    /// The server's clock.
    pub clock: Arc<dyn Clock>,
    /// The server as this caller may see it (only the tools it may call).
    pub identity: Arc<ServerIdentity>,
    /// The places this request holds (given back while a long poll waits).
    pub(crate) held: crate::dispatch::Held,
    /// The client's long-poll places and their number.
    pub(crate) long_polls: Option<(Arc<tokio::sync::Semaphore>, usize)>,
    /// Whether the caller has a webhook endpoint.
    pub(crate) has_webhook: bool,
}

impl SystemContext {
    /// What `poll_job` shows of one of the caller's jobs; someone else's
    /// job looks exactly like no job.
    async fn owned_job(&self, job_id: &str) -> Result<JobStatus, CallError> {
        match self.jobs.status(job_id).await? {
            Some(job) if job.client_id == self.client_id => Ok(job),
            _ => Err(CallError::UnknownJob(job_id.to_owned())),
        }
    }
}

fn encoded<T: serde::Serialize>(what: &'static str, status: Status, value: &T) -> ToolOutcome {
    encode_result(what, value)
        .map(|m| (status, m))
        .map_err(|e| CallError::Internal(e.to_string()))
}

/// The `poll_job` reply for a job as it is now.
pub(crate) fn job_reply(job: JobStatus) -> ToolOutcome {
    match job.state {
        JobState::Queued | JobState::Running => encoded(
            "job progress",
            Status::Running,
            &JobProgress {
                job_id: job.id,
                state: job.state,
                progress: job.progress.filter(|p| p.is_finite()),
                message: job.message,
                version: Some(job.version),
            },
        ),
        JobState::Done => Ok((Status::Done, job.result.unwrap_or_default())),
        JobState::Failed => Err(CallError::JobFailed(
            job.error.unwrap_or_else(|| "job failed".to_owned()),
        )),
        JobState::Cancelled => Err(CallError::JobCancelled),
    }
}

/// The `list_jobs` entry for a job.
pub fn job_summary(job: &JobRecord) -> JobSummary {
    JobSummary {
        job_id: job.id.clone(),
        tool: job.tool.clone(),
        state: job.state,
        created_ms: job.created_ms,
        updated_ms: job.updated_ms,
        progress: job.progress.filter(|p| p.is_finite()),
        message: job.message.clone(),
    }
}

async fn poll_job(args: PollJobIn, ctx: SystemContext) -> ToolOutcome {
    // Watch before the first read, so no change between the two is missed;
    // only this job's changes wake this poll.
    let mut changes = ctx.jobs.watch_job(&args.job_id);
    let mut job = ctx.owned_job(&args.job_id).await?;
    let wait = Duration::from_millis(args.wait_ms.unwrap_or(0));
    // What the caller has seen: the version it names, else this first read.
    let seen = args.since_version.unwrap_or(job.version);
    if !wait.is_zero() && !job.state.is_terminal() && job.version == seen {
        // A waiting long poll holds one of its client's long-poll places,
        // not a place among the requests in flight (a client's long polls
        // must not crowd out everyone's calls).
        let _long_poll = match &ctx.long_polls {
            Some((places, limit)) => match Arc::clone(places).try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    return Err(CallError::ClientLimit {
                        what: "too many long polls",
                        limit: *limit as u64,
                    })
                }
            },
            None => None,
        };
        ctx.held.release();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline) => break,
                // Fallback for stores whose other replicas cannot wake us
                // (or a missed wake-up): look again every second.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            job = ctx.owned_job(&args.job_id).await?;
            if job.version != seen {
                break;
            }
        }
    }
    job_reply(job)
}

async fn cancel_job(args: CancelJobIn, ctx: SystemContext) -> ToolOutcome {
    let now = ctx.clock.now_ms();
    match ctx.jobs.cancel(&args.job_id, &ctx.client_id, now).await? {
        Some(job) => encoded(
            "cancel outcome",
            Status::Ok,
            &CancelOutcome {
                job_id: job.id,
                state: job.state,
            },
        ),
        None => Err(CallError::UnknownJob(args.job_id)),
    }
}

async fn list_jobs(args: ListJobsIn, ctx: SystemContext) -> ToolOutcome {
    let state = args.state.as_deref().and_then(JobState::parse);
    let limit = usize::try_from(args.limit.unwrap_or(DEFAULT_LIST_LIMIT)).unwrap_or(100);
    let list = JobList {
        jobs: ctx
            .jobs
            .summaries(Listing::of(&ctx.client_id, state, limit))
            .await?,
    };
    encoded("job list", Status::Ok, &list)
}

async fn list_deliveries(args: ListDeliveriesIn, ctx: SystemContext) -> ToolOutcome {
    use crate::webhooks::DeliveryState;
    let state = args.state.as_deref().and_then(DeliveryState::parse);
    let limit = usize::try_from(args.limit.unwrap_or(DEFAULT_LIST_LIMIT)).unwrap_or(100);
    let found = ctx
        .jobs
        .deliveries(Listing::of(&ctx.client_id, state, limit))
        .await?;
    let disabled = ctx.jobs.disabled_endpoints().await?;
    let list = DeliveryList {
        configured: ctx.has_webhook,
        endpoint_disabled: disabled.iter().any(|e| e.client_id == ctx.client_id),
        deliveries: found
            .into_iter()
            .map(|d| DeliverySummary {
                next_attempt_ms: matches!(d.state, DeliveryState::Pending | DeliveryState::Sending)
                    .then_some(d.next_attempt_ms),
                webhook_id: d.id,
                job_id: d.job_id,
                event: d.event.as_str().to_owned(),
                state: d.state.as_str().to_owned(),
                attempts: d.attempts,
                created_ms: d.created_ms,
                last_status: d.last_status,
                last_error: d.last_error,
                delivered_ms: d.delivered_ms,
            })
            .collect(),
    };
    encoded("delivery list", Status::Ok, &list)
}

/// Registers the system tools.
pub fn register(reg: &mut Registry) {
    reg.system(
        "server_identity",
        "Who this server is: id, key fingerprint, protocol version, algorithms and the tools you may call.",
        |_: ServerIdentityIn, ctx: SystemContext| async move {
            encoded("server identity", Status::Ok, &*ctx.identity)
        },
    );
    reg.system(
        "poll_job",
        "State of one of your jobs; its result once done. With wait_ms, waits for a change (long poll).",
        poll_job,
    );
    reg.system(
        "cancel_job",
        "Cancels one of your queued or running jobs.",
        cancel_job,
    );
    reg.system(
        "list_jobs",
        "Your jobs, newest first, optionally only those in one state.",
        list_jobs,
    );
    reg.system(
        "list_deliveries",
        "The webhooks sent to your endpoint about your jobs, newest first: state, attempts, last answer.",
        list_deliveries,
    );
}
