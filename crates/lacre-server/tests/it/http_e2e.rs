//! Every built-in tool and every error code, on the wire.

use crate::support::*;
use lacre_proto::{ErrorCode, NonceError, SigningKey, Status};
use lacre_server::NonceBackend;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn server_identity_lists_the_callers_tools() {
    let s = TestServer::start().await;
    let (http, resp) = s.call("server_identity", json!({})).await;
    assert_eq!(http, 200);
    assert_eq!(resp.status, Status::Ok);
    let r = result_json(&resp);
    assert_eq!(r["server_id"], SERVER_ID);
    let fp = SigningKey::hmac(SERVER_SECRET).unwrap().fingerprint();
    assert_eq!(r["fingerprint"], fp.as_str());
    assert_eq!(r["capabilities"]["version"], "mcp/0.1");
    assert_eq!(r["capabilities"]["max_skew_ms"], 300000);
    let names = tool_names(&resp);
    for t in [
        "batch_sum",
        "start_long_task",
        "poll_job",
        "cancel_job",
        "list_jobs",
        "server_identity",
    ] {
        assert!(names.iter().any(|n| n == t), "{t} missing from {names:?}");
    }
    let long = r["capabilities"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "start_long_task")
        .unwrap();
    assert_eq!(long["long_running"], true);
    assert_eq!(long["args_schema"]["properties"]["seconds"]["maximum"], 20);

    // client-002 may not call start_long_task, so it is not listed for it.
    let (_, resp) = s
        .send(&envelope(
            "client-002",
            OTHER_SECRET,
            "server_identity",
            json!({}),
        ))
        .await;
    let names = tool_names(&resp);
    assert!(!names.iter().any(|n| n == "start_long_task"), "{names:?}");
    assert!(names.iter().any(|n| n == "batch_sum"), "{names:?}");
    s.stop().await;
}

#[tokio::test]
async fn batch_sum_gives_a_float_total() {
    let s = TestServer::start().await;
    let env = envelope_001("batch_sum", json!({"numbers": [10, 20, 30]}));
    let resp = s.post(env.to_json()).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains(r#""result":{"count":3,"total":60.0}"#),
        "{text}"
    );
    let r = check_signed(text.as_bytes());
    assert_eq!(r.request_id, env.request_id);
    assert!(r.ok);
    s.stop().await;
}

#[tokio::test]
async fn long_task_runs_reports_progress_and_long_polls() {
    let s = TestServer::start().await;
    let (http, resp) = s
        .call(
            "start_long_task",
            json!({"seconds": 2, "payload": {"data": "complete"}}),
        )
        .await;
    assert_eq!(http, 202);
    let job_id = job_id_of(&resp);

    // An immediate poll: queued or running.
    let (http, resp) = s.call("poll_job", json!({"job_id": job_id})).await;
    assert_eq!(http, 200);
    assert_eq!(resp.status, Status::Running);
    let r = result_json(&resp);
    assert_eq!(r["job_id"], job_id.as_str());
    assert!(r["state"] == "queued" || r["state"] == "running", "{r}");

    // Long polls until done; each returns on a change, not after the full wait.
    let started = Instant::now();
    let mut saw_progress = false;
    let done = loop {
        let t = Instant::now();
        let (_, resp) = s
            .call("poll_job", json!({"job_id": job_id, "wait_ms": 10000}))
            .await;
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "long poll held past the job's change"
        );
        if resp.status == Status::Done {
            break resp;
        }
        let r = result_json(&resp);
        if r.get("progress").is_some() && r.get("message").is_some() {
            saw_progress = true;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "job never finished"
        );
    };
    assert!(saw_progress, "no progress reported while running");
    assert!(done.ok);
    assert_eq!(result_json(&done), json!({"data": "complete"}));
    assert!(started.elapsed() >= Duration::from_millis(1500));

    // The job is listed, as done.
    let (_, resp) = s.call("list_jobs", json!({"state": "done"})).await;
    let jobs = result_json(&resp)["jobs"].as_array().unwrap().clone();
    assert!(jobs
        .iter()
        .any(|j| j["job_id"] == job_id.as_str() && j["state"] == "done"));
    s.stop().await;
}

