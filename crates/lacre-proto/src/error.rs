//! Errors of the core and the wire error codes they map to.

use crate::json::JsonError;
use crate::keys::SignatureError;
use std::fmt;

/// Why a message is not a well-formed `Envelope` or `Response`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The bytes are not acceptable JSON.
    #[error("invalid json: {0}")]
    Json(JsonError),
    /// The message could not be read at all (the transport failed mid-body).
    #[error("request body could not be read")]
    Unreadable,
    /// The top-level value is not an object.
    #[error("message must be a json object, got {0}")]
    NotAnObject(&'static str),
    /// A field the model does not have (the seed's `extra="forbid"`).
    #[error("unknown field {0:?}")]
    UnknownField(String),
    /// A required field is absent.
    #[error("missing field {0:?}")]
    MissingField(&'static str),
    /// A field of the wrong JSON type.
    #[error("field {field:?} must be {expected}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// An identifier that is the empty string.
    #[error("field {0:?} must not be empty")]
    Empty(&'static str),
    /// An identifier longer than allowed.
    #[error("field {field:?} is longer than {max} characters")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The limit, in characters.
        max: usize,
    },
    /// A `status` outside `ok | accepted | running | done | error`.
    #[error("invalid status {0:?}")]
    InvalidStatus(String),
    /// A `v` other than `"mcp/0.1"`.
    #[error("unsupported version {0:?} (this server speaks \"mcp/0.1\")")]
    UnsupportedVersion(String),
}

/// Why the verification pipeline refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a well-formed envelope.
    #[error("{0}")]
    Malformed(EnvelopeError),
    /// A version this core does not speak.
    #[error("unsupported version {0:?} (this server speaks \"mcp/0.1\")")]
    UnsupportedVersion(String),
    /// Addressed to another server.
    #[error("envelope is addressed to server {got:?}, this is {expected:?}")]
    WrongServer {
        /// This server's id.
        expected: String,
        /// The envelope's `server_id`.
        got: String,
    },
    /// No key is configured for this `client_id`.
    #[error("unknown client {0:?}")]
    UnknownClient(String),
    /// The signature does not verify with any of the client's keys.
    #[error("{0}")]
    BadSignature(SignatureError),
    /// `ts_ms` is outside the accepted window around the server's clock.
    #[error(
        "timestamp {ts_ms} is {skew_ms} ms from the server's clock (window ±{max_skew_ms} ms)"
    )]
    StaleTimestamp {
        /// The envelope's timestamp.
        ts_ms: i64,
        /// Absolute distance to the server's clock.
        skew_ms: u64,
        /// The window.
        max_skew_ms: u64,
    },
    /// This `(client_id, nonce)` was seen before.
    #[error("nonce already used")]
    ReplayedNonce,
    /// The nonce store could not answer, so the request cannot be checked.
    #[error("nonce store unavailable")]
    StoreUnavailable,
}

impl VerifyError {
    /// The wire code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            VerifyError::Malformed(_) => ErrorCode::BadEnvelope,
            VerifyError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            VerifyError::WrongServer { .. } => ErrorCode::WrongServer,
            VerifyError::UnknownClient(_) => ErrorCode::UnknownClient,
            VerifyError::BadSignature(_) => ErrorCode::BadSignature,
            VerifyError::StaleTimestamp { .. } => ErrorCode::StaleTimestamp,
            VerifyError::ReplayedNonce => ErrorCode::ReplayedNonce,
            VerifyError::StoreUnavailable => ErrorCode::StoreUnavailable,
        }
    }
}

impl From<EnvelopeError> for VerifyError {
    fn from(e: EnvelopeError) -> Self {
        match e {
            EnvelopeError::UnsupportedVersion(v) => VerifyError::UnsupportedVersion(v),
            other => VerifyError::Malformed(other),
        }
    }
}

