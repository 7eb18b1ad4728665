//! In-process dispatch: verify + dispatch `batch_sum` + sign + serialize
//! the reply, no HTTP. Compare with `bench/seed_handle.py`, which times the
//! seed's own `MCPServer.handle()` the same way.
#![allow(missing_docs)] // criterion_group! generates undocumented items

#[path = "../../../examples/common/dispatch_workload.rs"]
mod workload;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use std::sync::atomic::{AtomicU64, Ordering};

fn dispatch(c: &mut Criterion) {
    let w = workload::Workload::new(None);
    let server = &w.server;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let counter = AtomicU64::new(0);
    // Each iteration needs a fresh nonce (replays are refused): envelopes
    // are signed in the untimed setup.
    let fresh = || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        w.body(counter.fetch_add(1, Ordering::Relaxed), now)
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
