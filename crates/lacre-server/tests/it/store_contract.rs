//! The store contract: the same suite against the memory, SQLite and
//! PostgreSQL stores. PostgreSQL tests each get their own schema; without a
//! reachable PostgreSQL they are skipped with a message (and fail in CI).

use lacre_proto::{Map, NonceError, Value};
use lacre_server::jobs::{
    CreateOutcome, Finish, Heartbeat, JobLimit, JobOutcome, JobState, JobStore, LeaseStatus,
    Listing, NewJob, Prune,
};
use lacre_server::store::{self, Stores};
use std::sync::Arc;
use std::time::Duration;

pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A PostgreSQL URL in a fresh schema of its own, dropped when this guard
/// goes (the test passed or not).
pub struct PgSchema(String);

impl std::ops::Deref for PgSchema {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // A runtime of its own: the test's may be shutting down.
        let url = std::mem::take(&mut self.0);
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_schema(&url));
            }
        })
        .join();
    }
}

/// A PostgreSQL URL in a fresh schema, or `None` (skip) when PostgreSQL is
/// not reachable outside CI.
pub async fn pg_url(test: &str) -> Option<PgSchema> {
    let reachable = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect("127.0.0.1:5432"),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    if !reachable {
        assert!(
            std::env::var_os("CI").is_none() && std::env::var_os("LACRE_REQUIRE_ALL").is_none(),
            "{test}: PostgreSQL is required in CI but 127.0.0.1:5432 is not reachable"
        );
        // Past the harness's capture: the skip shows in cargo's output.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("SKIPPED {test}: PostgreSQL not reachable on 127.0.0.1:5432\n").as_bytes(),
        );
        return None;
    }
    let schema = format!(
        "lacre_t_{}_{}",
        std::process::id(),
        crate::support::unique("s").replace('-', "_")
    );
    Some(PgSchema(format!("{PG_URL}?schema={schema}")))
}

/// Drops a test schema (and everything in it).
async fn drop_schema(url: &str) {
    let Some((_, schema)) = url.split_once("?schema=") else {
        return;
    };
    if let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(PG_URL)
        .await
    {
        let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&pool)
            .await;
    }
}

pub fn sqlite_url(test: &str) -> (String, TempDir) {
    let dir = std::env::temp_dir().join(format!("lacre-{}-{}", test, crate::support::unique("db")));
    std::fs::create_dir_all(&dir).unwrap();
    (
        format!("sqlite://{}", dir.join("lacre.db").display()),
        TempDir(dir),
    )
}

/// A test's own folder, removed with what it holds when the test ends.
pub struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn args(n: i64) -> Map {
    let mut m = Map::new();
    m.insert("n".into(), Value::from(n));
    m
}

fn new_job(id: &str, client: &str, request: &str, hash: &str, now: i64) -> NewJob {
    NewJob {
        id: id.into(),
        client_id: client.into(),
        request_id: request.into(),
        request_hash: hash.into(),
        tool: "t".into(),
        args: args(1),
        now_ms: now,
        idempotency_ttl_ms: 1_000,
        max_jobs: u64::MAX,
        max_job_bytes: u64::MAX,
        events: lacre_server::webhooks::EventMask::NONE,
    }
}

/// Per-client job limits, checked after idempotency.
async fn job_limits(stores: &Stores) {
    let s = &stores.jobs;
    let limited = |id: &str, req: &str, max_jobs: u64, max_job_bytes: u64| NewJob {
        max_jobs,
        max_job_bytes,
        ..new_job(id, "lim", req, "h", 5_000)
    };
    assert!(matches!(
        s.create(limited("l1", "rl1", 2, u64::MAX)).await.unwrap(),
        CreateOutcome::Created(_)
    ));
    assert!(matches!(
        s.create(limited("l2", "rl2", 2, u64::MAX)).await.unwrap(),
        CreateOutcome::Created(_)
    ));
    assert_eq!(
        s.create(limited("l3", "rl3", 2, u64::MAX)).await.unwrap(),
        CreateOutcome::OverLimit(JobLimit::Jobs)
    );
    // A retry of a job already created is answered, limit or not.
    assert!(matches!(
        s.create(limited("l1-again", "rl1", 2, u64::MAX)).await.unwrap(),
        CreateOutcome::Existing(j) if j.id == "l1"
    ));
    // `args(1)` is 7 bytes (`{"n":1}`): two stored, room for no third.
    assert_eq!(
        s.create(limited("l4", "rl4", 10, 20)).await.unwrap(),
        CreateOutcome::OverLimit(JobLimit::Bytes)
    );
    assert!(s.get("l3").await.unwrap().is_none());
}

/// A job of client `one`, which has room for one job.
fn one(id: &str) -> NewJob {
    NewJob {
        max_jobs: 1,
        ..new_job(id, "one", &format!("r-{id}"), "h", 1_000)
    }
}

/// Creates job `id` of client `one`; its room is then full.
async fn start_one(s: &dyn JobStore, id: &str) {
    let created = s.create(one(id)).await.unwrap();
    assert!(
        matches!(created, CreateOutcome::Created(_)),
        "{id}: {created:?}"
    );
    let again = s.create(one("extra")).await.unwrap();
    assert_eq!(
        again,
        CreateOutcome::OverLimit(JobLimit::Jobs),
        "{id} fills it"
    );
}

/// Claims job `id`, which keeps the room full while it runs; its fence.
async fn claim_one(s: &dyn JobStore, id: &str) -> u64 {
    let c = s.claim(1_000, 1_000).await.unwrap().expect("due");
    assert_eq!(c.job.id, id);
    let again = s.create(one("extra")).await.unwrap();
    assert_eq!(again, CreateOutcome::OverLimit(JobLimit::Jobs), "{id} runs");
    c.fence
}

/// A heartbeat without progress that asks for a lease of `lease_ms`.
async fn beat(s: &dyn JobStore, id: &str, fence: u64, now_ms: i64, lease_ms: i64) -> LeaseStatus {
    let beat = Heartbeat {
        id,
        fence,
        now_ms,
        lease_ms,
        progress: None,
    };
    s.heartbeat(beat).await.unwrap()
}

/// Records `outcome` under `fence`: whether it counted.
async fn end(s: &dyn JobStore, id: &str, fence: u64, outcome: JobOutcome, now_ms: i64) -> bool {
    let end = Finish {
        id,
        fence,
        outcome,
        now_ms,
    };
    s.finish(end).await.unwrap()
}

