//! Integration tests of the `lacre` binary: real processes, real HTTP on
//! 127.0.0.1, and interop with the seed article's Python programs.
//!
//! One test binary (as ripgrep does) so the crate links once.

// clippy.toml allows these inside #[test] functions only; the helpers that
// the tests share are test code too, and a panic there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod audit;
mod bridge;
mod cli_e2e;
mod durable;
mod gateway;
mod seed_interop;
mod support;
mod webhooks;
