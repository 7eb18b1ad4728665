//! Integration tests of signet-proto, in one binary.

mod cpython_property;
mod vectors;
