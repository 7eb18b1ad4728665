//! Keys and the two signature algorithms.
//!
//! The algorithm is a property of the key, never read from the message
//! (RFC 8725 §3.1): a verifier holding an Ed25519 public key cannot be talked
//! into checking an HMAC made with that public key as the secret.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// A signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Lowercase hex HMAC-SHA256 (the seed's scheme), 64 hex digits.
    HmacSha256,
    /// Lowercase hex Ed25519 signature (RFC 8032), 128 hex digits.
    Ed25519,
}

impl Algorithm {
    /// The name used in configuration and in `server_identity`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    /// The length of a signature, in hex digits.
    pub fn signature_hex_len(self) -> usize {
        match self {
            Algorithm::HmacSha256 => 64,
            Algorithm::Ed25519 => 128,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        match s {
            "hmac-sha256" => Ok(Algorithm::HmacSha256),
            "ed25519" => Ok(Algorithm::Ed25519),
            other => Err(KeyError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// Why a key could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// An algorithm name other than `hmac-sha256` or `ed25519`.
    #[error("unknown algorithm {0:?} (expected \"hmac-sha256\" or \"ed25519\")")]
    UnknownAlgorithm(String),
    /// An HMAC secret of zero bytes.
    #[error("empty hmac secret")]
    EmptySecret,
    /// Text that should be hex is not.
    #[error("invalid hex")]
    InvalidHex,
    /// An Ed25519 key of the wrong length.
    #[error("ed25519 key must be 32 bytes, got {0}")]
    WrongLength(usize),
    /// An Ed25519 public key that does not decode to a curve point.
    #[error("invalid ed25519 public key: not a curve point")]
    InvalidPublicKey,
    /// An Ed25519 public key of small order (8 A is the identity): it
    /// "verifies" signatures nobody made.
    #[error("invalid ed25519 public key: small order")]
    SmallOrderPublicKey,
    /// An Ed25519 public key spelled non-canonically (y ≥ p, or x = 0 with
    /// the sign bit set): another spelling of a point, which other
    /// verifiers may read differently.
    #[error("invalid ed25519 public key: not canonically encoded")]
    NonCanonicalPublicKey,
    /// A fingerprint pin of fewer than 128 bits, or more than 256.
    #[error("a pinned fingerprint must be 32 to 64 hex characters (128 to 256 bits), got {0}; pin the full fingerprint_sha256")]
    WeakPin(usize),
}

/// Shortest fingerprint accepted as a pin, in hex characters (128 bits).
pub const MIN_PIN_HEX: usize = 32;

/// Checks that `pin` can name a key: 32 to 64 lowercase hex characters.
pub fn check_pin(pin: &str) -> Result<(), KeyError> {
    if !pin
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(KeyError::InvalidHex);
    }
    if !(MIN_PIN_HEX..=64).contains(&pin.len()) {
        return Err(KeyError::WeakPin(pin.len()));
    }
    Ok(())
}

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// Not the right number of hex digits for the key's algorithm.
    #[error("signature must be {expected} lowercase hex digits, got {got} characters")]
    WrongLength {
        /// Expected length in hex digits.
        expected: usize,
        /// Length received, in characters.
        got: usize,
    },
    /// Characters other than `0-9a-f`.
    #[error("signature is not lowercase hex")]
    NotLowercaseHex,
    /// Well-formed, but no key verified it.
    #[error("signature does not match")]
    Mismatch,
}

/// An HMAC-SHA256 key with its inner and outer pads computed once, so each
/// signature costs only the hashing of the message.
#[derive(Clone)]
pub struct HmacKey {
    mac: HmacSha256,
}

impl HmacKey {
    /// Builds a key from raw secret bytes (the seed's keys are raw bytes).
    pub fn new(secret: &[u8]) -> Result<HmacKey, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        HmacSha256::new_from_slice(secret)
            .map(|mac| HmacKey { mac })
            .map_err(|_| KeyError::EmptySecret)
    }

    fn tag(&self, msg: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(msg);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(..)")
    }
}

/// A key that signs messages.
#[derive(Clone)]
pub enum SigningKey {
    /// A shared HMAC-SHA256 secret.
    Hmac(HmacKey),
    /// An Ed25519 private key.
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (alg, print) = (self.algorithm(), self.fingerprint());
        write!(f, "SigningKey({alg}, fingerprint {print})")
    }
}

