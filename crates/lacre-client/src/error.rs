//! The client's error type.

use lacre_proto::{ErrorCode, Response, ResponseError};

/// Why a call did not produce a verified result.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The client is misconfigured or was misused.
    #[error("{0}")]
    Usage(String),
    /// The server could not be reached, or the connection failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The call (with its retries) took longer than the total timeout.
    #[error("timed out")]
    Timeout,
    /// The reply failed verification (forged, tampered, misrouted).
    #[error("reply rejected: {0}")]
    Verification(ResponseError),
    /// The server's key could not be established.
    #[error("cannot trust the server: {0}")]
    Trust(String),
    /// A verified error reply.
    #[error("{code}: {message}")]
    Server {
        /// The server's error code.
        code: ErrorCode,
        /// The server's message.
        message: String,
        /// The whole verified response.
        response: Box<Response>,
    },
    /// A verified result that does not have the expected shape.
    #[error("unexpected result: {0}")]
    Decode(String),
}