/// A job's share of its client's limits is free again however it ends:
/// done, failed, cancelled while queued or while running, or given up by
/// the rescuer. (A client with room for one job, on a store of its own.)
async fn limits_free_at_every_end(stores: &Stores) {
    let s = &*stores.jobs;
    start_one(s, "queued-cancelled").await;
    s.cancel("queued-cancelled", "one", 1_000).await.unwrap();
    for (id, outcome) in [
        ("done", JobOutcome::Done(Map::new())),
        ("failed", JobOutcome::Failed("no".into())),
    ] {
        start_one(s, id).await;
        let fence = claim_one(s, id).await;
        let end = Finish {
            id,
            fence,
            outcome,
            now_ms: 1_000,
        };
        assert!(s.finish(end).await.unwrap());
    }
    start_one(s, "running-cancelled").await;
    claim_one(s, "running-cancelled").await;
    s.cancel("running-cancelled", "one", 1_000).await.unwrap();
    start_one(s, "lost").await;
    claim_one(s, "lost").await;
    assert_eq!(s.rescue(5_000, 1).await.unwrap(), 1);
    assert_eq!(
        s.get("lost").await.unwrap().unwrap().state,
        JobState::Failed
    );
    start_one(s, "last").await;
}

/// An idempotency key and the client's limits together: a full client is
/// refused whether its key is new or expired, without the refusal taking
/// the key; an expired key is taken over once there is room; a live key
/// whose job was pruned starts a new job, which a retry then finds.
async fn keys_and_limits(stores: &Stores) {
    let s = &stores.jobs;
    let full = |id: &str, req: &str, hash: &str, now: i64| NewJob {
        max_jobs: 1,
        ..new_job(id, "k", req, hash, now)
    };
    assert!(matches!(
        s.create(full("k1", "r1", "h1", 1_000)).await.unwrap(),
        CreateOutcome::Created(_)
    ));
    assert_eq!(
        s.create(full("k2", "r2", "h2", 1_500)).await.unwrap(),
        CreateOutcome::OverLimit(JobLimit::Jobs)
    );
    // r1's record expired at 2 000: the key is free, the client is not.
    assert_eq!(
        s.create(full("k3", "r1", "h3", 2_500)).await.unwrap(),
        CreateOutcome::OverLimit(JobLimit::Jobs)
    );
    // The refusal took nothing: the key expired is taken over once there is room.
    s.cancel("k1", "k", 2_600).await.unwrap();
    assert!(matches!(
        s.create(full("k3", "r1", "h3", 2_700)).await.unwrap(),
        CreateOutcome::Created(j) if j.id == "k3"
    ));
    s.cancel("k3", "k", 2_800).await.unwrap();
    // A key that outlives its job: a long-lived record, its job pruned.
    let lasting = NewJob {
        idempotency_ttl_ms: 1_000_000,
        ..full("k4", "r4", "h4", 3_000)
    };
    assert!(matches!(
        s.create(lasting).await.unwrap(),
        CreateOutcome::Created(_)
    ));
    s.cancel("k4", "k", 3_100).await.unwrap();
    let pruned = s.prune(prune(10_000, 1_000)).await.unwrap();
    assert_eq!(pruned.jobs, 3, "{pruned:?}");
    assert!(s.get("k4").await.unwrap().is_none());
    let again = NewJob {
        idempotency_ttl_ms: 1_000_000,
        ..full("k5", "r4", "h4", 10_000)
    };
    assert!(matches!(
        s.create(again).await.unwrap(),
        CreateOutcome::Created(j) if j.id == "k5"
    ));
    // The key now names the new job; the client is full again.
    assert!(matches!(
        s.create(full("k6", "r4", "h4", 10_100)).await.unwrap(),
        CreateOutcome::Existing(j) if j.id == "k5"
    ));
    assert_eq!(
        s.create(full("k6", "r4", "other", 10_100)).await.unwrap(),
        CreateOutcome::Conflict
    );
}

/// Claims are fair between clients: the next job is the oldest of the
/// client with the fewest running jobs, not the oldest overall.
async fn fair_claims(stores: &Stores) {
    let s = &stores.jobs;
    for i in 0..4 {
        s.create(new_job(
            &format!("fa{i}"),
            "busy",
            &format!("rfa{i}"),
            "h",
            10 + i,
        ))
        .await
        .unwrap();
    }
    s.create(new_job("fb0", "quiet", "rfb0", "h", 20))
        .await
        .unwrap();
    let first = s.claim(100, 10_000).await.unwrap().unwrap();
    assert_eq!(first.job.id, "fa0", "the oldest job goes first");
    let second = s.claim(100, 10_000).await.unwrap().unwrap();
    assert_eq!(
        second.job.id, "fb0",
        "the quiet client's job before the busy client's backlog"
    );
    let third = s.claim(100, 10_000).await.unwrap().unwrap();
    assert_eq!(third.job.id, "fa1");
}

