//! The in-process dispatch workload shared by the criterion bench
//! (`benches/dispatch.rs`) and the instruction-count example
//! (`examples/dispatch_count.rs`): a server with the seed's ids and keys,
//! and signed `batch_sum` calls of eight numbers, each with its own nonce.

use lacre_proto::{Clock, Envelope, Map, SigningKey, Value};
use lacre_server::{Server, ToolFilter};
use std::sync::Arc;

/// The allocator the `lacre` binary ships with (`lacre-cli/src/main.rs`),
/// so that the figures are those of the server as it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The server and what signs requests for it.
pub struct Workload {
    /// The server, stores in memory.
    pub server: Server,
    client_key: SigningKey,
    args: Map,
}

impl Workload {
    /// A server on `clock` (the system clock when `None`).
    pub fn new(clock: Option<Arc<dyn Clock>>) -> Workload {
        let client_key =
            SigningKey::hmac(b"client_secret_key_456").unwrap_or_else(|e| panic!("{e}"));
        let mut builder = Server::builder(
            "mcp-server-001",
            SigningKey::hmac(b"server_secret_key_123").unwrap_or_else(|e| panic!("{e}")),
        )
        .client("client-001", [client_key.verifying_key()], ToolFilter::All)
        .unwrap_or_else(|e| panic!("{e}"));
        if let Some(clock) = clock {
            builder = builder.clock(clock);
        }
        let mut args = Map::new();
        args.insert(
            "numbers".into(),
            Value::Array((1..=8).map(|i| Value::from(i * 10)).collect()),
        );
        Workload {
            server: builder.build(),
            client_key,
            args,
        }
    }

    /// The `i`-th request, stamped `ts_ms`, signed.
    pub fn body(&self, i: u64, ts_ms: i64) -> Vec<u8> {
        let mut env = Envelope {
            request_id: format!("req-{i:08}"),
            ts_ms,
            client_id: "client-001".into(),
            server_id: "mcp-server-001".into(),
            tool: "batch_sum".into(),
            args: self.args.clone(),
            nonce: format!("nonce-{i:08}"),
            signature: String::new(),
        };
        env.sign(&self.client_key);
        env.to_json()
    }
}
