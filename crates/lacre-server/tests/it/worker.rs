//! The worker pool against a store that counts what it is asked.

use lacre_proto::builtin::JobSummary;
use lacre_proto::Map;
use lacre_server::error::StoreError;
use lacre_server::jobs::{
    Claim, CreateOutcome, Finish, Heartbeat, JobRecord, JobState, JobStatus, JobStore, JobWatch,
    LeaseStatus, Listing, MemoryJobStore, NewJob, Prune, PruneStats, WorkerConfig,
};
use lacre_server::webhooks::{
    Attempt, Delivery, DeliveryClaim, DeliveryState, DisabledEndpoint, Outbox, RetrySelector,
};
use lacre_server::{Registry, ToolArgs, ToolError};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A memory store that counts what it is asked.
#[derive(Default)]
pub struct Counting {
    inner: MemoryJobStore,
    heartbeats: AtomicUsize,
    finishes: AtomicUsize,
    claims: AtomicUsize,
    /// Whether `watch_job` hands out watches that never fire (a worker
    /// that learns of a takeover only at its next heartbeat).
    blind: std::sync::atomic::AtomicBool,
    /// Where the blind watches come from: nobody notifies them.
    unheard: Arc<lacre_server::jobs::JobWatchers>,
    /// Whether `watch_job` first cancels the job (as client `c`): a cancel
    /// that lands after the claim, before the worker watches the job.
    cancel_at_watch: std::sync::atomic::AtomicBool,
    /// Whole records read (`get`, `list`): arguments and results included.
    pub whole_reads: AtomicUsize,
    /// `status` reads of each job.
    pub status_reads: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

#[async_trait::async_trait]
impl JobStore for Counting {
    async fn create(&self, job: NewJob) -> Result<CreateOutcome, StoreError> {
        self.inner.create(job).await
    }
    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.whole_reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get(id).await
    }
    async fn status(&self, id: &str) -> Result<Option<JobStatus>, StoreError> {
        *self
            .status_reads
            .lock()
            .unwrap()
            .entry(id.to_owned())
            .or_default() += 1;
        self.inner.status(id).await
    }
    async fn summaries(&self, w: Listing<'_, JobState>) -> Result<Vec<JobSummary>, StoreError> {
        self.inner.summaries(w).await
    }
    async fn list(&self, w: Listing<'_, JobState>) -> Result<Vec<JobRecord>, StoreError> {
        self.whole_reads.fetch_add(1, Ordering::Relaxed);
        self.inner.list(w).await
    }
    async fn claim(&self, now: i64, lease: i64) -> Result<Option<Claim>, StoreError> {
        self.claims.fetch_add(1, Ordering::Relaxed);
        self.inner.claim(now, lease).await
    }
    async fn heartbeat(&self, beat: Heartbeat<'_>) -> Result<LeaseStatus, StoreError> {
        self.heartbeats.fetch_add(1, Ordering::Relaxed);
        self.inner.heartbeat(beat).await
    }
    async fn finish(&self, end: Finish<'_>) -> Result<bool, StoreError> {
        self.finishes.fetch_add(1, Ordering::SeqCst);
        self.inner.finish(end).await
    }
    async fn cancel(&self, id: &str, c: &str, now: i64) -> Result<Option<JobRecord>, StoreError> {
        self.inner.cancel(id, c, now).await
    }
    async fn rescue(&self, now: i64, max: u32) -> Result<u64, StoreError> {
        self.inner.rescue(now, max).await
    }
    async fn prune(&self, prune: Prune) -> Result<PruneStats, StoreError> {
        self.inner.prune(prune).await
    }
    async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        self.inner.count_by_state().await
    }
    fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes()
    }
    fn work_signal(&self) -> Option<Arc<lacre_server::jobs::WorkSignal>> {
        self.inner.work_signal()
    }
    fn watch_job(&self, id: &str) -> JobWatch {
        if self.cancel_at_watch.swap(false, Ordering::SeqCst) {
            // `watch_job` is not async: the cancel runs on a thread and a
            // runtime of its own, and is done before the watch starts.
            std::thread::scope(|s| {
                s.spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    rt.block_on(self.inner.cancel(id, "c", 1)).unwrap();
                });
            });
        }
        if self.blind.load(Ordering::SeqCst) {
            return self.unheard.watch(id);
        }
        self.inner.watch_job(id)
    }
}

