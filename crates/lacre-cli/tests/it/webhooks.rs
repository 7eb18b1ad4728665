//! Webhooks across processes: an event outlives a SIGKILL of the server
//! that wrote it, two PostgreSQL replicas send each event once, and the
//! operator's `lacre webhooks` and the receiver's `lacre webhook verify`
//! work on what was sent.

use crate::durable::{pg_available, PgSchema};
use crate::support::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request as received: its `webhook-id`, the status answered, and
/// the request's bytes (headers and body) as they came.
#[derive(Debug, Clone)]
struct Hook {
    id: String,
    answered: u16,
    raw: Vec<u8>,
}

/// An HTTP endpoint on 127.0.0.1 that answers 200 while `accept` is set
/// and 500 otherwise.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Hook>>>,
    accept: Arc<AtomicBool>,
}

impl Receiver {
    fn start(accept: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let accept = Arc::new(AtomicBool::new(accept));
        let (seen, open) = (Arc::clone(&got), Arc::clone(&accept));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (seen, open) = (Arc::clone(&seen), Arc::clone(&open));
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut raw = Vec::new();
                    let (mut id, mut length) = (String::new(), 0usize);
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        raw.extend_from_slice(line.as_bytes());
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if lower.starts_with("webhook-id:") {
                            id = line["webhook-id:".len()..].trim().to_owned();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body).unwrap();
                    raw.extend_from_slice(&body);
                    let answered = if open.load(Ordering::SeqCst) {
                        200
                    } else {
                        500
                    };
                    seen.lock().unwrap().push(Hook { id, answered, raw });
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {answered} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                });
            }
        });
        Receiver { url, got, accept }
    }

    fn got(&self) -> Vec<Hook> {
        self.got.lock().unwrap().clone()
    }

    fn accepted(&self) -> Vec<Hook> {
        self.got()
            .into_iter()
            .filter(|h| h.answered == 200)
            .collect()
    }
}

/// The default config on `store`, client-001 told of its jobs at `url`
/// (a loopback address: private targets allowed), retrying every 300 ms.
fn config(store: &str, url: &str) -> String {
    let mut cfg = default_config();
    let anchor = "tools = [\"*\"]\n";
    let at = cfg.find(anchor).unwrap() + anchor.len();
    cfg.insert_str(
        at,
        &format!("webhook_url = \"{url}\"\nwebhook_secret = \"{WHSEC}\"\n"),
    );
    let retries = vec!["\"300ms\""; 40].join(", ");
    format!(
        "store = \"{store}\"\nlease_ms = 1000\n{cfg}\n[webhooks]\nallow_private_targets = true\nschedule = [\"0s\", {retries}]\n"
    )
}

fn start_job(s: &ServeGuard) -> String {
    let out = s.lacre(&["call", "start_long_task", r#"{"seconds":1}"#]);
    out.expect_code(0, "start_long_task");
    job_id_of(&out.stdout)
}

/// `lacre webhooks --store URL list ...`'s row for `id`, if any.
fn listed(store: &str, id: &str) -> Option<String> {
    let out = Cmd::lacre(&["webhooks", "--store", store, "list"]).run();
    out.expect_code(0, "webhooks list");
    out.stdout
        .lines()
        .find(|l| l.starts_with(id))
        .map(str::to_owned)
}

#[test]
fn an_undelivered_event_survives_sigkill_and_is_delivered_after_restart() {
    let rx = Receiver::start(false);
    let s = ServeGuard::start_with_config("webhook-sigkill", &config("sqlite://lacre.db", &rx.url));
    let store = format!("sqlite://{}", s.file("lacre.db"));
    let job = start_job(&s);
    let id = format!("{job}.done");
    // The receiver refuses it (500): the event waits in the outbox.
    eventually("a refused attempt", Duration::from_secs(20), || {
        rx.got().iter().any(|h| h.id == id)
    });
    let row = listed(&store, &id).expect("the delivery is listed");
    assert!(
        row.contains("client-001") && row.contains("job.done"),
        "{row}"
    );
    // SIGKILL: nothing is flushed or handed over. The receiver then
    // accepts; only the restarted server can be the one that delivers.
    let s = s.kill_and_restart();
    rx.accept.store(true, Ordering::SeqCst);
    eventually(
        "delivered after the restart",
        Duration::from_secs(20),
        || rx.accepted().iter().any(|h| h.id == id),
    );
    eventually("recorded as delivered", Duration::from_secs(10), || {
        listed(&store, &id).is_some_and(|r| r.contains("delivered"))
    });
    let delivered = rx.accepted().into_iter().find(|h| h.id == id).unwrap();
    // The receiver's check, from the bytes as received.
    let dir = TempDir::new("webhook-request");
    let request = dir.join("request.txt");
    std::fs::write(&request, &delivered.raw).unwrap();
    let file = request.display().to_string();
    let ok = Cmd::lacre(&["webhook", "verify", &file, "--secret", WHSEC]).run();
    ok.expect_code(0, "webhook verify");
    assert_eq!(ok.stdout.trim(), "valid");
    let wrong = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    Cmd::lacre(&["webhook", "verify", &file, "--secret", wrong])
        .run()
        .expect_code(5, "webhook verify with another secret");
    // Nothing left to retry or enable.
    Cmd::lacre(&["webhooks", "--store", &store, "retry", &id])
        .run()
        .expect_code(1, "retry of a delivered event");
    Cmd::lacre(&["webhooks", "--store", &store, "enable", "client-001"])
        .run()
        .expect_code(1, "enable of an endpoint that is not disabled");
    drop(s);
}

#[test]
fn two_postgres_replicas_deliver_each_event_once() {
    if !pg_available("two_postgres_replicas_deliver_each_event_once") {
        return;
    }
    let schema = PgSchema::new("webhook_replicas");
    let store = schema.url_via("127.0.0.1:5432");
    let rx = Receiver::start(true);
    let cfg = config(&store, &rx.url);
    let a = ServeGuard::start_with_config("webhook-pg-a", &cfg);
    let b = ServeGuard::start_with_config("webhook-pg-b", &cfg);
    const N: usize = 12;
    let jobs: Vec<String> = (0..N)
        .map(|i| start_job(if i % 2 == 0 { &a } else { &b }))
        .collect();
    eventually("every event delivered", Duration::from_secs(30), || {
        let out = Cmd::lacre(&[
            "webhooks",
            "--store",
            &store,
            "list",
            "--state",
            "delivered",
        ])
        .run();
        out.stdout
            .lines()
            .filter(|l| l.contains("job.done"))
            .count()
            == N
    });
    // A second sender would have claimed meanwhile; give it a poll more.
    std::thread::sleep(Duration::from_millis(1500));
    let got = rx.got();
    let mut ids: Vec<&str> = got.iter().map(|h| h.id.as_str()).collect();
    ids.sort_unstable();
    let mut want: Vec<String> = jobs.iter().map(|j| format!("{j}.done")).collect();
    want.sort();
    assert_eq!(ids, want, "each event once, by one replica");
    drop((a, b));
}
