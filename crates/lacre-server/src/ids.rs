//! The server's injected sources of time and randomness.

use lacre_proto::Clock;

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A source of unique ids (job ids).
pub trait IdSource: Send + Sync + 'static {
    /// A fresh, unguessable id, or `None` when no randomness is available
    /// (the request then fails: a guessable or repeated id is never used).
    fn new_id(&self) -> Option<String>;
}

/// UUIDv4 ids from the operating system's random generator.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandomIds;

impl IdSource for OsRandomIds {
    fn new_id(&self) -> Option<String> {
        match crate::keys::random_bytes::<16>() {
            Ok(bytes) => Some(lacre_proto::uuid_v4(bytes)),
            Err(e) => {
                tracing::error!(error = %e, "operating system random generator failed");
                None
            }
        }
    }
}
