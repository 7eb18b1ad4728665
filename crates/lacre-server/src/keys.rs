//! Key material: where a key comes from ([`KeySource`]), the one decoder
//! for every source, key generation and the operating system's randomness.
//! The server configuration, the client profile and every command of the
//! CLI load keys through here, so the rules cannot drift apart.
//!
//! The rules:
//! - an HMAC secret given inline is its text's UTF-8 bytes (the seed's keys
//!   are `b"server_secret_key_123"`); given as hex, its bytes;
//! - a file or environment variable holds raw bytes, one trailing newline
//!   (`\n` or `\r\n`) removed, and `hex:` followed by hex digits means those
//!   bytes (what `lacre keygen` writes for random secrets);
//! - an Ed25519 key (a 32-byte private seed, or a public key) is 64 hex
//!   digits wherever it is given, surrounding white space ignored, `hex:`
//!   allowed.
//!
//! ```
//! use lacre_server::keys::{KeySource, load_key};
//! use lacre_proto::{Algorithm, SigningKey};
//!
//! let src = KeySource::Inline("client_secret_key_456".into());
//! let key: SigningKey = load_key(Algorithm::HmacSha256, &src, std::path::Path::new(".")).unwrap();
//! assert_eq!(key.algorithm(), Algorithm::HmacSha256);
//! ```

use lacre_proto::{from_hex, to_hex, Algorithm, KeyError, SigningKey, VerifyingKey};
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a key's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Written in the configuration as text.
    Inline(String),
    /// Written in the configuration as hex digits.
    Hex(String),
    /// A file (relative paths are relative to the configuration file).
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Inline(_) => f.write_str("the inline secret"),
            KeySource::Hex(_) => f.write_str("the inline hex key"),
            KeySource::File(p) => write!(f, "file {}", p.display()),
            KeySource::Env(v) => write!(f, "environment variable {v}"),
        }
    }
}

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyLoadError {
    /// A key file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file, as resolved.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The environment variable is not set.
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    /// The bytes are not what the algorithm needs.
    #[error("{source_name}: {problem}")]
    Invalid {
        /// Where the key came from.
        source_name: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// The decoded bytes are not a valid key.
    #[error("{source_name}")]
    Key {
        /// Where the key came from.
        source_name: String,
        /// Why the key is refused.
        #[source]
        source: KeyError,
    },
    /// The operating system's random generator failed.
    #[error("no randomness available")]
    Random(#[source] getrandom::Error),
}

/// The error and its causes on one line (`cannot read k.key: No such file`).
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Resolves `path` against `base` unless it is absolute.
pub fn resolve_path(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// Strips one trailing newline (`\n` or `\r\n`).
fn strip_newline(mut raw: Vec<u8>) -> Vec<u8> {
    if raw.ends_with(b"\n") {
        raw.pop();
        if raw.ends_with(b"\r") {
            raw.pop();
        }
    }
    raw
}

impl KeySource {
    /// The raw bytes: a file's contents, a variable's value, the inline text.
    fn raw(&self, base: &Path) -> Result<Vec<u8>, KeyLoadError> {
        match self {
            KeySource::Inline(s) | KeySource::Hex(s) => Ok(s.clone().into_bytes()),
            KeySource::File(p) => {
                let path = resolve_path(base, p);
                std::fs::read(&path).map_err(|source| KeyLoadError::Read { path, source })
            }
            KeySource::Env(var) => std::env::var_os(var)
                .map(std::ffi::OsString::into_encoded_bytes)
                .ok_or_else(|| KeyLoadError::EnvMissing(var.clone())),
        }
    }

    fn invalid(&self, problem: &'static str) -> KeyLoadError {
        KeyLoadError::Invalid {
            source_name: self.to_string(),
            problem,
        }
    }

    fn key_error(&self, source: KeyError) -> KeyLoadError {
        KeyLoadError::Key {
            source_name: self.to_string(),
            source,
        }
    }

    /// The bytes of an HMAC secret.
    pub fn hmac_secret(&self, base: &Path) -> Result<Vec<u8>, KeyLoadError> {
        let raw = self.raw(base)?;
        let bytes = match self {
            KeySource::Inline(_) => raw,
            KeySource::Hex(h) => from_hex(h.trim()).map_err(|_| self.invalid("not hex digits"))?,
            KeySource::File(_) | KeySource::Env(_) => {
                let raw = strip_newline(raw);
                match raw.strip_prefix(b"hex:") {
                    Some(hex) => std::str::from_utf8(hex)
                        .ok()
                        .and_then(|t| from_hex(t.trim()).ok())
                        .ok_or_else(|| self.invalid("invalid hex after \"hex:\""))?,
                    None => raw,
                }
            }
        };
        if bytes.is_empty() {
            return Err(self.invalid("the secret is empty"));
        }
        Ok(bytes)
    }

    /// 32 bytes written as 64 hex digits (Ed25519 keys), wherever they are.
    pub fn hex32(&self, base: &Path) -> Result<Vec<u8>, KeyLoadError> {
        let raw = self.raw(base)?;
        let text = std::str::from_utf8(&raw).map_err(|_| self.invalid("not text"))?;
        let text = text.trim();
        let text = text.strip_prefix("hex:").unwrap_or(text);
        let bytes = from_hex(text.trim()).map_err(|_| self.invalid("must be 64 hex digits"))?;
        if bytes.len() != 32 {
            return Err(self.invalid("must be 64 hex digits (32 bytes)"));
        }
        Ok(bytes)
    }
}

/// A key that a [`KeySource`] can hold: a [`SigningKey`] (the secret, or
/// an Ed25519 seed) or a [`VerifyingKey`] (the shared secret, or an
/// Ed25519 public key).
pub trait LoadKey: Sized + 'static {
    /// Whether the key signs, so that its source holds a private key.
    const SIGNS: bool;
    /// The key from an HMAC secret, and from the 32 bytes of an Ed25519 key.
    const MAKE: KeyMakers<Self>;
}

/// How a [`LoadKey`] is made from the bytes of each algorithm.
pub struct KeyMakers<K> {
    /// From an HMAC secret.
    pub hmac: fn(&[u8]) -> Result<K, KeyError>,
    /// From the 32 bytes of an Ed25519 key.
    pub ed25519: fn(&[u8]) -> Result<K, KeyError>,
}

impl LoadKey for SigningKey {
    const SIGNS: bool = true;
    const MAKE: KeyMakers<Self> = KeyMakers {
        hmac: SigningKey::hmac,
        ed25519: SigningKey::ed25519_from_seed,
    };
}

impl LoadKey for VerifyingKey {
    const SIGNS: bool = false;
    const MAKE: KeyMakers<Self> = KeyMakers {
        hmac: VerifyingKey::hmac,
        ed25519: VerifyingKey::ed25519,
    };
}

/// A key of `alg` from `src`: a signing key (a server's own, or a
/// client's) or a verifying key.
pub fn load_key<K: LoadKey>(
    alg: Algorithm,
    src: &KeySource,
    base: &Path,
) -> Result<K, KeyLoadError> {
    let key = match alg {
        Algorithm::HmacSha256 => (K::MAKE.hmac)(&src.hmac_secret(base)?),
        Algorithm::Ed25519 => (K::MAKE.ed25519)(&src.hex32(base)?),
    };
    key.map_err(|e| src.key_error(e))
}

/// Fresh random bytes from the operating system; an error, never a
/// fallback, when it fails.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], KeyLoadError> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(KeyLoadError::Random)?;
    Ok(b)
}

/// A freshly generated key and the text of the file that holds it.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The key.
    pub key: SigningKey,
    /// What a key file for it holds (`hex:...` for HMAC, 64 hex digits for
    /// Ed25519), newline-terminated; [`KeySource::File`] reads it back.
    pub file_text: String,
    /// The key's bytes in hex (the HMAC secret, or the Ed25519 seed).
    pub hex: String,
}

