//! The server's typed errors and their single mapping to wire codes and
//! HTTP statuses.

use lacre_proto::{ErrorCode, VerifyError};
use std::sync::Arc;

/// A store (jobs, nonces, idempotency records) could not do its work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backing database cannot be reached or failed; retry later.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// Stored data could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The store URL names no kind of store this server has.
    #[error("unsupported store {0:?}: use memory, sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// The store URL names a kind this server has, with a bad parameter.
    #[error("invalid store url: {0}")]
    InvalidUrl(String),
    /// The nonce journal beside a SQLite database cannot be opened.
    #[error("the nonce journal cannot be used")]
    Journal(#[source] Cause),
}

/// The error underneath a [`StoreError`], shared so that errors stay
/// cheap to clone; two causes are equal when they are the same error.
#[derive(Debug, Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    /// Wraps an error.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Cause {
        Cause(Arc::new(e))
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Cause) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Why a call failed. Each variant maps to exactly one wire code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The verification pipeline refused the envelope.
    #[error("{0}")]
    Rejected(VerifyError),
    /// No tool of that name.
    #[error("no tool named {0:?}")]
    UnknownTool(String),
    /// The client may not call this tool.
    #[error("client may not call tool {0:?}")]
    ForbiddenTool(String),
    /// The arguments do not match the tool's schema.
    #[error("{0}")]
    InvalidArgs(String),
    /// No such job for this client (also when it belongs to another client).
    #[error("no job {0:?} for this client")]
    UnknownJob(String),
    /// The job failed.
    #[error("{0}")]
    JobFailed(String),
    /// The job was cancelled.
    #[error("job was cancelled")]
    JobCancelled,
    /// The `request_id` was used before with other arguments.
    #[error("request_id {0:?} was already used with different arguments")]
    IdempotencyConflict(String),
    /// The request body exceeds the limit.
    #[error("request body exceeds {0} bytes")]
    TooLarge(usize),
    /// The client exceeded its rate.
    #[error("rate limit exceeded, retry after {retry_after_ms} ms")]
    RateLimited {
        /// When a retry may succeed.
        retry_after_ms: u64,
    },
    /// The client is at one of its own limits ([`crate::limits::ClientLimits`]).
    #[error("this client has {what} at once (its limit is {limit}); retry later")]
    ClientLimit {
        /// What it has too many of.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The server is at its concurrency limit.
    #[error("server overloaded, retry later")]
    Overloaded,
    /// A store failed.
    #[error("state store unavailable, retry later")]
    Store(StoreError),
    /// A tool failed in a way the caller cannot fix.
    #[error("{0}")]
    Internal(String),
    /// A tool behind the gateway ran and reported a failure.
    #[error("{0}")]
    ToolError(String),
    /// The process or server behind a tool cannot be reached.
    #[error("{0}")]
    UpstreamUnavailable(String),
}

impl CallError {
    /// The wire code.
    pub fn code(&self) -> ErrorCode {
        match self {
            CallError::Rejected(e) => e.code(),
            CallError::UnknownTool(_) => ErrorCode::UnknownTool,
            CallError::ForbiddenTool(_) => ErrorCode::ForbiddenTool,
            CallError::InvalidArgs(_) => ErrorCode::InvalidArgs,
            CallError::UnknownJob(_) => ErrorCode::UnknownJob,
            CallError::JobFailed(_) => ErrorCode::JobFailed,
            CallError::JobCancelled => ErrorCode::JobCancelled,
            CallError::IdempotencyConflict(_) => ErrorCode::IdempotencyConflict,
            CallError::TooLarge(_) => ErrorCode::TooLarge,
            CallError::RateLimited { .. } | CallError::ClientLimit { .. } => ErrorCode::RateLimited,
            CallError::Overloaded => ErrorCode::Overloaded,
            CallError::Store(_) => ErrorCode::StoreUnavailable,
            CallError::Internal(_) => ErrorCode::Internal,
            CallError::ToolError(_) => ErrorCode::ToolError,
            CallError::UpstreamUnavailable(_) => ErrorCode::UpstreamUnavailable,
        }
    }

    /// The message the peer is told. Store details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            CallError::Store(_) => "state store unavailable, retry later".to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for CallError {
    fn from(e: StoreError) -> Self {
        CallError::Store(e)
    }
}
