//! `lacre bench`: a load generator for any server speaking the protocol.
//!
//! A signed protocol cannot be load-tested with `wrk`: every request needs
//! its own nonce and signature. This tool signs N envelopes (unique
//! `request_id` and nonce each) before the clock starts, then sends them over
//! C HTTP/1.1 keep-alive connections and measures.

use crate::keyfile::{client_key_flags, load, server_key_flags};
use crate::ExitCode;
use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use lacre_proto::{json, Envelope, Map, ParseLimits, SigningKey, Value, VerifyingKey};
use lacre_server::keys::random_bytes;
use std::io::IsTerminal;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `lacre bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Server URL, e.g. http://127.0.0.1:8790/mcp.
    #[arg(long)]
    pub url: String,
    /// Client id.
    #[arg(long, default_value = "client-001")]
    pub client_id: String,
    /// Server id.
    #[arg(long, default_value = "mcp-server-001")]
    pub server_id: String,
    /// Client HMAC secret file (or env LACRE_SECRET).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Client Ed25519 key file.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Server HMAC secret file, to verify replies.
    #[arg(long, value_name = "FILE")]
    pub server_secret_file: Option<PathBuf>,
    /// Server Ed25519 public key (hex), to verify replies.
    #[arg(long, value_name = "HEX")]
    pub server_public_key: Option<String>,
    /// Tool to call.
    #[arg(long, default_value = "batch_sum")]
    pub tool: String,
    /// Its arguments (JSON object).
    #[arg(long, default_value = r#"{"numbers":[10,20,30]}"#)]
    pub args: String,
    /// Connections (each keeps one request in flight).
    #[arg(short = 'c', long, default_value_t = 32)]
    pub concurrency: usize,
    /// Requests to send (also the number pre-signed).
    #[arg(short = 'n', long, default_value_t = 20_000)]
    pub requests: usize,
    /// Stop after this many seconds even if requests remain.
    #[arg(short = 'd', long)]
    pub duration: Option<f64>,
    /// Requests sent before measuring, to warm up connections and caches.
    #[arg(long, default_value_t = 500)]
    pub warmup: usize,
    /// Verify the signature of every reply (default: every 100th).
    #[arg(long)]
    pub verify: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// For a long-running tool: after sending, wait (long polling) until
    /// every accepted job is done, and report jobs completed per second.
    #[arg(long)]
    pub wait_jobs: bool,
    /// Make request ids and nonces from a random salt and a counter, so
    /// that each sorts after the last (a store then appends to the end of
    /// its index: this flatters it). Default: random UUIDv4s, as real
    /// clients send.
    #[arg(long)]
    pub sequential_nonces: bool,
}

/// What one run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Target.
    pub url: String,
    /// Tool called.
    pub tool: String,
    /// Connections.
    pub concurrency: usize,
    /// Requests completed (any outcome).
    pub requests: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Requests per second.
    pub rps: f64,
    /// Latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Connection or HTTP failures.
    pub transport_errors: usize,
    /// Replies whose `ok` was not true.
    pub not_ok: usize,
    /// Replies whose signature was checked.
    pub verified: usize,
    /// Replies whose signature (or request_id / server_id) did not verify.
    pub bad_signatures: usize,
    /// With `--wait-jobs`: jobs that reached `done`.
    pub jobs_done: usize,
    /// With `--wait-jobs`: jobs done per second, from the first request to
    /// the last completion.
    pub jobs_per_s: f64,
}

fn client_key(a: &BenchArgs) -> Result<SigningKey> {
    match client_key_flags(a.key_file.as_ref(), a.secret_file.as_ref()) {
        Some(named) => load::<SigningKey>(&named, Path::new(".")),
        None => bail!("no client key: use --secret-file, --key-file or LACRE_SECRET"),
    }
}

fn server_key(a: &BenchArgs) -> Result<Option<VerifyingKey>> {
    server_key_flags(a.server_public_key.as_ref(), a.server_secret_file.as_ref())
        .map(|n| load::<VerifyingKey>(&n, Path::new(".")))
        .transpose()
}

fn uuid(counter: u64, salt: &[u8; 8]) -> String {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(salt);
    b[8..].copy_from_slice(&counter.to_be_bytes());
    lacre_proto::uuid_v4(b)
}

struct Signed {
    body: Bytes,
    request_id: String,
}

/// Random UUIDv4 ids from the operating system's generator, drawn 64 KiB at
/// a time (one `getrandom` call for 4 096 ids).
struct RandomIds {
    block: Vec<u8>,
    used: usize,
}

impl RandomIds {
    const BLOCK: usize = 64 * 1024;

    fn new() -> RandomIds {
        RandomIds {
            block: vec![0; Self::BLOCK],
            used: Self::BLOCK,
        }
    }

    fn uuid(&mut self) -> Result<String> {
        if self.used == self.block.len() {
            getrandom::getrandom(&mut self.block).context("operating system random generator")?;
            self.used = 0;
        }
        let mut b = [0u8; 16];
        if let Some(src) = self.block.get(self.used..self.used + 16) {
            b.copy_from_slice(src);
        }
        self.used += 16;
        Ok(lacre_proto::uuid_v4(b))
    }
}

fn presign(a: &BenchArgs, key: &SigningKey, args: &Map, count: usize) -> Result<Vec<Signed>> {
    let salt: [u8; 8] = random_bytes()?;
    let mut random = RandomIds::new();
    let mut id = |n: u64| {
        if a.sequential_nonces {
            Ok(uuid(n, &salt))
        } else {
            random.uuid()
        }
    };
    let now = crate::debug::now_ms();
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let mut env = Envelope {
            request_id: id(2 * i as u64)?,
            ts_ms: now,
            client_id: a.client_id.clone(),
            server_id: a.server_id.clone(),
            tool: a.tool.clone(),
            args: args.clone(),
            nonce: id(2 * i as u64 + 1)?,
            signature: String::new(),
        };
        env.sign(key);
        out.push(Signed {
            body: Bytes::from(env.to_json()),
            request_id: env.request_id,
        });
    }
    Ok(out)
}

#[derive(Default)]
struct WorkerStats {
    latencies_us: Vec<u32>,
    transport_errors: usize,
    not_ok: usize,
    verified: usize,
    bad_signatures: usize,
}

type Conn = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(host: &str) -> Result<Conn> {
    let stream = tokio::net::TcpStream::connect(host).await?;
    stream.set_nodelay(true)?;
    let (send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

struct Target {
    host: String,
    path: String,
    server_id: String,
    server_key: Option<VerifyingKey>,
    verify_every: usize,
    /// Job ids from `accepted` replies, when jobs are waited for.
    job_ids: Option<std::sync::Mutex<Vec<String>>>,
}

fn accepted_job_id(body: &[u8]) -> Option<String> {
    let r = lacre_proto::Response::parse(body, ParseLimits::default()).ok()?;
    let id = r.result.as_ref()?.get("job_id")?.as_str()?;
    Some(id.to_owned())
}

/// Sends one request on `conn` (reconnecting if needed); returns the body.
async fn send(target: &Target, conn: &mut Option<Conn>, body: Bytes) -> Option<Bytes> {
    if conn.as_ref().is_none_or(|c| c.is_closed()) {
        *conn = Some(connect(&target.host).await.ok()?);
    }
    let c = conn.as_mut()?;
    let req = hyper::Request::post(target.path.as_str())
        .header("host", target.host.as_str())
        .header("content-type", "application/json")
        .body(Full::new(body))
        .ok()?;
    let result = async {
        c.ready().await?;
        let resp = c.send_request(req).await?;
        Ok::<_, hyper::Error>(resp.into_body().collect().await?.to_bytes())
    }
    .await;
    match result {
        Ok(b) => Some(b),
        Err(_) => {
            *conn = None;
            None
        }
    }
}

/// Long-polls jobs from `ids` until each is done; returns how many were.
async fn wait_jobs_worker(
    target: Arc<Target>,
    key: Arc<SigningKey>,
    client_id: String,
    ids: Arc<std::sync::Mutex<Vec<String>>>,
    salt: [u8; 8],
) -> usize {
    let mut conn = None;
    let mut done = 0;
    let mut n = 0u64;
    while let Some(id) = ids.lock().ok().and_then(|mut v| v.pop()) {
        for _ in 0..100 {
            let mut args = Map::new();
            args.insert("job_id".into(), Value::from(id.as_str()));
            args.insert("wait_ms".into(), Value::from(10_000));
            n += 1;
            let mut env = Envelope {
                request_id: uuid(2 * n, &salt),
                ts_ms: crate::debug::now_ms(),
                client_id: client_id.clone(),
                server_id: target.server_id.clone(),
                tool: "poll_job".into(),
                args,
                nonce: uuid(2 * n + 1, &salt),
                signature: String::new(),
            };
            env.sign(&key);
            let Some(body) = send(&target, &mut conn, Bytes::from(env.to_json())).await else {
                continue;
            };
            if contains(&body, br#""status":"done""#) {
                done += 1;
                break;
            }
            if contains(&body, br#""status":"error""#) {
                break;
            }
        }
    }
    done
}

async fn worker(
    target: Arc<Target>,
    envelopes: Arc<Vec<Signed>>,
    next: Arc<AtomicUsize>,
    deadline: Option<Instant>,
    done: Arc<AtomicUsize>,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut conn: Option<Conn> = None;
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(env) = envelopes.get(i) else { break };
        if conn.as_ref().is_none_or(|c| c.is_closed()) {
            match connect(&target.host).await {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    stats.transport_errors += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let req = hyper::Request::post(target.path.as_str())
            .header("host", target.host.as_str())
            .header("content-type", "application/json")
            .body(Full::new(env.body.clone()));
        let Ok(req) = req else {
            stats.transport_errors += 1;
            continue;
        };
        let started = Instant::now();
        let result = async {
            c.ready().await?;
            let resp = c.send_request(req).await?;
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>(body)
        }
        .await;
        let elapsed = started.elapsed();
        done.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(body) => {
                stats
                    .latencies_us
                    .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
                if let Some(ids) = &target.job_ids {
                    if let (Some(id), Ok(mut v)) = (accepted_job_id(&body), ids.lock()) {
                        v.push(id);
                    }
                }
                if !contains(&body, br#""ok":true"#) && !contains(&body, br#""ok": true"#) {
                    stats.not_ok += 1;
                }
                if let Some(key) = &target.server_key {
                    if i.is_multiple_of(target.verify_every) {
                        stats.verified += 1;
                        if lacre_proto::verify_response(
                            &body,
                            key,
                            &env.request_id,
                            &target.server_id,
                        )
                        .is_err()
                        {
                            stats.bad_signatures += 1;
                        }
                    }
                }
            }
            Err(_) => {
                stats.transport_errors += 1;
                conn = None;
            }
        }
    }
    stats
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    f64::from(*sorted.get(rank.min(sorted.len() - 1)).unwrap_or(&0)) / 1000.0
}

async fn run_phase(
    target: &Arc<Target>,
    envelopes: Arc<Vec<Signed>>,
    concurrency: usize,
    duration: Option<Duration>,
    progress: bool,
) -> (Vec<WorkerStats>, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = duration.map(|d| started + d);
    let handles: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            tokio::spawn(worker(
                Arc::clone(target),
                Arc::clone(&envelopes),
                Arc::clone(&next),
                deadline,
                Arc::clone(&done),
            ))
        })
        .collect();
    let ticker = progress.then(|| {
        let done = Arc::clone(&done);
        let total = envelopes.len();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = done.load(Ordering::Relaxed);
                eprint!("\r  {now}/{total} requests, {} req/s   ", now - last);
                last = now;
            }
        })
    });
    let mut all = Vec::new();
    for h in handles {
        if let Ok(s) = h.await {
            all.push(s);
        }
    }
    let elapsed = started.elapsed();
    if let Some(t) = ticker {
        t.abort();
        eprint!("\r{:60}\r", "");
    }
    (all, elapsed)
}

/// Runs the benchmark and returns its report.
pub async fn measure(a: &BenchArgs) -> Result<Report> {
    let key = client_key(a)?;
    let server_key = server_key(a)?;
    let args = match json::parse(a.args.as_bytes(), ParseLimits::default()) {
        Ok(Value::Object(m)) => m,
        _ => bail!("--args must be a JSON object"),
    };
    let url = hyper::Uri::try_from(a.url.as_str()).context("bad --url")?;
    if url.scheme_str() != Some("http") {
        bail!("lacre bench speaks plain http:// only");
    }
    let host = url.authority().context("--url needs a host")?.to_string();
    let target = Arc::new(Target {
        host,
        path: url.path().to_owned(),
        server_id: a.server_id.clone(),
        server_key,
        verify_every: if a.verify { 1 } else { 100 },
        job_ids: a.wait_jobs.then(|| std::sync::Mutex::new(Vec::new())),
    });
    let warm = presign(a, &key, &args, a.warmup)?;
    let envelopes = Arc::new(presign(a, &key, &args, a.requests)?);
    if a.warmup > 0 {
        run_phase(&target, Arc::new(warm), a.concurrency, None, false).await;
    }
    let progress = std::io::stderr().is_terminal() && !a.json;
    if let Some(ids) = &target.job_ids {
        // Jobs from the warm-up are not counted.
        if let Ok(mut v) = ids.lock() {
            v.clear();
        }
    }
    let phase_started = Instant::now();
    let (stats, elapsed) = run_phase(
        &target,
        Arc::clone(&envelopes),
        a.concurrency,
        a.duration.map(Duration::from_secs_f64),
        progress,
    )
    .await;
    let mut jobs_done = 0;
    let mut jobs_per_s = 0.0;
    if let Some(ids) = &target.job_ids {
        let list = ids
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        let shared = Arc::new(std::sync::Mutex::new(list));
        let key = Arc::new(key.clone());
        let salts = (0..a.concurrency.max(1))
            .map(|_| random_bytes::<8>())
            .collect::<Result<Vec<_>, _>>()?;
        let handles: Vec<_> = salts
            .into_iter()
            .map(|salt| {
                tokio::spawn(wait_jobs_worker(
                    Arc::clone(&target),
                    Arc::clone(&key),
                    a.client_id.clone(),
                    Arc::clone(&shared),
                    salt,
                ))
            })
            .collect();
        for h in handles {
            jobs_done += h.await.unwrap_or(0);
        }
        jobs_per_s = jobs_done as f64 / phase_started.elapsed().as_secs_f64().max(1e-9);
    }
    let mut latencies: Vec<u32> = Vec::new();
    let mut report = Report {
        url: a.url.clone(),
        tool: a.tool.clone(),
        concurrency: a.concurrency,
        requests: 0,
        seconds: elapsed.as_secs_f64(),
        rps: 0.0,
        p50_ms: 0.0,
        p90_ms: 0.0,
        p99_ms: 0.0,
        max_ms: 0.0,
        transport_errors: 0,
        not_ok: 0,
        verified: 0,
        bad_signatures: 0,
        jobs_done,
        jobs_per_s,
    };
    for s in stats {
        latencies.extend(s.latencies_us);
        report.transport_errors += s.transport_errors;
        report.not_ok += s.not_ok;
        report.verified += s.verified;
        report.bad_signatures += s.bad_signatures;
    }
    latencies.sort_unstable();
    report.requests = latencies.len() + report.transport_errors;
    report.rps = latencies.len() as f64 / elapsed.as_secs_f64().max(1e-9);
    report.p50_ms = percentile(&latencies, 50.0);
    report.p90_ms = percentile(&latencies, 90.0);
    report.p99_ms = percentile(&latencies, 99.0);
    report.max_ms = percentile(&latencies, 100.0);
    Ok(report)
}

/// `lacre bench`.
pub async fn bench(a: &BenchArgs) -> Result<ExitCode> {
    let r = measure(a).await?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("{} {} x{} connections", r.url, r.tool, r.concurrency);
        println!("  requests      {} in {:.2} s", r.requests, r.seconds);
        println!("  throughput    {:.0} req/s", r.rps);
        println!(
            "  latency       p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms
        );
        println!(
            "  transport errors {}  not ok {}",
            r.transport_errors, r.not_ok
        );
        if a.wait_jobs {
            println!(
                "  jobs          {} done, {:.0} jobs/s accepted-and-completed",
                r.jobs_done, r.jobs_per_s
            );
        }
        if r.verified > 0 {
            println!(
                "  signatures    {} checked, {} bad",
                r.verified, r.bad_signatures
            );
        } else {
            println!(
                "  signatures    not checked (give --server-secret-file or --server-public-key)"
            );
        }
    }
    Ok(if r.bad_signatures > 0 {
        ExitCode::Verification
    } else if r.transport_errors > 0 || r.not_ok > 0 {
        ExitCode::Server
    } else {
        ExitCode::Ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_distinct_uuids_and_unordered() {
        let mut r = RandomIds::new();
        let ids: Vec<String> = (0..10_000).map(|_| r.uuid().unwrap()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        assert_ne!(sorted, ids, "not in order");
        assert!(ids
            .iter()
            .all(|i| i.len() == 36 && i.as_bytes()[14] == b'4'));
        // The sequential ones are ordered (what they flatter).
        let seq: Vec<String> = (0..1000).map(|n| uuid(n, &[1; 8])).collect();
        let mut ordered = seq.clone();
        ordered.sort();
        assert_eq!(ordered, seq);
    }
}
