//! A fixed workload for instruction counting (`valgrind --tool=callgrind`):
//! verify + dispatch `batch_sum` + sign + serialize, in process, N times.
//! `.ci/run` divides the instruction count by N and fails on a regression.
//!
//! Run: `cargo run --release -p lacre-server --example dispatch_count -- 1000`

#[path = "common/dispatch_workload.rs"]
mod workload;

use lacre_proto::FixedClock;
use std::sync::Arc;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let now = 1_700_000_000_000;
    let w = workload::Workload::new(Some(Arc::new(FixedClock(now))));
    let server = &w.server;
    // Signed outside the counted part as much as possible: all up front.
    let bodies: Vec<Vec<u8>> = (0..n).map(|i| w.body(i, now)).collect();
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
