//! The properties that the fuzz targets check, one function per target, so
//! that each target in `fuzz_targets/` is a single call into this crate and
//! the same checks can be replayed by `cargo test` without libFuzzer.
//!
//! Every function must return normally for any input: a panic, including a
//! failed assertion here, is a finding.

use lacre_proto::{
    canonical, parse, verify_request, verify_response, Envelope, FixedClock, JsonErrorKind,
    Keyring, NonceError, NonceStore, Number, ParseLimits, Response, SigningKey, Status, Value,
    VerifyConfig, VerifyError, VerifyingKey, DEFAULT_MAX_SKEW_MS, MAX_ID_CHARS,
};
use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, PoisonError};

/// The server's clock in `verify_pipeline` (the vectors' time).
pub const NOW_MS: i64 = 1_700_000_000_000;
/// The server that `verify_pipeline` plays.
pub const SERVER_ID: &str = "mcp-server-001";
/// The HMAC client and its secret (the seed's demo client).
pub const HMAC_CLIENT: (&str, &[u8]) = ("client-001", b"client_secret_key_456");
/// The Ed25519 client and its 32-byte seed.
pub const ED25519_CLIENT: (&str, [u8; 32]) = ("client-ed25519", [1; 32]);
/// The server's HMAC secret, for `verify_response`.
pub const HMAC_SERVER_SECRET: &[u8] = b"server_secret_key_123";

/// `Envelope::parse` and `Response::parse` never panic, and what they accept
/// survives a round trip through `to_json`, whose bytes are canonical and
/// are the signed bytes plus the `signature` field.
pub fn envelope_parse(data: &[u8]) {
    let limits = ParseLimits::default();
    // `parse` reads a message's members straight into their slots; through
    // the general parser and a map it must come to the same.
    let by_map = |v: Value| (Envelope::from_value(v.clone()), Response::from_value(v));
    let general = parse(data, limits).map_err(lacre_proto::EnvelopeError::Json);
    let (env_general, resp_general) = match general {
        Ok(v) => by_map(v),
        Err(e) => (Err(e.clone()), Err(e)),
    };
    assert_eq!(Envelope::parse(data, limits), env_general, "two envelope parses differ");
    assert_eq!(Response::parse(data, limits), resp_general, "two response parses differ");
    if let Ok(env) = Envelope::parse(data, limits) {
        let wire = [env.to_json(), env.signing_bytes()];
        round_trip("envelope", &env, wire, |b| Envelope::parse(b, limits));
    }
    if let Ok(resp) = Response::parse(data, limits) {
        let wire = [resp.to_json(), resp.signing_bytes()];
        round_trip("response", &resp, wire, |b| Response::parse(b, limits));
    }
}

/// A parsed message's `to_json` parses back to it, and its wire bytes
/// (`to_json`, then `signing_bytes`) agree (see [`check_wire_bytes`]).
fn round_trip<T: PartialEq + std::fmt::Debug, E: std::fmt::Display>(
    what: &str,
    msg: &T,
    [json, signed]: [Vec<u8>; 2],
    parse: impl Fn(&[u8]) -> Result<T, E>,
) {
    let back = parse(&json).unwrap_or_else(|e| panic!("{what}: to_json output does not parse: {e}"));
    assert_eq!(&back, msg, "{what} changed in a to_json round trip");
    check_wire_bytes(&json, &signed);
}

/// `json` (a message's `to_json`) is canonical JSON, and `signed` is the
/// same object without its `signature` field.
fn check_wire_bytes(json: &[u8], signed: &[u8]) {
    let limits = ParseLimits::default();
    let whole = parse(json, limits).unwrap_or_else(|e| panic!("to_json is not JSON: {e}"));
    assert_eq!(canonical(&whole), json, "to_json is not canonical");
    let Value::Object(mut fields) = whole else {
        panic!("to_json is not an object");
    };
    assert!(
        fields.remove("signature").is_some(),
        "to_json lacks signature"
    );
    let signed = parse(signed, limits).unwrap_or_else(|e| panic!("signed bytes not JSON: {e}"));
    assert_eq!(canonical(&signed), canonical(&Value::Object(fields)));
}

/// `canonical(parse(canonical(x))) == canonical(x)` and the value survives
/// the trip; the canonical form is ASCII (`ensure_ascii=True`); and the
/// parser agrees with serde_json on what is JSON and what its strings say.
pub fn canonical_roundtrip(data: &[u8]) {
    let limits = ParseLimits::default();
    let ours = parse(data, limits);
    agrees_with_serde_json(data, ours.as_ref().map_err(|e| &e.kind));
    let Ok(v) = ours else {
        return;
    };
    let c1 = canonical(&v);
    assert!(c1.is_ascii(), "canonical output is not ASCII");
    received_bytes_stand_for_canonical(data, &v);
    let v2 = parse(&c1, limits).unwrap_or_else(|e| panic!("canonical output does not parse: {e}"));
    assert_eq!(canonical(&v2), c1, "canonical form is not a fixed point");
    assert_eq!(v2, v, "value changed in a canonical round trip");
}