/// The whole contract, against one store.
async fn contract(stores: Stores) {
    let s = &*stores.jobs;
    let mut changes = s.changes();
    changes.borrow_and_update();

    // create, get, idempotency
    let a = match s
        .create(new_job("job-a", "c1", "r1", "h1", 1_000))
        .await
        .unwrap()
    {
        CreateOutcome::Created(j) => j,
        other => panic!("{other:?}"),
    };
    assert_eq!(a.state, JobState::Queued);
    assert_eq!(a.args, args(1));
    assert!(
        changes.has_changed().unwrap(),
        "create must signal a change"
    );
    match s
        .create(new_job("job-a2", "c1", "r1", "h1", 1_001))
        .await
        .unwrap()
    {
        CreateOutcome::Existing(j) => assert_eq!(j.id, "job-a"),
        other => panic!("retry must return the same job: {other:?}"),
    }
    assert_eq!(
        s.create(new_job("job-a3", "c1", "r1", "other-hash", 1_002))
            .await
            .unwrap(),
        CreateOutcome::Conflict
    );
    // The same request id from another client is independent.
    assert!(matches!(
        s.create(new_job("job-b", "c2", "r1", "h1", 1_003))
            .await
            .unwrap(),
        CreateOutcome::Created(_)
    ));
    assert_eq!(s.get("job-a").await.unwrap().unwrap().id, "job-a");
    assert!(s.get("nope").await.unwrap().is_none());

    // claim takes the oldest queued job, with a fence
    let c1 = s.claim(2_000, 10_000).await.unwrap().unwrap();
    assert_eq!(c1.job.id, "job-a");
    assert_eq!(c1.job.state, JobState::Running);
    assert_eq!(c1.job.attempt, 1);
    let c2 = s.claim(2_000, 10_000).await.unwrap().unwrap();
    assert_eq!(c2.job.id, "job-b");
    assert!(s.claim(2_000, 10_000).await.unwrap().is_none());

    // heartbeat with progress moves the version; a wrong fence has lost the job
    let v0 = s.get("job-a").await.unwrap().unwrap().version;
    assert_eq!(
        s.heartbeat(Heartbeat {
            id: "job-a",
            fence: c1.fence,
            now_ms: 2_100,
            lease_ms: 10_000,
            progress: Some((0.5, Some("half".into())))
        })
        .await
        .unwrap(),
        LeaseStatus::Held
    );
    let j = s.get("job-a").await.unwrap().unwrap();
    assert!(j.version > v0);
    assert_eq!(j.progress, Some(0.5));
    assert_eq!(j.message.as_deref(), Some("half"));
    assert_eq!(
        beat(s, "job-a", c1.fence + 7, 2_100, 10_000).await,
        LeaseStatus::Lost
    );

    // finish: only the current fence counts, and only once
    assert!(!end(s, "job-a", c1.fence + 7, JobOutcome::Done(args(2)), 2_200).await);
    assert!(end(s, "job-a", c1.fence, JobOutcome::Done(args(2)), 2_200).await);
    assert!(
        !end(
            s,
            "job-a",
            c1.fence,
            JobOutcome::Failed("late".into()),
            2_300
        )
        .await
    );
    let done = s.get("job-a").await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Done);
    assert_eq!(done.result, Some(args(2)));
    assert_eq!(done.finished_ms, Some(2_200));

    // cancel: only by the owner; the running worker learns it at its heartbeat
    assert!(s.cancel("job-b", "c1", 2_400).await.unwrap().is_none());
    assert_eq!(
        s.cancel("job-b", "c2", 2_400).await.unwrap().unwrap().state,
        JobState::Cancelled
    );
    assert_eq!(
        beat(s, "job-b", c2.fence, 2_500, 10_000).await,
        LeaseStatus::Cancelled
    );
    assert!(!end(s, "job-b", c2.fence, JobOutcome::Done(args(3)), 2_600).await);
    // Cancelling a finished job changes nothing.
    assert_eq!(
        s.cancel("job-a", "c1", 2_700).await.unwrap().unwrap().state,
        JobState::Done
    );

    // a queued job that is cancelled is never claimed
    s.create(new_job("job-c", "c1", "r3", "h3", 3_000))
        .await
        .unwrap();
    s.cancel("job-c", "c1", 3_001).await.unwrap();
    assert!(s.claim(3_002, 10_000).await.unwrap().is_none());

    // lease expiry: the rescuer re-queues, the new claim fences out the old
    s.create(new_job("job-d", "c1", "r4", "h4", 4_000))
        .await
        .unwrap();
    let d1 = s.claim(4_000, 100).await.unwrap().unwrap();
    assert_eq!(s.rescue(4_050, 3).await.unwrap(), 0, "lease still valid");
    assert_eq!(s.rescue(4_200, 3).await.unwrap(), 1);
    assert_eq!(
        s.get("job-d").await.unwrap().unwrap().state,
        JobState::Queued
    );
    // Re-queued with the one backoff rule: 2 s after a first attempt.
    assert_eq!(lacre_server::jobs::requeue_delay_ms(1), 2_000);
    assert!(
        s.claim(4_200 + 1_999, 100).await.unwrap().is_none(),
        "re-queued with a backoff"
    );
    let d2 = s.claim(4_200 + 2_000, 100).await.unwrap().unwrap();
    assert_eq!(d2.job.id, "job-d");
    assert_eq!(d2.job.attempt, 2);
    assert!(d2.fence > d1.fence);
    assert!(!end(s, "job-d", d1.fence, JobOutcome::Done(args(9)), 6_201).await);
    assert_eq!(
        beat(s, "job-d", d1.fence, 6_201, 100).await,
        LeaseStatus::Lost
    );
    // after the last attempt the job fails
    assert_eq!(s.rescue(60_500, 2).await.unwrap(), 1);
    let failed = s.get("job-d").await.unwrap().unwrap();
    assert_eq!(failed.state, JobState::Failed);
    assert!(failed.error.unwrap().contains("2 attempts"));

    // list: newest first, by state, per client
    let mine = s.list(Listing::of("c1", None, 10)).await.unwrap();
    assert_eq!(
        mine.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["job-d", "job-c", "job-a"]
    );
    let done_only = s
        .list(Listing::of("c1", Some(JobState::Done), 10))
        .await
        .unwrap();
    assert_eq!(done_only.len(), 1);
    assert_eq!(s.list(Listing::of("c1", None, 1)).await.unwrap().len(), 1);
    assert_eq!(s.list(Listing::of("c2", None, 10)).await.unwrap().len(), 1);

    // status and summaries: what poll_job and list_jobs read, no more.
    let st = s.status("job-d").await.unwrap().unwrap();
    assert_eq!((st.state, st.client_id.as_str()), (JobState::Failed, "c1"));
    assert!(st.result.is_none());
    assert!(st.error.unwrap().contains("2 attempts"));
    assert!(s.status("no-such-job").await.unwrap().is_none());
    let done = s
        .list(Listing::of("c1", Some(JobState::Done), 10))
        .await
        .unwrap();
    let done_status = s.status(&done[0].id).await.unwrap().unwrap();
    assert_eq!(done_status.result, done[0].result);
    assert_eq!(done_status.version, done[0].version);
    let summaries = s.summaries(Listing::of("c1", None, 10)).await.unwrap();
    assert_eq!(
        summaries
            .iter()
            .map(|j| j.job_id.as_str())
            .collect::<Vec<_>>(),
        ["job-d", "job-c", "job-a"]
    );
    assert_eq!(summaries[0].state, JobState::Failed);
    assert_eq!(
        s.summaries(Listing::of("c1", Some(JobState::Done), 10))
            .await
            .unwrap()
            .len(),
        1
    );

    // prune: finished jobs past retention (a, b, c finished before 50 000;
    // d at 60 500 stays) and expired idempotency records
    let stats = s.prune(prune(100_000, 50_000)).await.unwrap();
    assert_eq!(stats.jobs, 3, "{stats:?}");
    assert_eq!(stats.idempotency, 4, "{stats:?}");
    assert!(s.get("job-a").await.unwrap().is_none());
    assert!(s.get("job-d").await.unwrap().is_some());
    // With its record pruned, the request id can start a new job.
    assert!(matches!(
        s.create(new_job("job-e", "c1", "r1", "h-new", 100_001))
            .await
            .unwrap(),
        CreateOutcome::Created(_)
    ));

    // nonces
    let n = &*stores.nonces;
    assert_eq!(record(n, "c1", "n1", 10_000, 1_000).await, Ok(()));
    assert_eq!(
        record(n, "c1", "n1", 10_000, 2_000).await,
        Err(NonceError::Replayed)
    );
    assert_eq!(record(n, "c2", "n1", 10_000, 2_000).await, Ok(()));
    // Once expired, the pair may be used again (its envelope is stale by then).
    assert_eq!(record(n, "c1", "n1", 30_000, 20_000).await, Ok(()));
    if stores.kind != store::StoreKind::Memory {
        let stats = s.prune(prune(40_000, 1_000_000)).await.unwrap();
        assert_eq!(stats.nonces, 2, "{stats:?}");
    }
}