/// The 32 bytes of an Ed25519 seed or public key, or why not.
fn ed25519_bytes(bytes: &[u8]) -> Result<[u8; 32], KeyError> {
    bytes
        .try_into()
        .map_err(|_| KeyError::WrongLength(bytes.len()))
}

impl SigningKey {
    /// An HMAC-SHA256 key from raw secret bytes.
    pub fn hmac(secret: &[u8]) -> Result<SigningKey, KeyError> {
        HmacKey::new(secret).map(SigningKey::Hmac)
    }

    /// An Ed25519 key from its 32-byte seed (the RFC 8032 private key).
    pub fn ed25519_from_seed(seed: &[u8]) -> Result<SigningKey, KeyError> {
        let seed = ed25519_bytes(seed)?;
        Ok(SigningKey::Ed25519(Box::new(
            ed25519_dalek::SigningKey::from_bytes(&seed),
        )))
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::Hmac(_) => Algorithm::HmacSha256,
            SigningKey::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// Signs `msg`, returning the signature as lowercase hex.
    pub fn sign_hex(&self, msg: &[u8]) -> String {
        match self {
            SigningKey::Hmac(k) => to_hex(&k.tag(msg)),
            SigningKey::Ed25519(k) => {
                use ed25519_dalek::Signer;
                to_hex(&k.sign(msg).to_bytes())
            }
        }
    }

    /// The key that verifies this key's signatures.
    pub fn verifying_key(&self) -> VerifyingKey {
        match self {
            SigningKey::Hmac(k) => VerifyingKey::Hmac(k.clone()),
            SigningKey::Ed25519(k) => VerifyingKey::Ed25519(k.verifying_key()),
        }
    }

    /// See [`VerifyingKey::fingerprint`].
    pub fn fingerprint(&self) -> String {
        self.verifying_key().fingerprint()
    }
}

/// A key that verifies signatures.
#[derive(Clone)]
pub enum VerifyingKey {
    /// A shared HMAC-SHA256 secret.
    Hmac(HmacKey),
    /// An Ed25519 public key.
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (alg, print) = (self.algorithm(), self.fingerprint());
        write!(f, "VerifyingKey({alg}, fingerprint {print})")
    }
}

impl VerifyingKey {
    /// An HMAC-SHA256 key from raw secret bytes.
    pub fn hmac(secret: &[u8]) -> Result<VerifyingKey, KeyError> {
        HmacKey::new(secret).map(VerifyingKey::Hmac)
    }

    /// An Ed25519 public key from its 32 bytes.
    pub fn ed25519(public: &[u8]) -> Result<VerifyingKey, KeyError> {
        let bytes = ed25519_bytes(public)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| KeyError::InvalidPublicKey)?;
        if key.is_weak() {
            return Err(KeyError::SmallOrderPublicKey);
        }
        // dalek reduces y mod p and takes x's sign as given; only the
        // point's own encoding is canonical.
        if key.to_edwards().compress().to_bytes() != bytes {
            return Err(KeyError::NonCanonicalPublicKey);
        }
        Ok(VerifyingKey::Ed25519(key))
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            VerifyingKey::Hmac(_) => Algorithm::HmacSha256,
            VerifyingKey::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// The Ed25519 public key bytes, if this is an Ed25519 key.
    pub fn ed25519_public_bytes(&self) -> Option<[u8; 32]> {
        match self {
            VerifyingKey::Ed25519(k) => Some(k.to_bytes()),
            VerifyingKey::Hmac(_) => None,
        }
    }