/// What the verifiers rely on to check a signature over the received
/// bytes: input the parser calls canonical is `canonical` of its value, and
/// without the `signature` member it is `canonical` of the rest.
fn received_bytes_stand_for_canonical(data: &[u8], v: &Value) {
    let (value, layout) =
        lacre_proto::json::parse_with_layout(data, ParseLimits::default(), Some("signature"))
            .unwrap_or_else(|e| panic!("parse_with_layout refuses what parse accepts: {e}"));
    assert_eq!(&value, v, "parse_with_layout reads another value");
    if layout.canonical {
        assert_eq!(canonical(v), data, "bytes called canonical are not");
    }
    if let Some(parts) = layout.canonical_without_member(data) {
        let Value::Object(mut rest) = value else {
            panic!("a member found outside an object");
        };
        assert!(rest.remove("signature").is_some(), "the member is not there");
        assert_eq!(
            parts.concat(),
            canonical(&Value::Object(rest)),
            "the bytes around the member are not the canonical rest"
        );
    }
}

/// serde_json is a strict RFC 8259 parser. The two may differ only where
/// lacre is stricter on purpose (duplicate keys, the size limits) or
/// keeps what serde_json cannot hold (integers beyond the float range), and
/// where both accept, they read the same value.
fn agrees_with_serde_json(data: &[u8], ours: Result<&Value, &JsonErrorKind>) {
    let theirs = serde_json::from_slice::<serde_json::Value>(data);
    match (ours, theirs) {
        (Ok(v), Ok(t)) => assert!(
            same_value(v, &t),
            "lacre and serde_json read different values: {v:?} vs {t:?}"
        ),
        (Ok(v), Err(e)) => assert!(
            has_int_beyond_f64(v),
            "lacre accepts what serde_json rejects ({e})"
        ),
        (Err(kind), Ok(_)) => assert!(
            matches!(
                kind,
                JsonErrorKind::DuplicateKey(_)
                    | JsonErrorKind::TooDeep(_)
                    | JsonErrorKind::IntegerTooLong
                    | JsonErrorKind::StringTooLong(_)
                    | JsonErrorKind::TooManyItems(_)
            ),
            "lacre rejects ({kind}) what serde_json accepts"
        ),
        (Err(_), Err(_)) => {}
    }
}

/// The same value. Integers beyond 64 bits are only checked to be numbers
/// (serde_json holds them as floats).
fn same_value(v: &Value, t: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (v, t) {
        (Value::Null, J::Null) => true,
        (Value::Bool(a), J::Bool(b)) => a == b,
        (Value::Number(Number::Int(a)), J::Number(b)) => {
            // serde_json reads `-0` as the float -0.0.
            b.as_i64() == Some(*a) || (*a == 0 && b.as_f64() == Some(0.0))
        }
        (Value::Number(Number::Float(a)), J::Number(b)) => {
            b.is_f64() && b.as_f64().map(f64::to_bits) == Some(a.to_bits())
        }
        (Value::Number(Number::BigInt(_)), J::Number(_)) => true,
        (Value::String(a), J::String(b)) => a == b,
        (Value::Array(a), J::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(a), J::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, x)| b.get(k).is_some_and(|y| same_value(x, y)))
        }
        _ => false,
    }
}

fn has_int_beyond_f64(v: &Value) -> bool {
    match v {
        Value::Number(Number::BigInt(s)) => s.parse::<f64>().map_or(true, |f| f.is_infinite()),
        Value::Array(items) => items.iter().any(has_int_beyond_f64),
        Value::Object(map) => map.values().any(has_int_beyond_f64),
        _ => false,
    }
}

/// What `verify_pipeline` verifies against, built once.
struct Fixture {
    config: VerifyConfig,
    keyring: Keyring,
    clients: Vec<(&'static str, SigningKey)>,
    server_key: VerifyingKey,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    // The secrets are non-empty constants and the seed is 32 bytes, so
    // building these keys cannot fail.
    let hmac = SigningKey::hmac(HMAC_CLIENT.1).expect("non-empty hmac secret");
    let ed = SigningKey::ed25519_from_seed(&ED25519_CLIENT.1).expect("32-byte seed");
    let clients = vec![(HMAC_CLIENT.0, hmac), (ED25519_CLIENT.0, ed)];
    let mut keyring = Keyring::new();
    for (id, key) in &clients {
        keyring
            .insert(*id, vec![key.verifying_key()])
            .expect("one key per client");
    }
    Fixture {
        config: VerifyConfig::new(SERVER_ID),
        keyring,
        clients,
        server_key: VerifyingKey::hmac(HMAC_SERVER_SECRET).expect("non-empty hmac secret"),
    }
});

/// A nonce store that remembers every `(client_id, nonce)` it is shown.
#[derive(Default)]
struct MemNonces(Mutex<HashSet<(String, String)>>);

