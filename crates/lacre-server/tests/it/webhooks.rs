//! Webhook delivery end to end: a server whose jobs end, and a receiver on
//! a real socket (127.0.0.1) that answers as each test scripts it.

use crate::support::{
    envelope, job_id_of, result_json, two_clients, CLIENT_SECRET, OTHER_SECRET, SERVER_ID,
};
use lacre_proto::webhook::{self, WebhookHeaders, WebhookKey};
use lacre_proto::{ParseLimits, Response, SigningKey, Status};
use lacre_server::webhooks::{DeliveryState, Endpoint, EventMask, WebhookSettings};
use lacre_server::{Listing, Server, ToolFilter, WorkerConfig};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    at: Instant,
}

/// What the receiver answers, in order (then 200): a status and an
/// optional `Retry-After`.
#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<(u16, Option<&'static str>)>>,
}

impl Receiver {
    /// Listens on 127.0.0.1; returns the URL of its hook.
    async fn start(script: &[(u16, Option<&'static str>)]) -> (Arc<Receiver>, String) {
        let rx = Arc::new(Receiver {
            script: Mutex::new(script.iter().copied().collect()),
            ..Receiver::default()
        });
        let state = Arc::clone(&rx);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let state = Arc::clone(&state);
                    async move {
                        let h = |n: &str| {
                            headers
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned()
                        };
                        state.got.lock().unwrap().push(Received {
                            id: h("webhook-id"),
                            timestamp: h("webhook-timestamp"),
                            signature: h("webhook-signature"),
                            body: body.to_vec(),
                            at: Instant::now(),
                        });
                        let (status, retry_after) = state
                            .script
                            .lock()
                            .unwrap()
                            .pop_front()
                            .unwrap_or((200, None));
                        let mut resp = axum::response::Response::new(axum::body::Body::from(
                            format!("answer {status}"),
                        ));
                        *resp.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
                        if let Some(r) = retry_after {
                            resp.headers_mut().insert("retry-after", r.parse().unwrap());
                        }
                        resp
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (rx, format!("http://{addr}/hook"))
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    async fn until_count(&self, n: usize) -> Vec<Received> {
        crate::support::until(&format!("{n} webhook requests"), || {
            self.got.lock().unwrap().len() >= n
        })
        .await;
        self.got()
    }
}

fn server_key() -> SigningKey {
    SigningKey::ed25519_from_seed(&[7u8; 32]).unwrap()
}

fn secret() -> Vec<u8> {
    match WebhookKey::parse(WHSEC).unwrap() {
        WebhookKey::Secret(s) => s,
        WebhookKey::Public(_) => unreachable!(),
    }
}

fn fast(allow_private_targets: bool, schedule_ms: &[u64]) -> WebhookSettings {
    WebhookSettings {
        allow_private_targets,
        timeout: Duration::from_secs(5),
        schedule: schedule_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect(),
        concurrency: 4,
        poll_interval: Duration::from_millis(50),
    }
}

/// A server whose client-001 is told of its jobs at `url`, running its
/// workers and its delivery loop.
fn server(
    url: &str,
    settings: WebhookSettings,
) -> (
    Server,
    lacre_server::Workers,
    lacre_server::webhooks::Deliveries,
) {
    let server = two_clients(Server::builder(SERVER_ID, server_key()), ToolFilter::All)
        .webhook(
            "client-001",
            Endpoint {
                url: url.parse().unwrap(),
                secrets: vec![secret()],
                events: EventMask::ALL,
            },
        )
        .tools(lacre_server::builtin::register_test_tools)
        .build();
    let workers = server.start_workers(WorkerConfig {
        concurrency: 4,
        heartbeat_ms: 50,
        ..WorkerConfig::default()
    });
    let deliveries = server
        .start_deliveries(settings)
        .unwrap()
        .expect("a client has a webhook");
    (server, workers, deliveries)
}

async fn stop(workers: lacre_server::Workers, deliveries: lacre_server::webhooks::Deliveries) {
    workers.shutdown(Duration::from_secs(1)).await;
    deliveries.shutdown(Duration::from_secs(1)).await;
}

/// Calls `tool` as client-001; returns the request id and the reply.
async fn call(server: &Server, tool: &str, args: serde_json::Value) -> (String, Response) {
    call_as(server, "client-001", tool, args).await
}

async fn call_as(
    server: &Server,
    client: &str,
    tool: &str,
    args: serde_json::Value,
) -> (String, Response) {
    let secret = if client == "client-002" {
        OTHER_SECRET
    } else {
        CLIENT_SECRET
    };
    let env = envelope(client, secret, tool, args);
    let reply = server.handle(&env.to_json()).await;
    (env.request_id, reply.response)
}

/// `list_deliveries` as `client`, signed and checked like any reply.
async fn listed(server: &Server, client: &str) -> lacre_proto::builtin::DeliveryList {
    let (_, resp) = call_as(server, client, "list_deliveries", serde_json::json!({})).await;
    assert!(resp.ok, "{resp:?}");
    server_key()
        .verifying_key()
        .verify_hex(&resp.signing_bytes(), &resp.signature)
        .unwrap();
    serde_json::from_value(result_json(&resp)).unwrap()
}

async fn start_job(server: &Server, args: serde_json::Value) -> (String, String) {
    let (request_id, resp) = call(server, "test_fault_job", args).await;
    let job_id = job_id_of(&resp);
    (request_id, job_id)
}

/// Checks a received notification as a receiver would: both signatures
/// (each alone verifies), the body's envelope and the reply inside it.
fn check(r: &Received, job_id: &str, request_id: &str, event: &str) -> Response {
    assert_eq!(
        r.id,
        format!("{job_id}.{}", event.trim_start_matches("job."))
    );
    let headers = WebhookHeaders {
        id: &r.id,
        timestamp: &r.timestamp,
        signature: &r.signature,
    };
    let now = crate::support::now_ms() / 1000;
    let whpk = webhook::public_key_text(&server_key().verifying_key()).unwrap();
    for key in [
        WebhookKey::parse(WHSEC).unwrap(),
        WebhookKey::parse(&whpk).unwrap(),
    ] {
        webhook::verify(headers, &r.body, &[key], now, 300).unwrap();
    }
    assert_eq!(r.signature.split(' ').count(), 2, "{}", r.signature);
    let wrong = WebhookKey::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
    assert!(webhook::verify(headers, &r.body, &[wrong], now, 300).is_err());
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["type"], event);
    let ts = body["timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{ts}"
    );
    let data = serde_json::to_vec(&body["data"]).unwrap();
    let reply = Response::parse(&data, ParseLimits::default()).unwrap();
    server_key()
        .verifying_key()
        .verify_hex(&reply.signing_bytes(), &reply.signature)
        .expect("the embedded reply is signed by the server");
    assert_eq!(reply.request_id, request_id);
    assert_eq!(reply.server_id, SERVER_ID);
    reply
}

#[tokio::test]
async fn each_way_a_job_ends_is_delivered_signed() {
    let (rx, url) = Receiver::start(&[]).await;
    let (server, workers, deliveries) = server(&url, fast(true, &[0]));
    let (done_req, done_job) = start_job(&server, serde_json::json!({"action": "ok"})).await;
    let (fail_req, fail_job) = start_job(&server, serde_json::json!({"action": "fail"})).await;
    let (cancel_req, cancel_job) =
        start_job(&server, serde_json::json!({"action": "sleep", "ms": 60000})).await;
    eventually("the sleeping job runs", || async {
        let status = server.job_store().status(&cancel_job).await.unwrap();
        status.is_some_and(|s| s.state == lacre_server::JobState::Running)
    })
    .await;
    let (_, cancelled) = call(
        &server,
        "cancel_job",
        serde_json::json!({"job_id": cancel_job}),
    )
    .await;
    assert!(cancelled.ok, "{cancelled:?}");
    let got = rx.until_count(3).await;
    let find = |job: &str| got.iter().find(|r| r.id.starts_with(job)).unwrap().clone();
    let done = check(&find(&done_job), &done_job, &done_req, "job.done");
    assert!(done.ok && done.status == Status::Done, "{done:?}");
    let failed = check(&find(&fail_job), &fail_job, &fail_req, "job.failed");
    assert!(
        failed.error.as_deref().unwrap().starts_with("job_failed"),
        "{failed:?}"
    );
    let cancelled = check(
        &find(&cancel_job),
        &cancel_job,
        &cancel_req,
        "job.cancelled",
    );
    assert!(
        cancelled
            .error
            .as_deref()
            .unwrap()
            .starts_with("job_cancelled"),
        "{cancelled:?}"
    );
    // Recorded as delivered, once each.
    eventually("three deliveries recorded", || async {
        delivered_count(&server).await == 3
    })
    .await;
    assert_eq!(rx.got().len(), 3);
    // Each client sees its own deliveries, and no one else's.
    let mine = listed(&server, "client-001").await;
    assert!(mine.configured && !mine.endpoint_disabled, "{mine:?}");
    assert_eq!(mine.deliveries.len(), 3);
    assert!(mine
        .deliveries
        .iter()
        .all(|d| d.state == "delivered" && d.attempts == 1 && d.last_status == Some(200)));
    let theirs = listed(&server, "client-002").await;
    assert!(
        !theirs.configured && theirs.deliveries.is_empty(),
        "{theirs:?}"
    );
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains("lacre_webhook_deliveries_total{outcome=\"delivered\"} 3"),
        "{metrics}"
    );
    stop(workers, deliveries).await;
}

/// Waits (up to 20 s) until `check` holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until a delivery of `server` has been given up.
async fn given_up(server: &Server) {
    eventually("given up", || async {
        !deliveries_in(server, Some(DeliveryState::Failed))
            .await
            .is_empty()
    })
    .await;
}

async fn deliveries_in(
    server: &Server,
    state: Option<DeliveryState>,
) -> Vec<lacre_server::webhooks::Delivery> {
    server
        .job_store()
        .deliveries(Listing::all(state, 100))
        .await
        .unwrap()
}

async fn delivered_count(server: &Server) -> usize {
    deliveries_in(server, Some(DeliveryState::Delivered))
        .await
        .len()
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_three_attempts_with_one_id() {
    let (rx, url) = Receiver::start(&[(500, None), (500, None)]).await;
    let (server, workers, deliveries) = server(&url, fast(true, &[0, 50, 50, 50]));
    let (req, job) = start_job(&server, serde_json::json!({"action": "ok"})).await;
    eventually("delivered", || async {
        delivered_count(&server).await == 1
    })
    .await;
    let got = rx.got();
    assert_eq!(got.len(), 3, "two failures and a success");
    assert!(got.iter().all(|r| r.id == format!("{job}.done")));
    for r in &got {
        check(r, &job, &req, "job.done");
    }
    let d = &deliveries_in(&server, None).await[0];
    assert_eq!((d.attempts, d.last_status), (3, Some(200)));
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains("lacre_webhook_deliveries_total{outcome=\"retry\"} 2"),
        "{metrics}"
    );
    stop(workers, deliveries).await;
}

#[tokio::test]
async fn the_schedule_ends_in_failure_and_retry_after_is_honoured() {
    // 503 with Retry-After: 1 s, then 500s until the schedule is spent.
    let (rx, url) = Receiver::start(&[(503, Some("1")), (500, None), (500, None)]).await;
    let (server, workers, deliveries) = server(&url, fast(true, &[0, 20, 20]));
    start_job(&server, serde_json::json!({"action": "ok"})).await;
    given_up(&server).await;
    let got = rx.got();
    assert_eq!(got.len(), 3, "the schedule has three attempts");
    let gap = got[1].at.duration_since(got[0].at);
    assert!(
        gap >= Duration::from_millis(900),
        "Retry-After: 1 was not waited for: {gap:?}"
    );
    let d = &deliveries_in(&server, None).await[0];
    assert_eq!(d.last_status, Some(500));
    assert_eq!(d.last_error.as_deref(), Some("HTTP 500: answer 500"));
    // The operator sends it again: from the start of the schedule.
    let n = server
        .job_store()
        .retry_deliveries(
            lacre_server::webhooks::RetrySelector::Id(&d.id),
            crate::support::now_ms(),
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    rx.until_count(4).await;
    eventually("delivered", || async {
        delivered_count(&server).await == 1
    })
    .await;
    stop(workers, deliveries).await;
}

#[tokio::test]
async fn gone_disables_the_endpoint_until_it_is_enabled() {
    let (rx, url) = Receiver::start(&[(410, None)]).await;
    let (server, workers, deliveries) = server(&url, fast(true, &[0, 20]));
    let (_, first) = start_job(&server, serde_json::json!({"action": "ok"})).await;
    rx.until_count(1).await;
    eventually("the endpoint disabled", || async {
        server.job_store().disabled_endpoints().await.unwrap().len() == 1
    })
    .await;
    // Another job ends meanwhile: its event waits with the first.
    let (_, second) = start_job(&server, serde_json::json!({"action": "ok"})).await;
    eventually("both events pending", || async {
        deliveries_in(&server, Some(DeliveryState::Pending))
            .await
            .len()
            == 2
    })
    .await;
    // The loop looks every 50 ms: six looks later, still nothing sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.got().len(), 1);
    let mine = listed(&server, "client-001").await;
    assert!(mine.endpoint_disabled, "{mine:?}");
    assert_eq!(mine.deliveries.len(), 2);
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains("lacre_webhook_deliveries_total{outcome=\"disabled\"} 1"),
        "{metrics}"
    );
    assert!(server
        .job_store()
        .enable_endpoint("client-001")
        .await
        .unwrap());
    let got = rx.until_count(3).await;
    let mut ids: Vec<&str> = got[1..].iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    let mut want = [format!("{first}.done"), format!("{second}.done")];
    want.sort();
    assert_eq!(ids, want);
    stop(workers, deliveries).await;
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let (rx, url) = Receiver::start(&[]).await;
    let port = url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/hook")
        .to_owned();
    // An address in the URL, and a name that resolves to loopback.
    for target in [url.clone(), format!("http://localhost:{port}/hook")] {
        let (server, workers, deliveries) = server(&target, fast(false, &[0]));
        start_job(&server, serde_json::json!({"action": "ok"})).await;
        given_up(&server).await;
        let d = &deliveries_in(&server, None).await[0];
        let error = d.last_error.as_deref().unwrap_or_default();
        assert!(
            error.contains("is not a public address"),
            "{target}: {error}"
        );
        assert_eq!(d.last_status, None);
        stop(workers, deliveries).await;
    }
    assert!(rx.got().is_empty(), "nothing reached the receiver");
    // Allowed: the same name is delivered to.
    let (server, workers, deliveries) =
        server(&format!("http://localhost:{port}/hook"), fast(true, &[0]));
    start_job(&server, serde_json::json!({"action": "ok"})).await;
    rx.until_count(1).await;
    stop(workers, deliveries).await;
}
