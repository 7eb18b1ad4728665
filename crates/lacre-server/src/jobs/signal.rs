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
//! When several jobs may have become claimable at once (a rescue, or a
//! replica that missed its notices), [`WorkSignal::all`] wakes every
//! waiting worker, and each one (and each busy one, once its job ends)
//! claims until it finds nothing.

use std::sync::{Mutex, MutexGuard};
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
}

/// Why [`WorkSignal::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A new job: claim once.
    One,
    /// Several jobs may be claimable: claim until the queue is empty.
    Sweep,
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

    /// Waits for work. `seen` is the caller's count of sweeps (from
    /// [`WorkSignal::seen`], kept up to date here): a sweep the caller has
    /// not seen, or a job counted while no worker was free, returns at once.
    pub async fn wait(&self, seen: &mut u64) -> Wake {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the state is read, so that a wake-up sent
        // after it (to every waiter, or to one) reaches this one.
        notified.as_mut().enable();
        {
            let mut s = self.state();
            if s.sweeps != *seen {
                *seen = s.sweeps;
                return Wake::Sweep;
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
        let s = self.state();
        if s.sweeps != *seen {
            *seen = s.sweeps;
            Wake::Sweep
        } else {
            Wake::One
        }
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
            signal.wait(&mut seen).await
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
            let at_once = tokio::time::timeout(Duration::from_millis(50), signal.wait(&mut seen));
            assert_eq!(at_once.await, Ok(Wake::One));
        }
        let third = tokio::time::timeout(Duration::from_millis(50), signal.wait(&mut seen));
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
        let next = tokio::time::timeout(Duration::from_millis(50), signal.wait(&mut busy_seen));
        assert_eq!(next.await, Ok(Wake::Sweep));
        // And only once.
        let again = tokio::time::timeout(Duration::from_millis(50), signal.wait(&mut busy_seen));
        assert!(again.await.is_err());
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_frees_its_place() {
        let signal = WorkSignal::default();
        let mut seen = signal.seen();
        let gave_up = tokio::time::timeout(Duration::from_millis(20), signal.wait(&mut seen));
        assert!(gave_up.await.is_err());
        // Nobody waits now: a new job is counted for the next to look, not
        // given to the worker that left.
        assert!(!signal.one());
        let next = tokio::time::timeout(Duration::from_millis(50), signal.wait(&mut seen));
        assert_eq!(next.await, Ok(Wake::One));
    }
}
