//! Replies: how a server signs them ([`ResponseSigner`]), how an error is
//! bound to the exact request it answers, and how a client judges a reply
//! to a request it sent ([`judge_reply`], SPEC §6.5).

use crate::error::ResponseError;
use crate::json::{Map, ParseLimits, Value};
use crate::keys::{to_hex, SigningKey, VerifyingKey};
use crate::wire::{Response, Status};
use sha2::{Digest, Sha256};

/// Builds signed responses for one server.
#[derive(Debug, Clone)]
pub struct ResponseSigner {
    server_id: String,
    key: SigningKey,
}

impl ResponseSigner {
    /// A signer for `server_id` with its key.
    pub fn new(server_id: impl Into<String>, key: SigningKey) -> ResponseSigner {
        ResponseSigner {
            server_id: server_id.into(),
            key,
        }
    }

    /// This server's id.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// A signed success (`ok`, `accepted`, `running` or `done`).
    pub fn success(
        &self,
        request_id: &str,
        now_ms: i64,
        status: Status,
        result: Option<Map>,
    ) -> Response {
        self.success_json(request_id, now_ms, status, result).0
    }

    /// A signed success and its wire form, serialized once.
    pub fn success_json(
        &self,
        request_id: &str,
        now_ms: i64,
        status: Status,
        result: Option<Map>,
    ) -> (Response, Vec<u8>) {
        self.build(
            request_id,
            now_ms,
            status != Status::Error,
            status,
            result,
            None,
        )
    }

    /// A signed error (`ok: false`, `status: "error"`, `error: "<code>: <message>"`)
    /// and its wire form, serialized once. An error for a
    /// request whose bytes were read is bound to them with
    /// [`bind_to_request`] (`request`), so that a client can tell it
    /// answers its very request (SPEC §6.5).
    pub fn error_json(
        &self,
        request_id: &str,
        now_ms: i64,
        code: &crate::ErrorCode,
        message: &str,
        request: Option<&[u8]>,
    ) -> (Response, Vec<u8>) {
        let text = if message.is_empty() {
            code.as_str().to_owned()
        } else {
            format!("{}: {}", code.as_str(), message)
        };
        let result = request.map(bind_to_request);
        self.build(request_id, now_ms, false, Status::Error, result, Some(text))
    }

    fn build(
        &self,
        request_id: &str,
        now_ms: i64,
        ok: bool,
        status: Status,
        result: Option<Map>,
        error: Option<String>,
    ) -> (Response, Vec<u8>) {
        let mut r = Response {
            request_id: request_id.to_owned(),
            ts_ms: now_ms,
            ok,
            server_id: self.server_id.clone(),
            status,
            result,
            error,
            signature: String::new(),
        };
        let wire = r.sign_to_json(&self.key);
        (r, wire)
    }
}

/// The `result` member that binds an error reply to the request it
/// answers: the SHA-256 of the request's bytes exactly as received,
/// signature included.
pub const REQUEST_BINDING: &str = "request_sha256";

/// The SHA-256 of a request's bytes, in lowercase hex.
pub fn request_digest(request: &[u8]) -> String {
    to_hex(&Sha256::digest(request))
}

/// An error reply's `result`: `{"request_sha256": <digest of request>}`.
pub fn bind_to_request(request: &[u8]) -> Map {
    let mut m = Map::new();
    m.insert(REQUEST_BINDING.into(), Value::from(request_digest(request)));
    m
}

/// The binding an error reply carries, if any.
pub fn binding_of(response: &Response) -> Option<&str> {
    response
        .result
        .as_ref()
        .and_then(|r| r.get(REQUEST_BINDING))
        .and_then(Value::as_str)
}

/// What a client may conclude from a verified reply to a request it sent
/// (SPEC §6.5).
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A success that answers this request.
    Success(Response),
    /// An error that tells this request's outcome: the server refused it,
    /// or ran it and the tool failed.
    Refused {
        /// The code.
        code: crate::ErrorCode,
        /// The message.
        message: String,
        /// The whole reply.
        response: Response,
    },
    /// An error from which the outcome cannot be told: the request may
    /// have run (a copy of it may have reached the server first), or the
    /// reply is not bound to this request's bytes.
    OutcomeUnknown {
        /// The code.
        code: crate::ErrorCode,
        /// The message.
        message: String,
        /// The whole reply.
        response: Response,
    },
}

