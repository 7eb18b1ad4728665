//! The worker pool: claims queued jobs, runs their handlers, keeps their
//! leases alive, and records the outcome under the claim's fencing token.

use super::{
    Claim, Finish, Heartbeat, JobContext, JobOutcome, JobStore, LeaseStatus, Prune, Wake,
    WorkSignal,
};
use crate::catalog::Catalog;
use crate::tool::{Handler, Registry, ToolError};
use arc_swap::ArcSwap;
use lacre_proto::Clock;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How soon after its start a running job's lease is first renewed (or
/// the heartbeat interval, if shorter): the renewal that finds a cancel
/// made before the worker watched the job.
const FIRST_LOOK: Duration = Duration::from_millis(100);

/// Tuning of the worker pool.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs run at once by this process.
    pub concurrency: usize,
    /// How long a claim lasts without a heartbeat.
    pub lease_ms: i64,
    /// How often a running job's lease is renewed.
    pub heartbeat_ms: u64,
    /// Fallback poll for new jobs when no wake-up arrives.
    pub poll_interval_ms: u64,
    /// Claims before a job whose workers keep dying is failed.
    pub max_attempts: u32,
    /// How long finished jobs (and idempotency records) are kept.
    pub retention_ms: i64,
    /// How often expired leases are rescued and old jobs pruned.
    pub maintenance_interval_ms: u64,
    /// How far apart the replicas' clocks may be (see [`Prune`]).
    pub replica_skew_ms: i64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 16,
            lease_ms: 30_000,
            heartbeat_ms: 5_000,
            poll_interval_ms: 1_000,
            max_attempts: 3,
            retention_ms: 24 * 3600 * 1000,
            maintenance_interval_ms: 5_000,
            replica_skew_ms: super::DEFAULT_REPLICA_SKEW_MS,
        }
    }
}

/// A running pool of workers.
pub struct Workers {
    handles: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

struct Shared {
    config: WorkerConfig,
    store: Arc<dyn JobStore>,
    /// The tools of the moment (a server's live catalog, or a fixed one).
    tools: Arc<ArcSwap<Catalog>>,
    clock: Arc<dyn Clock>,
}

impl Workers {
    /// Starts `config.concurrency` workers and one maintenance task.
    pub fn spawn(
        config: WorkerConfig,
        store: Arc<dyn JobStore>,
        registry: Arc<Registry>,
        clock: Arc<dyn Clock>,
    ) -> Workers {
        Workers::spawn_live(config, store, Catalog::fixed(registry), clock)
    }

    /// As [`Workers::spawn`], finding each job's tool in the catalog of
    /// the moment (a server whose tools change while it runs).
    pub fn spawn_live(
        config: WorkerConfig,
        store: Arc<dyn JobStore>,
        tools: Arc<ArcSwap<Catalog>>,
        clock: Arc<dyn Clock>,
    ) -> Workers {
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            config,
            store,
            tools,
            clock,
        });
        let mut handles = Vec::new();
        for _ in 0..shared.config.concurrency.max(1) {
            handles.push(tokio::spawn(worker_loop(
                Arc::clone(&shared),
                shutdown.subscribe(),
            )));
        }
        handles.push(tokio::spawn(maintenance_loop(
            Arc::clone(&shared),
            shutdown.subscribe(),
        )));
        Workers { handles, shutdown }
    }

    /// Stops claiming jobs and waits up to `grace` for running ones to end.
    /// Jobs still running then are abandoned; their leases expire and a
    /// replica (or this process after a restart) runs them again.
    pub async fn shutdown(self, grace: Duration) {
        self.shutdown.send_replace(true);
        let all = futures_join(self.handles);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("workers still busy after {grace:?}; abandoning their jobs");
        }
    }
}

async fn futures_join(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

async fn worker_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut changes = shared.store.changes();
    let work = shared.store.work_signal();
    let poll = Duration::from_millis(shared.config.poll_interval_ms.max(10));
    let mut seen = work.as_deref().map_or(0, WorkSignal::seen);
    // Whether to claim again after a job: at the start (jobs may be
    // waiting), after a sweep or a fallback poll, and always on a store
    // without a work signal; until a claim finds nothing. A worker woken
    // for one new job claims once: the signal counts any job created while
    // it ran (SPEC §10.4).
    let mut sweeping = true;
    // A job created already claimed for this worker (SPEC §10.4).
    let mut given: Option<Claim> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        changes.borrow_and_update();
        let claimed = match given.take() {
            Some(claim) => Ok(Some(claim)),
            None => {
                shared
                    .store
                    .claim(shared.clock.now_ms(), shared.config.lease_ms)
                    .await
            }
        };
        match claimed {
            Ok(Some(claim)) => {
                run_job(&shared, claim, &mut shutdown).await;
                if sweeping || work.is_none() {
                    continue;
                }
            }
            Ok(None) => sweeping = false,
            Err(e) => {
                tracing::warn!(error = %e, "job store claim failed");
            }
        }
        tokio::select! {
            wake = next_work(work.as_deref(), &mut changes, &mut seen, shared.config.lease_ms) => {
                sweeping = wake == Wake::Sweep;
                if let Wake::Given(claim) = wake {
                    given = Some(*claim);
                }
            }
            _ = tokio::time::sleep(poll) => sweeping = true,
            _ = shutdown.changed() => {}
        }
    }
}

/// Until a job may be claimable: the store's work signal, or (a store
/// without one) any change.
async fn next_work(
    work: Option<&WorkSignal>,
    changes: &mut watch::Receiver<u64>,
    seen: &mut u64,
    lease_ms: i64,
) -> Wake {
    match work {
        Some(w) => w.wait(seen, lease_ms).await,
        None => {
            let _ = changes.changed().await;
            Wake::Sweep
        }
    }
}