/// Why a client refused a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// Not a well-formed response.
    #[error("malformed response: {0}")]
    Malformed(EnvelopeError),
    /// The signature does not verify with the server's key.
    #[error("response signature: {0}")]
    BadSignature(SignatureError),
    /// The response answers another request.
    #[error("response is for request {got:?}, expected {expected:?}")]
    RequestIdMismatch {
        /// The request sent.
        expected: String,
        /// The request the response names.
        got: String,
    },
    /// `ok` contradicts `status` (`ok` must be false exactly for `error`).
    #[error("response says ok={ok} with status {status:?}")]
    Inconsistent {
        /// The `ok` field.
        ok: bool,
        /// The `status` field.
        status: &'static str,
    },
    /// The response comes from another server.
    #[error("response is from server {got:?}, expected {expected:?}")]
    ServerIdMismatch {
        /// The server addressed.
        expected: String,
        /// The server the response names.
        got: String,
    },
    /// An error reply bound to other bytes than the request sent.
    #[error("error reply is bound to another request (request_sha256 {got:?})")]
    BindingMismatch {
        /// The binding the reply carries.
        got: String,
    },
    /// The reply's timestamp is outside the window around the client's clock.
    #[error(
        "reply timestamp {ts_ms} is more than {max_skew_ms} ms from the client's clock ({now_ms})"
    )]
    StaleReply {
        /// The reply's `ts_ms`.
        ts_ms: i64,
        /// The client's clock.
        now_ms: i64,
        /// The window.
        max_skew_ms: u64,
    },
}

macro_rules! error_codes {
    ($($variant:ident => $text:literal,)*) => {
        /// A wire error code: the part before `": "` in a response's `error`.
        ///
        /// The set is open: a code this version does not know is kept as
        /// [`ErrorCode::Other`], so a client can still report it.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $(
                #[doc = concat!("`", $text, "`")]
                $variant,
            )*
            /// A code not known to this version.
            Other(String),
        }

        impl ErrorCode {
            /// The wire text of the code.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                    ErrorCode::Other(s) => s,
                }
            }

            /// The wire text of a code this version defines (`None` for
            /// [`ErrorCode::Other`]), with a static lifetime.
            pub fn known_str(&self) -> Option<&'static str> {
                match self {
                    $(ErrorCode::$variant => Some($text),)*
                    ErrorCode::Other(_) => None,
                }
            }

            /// Reads a code from its wire text.
            pub fn parse(s: &str) -> ErrorCode {
                match s {
                    $($text => ErrorCode::$variant,)*
                    other => ErrorCode::Other(other.to_owned()),
                }
            }

            /// Every code this version defines.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];
        }
    };
}

error_codes! {
    BadEnvelope => "bad_envelope",
    UnsupportedVersion => "unsupported_version",
    WrongServer => "wrong_server",
    UnknownClient => "unknown_client",
    BadSignature => "bad_signature",
    StaleTimestamp => "stale_timestamp",
    ReplayedNonce => "replayed_nonce",
    UnknownTool => "unknown_tool",
    ForbiddenTool => "forbidden_tool",
    InvalidArgs => "invalid_args",
    UnknownJob => "unknown_job",
    JobFailed => "job_failed",
    JobCancelled => "job_cancelled",
    IdempotencyConflict => "idempotency_conflict",
    TooLarge => "too_large",
    RateLimited => "rate_limited",
    Overloaded => "overloaded",
    StoreUnavailable => "store_unavailable",
    Internal => "internal",
    ToolError => "tool_error",
    UpstreamUnavailable => "upstream_unavailable",
}

impl ErrorCode {
    /// Whether an error with this code, bound to a request's exact bytes,
    /// tells the request's outcome. It does unless someone other than the
    /// client could have obtained it for those bytes after the server had
    /// already run them: a copy sent later finds the server busy
    /// (`overloaded`), the timestamp stale (`stale_timestamp`), the
    /// database away (`store_unavailable`), or the nonce used
    /// (`replayed_nonce`: the request was received before). Every other
    /// code is decided by the bytes and the server's configuration alone,
    /// or answers the one time the nonce is accepted (SPEC §6.5).
    pub fn tells_outcome(&self) -> bool {
        !matches!(
            self,
            ErrorCode::Overloaded
                | ErrorCode::StaleTimestamp
                | ErrorCode::StoreUnavailable
                | ErrorCode::ReplayedNonce
                | ErrorCode::TooLarge
        )
    }

    /// Splits a response's `error` text `"<code>: <message>"` into its parts.
    pub fn split_error_text(text: &str) -> (ErrorCode, &str) {
        match text.split_once(": ") {
            Some((code, msg)) => (ErrorCode::parse(code), msg),
            None => (ErrorCode::parse(text), ""),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in ErrorCode::ALL {
            assert_eq!(&ErrorCode::parse(code.as_str()), code);
        }
        assert_eq!(
            ErrorCode::parse("new_code"),
            ErrorCode::Other("new_code".into())
        );
        assert_eq!(
            ErrorCode::split_error_text("unknown_job: no such job"),
            (ErrorCode::UnknownJob, "no such job")
        );
    }
}