/// What the client sent, to judge a reply against.
#[derive(Debug, Clone, Copy)]
pub struct Sent<'a> {
    /// The request's bytes exactly as sent.
    pub bytes: &'a [u8],
    /// Its `request_id`.
    pub request_id: &'a str,
    /// The server it is addressed to.
    pub server_id: &'a str,
}

/// Largest reply body a client reads, in bytes (16 MiB): the whole of what a
/// hostile peer can make it hold.
pub const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// The parsing limits a client applies to replies (SPEC §6.4). A server's
/// `[limits]` bound what it reads, not what its tools return, and a client
/// cannot know them: a string may be as long as the reply itself (an MCP
/// upstream's base64 image), and the reply size cap bounds the rest.
pub const REPLY_LIMITS: ParseLimits = ParseLimits {
    max_depth: 128,
    max_int_digits: 4300,
    max_string_bytes: MAX_REPLY_BYTES,
    max_items: 1_000_000,
};

/// Judges a reply to `sent` (SPEC §6.5): it must parse, carry the trusted
/// server's signature, have a timestamp within `max_skew_ms` of `now_ms`,
/// and agree `ok` with `status`. A success must name the request's
/// `request_id`. An error is bound to the request when its
/// `result.request_sha256` is the digest of the bytes sent (anything else
/// there is refused); bound, it tells the outcome unless its code says a
/// copy could have obtained it ([`crate::ErrorCode::tells_outcome`]);
/// unbound, it never does.
pub fn judge_reply(
    bytes: &[u8],
    server_key: &VerifyingKey,
    sent: Sent<'_>,
    now_ms: i64,
    max_skew_ms: u64,
) -> Result<Verdict, ResponseError> {
    let resp = Response::parse(bytes, REPLY_LIMITS).map_err(ResponseError::Malformed)?;
    server_key
        .verify_hex(&resp.signing_bytes(), &resp.signature)
        .map_err(ResponseError::BadSignature)?;
    if resp.ts_ms.abs_diff(now_ms) > max_skew_ms {
        return Err(ResponseError::StaleReply {
            ts_ms: resp.ts_ms,
            now_ms,
            max_skew_ms,
        });
    }
    if (resp.status == Status::Error) == resp.ok {
        return Err(ResponseError::Inconsistent {
            ok: resp.ok,
            status: resp.status.as_str(),
        });
    }
    let text = resp.error.clone().unwrap_or_default();
    let (code, message) = crate::ErrorCode::split_error_text(&text);
    let (code, message) = (code, message.to_owned());
    let bound = match (resp.status, binding_of(&resp)) {
        (Status::Error, Some(digest)) if digest == request_digest(sent.bytes) => true,
        (Status::Error, Some(digest)) => {
            return Err(ResponseError::BindingMismatch {
                got: digest.to_owned(),
            })
        }
        _ => false,
    };
    // A bound `wrong_server` names the server that signed it: the key we
    // trust says it is not the server addressed (a configuration mistake).
    let wrong_server = bound && code == crate::ErrorCode::WrongServer;
    if resp.server_id != sent.server_id && !wrong_server {
        return Err(ResponseError::ServerIdMismatch {
            expected: sent.server_id.to_owned(),
            got: resp.server_id,
        });
    }
    if resp.status != Status::Error {
        if resp.request_id != sent.request_id {
            return Err(ResponseError::RequestIdMismatch {
                expected: sent.request_id.to_owned(),
                got: resp.request_id,
            });
        }
        return Ok(Verdict::Success(resp));
    }
    // An unbound error is judged by what it could be: a refusal sent
    // before the request was read (request_id ""), or an error of a server
    // that does not bind (the seed's); either way not this request's outcome.
    if !bound && !resp.request_id.is_empty() && resp.request_id != sent.request_id {
        return Err(ResponseError::RequestIdMismatch {
            expected: sent.request_id.to_owned(),
            got: resp.request_id,
        });
    }
    Ok(if bound && code.tells_outcome() {
        Verdict::Refused {
            code,
            message,
            response: resp,
        }
    } else {
        Verdict::OutcomeUnknown {
            code,
            message,
            response: resp,
        }
    })
}
