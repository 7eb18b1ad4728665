//! The timeouts and connection limits of SPEC §7.1 and §11.1 over real HTTP:
//! `tool_timeout_ms` → `internal`, `request_timeout_ms` → `overloaded`,
//! `max_connections` makes further connections wait, and `/metrics` leaves
//! the public listener when it has one of its own.

use crate::support::*;
use lacre_proto::ErrorCode;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn an_immediate_tool_past_its_timeout_is_internal() {
    let s = TestServer::start_with(|b| {
        b.tool_timeout(Duration::from_millis(200))
            .tools(|reg| sleeper(reg, "slow", false, 5_000))
    })
    .await;
    let started = Instant::now();
    let reply = s.refused("slow", json!({}), 500, ErrorCode::Internal).await;
    assert_eq!(
        reply.error.as_deref(),
        Some("internal: tool \"slow\" did not answer within 200 ms")
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "waited for the tool"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_request_past_the_request_timeout_is_overloaded_and_unbound() {
    let s = TestServer::start_with_http(
        |b| {
            b.tool_timeout(Duration::from_secs(30))
                .tools(|reg| sleeper(reg, "slow", false, 5_000))
        },
        |c| c.request_timeout = Duration::from_millis(300),
    )
    .await;
    let started = Instant::now();
    let reply = s.call("slow", json!({})).await;
    // Refused after the request was abandoned: request_id "" and result
    // null (SPEC §8), so a client cannot take it for its outcome.
    assert_error(&reply, 503, ErrorCode::Overloaded, "");
    assert!(reply.1.result.is_none(), "{:?}", reply.1);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "waited for the tool"
    );
    s.stop().await;
}

/// Sends a keep-alive `GET /healthz` on `stream`; reads its answer unless
/// none comes within `within`.
async fn healthz_on(stream: &mut TcpStream, within: Duration) -> Option<String> {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_answer(stream, within).await
}

async fn read_answer(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(within, stream.read(&mut buf))
        .await
        .ok()?
        .unwrap();
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test]
async fn past_max_connections_a_connection_waits_until_one_closes() {
    let s = TestServer::start_with_http(
        |b| b,
        |c| {
            c.max_connections = 1;
            c.header_timeout = Duration::from_secs(20);
        },
    )
    .await;
    let addr = s.base.strip_prefix("http://").unwrap().to_owned();
    let mut first = TcpStream::connect(&addr).await.unwrap();
    let answer = healthz_on(&mut first, Duration::from_secs(5)).await;
    assert!(answer.unwrap().starts_with("HTTP/1.1 200"));
    // The second connection is made (the kernel queues it) but not served
    // while the first stays open.
    let mut second = TcpStream::connect(&addr).await.unwrap();
    let early = healthz_on(&mut second, Duration::from_millis(700)).await;
    assert_eq!(early, None, "served past max_connections");
    drop(first);
    let late = read_answer(&mut second, Duration::from_secs(5)).await;
    assert!(
        late.as_deref()
            .is_some_and(|a| a.starts_with("HTTP/1.1 200")),
        "{late:?}"
    );
    s.stop().await;
}

async fn status_of(base: &str, method: &str, path: &str) -> u16 {
    let resp = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    resp.status().as_u16()
}

#[tokio::test]
async fn with_a_metrics_listener_each_listener_serves_its_own_paths() {
    let s = TestServer::start_with_http(|b| b, |c| c.metrics = false).await;
    let (listener, addr) = lacre_server::http::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    tokio::spawn(lacre_server::http::serve_metrics(
        listener,
        s.server.clone(),
        std::future::pending(),
    ));
    let internal = format!("http://{addr}");
    // SPEC §7.1's table, row by row: the status on the public listener and
    // on the metrics listener.
    let table = [
        // `{}` is no envelope: a signed bad_envelope, from the route.
        ("POST", "/mcp", 400, 404),
        ("GET", "/.well-known/lacre.json", 200, 404),
        ("GET", "/healthz", 200, 200),
        ("GET", "/metrics", 404, 200),
    ];
    for (method, path, public, metrics) in table {
        let got = (
            status_of(&s.base, method, path).await,
            status_of(&internal, method, path).await,
        );
        assert_eq!(got, (public, metrics), "{method} {path}");
    }
    let text = reqwest::get(format!("{internal}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("lacre_requests_total"), "{text}");
    s.stop().await;
}
