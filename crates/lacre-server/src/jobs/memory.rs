//! The in-memory job store: for tests, `lacre demo`, and single-process
//! deployments that accept losing jobs on restart.

use super::{
    Claim, CreateOutcome, Finish, Heartbeat, JobOutcome, JobRecord, JobState, JobStatus, JobStore,
    JobWatch, JobWatchers, LeaseStatus, Listing, NewJob, Prune, PruneStats, WorkSignal,
};
use crate::error::StoreError;
use crate::webhooks::{
    webhook_id, Attempt, AttemptOutcome, Delivery, DeliveryClaim, DeliveryState, DisabledEndpoint,
    EventType, Outbox, RetrySelector,
};
use lacre_proto::builtin::JobSummary;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::watch;

struct Entry {
    job: JobRecord,
    fence: u64,
    lease_until_ms: i64,
    available_at_ms: i64,
    /// The canonical size of its arguments (the client's byte limit).
    args_bytes: u64,
}

struct IdemRecord {
    request_hash: String,
    job_id: String,
    expires_at_ms: i64,
}

#[derive(Default)]
struct State {
    jobs: HashMap<String, Entry>,
    /// Queued job ids by client, each client's in the order they were
    /// queued, numbered in that order across clients (a claim looks at
    /// each client's first due job, not at the whole queue).
    queues: BTreeMap<String, VecDeque<(u64, String)>>,
    enqueued: u64,
    /// Each client's queued and running jobs and their arguments' bytes
    /// (its limits), kept as jobs start and end rather than counted.
    load: HashMap<String, (u64, u64)>,
    idempotency: HashMap<(String, String), IdemRecord>,
    /// Running jobs by client (fair claiming).
    running: HashMap<String, usize>,
    /// The webhook outbox, by `webhook-id`.
    deliveries: HashMap<String, Held>,
    /// Endpoints disabled by a 410, by client.
    disabled: HashMap<String, DisabledEndpoint>,
}

/// A delivery with its claim.
struct Held {
    d: Delivery,
    fence: u64,
    lease_until_ms: i64,
}

/// Writes the event of `job`'s final state, if its client asked for it
/// (under the same lock as the state change: one transaction).
fn raise(deliveries: &mut HashMap<String, Held>, job: &JobRecord, now_ms: i64) {
    let Some(event) = EventType::of_state(job.state).filter(|e| job.events.contains(*e)) else {
        return;
    };
    let id = webhook_id(&job.id, event);
    deliveries.entry(id.clone()).or_insert_with(|| Held {
        d: Delivery {
            id,
            client_id: job.client_id.clone(),
            job_id: job.id.clone(),
            request_id: job.request_id.clone(),
            event,
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_ms: now_ms,
            created_ms: now_ms,
            updated_ms: now_ms,
            last_status: None,
            last_error: None,
            delivered_ms: None,
        },
        fence: 0,
        lease_until_ms: 0,
    });
}

impl State {
    fn started(&mut self, client_id: &str) {
        *self.running.entry(client_id.to_owned()).or_default() += 1;
    }

    /// Puts job `id` of `client_id` at the end of its client's queue.
    fn enqueue(&mut self, client_id: &str, id: String) {
        self.enqueued += 1;
        let seq = self.enqueued;
        self.queues
            .entry(client_id.to_owned())
            .or_default()
            .push_back((seq, id));
    }

    /// The next job to claim: of the clients with a due job, the one with
    /// the fewest running jobs, and its oldest due job (the first queued
    /// among equals). Takes it off its queue.
    fn take_next(&mut self, now_ms: i64) -> Option<String> {
        let jobs = &self.jobs;
        let queued = |id: &String| {
            jobs.get(id)
                .is_some_and(|e| e.job.state == JobState::Queued)
        };
        let mut best: Option<(usize, u64, &String, usize)> = None;
        for (client, q) in self.queues.iter_mut() {
            // What was claimed or cancelled since it was queued.
            while q.front().is_some_and(|(_, id)| !queued(id)) {
                q.pop_front();
            }
            let due = q.iter().position(|(_, id)| {
                queued(id) && jobs.get(id).is_some_and(|e| e.available_at_ms <= now_ms)
            });
            let (Some(i), Some((seq, _))) = (due, due.and_then(|i| q.get(i))) else {
                continue;
            };
            let load = self.running.get(client).copied().unwrap_or(0);
            if best.is_none_or(|(l, s, _, _)| (load, *seq) < (l, s)) {
                best = Some((load, *seq, client, i));
            }
        }
        let taken = best.map(|(_, _, c, i)| (c.clone(), i));
        let id = taken.and_then(|(client, i)| self.queues.get_mut(&client)?.remove(i));
        // Clients whose queue emptied are forgotten.
        self.queues.retain(|_, q| !q.is_empty());
        id.map(|(_, id)| id)
    }
}

