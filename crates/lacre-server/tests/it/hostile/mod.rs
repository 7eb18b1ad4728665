//! Hostile input over real HTTP: data-driven tables of malformed, oversized,
//! forged, stale and replayed requests. Every case checks the exact HTTP
//! status, the exact error code (`ErrorCode::split_error_text`), `ok:false` /
//! `status:"error"`, the echoed `request_id`, and that the reply is signed by
//! the server key. A runner sends every case and reports all failing case
//! names at once. Special cases (streamed 100 MiB bodies, slowloris, restart
//! with a durable nonce store, memory) have their own functions.
//!
//! The JSON-level cases (encodings, nesting, sizes, numbers, duplicates,
//! surrogates, UTF-8, truncations) live in `testdata/vectors/hostile.json`,
//! where another implementation can run them; the cases here need this
//! server's state or keys at run time (fields, signatures, windows,
//! replays, tool arguments) or bodies too large for a vector file.

mod args;
mod build;
mod fields;
mod limits;
mod raw;
mod replay;
mod signatures;
mod vectors;

use args::*;
use build::*;
use fields::*;
use limits::*;
use raw::*;
use replay::*;
use signatures::*;
use vectors::*;

use crate::support::*;
use lacre_proto::{
    Envelope, ErrorCode, FixedClock, Map, ParseLimits, Response, SigningKey, Status, Value,
};
use lacre_server::{store, ToolFilter};
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The fixed "now" of the table servers (so that window edges are exact).
const NOW: i64 = 1_700_000_000_000;
/// The default timestamp window.
const WINDOW: i64 = 300_000;
/// The test server's body limit.
const BODY_LIMIT: usize = 64 * 1024;
/// An Ed25519 client, added to the table servers.
const ED_CLIENT: &str = "client-ed";
const ED_SEED: [u8; 32] = [7u8; 32];

// Cases and the runner.

#[derive(Clone, Debug)]
enum Expect {
    /// A signed error reply.
    Error {
        http: u16,
        code: ErrorCode,
        request_id: String,
    },
    /// A signed success reply (controls next to the hostile cases: the
    /// accepted side of every boundary).
    Success {
        http: u16,
        status: Status,
        request_id: String,
    },
}

struct Case {
    name: String,
    body: Vec<u8>,
    expect: Expect,
}

#[derive(Default)]
struct Table {
    cases: Vec<Case>,
    names: HashSet<String>,
}

impl Table {
    fn add(&mut self, name: impl Into<String>, body: impl Into<Vec<u8>>, expect: Expect) {
        let name = name.into();
        assert!(
            self.names.insert(name.clone()),
            "duplicate case name {name}"
        );
        self.cases.push(Case {
            name,
            body: body.into(),
            expect,
        });
    }

    fn len(&self) -> usize {
        self.cases.len()
    }

    /// `e`, sent whole, refused with `code` and its own request id.
    fn refuse(&mut self, name: impl Into<String>, e: &Envelope, http: u16, code: ErrorCode) {
        self.add(name, e.to_json(), err(http, code, &e.request_id));
    }

    /// `e`, sent whole, answered `ok`.
    fn accept(&mut self, name: impl Into<String>, e: &Envelope) {
        self.add(name, e.to_json(), ok(&e.request_id));
    }
}

fn err(http: u16, code: ErrorCode, request_id: &str) -> Expect {
    Expect::Error {
        http,
        code,
        request_id: request_id.to_owned(),
    }
}

fn bad(request_id: &str) -> Expect {
    err(400, ErrorCode::BadEnvelope, request_id)
}

fn invalid_args(request_id: &str) -> Expect {
    err(422, ErrorCode::InvalidArgs, request_id)
}

fn ok(request_id: &str) -> Expect {
    Expect::Success {
        http: 200,
        status: Status::Ok,
        request_id: request_id.to_owned(),
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        "panic".to_owned()
    }
}

/// Runs `f`, turning a failed assertion into an `Err` so that the runner can
/// collect every failure instead of stopping at the first one.
fn attempt<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(panic_text)
}

