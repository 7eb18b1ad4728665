//! The stdio transport over in-memory pipes.

use crate::support::*;
use lacre_proto::{ErrorCode, Status};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::test]
async fn one_reply_per_line_and_too_long_lines() {
    let s = TestServer::start().await;
    let (mut to_server, server_in) = tokio::io::duplex(1 << 20);
    let (server_out, from_server) = tokio::io::duplex(1 << 20);
    let task = tokio::spawn(lacre_server::stdio::serve(
        s.server.clone(),
        BufReader::new(server_in),
        server_out,
        4096,
    ));

    let a = envelope_001("batch_sum", json!({"numbers": [1, 2.5]}));
    let b = envelope_001("server_identity", json!({}));
    let mut input = Vec::new();
    input.extend_from_slice(&a.to_json());
    input.extend_from_slice(b"\r\n\n");
    input.extend_from_slice(&b.to_json());
    input.push(b'\n');
    input.extend_from_slice(&vec![b'x'; 10_000]);
    input.push(b'\n');
    input.extend_from_slice(&a.to_json()); // a replay
    input.push(b'\n');
    to_server.write_all(&input).await.unwrap();
    to_server.shutdown().await.unwrap();
    drop(to_server);

    let mut lines = BufReader::new(from_server).lines();
    let mut replies = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        replies.push(check_signed(line.as_bytes()));
    }
    task.await.unwrap().unwrap();
    assert_eq!(replies.len(), 4, "{replies:?}");
    let by_id = |id: &str| {
        replies
            .iter()
            .filter(|r| r.request_id == id)
            .collect::<Vec<_>>()
    };
    let a_replies = by_id(&a.request_id);
    assert_eq!(a_replies.len(), 2);
    assert!(a_replies
        .iter()
        .any(|r| r.status == Status::Ok && result_json(r)["total"] == 3.5));
    assert!(a_replies.iter().any(|r| r
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with("replayed_nonce"))));
    assert_eq!(by_id(&b.request_id).len(), 1);
    let too_large = by_id("");
    assert_eq!(too_large.len(), 1);
    assert_eq!(
        ErrorCode::split_error_text(too_large[0].error.as_deref().unwrap()).0,
        ErrorCode::TooLarge
    );
    s.stop().await;
}

#[tokio::test]
async fn a_peer_that_does_not_read_its_replies_stops_being_read() {
    // stdio_backpressure: one task per input line, and replies piling up
    // while stdout was not read: 600 lines of 1 MB grew RSS to 362 MB.
    let s = TestServer::start().await;
    let (mut to_server, server_in) = tokio::io::duplex(64 * 1024);
    // Replies go into a small pipe that nobody reads.
    let (server_out, _unread) = tokio::io::duplex(1024);
    let task = tokio::spawn(lacre_server::stdio::serve(
        s.server.clone(),
        BufReader::new(server_in),
        server_out,
        4096,
    ));
    let line = {
        let mut l = sum_call().to_json();
        l.push(b'\n');
        l
    };
    let total = 5_000;
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&written);
    let writer = tokio::spawn(async move {
        for _ in 0..total {
            if to_server.write_all(&line).await.is_err() {
                break;
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let n = written.load(std::sync::atomic::Ordering::SeqCst);
    // What is read but unanswered is bounded: pending lines, the writer's
    // queue and the pipes' buffers, not everything the peer sends.
    assert!(
        n < 1_000,
        "{n} of {total} lines were taken in while no reply could be written"
    );
    writer.abort();
    task.abort();
    s.stop().await;
}
