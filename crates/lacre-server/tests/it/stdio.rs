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

    let a = envelope(
        "client-001",
        CLIENT_SECRET,
        "batch_sum",
        json!({"numbers": [1, 2.5]}),
    );
    let b = envelope("client-001", CLIENT_SECRET, "server_identity", json!({}));
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