/// Checks one HTTP reply against an expectation (signature included).
fn check_reply(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    request: &[u8],
    expect: &Expect,
) -> Result<(), String> {
    if content_type != Some("application/json") {
        return Err(format!(
            "content-type {content_type:?}, HTTP {status}, body {:?}",
            String::from_utf8_lossy(body)
        ));
    }
    let resp: Response = attempt(|| check_signed(body))?;
    check_binding(&resp, request)?;
    match expect {
        Expect::Error {
            http,
            code,
            request_id,
        } => attempt(|| assert_error(&(status, resp.clone()), *http, code.clone(), request_id))
            .map_err(|e| format!("{e} (reply: HTTP {status} {:?})", resp.error)),
        Expect::Success {
            http,
            status: want,
            request_id,
        } => {
            if status != *http
                || !resp.ok
                || resp.status != *want
                || resp.error.is_some()
                || &resp.request_id != request_id
            {
                return Err(format!(
                    "expected HTTP {http} {want:?} for {request_id:?}, got HTTP {status} {resp:?}"
                ));
            }
            check_result(request, &resp)
        }
    }
}

/// A success must carry the result of the request it answers: for
/// `batch_sum` the count and the left-to-right total of the very numbers
/// sent (so a row that "succeeds" on other arguments fails), for a started
/// job a `job_id`, for `server_identity` this server's id.
fn check_result(request: &[u8], resp: &Response) -> Result<(), String> {
    let limits = ParseLimits {
        max_depth: 128,
        ..ParseLimits::default()
    };
    let env = Envelope::parse(request, limits).map_err(|e| format!("a success for {e}"))?;
    let got = resp.result.clone().map(|r| Value::Object(r).to_serde());
    let want = match env.tool.as_str() {
        "batch_sum" => {
            let numbers: Vec<f64> = env
                .args
                .get("numbers")
                .and_then(|n| serde_json::from_value(n.to_serde()).ok())
                .ok_or("batch_sum succeeded without numbers")?;
            let total = numbers.iter().fold(0.0, |acc, x| acc + x);
            serde_json::json!({"count": numbers.len(), "total": total})
        }
        "server_identity" => {
            return match got.as_ref().and_then(|g| g.get("server_id")) {
                Some(id) if id == SERVER_ID => Ok(()),
                _ => Err(format!("server_identity answered {got:?}")),
            }
        }
        "poll_job" | "cancel_job" => {
            // The job asked about, in a state a poll or a cancel can give.
            let asked = env.args.get("job_id").map(Value::to_serde);
            let job = got.as_ref().and_then(|g| g.get("job_id")).cloned();
            let state = got
                .as_ref()
                .and_then(|g| g.get("state"))
                .and_then(|s| s.as_str());
            let states: &[&str] = if env.tool == "cancel_job" {
                &["cancelled"]
            } else {
                &["queued", "running"]
            };
            return if job.is_some() && job == asked && state.is_some_and(|s| states.contains(&s)) {
                Ok(())
            } else {
                Err(format!("{} of {asked:?} answered {got:?}", env.tool))
            };
        }
        "list_jobs" => {
            let jobs = got
                .as_ref()
                .and_then(|g| g.get("jobs"))
                .and_then(|j| j.as_array())
                .ok_or_else(|| format!("list_jobs answered {got:?}"))?;
            let limit = env.args.get("limit").and_then(|l| l.to_serde().as_u64());
            let state = env.args.get("state").map(Value::to_serde);
            let fits = limit.is_none_or(|l| jobs.len() as u64 <= l)
                && jobs.iter().all(|j| {
                    state
                        .as_ref()
                        .is_none_or(|s| s.is_null() || j.get("state") == Some(s))
                });
            return if fits {
                Ok(())
            } else {
                Err(format!("list_jobs {:?} answered {got:?}", env.args))
            };
        }
        _ if resp.status == Status::Accepted => {
            return match got.as_ref().and_then(|g| g.get("job_id")) {
                Some(serde_json::Value::String(_)) => Ok(()),
                _ => Err(format!("accepted without a job_id: {got:?}")),
            }
        }
        other => return Err(format!("no expected result for a success of {other:?}")),
    };
    if got.as_ref() != Some(&want) {
        return Err(format!("result {got:?}, expected {want}"));
    }
    Ok(())
}