    /// A short public identifier of the key: the first 16 hex digits of
    /// SHA-256 of the Ed25519 public key, or of
    /// HMAC-SHA256(secret, `"lacre-fingerprint"`) for an HMAC key. The
    /// seed publishes `sha256(secret)`, the same digest any other system
    /// hashing that secret would store; the keyed, domain-separated form
    /// reveals nothing reusable elsewhere. Like any deterministic function
    /// of the secret it still lets a weak secret be guessed offline, which
    /// is why generated secrets are 32 random bytes.
    pub fn fingerprint(&self) -> String {
        let mut hex = self.fingerprint_sha256();
        hex.truncate(16);
        hex
    }

    /// The whole 256-bit digest the short [`fingerprint`](Self::fingerprint)
    /// is the start of (64 hex characters): what a client pins.
    pub fn fingerprint_sha256(&self) -> String {
        let digest: [u8; 32] = match self {
            VerifyingKey::Hmac(k) => k.tag(b"lacre-fingerprint"),
            VerifyingKey::Ed25519(k) => Sha256::digest(k.as_bytes()).into(),
        };
        to_hex(&digest)
    }

    /// Whether this key is the one `pin` names: `pin` is the start of
    /// [`fingerprint_sha256`](Self::fingerprint_sha256), at least
    /// [`MIN_PIN_HEX`] lowercase hex characters (128 bits: a second
    /// preimage of a 64-bit pin costs about 2^64 key generations, within
    /// reach of a determined attacker).
    pub fn matches_pin(&self, pin: &str) -> Result<bool, KeyError> {
        check_pin(pin)?;
        Ok(self.fingerprint_sha256().starts_with(pin))
    }

    /// Checks a lowercase hex signature over `msg`, in constant time for HMAC.
    pub fn verify_hex(&self, msg: &[u8], signature_hex: &str) -> Result<(), SignatureError> {
        let expected = self.algorithm().signature_hex_len();
        if signature_hex.len() != expected {
            return Err(SignatureError::WrongLength {
                expected,
                got: signature_hex.chars().count(),
            });
        }
        let raw = from_lower_hex(signature_hex).ok_or(SignatureError::NotLowercaseHex)?;
        match self {
            VerifyingKey::Hmac(k) => {
                let mut mac = k.mac.clone();
                mac.update(msg);
                // `verify_slice` compares in constant time (subtle).
                mac.verify_slice(&raw).map_err(|_| SignatureError::Mismatch)
            }
            VerifyingKey::Ed25519(k) => {
                let sig = ed25519_dalek::Signature::from_slice(&raw)
                    .map_err(|_| SignatureError::Mismatch)?;
                k.verify_strict(msg, &sig)
                    .map_err(|_| SignatureError::Mismatch)
            }
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digit = |n: u8| HEX.get(usize::from(n & 0xF)).copied().unwrap_or(b'0');
    let mut out = vec![0; bytes.len() * 2];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        if let [hi, lo] = pair {
            (*hi, *lo) = (digit(b >> 4), digit(*b));
        }
    }
    // Hex digits are ASCII, so this never falls back.
    String::from_utf8(out).unwrap_or_default()
}

/// Decodes hex in either case (for keys typed by people).
pub fn from_hex(s: &str) -> Result<Vec<u8>, KeyError> {
    decode_hex(s, true).ok_or(KeyError::InvalidHex)
}

/// Decodes lowercase hex only (the wire form of signatures).
fn from_lower_hex(s: &str) -> Option<Vec<u8>> {
    decode_hex(s, false)
}

/// The value of each byte as a hex digit: 0-15, `UPPER` + value for `A`-`F`,
/// `NOT_HEX` for anything else.
const NOT_HEX: u8 = 0xFF;
const UPPER: u8 = 0x10;
// Built at compile time, where an index out of range fails the build.
#[allow(clippy::indexing_slicing)]
const HEX_VALUES: [u8; 256] = {
    let mut t = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = UPPER + 10 + i as u8;
        i += 1;
    }
    t
};