async fn run_job(shared: &Shared, claim: Claim, shutdown: &mut watch::Receiver<bool>) {
    let Claim { job, fence } = claim;
    let store = &shared.store;
    let now = || shared.clock.now_ms();
    let catalog = shared.tools.load_full();
    let handler_fut = match catalog.registry.get(&job.tool).map(|t| &t.handler) {
        Some(Handler::Job(h)) => {
            let (progress_tx, progress_rx) = watch::channel(None);
            let (cancel_tx, cancel_rx) = watch::channel(false);
            let ctx = JobContext {
                job_id: job.id.clone(),
                args: Arc::new(job.args.clone()),
                attempt: job.attempt,
                progress: Arc::new(progress_tx),
                cancelled: cancel_rx,
            };
            Some((h(job.args.clone(), ctx), progress_rx, cancel_tx))
        }
        _ => None,
    };
    let end = |outcome| Finish {
        id: &job.id,
        fence,
        outcome,
        now_ms: now(),
    };
    let Some((fut, mut progress_rx, cancel_tx)) = handler_fut else {
        let msg = format!(
            "tool {:?} is not a long-running tool on this server",
            job.tool
        );
        let _ = store.finish(end(JobOutcome::Failed(msg))).await;
        return;
    };
    // The handler runs in its own task so that a panic fails the job
    // instead of killing the worker, and cancellation can abort it.
    let mut task = tokio::spawn(fut);
    // The first renewal comes soon (a job cancelled between its claim and
    // the watch below left no change to see), then one every heartbeat.
    let every = Duration::from_millis(shared.config.heartbeat_ms.max(10));
    let first = tokio::time::Instant::now() + every.min(FIRST_LOOK);
    let mut heartbeat = tokio::time::interval_at(first, every);
    let beat = |progress| Heartbeat {
        id: &job.id,
        fence,
        now_ms: now(),
        lease_ms: shared.config.lease_ms,
        progress,
    };
    let mut draining = false;
    let mut progress_open = true;
    // A change of the job by someone else (a cancel, on this replica or,
    // through the store's notifications, on another) is looked at now,
    // not at the next heartbeat: a cancelled handler stops at once.
    let mut changes = store.watch_job(&job.id);
    loop {
        let mut progress = None;
        tokio::select! {
            joined = &mut task => {
                // Record the handler's last progress report before the
                // outcome. (Its context is gone by now, so the channel is
                // closed: `has_changed` would say no.)
                let last = {
                    let seen = progress_rx.borrow_and_update();
                    seen.has_changed().then(|| seen.clone())
                };
                if let Some(last) = last {
                    let _ = store.heartbeat(beat(last)).await;
                }
                let outcome = match joined {
                    Ok(Ok(result)) => JobOutcome::Done(result),
                    Ok(Err(ToolError::Requeue(why))) => {
                        // Nothing is recorded: the lease runs out and the
                        // job is re-queued as a lost worker's would be.
                        tracing::warn!(job_id = %job.id, reason = %why, "job handed back for another attempt");
                        return;
                    }
                    Ok(Err(e)) => JobOutcome::Failed(e.to_string()),
                    Err(e) if e.is_panic() => JobOutcome::Failed("tool panicked".to_owned()),
                    Err(_) => return,
                };
                match store.finish(end(outcome)).await {
                    Ok(true) => {}
                    Ok(false) => tracing::info!(job_id = %job.id, "job result discarded: claim superseded or cancelled"),
                    Err(e) => tracing::warn!(job_id = %job.id, error = %e, "could not record job result"),
                }
                return;
            }
            changed = progress_rx.changed(), if progress_open => {
                match changed {
                    Ok(()) => progress = progress_rx.borrow_and_update().clone(),
                    // The handler dropped its context: no more progress will
                    // come (and `changed` would now return at once, forever).
                    Err(_) => {
                        progress_open = false;
                        continue;
                    }
                }
            }
            _ = heartbeat.tick() => {}
            // Our own progress reports wake this too: one extra renewal
            // each, which notifies no one (nothing anyone waits for moved).
            _ = changes.changed() => {}
            _ = shutdown.changed(), if !draining => {
                // Keep running the job to completion (or until the grace ends).
                draining = true;
                continue;
            }
        }
        match store.heartbeat(beat(progress)).await {
            Ok(LeaseStatus::Held) => {}
            Ok(LeaseStatus::Cancelled) => {
                cancel_tx.send_replace(true);
                task.abort();
                tracing::info!(job_id = %job.id, "job cancelled");
                return;
            }
            Ok(LeaseStatus::Lost) => {
                task.abort();
                tracing::warn!(job_id = %job.id, "job lease lost to another worker");
                return;
            }
            Err(e) => tracing::warn!(job_id = %job.id, error = %e, "heartbeat failed"),
        }
    }
}

async fn maintenance_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let every = Duration::from_millis(shared.config.maintenance_interval_ms.max(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let now = shared.clock.now_ms();
        if let Err(e) = shared.store.rescue(now, shared.config.max_attempts).await {
            tracing::warn!(error = %e, "lease rescue failed");
        }
        let prune = Prune {
            now_ms: now,
            retention_ms: shared.config.retention_ms,
            replica_skew_ms: shared.config.replica_skew_ms,
        };
        if let Err(e) = shared.store.prune(prune).await {
            tracing::warn!(error = %e, "pruning failed");
        }
    }
}
