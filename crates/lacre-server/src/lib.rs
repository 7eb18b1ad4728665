//! # lacre-server
//!
//! The lacre protocol server: a registry of typed tools, the built-in
//! tools of the seed (`server_identity`, `batch_sum`, `start_long_task`,
//! `poll_job`) plus `cancel_job` and `list_jobs`, asynchronous jobs with
//! progress and cancellation, replay protection, and the HTTP and stdio
//! transports. Every reply is signed, errors included.
//!
//! Registering a tool takes a few lines:
//!
//! ```
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//! use lacre_server::{Server, ToolArgs, ToolError, ToolFilter};
//! use lacre_proto::SigningKey;
//!
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct GreetIn { name: String }
//! impl ToolArgs for GreetIn {}
//!
//! #[derive(Serialize)]
//! struct GreetOut { greeting: String }
//!
//! let server_key = SigningKey::hmac(b"server_secret_key_123").unwrap();
//! let client_key = SigningKey::hmac(b"client_secret_key_456").unwrap();
//! let server = Server::builder("mcp-server-001", server_key)
//!     .client("client-001", [client_key.verifying_key()], ToolFilter::All)
//!     .unwrap()
//!     .tools(|reg| {
//!         reg.immediate("greet", "Says hello.", |args: GreetIn, _ctx| async move {
//!             Ok::<_, ToolError>(GreetOut { greeting: format!("hello, {}", args.name) })
//!         });
//!     })
//!     .build();
//! assert_eq!(server.server_id(), "mcp-server-001");
//! ```

pub mod access;
pub mod audit;
pub mod builder;
pub mod builtin;
pub mod catalog;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod nonce;
pub mod schema;
pub mod stdio;
pub mod store;
pub mod system;
pub mod tool;
pub mod webhooks;

/// A map by client id, with a fast hasher: a request looks its client up in
/// several of these, and their keys are the configured clients (no caller
/// can insert keys to aim collisions at).
pub(crate) type ClientMap<V> = std::collections::HashMap<String, V, foldhash::fast::RandomState>;

pub use access::ToolFilter;
pub use builder::ServerBuilder;
pub use dispatch::{MetricsSource, Reply, ReplyKind, Server};
pub use error::{CallError, StoreError};
pub use http::http_status;
pub use ids::{IdSource, OsRandomIds};
pub use jobs::{
    JobContext, JobRecord, JobState, JobStore, Listing, MemoryJobStore, WorkerConfig, Workers,
};
pub use lacre_proto::SystemClock;
pub use limits::{Rate, RateLimiter};
pub use nonce::{JournalError, MemoryNonceStore, NonceBackend, NonceJournal};
pub use schema::SchemaError;
pub use tool::{CallContext, Registry, ToolArgs, ToolDef, ToolError, ToolKind, ToolOutcome};
