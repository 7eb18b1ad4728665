//! Integration tests of lacre-server, in one binary: real HTTP on
//! 127.0.0.1:0 and the stdio transport over in-memory pipes.

// Test helpers outside #[test] functions may panic freely.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod audit;
mod dynamic;
mod hostile;
mod http_e2e;
mod journal;
mod outbox;
mod stdio;
mod store_contract;
mod support;
mod transport;
mod webhooks;
mod worker;
