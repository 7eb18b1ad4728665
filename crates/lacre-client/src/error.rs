//! The client's error type.

use lacre_proto::builtin::ShapeError;
use lacre_proto::{ErrorCode, Response, ResponseError};

/// Why a call did not produce a verified result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The client is misconfigured or was misused.
    #[error("{0}")]
    Usage(String),
    /// The server URL does not parse.
    #[error("bad url {url:?}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it does not parse.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server could not be reached, or the connection failed.
    #[error("transport: {0}")]
    Transport(#[source] TransportError),
    /// The call (with its retries) took longer than the total timeout.
    #[error("timed out")]
    Timeout,
    /// The request may have reached the server, and whether it ran is not
    /// known: not retried, because running it twice could do harm.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The reply failed verification (forged, tampered, misrouted).
    #[error("reply rejected: {0}")]
    Verification(#[source] ResponseError),
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
    #[error(transparent)]
    Decode(#[from] ShapeError),
    /// The operating system's random generator failed: no nonce or
    /// request id can be made (a fixed one would be replayable).
    #[error("no randomness available")]
    Random(#[source] getrandom::Error),
}

/// Why an HTTP exchange failed before a verified reply was read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Connecting, sending or reading failed.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// The reply is larger than the client reads.
    #[error("reply larger than {0} bytes")]
    TooLarge(usize),
    /// A 5xx reply whose body is not a lacre response (a proxy's page).
    #[error("HTTP {status} without a signed reply")]
    Unsigned {
        /// The HTTP status.
        status: u16,
        /// Why the body is not a response.
        #[source]
        source: lacre_proto::EnvelopeError,
    },
}

impl TransportError {
    /// Whether the request certainly never reached the server (the
    /// connection could not be made), so that sending it again is safe.
    pub fn certainly_undelivered(&self) -> bool {
        matches!(self, TransportError::Http(e) if e.is_connect())
    }
}

impl From<TransportError> for ClientError {
    fn from(e: TransportError) -> Self {
        ClientError::Transport(e)
    }
}
