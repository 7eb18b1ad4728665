//! The verification pipeline, as pure functions over injected time, keys and
//! nonce storage.
//!
//! Order (each step runs only if the previous passed, and each failure has
//! one wire code): parse (`bad_envelope`) → version (`unsupported_version`)
//! → `server_id` (`wrong_server`) → client known (`unknown_client`) →
//! signature (`bad_signature`) → timestamp window (`stale_timestamp`) →
//! nonce unseen (`replayed_nonce`). The nonce is recorded only once the
//! signature is valid, so unauthenticated traffic cannot fill the store.

use crate::error::{ResponseError, VerifyError};
use crate::json::{self, ParseLimits, Top};
use crate::keys::VerifyingKey;
use crate::wire::{Envelope, Response, Status, MAX_ID_CHARS, MESSAGE_FIELDS};
use std::collections::HashMap;
use std::ops::Deref;

/// Default timestamp window: ±300 000 ms (5 minutes).
pub const DEFAULT_MAX_SKEW_MS: u64 = 300_000;

/// Most active keys per client (enough for a rotation with overlap).
pub const MAX_KEYS_PER_CLIENT: usize = 3;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock (milliseconds since the Unix epoch; 0 for a clock set
/// before 1970).
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

/// A clock that always says the same time (tests, vectors, replays of logs).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

/// Why a nonce was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NonceError {
    /// Seen before for this client.
    #[error("nonce already used")]
    Replayed,
    /// The store could not answer; the request must be refused.
    #[error("nonce store unavailable")]
    Unavailable,
}

/// One use of a nonce, as a nonce store checks and records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceUse<'a> {
    /// The client that sent it (nonces are per client).
    pub client_id: &'a str,
    /// The nonce.
    pub nonce: &'a str,
    /// When the envelope's timestamp goes stale, so the pair can be forgotten.
    pub expires_at_ms: i64,
    /// When the timestamp was checked; lets the store evict what expired.
    pub now_ms: i64,
}

/// Remembers `(client_id, nonce)` pairs until they expire.
pub trait NonceStore: Send + Sync {
    /// Records the pair if it is new; fails with [`NonceError::Replayed`] if
    /// it was recorded before and has not expired.
    fn check_and_record(&self, used: &NonceUse<'_>) -> Result<(), NonceError>;
}

/// Finds the verifying keys of a client.
pub trait KeyLookup: Send + Sync {
    /// The client's active keys (at most [`MAX_KEYS_PER_CLIENT`]), or `None`
    /// for an unknown client.
    fn client_keys(&self, client_id: &str) -> Option<&[VerifyingKey]>;
}

/// Why a keyring entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// More than [`MAX_KEYS_PER_CLIENT`] keys for one client.
    #[error("client {0:?} has more than {MAX_KEYS_PER_CLIENT} active keys")]
    TooManyKeys(String),
    /// No key at all.
    #[error("client {0:?} has no key")]
    NoKeys(String),
}

/// An in-memory [`KeyLookup`].
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    clients: HashMap<String, Vec<VerifyingKey>, foldhash::fast::RandomState>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// Sets the active keys of a client (1 to [`MAX_KEYS_PER_CLIENT`]).
    pub fn insert(
        &mut self,
        client_id: impl Into<String>,
        keys: Vec<VerifyingKey>,
    ) -> Result<(), KeyringError> {
        let client_id = client_id.into();
        if keys.is_empty() {
            return Err(KeyringError::NoKeys(client_id));
        }
        if keys.len() > MAX_KEYS_PER_CLIENT {
            return Err(KeyringError::TooManyKeys(client_id));
        }
        self.clients.insert(client_id, keys);
        Ok(())
    }
}

impl KeyLookup for Keyring {
    fn client_keys(&self, client_id: &str) -> Option<&[VerifyingKey]> {
        self.clients.get(client_id).map(Vec::as_slice)
    }
}

/// What the pipeline checks against.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// This server's id; envelopes for any other are refused.
    pub server_id: String,
    /// The timestamp window, in milliseconds either side of the server's clock.
    pub max_skew_ms: u64,
    /// JSON parsing limits.
    pub limits: ParseLimits,
}