/// replay_across_skewed_replicas: replica C's clock runs 15 s ahead of
/// replica B's on one database. C's pruning must leave the record B still
/// needs: B accepts timestamps up to its own window's edge, so a record
/// that is expired by C's clock is not yet expired by B's.
async fn skewed_pruning_keeps_records_a_slower_replica_needs(url: &str) {
    let b = store::open(url).await.unwrap();
    let c = store::open(url).await.unwrap();
    let (b_now, skew) = (1_000_000, 15_000);
    // The envelope's timestamp is at B's window edge: it expires at b_now.
    let used = nonce_use("c", "edge", b_now, b_now - 1);
    assert_eq!(b.nonces.check_and_record(&used).await, Ok(()));
    let c_prune = Prune {
        now_ms: b_now + skew,
        retention_ms: 1_000_000,
        replica_skew_ms: lacre_server::jobs::DEFAULT_REPLICA_SKEW_MS,
    };
    c.jobs.prune(c_prune).await.unwrap();
    // A fresh store object on B's side, so the refusal must come from the
    // database (a front set in memory would hide a pruned record).
    let b2 = store::open(url).await.unwrap();
    assert_eq!(
        b2.nonces.check_and_record(&used).await,
        Err(NonceError::Replayed),
        "the replay was accepted after a replica ahead pruned its record"
    );
    // Past the allowance, the record goes.
    let later = Prune {
        now_ms: b_now + lacre_server::jobs::DEFAULT_REPLICA_SKEW_MS + 1,
        ..c_prune
    };
    assert_eq!(c.jobs.prune(later).await.unwrap().nonces, 1);
}

/// A nonce recorded through one store object is refused through another on
/// the same database: the refusal comes from the database itself, not from
/// the in-memory front set of the first.
async fn replays_are_refused_by_the_database(url: &str) {
    let a = store::open(url).await.unwrap();
    let b = store::open(url).await.unwrap();
    assert_eq!(
        record(&*a.nonces, "c9", "shared", 50_000, 1_000).await,
        Ok(())
    );
    assert_eq!(
        record(&*b.nonces, "c9", "shared", 50_000, 2_000).await,
        Err(NonceError::Replayed)
    );
    // Expired records may be reused, through the database too.
    assert_eq!(
        record(&*b.nonces, "c9", "shared", 90_000, 60_000).await,
        Ok(())
    );
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    contract(store::open("memory").await.unwrap()).await;
    fair_claims(&store::open("memory").await.unwrap()).await;
    job_limits(&store::open("memory").await.unwrap()).await;
    limits_free_at_every_end(&store::open("memory").await.unwrap()).await;
    keys_and_limits(&store::open("memory").await.unwrap()).await;
}

