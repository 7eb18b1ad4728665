//! The worker pool against a store that counts what it is asked.

use lacre_proto::builtin::JobSummary;
use lacre_proto::Map;
use lacre_server::error::StoreError;
use lacre_server::jobs::{
    Claim, CreateOutcome, Finish, Heartbeat, JobRecord, JobState, JobStatus, JobStore, JobWatch,
    LeaseStatus, MemoryJobStore, NewJob, Prune, PruneStats, WorkerConfig,
};
use lacre_server::{Registry, ToolArgs, ToolError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A memory store that counts what it is asked.
#[derive(Default)]
pub struct Counting {
    inner: MemoryJobStore,
    heartbeats: AtomicUsize,
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
    async fn summaries(
        &self,
        c: &str,
        s: Option<JobState>,
        l: usize,
    ) -> Result<Vec<JobSummary>, StoreError> {
        self.inner.summaries(c, s, l).await
    }
    async fn list(
        &self,
        c: &str,
        s: Option<JobState>,
        l: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        self.whole_reads.fetch_add(1, Ordering::Relaxed);
        self.inner.list(c, s, l).await
    }
    async fn list_all(&self, s: Option<JobState>, l: usize) -> Result<Vec<JobRecord>, StoreError> {
        self.inner.list_all(s, l).await
    }
    async fn claim(&self, now: i64, lease: i64) -> Result<Option<Claim>, StoreError> {
        self.inner.claim(now, lease).await
    }
    async fn heartbeat(&self, beat: Heartbeat<'_>) -> Result<LeaseStatus, StoreError> {
        self.heartbeats.fetch_add(1, Ordering::Relaxed);
        self.inner.heartbeat(beat).await
    }
    async fn finish(&self, end: Finish<'_>) -> Result<bool, StoreError> {
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
    fn watch_job(&self, id: &str) -> JobWatch {
        self.inner.watch_job(id)
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
    let workers = lacre_server::Workers::spawn(
        WorkerConfig {
            concurrency: 1,
            heartbeat_ms: 200,
            ..WorkerConfig::default()
        },
        store.clone(),
        Arc::new(reg),
        Arc::new(lacre_server::SystemClock),
    );
    store.create(job_j("sleepy")).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.get("j").await.unwrap().unwrap().state != JobState::Done {
        assert!(tokio::time::Instant::now() < deadline, "job never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 600 ms at one heartbeat every 200 ms: a handful, not thousands.
    let n = store.heartbeats.load(Ordering::Relaxed);
    assert!(n <= 6, "{n} heartbeats for a 600 ms job");
    workers.shutdown(Duration::from_secs(1)).await;
}

/// Sets its flag when dropped (a handler's future aborted).
struct DropFlag(Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_cancelled_job_stops_at_once_not_at_the_next_heartbeat() {
    let store = Arc::new(Counting::default());
    let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
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
    let workers = lacre_server::Workers::spawn(
        WorkerConfig {
            concurrency: 1,
            // Without a look at the job's changes, a cancel would wait 10 s.
            heartbeat_ms: 10_000,
            ..WorkerConfig::default()
        },
        store.clone(),
        Arc::new(reg),
        Arc::new(lacre_server::SystemClock),
    );
    store.create(job_j("forever")).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.get("j").await.unwrap().unwrap().state != JobState::Running {
        assert!(tokio::time::Instant::now() < deadline, "job never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!stopped.load(Ordering::SeqCst));
    store.cancel("j", "c", 1).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !stopped.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cancelled handler still runs after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    workers.shutdown(Duration::from_secs(1)).await;
}
