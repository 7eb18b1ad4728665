//! Standard Webhooks signatures, sans-I/O: the `webhook-id`,
//! `webhook-timestamp` and `webhook-signature` headers a sender computes and
//! a receiver checks (SPEC §9.5). `v1` is HMAC-SHA256 with a shared
//! `whsec_` secret; `v1a` is Ed25519 with a `whpk_` public key, which lets a
//! receiver check a notification without holding anything that could forge
//! one. Both sign the bytes `"<id>.<timestamp>.<body>"`.

use crate::keys::{from_hex, to_hex, SigningKey, VerifyingKey};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

/// Standard base64 that reads text with or without its `=` padding (the
/// reference libraries accept unpadded secrets); what lacre writes is padded.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// How far a notification's timestamp may be from the receiver's clock, in
/// seconds (the Standard Webhooks default: five minutes).
pub const DEFAULT_TOLERANCE_S: i64 = 300;

/// Signatures looked at in one header at most (each costs a MAC or a
/// signature check; a sender rotating keys sends two or three).
pub const MAX_SIGNATURES: usize = 8;

const SECRET_PREFIX: &str = "whsec_";
const PUBLIC_PREFIX: &str = "whpk_";

/// Why a notification was refused, or a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// A required header is absent or empty.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not whole seconds since the epoch.
    #[error("webhook-timestamp is not a number of seconds")]
    BadTimestamp,
    /// The timestamp is further from now than the tolerance.
    #[error("webhook-timestamp {timestamp} is {off} s from now (tolerance {tolerance} s)")]
    OutsideTolerance {
        /// The header's value.
        timestamp: i64,
        /// How far it is from the receiver's clock.
        off: i64,
        /// The tolerance.
        tolerance: i64,
    },
    /// No signature in the header verifies with the keys given.
    #[error("no signature verifies")]
    NoMatch,
    /// More signatures than [`MAX_SIGNATURES`].
    #[error("more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// A secret that is not `whsec_` followed by base64 of at least one byte.
    #[error("a webhook secret is whsec_ followed by base64")]
    BadSecret,
    /// A public key that is not `whpk_` and the base64 of a valid Ed25519 key.
    #[error("a webhook public key is whpk_ followed by the base64 of a 32-byte Ed25519 key: {0}")]
    BadPublicKey(String),
}

/// A receiver's key: the shared secret (`v1`) or the sender's Ed25519
/// public key (`v1a`).
#[derive(Clone)]
pub enum WebhookKey {
    /// A `whsec_` secret.
    Secret(Vec<u8>),
    /// A `whpk_` public key.
    Public(VerifyingKey),
}

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebhookKey::Secret(_) => f.write_str("WebhookKey::Secret(<hidden>)"),
            WebhookKey::Public(k) => write!(f, "WebhookKey::Public({})", k.fingerprint()),
        }
    }
}

impl WebhookKey {
    /// Reads `whsec_…` or `whpk_…` (or base64 of a secret without prefix,
    /// as the reference libraries accept).
    pub fn parse(text: &str) -> Result<WebhookKey, WebhookError> {
        let text = text.trim();
        if let Some(public) = text.strip_prefix(PUBLIC_PREFIX) {
            let raw = LENIENT
                .decode(public)
                .map_err(|e| WebhookError::BadPublicKey(e.to_string()))?;
            let key = VerifyingKey::ed25519(&raw)
                .map_err(|e| WebhookError::BadPublicKey(e.to_string()))?;
            return Ok(WebhookKey::Public(key));
        }
        let b64 = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        match LENIENT.decode(b64) {
            Ok(raw) if !raw.is_empty() => Ok(WebhookKey::Secret(raw)),
            _ => Err(WebhookError::BadSecret),
        }
    }
}

/// `whsec_` and the base64 of `secret`.
pub fn secret_text(secret: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(secret))
}

/// `whpk_` and the base64 of an Ed25519 public key; `None` for HMAC keys.
pub fn public_key_text(key: &VerifyingKey) -> Option<String> {
    key.ed25519_public_bytes()
        .map(|raw| format!("{PUBLIC_PREFIX}{}", STANDARD.encode(raw)))
}

/// The signed bytes: `"<id>.<timestamp>.<body>"`.
pub fn signed_content(id: &str, timestamp_s: i64, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{id}.{timestamp_s}.").into_bytes();
    out.extend_from_slice(body);
    out
}