/// Takes the SQLite database at `url` back to schema `version`: version
/// 5's objects dropped, then `more` (what the versions after `version` and
/// before 5 added), then the versions after it forgotten.
pub async fn back_to(url: &str, version: i64, more: &[&str]) {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect(url)
        .await
        .unwrap();
    let version_5 = [
        "DROP TRIGGER lacre_load_insert",
        "DROP TRIGGER lacre_load_update",
        "DROP TRIGGER lacre_load_delete",
        "DROP TABLE lacre_client_load",
    ];
    for statement in version_5.iter().chain(more) {
        sqlx::raw_sql(statement).execute(&pool).await.unwrap();
    }
    sqlx::query("DELETE FROM lacre_schema WHERE version > $1")
        .bind(version)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

/// A database of schema version 4, before SQLite kept each client's load
/// in a row of its own, is migrated with its clients' loads: its queued
/// and running jobs count toward their limits, its finished ones do not.
#[tokio::test]
async fn a_version_4_database_is_migrated_with_its_clients_loads() {
    let (url, _dir) = sqlite_url("migrate-v4");
    {
        let stores = store::open(&url).await.unwrap();
        let s = &stores.jobs;
        let create = |id: &str| s.create(new_job(id, "c", &format!("r-{id}"), "h", 1_000));
        create("done").await.unwrap();
        let c = s.claim(1_000, 60_000).await.unwrap().unwrap();
        let end = Finish {
            id: "done",
            fence: c.fence,
            outcome: JobOutcome::Done(Map::new()),
            now_ms: 1_000,
        };
        assert!(s.finish(end).await.unwrap());
        create("running").await.unwrap();
        assert_eq!(
            s.claim(1_000, 60_000).await.unwrap().unwrap().job.id,
            "running"
        );
        create("queued-1").await.unwrap();
        create("queued-2").await.unwrap();
    }
    back_to(&url, 4, &[]).await;
    let stores = store::open(&url).await.unwrap();
    let s = &stores.jobs;
    // Three jobs of 7 bytes hold the client's room: a fourth fits in 4
    // jobs and 28 bytes, a fifth in neither.
    let limited = |id: &str, max_jobs: u64, max_job_bytes: u64| NewJob {
        max_jobs,
        max_job_bytes,
        ..new_job(id, "c", &format!("r-{id}"), "h", 2_000)
    };
    assert!(matches!(
        s.create(limited("fourth", 4, 28)).await.unwrap(),
        CreateOutcome::Created(_)
    ));
    assert_eq!(
        s.create(limited("fifth", 4, u64::MAX)).await.unwrap(),
        CreateOutcome::OverLimit(JobLimit::Jobs)
    );
    assert_eq!(
        s.create(limited("fifth", 5, 28)).await.unwrap(),
        CreateOutcome::OverLimit(JobLimit::Bytes)
    );
}

/// A fresh database for one part of a test: its URL, and the guard that
/// removes it when dropped; `None` when the test is skipped.
type Fresh = Option<(String, Box<dyn std::any::Any>)>;

/// The contract of a durable store, each part on a database of its own
/// from `fresh`, and then what a reopened database still holds.
async fn durable_contract(fresh: impl AsyncFn(&str) -> Fresh) {
    let Some((url, _db)) = fresh("store_keeps_the_contract").await else {
        return;
    };
    contract(store::open(&url).await.unwrap()).await;
    if let Some((fair, _db)) = fresh("store_claims_fairly").await {
        fair_claims(&store::open(&fair).await.unwrap()).await;
        job_limits(&store::open(&fair).await.unwrap()).await;
    }
    if let Some((ends, _db)) = fresh("limits_free_at_every_end").await {
        limits_free_at_every_end(&store::open(&ends).await.unwrap()).await;
    }
    if let Some((keys, _db)) = fresh("keys_and_limits").await {
        keys_and_limits(&store::open(&keys).await.unwrap()).await;
    }
    // Reopening the database sees the same state: it is durable.
    let again = store::open(&url).await.unwrap();
    assert_eq!(
        again.jobs.get("job-e").await.unwrap().unwrap().state,
        JobState::Queued
    );
    replays_are_refused_by_the_database(&url).await;
    skewed_pruning_keeps_records_a_slower_replica_needs(&url).await;
}

#[tokio::test]
async fn sqlite_store_keeps_the_contract() {
    durable_contract(async |part: &str| -> Fresh {
        let (url, dir) = sqlite_url(part);
        Some((url, Box::new(dir) as Box<dyn std::any::Any>))
    })
    .await;
}

#[tokio::test]
async fn postgres_store_keeps_the_contract() {
    durable_contract(async |part: &str| -> Fresh {
        let schema = pg_url(&format!("postgres_{part}")).await?;
        Some((
            schema.to_string(),
            Box::new(schema) as Box<dyn std::any::Any>,
        ))
    })
    .await;
}

#[tokio::test]
async fn postgres_replicas_share_state_and_wake_each_other() {
    let Some(url) = pg_url("postgres_replicas_share_state_and_wake_each_other").await else {
        return;
    };
    let a = store::open(&url).await.unwrap();
    let b = store::open(&url).await.unwrap();
    let mut b_changes = b.jobs.changes();
    b_changes.borrow_and_update();
    a.jobs.create(new_job("x", "c", "r", "h", 1)).await.unwrap();
    // B hears about A's change through LISTEN/NOTIFY.
    tokio::time::timeout(Duration::from_secs(5), b_changes.changed())
        .await
        .expect("no notification from the other replica")
        .unwrap();
    assert!(b.jobs.get("x").await.unwrap().is_some());
    // A nonce recorded through A is a replay through B.
    assert_eq!(record(&*a.nonces, "c", "n", 1_000, 1).await, Ok(()));
    assert_eq!(
        record(&*b.nonces, "c", "n", 1_000, 2).await,
        Err(NonceError::Replayed)
    );
    // Concurrent claims never hand one job to two replicas.
    for i in 0..20 {
        a.jobs
            .create(new_job(&format!("j{i}"), "c", &format!("r{i}"), "h", 10))
            .await
            .unwrap();
    }
    let (ra, rb) = tokio::join!(
        async {
            let mut got = Vec::new();
            while let Some(c) = a.jobs.claim(100, 10_000).await.unwrap() {
                got.push(c.job.id);
            }
            got
        },
        async {
            let mut got = Vec::new();
            while let Some(c) = b.jobs.claim(100, 10_000).await.unwrap() {
                got.push(c.job.id);
            }
            got
        }
    );
    let mut all: Vec<String> = ra.into_iter().chain(rb).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "a job was claimed twice");
    assert_eq!(n, 21, "x plus 20 jobs");

    // A long poll on one replica wakes for its job's change on the other,
    // and not for another job's (the NOTIFY payload names the jobs).
    let claims: Vec<_> = [
        a.jobs.claim(200, 10_000).await,
        a.jobs.claim(200, 10_000).await,
    ]
    .into_iter()
    .filter_map(|c| c.unwrap())
    .collect();
    assert!(claims.is_empty(), "every job was claimed above");
    a.jobs
        .create(new_job("w1", "c", "rw1", "h", 300))
        .await
        .unwrap();
    a.jobs
        .create(new_job("w2", "c", "rw2", "h", 301))
        .await
        .unwrap();
    let mut watch_w1 = b.jobs.watch_job("w1");
    let c1 = a.jobs.claim(400, 10_000).await.unwrap().unwrap();
    let c2 = a.jobs.claim(400, 10_000).await.unwrap().unwrap();
    let other = if c1.job.id == "w1" { &c2 } else { &c1 };
    let progress = |id, fence| Heartbeat {
        id,
        fence,
        now_ms: 500,
        lease_ms: 10_000,
        progress: Some((0.5, None)),
    };
    // Drain the wake-ups of the claims themselves.
    let _ = tokio::time::timeout(Duration::from_millis(500), watch_w1.changed()).await;
    a.jobs
        .heartbeat(progress(&other.job.id, other.fence))
        .await
        .unwrap();
    let woke = tokio::time::timeout(Duration::from_millis(500), watch_w1.changed()).await;
    assert!(
        woke.is_err(),
        "a change of {} woke a poll of w1",
        other.job.id
    );
    let mine = if c1.job.id == "w1" { &c1 } else { &c2 };
    a.jobs.heartbeat(progress("w1", mine.fence)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), watch_w1.changed())
        .await
        .expect("a change of w1 on replica A wakes a poll of w1 on replica B");
}

/// Records `client_id`'s `nonce` (valid until `expires_at_ms`) at `now_ms`.
async fn record(
    nonces: &dyn lacre_server::NonceBackend,
    client_id: &str,
    nonce: &str,
    expires_at_ms: i64,
    now_ms: i64,
) -> Result<(), NonceError> {
    let used = nonce_use(client_id, nonce, expires_at_ms, now_ms);
    nonces.check_and_record(&used).await
}

fn nonce_use<'a>(
    client_id: &'a str,
    nonce: &'a str,
    expires_at_ms: i64,
    now_ms: i64,
) -> lacre_proto::NonceUse<'a> {
    lacre_proto::NonceUse {
        client_id,
        nonce,
        expires_at_ms,
        now_ms,
    }
}

