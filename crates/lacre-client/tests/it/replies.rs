//! Every reply class of SPEC §6.4's table against a scripted server: which
//! are retried, which never are, and what the caller is told.

use crate::support::*;
use lacre_client::{Client, ClientError, ServerTrust, TransportError};
use lacre_proto::{
    Envelope, ErrorCode, Map, ParseLimits, ResponseError, ResponseSigner, SigningKey, Status, Value,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// What the scripted server does with a request.
enum Answer {
    /// An HTTP reply with this status and body.
    Reply(u16, Vec<u8>),
    /// Reads the request and never answers.
    Hang,
}

/// A server answering every request with `answer(body)`; the counter is
/// the number of requests it received.
async fn scripted(
    answer: impl Fn(&[u8]) -> Answer + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let answer = Arc::new(answer);
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (answer, counter) = (answer.clone(), counter.clone());
            tokio::spawn(async move {
                while let Some((_, body)) = read_request(&mut stream).await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    match answer(&body) {
                        Answer::Reply(status, reply) => {
                            write_response(&mut stream, status, &reply).await;
                        }
                        Answer::Hang => {
                            std::future::pending::<()>().await;
                        }
                    }
                }
            });
        }
    });
    (format!("http://{addr}/mcp"), seen)
}

fn quick_client(url: &str, attempt: Duration, total: Duration) -> Client {
    Client::builder(url, "client-001", SERVER_ID)
        .key(SigningKey::hmac(CLIENT_SECRET).unwrap())
        .trust(ServerTrust::Key(
            SigningKey::hmac(SERVER_SECRET).unwrap().verifying_key(),
        ))
        .call_timeout(attempt)
        .total_timeout(total)
        .build()
        .unwrap()
}

fn signer() -> ResponseSigner {
    ResponseSigner::new(SERVER_ID, SigningKey::hmac(SERVER_SECRET).unwrap())
}

/// A signed success answering `body`, with `result`.
fn success(body: &[u8], result: Map) -> Vec<u8> {
    let env = Envelope::parse(body, ParseLimits::default()).unwrap();
    signer()
        .success(&env.request_id, env.ts_ms, Status::Ok, Some(result))
        .to_json()
}

/// A signed error with `code`, bound to `body`.
fn bound_error(body: &[u8], code: ErrorCode) -> Vec<u8> {
    let env = Envelope::parse(body, ParseLimits::default()).unwrap();
    signer()
        .error_json(&env.request_id, env.ts_ms, &code, "scripted", Some(body))
        .1
}

/// Both calls against `url` (answering HTTP `status`) fail verification
/// as `is` expects, and neither is retried.
async fn refused_once(
    url: &str,
    seen: &AtomicUsize,
    status: u16,
    is: impl Fn(&ResponseError) -> bool,
) {
    for e in both(url, QUICK, LONG).await {
        assert!(
            matches!(&e, ClientError::Verification(r) if is(r)),
            "HTTP {status}: {e:?}"
        );
    }
    assert_eq!(seen.load(Ordering::SeqCst), 2, "HTTP {status}");
}

/// `e` says the outcome is unknown, and its message begins with `why`.
fn assert_unknown(e: &ClientError, why: &str) {
    assert!(
        matches!(e, ClientError::OutcomeUnknown(m) if m.starts_with(why)),
        "{e:?}"
    );
}

/// The errors of `server_identity` and `batch_sum` against `url`.
/// `server_identity` is retried after any transport failure; `batch_sum`
/// only when it was certainly not delivered.
async fn both(url: &str, attempt: Duration, total: Duration) -> [ClientError; 2] {
    let c = quick_client(url, attempt, total);
    let builtin = c
        .call("server_identity", serde_json::json!({}))
        .await
        .unwrap_err();
    let immediate = c
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
        .unwrap_err();
    [builtin, immediate]
}

