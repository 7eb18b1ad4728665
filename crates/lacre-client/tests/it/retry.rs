//! A retry after a dropped connection yields the same job.

use crate::support::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A proxy that forwards the first request to the server, waits for its
/// reply, and then drops the client's connection without sending it: the
/// server has acted, the client has heard nothing. Later requests pass.
/// Its URL, and the count of requests it has seen.
async fn dropping_proxy(upstream: std::net::SocketAddr) -> (String, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = seen.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = counted.clone();
            tokio::spawn(async move {
                if let Some((head, body)) = read_request(&mut client).await {
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    let mut up = TcpStream::connect(upstream).await.unwrap();
                    let first_line = head.lines().next().unwrap().to_owned();
                    let req = format!(
                        "{first_line}\r\nhost: {upstream}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    up.write_all(req.as_bytes()).await.unwrap();
                    up.write_all(&body).await.unwrap();
                    let mut reply = Vec::new();
                    tokio::io::AsyncReadExt::read_to_end(&mut up, &mut reply)
                        .await
                        .unwrap();
                    if n > 0 {
                        client.write_all(&reply).await.unwrap();
                    }
                    // For the first request, the connection drops here
                    // and the server's reply is lost.
                }
            });
        }
    });
    (format!("http://{addr}/mcp"), seen)
}

#[tokio::test]
async fn retry_after_a_dropped_connection_returns_the_same_job() {
    let real = real_server().await;
    let (url, seen) = dropping_proxy(real.addr).await;
    let job = client(&url)
        .start(
            "start_long_task",
            serde_json::json!({"seconds": 1, "payload": {"k": "v"}}),
        )
        .await
        .unwrap();
    assert!(seen.load(Ordering::SeqCst) >= 2, "the client did not retry");
    // The server holds exactly one job, the one the client was told about.
    let jobs = real
        .server
        .job_store()
        .list(lacre_server::Listing::of("client-001", None, 10))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].id, job.id);
    // And it can be waited for directly.
    let direct = client(&format!("http://{}/mcp", real.addr));
    let result = direct.wait(&job, |_| {}).await.unwrap();
    assert_eq!(
        lacre_proto::Value::Object(result).to_serde(),
        serde_json::json!({"k": "v"})
    );
}

/// How a `batch_sum` call to `url` fails.
async fn sum_error(url: &str) -> lacre_client::ClientError {
    client(url)
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn transport_failures_are_reported_after_bounded_retries() {
    let started = std::time::Instant::now();
    let err = sum_error("http://127.0.0.1:1/mcp").await;
    assert!(
        matches!(err, lacre_client::ClientError::Transport(_)),
        "{err:?}"
    );
    // 3 retries with 100, 200, 400 ms backoff.
    assert!(started.elapsed() >= std::time::Duration::from_millis(650));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn an_immediate_call_that_may_have_run_is_not_retried() {
    // retries_run_twice: behind a proxy that loses the first reply, a
    // batch_sum was sent again (and ran again). Now the client says it
    // does not know the outcome, and the server saw the call once.
    let real = real_server().await;
    let (url, seen) = dropping_proxy(real.addr).await;
    let err = sum_error(&url).await;
    assert!(
        matches!(err, lacre_client::ClientError::OutcomeUnknown(_)),
        "{err:?}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1, "the call was sent again");
}