async fn run_case(s: &TestServer, case: &Case) -> Result<(), String> {
    if case.body.len() > BODY_LIMIT {
        // A server may answer an oversized body before reading it all and
        // close the connection; reqwest, still writing, would then report a
        // transport error. Write and read concurrently instead.
        let (status, ct, body) = post_concurrently(&addr_of(s), case.body.clone()).await?;
        return check_reply(status, Some(&ct), &body, &case.body, &case.expect);
    }
    let send = s.http.post(&s.url).body(case.body.clone()).send();
    let resp = tokio::time::timeout(Duration::from_secs(20), send)
        .await
        .map_err(|_| "no reply within 20 s".to_owned())?
        .map_err(|e| format!("transport error: {e}"))?;
    let status = resp.status().as_u16();
    let ct = content_type(&resp);
    let body = tokio::time::timeout(Duration::from_secs(20), resp.bytes())
        .await
        .map_err(|_| "body not read within 20 s".to_owned())?
        .map_err(|e| format!("body read error: {e}"))?;
    check_reply(status, ct.as_deref(), &body, &case.body, &case.expect)
}

/// Sends every case in order (order matters for replays) and returns the
/// failures, one line per failing case.
async fn run_table(s: &TestServer, table: &Table) -> Vec<String> {
    run_table_across(&[s], table).await
}

/// As [`run_table`], the cases going to each server in turn (replicas of
/// one store: a reuse then meets another replica than the first use).
async fn run_table_across(servers: &[&TestServer], table: &Table) -> Vec<String> {
    let mut failures = Vec::new();
    for (case, s) in table.cases.iter().zip(servers.iter().cycle()) {
        if let Err(e) = run_case(s, case).await {
            // Replies can be huge: keep each line readable.
            let e: String = e.chars().take(1500).collect();
            failures.push(format!("{}: {e}", case.name));
        }
    }
    failures
}