impl MemNonces {
    fn is_empty(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
}

impl NonceStore for MemNonces {
    fn check_and_record(&self, u: &lacre_proto::NonceUse<'_>) -> Result<(), NonceError> {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.insert((u.client_id.to_owned(), u.nonce.to_owned())) {
            Ok(())
        } else {
            Err(NonceError::Replayed)
        }
    }
}

/// `verify_request` and `verify_response` never panic; an accepted request
/// is signed by its client's key, is for this server and in the window, and
/// is refused as a replay the second time; a refused one records no nonce;
/// an accepted response is signed by the server's key and consistent.
pub fn verify_pipeline(data: &[u8]) {
    let f = &*FIXTURE;
    let clock = FixedClock(NOW_MS);
    let nonces = MemNonces::default();
    match verify_request(data, &f.config, &f.keyring, &clock, &nonces) {
        Ok(verified) => {
            let env = verified.into_inner();
            let msg = env.signing_bytes();
            assert!(
                f.clients.iter().any(|(id, key)| *id == env.client_id
                    && key.verifying_key().verify_hex(&msg, &env.signature).is_ok()),
                "accepted an envelope that no key of its client signed"
            );
            assert_eq!(env.server_id, SERVER_ID);
            assert!(NOW_MS.abs_diff(env.ts_ms) <= DEFAULT_MAX_SKEW_MS);
            assert_eq!(
                Envelope::parse(data, f.config.limits).as_ref(),
                Ok(&env),
                "verified envelope differs from the parsed one"
            );
            let again = verify_request(data, &f.config, &f.keyring, &clock, &nonces);
            assert_eq!(
                again.err().map(|r| (r.error, r.request_id)),
                Some((VerifyError::ReplayedNonce, env.request_id)),
                "the same bytes twice were not refused as a replay"
            );
        }
        Err(rejected) => {
            assert!(nonces.is_empty(), "a refused request recorded its nonce");
            assert!(rejected.request_id.chars().count() <= MAX_ID_CHARS);
        }
    }

    let limits = ParseLimits::default();
    let request_id = Response::parse(data, limits)
        .map(|r| r.request_id)
        .unwrap_or_default();
    if let Ok(resp) = verify_response(data, &f.server_key, &request_id, SERVER_ID) {
        let resp = resp.into_inner();
        assert!(
            f.server_key
                .verify_hex(&resp.signing_bytes(), &resp.signature)
                .is_ok(),
            "accepted a response that the server key did not sign"
        );
        assert_eq!(resp.server_id, SERVER_ID);
        assert_eq!(resp.ok, resp.status != Status::Error);
    }

    // judge_reply never panics; a success answers the request sent, and a
    // refusal is bound to the bytes sent and tells the outcome.
    let sent = lacre_proto::Sent {
        bytes: b"{}",
        request_id: &request_id,
        server_id: SERVER_ID,
    };
    match lacre_proto::judge_reply(data, &f.server_key, sent, NOW_MS, DEFAULT_MAX_SKEW_MS) {
        Ok(lacre_proto::Verdict::Success(r)) => assert_eq!(r.request_id, request_id),
        Ok(lacre_proto::Verdict::Refused { code, response, .. }) => {
            assert!(code.tells_outcome(), "{code} taken for an outcome");
            assert_eq!(
                lacre_proto::binding_of(&response),
                Some(lacre_proto::request_digest(b"{}").as_str())
            );
        }
        Ok(lacre_proto::Verdict::OutcomeUnknown { .. }) | Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn seeds(target: &str) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("corpus directory") {
            let path = entry.expect("directory entry").path();
            out.push(std::fs::read(&path).expect("seed file"));
        }
        out
    }

    /// Replays the committed corpus through every check.
    #[test]
    fn corpus_replays_cleanly() {
        for target in ["envelope_parse", "canonical_roundtrip", "verify_pipeline"] {
            let inputs = seeds(target);
            assert!(!inputs.is_empty(), "no seeds for {target}");
            for data in &inputs {
                envelope_parse(data);
                canonical_roundtrip(data);
                verify_pipeline(data);
            }
        }
    }

    /// The verify_pipeline seeds include requests of both clients and
    /// responses that pass verification, so fuzzing starts past the
    /// signature check.
    #[test]
    fn signed_seeds_pass_verification() {
        let f = &*FIXTURE;
        let mut accepted = HashSet::new();
        let mut responses = 0;
        for data in seeds("verify_pipeline") {
            let nonces = MemNonces::default();
            if let Ok(v) =
                verify_request(&data, &f.config, &f.keyring, &FixedClock(NOW_MS), &nonces)
            {
                accepted.insert(v.client_id.clone());
            }
            let rid = Response::parse(&data, ParseLimits::default())
                .map(|r| r.request_id)
                .unwrap_or_default();
            if verify_response(&data, &f.server_key, &rid, SERVER_ID).is_ok() {
                responses += 1;
            }
        }
        assert!(accepted.contains(HMAC_CLIENT.0), "no accepted HMAC request");
        assert!(
            accepted.contains(ED25519_CLIENT.0),
            "no accepted Ed25519 request"
        );
        assert!(responses > 0, "no accepted response");
    }
}