/// `v1,<base64 HMAC-SHA256>` with `secret`; `None` for an empty secret.
pub fn sign_v1(secret: &[u8], id: &str, timestamp_s: i64, body: &[u8]) -> Option<String> {
    let key = SigningKey::hmac(secret).ok()?;
    let raw = from_hex(&key.sign_hex(&signed_content(id, timestamp_s, body))).ok()?;
    Some(format!("v1,{}", STANDARD.encode(raw)))
}

/// `v1a,<base64 Ed25519>` with `key`; `None` for an HMAC key.
pub fn sign_v1a(key: &SigningKey, id: &str, timestamp_s: i64, body: &[u8]) -> Option<String> {
    if key.algorithm() != crate::Algorithm::Ed25519 {
        return None;
    }
    let raw = from_hex(&key.sign_hex(&signed_content(id, timestamp_s, body))).ok()?;
    Some(format!("v1a,{}", STANDARD.encode(raw)))
}

/// The three headers of one delivery attempt, as received.
#[derive(Debug, Clone, Copy)]
pub struct WebhookHeaders<'a> {
    /// `webhook-id`.
    pub id: &'a str,
    /// `webhook-timestamp`.
    pub timestamp: &'a str,
    /// `webhook-signature`: space-separated `version,base64` entries.
    pub signature: &'a str,
}