/// Pruning by a single replica (no clock skew).
fn prune(now_ms: i64, retention_ms: i64) -> Prune {
    Prune {
        now_ms,
        retention_ms,
        replica_skew_ms: 0,
    }
}

#[tokio::test]
async fn stored_json_is_read_with_the_servers_limits_and_bad_rows_are_skipped() {
    // stored_json_limits: a server with raised [limits] accepts a 300 kB
    // string; it must read it back with the same limits, not the defaults.
    let (url, _dir) = sqlite_url("stored-limits");
    let raised = lacre_proto::ParseLimits {
        max_string_bytes: 512 * 1024,
        ..lacre_proto::ParseLimits::default()
    };
    let stores = store::open_with_limits(&url, raised).await.unwrap();
    let mut big = new_job("big", "c", "r-big", "h", 10);
    big.args
        .insert("s".into(), Value::from("x".repeat(300 * 1024)));
    stores.jobs.create(big).await.unwrap();
    stores
        .jobs
        .create(new_job("small", "c", "r-small", "h", 20))
        .await
        .unwrap();
    let got = stores.jobs.get("big").await.unwrap().unwrap();
    assert_eq!(
        got.args.get("s").and_then(Value::as_str).map(str::len),
        Some(300 * 1024)
    );
    assert_eq!(
        stores
            .jobs
            .list(Listing::of("c", None, 10))
            .await
            .unwrap()
            .len(),
        2
    );

    // One row that does not decode (damaged on disk) hides nothing else.
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE lacre_jobs SET args = '{' WHERE id = 'big'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let listed = stores.jobs.list(Listing::of("c", None, 10)).await.unwrap();
    assert_eq!(
        listed.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["small"]
    );
    assert!(matches!(
        stores.jobs.get("big").await,
        Err(lacre_server::StoreError::Corrupt(_))
    ));
    drop(stores);
}

/// durable_replay_under_concurrency: the same nonce sent to two replicas at
/// the same instant is accepted exactly once, and one replica's group
/// commits that mix fresh and replayed nonces get each one right.
async fn concurrent_nonces_are_accepted_once(url: &str) {
    let a = store::open(url).await.unwrap();
    let b = store::open(url).await.unwrap();
    // 20 attempts at one nonce, alternating replicas, all at once.
    let attempts: Vec<_> = (0..20)
        .map(|i| {
            let n = if i % 2 == 0 {
                a.nonces.clone()
            } else {
                b.nonces.clone()
            };
            tokio::spawn(async move { record(&*n, "race", "same", 1_000_000, 1).await })
        })
        .collect();
    let mut accepted = 0;
    for t in attempts {
        match t.await.unwrap() {
            Ok(()) => accepted += 1,
            Err(e) => assert_eq!(e, NonceError::Replayed),
        }
    }
    assert_eq!(accepted, 1, "one nonce accepted {accepted} times");
    // 25 nonces, each sent twice, concurrently through one replica's
    // batched store: each accepted exactly once.
    let batch: Vec<_> = (0..50)
        .map(|i| {
            let n = a.nonces.clone();
            tokio::spawn(async move {
                let nonce = format!("mixed-{}", i % 25);
                (
                    i % 25,
                    n.check_and_record(&nonce_use("mix", &nonce, 1_000_000, 1))
                        .await,
                )
            })
        })
        .collect();
    let mut per_nonce = [0u32; 25];
    for t in batch {
        let (k, outcome) = t.await.unwrap();
        if outcome == Ok(()) {
            per_nonce[k] += 1;
        } else {
            assert_eq!(outcome, Err(NonceError::Replayed));
        }
    }
    assert!(per_nonce.iter().all(|n| *n == 1), "{per_nonce:?}");
}

#[tokio::test]
async fn sqlite_accepts_a_nonce_once_under_concurrency() {
    let (url, _dir) = sqlite_url("nonce-race");
    concurrent_nonces_are_accepted_once(&url).await;
}

#[tokio::test]
async fn postgres_accepts_a_nonce_once_under_concurrency() {
    let Some(url) = pg_url("postgres_accepts_a_nonce_once_under_concurrency").await else {
        return;
    };
    concurrent_nonces_are_accepted_once(&url).await;
}

/// A worker waiting on `work` (lease 10 s), after `counted` wake-ups for
/// jobs counted while nobody was free; what wakes it next.
fn idle_worker(
    work: &Arc<lacre_server::jobs::WorkSignal>,
    counted: usize,
) -> tokio::task::JoinHandle<lacre_server::jobs::Wake> {
    let work = Arc::clone(work);
    tokio::spawn(async move {
        let mut seen = work.seen();
        for _ in 0..counted {
            let first = work.wait(&mut seen, 10_000).await;
            assert_eq!(first, lacre_server::jobs::Wake::One, "a counted job");
        }
        work.wait(&mut seen, 10_000).await
    })
}

