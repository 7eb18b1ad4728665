//! Durable state across processes: a SQLite server killed mid-job, three
//! replicas on one PostgreSQL database, and a database that goes away.

use crate::support::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The default config with `store` and `lease_ms` as top-level keys.
fn durable_config(store: &str) -> String {
    format!("store = \"{store}\"\nlease_ms = 1000\n{}", default_config())
}

/// Whether PostgreSQL answers on 127.0.0.1:5432; see [`skip_or_panic`].
pub(crate) fn pg_available(name: &str) -> bool {
    let addr = "127.0.0.1:5432".parse().unwrap();
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
        || skip_or_panic(name, "PostgreSQL not reachable on 127.0.0.1:5432")
}

pub(crate) fn schema_name(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "lacre_cli_{name}_{}_{nanos}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A test's own PostgreSQL schema, dropped when the test ends, passed or not.
pub(crate) struct PgSchema(pub String);

impl PgSchema {
    pub(crate) fn new(name: &str) -> PgSchema {
        PgSchema(schema_name(name))
    }

    /// The store URL in this schema, through `host:port`.
    pub(crate) fn url_via(&self, host_port: &str) -> String {
        format!("postgres://postgres@{host_port}/postgres?schema={}", self.0)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        drop_schema(&self.0);
    }
}

pub(crate) fn drop_schema(schema: &str) {
    let _ = Cmd::program(
        "psql",
        &[
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-q",
            "-c",
            &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
        ],
    )
    .run();
}

fn start_job(s: &ServeGuard, args: &str) -> String {
    let out = s.lacre(&["call", "start_long_task", args]);
    out.expect_code(0, "start_long_task");
    job_id_of(&out.stdout)
}

#[test]
fn sqlite_job_survives_sigkill_and_restart() {
    let s = ServeGuard::start_with_config("sqlite-restart", &durable_config("sqlite://lacre.db"));
    let job = start_job(&s, r#"{"seconds":2,"payload":{"survived":true}}"#);
    // Once the job runs, kill the server without warning.
    eventually("the job runs", Duration::from_secs(10), || {
        s.lacre(&["job", "status", &job]).stdout.contains("running")
    });
    let s = s.kill_and_restart();
    // The accepted job is still there after the crash, and completes (re-run).
    let started = Instant::now();
    let out = s.lacre(&["job", "wait", &job]);
    out.expect_code(0, "job wait after restart");
    assert_eq!(out.stdout.trim(), r#"{"survived":true}"#);
    assert!(started.elapsed() < Duration::from_secs(20));
    let list = s.lacre(&["jobs"]);
    assert!(list.stdout.contains(&job), "{list:?}");
    // Operators can read every client's jobs straight from the store.
    let store = format!("sqlite://{}", s.file("lacre.db"));
    let admin = Cmd::lacre(&["jobs", "--store", &store, "--state", "done"]).run();
    admin.expect_code(0, "jobs --store");
    let row = admin
        .stdout
        .lines()
        .find(|l| l.contains(&job))
        .unwrap_or_default();
    assert!(
        row.contains("client-001") && row.contains("done"),
        "{admin:?}"
    );
    // The job ran twice: once before the kill, once after.
    assert!(row.trim_end().ends_with('2'), "attempt column: {row}");
}

#[test]
fn sqlite_nonces_survive_a_restart() {
    let s = ServeGuard::start_with_config("sqlite-replay", &durable_config("sqlite://lacre.db"));
    let env = Cmd::lacre(&["sign", "--secret-file", &s.file("client-001.secret")])
        .stdin(r#"{"client_id":"client-001","server_id":"mcp-server-001","tool":"batch_sum","args":{"numbers":[1]}}"#)
        .run();
    env.expect_code(0, "sign");
    assert!(raw_post(&s.url, env.stdout.as_bytes()).contains(r#""ok":true"#));
    let s = s.kill_and_restart();
    let again = raw_post(&s.url, env.stdout.as_bytes());
    assert!(again.contains("replayed_nonce"), "{again}");
}

#[test]
fn a_second_server_on_one_sqlite_database_is_refused() {
    // Its nonces would be in a journal the first cannot see: a replay
    // sent to each would run twice. It says so and exits instead.
    let s = ServeGuard::start_with_config("sqlite-twice", &durable_config("sqlite://lacre.db"));
    let second = Cmd::lacre(&[
        "serve",
        "--config",
        &s.file("lacre.toml"),
        "--listen",
        "127.0.0.1:0",
    ])
    .cwd(s.dir.path())
    .run();
    second.expect_code(1, "a second server on the same database");
    assert!(
        second.stderr.contains("in use by another process"),
        "{second:?}"
    );
    // The first still serves.
    sum(&s).expect_code(0, "the first server");
}

#[test]
fn a_locked_sqlite_database_gives_store_unavailable_then_recovers() {
    // A real SQLite failure: another process holds the write lock longer
    // than the store's busy timeout (5 s), so a job cannot be recorded.
    // Replay protection does not need the database (its nonces are in the
    // journal beside it): immediate tools keep answering meanwhile.
    if !python3_or_skip("a_locked_sqlite_database_gives_store_unavailable_then_recovers") {
        return;
    }
    let s = ServeGuard::start_with_config("sqlite-locked", &durable_config("sqlite://lacre.db"));
    sum(&s).expect_code(0, "before the lock");
    let hold = "import sqlite3, sys\n\
                c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)\n\
                c.execute('BEGIN EXCLUSIVE')\n\
                print('locked', flush=True)\n\
                sys.stdin.read()\n";
    let mut holder = std::process::Command::new("python3")
        .args(["-c", hold, &s.dir.join("lacre.db").display().to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("read");
    assert_eq!(line.trim(), "locked");
    let out = sum(&s);
    out.expect_code(0, "an immediate tool with the database locked");
    assert_eq!(out.stdout.trim(), r#"{"count":2,"total":3.0}"#);
    let job = r#"{"seconds":1,"payload":{}}"#;
    let started = Instant::now();
    let out = s.lacre(&["call", "start_long_task", job]);
    out.expect_code(6, "a job with the database locked");
    assert!(out.stderr.contains("store_unavailable"), "{out:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "no busy wait first"
    );
    // The lock goes with its process; the same server serves again.
    drop(holder.stdin.take());
    holder.wait().expect("python3 exits");
    start_job(&s, job);
    let out = sum(&s);
    out.expect_code(0, "after the lock");
}

fn pg_replicas(name: &str) -> Option<(PgSchema, Vec<ServeGuard>)> {
    if !pg_available(name) {
        return None;
    }
    let schema = PgSchema::new(name);
    let cfg = durable_config(&schema.url_via("127.0.0.1:5432"));
    let a = ServeGuard::start_with_config(&format!("{name}-a"), &cfg);
    let b = ServeGuard::start_with_config(&format!("{name}-b"), &cfg);
    let c = ServeGuard::start_with_config(&format!("{name}-c"), &cfg);
    Some((schema, vec![a, b, c]))
}

#[test]
fn postgres_replicas_are_interchangeable() {
    let Some((schema, replicas)) = pg_replicas("pg_replicas") else {
        return;
    };
    let [a, b, c] = <[ServeGuard; 3]>::try_from(replicas).ok().unwrap();

    // Start on A, long-poll on B.
    let job = start_job(&a, r#"{"seconds":1,"payload":{"from":"a"}}"#);
    let out = b.lacre(&["job", "wait", &job]);
    out.expect_code(0, "wait on B");
    assert_eq!(out.stdout.trim(), r#"{"from":"a"}"#);

    // Cancel on C a job started on A; B sees it cancelled.
    let long = start_job(&a, r#"{"seconds":10}"#);
    let out = c.lacre(&["job", "cancel", &long]);
    out.expect_code(0, "cancel on C");
    assert!(out.stdout.contains("cancelled"), "{out:?}");
    let out = b.lacre(&["job", "status", &long]);
    out.expect_code(4, "status of a cancelled job");
    assert!(out.stderr.contains("job_cancelled"), "{out:?}");

    // A nonce accepted by A is a replay on B.
    let env = Cmd::lacre(&["sign", "--secret-file", &a.file("client-001.secret")])
        .stdin(r#"{"client_id":"client-001","server_id":"mcp-server-001","tool":"batch_sum","args":{"numbers":[2]}}"#)
        .run();
    assert!(raw_post(&a.url, env.stdout.as_bytes()).contains(r#""ok":true"#));
    let replay = raw_post(&b.url, env.stdout.as_bytes());
    assert!(replay.contains("replayed_nonce"), "{replay}");

    // An idempotent retry sent to another replica returns the same job.
    let first = Cmd::lacre(&["sign", "--secret-file", &a.file("client-001.secret")])
        .stdin(r#"{"request_id":"retry-me-1","client_id":"client-001","server_id":"mcp-server-001","tool":"start_long_task","args":{"seconds":1}}"#)
        .run();
    let retry = Cmd::lacre(&["sign", "--secret-file", &a.file("client-001.secret")])
        .stdin(r#"{"request_id":"retry-me-1","client_id":"client-001","server_id":"mcp-server-001","tool":"start_long_task","args":{"seconds":1}}"#)
        .run();
    assert_ne!(first.stdout, retry.stdout, "fresh nonce and timestamp");
    let r1 = json(&raw_post(&a.url, first.stdout.as_bytes()));
    let r2 = json(&raw_post(&c.url, retry.stdout.as_bytes()));
    assert_eq!(r1["status"], "accepted");
    assert_eq!(r1["result"]["job_id"], r2["result"]["job_id"], "{r1} {r2}");
    drop((a, b, c));
    drop(schema);
}

#[test]
fn postgres_takeover_after_a_replica_dies() {
    if !pg_available("pg_takeover") {
        return;
    }
    let schema = PgSchema::new("takeover");
    let url = schema.url_via("127.0.0.1:5432");
    let cfg = durable_config(&url);
    // A alone, so it is A that claims the job.
    let mut a = ServeGuard::start_with_config("takeover-a", &cfg);
    let job = start_job(&a, r#"{"seconds":2,"payload":{"finished_by":"someone"}}"#);
    eventually("A runs the job", Duration::from_secs(10), || {
        job_row(&url, &job) == ("running".to_owned(), 1)
    });
    let b = ServeGuard::start_with_config("takeover-b", &cfg);
    a.kill();
    let killed = Instant::now();
    let out = b.lacre(&["job", "wait", &job]);
    out.expect_code(0, "B finishes A's job");
    assert_eq!(out.stdout.trim(), r#"{"finished_by":"someone"}"#);
    // Lease 1 s, rescue every 0.5 s, re-queue backoff 1 s, then a 2 s run.
    let took = killed.elapsed();
    eprintln!("takeover and re-run took {took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    // B ran it again: a second attempt, not A's result.
    assert_eq!(job_row(&url, &job), ("done".to_owned(), 2));
    drop(b);
}

/// The state and attempt of `job`, as `lacre jobs --store` shows them.
fn job_row(store: &str, job: &str) -> (String, u32) {
    let out = Cmd::lacre(&["jobs", "--store", store]).run();
    out.expect_code(0, "lacre jobs --store");
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with(job))
        .unwrap_or_else(|| panic!("{job} not listed: {out:?}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    // JOB CLIENT TOOL STATE PROGRESS ATTEMPT
    let attempt = cols
        .last()
        .and_then(|a| a.parse().ok())
        .expect("attempt column");
    (cols.get(3).copied().unwrap_or_default().to_owned(), attempt)
}

/// A TCP proxy to PostgreSQL that can be cut and restored on the same port.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = Proxy {
            port,
            up: Arc::new(AtomicBool::new(true)),
            conns: Arc::new(Mutex::new(Vec::new())),
        };
        p.serve(listener);
        p
    }

    fn serve(&self, listener: TcpListener) {
        let up = self.up.clone();
        let conns = self.conns.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up.load(Ordering::SeqCst) {
                    return; // drops the listener: the port is closed
                }
                let Ok(server) = TcpStream::connect("127.0.0.1:5432") else {
                    continue;
                };
                conns
                    .lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
    }

    /// Closes the port and every open connection.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wake the accept loop
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    /// Opens the same port again.
    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.serve(listener);
    }
}

fn sum(s: &ServeGuard) -> Output {
    s.lacre(&["call", "batch_sum", r#"{"numbers":[1,2]}"#])
}

#[test]
fn a_database_that_goes_away_gives_store_unavailable_then_recovers() {
    if !pg_available("pg_goes_away") {
        return;
    }
    let proxy = Proxy::start();
    let schema = PgSchema::new("away");
    let cfg = durable_config(&schema.url_via(&format!("127.0.0.1:{}", proxy.port)));
    let s = ServeGuard::start_with_config("pg-away", &cfg);
    sum(&s).expect_code(0, "with the database up");
    proxy.cut();
    let out = sum(&s);
    // A copy of a request can meet the database away after the original
    // ran: store_unavailable does not tell the outcome (SPEC §6.5), exit 6.
    out.expect_code(6, "with the database gone");
    assert!(out.stderr.contains("store_unavailable"), "{out:?}");
    // Nor can a job be started: refused, signed, with nothing queued.
    let out = s.lacre(&["call", "start_long_task", r#"{"seconds":1}"#]);
    out.expect_code(6, "start_long_task with the database gone");
    assert!(out.stderr.contains("store_unavailable"), "{out:?}");
    proxy.restore();
    // The pool reconnects; allow a few attempts while dead connections drain.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = sum(&s);
        if out.code == 0 {
            assert_eq!(out.stdout.trim(), r#"{"count":2,"total":3.0}"#);
            break;
        }
        assert!(out.stderr.contains("store_unavailable"), "{out:?}");
        assert!(
            Instant::now() < deadline,
            "the server did not recover: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(s);
}
