//! The webhook outbox contract, on the memory, SQLite and PostgreSQL
//! stores: a job's final state writes its event in the same transaction;
//! deliveries are claimed one holder at a time, fenced, retried, settled,
//! paused while their endpoint is disabled, and pruned.

use crate::store_contract::{pg_url, sqlite_url};
use lacre_proto::Map;
use lacre_server::jobs::{Finish, JobOutcome, Listing, NewJob, Prune};
use lacre_server::store::{self, Stores};
use lacre_server::webhooks::{
    Attempt, AttemptOutcome, DeliveryClaim, DeliveryState, EventMask, EventType, RetrySelector,
};

fn job(id: &str, client: &str, events: EventMask) -> NewJob {
    NewJob {
        id: id.into(),
        client_id: client.into(),
        request_id: format!("req-{id}"),
        request_hash: "h".into(),
        tool: "t".into(),
        args: Map::new(),
        now_ms: 1_000,
        idempotency_ttl_ms: 60_000,
        max_jobs: u64::MAX,
        max_job_bytes: u64::MAX,
        events,
    }
}

/// Creates, claims and ends job `id` with `outcome` at `now`.
async fn run_to(stores: &Stores, id: &str, client: &str, events: EventMask, outcome: JobOutcome) {
    let s = &stores.jobs;
    s.create(job(id, client, events)).await.unwrap();
    let claim = s
        .claim(2_000, 60_000)
        .await
        .unwrap()
        .expect("a job to claim");
    assert_eq!(claim.job.id, id);
    assert_eq!(claim.job.events, events, "the mask is kept with the job");
    let end = Finish {
        id,
        fence: claim.fence,
        outcome,
        now_ms: 3_000,
    };
    assert!(s.finish(end).await.unwrap());
}

/// Records an attempt under `claim`; whether it was recorded.
async fn settle(
    stores: &Stores,
    claim: &DeliveryClaim,
    now_ms: i64,
    outcome: AttemptOutcome,
) -> bool {
    let attempt = Attempt {
        id: &claim.delivery.id,
        fence: claim.fence,
        now_ms,
        outcome,
    };
    stores.jobs.record_attempt(attempt).await.unwrap()
}

/// The ids of the store's deliveries (at most 10), in the store's order.
async fn delivery_ids(stores: &Stores) -> Vec<String> {
    let all = stores
        .jobs
        .deliveries(Listing::all(None, 10))
        .await
        .unwrap();
    all.into_iter().map(|d| d.id).collect()
}

/// The next due delivery at `now_ms`, claimed with a 1 s lease.
async fn claim(stores: &Stores, now_ms: i64) -> Option<DeliveryClaim> {
    stores.jobs.claim_delivery(now_ms, 1_000).await.unwrap()
}

fn done() -> JobOutcome {
    JobOutcome::Done(Map::new())
}