/// A job of `client_id` whose arguments take `bytes` ended (done, failed
/// or cancelled): its share of the client's limits is free again.
fn ended(load: &mut HashMap<String, (u64, u64)>, client_id: &str, bytes: u64) {
    if let Some((jobs, total)) = load.get_mut(client_id) {
        *jobs = jobs.saturating_sub(1);
        *total = total.saturating_sub(bytes);
        if *jobs == 0 {
            load.remove(client_id);
        }
    }
}

/// A job of `client_id` stopped running.
fn stopped(running: &mut HashMap<String, usize>, client_id: &str) {
    if let Some(n) = running.get_mut(client_id) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            running.remove(client_id);
        }
    }
}

/// Jobs in a `HashMap` behind a mutex.
pub struct MemoryJobStore {
    state: Mutex<State>,
    changes: watch::Sender<u64>,
    watchers: Arc<JobWatchers>,
    work: Arc<WorkSignal>,
}

impl Default for MemoryJobStore {
    fn default() -> Self {
        MemoryJobStore {
            state: Mutex::new(State::default()),
            changes: watch::channel(0).0,
            watchers: JobWatchers::new(),
            work: Arc::default(),
        }
    }
}

impl MemoryJobStore {
    /// An empty store.
    pub fn new() -> MemoryJobStore {
        MemoryJobStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the map is still consistent
        // because every mutation below is completed before the guard drops.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks a change of job `id` (`None`: of several jobs).
    fn bump(&self, id: Option<&str>) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
        match id {
            Some(id) => self.watchers.notify(id),
            None => self.watchers.notify_all(),
        }
    }

    /// The jobs `which` selects, newest first, as `view` makes them
    /// (without copying what the view does not need).
    fn newest_first<T>(
        &self,
        which: Listing<'_, JobState>,
        view: impl Fn(&JobRecord) -> T,
    ) -> Vec<T> {
        let st = self.lock();
        let jobs = st.jobs.values().map(|e| &e.job);
        newest(
            jobs,
            which,
            |j| (&j.client_id, j.state, j.created_ms, &j.id),
            view,
        )
    }

    /// Number of jobs held (all states).
    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Whether the store holds no job.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn touch(job: &mut JobRecord, now_ms: i64) {
    job.updated_ms = now_ms;
    job.version = job.version.wrapping_add(1);
}

/// The records `which` selects, newest first, as `view` makes them
/// (without copying what the view does not need).
/// `key` tells a record's owner, state, creation time and id (the order is
/// by creation time, then id).
fn newest<'r, R: 'r, S: Copy + PartialEq, T>(
    records: impl Iterator<Item = &'r R>,
    which: Listing<'_, S>,
    key: impl Fn(&R) -> (&String, S, i64, &String),
    view: impl Fn(&R) -> T,
) -> Vec<T> {
    let mut kept: Vec<&R> = records
        .filter(|r| {
            let (owner, state, _, _) = key(r);
            which.keeps(owner, state)
        })
        .collect();
    kept.sort_by(|a, b| {
        let ((_, _, a_ms, a_id), (_, _, b_ms, b_id)) = (key(a), key(b));
        (b_ms, b_id).cmp(&(a_ms, a_id))
    });
    kept.into_iter().take(which.limit).map(view).collect()
}

#[async_trait::async_trait]
impl JobStore for MemoryJobStore {
    async fn create(&self, job: NewJob) -> Result<CreateOutcome, StoreError> {
        let outcome = {
            let mut st = self.lock();
            let key = (job.client_id.clone(), job.request_id.clone());
            if let Some(rec) = st
                .idempotency
                .get(&key)
                .filter(|r| r.expires_at_ms > job.now_ms)
            {
                if rec.request_hash != job.request_hash {
                    return Ok(CreateOutcome::Conflict);
                }
                if let Some(e) = st.jobs.get(&rec.job_id) {
                    return Ok(CreateOutcome::Existing(e.job.clone()));
                }
            }
            // The client's share: checked after idempotency, so that a
            // retry of a job already created is answered, not refused.
            let (count, bytes) = st.load.get(&job.client_id).copied().unwrap_or((0, 0));
            let new_bytes = super::args_bytes(&job.args);
            if count >= job.max_jobs {
                return Ok(CreateOutcome::OverLimit(super::JobLimit::Jobs));
            }
            if bytes.saturating_add(new_bytes) > job.max_job_bytes {
                return Ok(CreateOutcome::OverLimit(super::JobLimit::Bytes));
            }
            let load = st.load.entry(job.client_id.clone()).or_default();
            load.0 += 1;
            load.1 = load.1.saturating_add(new_bytes);
            let record = JobRecord {
                id: job.id.clone(),
                client_id: job.client_id,
                request_id: job.request_id,
                tool: job.tool,
                args: job.args,
                state: JobState::Queued,
                progress: None,
                message: None,
                result: None,
                error: None,
                attempt: 0,
                created_ms: job.now_ms,
                updated_ms: job.now_ms,
                finished_ms: None,
                version: 1,
                events: job.events,
            };
            st.idempotency.insert(
                key,
                IdemRecord {
                    request_hash: job.request_hash,
                    job_id: job.id.clone(),
                    expires_at_ms: job.now_ms.saturating_add(job.idempotency_ttl_ms),
                },
            );
            st.enqueue(&record.client_id, job.id.clone());
            st.jobs.insert(
                job.id,
                Entry {
                    job: record.clone(),
                    fence: 0,
                    lease_until_ms: 0,
                    available_at_ms: job.now_ms,
                    args_bytes: new_bytes,
                },
            );
            CreateOutcome::Created(record)
        };
        // Nobody waits for a job that did not exist; a worker does.
        self.bump(Some(""));
        self.work.one();
        Ok(outcome)
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.lock().jobs.get(id).map(|e| e.job.clone()))
    }

