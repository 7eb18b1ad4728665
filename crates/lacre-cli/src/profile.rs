//! Where `lacre call` and friends get their client settings: flags, then
//! environment, then a profile file (TOML). Secrets come only from files
//! and environment variables, never from plain flag values.

use crate::keyfile::{client_key_flags, env_secret, load, server_key_flags, SERVER_SECRET_ENV};
use anyhow::{Context, Result};
use lacre_client::{Client, ServerTrust};
use lacre_proto::{Algorithm, SigningKey, VerifyingKey};
use lacre_server::keys::KeySource;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The profile file `lacre serve` writes next to its config.
pub const DEFAULT_PROFILE: &str = "lacre-client.toml";

/// A profile file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Server URL (`http://host:port/mcp`).
    pub url: Option<String>,
    /// This client's id.
    pub client_id: Option<String>,
    /// The server's id.
    pub server_id: Option<String>,
    /// The client's HMAC secret (text).
    pub secret: Option<String>,
    /// The client's HMAC secret (hex).
    pub secret_hex: Option<String>,
    /// File with the client's HMAC secret.
    pub secret_file: Option<PathBuf>,
    /// File with the client's Ed25519 private key (hex).
    pub key_file: Option<PathBuf>,
    /// The server's HMAC secret (text).
    pub server_secret: Option<String>,
    /// The server's HMAC secret (hex).
    pub server_secret_hex: Option<String>,
    /// File with the server's HMAC secret.
    pub server_secret_file: Option<PathBuf>,
    /// The server's Ed25519 public key (hex).
    pub server_public_key: Option<String>,
    /// The server's key fingerprint (trust on first contact).
    pub server_fingerprint: Option<String>,
}

/// Client flags shared by `call`, `job`, `jobs`, `tools`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Profile file (TOML); default ./lacre-client.toml when it exists.
    #[arg(long, global = true, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Server URL, e.g. http://127.0.0.1:8790/mcp.
    #[arg(long, global = true, env = "LACRE_URL")]
    pub url: Option<String>,
    /// This client's id.
    #[arg(long, global = true, env = "LACRE_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The server's id.
    #[arg(long, global = true, env = "LACRE_SERVER_ID")]
    pub server_id: Option<String>,
    /// File with the client's HMAC secret (else env LACRE_SECRET).
    #[arg(long, global = true, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// File with the client's Ed25519 private key (64 hex digits).
    #[arg(long, global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// File with the server's HMAC secret (else env LACRE_SERVER_SECRET).
    #[arg(long, global = true, value_name = "FILE")]
    pub server_secret_file: Option<PathBuf>,
    /// The server's Ed25519 public key (64 hex digits).
    #[arg(long, global = true, value_name = "HEX")]
    pub server_public_key: Option<String>,
    /// The server's key fingerprint: trust the Ed25519 key published at
    /// /.well-known/lacre.json if it has this fingerprint.
    #[arg(long, global = true, value_name = "HEX")]
    pub server_fingerprint: Option<String>,
    /// Timeout of one HTTP attempt, in seconds.
    #[arg(long, global = true, default_value_t = 30)]
    pub timeout: u64,
}

/// A missing setting is a usage error (exit code 2), like a bad flag.
fn usage(msg: &str) -> anyhow::Error {
    anyhow::Error::new(lacre_client::ClientError::Usage(msg.to_owned()))
}

impl ClientArgs {
    fn load_profile(&self) -> Result<(Profile, PathBuf)> {
        let path = match &self.profile {
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from(DEFAULT_PROFILE)).filter(|p| p.exists()),
        };
        let Some(path) = path else {
            return Ok((Profile::default(), PathBuf::from(".")));
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read profile {}", path.display()))?;
        let profile: Profile =
            toml::from_str(&text).with_context(|| format!("profile {}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok((profile, base))
    }

    fn client_key(&self, p: &Profile, base: &Path) -> Result<SigningKey> {
        // Flags and the environment first, then the profile.
        if let Some(named) = client_key_flags(self.key_file.as_ref(), self.secret_file.as_ref()) {
            return load::<SigningKey>(&named, Path::new("."));
        }
        let from_profile = p
            .key_file
            .clone()
            .map(|f| (Algorithm::Ed25519, KeySource::File(f)))
            .or_else(|| {
                p.secret
                    .clone()
                    .map(|s| (Algorithm::HmacSha256, KeySource::Inline(s)))
            })
            .or_else(|| {
                p.secret_hex
                    .clone()
                    .map(|h| (Algorithm::HmacSha256, KeySource::Hex(h)))
            })
            .or_else(|| {
                p.secret_file
                    .clone()
                    .map(|f| (Algorithm::HmacSha256, KeySource::File(f)))
            });
        match from_profile {
            Some(named) => load::<SigningKey>(&named, base).context("profile"),
            None => Err(usage(
                "no client key: use --secret-file, LACRE_SECRET, --key-file or a profile",
            )),
        }
    }

    fn trust(&self, p: &Profile, base: &Path) -> Result<ServerTrust> {
        let hmac = |src: KeySource| (Algorithm::HmacSha256, src);
        let ed = |hex: &String| (Algorithm::Ed25519, KeySource::Hex(hex.clone()));
        let from_flags = server_key_flags(
            self.server_public_key.as_ref(),
            self.server_secret_file.as_ref(),
        )
        .or_else(|| env_secret(SERVER_SECRET_ENV));
        if let Some(named) = from_flags {
            return Ok(ServerTrust::Key(load::<VerifyingKey>(
                &named,
                Path::new("."),
            )?));
        }
        if let Some(fp) = &self.server_fingerprint {
            return Ok(ServerTrust::Fingerprint(fp.clone()));
        }
        let from_profile = p
            .server_public_key
            .as_ref()
            .map(ed)
            .or_else(|| p.server_secret.clone().map(|s| hmac(KeySource::Inline(s))))
            .or_else(|| p.server_secret_hex.clone().map(|h| hmac(KeySource::Hex(h))))
            .or_else(|| {
                p.server_secret_file
                    .clone()
                    .map(|f| hmac(KeySource::File(f)))
            });
        if let Some(named) = from_profile {
            return Ok(ServerTrust::Key(
                load::<VerifyingKey>(&named, base).context("profile")?,
            ));
        }
        if let Some(fp) = &p.server_fingerprint {
            return Ok(ServerTrust::Fingerprint(fp.clone()));
        }
        Err(usage("no way to verify the server's replies: use --server-secret-file, LACRE_SERVER_SECRET, --server-public-key, --server-fingerprint or a profile"))
    }

    /// Builds the client these flags describe.
    pub fn client(&self) -> Result<Client> {
        let (p, base) = self.load_profile()?;
        let url = self
            .url
            .clone()
            .or(p.url.clone())
            .ok_or_else(|| usage("no server URL: use --url, LACRE_URL or a profile"))?;
        let client_id = self
            .client_id
            .clone()
            .or(p.client_id.clone())
            .ok_or_else(|| usage("no client id: use --client-id or a profile"))?;
        let server_id = self
            .server_id
            .clone()
            .or(p.server_id.clone())
            .ok_or_else(|| usage("no server id: use --server-id or a profile"))?;
        let key = self.client_key(&p, &base)?;
        let trust = self.trust(&p, &base)?;
        Ok(Client::builder(&url, &client_id, &server_id)
            .key(key)
            .trust(trust)
            .call_timeout(std::time::Duration::from_secs(self.timeout.max(1)))
            .build()?)
    }
}