#[async_trait::async_trait]
impl Outbox for Counting {
    async fn claim_delivery(
        &self,
        now: i64,
        lease: i64,
    ) -> Result<Option<DeliveryClaim>, StoreError> {
        self.inner.claim_delivery(now, lease).await
    }
    async fn record_attempt(&self, attempt: Attempt<'_>) -> Result<bool, StoreError> {
        self.inner.record_attempt(attempt).await
    }
    async fn deliveries(&self, w: Listing<'_, DeliveryState>) -> Result<Vec<Delivery>, StoreError> {
        self.inner.deliveries(w).await
    }
    async fn retry_deliveries(&self, w: RetrySelector<'_>, now: i64) -> Result<u64, StoreError> {
        self.inner.retry_deliveries(w, now).await
    }
    async fn disabled_endpoints(&self) -> Result<Vec<DisabledEndpoint>, StoreError> {
        self.inner.disabled_endpoints().await
    }
    async fn enable_endpoint(&self, c: &str) -> Result<bool, StoreError> {
        self.inner.enable_endpoint(c).await
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct SleepIn {}
impl ToolArgs for SleepIn {}

/// Job `j` of client `c` for `tool`, with no arguments and no limits.
fn job_j(tool: &str) -> NewJob {
    NewJob {
        id: "j".into(),
        client_id: "c".into(),
        request_id: "r".into(),
        request_hash: "h".into(),
        tool: tool.into(),
        args: Map::new(),
        now_ms: 0,
        idempotency_ttl_ms: 1000,
        max_jobs: u64::MAX,
        max_job_bytes: u64::MAX,
        events: lacre_server::webhooks::EventMask::NONE,
    }
}

#[tokio::test]
async fn a_handler_that_drops_its_context_does_not_spin_the_worker() {
    let store = Arc::new(Counting::default());
    let mut reg = Registry::new();
    // `_ctx` is dropped as soon as the future is built.
    reg.long_running("sleepy", "sleeps", |_a: SleepIn, _ctx| async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        Ok::<_, ToolError>(Map::new())
    });
    let config = WorkerConfig {
        concurrency: 1,
        heartbeat_ms: 200,
        ..WorkerConfig::default()
    };
    let workers = workers_on(&store, reg, config);
    store.create(job_j("sleepy")).await.unwrap();
    until(&store, "finished", |j| j.state == JobState::Done).await;
    // 600 ms at one heartbeat every 200 ms: a handful, not thousands.
    let n = store.heartbeats.load(Ordering::Relaxed);
    assert!(n <= 6, "{n} heartbeats for a 600 ms job");
    workers.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_new_job_wakes_one_idle_worker_not_all_of_them() {
    let store = Arc::new(Counting::default());
    let mut reg = Registry::new();
    reg.long_running("sleepy", "sleeps", |_a: SleepIn, _ctx| async move {
        Ok::<_, ToolError>(Map::new())
    });
    // Eight idle workers; polls far apart, so every claim below is a
    // worker that was woken.
    let config = WorkerConfig {
        concurrency: 8,
        poll_interval_ms: 60_000,
        ..WorkerConfig::default()
    };
    let workers = workers_on(&store, reg, config);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.claims.load(Ordering::SeqCst) < 8 {
        assert!(std::time::Instant::now() < deadline, "workers never looked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = store.claims.load(Ordering::SeqCst);
    store.create(job_j("sleepy")).await.unwrap();
    until(&store, "finished", |j| j.state == JobState::Done).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The woken worker's claim, and nothing more: no other worker woke,
    // and the one that ran the job did not look again (nothing was
    // created meanwhile). Woken by every change, the eight would claim
    // for the creation, the claim and the finish: some twenty times.
    let claims = store.claims.load(Ordering::SeqCst) - before;
    assert_eq!(claims, 1, "{claims} claims for one job");
    workers.shutdown(Duration::from_secs(1)).await;
}

/// Job `id` (request `id`) of client `c` for `tool`.
fn job_named(tool: &str, id: &str) -> NewJob {
    NewJob {
        id: id.into(),
        request_id: id.into(),
        ..job_j(tool)
    }
}

/// Waits (at most `secs`) until `n` jobs of `store` are done.
async fn until_done(store: &Counting, n: usize, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let done = store
            .inner
            .list(Listing::of("c", Some(JobState::Done), 1000))
            .await
            .unwrap()
            .len();
        if done == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{done} of {n} jobs done after {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn jobs_created_while_every_worker_is_busy_start_as_workers_free_up() {
    let store = Arc::new(Counting::default());
    let mut reg = Registry::new();
    reg.long_running("slow", "takes 100 ms", |_a: SleepIn, _ctx| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, ToolError>(Map::new())
    });
    // Two workers whose fallback poll would come only after a minute: each
    // job below must be picked up because it was counted, not polled for.
    let config = WorkerConfig {
        concurrency: 2,
        poll_interval_ms: 60_000,
        ..WorkerConfig::default()
    };
    let workers = workers_on(&store, reg, config);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..8 {
        store
            .create(job_named("slow", &format!("j{i}")))
            .await
            .unwrap();
    }
    // Eight jobs of 100 ms on two workers: about 400 ms.
    until_done(&store, 8, 10).await;
    workers.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn workers_started_on_a_full_queue_run_all_of_it() {
    let store = Arc::new(Counting::default());
    for i in 0..6 {
        store
            .create(job_named("quick", &format!("j{i}")))
            .await
            .unwrap();
    }
    let mut reg = Registry::new();
    reg.long_running("quick", "answers at once", |_a: SleepIn, _ctx| async move {
        Ok::<_, ToolError>(Map::new())
    });
    let config = WorkerConfig {
        concurrency: 1,
        poll_interval_ms: 60_000,
        ..WorkerConfig::default()
    };
    let workers = workers_on(&store, reg, config);
    until_done(&store, 6, 10).await;
    workers.shutdown(Duration::from_secs(1)).await;
}

/// Sets its flag when dropped (a handler's future aborted).
struct DropFlag(Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Workers (one, renewing every 10 s) on `store` with the tool `forever`,
/// which sleeps a minute, and the flag its handler sets when it is
/// stopped (its future dropped).
fn forever_on(store: &Arc<Counting>) -> (lacre_server::Workers, Arc<AtomicBool>) {
    let stopped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stopped);
    let mut reg = Registry::new();
    reg.long_running("forever", "sleeps a minute", move |_a: SleepIn, _ctx| {
        let guard = DropFlag(Arc::clone(&flag));
        async move {
            let _guard = guard;
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, ToolError>(Map::new())
        }
    });
    let config = WorkerConfig {
        concurrency: 1,
        // Without a look at the job's changes, a cancel would wait 10 s.
        heartbeat_ms: 10_000,
        ..WorkerConfig::default()
    };
    (workers_on(store, reg, config), stopped)
}

/// Waits (at most 2 s) for the handler of a cancelled job to stop.
async fn stops_soon(stopped: &AtomicBool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !stopped.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cancelled handler still runs after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_cancelled_job_stops_at_once_not_at_the_next_heartbeat() {
    let store = Arc::new(Counting::default());
    let (workers, stopped) = forever_on(&store);
    store.create(job_j("forever")).await.unwrap();
    until(&store, "running", |j| j.state == JobState::Running).await;
    assert!(!stopped.load(Ordering::SeqCst));
    store.cancel("j", "c", 1).await.unwrap();
    stops_soon(&stopped).await;
    workers.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_job_cancelled_before_its_worker_watches_it_stops_soon() {
    // Seen in CI: the cancel came between the claim and the worker's watch
    // of the job, so no change was left to see, and the handler ran on
    // until the next heartbeat (10 s here).
    let store = Arc::new(Counting::default());
    store.cancel_at_watch.store(true, Ordering::SeqCst);
    let (workers, stopped) = forever_on(&store);
    store.create(job_j("forever")).await.unwrap();
    stops_soon(&stopped).await;
    let job = store.get("j").await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    workers.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_report_made_just_before_the_handler_returns_is_kept() {
    // Seen with `start_long_task`: its "3/3 seconds" was lost, and the
    // finished job kept the message before it. The handler's context is
    // gone once it returns, and its last report was taken for none.
    let store = Arc::new(Counting::default());
    let mut reg = Registry::new();
    reg.long_running(
        "quick",
        "reports, then returns",
        |_a: SleepIn, ctx| async move {
            ctx.progress(0.5, "half way");
            tokio::time::sleep(Duration::from_millis(50)).await;
            ctx.progress(1.0, "all done");
            Ok::<_, ToolError>(Map::new())
        },
    );
    let workers = workers_on(&store, reg, WorkerConfig::default());
    // The worker sees the report and the end at once and takes either
    // first: ten jobs, so that the wrong order comes up.
    for i in 0..10 {
        let mut job = job_j("quick");
        job.id = format!("j{i}");
        job.request_id = format!("r{i}");
        store.create(job).await.unwrap();
        let done = until_job(&store, &format!("j{i}"), "done", |j| {
            j.state == JobState::Done
        })
        .await;
        assert_eq!(done.message.as_deref(), Some("all done"), "{done:?}");
        assert_eq!(done.progress, Some(1.0));
    }
    workers.shutdown(Duration::from_secs(1)).await;
}

/// A pool of workers on `store` running `reg`'s tools.
fn workers_on(store: &Arc<Counting>, reg: Registry, config: WorkerConfig) -> lacre_server::Workers {
    workers_at(store, reg, config, Arc::new(lacre_server::SystemClock))
}

/// A pool of workers on `store` running `reg`'s tools, on `clock`.
fn workers_at(
    store: &Arc<Counting>,
    reg: Registry,
    config: WorkerConfig,
    clock: Arc<dyn lacre_proto::Clock>,
) -> lacre_server::Workers {
    lacre_server::Workers::spawn(config, store.clone(), Arc::new(reg), clock)
}

/// A clock the test moves.
struct ManualClock(std::sync::atomic::AtomicI64);

impl lacre_proto::Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Waits (at most 5 s) until `check` holds for job `j`.
async fn until(store: &Counting, what: &str, check: impl Fn(&JobRecord) -> bool) -> JobRecord {
    until_job(store, "j", what, check).await
}

/// Waits (at most 5 s) until `check` holds for job `id`.
async fn until_job(
    store: &Counting,
    id: &str,
    what: &str,
    check: impl Fn(&JobRecord) -> bool,
) -> JobRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let job = store.get(id).await.unwrap().unwrap();
        if check(&job) {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {what}: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn lease_renewal_keeps_a_slow_job_from_running_twice() {
    let store = Arc::new(Counting::default());
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let mut reg = Registry::new();
    reg.long_running("slow", "outlives its lease", move |_a: SleepIn, _ctx| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            Ok::<_, ToolError>(Map::new())
        }
    });
    // A 300 ms lease, renewed every 100 ms, and a rescue pass every 50 ms
    // that re-queues any job whose lease ran out.
    let config = WorkerConfig {
        concurrency: 2,
        lease_ms: 300,
        heartbeat_ms: 100,
        maintenance_interval_ms: 50,
        poll_interval_ms: 20,
        ..WorkerConfig::default()
    };
    let workers = workers_on(&store, reg, config);
    store.create(job_j("slow")).await.unwrap();
    let done = until(&store, "done", |j| j.state == JobState::Done).await;
    assert_eq!(done.attempt, 1, "{done:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran twice");
    workers.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_panicking_job_fails_and_its_worker_goes_on() {
    let store = Arc::new(Counting::default());
    let mut reg = Registry::new();
    reg.long_running("boom", "panics", |_a: SleepIn, _ctx| async move {
        if std::hint::black_box(true) {
            panic!("on purpose");
        }
        Ok::<_, ToolError>(Map::new())
    });
    reg.long_running("fine", "answers", |_a: SleepIn, _ctx| async move {
        Ok::<_, ToolError>(Map::new())
    });
    let config = WorkerConfig {
        concurrency: 1,
        poll_interval_ms: 20,
        ..WorkerConfig::default()
    };
    let workers = workers_on(&store, reg, config);
    store.create(job_j("boom")).await.unwrap();
    let failed = until(&store, "failed", |j| j.state == JobState::Failed).await;
    assert_eq!(failed.error.as_deref(), Some("tool panicked"));
    assert_eq!(failed.attempt, 1);
    // The only worker is still there.
    let mut next = job_j("fine");
    next.id = "k".into();
    next.request_id = "r2".into();
    store.create(next).await.unwrap();
    until_job(&store, "k", "done: the worker died with the panic", |j| {
        j.state == JobState::Done
    })
    .await;
    workers.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_result_from_a_superseded_claim_is_discarded() {
    // Attempt 1 holds the job until the test lets it go; meanwhile its
    // lease runs out, the job is re-queued and attempt 2 claims it. When
    // attempt 1 answers while attempt 2 still runs, only the fence tells
    // the two apart: attempt 1's result must not be recorded.
    let store = Arc::new(Counting::default());
    store.blind.store(true, Ordering::SeqCst);
    let clock = Arc::new(ManualClock(std::sync::atomic::AtomicI64::new(1_000_000)));
    let gates: Arc<[tokio::sync::Notify; 2]> = Arc::new(Default::default());
    let g = Arc::clone(&gates);
    let mut reg = Registry::new();
    reg.long_running("tagged", "returns its attempt", move |_a: SleepIn, ctx| {
        let g = Arc::clone(&g);
        async move {
            let attempt = ctx.attempt();
            if let Some(gate) = usize::try_from(attempt - 1).ok().and_then(|i| g.get(i)) {
                gate.notified().await;
            }
            let mut result = Map::new();
            result.insert(
                "attempt".into(),
                lacre_proto::Value::from(i64::from(attempt)),
            );
            Ok::<_, ToolError>(result)
        }
    });
    let config = WorkerConfig {
        concurrency: 2,
        lease_ms: 1_000,
        // No renewal and no rescue pass of its own in this test's time.
        heartbeat_ms: 600_000,
        maintenance_interval_ms: 600_000,
        poll_interval_ms: 20,
        ..WorkerConfig::default()
    };
    let workers = workers_at(&store, reg, config, clock.clone());
    let mut job = job_j("tagged");
    job.now_ms = 1_000_000;
    store.create(job).await.unwrap();
    until(&store, "running", |j| j.state == JobState::Running).await;
    // The lease runs out; the job is re-queued (available 2 s later) and
    // claimed again once the clock gets there.
    clock.0.fetch_add(1_500, Ordering::SeqCst);
    assert_eq!(
        store
            .rescue(clock.0.load(Ordering::SeqCst), 3)
            .await
            .unwrap(),
        1
    );
    clock.0.fetch_add(3_000, Ordering::SeqCst);
    until(&store, "running attempt 2", |j| {
        j.state == JobState::Running && j.attempt == 2
    })
    .await;
    // Attempt 1 answers; its worker reports with the old fence.
    let finishes = store.finishes.load(Ordering::SeqCst);
    gates[0].notify_one();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.finishes.load(Ordering::SeqCst) == finishes {
        assert!(
            tokio::time::Instant::now() < deadline,
            "attempt 1 never reported"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let meanwhile = store.get("j").await.unwrap().unwrap();
    assert_eq!(
        (meanwhile.state, meanwhile.attempt, meanwhile.result),
        (JobState::Running, 2, None),
        "a superseded claim's result was recorded"
    );
    gates[1].notify_one();
    let done = until(&store, "done", |j| j.state == JobState::Done).await;
    assert_eq!(
        done.result.and_then(|r| r.get("attempt").cloned()),
        Some(lacre_proto::Value::from(2i64))
    );
    workers.shutdown(Duration::from_secs(1)).await;
}
