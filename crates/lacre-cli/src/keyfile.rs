//! Loading keys from files and the environment. Secrets are never taken as
//! plain command-line values: they would show in `ps` and shell history.

use anyhow::{bail, Context, Result};
use lacre_proto::{from_hex, Algorithm, SigningKey, VerifyingKey};
use std::path::Path;

/// Reads a secret file: its text is the secret's raw bytes (as the seed's
/// keys are), one trailing newline removed; a `hex:` prefix means the rest
/// is hex (what `lacre keygen` writes for random keys).
pub fn read_secret_file(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path)
        .with_context(|| format!("cannot read secret file {}", path.display()))?;
    decode_secret(raw).with_context(|| format!("secret file {}", path.display()))
}

/// Decodes a secret given as text (file contents or environment variable),
/// with the same rules as the server's configuration.
pub fn decode_secret(raw: Vec<u8>) -> Result<Vec<u8>> {
    lacre_server::config::decode_secret(raw).map_err(anyhow::Error::msg)
}

/// Reads an Ed25519 private key file: 64 hex digits (the 32-byte seed).
pub fn read_ed25519_key_file(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let seed = from_hex(text.trim())
        .with_context(|| format!("key file {} must hold 64 hex digits", path.display()))?;
    SigningKey::ed25519_from_seed(&seed).with_context(|| format!("key file {}", path.display()))
}

/// Where a signing key comes from on the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyArgs {
    /// Signature algorithm of the key.
    #[arg(long, default_value = "hmac-sha256", value_parser = parse_alg)]
    pub alg: Algorithm,
    /// File holding the HMAC secret (raw text, or `hex:` followed by hex).
    /// Without it, the environment variable LACRE_SECRET is used.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<std::path::PathBuf>,
    /// File holding the Ed25519 private key (64 hex digits), for `--alg ed25519`.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<std::path::PathBuf>,
}

/// Parses an algorithm name for clap.
pub fn parse_alg(s: &str) -> Result<Algorithm, String> {
    s.parse::<Algorithm>().map_err(|e| e.to_string())
}

fn hmac_secret(args: &KeyArgs) -> Result<Vec<u8>> {
    match &args.secret_file {
        Some(path) => read_secret_file(path),
        None => match std::env::var_os("LACRE_SECRET") {
            Some(v) => decode_secret(v.into_encoded_bytes()).context("LACRE_SECRET"),
            None => bail!("no key given: use --secret-file FILE or set LACRE_SECRET"),
        },
    }
}

impl KeyArgs {
    /// The signing key these arguments name.
    pub fn signing_key(&self) -> Result<SigningKey> {
        match self.alg {
            Algorithm::HmacSha256 => Ok(SigningKey::hmac(&hmac_secret(self)?)?),
            Algorithm::Ed25519 => match &self.key_file {
                Some(path) => read_ed25519_key_file(path),
                None => bail!("--alg ed25519 needs --key-file FILE"),
            },
        }
    }

    /// The verifying key: an Ed25519 public key given in hex, or the HMAC
    /// secret / Ed25519 private key these arguments name.
    pub fn verifying_key(&self, public_key_hex: Option<&str>) -> Result<VerifyingKey> {
        if let Some(hex) = public_key_hex {
            let bytes = from_hex(hex.trim()).context("--public-key must be 64 hex digits")?;
            return Ok(VerifyingKey::ed25519(&bytes)?);
        }
        Ok(self.signing_key()?.verifying_key())
    }
}
