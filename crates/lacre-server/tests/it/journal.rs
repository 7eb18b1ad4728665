//! The nonce journal on real files: replays refused before and after a
//! reopen, expired buckets dropped whole, damage at the tail cut off,
//! files it cannot trust refused, one process at a time.

use lacre_proto::{Clock, NonceError, NonceUse};
use lacre_server::{store, JournalError, NonceBackend, NonceJournal};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A clock the test moves.
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

const T0: i64 = 1_800_000_000_000;

fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "lacre-journal-{test}-{}",
        crate::support::unique("j")
    ));
    std::fs::create_dir_all(&d).unwrap();
    d.join("lacre.db-nonces")
}

fn used<'a>(client: &'a str, nonce: &'a str, now_ms: i64) -> NonceUse<'a> {
    NonceUse {
        client_id: client,
        nonce,
        expires_at_ms: now_ms + 300_000,
        now_ms,
    }
}

/// Records client `c`'s `nonce` at `T0`.
async fn record(j: &NonceJournal, nonce: &str) -> Result<(), NonceError> {
    j.check_and_record(&used("c", nonce, T0)).await
}

async fn open(dir: &Path, now_ms: i64) -> Arc<NonceJournal> {
    NonceJournal::open_with_clock(dir, false, Arc::new(TestClock(AtomicI64::new(now_ms))))
        .await
        .unwrap()
}

/// Drops the test's handle and waits until the journal is gone: its
/// sweeper holds it for the length of a sweep, and the lock goes with
/// the last holder.
async fn close(j: Arc<NonceJournal>) {
    let held = Arc::downgrade(&j);
    drop(j);
    for _ in 0..1000 {
        if held.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the journal was still held 10 s after the test let it go");
}

/// A closed journal in a folder of its own that has recorded `nonce`.
async fn journal_of(test: &str, nonce: &str) -> PathBuf {
    let d = dir(test);
    let j = open(&d, T0).await;
    assert_eq!(record(&j, nonce).await, Ok(()));
    close(j).await;
    d
}

fn bucket_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "nonces"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_replay_is_refused_before_and_after_a_reopen() {
    let d = dir("reopen");
    let j = open(&d, T0).await;
    assert_eq!(record(&j, "n1").await, Ok(()));
    assert_eq!(
        j.check_and_record(&used("c", "n1", T0 + 1)).await,
        Err(NonceError::Replayed)
    );
    // Another client's nonce of the same text is its own.
    assert_eq!(j.check_and_record(&used("c2", "n1", T0)).await, Ok(()));
    close(j).await;
    let j = open(&d, T0 + 10_000).await;
    assert_eq!(j.len(), 2);
    assert_eq!(
        j.check_and_record(&used("c", "n1", T0 + 10_000)).await,
        Err(NonceError::Replayed)
    );
    assert_eq!(
        j.check_and_record(&used("c", "n2", T0 + 10_000)).await,
        Ok(())
    );
}

#[tokio::test]
async fn a_second_process_cannot_hold_the_same_journal() {
    let d = dir("locked");
    let j = open(&d, T0).await;
    let again =
        NonceJournal::open_with_clock(&d, false, Arc::new(TestClock(AtomicI64::new(T0)))).await;
    assert!(
        matches!(again, Err(JournalError::Locked(_))),
        "{:?}",
        again.err()
    );
    close(j).await;
    open(&d, T0).await;
}

#[tokio::test]
async fn a_nonce_takes_twelve_bytes_on_disk() {
    let d = dir("size");
    let j = open(&d, T0).await;
    for i in 0..1000 {
        let n = format!("{:032x}", i * 7919);
        assert_eq!(
            j.check_and_record(&used("client-001", &n, T0)).await,
            Ok(())
        );
    }
    let files = bucket_files(&d);
    assert_eq!(files.len(), 1, "one expiry bucket: {files:?}");
    assert_eq!(std::fs::metadata(&files[0]).unwrap().len(), 16 + 12 * 1000);
    // In memory: a 16-byte slot and a control byte, at the table's load.
    assert!(
        j.memory_bytes() <= 1000 * 17 * 2 + 1024,
        "{}",
        j.memory_bytes()
    );
}

#[tokio::test]
async fn expired_buckets_are_forgotten_and_their_files_removed() {
    let d = dir("sweep");
    let j = open(&d, T0).await;
    assert_eq!(record(&j, "old").await, Ok(()));
    let later = T0 + 200_000;
    assert_eq!(j.check_and_record(&used("c", "new", later)).await, Ok(()));
    assert_eq!(bucket_files(&d).len(), 2);
    // Before the first bucket's end nothing goes.
    assert_eq!(j.sweep(T0 + 300_000).unwrap(), 0);
    // Past it (the bucket ends at most 10 s after the expiry): one file,
    // one nonce.
    assert_eq!(j.sweep(T0 + 311_000).unwrap(), 1);
    assert_eq!(j.len(), 1);
    assert_eq!(bucket_files(&d).len(), 1);
    // An expired pair may be used again (its envelope is fresh).
    assert_eq!(
        j.check_and_record(&used("c", "old", T0 + 311_000)).await,
        Ok(())
    );
    close(j).await;
    // A reopen long after drops what expired meanwhile without reading it.
    let j = open(&d, T0 + 2_000_000).await;
    assert_eq!(j.len(), 0);
    assert!(bucket_files(&d).is_empty());
}

#[tokio::test]
async fn a_digest_cut_short_by_a_crash_is_cut_off() {
    let d = journal_of("torn", "a").await;
    let file = bucket_files(&d).remove(0);
    // A crash in the middle of an append leaves part of a digest.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(&[0xAB; 5]);
    std::fs::write(&file, &bytes).unwrap();
    let j = open(&d, T0).await;
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 16 + 12);
    assert_eq!(record(&j, "a").await, Err(NonceError::Replayed));
    // Later appends stay aligned: both survive the next reopen.
    assert_eq!(record(&j, "b").await, Ok(()));
    close(j).await;
    let j = open(&d, T0).await;
    assert_eq!(j.len(), 2);
    assert_eq!(record(&j, "b").await, Err(NonceError::Replayed));
}

