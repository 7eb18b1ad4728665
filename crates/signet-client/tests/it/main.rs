//! Integration tests of signet-client: forged replies from a fake server,
//! and retries through a connection-dropping proxy to a real one.

mod forged;
mod retry;
mod support;