#[track_caller]
fn assert_no_failures(what: &str, total: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{what}: {} of {total} cases failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

fn main_table(others_job: &str) -> Table {
    let mut t = Table::default();
    vector_cases(&mut t);
    field_cases(&mut t);
    signature_cases(&mut t);
    window_cases(&mut t);
    replay_cases(&mut t);
    args_cases(&mut t, others_job);
    t
}

async fn table_server(body_limit: Option<usize>) -> TestServer {
    table_server_on(None, body_limit).await
}

/// The table's server, on `stores` (else the memory stores).
async fn table_server_on(stores: Option<&store::Stores>, body_limit: Option<usize>) -> TestServer {
    let stores = stores.map(|s| (s.jobs.clone(), s.nonces.clone()));
    TestServer::start_with_http(
        |b| {
            let b = match stores {
                Some((jobs, nonces)) => b.job_store(jobs).nonce_store(nonces),
                None => b,
            };
            b.clock(Arc::new(FixedClock(NOW)))
                .client(
                    ED_CLIENT,
                    [key_of(ED_CLIENT).verifying_key()],
                    ToolFilter::All,
                )
                .unwrap()
        },
        |c| {
            if let Some(limit) = body_limit {
                c.body_limit = limit;
            }
        },
    )
    .await
}

// The tests.

/// Set in the child process that runs [`hostile_inputs_table`] alone.
const ALONE: &str = "LACRE_HOSTILE_TABLE_ALONE";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_table() {
    // The memory check below measures this process: it runs in a child of
    // its own (this test binary again, this one test), where no other test
    // allocates anything.
    if std::env::var_os(ALONE).is_none() {
        let exe = std::env::current_exe().expect("the test binary");
        let out = tokio::process::Command::new(exe)
            .args(["--exact", "hostile::hostile_inputs_table", "--nocapture"])
            .env(ALONE, "1")
            .output()
            .await
            .expect("run the hostile table in a child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the hostile table failed in its child:\n{stdout}\n{stderr}"
        );
        // Its summary line, where cargo shows this test's output.
        if let Some(line) = stderr.lines().find(|l| l.starts_with("hostile table:")) {
            eprintln!("{line}");
        }
        return;
    }
    let started = Instant::now();
    let rss_before = rss_kib("VmRSS");
    let s = table_server(None).await;

    // A job of client-001, for the ownership cases.
    let job = make("start_long_task", r#"{"seconds":20}"#, |_| {});
    let (http, resp) = s.send(&job).await;
    assert_eq!(http, 202, "{resp:?}");
    let job_id = job_id_of(&resp);

    let table = main_table(&job_id);
    let count = table.len();
    assert!(count >= 200, "the hostile table shrank to {count} cases");
    let mut failures = run_table(&s, &table).await;

    // Streamed 100 MiB bodies: refused after the limit, without reading it all.
    for chunked in [false, true] {
        let what = if chunked { "chunked" } else { "Content-Length" };
        match stream_huge(&s, chunked).await {
            Ok((status, ct, body, sent)) => {
                let expect = err(413, ErrorCode::TooLarge, "");
                if let Err(e) = check_reply(status, Some(&ct), &body, b"", &expect) {
                    failures.push(format!("stream/100 MiB {what}: {e}"));
                }
                if sent >= 8 << 20 {
                    failures.push(format!(
                        "stream/100 MiB {what}: the server read all {sent} bytes sent"
                    ));
                }
            }
            Err(e) => failures.push(format!("stream/100 MiB {what}: {e}")),
        }
    }
    // Other paths and methods are the framework's, unsigned.
    let get = s.http.get(&s.url).send().await.unwrap();
    if get.status().as_u16() != 405 {
        failures.push(format!("method/GET /mcp: HTTP {}", get.status()));
    }
    let other = s
        .http
        .post(format!("{}/other", s.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    if other.status().as_u16() != 404 {
        failures.push(format!("path/POST /other: HTTP {}", other.status()));
    }

    // A soak: many near-limit hostile bodies, far more bytes in total than
    // the memory slack allowed below, so a per-request leak would show.
    let soak_started = Instant::now();
    let soaked = match soak(&s, 4, 600).await {
        Ok(bytes) => bytes,
        Err(e) => {
            failures.push(format!("soak: {e}"));
            0
        }
    };
    let soak_time = soak_started.elapsed();

    // After all that, a valid call still works, promptly.
    let t = Instant::now();
    let e = sum();
    let (http, resp) = s.send(&e).await;
    assert_eq!((http, resp.status), (200, Status::Ok), "{resp:?}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "valid call took {:?}",
        t.elapsed()
    );
    assert_no_failures("hostile table", count + 4, &failures);

    s.stop().await;
    drop(table);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_after = rss_kib("VmRSS");
    let peak = rss_kib("VmHWM");
    eprintln!(
        "hostile table: {count} cases (+4 transport checks), soak of {} MiB in {soak_time:?}, all in {:?}; VmRSS before {rss_before:?} KiB, after {rss_after:?} KiB, peak {peak:?} KiB",
        soaked >> 20,
        started.elapsed()
    );
    assert!(soaked > (64 << 20) * 2, "the soak sent only {soaked} bytes");
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        assert!(
            after <= before + 64 * 1024,
            "resident memory grew from {before} KiB to {after} KiB"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_replay_rows_hold_on_sqlite_and_postgres() {
    // The replay rows of the table, against the durable nonce stores (the
    // table itself runs on memory): a first use is accepted, every reuse
    // refused, a refusal before the nonce step burns nothing. Two replicas,
    // each with the store opened on its own, take the rows in turn, so the
    // database and not a replica's in-memory front set refuses the reuses.
    async fn on_two_replicas(what: &str, url: &str) {
        let mut t = Table::default();
        replay_cases(&mut t);
        assert!(t.len() >= 15, "{} replay rows", t.len());
        let (a, b) = (
            store::open(url).await.unwrap(),
            store::open(url).await.unwrap(),
        );
        let sa = table_server_on(Some(&a), None).await;
        let sb = table_server_on(Some(&b), None).await;
        let failures = run_table_across(&[&sa, &sb], &t).await;
        assert_no_failures(what, t.len(), &failures);
        sa.stop().await;
        sb.stop().await;
    }
    let (url, _dir) = crate::store_contract::sqlite_url("hostile-replay");
    on_two_replicas("replay rows on SQLite", &url).await;
    if let Some(url) = crate::store_contract::pg_url("hostile_replay_rows_on_postgres").await {
        on_two_replicas("replay rows on PostgreSQL", &url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_with_a_large_body_limit() {
    let _heavy = HEAVY.lock().await;
    let s = table_server(Some(8 << 20)).await;
    let table = large_limit_table();
    let failures = run_table(&s, &table).await;
    let e = sum();
    assert_eq!(s.send(&e).await.0, 200);
    assert_no_failures("large-limit table", table.len(), &failures);
    s.stop().await;
}

#[test]
fn hostile_case_count() {
    let main = main_table("job").len();
    let large = large_limit_table().len();
    eprintln!("hostile cases: main table {main}, large-limit table {large}");
    assert!(main >= 200, "main table has only {main} cases");
    assert!(main + large >= 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_slowloris_does_not_starve_valid_calls() {
    let s = TestServer::start().await;
    let addr = addr_of(&s);
    // Eight connections trickling header bytes, never finishing, plus one
    // that connects and says nothing.
    let mut slow = Vec::new();
    for i in 0..9 {
        let addr = addr.clone();
        slow.push(tokio::spawn(async move {
            let mut c = TcpStream::connect(&addr).await.unwrap();
            let opened = Instant::now();
            if i > 0 {
                c.write_all(b"POST /mcp HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .await
                    .unwrap();
            }
            let mut buf = [0u8; 256];
            loop {
                if opened.elapsed() > Duration::from_secs(10) {
                    return None;
                }
                match tokio::time::timeout(Duration::from_millis(50), c.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return Some(opened.elapsed()),
                    Ok(Ok(_)) => return Some(opened.elapsed()),
                    Err(_) => {}
                }
                if i > 0 && c.write_all(b"a").await.is_err() {
                    return Some(opened.elapsed());
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Valid calls meanwhile are answered quickly.
    for _ in 0..5 {
        let t = Instant::now();
        let e = sum_call();
        let reply = s.send(&e).await;
        assert_eq!(reply.0, 200);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "valid call took {:?}",
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every slow connection is cut after about the header timeout (600 ms).
    for (i, h) in slow.into_iter().enumerate() {
        let closed = h.await.unwrap();
        let closed = closed.unwrap_or_else(|| panic!("slow connection {i} still open after 10 s"));
        assert!(
            closed >= Duration::from_millis(500) && closed < Duration::from_secs(5),
            "slow connection {i} closed after {closed:?}"
        );
    }
    let e = sum_call();
    assert_eq!(s.send(&e).await.0, 200);
    s.stop().await;
}

/// Sends headers announcing `announced` body bytes, then `sent` bytes, then
/// (when `close`) shuts the write half; returns the reply.
async fn short_body(
    s: &TestServer,
    announced: usize,
    sent: &[u8],
    close: bool,
) -> Result<(u16, String, Vec<u8>), String> {
    let mut c = TcpStream::connect(addr_of(s))
        .await
        .map_err(|e| e.to_string())?;
    let head = format!("POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: {announced}\r\n\r\n");
    c.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    c.write_all(sent).await.map_err(|e| e.to_string())?;
    if close {
        c.shutdown().await.map_err(|e| e.to_string())?;
    }
    tokio::time::timeout(Duration::from_secs(5), read_response(&mut c))
        .await
        .map_err(|_| "no reply within 5 s".to_owned())?
}

#[tokio::test]
async fn hostile_slow_and_short_bodies_get_signed_replies() {
    // The body timeout (600 ms) and a body cut short both end in a signed
    // bad_envelope with request_id "" and nothing bound (SPEC §7.1).
    let s = TestServer::start().await;
    for (name, close) in [("slow body", false), ("short body", true)] {
        let t = Instant::now();
        let (status, ct, body) = short_body(&s, 1000, b"{\"request_id\":", close)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ct, "application/json", "{name}");
        let resp = check_signed(&body);
        assert!(!resp.ok && resp.status == Status::Error, "{name}: {resp:?}");
        assert_eq!(resp.request_id, "", "{name}");
        assert_eq!(status, 400, "{name}");
        assert!(
            resp.error
                .as_deref()
                .is_some_and(|e| e.starts_with("bad_envelope")),
            "{name}: {resp:?}"
        );
        assert!(
            resp.result.is_none(),
            "{name}: bound to a partial body: {resp:?}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{name}: took {:?}",
            t.elapsed()
        );
    }
    let e = sum_call();
    assert_eq!(s.send(&e).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn hostile_replay_after_restart_with_sqlite_store() {
    let (url, _dir) = crate::store_contract::sqlite_url("hostile-restart");
    let stores = store::open(&url).await.unwrap();
    let s = TestServer::on_stores(&stores).await;
    let env = sum_call();
    assert_eq!(s.send(&env).await.0, 200);
    s.stop().await;
    drop(stores);

    // A new server on the same file: the replay is refused.
    let stores = store::open(&url).await.unwrap();
    let s = TestServer::on_stores(&stores).await;
    s.expect(&env, 401, ErrorCode::ReplayedNonce).await;
    let mut again = env.clone();
    again.ts_ms = now_ms();
    again.sign(&SigningKey::hmac(CLIENT_SECRET).unwrap());
    s.expect(&again, 401, ErrorCode::ReplayedNonce).await;
    let mut other = env.clone();
    other.client_id = "client-002".into();
    other.sign(&SigningKey::hmac(OTHER_SECRET).unwrap());
    assert_eq!(s.send(&other).await.0, 200, "same nonce, other client");
    let fresh = sum_call();
    assert_eq!(s.send(&fresh).await.0, 200);
    s.stop().await;
    drop(stores);
}

/// Cases where this implementation disagrees with docs/SPEC.md (or with
/// its own client): each row expects the behaviour SPEC.md describes.
fn spec_disagreement_cases(t: &mut Table) {
    // §4.1/§4.3/§6.1/§8: "`v`, if present, is a string equal to "mcp/0.1"
    // (else unsupported_version)". A non-string `v` gets bad_envelope.
    for lit in ["0.1", "null", "true", "[]", "{}", "1"] {
        let e = sum();
        t.add(
            format!("version/v is {lit}"),
            Raw::of(&e).set("v", lit).bytes(),
            err(400, ErrorCode::UnsupportedVersion, &e.request_id),
        );
    }
    // §9: "`payload`, if present, must be an object" (null means absent only
    // for wait_ms, state and limit). `"payload": null` is accepted (202).
    let e = make("start_long_task", r#"{"seconds":1,"payload":null}"#, |_| {});
    t.refuse(
        "args/start_long_task payload null",
        &e,
        422,
        ErrorCode::InvalidArgs,
    );
    // invalid_args messages quote the offending value with Rust's Debug
    // escaping: one raw DEL byte (U+007F) becomes the 6 characters
    // `\u{7f}`. A 60 000-character string in a 60 KB request gives a
    // 360 000-byte error string, over the 256 KiB string limit with which
    // lacre's own Response::parse / verify_response read replies: the
    // signed reply cannot be read by lacre's client.
    let args = format!(r#"{{"numbers":["{}"]}}"#, "\u{7f}".repeat(60_000));
    let e = make("batch_sum", &args, |_| {});
    // Sent raw (DEL needs no escape), so the body stays under 64 KiB.
    let body = Raw::of(&e).set("args", &args).bytes();
    assert!(body.len() < BODY_LIMIT);
    t.add(
        "reply size/60000 DEL characters in batch_sum numbers",
        body,
        invalid_args(&e.request_id),
    );
}

#[tokio::test]
async fn hostile_review_findings_stay_fixed() {
    let _heavy = HEAVY.lock().await;
    let s = table_server(None).await;
    let mut failures = Vec::new();
    // §7.1: a body that cannot be read (too slow, or cut short) is
    // answered bad_envelope, HTTP 400, request_id "".
    for (name, close) in [("slow body", false), ("short body", true)] {
        match short_body(&s, 1000, b"{\"request_id\":", close).await {
            Ok((status, ct, body)) => {
                let expect = err(400, ErrorCode::BadEnvelope, "");
                if let Err(e) = check_reply(status, Some(&ct), &body, b"", &expect) {
                    failures.push(format!("body/{name}: {e}"));
                }
            }
            Err(e) => failures.push(format!("body/{name}: {e}")),
        }
    }
    let mut t = Table::default();
    spec_disagreement_cases(&mut t);
    failures.extend(run_table(&s, &t).await);
    s.stop().await;

    // With a larger body limit (the default is 1 MiB), a 256 KiB string
    // (within the parser's limit) is quoted back whole in the error.
    let s = table_server(Some(1 << 20)).await;
    let mut t2 = Table::default();
    let e = make(
        "batch_sum",
        &format!(r#"{{"numbers":["{}"]}}"#, "x".repeat(256 * 1024)),
        |_| {},
    );
    t2.add(
        "reply size/256 KiB string in batch_sum numbers",
        e.to_json(),
        invalid_args(&e.request_id),
    );
    failures.extend(run_table(&s, &t2).await);
    s.stop().await;
    for f in &failures {
        eprintln!("FAILED FINDING {}", f.chars().take(600).collect::<String>());
    }
    assert_no_failures("SPEC disagreements", t.len() + t2.len() + 2, &failures);
}