async fn outbox_contract(stores: Stores) {
    let s = &stores.jobs;
    // Each way of ending raises its event, for a client that asked.
    run_to(&stores, "j-done", "c1", EventMask::ALL, done()).await;
    run_to(
        &stores,
        "j-fail",
        "c1",
        EventMask::ALL,
        JobOutcome::Failed("boom".into()),
    )
    .await;
    s.create(job("j-cancel", "c1", EventMask::ALL))
        .await
        .unwrap();
    s.cancel("j-cancel", "c1", 3_500)
        .await
        .unwrap()
        .expect("cancelled");
    // A job whose workers keep dying is failed by the rescuer: an event too.
    s.create(job("j-lost", "c1", EventMask::ALL)).await.unwrap();
    let lost = s.claim(2_000, 10).await.unwrap().expect("claimed");
    assert_eq!(lost.job.id, "j-lost");
    assert_eq!(s.rescue(3_600, 1).await.unwrap(), 1);
    // No webhook, or not this event: nothing.
    run_to(&stores, "j-quiet", "c2", EventMask::NONE, done()).await;
    let only_done = EventMask::of(&[EventType::Done]);
    s.create(job("j-cancel-2", "c2", only_done)).await.unwrap();
    s.cancel("j-cancel-2", "c2", 3_700)
        .await
        .unwrap()
        .expect("cancelled");

    let all = s.deliveries(Listing::all(None, 100)).await.unwrap();
    let mut ids: Vec<(&str, EventType, &str)> = all
        .iter()
        .map(|d| (d.id.as_str(), d.event, d.request_id.as_str()))
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            ("j-cancel.cancelled", EventType::Cancelled, "req-j-cancel"),
            ("j-done.done", EventType::Done, "req-j-done"),
            ("j-fail.failed", EventType::Failed, "req-j-fail"),
            ("j-lost.failed", EventType::Failed, "req-j-lost"),
        ]
    );
    assert!(all
        .iter()
        .all(|d| d.state == DeliveryState::Pending && d.attempts == 0 && d.client_id == "c1"));

    // Claimed oldest first, one holder at a time, the attempt counted.
    let first = claim(&stores, 4_000).await.expect("due");
    assert_eq!(first.delivery.id, "j-done.done");
    assert_eq!(first.delivery.state, DeliveryState::Sending);
    assert_eq!(first.delivery.attempts, 1);
    let second = claim(&stores, 4_000).await.expect("due");
    assert_eq!(second.delivery.id, "j-fail.failed");
    // A retry later: not due before its time, due at it.
    let retry = Attempt {
        id: "j-done.done",
        fence: first.fence,
        now_ms: 4_100,
        outcome: AttemptOutcome::Retry {
            at_ms: 9_000,
            status: Some(500),
            error: "HTTP 500".into(),
        },
    };
    assert!(s.record_attempt(retry.clone()).await.unwrap());
    // The same report twice: the claim is spent.
    assert!(!s.record_attempt(retry).await.unwrap());
    let third = claim(&stores, 4_200).await.expect("due");
    let fourth = claim(&stores, 4_200).await.expect("due");
    let mut claimed = [third.delivery.id.clone(), fourth.delivery.id.clone()];
    claimed.sort();
    assert_eq!(claimed, ["j-cancel.cancelled", "j-lost.failed"]);
    assert_eq!(third.delivery.id, "j-cancel.cancelled", "oldest first");
    // Settle three; the retried one comes back at its time.
    for (c, outcome) in [
        (&second, AttemptOutcome::Delivered { status: 204 }),
        (
            &third,
            AttemptOutcome::GaveUp {
                status: Some(400),
                error: "HTTP 400".into(),
            },
        ),
        (&fourth, AttemptOutcome::Delivered { status: 200 }),
    ] {
        assert!(settle(&stores, c, 4_300, outcome).await);
    }
    assert!(claim(&stores, 8_000).await.is_none());
    let again = claim(&stores, 9_000).await.expect("due again");
    assert_eq!(again.delivery.id, "j-done.done");
    assert_eq!(again.delivery.attempts, 2);
    assert_eq!(again.delivery.last_status, Some(500));
    // Its sender dies: once the lease runs out another takes it over, and
    // the first one's report is refused.
    assert!(claim(&stores, 9_500).await.is_none());
    let taken = claim(&stores, 10_001).await.expect("lease expired");
    assert_eq!(taken.delivery.id, "j-done.done");
    assert_eq!(taken.delivery.attempts, 3);
    let delivered = AttemptOutcome::Delivered { status: 200 };
    assert!(
        !settle(&stores, &again, 10_002, delivered).await,
        "a stale fence"
    );
    assert!(settle(&stores, &taken, 10_003, AttemptOutcome::EndpointGone).await);

    // 410: the client's endpoint is disabled; its events wait.
    let disabled = s.disabled_endpoints().await.unwrap();
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].client_id, "c1");
    assert!(
        disabled[0].reason.contains("j-done.done"),
        "{:?}",
        disabled[0]
    );
    let pending = s
        .deliveries(Listing::of("c1", Some(DeliveryState::Pending), 10))
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].last_status, Some(410));
    assert!(claim(&stores, 20_000).await.is_none());
    // Another client's events still go.
    run_to(&stores, "j-other", "c3", EventMask::ALL, done()).await;
    let other = claim(&stores, 20_000).await.expect("c3's event");
    assert_eq!(other.delivery.client_id, "c3");
    let delivered = AttemptOutcome::Delivered { status: 200 };
    assert!(settle(&stores, &other, 20_001, delivered).await);
    // Enabled again: the waiting event goes.
    assert!(s.enable_endpoint("c1").await.unwrap());
    assert!(!s.enable_endpoint("c1").await.unwrap());
    let resumed = claim(&stores, 20_002).await.expect("resumed");
    assert_eq!(resumed.delivery.id, "j-done.done");

    // An operator retries the failed one: from the start of the schedule.
    assert_eq!(
        s.retry_deliveries(RetrySelector::FailedOf("c2"), 30_000)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.retry_deliveries(RetrySelector::AllFailed, 30_000)
            .await
            .unwrap(),
        1
    );
    let retried = s
        .deliveries(Listing::of("c1", Some(DeliveryState::Pending), 10))
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 0);
    assert_eq!(retried[0].next_attempt_ms, 30_000);
    assert_eq!(
        s.retry_deliveries(RetrySelector::Id("no-such"), 30_000)
            .await
            .unwrap(),
        0
    );

    // Newest first, filtered by client and state.
    let delivered = s
        .deliveries(Listing::all(Some(DeliveryState::Delivered), 10))
        .await
        .unwrap();
    let mut names: Vec<&str> = delivered.iter().map(|d| d.id.as_str()).collect();
    names.sort();
    assert_eq!(names, ["j-fail.failed", "j-lost.failed", "j-other.done"]);
    assert!(delivered.iter().all(|d| d.delivered_ms.is_some()));
    assert_eq!(
        s.deliveries(Listing::of("c3", None, 10))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.deliveries(Listing::all(None, 2)).await.unwrap().len(), 2);

    // Settled deliveries go with retention; pending and sending ones stay.
    let stats = s
        .prune(Prune {
            now_ms: 30_000 + 1_000_000,
            retention_ms: 1_000_000,
            replica_skew_ms: 0,
        })
        .await
        .unwrap();
    assert_eq!(stats.deliveries, 3);
    let mut left = delivery_ids(&stores).await;
    left.sort();
    assert_eq!(left, ["j-cancel.cancelled", "j-done.done"]);
}

