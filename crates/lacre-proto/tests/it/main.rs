//! Integration tests of lacre-proto, in one binary.

// Test helpers outside #[test] functions may panic freely.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod cpython_property;
mod spec_text;
mod vectors;
