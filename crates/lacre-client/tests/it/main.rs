//! Integration tests of lacre-client: forged replies from a fake server,
//! and retries through a connection-dropping proxy to a real one.

// Test helpers outside #[test] functions may panic freely.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod forged;
mod pinning;
mod replies;
mod retry;
mod seed_style;
mod support;