#[tokio::test]
async fn postgres_replicas_are_told_of_a_new_job_only_when_its_own_has_no_free_worker() {
    let Some(url) = pg_url("postgres_new_job_wakes_other_replicas_only_when_needed").await else {
        return;
    };
    let a = store::open(&url).await.unwrap();
    let b = store::open(&url).await.unwrap();
    let a_work = a
        .jobs
        .work_signal()
        .expect("the SQL store has a work signal");
    let b_work = b
        .jobs
        .work_signal()
        .expect("the SQL store has a work signal");
    // Whether an idle worker of B is woken within `ms`.
    let b_woken = |ms| {
        let b_work = Arc::clone(&b_work);
        async move {
            let mut seen = b_work.seen();
            tokio::time::timeout(Duration::from_millis(ms), b_work.wait(&mut seen, 30_000))
                .await
                .is_ok()
        }
    };
    // A has an idle worker: it takes the job, and B is not told.
    let waiting = idle_worker(&a_work, 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (woken, _) = tokio::join!(
        b_woken(1_000),
        a.jobs.create(new_job("x1", "c", "r1", "h", 1))
    );
    // Given to it already claimed, without a claim of its own.
    match waiting.await.unwrap() {
        lacre_server::jobs::Wake::Given(claim) => {
            assert_eq!((claim.job.id.as_str(), claim.fence), ("x1", 1));
            assert_eq!(claim.job.state, JobState::Running);
            assert_eq!(claim.job.attempt, 1);
            let stored = a.jobs.get("x1").await.unwrap().unwrap();
            assert_eq!(stored.state, JobState::Running);
        }
        other => panic!("A's idle worker was not given the job: {other:?}"),
    }
    assert!(!woken, "B was woken for a job A's idle worker took");
    // Nobody idle on A: B is told, and its idle worker wakes.
    let (woken, _) = tokio::join!(
        b_woken(5_000),
        a.jobs.create(new_job("x2", "c", "r2", "h", 2))
    );
    assert!(woken, "B was not told of a job nobody on A was free for");
}

#[tokio::test]
async fn sqlite_gives_a_new_job_to_an_idle_worker_already_claimed() {
    let (url, _dir) = sqlite_url("sqlite_gives_a_new_job_to_an_idle_worker");
    let s = store::open(&url).await.unwrap();
    let work = s
        .jobs
        .work_signal()
        .expect("the SQL store has a work signal");
    // Nobody waits: the job is queued, for a claim.
    s.jobs
        .create(new_job("q", "c", "rq", "h", 1))
        .await
        .unwrap();
    assert_eq!(
        s.jobs.get("q").await.unwrap().unwrap().state,
        JobState::Queued
    );
    let claimed = s.jobs.claim(2, 10_000).await.unwrap().unwrap();
    assert_eq!((claimed.job.id.as_str(), claimed.fence), ("q", 1));
    // A worker waits (after the wake-up "q" was counted for, as nobody was
    // free): the next job is written claimed for it.
    let waiting = idle_worker(&work, 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.jobs
        .create(new_job("g", "c", "rg", "h", 5))
        .await
        .unwrap();
    let lacre_server::jobs::Wake::Given(claim) = waiting.await.unwrap() else {
        panic!("the idle worker was not given the job");
    };
    assert_eq!((claim.job.id.as_str(), claim.fence), ("g", 1));
    assert_eq!(
        s.jobs.claim(6, 10_000).await.unwrap(),
        None,
        "nothing is queued"
    );
    // It is the holder: its heartbeat renews, and its result is kept.
    let beat = Heartbeat {
        id: "g",
        fence: 1,
        now_ms: 7,
        lease_ms: 10_000,
        progress: None,
    };
    assert_eq!(s.jobs.heartbeat(beat).await.unwrap(), LeaseStatus::Held);
    let end = Finish {
        id: "g",
        fence: 1,
        outcome: JobOutcome::Done(Map::new()),
        now_ms: 8,
    };
    assert!(s.jobs.finish(end).await.unwrap());
    assert_eq!(
        s.jobs.get("g").await.unwrap().unwrap().state,
        JobState::Done
    );
    // A job given to a worker that dies before running it is re-queued
    // once its lease (counted from its creation) lapses, like any other.
    let waiting = idle_worker(&work, 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.jobs
        .create(new_job("d", "c", "rd", "h", 100))
        .await
        .unwrap();
    assert!(matches!(
        waiting.await.unwrap(),
        lacre_server::jobs::Wake::Given(_)
    ));
    assert_eq!(
        s.jobs.rescue(10_100, 3).await.unwrap(),
        1,
        "only q's lease lapsed"
    );
    assert_eq!(s.jobs.rescue(10_101, 3).await.unwrap(), 1, "d's lapsed");
    assert_eq!(
        s.jobs.get("d").await.unwrap().unwrap().state,
        JobState::Queued
    );
}

#[tokio::test]
async fn a_job_written_claimed_reaches_its_worker_when_the_caller_goes_away() {
    let (url, _dir) = sqlite_url("a_job_written_claimed_reaches_its_worker");
    let s = store::open(&url).await.unwrap();
    let work = s
        .jobs
        .work_signal()
        .expect("the SQL store has a work signal");
    let waiting = idle_worker(&work, 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The create is started and then dropped, as when the client hangs
    // up: polled once (the job's worker is set aside, its write begun),
    // then given up on.
    let gone = tokio::time::timeout(
        Duration::ZERO,
        s.jobs.create(new_job("h", "c", "rh", "h", 1)),
    )
    .await;
    assert!(gone.is_err(), "the create was not cut short");
    // The job was written claimed all the same, and its worker has it.
    let woke = tokio::time::timeout(Duration::from_secs(5), waiting).await;
    let Ok(Ok(lacre_server::jobs::Wake::Given(claim))) = woke else {
        panic!("the worker set aside for the job never got it: {woke:?}");
    };
    assert_eq!(claim.job.id, "h");
    assert_eq!(
        s.jobs.get("h").await.unwrap().unwrap().state,
        JobState::Running
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_migrate_once() {
    // Eight replicas open a fresh schema at the same instant, three times;
    // the advisory lock serializes creating the schema and migrating it, so
    // every one starts and all share the one schema. (Creating the schema
    // outside the lock failed about one run in ten with four replicas:
    // `CREATE SCHEMA IF NOT EXISTS` racing itself.)
    for _ in 0..3 {
        migrate_together().await;
    }
}

async fn migrate_together() {
    let Some(url) = pg_url("replicas_starting_together_migrate_once").await else {
        return;
    };
    let o = || store::open(&url);
    let opened = tokio::join!(o(), o(), o(), o(), o(), o(), o(), o());
    let stores: Vec<Stores> = [
        opened.0, opened.1, opened.2, opened.3, opened.4, opened.5, opened.6, opened.7,
    ]
    .into_iter()
    .map(|r| r.unwrap_or_else(|e| panic!("a replica could not start: {e}")))
    .collect();
    stores[0]
        .jobs
        .create(new_job("m", "c", "r", "h", 1))
        .await
        .unwrap();
    for s in &stores {
        assert!(s.jobs.get("m").await.unwrap().is_some());
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(PG_URL)
        .await
        .unwrap();
    let schema = url.split_once("?schema=").unwrap().1;
    // Each migration recorded once.
    let (rows, distinct): (i64, i64) = sqlx::query_as(&format!(
        "SELECT COUNT(*), COUNT(DISTINCT version) FROM \"{schema}\".lacre_schema"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        rows > 0 && rows == distinct,
        "{rows} rows, {distinct} versions"
    );
}

/// A TCP proxy to PostgreSQL that can be cut (every connection closed, the
/// port refusing) and restored on the same port.
struct PgProxy {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl PgProxy {
    async fn start() -> PgProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let p = PgProxy { port, up, cut };
        p.serve(listener);
        p
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (up, cut) = (self.up.clone(), self.cut.clone());
        tokio::spawn(async move {
            let mut cuts = cut.subscribe();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = cuts.changed() => return, // the port closes with the listener
                };
                let Ok((client, _)) = accepted else { continue };
                if !up.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let mut cut = cut.subscribe();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect("127.0.0.1:5432").await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    async fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.serve(listener);
    }
}

/// How many sessions LISTEN on `channel`.
async fn listeners_on(pool: &sqlx::PgPool, channel: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND position($1 in query) > 0",
    )
    .bind(channel)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn postgres_listen_resumes_after_the_database_comes_back() {
    let Some(url) = pg_url("postgres_listen_resumes_after_the_database_comes_back").await else {
        return;
    };
    let schema = url.split_once("?schema=").unwrap().1.to_owned();
    let channel = format!("lacre_jobs_{schema}");
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(PG_URL)
        .await
        .unwrap();
    let proxy = PgProxy::start().await;
    // Replica A reaches the database through the proxy, B directly.
    let via_proxy = url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let a = store::open(&via_proxy).await.unwrap();
    let b = store::open(&url).await.unwrap();
    for id in ["during", "after"] {
        b.jobs
            .create(new_job(id, "c", &format!("r-{id}"), "h", 1))
            .await
            .unwrap();
    }
    let listening = |want: i64| {
        let (admin, channel) = (&admin, &channel);
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while listeners_on(admin, channel).await != want {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never {want} listeners on {channel}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    listening(2).await;
    // The database goes away for A: its LISTEN session ends.
    let mut during = a.jobs.watch_job("during");
    proxy.cut();
    listening(1).await;
    // A change while A cannot hear it: B claims a job A watches.
    let claim = b.jobs.claim(2, 1_000).await.unwrap().expect("claimed on B");
    assert_eq!(claim.job.id, "during");
    proxy.restore().await;
    // A listens again (its retries back off up to 5 s)...
    listening(2).await;
    // Having listened again, A wakes what may have changed meanwhile (a
    // lost connection loses its notifications with it)...
    tokio::time::timeout(Duration::from_secs(5), during.changed())
        .await
        .expect("a change made while A was away never woke A's watchers");
    // ...and hears B's change of a job it watches (a claim on B).
    let mut watch = a.jobs.watch_job("after");
    let claim = b.jobs.claim(2, 1_000).await.unwrap().expect("claimed on B");
    assert_eq!(claim.job.id, "after");
    tokio::time::timeout(Duration::from_secs(5), watch.changed())
        .await
        .expect("replica A heard nothing after the database came back");
    let seen = a
        .jobs
        .get("after")
        .await
        .unwrap()
        .expect("the job, read through A");
    assert_eq!(seen.state, JobState::Running);
}

/// A result past the server's request limits (a long-running MCP tool's
/// 300 KB base64 image, 150 000 items) is read back whole: results were
/// read with the request limits, so such a job's poll failed for ever.
async fn a_large_result_is_read_back(stores: &Stores) {
    let jobs = &stores.jobs;
    jobs.create(new_job("large", "c", "r-large", "h", 1))
        .await
        .unwrap();
    let claim = jobs.claim(2, 60_000).await.unwrap().expect("claimed");
    let mut result = Map::new();
    result.insert("image".into(), Value::from("A".repeat(300_000)));
    result.insert(
        "items".into(),
        Value::Array((0..150_000).map(Value::from).collect()),
    );
    let end = Finish {
        id: "large",
        fence: claim.fence,
        outcome: JobOutcome::Done(result.clone()),
        now_ms: 3,
    };
    assert!(jobs.finish(end).await.unwrap());
    let status = jobs.status("large").await.unwrap().expect("the job");
    assert_eq!(status.state, JobState::Done);
    assert_eq!(status.result.as_ref(), Some(&result));
    let record = jobs.get("large").await.unwrap().expect("the job");
    assert_eq!(record.result, Some(result));
}

#[tokio::test]
async fn large_results_are_read_back_on_every_store() {
    a_large_result_is_read_back(&store::open("memory").await.unwrap()).await;
    let (url, _dir) = sqlite_url("large-result");
    a_large_result_is_read_back(&store::open(&url).await.unwrap()).await;
    if let Some(url) = pg_url("large_results_are_read_back_on_every_store").await {
        a_large_result_is_read_back(&store::open(&url).await.unwrap()).await;
    }
}

/// Many writers at once on one SQLite file, behind a queue of 2 000 jobs:
/// every write goes through. A claim used to count, for every queued job,
/// its client's running jobs over all of that client's rows while holding
/// the write lock (a cost of queue x jobs a claim: minutes here), and
/// writers waited in SQLite's busy handler, which lets later ones overtake;
/// under `lacre bench` some waited past its 5-second timeout and failed with
/// `store_unavailable`, and jobs ran at 9 a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_sqlite_all_get_their_turn() {
    let (url, _dir) = sqlite_url("writers");
    let stores = store::open(&url).await.unwrap();
    let now = crate::support::now_ms();
    const CLIENTS: usize = 24;
    const EACH: usize = 60;
    const QUEUED: usize = 2_000;
    for i in 0..QUEUED {
        let id = format!("q{i}");
        let job = new_job(&id, &format!("c{}", i % 2), &id, "h", now);
        stores.jobs.create(job).await.unwrap();
    }
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let jobs = stores.jobs.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                let id = format!("j{c}-{i}");
                let job = new_job(&id, &format!("c{c}"), &id, "h", now);
                jobs.create(job).await.map(|_| ())?;
            }
            Ok::<(), lacre_server::StoreError>(())
        }));
    }
    for _ in 0..8 {
        let jobs = stores.jobs.clone();
        tasks.push(tokio::spawn(async move {
            let mut idle = 0;
            while idle < 50 {
                let Some(claim) = jobs.claim(now + 1, 60_000).await? else {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                idle = 0;
                let end = Finish {
                    id: &claim.job.id,
                    fence: claim.fence,
                    outcome: JobOutcome::Done(Map::new()),
                    now_ms: now + 2,
                };
                jobs.finish(end).await?;
            }
            Ok(())
        }));
    }
    let all = async {
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    };
    // A guard against a hang, far above the few seconds this takes.
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("the writers finished");
    let ids = (0..QUEUED).map(|i| format!("q{i}"));
    for id in ids.chain((0..CLIENTS * EACH).map(|n| format!("j{}-{}", n / EACH, n % EACH))) {
        let job = stores.jobs.get(&id).await.unwrap();
        assert_eq!(job.map(|j| j.state), Some(JobState::Done), "{id}");
    }
}
