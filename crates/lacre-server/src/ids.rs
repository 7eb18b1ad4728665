//! The server's injected source of randomness (its clock is
//! [`lacre_proto::SystemClock`]).

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
