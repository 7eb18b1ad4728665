//! A fixed workload for instruction counting (`valgrind --tool=callgrind`):
//! verify + dispatch `batch_sum` + sign + serialize, in process, N times.
//! `.ci/run` divides the instruction count by N and fails on a regression.
//!
//! Run: `cargo run --release -p lacre-server --example dispatch_count -- 1000`

use lacre_proto::{Envelope, FixedClock, Map, SigningKey, Value};
use lacre_server::{Server, ToolFilter};
use std::sync::Arc;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let now = 1_700_000_000_000;
    let client_key = SigningKey::hmac(b"client_secret_key_456").unwrap_or_else(|e| panic!("{e}"));
    let server = Server::builder(
        "mcp-server-001",
        SigningKey::hmac(b"server_secret_key_123").unwrap_or_else(|e| panic!("{e}")),
    )
    .client(
        "client-001",
        vec![client_key.verifying_key()],
        ToolFilter::All,
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .clock(Arc::new(FixedClock(now)))
    .build();
    let mut args = Map::new();
    args.insert(
        "numbers".into(),
        Value::Array((1..=8).map(|i| Value::from(i * 10)).collect()),
    );
    // Signed outside the counted part as much as possible: all up front.
    let bodies: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut env = Envelope {
                request_id: format!("req-{i:08}"),
                ts_ms: now,
                client_id: "client-001".into(),
                server_id: "mcp-server-001".into(),
                tool: "batch_sum".into(),
                args: args.clone(),
                nonce: format!("nonce-{i:08}"),
                signature: String::new(),
            };
            env.sign(&client_key);
            env.to_json()
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ok = 0;
    rt.block_on(async {
        for body in &bodies {
            let reply = server.handle(body).await;
            if reply.response.ok {
                ok += 1;
            }
            std::hint::black_box(reply.to_json());
        }
    });
    assert_eq!(ok, n, "every call must succeed");
    println!("{n} calls ok");
}