fn decode_hex(s: &str, allow_upper: bool) -> Option<Vec<u8>> {
    let nibble = |c: u8| -> Option<u8> {
        match HEX_VALUES.get(usize::from(c)).copied().unwrap_or(NOT_HEX) {
            NOT_HEX => None,
            v if v >= UPPER => allow_upper.then_some(v - UPPER),
            v => Some(v),
        }
    };
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 2);
    for pair in bytes.chunks_exact(2) {
        let [hi, lo] = pair else { return None };
        out.push(nibble(*hi)? << 4 | nibble(*lo)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_a_digit() {
        let all: Vec<u8> = (0..=255).collect();
        let hex = to_hex(&all);
        assert_eq!(hex.get(..8), Some("00010203"));
        assert_eq!(hex.get(hex.len() - 4..), Some("feff"));
        assert_eq!(from_lower_hex(&hex), Some(all.clone()));
        assert_eq!(from_hex(&hex.to_uppercase()), Ok(all));
        assert_eq!(from_lower_hex("AB"), None);
        assert_eq!(from_lower_hex("abc"), None);
        for c in ['/', ':', '@', 'G', '`', 'g', ' ', '\u{e9}'] {
            assert_eq!(
                from_hex(&format!("a{c}")),
                Err(KeyError::InvalidHex),
                "{c:?}"
            );
        }
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let key = SigningKey::hmac(b"Jefe").unwrap();
        assert_eq!(
            key.sign_hex(b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn ed25519_matches_rfc8032_test_1() {
        let seed =
            from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap();
        let key = SigningKey::ed25519_from_seed(&seed).unwrap();
        let sig = key.sign_hex(b"");
        assert_eq!(
            sig,
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert_eq!(key.verifying_key().verify_hex(b"", &sig), Ok(()));
        assert_eq!(
            key.verifying_key().verify_hex(b"x", &sig),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signature_format_is_strict() {
        let key = VerifyingKey::hmac(b"k").unwrap();
        let good = SigningKey::hmac(b"k").unwrap().sign_hex(b"m");
        assert_eq!(key.verify_hex(b"m", &good), Ok(()));
        assert_eq!(
            key.verify_hex(b"m", &good.to_uppercase()),
            Err(SignatureError::NotLowercaseHex)
        );
        assert!(matches!(
            key.verify_hex(b"m", &good[..62]),
            Err(SignatureError::WrongLength { .. })
        ));
        let mut flipped = good.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            key.verify_hex(b"m", std::str::from_utf8(&flipped).unwrap()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn fingerprint_is_not_a_plain_hash_of_the_secret() {
        let secret = b"server_secret_key_123";
        let plain = to_hex(&Sha256::digest(secret));
        let fp = SigningKey::hmac(secret).unwrap().fingerprint();
        assert_eq!(fp.len(), 16);
        assert_ne!(fp, plain[..16]);
    }

    #[test]
    fn published_fingerprints() {
        // docs/SPEC.md §5.4.
        let hmac = SigningKey::hmac(b"server_secret_key_123").unwrap();
        assert_eq!(hmac.fingerprint(), "816428146c618215");
        let ed = VerifyingKey::ed25519(
            &from_hex("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8").unwrap(),
        )
        .unwrap();
        assert_eq!(ed.fingerprint(), "56475aa75463474c");
        assert_eq!(
            ed.fingerprint_sha256(),
            "56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c"
        );
    }

    #[test]
    fn pins_must_be_at_least_128_bits() {
        let ed = SigningKey::ed25519_from_seed(&[9u8; 32])
            .unwrap()
            .verifying_key();
        let full = ed.fingerprint_sha256();
        assert_eq!(ed.matches_pin(&full), Ok(true));
        assert_eq!(ed.matches_pin(&full[..32]), Ok(true));
        // The 64-bit display form is no pin.
        assert_eq!(
            ed.matches_pin(&ed.fingerprint()),
            Err(KeyError::WeakPin(16))
        );
        assert_eq!(ed.matches_pin(&full[..31]), Err(KeyError::WeakPin(31)));
        assert_eq!(
            ed.matches_pin(&full.to_uppercase()),
            Err(KeyError::InvalidHex)
        );
        let other = SigningKey::ed25519_from_seed(&[8u8; 32])
            .unwrap()
            .verifying_key();
        assert_eq!(other.matches_pin(&full), Ok(false));
    }
}
