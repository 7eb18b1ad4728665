//! Wake-ups per job: a long poll waits for its own job to change, not for
//! any change to any job (300 long polls each re-reading their job on every
//! change kept both cores busy).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::watch;

struct Entry {
    tx: watch::Sender<u64>,
    users: usize,
}

/// The jobs someone waits for, and how to wake them.
#[derive(Default)]
pub struct JobWatchers {
    jobs: Mutex<HashMap<String, Entry>>,
}

impl JobWatchers {
    /// A registry with no waiters.
    pub fn new() -> Arc<JobWatchers> {
        Arc::new(JobWatchers::default())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts watching job `id`; the watch ends when the result is dropped.
    pub fn watch(self: &Arc<Self>, id: &str) -> JobWatch {
        let mut jobs = self.lock();
        let entry = jobs.entry(id.to_owned()).or_insert_with(|| Entry {
            tx: watch::channel(0).0,
            users: 0,
        });
        entry.users += 1;
        let rx = entry.tx.subscribe();
        JobWatch {
            watchers: Arc::clone(self),
            id: id.to_owned(),
            rx,
        }
    }

    /// Wakes whoever waits for job `id` (nobody: nothing happens).
    pub fn notify(&self, id: &str) {
        if let Some(entry) = self.lock().get(id) {
            entry.tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// Wakes every waiter (a change whose job is not known, or notifications
    /// that may have been missed).
    pub fn notify_all(&self) {
        for entry in self.lock().values() {
            entry.tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// How many jobs are waited for (tests, metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no job is waited for.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A wait for one job's changes.
pub struct JobWatch {
    watchers: Arc<JobWatchers>,
    id: String,
    rx: watch::Receiver<u64>,
}

impl JobWatch {
    /// Resolves at the job's next change (or at once if it changed since
    /// the last call).
    pub async fn changed(&mut self) {
        // The sender lives as long as the entry, which this watch keeps.
        let _ = self.rx.changed().await;
    }
}

impl Drop for JobWatch {
    fn drop(&mut self) {
        let mut jobs = self.watchers.lock();
        if let Some(entry) = jobs.get_mut(&self.id) {
            entry.users -= 1;
            if entry.users == 0 {
                jobs.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_watched_job_wakes_and_entries_go_with_their_watchers() {
        let w = JobWatchers::new();
        let mut a = w.watch("a");
        let b = w.watch("b");
        assert_eq!(w.len(), 2);
        w.notify("b");
        let woke = tokio::time::timeout(std::time::Duration::from_millis(50), a.changed()).await;
        assert!(woke.is_err(), "a change of b woke a watcher of a");
        w.notify("a");
        tokio::time::timeout(std::time::Duration::from_secs(1), a.changed())
            .await
            .unwrap();
        drop(b);
        assert_eq!(w.len(), 1);
        drop(a);
        assert!(w.is_empty());
    }
}