const QUICK: Duration = Duration::from_secs(2);
const LONG: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_verified_error_is_never_retried_and_says_what_it_means() {
    // overloaded cannot tell the outcome (a copy could have got it) ...
    let (url, seen) = scripted(|b| Answer::Reply(503, bound_error(b, ErrorCode::Overloaded))).await;
    let [builtin, immediate] = both(&url, QUICK, LONG).await;
    assert!(
        matches!(&builtin, ClientError::OutcomeUnknown(m) if m.starts_with("overloaded: scripted")),
        "{builtin:?}"
    );
    assert!(
        matches!(immediate, ClientError::OutcomeUnknown(_)),
        "{immediate:?}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 2, "a verified 503 was retried");
    // ... invalid_args does: the server refused these bytes.
    let (url, seen) =
        scripted(|b| Answer::Reply(400, bound_error(b, ErrorCode::InvalidArgs))).await;
    let [builtin, immediate] = both(&url, QUICK, LONG).await;
    for e in [builtin, immediate] {
        assert!(
            matches!(&e, ClientError::Server { code: ErrorCode::InvalidArgs, message, .. } if message == "scripted"),
            "{e:?}"
        );
    }
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_5xx_without_a_response_is_retried_only_where_harmless() {
    let (url, seen) =
        scripted(|_| Answer::Reply(502, b"<html>502 Bad Gateway</html>".to_vec())).await;
    let [builtin, immediate] = both(&url, QUICK, LONG).await;
    assert!(
        matches!(
            builtin,
            ClientError::Transport(TransportError::Unsigned { status: 502, .. })
        ),
        "{builtin:?}"
    );
    assert_unknown(&immediate, "HTTP 502 without a signed reply");
    // One call and three retries of server_identity, one batch_sum.
    assert_eq!(seen.load(Ordering::SeqCst), 4 + 1);
}

#[tokio::test]
async fn a_response_failing_its_signature_is_never_retried_whatever_the_status() {
    let other = ResponseSigner::new(SERVER_ID, SigningKey::hmac(b"not the server").unwrap());
    for status in [200, 503] {
        let other = other.clone();
        let (url, seen) = scripted(move |b| {
            let env = Envelope::parse(b, ParseLimits::default()).unwrap();
            let forged = other.success(&env.request_id, env.ts_ms, Status::Ok, Some(Map::new()));
            Answer::Reply(status, forged.to_json())
        })
        .await;
        refused_once(&url, &seen, status, |e| {
            matches!(e, ResponseError::BadSignature(_))
        })
        .await;
    }
}

#[tokio::test]
async fn a_4xx_or_2xx_without_a_response_is_a_verification_failure() {
    for status in [404, 429, 200] {
        let (url, seen) =
            scripted(move |_| Answer::Reply(status, b"{\"error\": \"nope\"}".to_vec())).await;
        refused_once(&url, &seen, status, |e| {
            matches!(e, ResponseError::Malformed(_))
        })
        .await;
    }
}

#[tokio::test]
async fn an_attempt_timeout_is_retried_only_where_harmless() {
    let (url, seen) = scripted(|_| Answer::Hang).await;
    let started = Instant::now();
    let [builtin, immediate] = both(&url, Duration::from_millis(200), LONG).await;
    assert!(
        matches!(&builtin, ClientError::Transport(TransportError::Http(e)) if e.is_timeout()),
        "{builtin:?}"
    );
    assert!(
        matches!(immediate, ClientError::OutcomeUnknown(_)),
        "{immediate:?}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 4 + 1);
    // Five attempts of 200 ms and back-offs of 100 + 200 + 400 ms at least.
    assert!(started.elapsed() >= Duration::from_millis(1700));
}

#[tokio::test]
async fn the_total_timeout_ends_a_call_and_an_immediate_one_has_an_unknown_outcome() {
    let (url, seen) = scripted(|_| Answer::Hang).await;
    let started = Instant::now();
    let total = Duration::from_millis(500);
    let builtin = quick_client(&url, Duration::from_millis(300), total)
        .call("server_identity", serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(matches!(builtin, ClientError::Timeout), "{builtin:?}");
    // The total timeout cuts the first attempt of a call: it may have
    // reached the server and run, which "timed out" would hide.
    let immediate = quick_client(&url, LONG, total)
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
        .unwrap_err();
    assert_unknown(
        &immediate,
        "timed out after 500 ms; the request may have reached the server",
    );
    // server_identity: the first attempt (300 ms), a 100 ms back-off, the
    // second attempt cut at 500 ms; batch_sum: one attempt.
    assert_eq!(seen.load(Ordering::SeqCst), 2 + 1);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_reply_over_the_cap_is_not_read_and_counts_as_lost() {
    let huge = vec![b' '; lacre_client::MAX_REPLY_BYTES + 1];
    let (url, seen) = scripted(move |_| Answer::Reply(200, huge.clone())).await;
    let [builtin, immediate] = both(&url, QUICK, LONG).await;
    assert!(
        matches!(
            builtin,
            ClientError::Transport(TransportError::TooLarge(n)) if n == lacre_client::MAX_REPLY_BYTES
        ),
        "{builtin:?}"
    );
    assert_unknown(&immediate, "reply larger than 16777216 bytes");
    assert_eq!(seen.load(Ordering::SeqCst), 4 + 1);
}

#[tokio::test]
async fn a_signed_result_beyond_the_servers_request_limits_is_received() {
    // A server's [limits] bound what it reads, not what its tools return:
    // an MCP upstream's 300 KB base64 image is one string longer than a
    // request may carry (256 KiB), and 150 000 items more than its arrays.
    let blob = "A".repeat(300_000);
    let items: Vec<Value> = (0..150_000).map(Value::from).collect();
    let (url, _) = scripted(move |b| {
        let mut result = Map::new();
        result.insert("image".into(), Value::from(blob.as_str()));
        result.insert("items".into(), Value::Array(items.clone()));
        Answer::Reply(200, success(b, result))
    })
    .await;
    let reply = quick_client(&url, QUICK, LONG)
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
        .unwrap();
    let result = reply.result_json();
    assert_eq!(result["image"].as_str().map(str::len), Some(300_000));
    assert_eq!(result["items"].as_array().map(Vec::len), Some(150_000));
}