#[tokio::test]
async fn files_it_cannot_trust_stop_the_start() {
    let d = journal_of("foreign", "a").await;
    // Without the key, the digests mean nothing: every nonce in them
    // could be replayed, so the journal does not start.
    let key = d.join("key");
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let e = NonceJournal::open_with_clock(&d, false, Arc::new(TestClock(AtomicI64::new(T0)))).await;
    assert!(
        matches!(e, Err(JournalError::Foreign { .. })),
        "{:?}",
        e.err()
    );
    // Another key: the files were made with a different one.
    std::fs::write(&key, [9u8; 32]).unwrap();
    let e = NonceJournal::open_with_clock(&d, false, Arc::new(TestClock(AtomicI64::new(T0)))).await;
    let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("another key"), "{msg}");
    std::fs::write(&key, &saved).unwrap();
    // Not a journal file at all.
    let file = bucket_files(&d).remove(0);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let e = NonceJournal::open_with_clock(&d, false, Arc::new(TestClock(AtomicI64::new(T0)))).await;
    let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("not a nonce journal file"), "{msg}");
}

/// 64 tasks race, each nonce sent by two of them: how many were accepted
/// (exactly one of each pair should be, 32 * 50 in all).
async fn race(j: &Arc<NonceJournal>) -> usize {
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..64 {
        let j = j.clone();
        tasks.spawn(async move {
            let mut ok = 0;
            for i in 0..50 {
                let n = format!("n{}", (t / 2) * 50 + i);
                if j.check_and_record(&used("c", &n, T0)).await == Ok(()) {
                    ok += 1;
                }
            }
            ok
        });
    }
    let mut ok = 0;
    while let Some(n) = tasks.join_next().await {
        ok += n.unwrap();
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_fsync_every_concurrent_nonce_is_kept_once() {
    let d = dir("fsync");
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    let j = NonceJournal::open_with_clock(&d, true, clock.clone())
        .await
        .unwrap();
    assert_eq!(race(&j).await, 32 * 50);
    close(j).await;
    let j = NonceJournal::open_with_clock(&d, true, clock)
        .await
        .unwrap();
    assert_eq!(j.len(), 32 * 50);
}

/// With fsync, the caller that leads a sync can be dropped while it waits
/// for the disk (a client that hangs up, a request timeout): the sync's
/// news still goes out, and the next caller is not left waiting for ever.
#[tokio::test]
async fn with_fsync_a_caller_dropped_during_the_sync_does_not_stall_the_next() {
    let d = dir("fsync-drop");
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    let j = NonceJournal::open_with_clock(&d, true, clock)
        .await
        .unwrap();
    {
        let first = used("c", "n1", T0);
        let mut led = std::pin::pin!(j.check_and_record(&first));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        // Polled once: it has appended and is waiting for its sync.
        assert!(led.as_mut().poll(&mut cx).is_pending());
    }
    let next = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        j.check_and_record(&used("c", "n2", T0)),
    )
    .await;
    assert_eq!(
        next,
        Ok(Ok(())),
        "the next nonce waited for a sync that never reported"
    );
    // The dropped caller's nonce was journaled all the same.
    assert_eq!(record(&j, "n1").await, Err(NonceError::Replayed));
}

/// Many requests at once on one thread: each nonce is accepted once and
/// every accepted one is on disk after a reopen.
#[tokio::test]
async fn concurrent_nonces_are_each_accepted_once_and_kept() {
    let d = dir("groups");
    let j = open(&d, T0).await;
    assert_eq!(race(&j).await, 32 * 50);
    close(j).await;
    let j = open(&d, T0).await;
    assert_eq!(j.len(), 32 * 50);
}

/// A database written before the journal existed: its live nonces move
/// into the journal (still refused), the table is emptied.
#[tokio::test]
async fn nonces_in_the_sqlite_table_move_into_the_journal() {
    let (url, _dir) = crate::store_contract::sqlite_url("journal-import");
    let now = crate::support::now_ms();
    let old = store::open(&url).await.unwrap();
    let live = NonceUse {
        client_id: "c",
        nonce: "kept",
        expires_at_ms: now + 300_000,
        now_ms: now,
    };
    assert_eq!(old.nonces.check_and_record(&live).await, Ok(()));
    drop(old);
    let clock = Arc::new(lacre_server::SystemClock);
    let stores = store::open_journaled(&url, lacre_proto::ParseLimits::default(), false, clock)
        .await
        .unwrap();
    assert_eq!(stores.nonces.len(), 1);
    assert_eq!(
        stores.nonces.check_and_record(&live).await,
        Err(NonceError::Replayed)
    );
    // The table itself no longer has it: a store that reads the table
    // would take the pair (the journal is what refuses it now).
    let table = store::open(&url).await.unwrap();
    assert_eq!(table.nonces.check_and_record(&live).await, Ok(()));
    assert!(store::journal_dir(&url).unwrap().join("key").exists());
}