impl VerifyConfig {
    /// The defaults for `server_id`: ±300 s window, default parse limits.
    pub fn new(server_id: impl Into<String>) -> VerifyConfig {
        VerifyConfig {
            server_id: server_id.into(),
            max_skew_ms: DEFAULT_MAX_SKEW_MS,
            limits: ParseLimits::default(),
        }
    }
}

/// A value that passed verification. Only this module can make one, so a
/// function that takes `Verified<Envelope>` cannot be handed an unchecked
/// request.
#[derive(Debug, Clone)]
pub struct Verified<T>(T);

impl<T> Verified<T> {
    /// The verified value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl Verified<Envelope> {
    /// Moves the arguments out, for the handler that consumes them; the
    /// envelope keeps an empty map (everything else stays as verified).
    pub fn take_args(&mut self) -> crate::json::Map {
        std::mem::take(&mut self.0.args)
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A refused request: the error, and the `request_id` to echo in the signed
/// error reply (empty when the envelope was too broken to read one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The `request_id` to echo.
    pub request_id: String,
    /// Why.
    pub error: VerifyError,
}

/// An envelope whose signature and timestamp are valid but whose nonce has
/// not been recorded yet. This split lets a server with an asynchronous
/// nonce store run the last step itself; [`verify_request`] does all steps
/// with a synchronous store.
#[derive(Debug)]
pub struct Authenticated {
    envelope: Envelope,
    nonce_expires_at_ms: i64,
    now_ms: i64,
}

impl Authenticated {
    /// The envelope (not yet checked for replay).
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// When the nonce may be forgotten: `ts_ms` + window.
    pub fn nonce_expires_at_ms(&self) -> i64 {
        self.nonce_expires_at_ms
    }

    /// The nonce check this envelope needs: its client and nonce, when the
    /// pair may be forgotten, and the instant the timestamp was checked at.
    pub fn nonce_use(&self) -> NonceUse<'_> {
        NonceUse {
            client_id: &self.envelope.client_id,
            nonce: &self.envelope.nonce,
            expires_at_ms: self.nonce_expires_at_ms,
            now_ms: self.now_ms,
        }
    }

    /// The time the timestamp was checked against. The nonce check must use
    /// this same instant: with a later one, a replay at the window's very
    /// edge could find its earlier record already expired.
    pub fn checked_at_ms(&self) -> i64 {
        self.now_ms
    }

    /// Completes verification with the nonce store's answer.
    pub fn finish(self, nonce: Result<(), NonceError>) -> Result<Verified<Envelope>, Rejected> {
        match nonce {
            Ok(()) => Ok(Verified(self.envelope)),
            Err(e) => Err(Rejected {
                request_id: self.envelope.request_id,
                error: match e {
                    NonceError::Replayed => VerifyError::ReplayedNonce,
                    NonceError::Unavailable => VerifyError::StoreUnavailable,
                },
            }),
        }
    }
}

/// The `request_id` of a message that failed to parse as an envelope, if it
/// has a readable one.
fn salvage_request_id(top: &Top<MESSAGE_FIELDS>) -> String {
    Envelope::request_id_in(top)
        .filter(|s| !s.is_empty() && s.chars().count() <= MAX_ID_CHARS)
        .unwrap_or_default()
        .to_owned()
}

/// Signed bytes as received: the two slices around the `signature` member.
type Received<'b> = [&'b [u8]; 2];

/// A message's JSON value, and the bytes its signature covers (the two
/// slices around the `signature` member) when the received bytes already
/// hold them: a canonical object with all of its fields (a message without
/// `v` or `args` gets their defaults written into its signed bytes). `None`:
/// the signed bytes are written from the message. Either way they are the
/// same bytes; this only saves writing them again.
fn parse_message<'b>(
    bytes: &'b [u8],
    limits: ParseLimits,
    names: &[&str; MESSAGE_FIELDS],
) -> Result<(Top<MESSAGE_FIELDS>, Option<Received<'b>>), json::JsonError> {
    let (top, layout) = json::parse_members(bytes, limits, names, Some("signature"))?;
    let complete = match &top {
        Top::Object(m) => m.first_unknown.is_none() && m.values.iter().all(Option::is_some),
        Top::Other(_) => false,
    };
    let signed = layout.canonical_without_member(bytes).filter(|_| complete);
    Ok((top, signed))
}

