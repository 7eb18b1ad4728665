//! The upper bound for `bench/compare.sh`: a minimal axum endpoint that
//! reads the request body and returns a fixed JSON reply of the size of
//! lacre's `batch_sum` reply. No parsing, no crypto, no state.
//!
//! Run: `cargo run --release -p lacre-server --example upper_bound -- 18801`

use axum::body::Bytes;
use axum::http::header;
use axum::routing::post;
use axum::Router;

/// A reply of the same shape and size as lacre's signed `batch_sum` reply.
const REPLY: &str = r#"{"error":null,"ok":true,"request_id":"00000000-0000-4000-8000-000000000000","result":{"count":3,"total":60.0},"server_id":"mcp-server-001","signature":"0000000000000000000000000000000000000000000000000000000000000000","status":"ok","ts_ms":1700000000000,"v":"mcp/0.1"}"#;

async fn mcp(body: Bytes) -> ([(header::HeaderName, &'static str); 1], &'static str) {
    // Touch the body so it is really read.
    std::hint::black_box(body.len());
    ([(header::CONTENT_TYPE, "application/json")], REPLY)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("LISTENING http://{}/mcp", listener.local_addr()?);
    axum::serve(listener, Router::new().route("/mcp", post(mcp))).await
}
