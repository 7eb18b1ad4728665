//! In-process dispatch: verify + dispatch `batch_sum` + sign + serialize
//! the reply, no HTTP. Compare with `bench/seed_handle.py`, which times the
//! seed's own `MCPServer.handle()` the same way.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use lacre_proto::{Envelope, Map, SigningKey, Value};
use lacre_server::{Server, ToolFilter};
use std::sync::atomic::{AtomicU64, Ordering};

fn dispatch(c: &mut Criterion) {
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
    .build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut args = Map::new();
    args.insert(
        "numbers".into(),
        Value::Array((1..=8).map(|i| Value::from(i * 10)).collect()),
    );
    let counter = AtomicU64::new(0);
    // Each iteration needs a fresh nonce (replays are refused): envelopes
    // are signed in the untimed setup.
    let fresh = || {
        let i = counter.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut env = Envelope {
            request_id: format!("req-{i}"),
            ts_ms: now,
            client_id: "client-001".into(),
            server_id: "mcp-server-001".into(),
            tool: "batch_sum".into(),
            args: args.clone(),
            nonce: format!("nonce-{i}"),
            signature: String::new(),
        };
        env.sign(&client_key);
        env.to_json()
    };
    c.bench_function("dispatch/batch_sum_verify_dispatch_sign_serialize", |b| {
        b.iter_batched(
            fresh,
            |body| {
                let reply = rt.block_on(server.handle(&body));
                assert!(reply.response.ok);
                reply.to_json()
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