#[tokio::test]
async fn long_poll_times_out_with_running() {
    let s = TestServer::start().await;
    let job_id = s.start_job(json!({"seconds": 5})).await;
    // Wait until it runs and has reported its first progress (0 of 5
    // seconds); the next report is a second later, so a 400 ms long poll
    // started now sees no change and must hold for its whole wait.
    until_poll(&s, &job_id, "the first progress", |v| {
        v["message"] == "0/5 seconds"
    })
    .await;
    let t = Instant::now();
    let (http, resp) = s
        .call("poll_job", json!({"job_id": job_id, "wait_ms": 400}))
        .await;
    assert_eq!(http, 200);
    assert_eq!(resp.status, Status::Running);
    assert!(
        t.elapsed() >= Duration::from_millis(350),
        "returned after {:?}",
        t.elapsed()
    );
    s.stop().await;
}

#[tokio::test]
async fn cancel_and_ownership() {
    let s = TestServer::start().await;
    let job_id = s.start_job(json!({"seconds": 10})).await;

    // Another client sees no such job, for poll and cancel alike.
    for tool in ["poll_job", "cancel_job"] {
        let args = json!({"job_id": job_id});
        s.expect_error("client-002", tool, args, 404, ErrorCode::UnknownJob)
            .await;
    }
    let env = envelope("client-002", OTHER_SECRET, "list_jobs", json!({}));
    let (_, resp) = s.send(&env).await;
    assert_eq!(result_json(&resp)["jobs"], json!([]));

    // Its owner cancels it.
    let (http, resp) = s.call("cancel_job", json!({"job_id": job_id})).await;
    assert_eq!(http, 200);
    assert_eq!(result_json(&resp)["state"], "cancelled");
    // Polls of it now, and of a job that does not exist.
    for (id, http, code) in [
        (job_id.as_str(), 200, ErrorCode::JobCancelled),
        ("no-such-job", 404, ErrorCode::UnknownJob),
    ] {
        let args = json!({"job_id": id});
        s.refused("poll_job", args, http, code).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn failed_jobs_and_failing_tools() {
    let s = TestServer::start().await;
    let (http, resp) = s
        .call("fail_later", json!({"message": "disk on fire"}))
        .await;
    assert_eq!(http, 202);
    let job_id = job_id_of(&resp);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let env = envelope_001("poll_job", json!({"job_id": job_id, "wait_ms": 1000}));
        let reply = s.send(&env).await;
        if reply.1.status == Status::Error {
            assert_error(&reply, 200, ErrorCode::JobFailed, &env.request_id);
            assert!(reply.1.error.as_deref().unwrap().contains("disk on fire"));
            break;
        }
        assert!(Instant::now() < deadline, "job never failed");
    }
    let broken = json!({"message": "broken"});
    s.refused("fail_now", broken, 500, ErrorCode::Internal)
        .await;
    s.stop().await;
}

#[tokio::test]
async fn a_panicking_tool_gets_a_signed_internal_reply() {
    let s = TestServer::start().await;
    let boom = json!({"message": "boom"});
    let reply = s.refused("panic_now", boom, 500, ErrorCode::Internal).await;
    assert!(
        reply.error.as_deref().unwrap().contains("panicked"),
        "{reply:?}"
    );
    // The server goes on serving.
    let (http, resp) = s.call("batch_sum", json!({"numbers": [1, 2]})).await;
    assert_eq!((http, resp.status), (200, Status::Ok));
    s.stop().await;
}

#[tokio::test]
async fn idempotent_retry_returns_the_same_job() {
    let s = TestServer::start().await;
    let first = envelope_001(
        "start_long_task",
        json!({"seconds": 1, "payload": {"n": 1}}),
    );
    let (_, r1) = s.send(&first).await;
    // A retry: same request_id, fresh nonce and timestamp.
    let mut retry = first.clone();
    retry.nonce = unique("nonce");
    retry.ts_ms = now_ms();
    retry.sign(&SigningKey::hmac(CLIENT_SECRET).unwrap());
    let (http, r2) = s.send(&retry).await;
    assert_eq!(http, 202);
    assert_eq!(result_json(&r1)["job_id"], result_json(&r2)["job_id"]);
    // Same request_id, other arguments.
    let mut conflict = first.clone();
    conflict.nonce = unique("nonce");
    conflict.args = args_map(json!({"seconds": 2}));
    conflict.sign(&SigningKey::hmac(CLIENT_SECRET).unwrap());
    let reply = s.send(&conflict).await;
    assert_error(
        &reply,
        409,
        ErrorCode::IdempotencyConflict,
        &first.request_id,
    );
    // Another client may use the same request_id independently.
    let mut other = first.clone();
    other.client_id = "client-002".into();
    other.tool = "batch_sum".into();
    other.args = args_map(json!({"numbers": [1]}));
    other.sign(&SigningKey::hmac(OTHER_SECRET).unwrap());
    assert_eq!(s.send(&other).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn verification_failures_have_their_codes() {
    let s = TestServer::start().await;
    let key = SigningKey::hmac(CLIENT_SECRET).unwrap();

    // Replay of an identical envelope.
    let env = sum_call();
    assert_eq!(s.send(&env).await.0, 200);
    s.expect(&env, 401, ErrorCode::ReplayedNonce).await;
    // Same nonce with a new timestamp (re-signed): still a replay.
    let mut again = env.clone();
    again.ts_ms += 1;
    again.sign(&key);
    s.expect(&again, 401, ErrorCode::ReplayedNonce).await;

    // Timestamps 10 minutes old and ahead.
    for offset in [-600_000i64, 600_000] {
        let mut e = sum_call();
        e.ts_ms += offset;
        e.sign(&key);
        s.expect(&e, 401, ErrorCode::StaleTimestamp).await;
    }

    // Addressed to another server.
    let mut e = sum_call();
    e.server_id = "someone-else".into();
    e.sign(&key);
    s.expect(&e, 401, ErrorCode::WrongServer).await;

    // Unknown client; bad signature (tampered args).
    let e = envelope(
        "client-999",
        CLIENT_SECRET,
        "batch_sum",
        json!({"numbers": [1]}),
    );
    s.expect(&e, 401, ErrorCode::UnknownClient).await;
    let mut e = sum_call();
    e.args = args_map(json!({"numbers": [1000]}));
    s.expect(&e, 401, ErrorCode::BadSignature).await;

    // Extra field; wrong version; not JSON at all.
    let e = sum_call();
    let text = String::from_utf8(e.to_json())
        .unwrap()
        .replacen('{', r#"{"extra":1,"#, 1);
    assert_error(
        &s.post_raw(text).await,
        400,
        ErrorCode::BadEnvelope,
        &e.request_id,
    );
    let text = String::from_utf8(e.to_json())
        .unwrap()
        .replace("mcp/0.1", "mcp/0.2");
    assert_error(
        &s.post_raw(text).await,
        400,
        ErrorCode::UnsupportedVersion,
        &e.request_id,
    );
    assert_error(
        &s.post_raw("{not json").await,
        400,
        ErrorCode::BadEnvelope,
        "",
    );
    s.stop().await;
}

#[tokio::test]
async fn dispatch_errors_have_their_codes() {
    let s = TestServer::start().await;
    let e = envelope_001("no_such_tool", json!({}));
    s.expect(&e, 404, ErrorCode::UnknownTool).await;
    let e = envelope(
        "client-002",
        OTHER_SECRET,
        "start_long_task",
        json!({"seconds": 1}),
    );
    s.expect(&e, 403, ErrorCode::ForbiddenTool).await;
    let bad_args = [
        ("batch_sum", json!({"numbers": []})),
        ("batch_sum", json!({"numbers": ["1"]})),
        ("batch_sum", json!({"numbers": [true]})),
        ("batch_sum", json!({})),
        ("batch_sum", json!({"numbers": [1], "extra": 1})),
        ("batch_sum", json!({"numbers": [1e308, 1e308]})),
        ("start_long_task", json!({"seconds": 0})),
        ("start_long_task", json!({"seconds": 21})),
        ("start_long_task", json!({"seconds": 1.5})),
        ("start_long_task", json!({"seconds": 1, "payload": [1]})),
        ("poll_job", json!({"job_id": "x", "wait_ms": 30001})),
        ("poll_job", json!({})),
        ("cancel_job", json!({"job_id": 5})),
        ("list_jobs", json!({"state": "sleeping"})),
        ("list_jobs", json!({"limit": 0})),
        ("server_identity", json!({"x": 1})),
    ];
    for (tool, args) in bad_args {
        let e = envelope_001(tool, args.clone());
        let reply = s.expect(&e, 422, ErrorCode::InvalidArgs).await;
        assert!(
            reply.error.as_deref().unwrap().len() > "invalid_args: ".len(),
            "{tool} {args}: no message"
        );
    }
    // No job was created by the invalid start_long_task calls.
    let (_, resp) = s.call("list_jobs", json!({})).await;
    assert_eq!(result_json(&resp)["jobs"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn oversized_bodies_get_a_signed_too_large() {
    let s = TestServer::start().await; // body limit 64 KiB in the test server
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(100 * 1024));
    assert_error(&s.post_raw(big).await, 413, ErrorCode::TooLarge, "");
    s.stop().await;
}

struct BrokenNonces;

#[async_trait::async_trait]
impl NonceBackend for BrokenNonces {
    async fn check_and_record(&self, _: &lacre_proto::NonceUse<'_>) -> Result<(), NonceError> {
        Err(NonceError::Unavailable)
    }
    fn len(&self) -> usize {
        0
    }
}

#[tokio::test]
async fn unreachable_nonce_store_refuses_requests() {
    let s = TestServer::start_with(|b| b.nonce_store(Arc::new(BrokenNonces))).await;
    let e = sum_call();
    s.expect(&e, 503, ErrorCode::StoreUnavailable).await;
    s.stop().await;
}

#[tokio::test]
async fn health_and_well_known() {
    let s = TestServer::start().await;
    let r = s.get("/healthz").await;
    assert_eq!(r.status(), 200);
    let body = s
        .get("/.well-known/lacre.json")
        .await
        .bytes()
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["server_id"], SERVER_ID);
    assert_eq!(doc["algorithm"], "hmac-sha256");
    assert_eq!(
        doc["fingerprint"],
        SigningKey::hmac(SERVER_SECRET)
            .unwrap()
            .fingerprint()
            .as_str()
    );
    assert!(doc.get("public_key_hex").is_none());
    s.stop().await;
}

#[tokio::test]
async fn rate_limited_clients_get_429_with_a_hint() {
    let s = TestServer::start_with(|b| {
        b.rate_limit(
            "client-002",
            lacre_server::Rate {
                per_second: 0.2,
                burst: 2.0,
            },
        )
    })
    .await;
    let mut codes = Vec::new();
    for _ in 0..3 {
        let e = envelope(
            "client-002",
            OTHER_SECRET,
            "batch_sum",
            json!({"numbers": [1]}),
        );
        let resp = s.http.post(&s.url).body(e.to_json()).send().await.unwrap();
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let reply = (status, check_signed(&resp.bytes().await.unwrap()));
        if status == 429 {
            assert_error(&reply, 429, ErrorCode::RateLimited, &e.request_id);
            // A token every 5 s, rounded up to whole seconds (4 if the
            // machine took over a second between the requests).
            assert!(
                matches!(retry_after.as_deref(), Some("5") | Some("4")),
                "{retry_after:?}"
            );
            assert!(reply.1.error.as_deref().unwrap().contains("retry after"));
        }
        codes.push(status);
    }
    assert_eq!(codes, vec![200, 200, 429]);
    // Other clients are not limited.
    assert_eq!(s.call("batch_sum", json!({"numbers": [1]})).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn requests_beyond_the_in_flight_limit_are_overloaded() {
    let gate = std::sync::Arc::new(Gate::default());
    let g = gate.clone();
    let s =
        TestServer::start_with(|b| b.max_in_flight(1).tools(|reg| g.register(reg, "slow"))).await;
    // A call held at the gate has the only place...
    let holder = {
        let env = envelope_001("slow", json!({}));
        let (http, url) = (s.http.clone(), s.url.clone());
        tokio::spawn(async move {
            http.post(&url)
                .body(env.to_json())
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    gate.entered().await;
    assert_eq!(s.server.in_flight(), 1);
    // ...so this one is refused at once, not queued, before its body is
    // read (unbound, request_id ""). A queued request would have waited
    // for the place and answered 200. (Long polls give their place back
    // while they wait: `one_client_at_every_limit_does_not_slow_another`.)
    let reply = s.call("batch_sum", json!({"numbers": [1]})).await;
    assert_error(&reply, 503, ErrorCode::Overloaded, "");
    gate.release(1);
    assert_eq!(holder.await.unwrap(), 200);
    // The place is free again.
    assert_eq!(s.call("batch_sum", json!({"numbers": [1]})).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn long_task_payload_comes_back_exactly() {
    let s = TestServer::start().await;
    // Canonical (sorted) already, so the comparison below is on exact bytes.
    let payload = r#"{"big":123456789012345678901234567890,"f":0.1,"neg":-18446744073709551616,"s":"\u00e9\ud83d\ude00"}"#;
    let mut env = envelope_001("start_long_task", json!({"seconds": 1}));
    env.args.insert(
        "payload".into(),
        lacre_proto::parse(payload.as_bytes(), Default::default()).unwrap(),
    );
    env.sign(&SigningKey::hmac(CLIENT_SECRET).unwrap());
    let (_, resp) = s.send(&env).await;
    let job_id = job_id_of(&resp);
    let deadline = Instant::now() + Duration::from_secs(5);
    let done = loop {
        let (_, resp) = s
            .call("poll_job", json!({"job_id": job_id, "wait_ms": 2000}))
            .await;
        if resp.status == Status::Done {
            break resp;
        }
        assert!(Instant::now() < deadline);
    };
    let result = lacre_proto::canonical(&lacre_proto::Value::Object(done.result.unwrap()));
    assert_eq!(String::from_utf8(result).unwrap(), payload);
    s.stop().await;
}

#[tokio::test]
async fn restricted_clients_cannot_probe_for_tools() {
    let s = TestServer::start().await;
    // client-002 may call batch_sum only (and the system tools): a tool that
    // does not exist and one that exists look the same to it.
    for tool in ["no_such_tool", "start_long_task", "fail_now"] {
        let e = envelope("client-002", OTHER_SECRET, tool, json!({}));
        s.expect(&e, 403, ErrorCode::ForbiddenTool).await;
    }
    // The system tools stay available to it.
    let e = envelope("client-002", OTHER_SECRET, "list_jobs", json!({}));
    assert_eq!(s.send(&e).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn slow_clients_are_disconnected_and_others_still_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await; // header and body timeouts: 600 ms
    let addr = s.base.trim_start_matches("http://").to_owned();
    // Slowloris: headers trickled one byte at a time, never finished.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    let closed = async {
        for b in b"POST /mcp HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle() {
            if slow.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut buf = [0u8; 1];
            if let Ok(Ok(0)) =
                tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await
            {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the slow client was never disconnected");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "closed too early: {:?}",
        started.elapsed()
    );
    // A connection that sends headers and then trickles its body gets a
    // signed refusal instead of holding the server.
    let mut body_slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    body_slow
        .write_all(b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), body_slow.read_to_end(&mut reply))
        .await
        .expect("no reply to a slow body")
        .ok();
    let text = String::from_utf8_lossy(&reply);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let resp = check_signed(body.as_bytes());
    assert_eq!(
        ErrorCode::split_error_text(resp.error.as_deref().unwrap()).0,
        ErrorCode::BadEnvelope
    );
    // The server still answers.
    assert_eq!(s.call("batch_sum", json!({"numbers": [1]})).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_tool_and_outcome() {
    let s = TestServer::start().await;
    assert_eq!(s.call("batch_sum", json!({"numbers": [1]})).await.0, 200);
    let e = envelope(
        "client-001",
        b"wrong-secret",
        "batch_sum",
        json!({"numbers": [1]}),
    );
    assert_eq!(s.send(&e).await.0, 401);
    assert_eq!(
        s.call("start_long_task", json!({"seconds": 1})).await.0,
        202
    );
    let text = s.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(r#"lacre_requests_total{tool="batch_sum",outcome="ok"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"lacre_requests_total{tool="-",outcome="bad_signature"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"lacre_verification_failures_total{reason="bad_signature"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"lacre_request_duration_seconds_count 3"#),
        "{text}"
    );
    assert!(text.contains("lacre_jobs{state="), "{text}");
    assert!(text.contains("lacre_nonces 2"), "{text}");
    // The nonce records' memory is reported, and is not nothing.
    let bytes = text
        .lines()
        .find_map(|l| l.strip_prefix("lacre_nonce_memory_bytes "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(bytes.is_some_and(|b| b > 0), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn bodies_beyond_the_budget_are_refused_before_they_are_read() {
    // memory_before_auth: bodies were buffered before any limit applied
    // (600 slow 1 MiB bodies took RSS from 11 MB to 630 MB). Now a body
    // that does not fit the budget is refused at once, unread.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with_http(
        |b| b,
        |c| {
            c.body_limit = 64 * 1024;
            c.body_budget = 128 * 1024;
            c.body_timeout = Duration::from_secs(5);
        },
    )
    .await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let head = |len: usize| {
        format!("POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n")
    };
    // Two slow clients hold the whole budget with declared 64 KiB bodies.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(head(64 * 1024).as_bytes()).await.unwrap();
        c.write_all(b"{").await.unwrap();
        slow.push(c);
    }
    // Both are admitted, their bodies' bytes taken from the budget.
    until("two slow bodies in flight", || s.server.in_flight() == 2).await;
    // A third is answered at once, signed, while it has sent no body.
    let mut third = tokio::net::TcpStream::connect(&addr).await.unwrap();
    third.write_all(head(64 * 1024).as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut reply = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), third.read(&mut reply))
        .await
        .expect("the refusal comes before the body is sent")
        .unwrap();
    let text = String::from_utf8_lossy(&reply[..n]).to_string();
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let resp = check_signed(body.as_bytes());
    assert_eq!(
        resp.error.as_deref().map(|e| e.starts_with("overloaded")),
        Some(true)
    );
    assert_eq!(resp.request_id, "");
    assert!(started.elapsed() < Duration::from_secs(3));
    // When a slow client goes, its share of the budget comes back.
    drop(slow);
    until("the slow bodies' places given back", || {
        s.server.in_flight() == 0
    })
    .await;
    let (http, resp) = s.call("batch_sum", json!({"numbers": [1]})).await;
    assert_eq!((http, resp.status), (200, Status::Ok));
    s.stop().await;
}

#[tokio::test]
async fn long_polls_wake_for_their_own_job_and_reads_skip_arguments() {
    // reads_load_too_much: every long poll re-read its job at every change
    // of any job, and list_jobs / poll_job read whole rows (arguments and
    // results) for a few small fields.
    let store = Arc::new(crate::worker::Counting::default());
    let s = TestServer::start_with({
        let store = Arc::clone(&store);
        move |b| b.job_store(store)
    })
    .await;
    let a = s.start_job(json!({"seconds": 5})).await;
    let polls: Vec<_> = (0..20)
        .map(|_| {
            let env = envelope_001("poll_job", json!({"job_id": a, "wait_ms": 2000}));
            let body = env.to_json();
            let http = s.http.clone();
            let url = s.url.clone();
            tokio::spawn(async move { http.post(url).body(body).send().await.unwrap() })
        })
        .collect();
    // Meanwhile other jobs churn: each is queued, claimed and finished.
    for i in 0..30 {
        s.call("fail_later", json!({"message": format!("churn {i}")}))
            .await;
    }
    for p in polls {
        assert_eq!(p.await.unwrap().status().as_u16(), 200);
    }
    let reads_of_a = store
        .status_reads
        .lock()
        .unwrap()
        .get(&a)
        .copied()
        .unwrap_or(0);
    // 20 first reads, then wake-ups by A's own changes (claimed, progress
    // each second) and the 1 s fallback: a few each, not one per change of
    // the 30 other jobs (about 90 changes, 1 800 reads).
    eprintln!("reads of the polled job: {reads_of_a}");
    assert!(reads_of_a < 300, "job {a} was read {reads_of_a} times");
    let (http, _) = s.call("list_jobs", json!({})).await;
    assert_eq!(http, 200);
    assert_eq!(
        store.whole_reads.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "poll_job or list_jobs read whole job records"
    );
    s.stop().await;
}

#[tokio::test]
async fn one_client_at_every_limit_does_not_slow_another() {
    // fair_sharing: one client filled every in-flight place with long
    // polls and every other client got `503 overloaded`. Here the server
    // has 4 places in flight and client A may wait in 8 long polls: they
    // must not sit on the places everyone shares.
    let a_limits = lacre_server::limits::ClientLimits {
        max_in_flight: 8,
        max_long_polls: 8,
        max_jobs: 5,
        max_job_bytes: 1 << 20,
    };
    let s = TestServer::start_with(move |b| {
        b.max_in_flight(4)
            .client_limits("client-001", a_limits)
            // A job that changes nothing for a while: its long polls wait.
            .tools(|reg| sleeper(reg, "hold", true, 10_000))
    })
    .await;
    let b_sum = || {
        envelope(
            "client-002",
            OTHER_SECRET,
            "batch_sum",
            json!({"numbers": [1, 2]}),
        )
    };
    let latency_of_b = |s: &TestServer| {
        let http = s.http.clone();
        let url = s.url.clone();
        async move {
            let mut worst = Duration::ZERO;
            for _ in 0..20 {
                let body = b_sum().to_json();
                let t = Instant::now();
                let resp = http.post(&url).body(body).send().await.unwrap();
                assert_eq!(resp.status().as_u16(), 200, "client B was refused");
                worst = worst.max(t.elapsed());
            }
            worst
        }
    };
    let before = latency_of_b(&s).await;

    // A fills its job quota...
    let mut jobs = Vec::new();
    for _ in 0..5 {
        let (http, resp) = s.call("hold", json!({})).await;
        assert_eq!(http, 202, "{resp:?}");
        jobs.push(job_id_of(&resp));
    }
    s.refused(
        "start_long_task",
        json!({"seconds": 1}),
        429,
        ErrorCode::RateLimited,
    )
    .await;
    // ... and opens far more long polls than the server has places.
    let polls: Vec<_> = (0..40)
        .map(|i| {
            let env = envelope_001("poll_job", json!({"job_id": jobs[i % 5], "wait_ms": 3000}));
            let (http, url) = (s.http.clone(), s.url.clone());
            tokio::spawn(async move {
                http.post(url)
                    .body(env.to_json())
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    // The refused ones answer at once; what is left are the polls waiting.
    until("32 polls refused", || {
        polls.iter().filter(|p| p.is_finished()).count() == 32
    })
    .await;
    let during = latency_of_b(&s).await;
    let mut statuses = Vec::new();
    for p in polls {
        statuses.push(p.await.unwrap());
    }
    let waited = statuses.iter().filter(|s| **s == 200).count();
    // Refused: by A's own limit (429), or while the 4 shared places were
    // momentarily taken by A's polls on their way to waiting (503).
    let refused = statuses.iter().filter(|s| **s == 429 || **s == 503).count();
    eprintln!(
        "client B's slowest call: {before:?} alone, {during:?} while client A holds {waited} long polls ({refused} refused)"
    );
    assert_eq!((waited, refused), (8, 32), "{statuses:?}");
    assert!(
        during < Duration::from_secs(1),
        "client B waited {during:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn since_version_answers_a_change_the_caller_has_not_seen_at_once() {
    // A job that reports progress when the test says so.
    let steps = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let s2 = steps.clone();
    let s = TestServer::start_with(|b| {
        b.tools(|reg| {
            let def = lacre_server::ToolDef {
                name: "stepper".into(),
                description: "Reports a step each time the test allows one.".into(),
                args_schema: json!({"type": "object"}),
            };
            reg.dynamic_long_running(def, move |_, ctx| {
                let steps = s2.clone();
                async move {
                    for i in 1..=3 {
                        steps.acquire().await.unwrap().forget();
                        ctx.progress(f64::from(i) / 4.0, format!("step {i}"));
                    }
                    steps.acquire().await.unwrap().forget();
                    Ok(lacre_proto::Map::new())
                }
            })
            .unwrap();
        })
    })
    .await;
    let (http, resp) = s.call("stepper", json!({})).await;
    assert_eq!(http, 202, "{resp:?}");
    let job_id = job_id_of(&resp);
    let poll = |args: serde_json::Value| {
        let s = &s;
        async move {
            let (http, resp) = s.call("poll_job", args).await;
            assert_eq!((http, resp.status), (200, Status::Running), "{resp:?}");
            result_json(&resp)
        }
    };
    until_poll(&s, &job_id, "running", |v| v["state"] == "running").await;
    let first = poll(json!({"job_id": job_id})).await;
    let seen = first["version"]
        .as_u64()
        .expect("a running reply has a version");
    // A change happens between two polls.
    steps.add_permits(1);
    let moved = |v: &serde_json::Value| v["message"] == "step 1";
    let deadline = Instant::now() + Duration::from_secs(5);
    while !moved(&poll(json!({"job_id": job_id})).await) {
        assert!(Instant::now() < deadline, "step 1 never recorded");
    }
    // Naming the version seen: answered at once, with the change.
    let t = Instant::now();
    let next = poll(json!({"job_id": job_id, "wait_ms": 20000, "since_version": seen})).await;
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "held {:?}",
        t.elapsed()
    );
    assert_eq!(next["message"], "step 1");
    let now_seen = next["version"].as_u64().unwrap();
    assert!(now_seen > seen, "{now_seen} after {seen}");
    // Naming the current version: it waits for the next change, which it
    // returns, however the step is timed against the poll.
    let waiting = {
        let (http, url) = (s.http.clone(), s.url.clone());
        let env = envelope_001(
            "poll_job",
            json!({"job_id": job_id, "wait_ms": 20000, "since_version": now_seen}),
        );
        tokio::spawn(async move {
            let r = http.post(&url).body(env.to_json()).send().await.unwrap();
            check_signed(&r.bytes().await.unwrap())
        })
    };
    steps.add_permits(1);
    let reply = waiting.await.unwrap();
    let view = result_json(&reply);
    assert_eq!(view["message"], "step 2", "{view}");
    assert!(view["version"].as_u64().unwrap() > now_seen);
    steps.add_permits(2);
    s.stop().await;
}

/// Polls job `id` of client-001 (at most 5 s) until its reply's result
/// passes `check`.
async fn until_poll(
    s: &TestServer,
    id: &str,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, resp) = s.call("poll_job", json!({"job_id": id})).await;
        if check(&result_json(&resp)) {
            return;
        }
        assert!(Instant::now() < deadline, "{id}: never {what}: {resp:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