/// Generates a key of `alg` from 32 random bytes.
pub fn generate(alg: Algorithm) -> Result<GeneratedKey, KeyLoadError> {
    let bytes: [u8; 32] = random_bytes()?;
    let hex = to_hex(&bytes);
    let generated = |r: Result<SigningKey, KeyError>, file_text: String| {
        r.map(|key| GeneratedKey {
            key,
            file_text,
            hex: hex.clone(),
        })
        .map_err(|source| KeyLoadError::Key {
            source_name: "a generated key".to_owned(),
            source,
        })
    };
    match alg {
        Algorithm::HmacSha256 => generated(SigningKey::hmac(&bytes), format!("hex:{hex}\n")),
        Algorithm::Ed25519 => generated(SigningKey::ed25519_from_seed(&bytes), format!("{hex}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> &'static Path {
        Path::new(".")
    }

    #[test]
    fn file_and_env_rules_match() {
        let dir = std::env::temp_dir().join(format!("lacre-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("k");
        std::fs::write(&f, "hex:00ff\r\n").unwrap();
        let from_file = KeySource::File(f.clone()).hmac_secret(base()).unwrap();
        assert_eq!(from_file, vec![0x00, 0xff]);
        std::fs::write(&f, "plain secret\n\n").unwrap();
        // Only one newline is removed: the secret is the text as written.
        assert_eq!(
            KeySource::File(f.clone()).hmac_secret(base()).unwrap(),
            b"plain secret\n"
        );
        std::fs::write(&f, "").unwrap();
        assert!(matches!(
            KeySource::File(f).hmac_secret(base()),
            Err(KeyLoadError::Invalid { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_sources_are_typed_errors() {
        let missing = KeySource::File(PathBuf::from("/nonexistent/lacre/key"));
        assert!(matches!(
            missing.hmac_secret(base()),
            Err(KeyLoadError::Read { .. })
        ));
        let env = KeySource::Env("LACRE_TEST_SURELY_UNSET_VARIABLE".into());
        assert!(matches!(
            env.hmac_secret(base()),
            Err(KeyLoadError::EnvMissing(_))
        ));
        assert!(matches!(
            KeySource::Hex("zz".into()).hmac_secret(base()),
            Err(KeyLoadError::Invalid { .. })
        ));
    }

    #[test]
    fn generated_keys_read_back_through_their_file_text() {
        for alg in [Algorithm::HmacSha256, Algorithm::Ed25519] {
            let g = generate(alg).unwrap();
            let dir =
                std::env::temp_dir().join(format!("lacre-gen-{}-{alg:?}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let f = dir.join("k");
            std::fs::write(&f, &g.file_text).unwrap();
            let back = load_key::<SigningKey>(alg, &KeySource::File(f), base()).unwrap();
            assert_eq!(back.fingerprint(), g.key.fingerprint());
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn ed25519_keys_are_64_hex_digits() {
        let short = KeySource::Hex("00".repeat(31));
        assert!(load_key::<SigningKey>(Algorithm::Ed25519, &short, base()).is_err());
        let ok = KeySource::Hex(format!(" {} ", "01".repeat(32)));
        assert!(load_key::<SigningKey>(Algorithm::Ed25519, &ok, base()).is_ok());
    }
}