    async fn list(&self, which: Listing<'_, JobState>) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self.newest_first(which, JobRecord::clone))
    }

    async fn claim(&self, now_ms: i64, lease_ms: i64) -> Result<Option<Claim>, StoreError> {
        let claim = {
            let mut st = self.lock();
            let st = &mut *st;
            // Fair between clients: the oldest available job of the client
            // with the fewest running jobs (one client's backlog does not
            // make every other client wait behind it).
            let Some(id) = st.take_next(now_ms) else {
                return Ok(None);
            };
            let Some(client) = st.jobs.get(&id).map(|e| e.job.client_id.clone()) else {
                return Ok(None);
            };
            st.started(&client);
            let Some(e) = st.jobs.get_mut(&id) else {
                return Ok(None);
            };
            e.fence += 1;
            e.lease_until_ms = now_ms.saturating_add(lease_ms);
            e.job.state = JobState::Running;
            e.job.attempt += 1;
            touch(&mut e.job, now_ms);
            Claim {
                job: e.job.clone(),
                fence: e.fence,
            }
        };
        self.bump(Some(&claim.job.id));
        Ok(Some(claim))
    }

    async fn heartbeat(&self, beat: Heartbeat<'_>) -> Result<LeaseStatus, StoreError> {
        let status = {
            let mut st = self.lock();
            let Some(e) = st.jobs.get_mut(beat.id) else {
                return Ok(LeaseStatus::Lost);
            };
            if e.job.state == JobState::Cancelled {
                return Ok(LeaseStatus::Cancelled);
            }
            if e.fence != beat.fence || e.job.state != JobState::Running {
                return Ok(LeaseStatus::Lost);
            }
            e.lease_until_ms = beat.now_ms.saturating_add(beat.lease_ms);
            let Some((fraction, message)) = beat.progress else {
                // A bare lease renewal changes nothing anyone waits for.
                return Ok(LeaseStatus::Held);
            };
            e.job.progress = Some(fraction);
            e.job.message = message;
            touch(&mut e.job, beat.now_ms);
            LeaseStatus::Held
        };
        self.bump(Some(beat.id));
        Ok(status)
    }

    async fn finish(&self, end: Finish<'_>) -> Result<bool, StoreError> {
        let Finish {
            id,
            fence,
            outcome,
            now_ms,
        } = end;
        {
            let mut st = self.lock();
            let st = &mut *st;
            let Some(e) = st.jobs.get_mut(id) else {
                return Ok(false);
            };
            if e.fence != fence || e.job.state != JobState::Running {
                return Ok(false);
            }
            stopped(&mut st.running, &e.job.client_id);
            ended(&mut st.load, &e.job.client_id, e.args_bytes);
            match outcome {
                JobOutcome::Done(result) => {
                    e.job.state = JobState::Done;
                    e.job.progress = Some(1.0);
                    e.job.result = Some(result);
                }
                JobOutcome::Failed(error) => {
                    e.job.state = JobState::Failed;
                    e.job.error = Some(error);
                }
            }
            e.job.finished_ms = Some(now_ms);
            touch(&mut e.job, now_ms);
            raise(&mut st.deliveries, &e.job, now_ms);
        }
        self.bump(Some(id));
        Ok(true)
    }