#[tokio::test]
async fn memory_outbox_keeps_the_contract() {
    outbox_contract(store::open("memory").await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_outbox_keeps_the_contract_and_survives_a_restart() {
    let (url, _dir) = sqlite_url("outbox");
    outbox_contract(store::open(&url).await.unwrap()).await;
    // Reopened, the outbox is as it was left.
    let again = store::open(&url).await.unwrap();
    let left = again.jobs.deliveries(Listing::all(None, 10)).await.unwrap();
    assert_eq!(left.len(), 2);
}

#[tokio::test]
async fn postgres_outbox_keeps_the_contract() {
    let Some(url) = pg_url("postgres_outbox_keeps_the_contract").await else {
        return;
    };
    outbox_contract(store::open(&url).await.unwrap()).await;
}

/// Two replicas claiming together never hold one delivery at once.
#[tokio::test]
async fn postgres_replicas_claim_each_delivery_once() {
    let Some(url) = pg_url("postgres_replicas_claim_each_delivery_once").await else {
        return;
    };
    let a = store::open(&url).await.unwrap();
    let b = store::open(&url).await.unwrap();
    const N: usize = 40;
    for i in 0..N {
        run_to(&a, &format!("j{i:02}"), "c", EventMask::ALL, done()).await;
    }
    let claim_all = |stores: Stores| async move {
        let mut got = Vec::new();
        while let Some(c) = stores.jobs.claim_delivery(5_000, 60_000).await.unwrap() {
            got.push(c.delivery.id);
        }
        got
    };
    let (from_a, from_b) = tokio::join!(claim_all(a.clone()), claim_all(b.clone()));
    let mut all: Vec<String> = from_a.iter().chain(&from_b).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(from_a.len() + from_b.len(), N, "each claimed once");
    assert_eq!(all.len(), N);
}

/// A database made before webhooks (schema version 1) is brought up to
/// date when opened, its jobs kept: they raise no events.
#[tokio::test]
async fn a_version_1_database_is_migrated_with_its_jobs() {
    let (url, _dir) = sqlite_url("migrate-v1");
    {
        let stores = store::open(&url).await.unwrap();
        stores
            .jobs
            .create(job("old", "c1", EventMask::NONE))
            .await
            .unwrap();
    }
    // Back to version 1: what the previous release created.
    let earlier = [
        "DROP TABLE lacre_deliveries",
        "DROP TABLE lacre_disabled_endpoints",
        "ALTER TABLE lacre_jobs DROP COLUMN events",
        "DROP TABLE lacre_audit",
        "DROP INDEX lacre_jobs_load",
        "DROP INDEX lacre_jobs_due",
        "ALTER TABLE lacre_jobs DROP COLUMN args_bytes",
    ];
    crate::store_contract::back_to(&url, 1, &earlier).await;
    let stores = store::open(&url).await.unwrap();
    let old = stores.jobs.get("old").await.unwrap().expect("the old job");
    assert_eq!(old.events, EventMask::NONE);
    let claim = stores.jobs.claim(2_000, 60_000).await.unwrap().unwrap();
    let end = Finish {
        id: "old",
        fence: claim.fence,
        outcome: done(),
        now_ms: 3_000,
    };
    assert!(stores.jobs.finish(end).await.unwrap());
    run_to(&stores, "new", "c1", EventMask::ALL, done()).await;
    assert_eq!(delivery_ids(&stores).await, ["new.done"]);
}