/// Checks a notification: the headers present, the timestamp within
/// `tolerance_s` of `now_s`, and at least one signature of a known version
/// that verifies with one of `keys` (`v1` with a secret, `v1a` with a
/// public key; other versions are skipped, as the scheme asks).
pub fn verify(
    headers: WebhookHeaders<'_>,
    body: &[u8],
    keys: &[WebhookKey],
    now_s: i64,
    tolerance_s: i64,
) -> Result<(), WebhookError> {
    for (value, name) in [
        (headers.id, "webhook-id"),
        (headers.timestamp, "webhook-timestamp"),
        (headers.signature, "webhook-signature"),
    ] {
        if value.trim().is_empty() {
            return Err(WebhookError::MissingHeader(name));
        }
    }
    let timestamp: i64 = headers
        .timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookError::BadTimestamp)?;
    let off = now_s.saturating_sub(timestamp);
    if off.unsigned_abs() > tolerance_s.unsigned_abs() {
        return Err(WebhookError::OutsideTolerance {
            timestamp,
            off,
            tolerance: tolerance_s,
        });
    }
    let entries: Vec<&str> = headers.signature.split_whitespace().collect();
    if entries.len() > MAX_SIGNATURES {
        return Err(WebhookError::TooManySignatures);
    }
    let content = signed_content(headers.id, timestamp, body);
    for entry in entries {
        let Some((version, b64)) = entry.split_once(',') else {
            continue;
        };
        let Ok(raw) = LENIENT.decode(b64) else {
            continue;
        };
        for key in keys {
            let ok = match (version, key) {
                // Compared in constant time (`verify_hex`).
                ("v1", WebhookKey::Secret(secret)) => VerifyingKey::hmac(secret).is_ok_and(|k| {
                    raw.len() == 32 && k.verify_hex(&content, &to_hex(&raw)).is_ok()
                }),
                ("v1a", WebhookKey::Public(public)) => {
                    raw.len() == 64 && public.verify_hex(&content, &to_hex(&raw)).is_ok()
                }
                _ => false,
            };
            if ok {
                return Ok(());
            }
        }
    }
    Err(WebhookError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    /// The reference vector the Standard Webhooks libraries and docs use:
    /// this secret, id, timestamp and body give this `v1` signature.
    #[test]
    fn the_reference_vector_is_reproduced() {
        let secret = match WebhookKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
            Ok(WebhookKey::Secret(s)) => s,
            other => panic!("{other:?}"),
        };
        let (id, ts, body) = (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        let want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(sign_v1(&secret, id, ts, body).as_deref(), Some(want));
        let h = headers(id, "1614265330", want);
        assert!(verify(h, body, &[WebhookKey::Secret(secret.clone())], ts, 300).is_ok());
        assert!(verify(
            h,
            br#"{"test": 2432232315}"#,
            &[WebhookKey::Secret(secret)],
            ts,
            300
        )
        .is_err());
    }

    fn headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> WebhookHeaders<'a> {
        WebhookHeaders {
            id,
            timestamp: ts,
            signature: sig,
        }
    }

    #[test]
    fn v1_and_v1a_verify_and_refuse_what_they_should() {
        let secret = b"a shared secret of the client".to_vec();
        let ed = SigningKey::ed25519_from_seed(&[9u8; 32]).unwrap();
        let body = br#"{"type":"job.done"}"#;
        let v1 = sign_v1(&secret, "job-1.done", NOW, body).unwrap();
        let v1a = sign_v1a(&ed, "job-1.done", NOW, body).unwrap();
        let both = format!("{v1} {v1a}");
        let ts = NOW.to_string();
        let by_secret = [WebhookKey::parse(&secret_text(&secret)).unwrap()];
        let by_public =
            [WebhookKey::parse(&public_key_text(&ed.verifying_key()).unwrap()).unwrap()];
        for keys in [&by_secret[..], &by_public[..]] {
            assert_eq!(
                verify(headers("job-1.done", &ts, &both), body, keys, NOW, 300),
                Ok(())
            );
            // Another body, id or timestamp: no signature verifies.
            assert_eq!(
                verify(headers("job-1.done", &ts, &both), b"{}", keys, NOW, 300),
                Err(WebhookError::NoMatch)
            );
            assert_eq!(
                verify(headers("job-2.done", &ts, &both), body, keys, NOW, 300),
                Err(WebhookError::NoMatch)
            );
            let later = (NOW + 1).to_string();
            assert_eq!(
                verify(headers("job-1.done", &later, &both), body, keys, NOW, 300),
                Err(WebhookError::NoMatch)
            );
        }
        // Each key verifies only its own version.
        assert_eq!(
            verify(headers("job-1.done", &ts, &v1a), body, &by_secret, NOW, 300),
            Err(WebhookError::NoMatch)
        );
        assert_eq!(
            verify(headers("job-1.done", &ts, &v1), body, &by_public, NOW, 300),
            Err(WebhookError::NoMatch)
        );
        // Unknown versions and junk entries are skipped, not fatal.
        let mixed = format!("v9,AAAA nonsense v1,!!! {v1}");
        assert_eq!(
            verify(
                headers("job-1.done", &ts, &mixed),
                body,
                &by_secret,
                NOW,
                300
            ),
            Ok(())
        );
    }

    #[test]
    fn the_timestamp_must_be_near_and_every_header_present() {
        let secret = b"s".to_vec();
        let keys = [WebhookKey::Secret(secret.clone())];
        let old = NOW - 301;
        let sig = sign_v1(&secret, "i", old, b"x").unwrap();
        let ts = old.to_string();
        assert!(matches!(
            verify(headers("i", &ts, &sig), b"x", &keys, NOW, 300),
            Err(WebhookError::OutsideTolerance { off: 301, .. })
        ));
        let edge = (NOW - 300).to_string();
        let sig = sign_v1(&secret, "i", NOW - 300, b"x").unwrap();
        assert_eq!(
            verify(headers("i", &edge, &sig), b"x", &keys, NOW, 300),
            Ok(())
        );
        assert_eq!(
            verify(headers("i", "soon", &sig), b"x", &keys, NOW, 300),
            Err(WebhookError::BadTimestamp)
        );
        assert_eq!(
            verify(headers("", &edge, &sig), b"x", &keys, NOW, 300),
            Err(WebhookError::MissingHeader("webhook-id"))
        );
        let many = [sig.as_str(); MAX_SIGNATURES + 1].join(" ");
        assert_eq!(
            verify(headers("i", &edge, &many), b"x", &keys, NOW, 300),
            Err(WebhookError::TooManySignatures)
        );
    }

    #[test]
    fn keys_are_read_strictly() {
        assert_eq!(
            WebhookKey::parse("whsec_").err(),
            Some(WebhookError::BadSecret)
        );
        assert_eq!(
            WebhookKey::parse("whsec_not base64!").err(),
            Some(WebhookError::BadSecret)
        );
        assert!(
            matches!(WebhookKey::parse("whsec_c2VjcmV0"), Ok(WebhookKey::Secret(s)) if s == b"secret")
        );
        // The identity point: a small-order key is refused here too.
        let identity = format!(
            "whpk_{}",
            STANDARD.encode({
                let mut k = [0u8; 32];
                k[0] = 1;
                k
            })
        );
        assert!(matches!(
            WebhookKey::parse(&identity),
            Err(WebhookError::BadPublicKey(_))
        ));
        assert!(matches!(
            WebhookKey::parse("whpk_AAAA"),
            Err(WebhookError::BadPublicKey(_))
        ));
    }
}