    async fn cancel(
        &self,
        id: &str,
        client_id: &str,
        now_ms: i64,
    ) -> Result<Option<JobRecord>, StoreError> {
        let job = {
            let mut st = self.lock();
            let st = &mut *st;
            let Some(e) = st.jobs.get_mut(id).filter(|e| e.job.client_id == client_id) else {
                return Ok(None);
            };
            if e.job.state.is_terminal() {
                return Ok(Some(e.job.clone()));
            }
            if e.job.state == JobState::Running {
                stopped(&mut st.running, client_id);
            }
            ended(&mut st.load, client_id, e.args_bytes);
            e.job.state = JobState::Cancelled;
            e.job.finished_ms = Some(now_ms);
            touch(&mut e.job, now_ms);
            raise(&mut st.deliveries, &e.job, now_ms);
            e.job.clone()
        };
        self.bump(Some(id));
        Ok(Some(job))
    }

    async fn rescue(&self, now_ms: i64, max_attempts: u32) -> Result<u64, StoreError> {
        let mut touched = 0;
        {
            let mut st = self.lock();
            let st = &mut *st;
            let mut requeued = Vec::new();
            for (id, e) in st.jobs.iter_mut() {
                if e.job.state != JobState::Running || e.lease_until_ms >= now_ms {
                    continue;
                }
                touched += 1;
                stopped(&mut st.running, &e.job.client_id);
                if e.job.attempt >= max_attempts {
                    ended(&mut st.load, &e.job.client_id, e.args_bytes);
                    e.job.state = JobState::Failed;
                    e.job.error = Some(format!("worker lost after {} attempts", e.job.attempt));
                    e.job.finished_ms = Some(now_ms);
                    raise(&mut st.deliveries, &e.job, now_ms);
                } else {
                    e.job.state = JobState::Queued;
                    e.available_at_ms =
                        now_ms.saturating_add(super::requeue_delay_ms(e.job.attempt));
                    requeued.push((e.job.client_id.clone(), id.clone()));
                }
                touch(&mut e.job, now_ms);
            }
            for (client_id, id) in requeued {
                st.enqueue(&client_id, id);
            }
        }
        if touched > 0 {
            self.bump(None);
            self.work.all();
        }
        Ok(touched)
    }

    async fn prune(&self, prune: Prune) -> Result<PruneStats, StoreError> {
        let Prune {
            now_ms,
            retention_ms,
            ..
        } = prune;
        let mut st = self.lock();
        let before_jobs = st.jobs.len();
        st.jobs.retain(|_, e| {
            e.job
                .finished_ms
                .is_none_or(|f| f.saturating_add(retention_ms) > now_ms)
        });
        let before_idem = st.idempotency.len();
        st.idempotency.retain(|_, r| r.expires_at_ms > now_ms);
        let before_deliveries = st.deliveries.len();
        st.deliveries.retain(|_, h| {
            !matches!(h.d.state, DeliveryState::Delivered | DeliveryState::Failed)
                || h.d.updated_ms.saturating_add(retention_ms) > now_ms
        });
        Ok(PruneStats {
            jobs: (before_jobs - st.jobs.len()) as u64,
            idempotency: (before_idem - st.idempotency.len()) as u64,
            nonces: 0,
            deliveries: (before_deliveries - st.deliveries.len()) as u64,
        })
    }

