//! # lacre-proto
//!
//! The sans-I/O core of the lacre protocol (wire version `"mcp/0.1"`):
//! wire types, canonical JSON byte-identical to CPython's
//! `json.dumps(obj, separators=(",", ":"), sort_keys=True)`, HMAC-SHA256 and
//! Ed25519 signatures, and the request verification pipeline.
//!
//! Nothing here reads a clock, touches a socket or draws randomness: time,
//! keys and nonce storage are handed in, so every decision is reproducible.
//!
//! ```
//! use lacre_proto::{
//!     verify_request, Envelope, FixedClock, Keyring, Map, NonceError, NonceStore, NonceUse,
//!     SigningKey, VerifyConfig,
//! };
//!
//! // A nonce store that has seen nothing yet.
//! struct Fresh;
//! impl NonceStore for Fresh {
//!     fn check_and_record(&self, _: &NonceUse<'_>) -> Result<(), NonceError> {
//!         Ok(())
//!     }
//! }
//!
//! let client_key = SigningKey::hmac(b"client_secret_key_456").unwrap();
//! let mut keyring = Keyring::new();
//! keyring.insert("client-001", vec![client_key.verifying_key()]).unwrap();
//!
//! let mut env = Envelope {
//!     request_id: "7d1c1d6e-2b8a-4c8e-9a43-0f6f0e0f2a11".into(),
//!     ts_ms: 1_700_000_000_000,
//!     client_id: "client-001".into(),
//!     server_id: "mcp-server-001".into(),
//!     tool: "batch_sum".into(),
//!     args: Map::new(),
//!     nonce: "0b7e0a5c-5d0f-4a4f-8b0e-1f2d3c4b5a69".into(),
//!     signature: String::new(),
//! };
//! env.sign(&client_key);
//!
//! let config = VerifyConfig::new("mcp-server-001");
//! let clock = FixedClock(1_700_000_000_000);
//! let verified = verify_request(&env.to_json(), &config, &keyring, &clock, &Fresh).unwrap();
//! assert_eq!(verified.tool, "batch_sum");
//! ```

pub mod builtin;
pub mod error;
pub mod json;
pub mod keys;
pub mod reply;
pub mod verify;
pub mod webhook;
pub mod wire;

pub use builtin::JobState;
pub use error::{EnvelopeError, ErrorCode, ResponseError, VerifyError};
pub use json::{
    canonical, parse, parse_object, JsonError, JsonErrorKind, Map, Number, ParseLimits, Value,
};
pub use keys::{
    check_pin, from_hex, to_hex, Algorithm, KeyError, SignatureError, SigningKey, VerifyingKey,
};
pub use reply::{
    bind_to_request, binding_of, judge_reply, request_digest, ResponseSigner, Sent, Verdict,
    MAX_REPLY_BYTES, REPLY_LIMITS, REQUEST_BINDING,
};
pub use verify::{
    authenticate, verify_request, verify_response, Authenticated, Clock, FixedClock, KeyLookup,
    Keyring, KeyringError, NonceError, NonceStore, NonceUse, Rejected, SystemClock, Verified,
    VerifyConfig, DEFAULT_MAX_SKEW_MS, MAX_KEYS_PER_CLIENT,
};
pub use wire::{Envelope, Response, Status, MAX_ID_CHARS, VERSION};

/// Formats 16 random bytes as a UUID version 4 string (the seed's `uuid4()`
/// ids). The bytes come from the caller, keeping this crate free of RNGs.
pub fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = to_hex(&bytes);
    let part = |a: usize, b: usize| hex.get(a..b).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}
