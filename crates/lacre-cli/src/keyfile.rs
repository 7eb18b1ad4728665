//! Where the command line's keys come from. Every command names key
//! sources the same way and loads them through `lacre_server::keys`, the
//! one loader the server's configuration uses too. Secrets are never taken
//! as plain command-line values: they would show in `ps` and shell history.

use anyhow::{bail, Context, Result};
use lacre_proto::{Algorithm, SigningKey, VerifyingKey};
use lacre_server::keys::{load_key, KeySource, LoadKey};
use std::path::{Path, PathBuf};

/// The environment variable with the client's HMAC secret.
pub const SECRET_ENV: &str = "LACRE_SECRET";
/// The environment variable with the server's HMAC secret.
pub const SERVER_SECRET_ENV: &str = "LACRE_SERVER_SECRET";

/// A key source and the algorithm its key is for.
pub type Named = (Algorithm, KeySource);

/// Loads a signing key ([`SigningKey`]) or a verifying key
/// ([`VerifyingKey`]), saying where it came from on failure.
pub fn load<K: LoadKey>(named: &Named, base: &Path) -> Result<K> {
    load_key(named.0, &named.1, base).with_context(|| format!("key from {}", named.1))
}

/// The HMAC secret in an environment variable, when it is set.
pub fn env_secret(var: &str) -> Option<Named> {
    std::env::var_os(var).map(|_| (Algorithm::HmacSha256, KeySource::Env(var.to_owned())))
}

/// A client key named by flags: `--key-file` (Ed25519), `--secret-file`
/// (HMAC), else the environment variable `LACRE_SECRET`.
pub fn client_key_flags(
    key_file: Option<&PathBuf>,
    secret_file: Option<&PathBuf>,
) -> Option<Named> {
    let ed25519 = key_file.cloned().map(KeySource::File);
    ed25519_or_secret_file(ed25519, secret_file).or_else(|| env_secret(SECRET_ENV))
}

/// The server's verifying key named by flags: `--server-public-key`
/// (Ed25519, hex) or `--server-secret-file` (HMAC).
pub fn server_key_flags(
    public_key: Option<&String>,
    secret_file: Option<&PathBuf>,
) -> Option<Named> {
    ed25519_or_secret_file(public_key.cloned().map(KeySource::Hex), secret_file)
}

/// The Ed25519 key if one is named, else the HMAC secret file if one is.
fn ed25519_or_secret_file(
    ed25519: Option<KeySource>,
    secret_file: Option<&PathBuf>,
) -> Option<Named> {
    let secret = || secret_file.map(|f| (Algorithm::HmacSha256, KeySource::File(f.clone())));
    ed25519.map(|k| (Algorithm::Ed25519, k)).or_else(secret)
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
    pub secret_file: Option<PathBuf>,
    /// File holding the Ed25519 private key (64 hex digits), for `--alg ed25519`.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// Parses an algorithm name for clap.
pub fn parse_alg(s: &str) -> Result<Algorithm, String> {
    s.parse::<Algorithm>().map_err(|e| e.to_string())
}

impl KeyArgs {
    fn source(&self) -> Result<Named> {
        let src = match self.alg {
            Algorithm::HmacSha256 => match &self.secret_file {
                Some(f) => KeySource::File(f.clone()),
                None if std::env::var_os(SECRET_ENV).is_some() => {
                    KeySource::Env(SECRET_ENV.to_owned())
                }
                None => bail!("no key given: use --secret-file FILE or set LACRE_SECRET"),
            },
            Algorithm::Ed25519 => match &self.key_file {
                Some(f) => KeySource::File(f.clone()),
                None => bail!("--alg ed25519 needs --key-file FILE"),
            },
        };
        Ok((self.alg, src))
    }

    /// The signing key these arguments name.
    pub fn signing_key(&self) -> Result<SigningKey> {
        load::<SigningKey>(&self.source()?, Path::new("."))
    }

    /// The verifying key: an Ed25519 public key given in hex, or the HMAC
    /// secret / Ed25519 private key these arguments name.
    pub fn verifying_key(&self, public_key_hex: Option<&str>) -> Result<VerifyingKey> {
        if let Some(hex) = public_key_hex {
            let named = (Algorithm::Ed25519, KeySource::Hex(hex.to_owned()));
            return load::<VerifyingKey>(&named, Path::new(".")).context("--public-key");
        }
        Ok(self.signing_key()?.verifying_key())
    }
}