    async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        let st = self.lock();
        let mut counts: Vec<(JobState, u64)> = Vec::new();
        for e in st.jobs.values() {
            match counts.iter_mut().find(|(s, _)| *s == e.job.state) {
                Some((_, n)) => *n += 1,
                None => counts.push((e.job.state, 1)),
            }
        }
        counts.sort_by_key(|(s, _)| s.as_str());
        Ok(counts)
    }

    fn watch_job(&self, id: &str) -> JobWatch {
        self.watchers.watch(id)
    }

    async fn status(&self, id: &str) -> Result<Option<JobStatus>, StoreError> {
        Ok(self.lock().jobs.get(id).map(|e| JobStatus::of(&e.job)))
    }

    async fn summaries(&self, which: Listing<'_, JobState>) -> Result<Vec<JobSummary>, StoreError> {
        Ok(self.newest_first(which, crate::system::job_summary))
    }

    fn work_signal(&self) -> Option<Arc<WorkSignal>> {
        Some(Arc::clone(&self.work))
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[async_trait::async_trait]
impl Outbox for MemoryJobStore {
    async fn claim_delivery(
        &self,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<DeliveryClaim>, StoreError> {
        let mut st = self.lock();
        let st = &mut *st;
        let due = st
            .deliveries
            .values_mut()
            .filter(|h| match h.d.state {
                DeliveryState::Pending => {
                    h.d.next_attempt_ms <= now_ms && !st.disabled.contains_key(&h.d.client_id)
                }
                DeliveryState::Sending => h.lease_until_ms < now_ms,
                DeliveryState::Delivered | DeliveryState::Failed => false,
            })
            .min_by(|a, b| {
                (a.d.next_attempt_ms, a.d.created_ms, &a.d.id).cmp(&(
                    b.d.next_attempt_ms,
                    b.d.created_ms,
                    &b.d.id,
                ))
            });
        Ok(due.map(|h| {
            h.fence += 1;
            h.lease_until_ms = now_ms.saturating_add(lease_ms);
            h.d.state = DeliveryState::Sending;
            h.d.attempts = h.d.attempts.saturating_add(1);
            h.d.updated_ms = now_ms;
            DeliveryClaim {
                delivery: h.d.clone(),
                fence: h.fence,
            }
        }))
    }

    async fn record_attempt(&self, attempt: Attempt<'_>) -> Result<bool, StoreError> {
        let mut st = self.lock();
        let st = &mut *st;
        let Some(h) = st.deliveries.get_mut(attempt.id) else {
            return Ok(false);
        };
        if h.fence != attempt.fence || h.d.state != DeliveryState::Sending {
            return Ok(false);
        }
        let d = &mut h.d;
        let r = attempt.outcome.recorded(attempt.now_ms);
        d.updated_ms = attempt.now_ms;
        d.state = r.state;
        d.next_attempt_ms = r.next_attempt_ms.unwrap_or(d.next_attempt_ms);
        d.last_status = r.last_status;
        d.last_error = r.last_error;
        d.delivered_ms = r.delivered_ms;
        if attempt.outcome == AttemptOutcome::EndpointGone {
            st.disabled
                .entry(d.client_id.clone())
                .or_insert_with(|| DisabledEndpoint {
                    client_id: d.client_id.clone(),
                    disabled_ms: attempt.now_ms,
                    reason: format!("HTTP 410 Gone answering {}", d.id),
                });
        }
        Ok(true)
    }

    async fn deliveries(
        &self,
        which: Listing<'_, DeliveryState>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let st = self.lock();
        let held = st.deliveries.values().map(|h| &h.d);
        Ok(newest(
            held,
            which,
            |d| (&d.client_id, d.state, d.created_ms, &d.id),
            Clone::clone,
        ))
    }

    async fn retry_deliveries(
        &self,
        which: RetrySelector<'_>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut st = self.lock();
        let mut n = 0;
        for h in st.deliveries.values_mut() {
            let d = &mut h.d;
            let chosen = match which {
                RetrySelector::Id(id) => {
                    d.id == id && matches!(d.state, DeliveryState::Failed | DeliveryState::Pending)
                }
                RetrySelector::FailedOf(c) => d.client_id == c && d.state == DeliveryState::Failed,
                RetrySelector::AllFailed => d.state == DeliveryState::Failed,
            };
            if chosen {
                d.state = DeliveryState::Pending;
                d.attempts = 0;
                d.next_attempt_ms = now_ms;
                d.updated_ms = now_ms;
                n += 1;
            }
        }
        drop(st);
        if n > 0 {
            self.bump(None);
        }
        Ok(n)
    }

    async fn disabled_endpoints(&self) -> Result<Vec<DisabledEndpoint>, StoreError> {
        let mut list: Vec<DisabledEndpoint> = self.lock().disabled.values().cloned().collect();
        list.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(list)
    }

    async fn enable_endpoint(&self, client_id: &str) -> Result<bool, StoreError> {
        let enabled = self.lock().disabled.remove(client_id).is_some();
        if enabled {
            self.bump(None);
        }
        Ok(enabled)
    }
}
