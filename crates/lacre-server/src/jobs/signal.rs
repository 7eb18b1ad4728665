//! Waking idle workers: one for each new job, and only one.
//!
//! A worker that finds the queue empty waits here. A new job is given to a
//! waiting worker that no other job has been given to yet, and that worker
//! alone wakes; with none free, the job is counted, and the next worker to
//! look for work claims at once instead of waiting. So a job costs one
//! claim, not one claim for every idle worker (each finding nothing but
//! one), nor a second claim by the worker that ran it to find the queue
//! empty again.
//!
//! A store with replicas (PostgreSQL) tells the others of a new job only
//! when no worker of its own was free for it ([`WorkSignal::one`]): other
//! replicas' workers would otherwise race this one's for it, and all but
//! one find nothing.
//!
//! A store may also give a new job straight to a free waiting worker
//! ([`WorkSignal::reserve`]): it creates the job already claimed for it,
//! and the worker runs it without a claim of its own.
//!
//! When several jobs may have become claimable at once (a rescue, or a
//! replica that missed its notices), [`WorkSignal::all`] wakes every
//! waiting worker, and each one (and each busy one, once its job ends)
//! claims until it finds nothing.

use super::Claim;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Wakes idle workers: one for a new job, every one (each then claiming
/// until it finds nothing) when several jobs may have come back.
#[derive(Debug, Default)]
pub struct WorkSignal {
    notify: Notify,
    state: Mutex<Idle>,
}

#[derive(Debug, Default)]
struct Idle {
    /// Workers waiting in [`WorkSignal::wait`].
    waiting: usize,
    /// Of those, the ones a new job has been given to and woken.
    spoken_for: usize,
    /// Jobs announced while no waiting worker was free: as many of the
    /// next calls to [`WorkSignal::wait`] return at once.
    backlog: usize,
    /// How many times [`WorkSignal::all`] was called.
    sweeps: u64,
    /// Jobs created already claimed ([`Reserved::give`]), for the next
    /// worker that wakes or looks.
    given: VecDeque<Claim>,
    /// The lease the waiting workers take their jobs for.
    lease_ms: i64,
}

/// Why [`WorkSignal::wait`] returned.
#[derive(Debug, PartialEq)]
pub enum Wake {
    /// A new job: claim once.
    One,
    /// Several jobs may be claimable: claim until the queue is empty.
    Sweep,
    /// A job created already claimed for this worker: run it.
    Given(Box<Claim>),
}

/// A free waiting worker set aside for a job being created: the job is
/// written already claimed, for [`Reserved::lease_ms`], and handed over
/// with [`Reserved::give`]. Dropped unused, the worker is free again.
#[derive(Debug)]
pub struct Reserved {
    signal: Arc<WorkSignal>,
    lease_ms: i64,
    given: bool,
}

impl Reserved {
    /// The lease to claim the job for.
    pub fn lease_ms(&self) -> i64 {
        self.lease_ms
    }

    /// Hands the claimed job to the worker set aside for it (or, if that
    /// one gave up waiting meanwhile, to the next that wakes or looks).
    pub fn give(mut self, claim: Claim) {
        self.given = true;
        self.signal.state().given.push_back(claim);
        self.signal.notify.notify_one();
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if !self.given {
            let mut s = self.signal.state();
            s.spoken_for = s.spoken_for.saturating_sub(1);
        }
    }
}

impl WorkSignal {
    fn state(&self) -> MutexGuard<'_, Idle> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A job was created (here, or on another replica that said so). Wakes
    /// one waiting worker not yet spoken for and returns `true`; with none
    /// free, counts the job for the next worker to look (see
    /// [`WorkSignal::wait`]) and returns `false`.
    pub fn one(&self) -> bool {
        let mut s = self.state();
        let free = s.waiting > s.spoken_for;
        if free {
            s.spoken_for += 1;
        } else {
            s.backlog = s.backlog.saturating_add(1);
        }
        drop(s);
        if free {
            self.notify.notify_one();
        }
        free
    }

    /// Sets aside a free waiting worker, if there is one, for a job about
    /// to be created: see [`Reserved`].
    pub fn reserve(self: &Arc<Self>) -> Option<Reserved> {
        let mut s = self.state();
        if s.waiting <= s.spoken_for || s.lease_ms <= 0 {
            return None;
        }
        s.spoken_for += 1;
        Some(Reserved {
            signal: Arc::clone(self),
            lease_ms: s.lease_ms,
            given: false,
        })
    }

    /// Several jobs may be claimable: every waiting worker wakes, and the
    /// rest see it at their next [`WorkSignal::wait`]; each claims until it
    /// finds nothing.
    pub fn all(&self) {
        let mut s = self.state();
        s.sweeps = s.sweeps.wrapping_add(1);
        s.spoken_for = s.waiting;
        drop(s);
        self.notify.notify_waiters();
    }

    /// What a worker starting now has seen: the sweeps so far.
    pub fn seen(&self) -> u64 {
        self.state().sweeps
    }

    /// Waits for work, as a worker that claims jobs for `lease_ms`.
    /// `seen` is the caller's count of sweeps (from [`WorkSignal::seen`],
    /// kept up to date here): a job given to a worker, a sweep the caller
    /// has not seen, or a job counted while no worker was free, returns at
    /// once.
    pub async fn wait(&self, seen: &mut u64, lease_ms: i64) -> Wake {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the state is read, so that a wake-up sent
        // after it (to every waiter, or to one) reaches this one.
        notified.as_mut().enable();
        {
            let mut s = self.state();
            s.lease_ms = lease_ms;
            if let Some(wake) = s.pending(seen) {
                return wake;
            }
            if s.backlog > 0 {
                s.backlog -= 1;
                return Wake::One;
            }
            s.waiting += 1;
        }
        // Leaves the count whether woken or given up on (the caller's
        // fallback timer); a wake-up meant for one worker that is given up
        // on passes to another waiter (tokio's `Notified` does that).
        let mut leave = Leave {
            signal: self,
            woken: false,
        };
        notified.await;
        leave.woken = true;
        drop(leave);
        self.state().pending(seen).unwrap_or(Wake::One)
    }
}

impl Idle {
    /// A job given to a worker, else a sweep `seen` does not count yet.
    fn pending(&mut self, seen: &mut u64) -> Option<Wake> {
        if let Some(claim) = self.given.pop_front() {
            return Some(Wake::Given(Box::new(claim)));
        }
        if self.sweeps != *seen {
            *seen = self.sweeps;
            return Some(Wake::Sweep);
        }
        None
    }
}

/// Takes a worker out of the waiting count.
struct Leave<'a> {
    signal: &'a WorkSignal,
    woken: bool,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut s = self.signal.state();
        s.waiting = s.waiting.saturating_sub(1);
        if self.woken {
            s.spoken_for = s.spoken_for.saturating_sub(1);
        }
        s.spoken_for = s.spoken_for.min(s.waiting);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Starts a task waiting on `signal`; its result once woken.
    fn waiter(signal: &Arc<WorkSignal>) -> tokio::task::JoinHandle<Wake> {
        let signal = Arc::clone(signal);
        tokio::spawn(async move {
            let mut seen = signal.seen();
            signal.wait(&mut seen, 30_000).await
        })
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn a_new_job_wakes_one_waiter_and_two_jobs_two() {
        let signal = Arc::new(WorkSignal::default());
        let waiters: Vec<_> = (0..3).map(|_| waiter(&signal)).collect();
        settle().await;
        assert!(signal.one(), "three waiting, none spoken for");
        settle().await;
        assert_eq!(waiters.iter().filter(|w| w.is_finished()).count(), 1);
        // Two quick jobs before anyone runs: two different workers.
        assert!(signal.one());
        assert!(signal.one());
        assert!(!signal.one(), "all three are spoken for");
        settle().await;
        assert!(waiters.iter().all(|w| w.is_finished()));
        for w in waiters {
            assert_eq!(w.await.unwrap(), Wake::One);
        }
    }

    #[tokio::test]
    async fn a_job_nobody_was_free_for_is_claimed_by_the_next_to_look() {
        let signal = WorkSignal::default();
        assert!(!signal.one());
        assert!(!signal.one());
        let mut seen = signal.seen();
        for _ in 0..2 {
            let at_once =
                tokio::time::timeout(Duration::from_millis(50), signal.wait(&mut seen, 30_000));
            assert_eq!(at_once.await, Ok(Wake::One));
        }
        let third = tokio::time::timeout(Duration::from_millis(50), signal.wait(&mut seen, 30_000));
        assert!(third.await.is_err(), "only two were counted");
    }

    #[tokio::test]
    async fn a_sweep_wakes_every_waiter_and_reaches_the_busy_ones_later() {
        let signal = Arc::new(WorkSignal::default());
        let mut busy_seen = signal.seen();
        let waiters: Vec<_> = (0..2).map(|_| waiter(&signal)).collect();
        settle().await;
        signal.all();
        for w in waiters {
            assert_eq!(w.await.unwrap(), Wake::Sweep);
        }
        // A worker that was busy meanwhile sees it when it next waits.
        let next = tokio::time::timeout(
            Duration::from_millis(50),
            signal.wait(&mut busy_seen, 30_000),
        );
        assert_eq!(next.await, Ok(Wake::Sweep));
        // And only once.
        let again = tokio::time::timeout(
            Duration::from_millis(50),
            signal.wait(&mut busy_seen, 30_000),
        );
        assert!(again.await.is_err());
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_frees_its_place() {
        let signal = WorkSignal::default();
        let mut seen = signal.seen();
        let gave_up =
            tokio::time::timeout(Duration::from_millis(20), signal.wait(&mut seen, 30_000));
        assert!(gave_up.await.is_err());
        // Nobody waits now: a new job is counted for the next to look, not
        // given to the worker that left.
        assert!(!signal.one());
        let next = tokio::time::timeout(Duration::from_millis(50), signal.wait(&mut seen, 30_000));
        assert_eq!(next.await, Ok(Wake::One));
    }

    fn claim_of(id: &str) -> Claim {
        Claim {
            job: crate::jobs::JobRecord {
                id: id.to_owned(),
                client_id: "c".to_owned(),
                request_id: id.to_owned(),
                tool: "t".to_owned(),
                args: lacre_proto::Map::new(),
                state: crate::jobs::JobState::Running,
                progress: None,
                message: None,
                result: None,
                error: None,
                attempt: 1,
                created_ms: 0,
                updated_ms: 0,
                finished_ms: None,
                version: 1,
                events: crate::webhooks::EventMask::NONE,
            },
            fence: 1,
        }
    }

    #[tokio::test]
    async fn a_reserved_worker_is_given_its_job_and_an_unused_reservation_frees_it() {
        let signal = Arc::new(WorkSignal::default());
        assert!(signal.reserve().is_none(), "nobody waits");
        let w = waiter(&signal);
        settle().await;
        // Set aside and given back unused: the worker is free again, and
        // was not woken.
        let r = signal.reserve().expect("one worker waits");
        assert_eq!(r.lease_ms(), 30_000);
        assert!(signal.reserve().is_none(), "the only waiter is spoken for");
        drop(r);
        settle().await;
        assert!(!w.is_finished());
        // Set aside and given its job: it wakes with it.
        signal.reserve().expect("free again").give(claim_of("j"));
        assert_eq!(w.await.unwrap(), Wake::Given(Box::new(claim_of("j"))));
        // A job given while its worker was away goes to the next to look.
        let w = waiter(&signal);
        settle().await;
        let r = signal.reserve().unwrap();
        w.abort();
        let _ = w.await;
        r.give(claim_of("k"));
        let mut seen = signal.seen();
        let next = tokio::time::timeout(Duration::from_millis(50), signal.wait(&mut seen, 30_000));
        assert_eq!(next.await, Ok(Wake::Given(Box::new(claim_of("k")))));
    }
}