/// Runs every step but the nonce check (see [`Authenticated`]).
pub fn authenticate<K: KeyLookup + ?Sized, C: Clock + ?Sized>(
    bytes: &[u8],
    config: &VerifyConfig,
    keys: &K,
    clock: &C,
) -> Result<Authenticated, Rejected> {
    let reject = |request_id: &str, error: VerifyError| Rejected {
        request_id: request_id.to_owned(),
        error,
    };
    let (top, received) = parse_message(bytes, config.limits, &Envelope::FIELDS).map_err(|e| {
        reject(
            "",
            VerifyError::Malformed(crate::error::EnvelopeError::Json(e)),
        )
    })?;
    let salvaged = salvage_request_id(&top);
    let env = Envelope::from_top(top).map_err(|e| reject(&salvaged, e.into()))?;
    let rid = env.request_id.as_str();
    if env.server_id != config.server_id {
        return Err(reject(
            rid,
            VerifyError::WrongServer {
                expected: config.server_id.clone(),
                got: env.server_id.clone(),
            },
        ));
    }
    let client_keys = keys
        .client_keys(&env.client_id)
        .ok_or_else(|| reject(rid, VerifyError::UnknownClient(env.client_id.clone())))?;
    let msg = received.map_or_else(|| env.signing_bytes(), |parts| parts.concat());
    let mut last_err = None;
    for key in client_keys.iter().take(MAX_KEYS_PER_CLIENT) {
        match key.verify_hex(&msg, &env.signature) {
            Ok(()) => {
                last_err = None;
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    if let Some(e) = last_err {
        return Err(reject(rid, VerifyError::BadSignature(e)));
    }
    if client_keys.is_empty() {
        return Err(reject(
            rid,
            VerifyError::UnknownClient(env.client_id.clone()),
        ));
    }
    let now = clock.now_ms();
    let skew = now.abs_diff(env.ts_ms);
    if skew > config.max_skew_ms {
        return Err(reject(
            rid,
            VerifyError::StaleTimestamp {
                ts_ms: env.ts_ms,
                skew_ms: skew,
                max_skew_ms: config.max_skew_ms,
            },
        ));
    }
    let window = i64::try_from(config.max_skew_ms).unwrap_or(i64::MAX);
    let nonce_expires_at_ms = env.ts_ms.saturating_add(window);
    Ok(Authenticated {
        envelope: env,
        nonce_expires_at_ms,
        now_ms: now,
    })
}

/// The whole pipeline with a synchronous nonce store.
pub fn verify_request<K: KeyLookup + ?Sized, C: Clock + ?Sized, N: NonceStore + ?Sized>(
    bytes: &[u8],
    config: &VerifyConfig,
    keys: &K,
    clock: &C,
    nonces: &N,
) -> Result<Verified<Envelope>, Rejected> {
    let auth = authenticate(bytes, config, keys, clock)?;
    let outcome = nonces.check_and_record(&auth.nonce_use());
    auth.finish(outcome)
}

/// Checks a response on the client side: well-formed, signed by the
/// server's key, and answering `expected_request_id` from `expected_server_id`.
pub fn verify_response(
    bytes: &[u8],
    server_key: &VerifyingKey,
    expected_request_id: &str,
    expected_server_id: &str,
) -> Result<Verified<Response>, ResponseError> {
    let (top, received) = parse_message(bytes, ParseLimits::default(), &Response::FIELDS)
        .map_err(|e| ResponseError::Malformed(crate::error::EnvelopeError::Json(e)))?;
    let resp = Response::from_top(top).map_err(ResponseError::Malformed)?;
    let signed = received.map_or_else(|| resp.signing_bytes(), |parts| parts.concat());
    server_key
        .verify_hex(&signed, &resp.signature)
        .map_err(ResponseError::BadSignature)?;
    if resp.request_id != expected_request_id {
        return Err(ResponseError::RequestIdMismatch {
            expected: expected_request_id.to_owned(),
            got: resp.request_id,
        });
    }
    if resp.server_id != expected_server_id {
        return Err(ResponseError::ServerIdMismatch {
            expected: expected_server_id.to_owned(),
            got: resp.server_id,
        });
    }
    if (resp.status == Status::Error) == resp.ok {
        return Err(ResponseError::Inconsistent {
            ok: resp.ok,
            status: resp.status.as_str(),
        });
    }
    Ok(Verified(resp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{Map, Value};
    use crate::keys::SignatureError;
    use crate::keys::SigningKey;
    use crate::reply::ResponseSigner;
    use std::collections::HashSet;
    use std::sync::Mutex;

    #[derive(Default)]
    struct MemNonces(Mutex<HashSet<(String, String)>>);
    impl NonceStore for MemNonces {
        fn check_and_record(&self, u: &NonceUse<'_>) -> Result<(), NonceError> {
            if self
                .0
                .lock()
                .unwrap()
                .insert((u.client_id.into(), u.nonce.into()))
            {
                Ok(())
            } else {
                Err(NonceError::Replayed)
            }
        }
    }

    const NOW: i64 = 1_700_000_000_000;

    fn setup() -> (VerifyConfig, Keyring, SigningKey) {
        let key = SigningKey::hmac(b"client_secret_key_456").unwrap();
        let mut ring = Keyring::new();
        ring.insert("client-001", vec![key.verifying_key()])
            .unwrap();
        (VerifyConfig::new("mcp-server-001"), ring, key)
    }

    fn envelope(key: &SigningKey, ts: i64, nonce: &str) -> Envelope {
        let mut env = Envelope {
            request_id: "r1".into(),
            ts_ms: ts,
            client_id: "client-001".into(),
            server_id: "mcp-server-001".into(),
            tool: "batch_sum".into(),
            args: Map::new(),
            nonce: nonce.into(),
            signature: String::new(),
        };
        env.sign(key);
        env
    }

    fn code(r: Result<Verified<Envelope>, Rejected>) -> Option<crate::ErrorCode> {
        r.err().map(|e| e.error.code())
    }

    #[test]
    fn accepts_then_refuses_a_replay() {
        let (cfg, ring, key) = setup();
        let nonces = MemNonces::default();
        let bytes = envelope(&key, NOW, "n1").to_json();
        let v = verify_request(&bytes, &cfg, &ring, &FixedClock(NOW), &nonces).unwrap();
        assert_eq!(v.tool, "batch_sum");
        let again = verify_request(&bytes, &cfg, &ring, &FixedClock(NOW), &nonces);
        assert_eq!(code(again), Some(crate::ErrorCode::ReplayedNonce));
    }

    #[test]
    fn window_edges() {
        let (cfg, ring, key) = setup();
        let nonces = MemNonces::default();
        let w = DEFAULT_MAX_SKEW_MS as i64;
        for (i, (ts, ok)) in [
            (NOW - w, true),
            (NOW + w, true),
            (NOW - w - 1, false),
            (NOW + w + 1, false),
        ]
        .into_iter()
        .enumerate()
        {
            let bytes = envelope(&key, ts, &format!("n{i}")).to_json();
            let r = verify_request(&bytes, &cfg, &ring, &FixedClock(NOW), &nonces);
            assert_eq!(r.is_ok(), ok, "ts offset {}", ts - NOW);
            if !ok {
                assert_eq!(code(r), Some(crate::ErrorCode::StaleTimestamp));
            }
        }
    }

    /// The pipeline at `NOW`, with one client and a fresh nonce store: the
    /// code each body gets.
    struct Pipeline {
        cfg: VerifyConfig,
        ring: Keyring,
        nonces: MemNonces,
    }

    impl Pipeline {
        fn new() -> (Pipeline, SigningKey) {
            let (cfg, ring, key) = setup();
            let nonces = MemNonces::default();
            (Pipeline { cfg, ring, nonces }, key)
        }

        fn code(&self, body: &[u8]) -> Option<crate::ErrorCode> {
            let clock = FixedClock(NOW);
            code(verify_request(
                body,
                &self.cfg,
                &self.ring,
                &clock,
                &self.nonces,
            ))
        }
    }

    #[test]
    fn each_step_has_its_code() {
        let (p, key) = Pipeline::new();
        let run = |b: &[u8]| p.code(b);
        assert_eq!(run(b"{"), Some(crate::ErrorCode::BadEnvelope));
        let mut env = envelope(&key, NOW, "a");
        env.server_id = "other".into();
        env.sign(&key);
        assert_eq!(run(&env.to_json()), Some(crate::ErrorCode::WrongServer));
        let mut env = envelope(&key, NOW, "b");
        env.client_id = "nobody".into();
        env.sign(&key);
        assert_eq!(run(&env.to_json()), Some(crate::ErrorCode::UnknownClient));
        let mut env = envelope(&key, NOW, "c");
        env.tool = "tampered".into();
        assert_eq!(run(&env.to_json()), Some(crate::ErrorCode::BadSignature));
        let text = String::from_utf8(envelope(&key, NOW, "d").to_json())
            .unwrap()
            .replace("mcp/0.1", "mcp/9");
        assert_eq!(
            run(text.as_bytes()),
            Some(crate::ErrorCode::UnsupportedVersion)
        );
    }

    #[test]
    fn a_signature_verifies_whatever_the_layout_of_the_bytes() {
        let (p, key) = Pipeline::new();
        let run = |b: &[u8]| p.code(b);
        // Each form gets its own nonce and is signed over the canonical bytes.
        let mut n = 0;
        let mut signed = |x: &str, form: &dyn Fn(String) -> String| {
            n += 1;
            let mut env = envelope(&key, NOW, &format!("n{n}"));
            env.args.insert("x".into(), Value::from(x));
            env.sign(&key);
            form(String::from_utf8(env.to_json()).unwrap())
        };
        let forms: [&dyn Fn(String) -> String; 4] = [
            &|c| c,
            &|c| c.replace(",\"", ", \""),
            &|c| {
                c.replacen('{', "{\"v\":\"mcp/0.1\",", 1)
                    .replacen(",\"v\":\"mcp/0.1\"}", "}", 1)
            },
            &|c| c.replace(",\"v\":\"mcp/0.1\"", ""),
        ];
        for form in forms {
            let body = signed("plain", form);
            assert_eq!(run(body.as_bytes()), None, "{body}");
        }
        // Escaped (as written canonically) or not, a character beyond ASCII.
        let escaped = signed("caf\u{e9}", &|c| c);
        assert!(escaped.contains("\\u00e9"));
        assert_eq!(run(escaped.as_bytes()), None, "{escaped}");
        let raw = signed("caf\u{e9}", &|c| c.replace("\\u00e9", "\u{e9}"));
        assert_eq!(run(raw.as_bytes()), None, "{raw}");
        // The fast path checks the received bytes: a change to them shows.
        let tampered = signed("plain", &|c| c.replace("plain", "plaim"));
        assert_eq!(
            run(tampered.as_bytes()),
            Some(crate::ErrorCode::BadSignature)
        );
    }

    /// A clock that moves 1 ms at every read.
    struct Ticking(std::sync::atomic::AtomicI64);
    impl Clock for Ticking {
        fn now_ms(&self) -> i64 {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        }
    }

    /// Nonces with expiry, like the real stores: a record counts while
    /// `expires_at >= now`.
    #[derive(Default)]
    struct ExpiringNonces(Mutex<std::collections::HashMap<String, i64>>);
    impl NonceStore for ExpiringNonces {
        fn check_and_record(&self, u: &NonceUse<'_>) -> Result<(), NonceError> {
            let mut m = self.0.lock().unwrap();
            let k = format!("{}\n{}", u.client_id, u.nonce);
            if m.get(&k).is_some_and(|e| *e >= u.now_ms) {
                return Err(NonceError::Replayed);
            }
            m.insert(k, u.expires_at_ms);
            Ok(())
        }
    }

    #[test]
    fn a_replay_at_the_window_edge_is_refused_even_as_the_clock_moves() {
        let (cfg, ring, key) = setup();
        let w = DEFAULT_MAX_SKEW_MS as i64;
        let nonces = ExpiringNonces::default();
        // Signed exactly one window before the first check: accepted, and
        // its nonce expires at that very instant.
        let bytes = envelope(&key, NOW - w, "edge").to_json();
        let clock = Ticking(std::sync::atomic::AtomicI64::new(NOW));
        assert!(verify_request(&bytes, &cfg, &ring, &clock, &nonces).is_ok());
        // The replay's timestamp check happens one tick later, outside the
        // window; start over at the edge instead to hit the race.
        clock.0.store(NOW, std::sync::atomic::Ordering::SeqCst);
        let again = verify_request(&bytes, &cfg, &ring, &clock, &nonces);
        assert_eq!(code(again), Some(crate::ErrorCode::ReplayedNonce));
    }

    #[test]
    fn rotation_accepts_any_active_key() {
        let (cfg, _, key) = setup();
        let old = SigningKey::hmac(b"old").unwrap();
        let mut ring = Keyring::new();
        ring.insert("client-001", vec![old.verifying_key(), key.verifying_key()])
            .unwrap();
        let nonces = MemNonces::default();
        for (k, n) in [(&old, "x"), (&key, "y")] {
            let bytes = envelope(k, NOW, n).to_json();
            assert!(verify_request(&bytes, &cfg, &ring, &FixedClock(NOW), &nonces).is_ok());
        }
        let stranger = SigningKey::hmac(b"stranger").unwrap();
        let bytes = envelope(&stranger, NOW, "z").to_json();
        let err = verify_request(&bytes, &cfg, &ring, &FixedClock(NOW), &nonces).unwrap_err();
        assert_eq!(
            err.error,
            VerifyError::BadSignature(SignatureError::Mismatch)
        );
        let four = vec![old.verifying_key(); 4];
        assert!(matches!(
            ring.insert("c", four),
            Err(KeyringError::TooManyKeys(_))
        ));
    }

    #[test]
    fn rejected_envelopes_do_not_burn_nonces() {
        let (cfg, ring, key) = setup();
        let nonces = MemNonces::default();
        let mut forged = envelope(&key, NOW, "same");
        forged.args.insert("x".into(), Value::Null);
        let r = verify_request(&forged.to_json(), &cfg, &ring, &FixedClock(NOW), &nonces);
        assert_eq!(code(r), Some(crate::ErrorCode::BadSignature));
        let genuine = envelope(&key, NOW, "same").to_json();
        assert!(verify_request(&genuine, &cfg, &ring, &FixedClock(NOW), &nonces).is_ok());
    }

    #[test]
    fn client_checks_responses() {
        let server = SigningKey::hmac(b"server_secret_key_123").unwrap();
        let signer = ResponseSigner::new("mcp-server-001", server.clone());
        let resp = signer.success("r1", NOW, Status::Ok, Some(Map::new()));
        let bytes = resp.to_json();
        let vk = server.verifying_key();
        assert!(verify_response(&bytes, &vk, "r1", "mcp-server-001").is_ok());
        assert!(matches!(
            verify_response(&bytes, &vk, "r2", "mcp-server-001"),
            Err(ResponseError::RequestIdMismatch { .. })
        ));
        assert!(matches!(
            verify_response(&bytes, &vk, "r1", "other"),
            Err(ResponseError::ServerIdMismatch { .. })
        ));
        let other = SigningKey::hmac(b"other").unwrap().verifying_key();
        assert!(matches!(
            verify_response(&bytes, &other, "r1", "mcp-server-001"),
            Err(ResponseError::BadSignature(_))
        ));
        let (err, _) = signer.error_json(
            "r1",
            NOW,
            &crate::ErrorCode::UnknownJob,
            "no such job",
            None,
        );
        assert_eq!(err.error.as_deref(), Some("unknown_job: no such job"));
        assert!(!err.ok);
    }
}
