//! `lacre serve`'s configuration file (TOML): loading, validation with
//! errors that name the file, the line and the fix, and the embedded
//! default written on first start.

use crate::access::ToolFilter;
use crate::dispatch::Server;
use lacre_proto::{from_hex, to_hex, Algorithm, SigningKey, VerifyingKey};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A configuration problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message)?,
            None => write!(f, "{}: {}", self.file.display(), self.message)?,
        }
        if !self.fix.is_empty() {
            write!(f, "\n  fix: {}", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// How a key is given: exactly one of the sources.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// `hmac-sha256` (default) or `ed25519`.
    pub alg: Option<String>,
    /// HMAC secret as UTF-8 text (raw bytes, as the seed's keys are).
    pub secret: Option<String>,
    /// HMAC secret in hex.
    pub secret_hex: Option<String>,
    /// File holding the HMAC secret (text; `hex:` prefix for hex).
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the HMAC secret.
    pub secret_env: Option<String>,
    /// Ed25519 private key (32-byte seed) in hex.
    pub private_key_hex: Option<String>,
    /// File holding the Ed25519 private key in hex.
    pub private_key_file: Option<PathBuf>,
    /// Ed25519 public key in hex (clients).
    pub public_key_hex: Option<String>,
}

/// One entry of a client's `keys = [...]`: a secret string or a table.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KeyEntry {
    /// An HMAC secret as text.
    Secret(String),
    /// A full key description.
    Spec(KeySpec),
}

/// A `[[clients]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// The `client_id`.
    pub id: String,
    /// `hmac-sha256` (default) or `ed25519`.
    pub alg: Option<String>,
    /// HMAC secret as text.
    pub secret: Option<String>,
    /// HMAC secret in hex.
    pub secret_hex: Option<String>,
    /// File holding the HMAC secret.
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the HMAC secret.
    pub secret_env: Option<String>,
    /// Ed25519 public key in hex.
    pub public_key_hex: Option<String>,
    /// Several active keys (rotation), instead of the single-key fields.
    pub keys: Option<Vec<KeyEntry>>,
    /// Tools this client may call; `["*"]` (the default) for all.
    pub tools: Option<Vec<String>>,
    /// A rate limit: `{ per_second = 50, burst = 100 }` (burst defaults
    /// to `per_second`). No limit when absent.
    pub rate_limit: Option<RateSpec>,
}

/// The `[limits]` table; every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Deepest JSON nesting (default 64).
    pub max_depth: Option<usize>,
    /// Longest JSON string, in bytes (default 262144).
    pub max_string_bytes: Option<usize>,
    /// Most items in one JSON array or object (default 100000).
    pub max_items: Option<usize>,
    /// Time to receive the request headers, ms (default 10000).
    pub header_timeout_ms: Option<u64>,
    /// Time to receive the body, ms (default 10000).
    pub body_timeout_ms: Option<u64>,
    /// Time to answer once the body is read, ms (default 60000; must exceed 30000, the longest long poll).
    pub request_timeout_ms: Option<u64>,
    /// Time an immediate tool may run, ms (default 30000).
    pub tool_timeout_ms: Option<u64>,
    /// Most open connections (default 4096).
    pub max_connections: Option<usize>,
}

/// A client's `rate_limit` table.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSpec {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests that may arrive at once.
    pub burst: Option<f64>,
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// This server's id.
    pub server_id: String,
    /// Address to listen on (default `127.0.0.1:8790`).
    pub listen: Option<String>,
    /// Timestamp window, ± ms (default 300000).
    pub max_skew_ms: Option<u64>,
    /// Request body limit in bytes (default 1 MiB).
    pub body_limit: Option<usize>,
    /// Jobs run at once (default 16).
    pub workers: Option<usize>,
    /// Where jobs, nonces and idempotency records live: `memory`,
    /// `sqlite://PATH` (default `sqlite://lacre.db`, relative to the config
    /// file) or `postgres://...`.
    pub store: Option<String>,
    /// How long a worker's claim on a job lasts without a heartbeat
    /// (default 30000 ms); a job whose worker died is taken over after it.
    pub lease_ms: Option<u64>,
    /// Most requests handled at once; more get `overloaded` (default 1024).
    pub max_in_flight: Option<usize>,
    /// Where `/metrics` is served instead of the main address (an internal
    /// address, e.g. "127.0.0.1:9790"); unset: on the main address.
    pub metrics_listen: Option<String>,
    /// Limits and timeouts.
    #[serde(default)]
    pub limits: LimitsSpec,
    /// The server's own key.
    pub signing: KeySpec,
    /// Who may call.
    #[serde(default)]
    pub clients: Vec<ClientSpec>,
}

/// A client, resolved.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Its id.
    pub id: String,
    /// Its active keys.
    pub keys: Vec<VerifyingKey>,
    /// What it may call.
    pub tools: ToolFilter,
    /// Its rate limit, if any.
    pub rate: Option<crate::limits::Rate>,
}

/// The configuration, resolved and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This server's id.
    pub server_id: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Timestamp window.
    pub max_skew_ms: u64,
    /// Body limit.
    pub body_limit: usize,
    /// Worker count.
    pub workers: usize,
    /// Store URL.
    pub store: String,
    /// Job lease.
    pub lease_ms: u64,
    /// Where `/metrics` is served, if not on the main address.
    pub metrics_listen: Option<SocketAddr>,
    /// JSON parsing limits.
    pub parse_limits: lacre_proto::ParseLimits,
    /// HTTP limits and timeouts.
    pub http: crate::http::HttpConfig,
    /// Immediate tools' time limit.
    pub tool_timeout: std::time::Duration,
    /// Global in-flight limit.
    pub max_in_flight: usize,
    /// The server's key.
    pub signing: SigningKey,
    /// The clients.
    pub clients: Vec<ClientSettings>,
}

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8790";

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |t| t.matches('\n').count() + 1)
}

fn line_containing(text: &str, needle: &str) -> Option<usize> {
    text.find(needle).map(|off| line_of(text, off))
}

struct Ctx<'a> {
    file: &'a Path,
}

impl Ctx<'_> {
    fn err(
        &self,
        line: Option<usize>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            message: message.into(),
            fix: fix.into(),
        }
    }

    fn base_dir(&self) -> PathBuf {
        self.file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    fn read_file(&self, line: Option<usize>, path: &Path) -> Result<Vec<u8>, ConfigError> {
        let full = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir().join(path)
        };
        std::fs::read(&full).map_err(|e| {
            self.err(
                line,
                format!("cannot read {}: {e}", full.display()),
                "check the path (relative paths are relative to the config file)",
            )
        })
    }
}

/// Decodes a secret given as file contents or an environment variable:
/// the raw bytes (as the seed's keys are), one trailing newline removed; a
/// `hex:` prefix means the rest is hex (what `lacre keygen` writes). The
/// CLI reads its secret files with the same rules.
pub fn decode_secret(mut raw: Vec<u8>) -> Result<Vec<u8>, String> {
    if raw.ends_with(b"\n") {
        raw.pop();
        if raw.ends_with(b"\r") {
            raw.pop();
        }
    }
    if let Some(hex) = raw.strip_prefix(b"hex:") {
        let text = std::str::from_utf8(hex).map_err(|_| "hex secret is not text".to_owned())?;
        return from_hex(text.trim()).map_err(|_| "invalid hex after \"hex:\"".to_owned());
    }
    if raw.is_empty() {
        return Err("the secret is empty".to_owned());
    }
    Ok(raw)
}

/// Resolves a key description. `want_private` selects a signing key (the
/// server's own) over a verifying key (a client's).
fn resolve_key(
    ctx: &Ctx,
    line: Option<usize>,
    spec: &KeySpec,
    want_private: bool,
) -> Result<SigningOrVerifying, ConfigError> {
    let alg: Algorithm = spec
        .alg
        .as_deref()
        .unwrap_or("hmac-sha256")
        .parse()
        .map_err(|e: lacre_proto::KeyError| {
            ctx.err(
                line,
                e.to_string(),
                "use alg = \"hmac-sha256\" or alg = \"ed25519\"",
            )
        })?;
    match alg {
        Algorithm::HmacSha256 => {
            let sources = [
                spec.secret.is_some(),
                spec.secret_hex.is_some(),
                spec.secret_file.is_some(),
                spec.secret_env.is_some(),
            ];
            let count = sources.iter().filter(|b| **b).count();
            if count != 1 {
                return Err(ctx.err(
                    line,
                    format!("an hmac-sha256 key needs exactly one of secret, secret_hex, secret_file, secret_env (found {count})"),
                    "keep one key source, e.g. secret_file = \"server.key\"",
                ));
            }
            let bytes = if let Some(s) = &spec.secret {
                s.clone().into_bytes()
            } else if let Some(h) = &spec.secret_hex {
                from_hex(h.trim()).map_err(|_| {
                    ctx.err(
                        line,
                        "secret_hex is not hex",
                        "write the secret as hex digits",
                    )
                })?
            } else if let Some(p) = &spec.secret_file {
                decode_secret(ctx.read_file(line, p)?).map_err(|e| {
                    ctx.err(
                        line,
                        format!("secret file {}: {e}", p.display()),
                        "write hex after \"hex:\"",
                    )
                })?
            } else {
                let var = spec.secret_env.clone().unwrap_or_default();
                let v = std::env::var_os(&var).ok_or_else(|| {
                    ctx.err(
                        line,
                        format!("environment variable {var} is not set"),
                        format!("export {var}=... before starting"),
                    )
                })?;
                decode_secret(v.into_encoded_bytes())
                    .map_err(|e| ctx.err(line, format!("{var}: {e}"), "write hex after \"hex:\""))?
            };
            let key = SigningKey::hmac(&bytes).map_err(|e| {
                ctx.err(
                    line,
                    e.to_string(),
                    "use a secret of at least 32 random bytes",
                )
            })?;
            Ok(if want_private {
                SigningOrVerifying::Signing(key)
            } else {
                SigningOrVerifying::Verifying(key.verifying_key())
            })
        }
        Algorithm::Ed25519 => {
            if want_private {
                let hex = match (&spec.private_key_hex, &spec.private_key_file) {
                    (Some(h), None) => h.clone(),
                    (None, Some(p)) => String::from_utf8_lossy(&ctx.read_file(line, p)?).into_owned(),
                    _ => {
                        return Err(ctx.err(
                            line,
                            "an ed25519 signing key needs exactly one of private_key_hex, private_key_file",
                            "generate one with `lacre keygen --alg ed25519`",
                        ))
                    }
                };
                let seed = from_hex(hex.trim()).map_err(|_| {
                    ctx.err(
                        line,
                        "ed25519 private key is not hex",
                        "write the 32-byte key as 64 hex digits",
                    )
                })?;
                SigningKey::ed25519_from_seed(&seed)
                    .map(SigningOrVerifying::Signing)
                    .map_err(|e| {
                        ctx.err(
                            line,
                            e.to_string(),
                            "write the 32-byte key as 64 hex digits",
                        )
                    })
            } else {
                let hex = spec.public_key_hex.as_deref().ok_or_else(|| {
                    ctx.err(
                        line,
                        "an ed25519 client key needs public_key_hex",
                        "add public_key_hex = \"<64 hex digits>\"",
                    )
                })?;
                let bytes = from_hex(hex.trim()).map_err(|_| {
                    ctx.err(
                        line,
                        "public_key_hex is not hex",
                        "write the 32-byte key as 64 hex digits",
                    )
                })?;
                VerifyingKey::ed25519(&bytes)
                    .map(SigningOrVerifying::Verifying)
                    .map_err(|e| {
                        ctx.err(
                            line,
                            e.to_string(),
                            "write the 32-byte key as 64 hex digits",
                        )
                    })
            }
        }
    }
}

enum SigningOrVerifying {
    Signing(SigningKey),
    Verifying(VerifyingKey),
}

impl Settings {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            message: format!("cannot read: {e}"),
            fix: "check the path, or run `lacre serve` without --config to write a default one"
                .to_owned(),
        })?;
        Settings::parse(path, &text)
    }

    /// Checks configuration text (`path` is used in errors and to resolve
    /// relative key files).
    pub fn parse(path: &Path, text: &str) -> Result<Settings, ConfigError> {
        let ctx = Ctx { file: path };
        let raw: FileConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            ctx.err(
                line,
                e.message().trim().to_owned(),
                "see docs/SPEC.md (configuration) or delete the file to get a fresh default",
            )
        })?;
        let listen_text = raw
            .listen
            .clone()
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ctx.err(
                line_containing(text, "listen"),
                format!("listen = {listen_text:?} is not an address"),
                "write it as \"127.0.0.1:8790\" or \"[::1]:8790\"",
            )
        })?;
        if raw.server_id.is_empty() || raw.server_id.chars().count() > lacre_proto::MAX_ID_CHARS {
            return Err(ctx.err(
                line_containing(text, "server_id"),
                "server_id must be 1 to 128 characters",
                "set server_id = \"my-server\"",
            ));
        }
        let store = raw
            .store
            .clone()
            .unwrap_or_else(|| DEFAULT_STORE.to_owned());
        let store =
            match crate::store::StoreKind::of(&store) {
                Some(crate::store::StoreKind::Sqlite) => resolve_sqlite_path(&store, path),
                Some(_) => store,
                None => return Err(ctx.err(
                    line_containing(text, "store"),
                    format!("store {:?} is not supported", crate::store::redact(&store)),
                    "use store = \"memory\", \"sqlite://lacre.db\" or \"postgres://user@host/db\"",
                )),
            };
        let metrics_listen = match &raw.metrics_listen {
            None => None,
            Some(a) => Some(a.parse::<SocketAddr>().map_err(|_| {
                ctx.err(
                    line_containing(text, "metrics_listen"),
                    format!("metrics_listen = {a:?} is not an address"),
                    "write it as \"127.0.0.1:9790\"",
                )
            })?),
        };
        let l = &raw.limits;
        let limits_line = line_containing(text, "[limits]");
        let request_timeout_ms = l.request_timeout_ms.unwrap_or(60_000);
        if request_timeout_ms <= 30_000 {
            return Err(ctx.err(
                limits_line,
                format!("request_timeout_ms = {request_timeout_ms} would cut long polls short"),
                "use more than 30000 (long polls wait up to 30 s)",
            ));
        }
        let defaults = lacre_proto::ParseLimits::default();
        let parse_limits = lacre_proto::ParseLimits {
            max_depth: l.max_depth.unwrap_or(defaults.max_depth).clamp(2, 1000),
            max_string_bytes: l
                .max_string_bytes
                .unwrap_or(defaults.max_string_bytes)
                .max(256),
            max_items: l.max_items.unwrap_or(defaults.max_items).max(16),
            ..defaults
        };
        let ms = std::time::Duration::from_millis;
        let http = crate::http::HttpConfig {
            body_limit: raw.body_limit.unwrap_or(crate::http::DEFAULT_BODY_LIMIT),
            header_timeout: ms(l.header_timeout_ms.unwrap_or(10_000).max(100)),
            body_timeout: ms(l.body_timeout_ms.unwrap_or(10_000).max(100)),
            request_timeout: ms(request_timeout_ms),
            max_connections: l.max_connections.unwrap_or(4096).max(1),
            metrics: metrics_listen.is_none(),
        };
        let tool_timeout = ms(l.tool_timeout_ms.unwrap_or(30_000).max(1));
        let lease_ms = raw.lease_ms.unwrap_or(30_000);
        if !(100..=3_600_000).contains(&lease_ms) {
            return Err(ctx.err(
                line_containing(text, "lease_ms"),
                format!("lease_ms = {lease_ms} is out of range"),
                "use a lease between 100 and 3600000 ms (default 30000)",
            ));
        }
        let signing_line = line_containing(text, "[signing]");
        let signing = match resolve_key(&ctx, signing_line, &raw.signing, true)? {
            SigningOrVerifying::Signing(k) => k,
            SigningOrVerifying::Verifying(_) => {
                return Err(ctx.err(
                    signing_line,
                    "the server needs a private key",
                    "set [signing] secret or private_key_hex",
                ))
            }
        };
        let mut clients = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for c in &raw.clients {
            let line = line_containing(text, &format!("\"{}\"", c.id))
                .or_else(|| line_containing(text, "[[clients]]"));
            if c.id.is_empty() || c.id.chars().count() > lacre_proto::MAX_ID_CHARS {
                return Err(ctx.err(
                    line,
                    "client id must be 1 to 128 characters",
                    "set id = \"client-001\"",
                ));
            }
            if !seen.insert(c.id.clone()) {
                return Err(ctx.err(
                    line,
                    format!("client {:?} is listed twice", c.id),
                    "merge the two [[clients]] tables",
                ));
            }
            let single = KeySpec {
                alg: c.alg.clone(),
                secret: c.secret.clone(),
                secret_hex: c.secret_hex.clone(),
                secret_file: c.secret_file.clone(),
                secret_env: c.secret_env.clone(),
                public_key_hex: c.public_key_hex.clone(),
                ..KeySpec::default()
            };
            let has_single = single.secret.is_some()
                || single.secret_hex.is_some()
                || single.secret_file.is_some()
                || single.secret_env.is_some()
                || single.public_key_hex.is_some();
            let specs: Vec<KeySpec> = match (&c.keys, has_single) {
                (Some(_), true) => {
                    return Err(ctx.err(
                        line,
                        format!("client {:?} has both keys = [...] and a single key", c.id),
                        "move the single key into the keys list",
                    ))
                }
                // Entries inherit the client's `alg`: a plain string is a
                // secret for hmac-sha256 and a public key for ed25519.
                (Some(list), false) => list
                    .iter()
                    .map(|k| match k {
                        KeyEntry::Secret(s) if c.alg.as_deref() == Some("ed25519") => KeySpec {
                            alg: c.alg.clone(),
                            public_key_hex: Some(s.clone()),
                            ..KeySpec::default()
                        },
                        KeyEntry::Secret(s) => KeySpec {
                            alg: c.alg.clone(),
                            secret: Some(s.clone()),
                            ..KeySpec::default()
                        },
                        KeyEntry::Spec(spec) => KeySpec {
                            alg: spec.alg.clone().or_else(|| c.alg.clone()),
                            ..spec.clone()
                        },
                    })
                    .collect(),
                (None, _) => vec![single],
            };
            if specs.is_empty() || specs.len() > lacre_proto::MAX_KEYS_PER_CLIENT {
                return Err(ctx.err(
                    line,
                    format!(
                        "client {:?} must have 1 to {} active keys",
                        c.id,
                        lacre_proto::MAX_KEYS_PER_CLIENT
                    ),
                    "remove retired keys from the keys list",
                ));
            }
            let mut keys = Vec::new();
            for spec in &specs {
                if let SigningOrVerifying::Verifying(k) = resolve_key(&ctx, line, spec, false)? {
                    keys.push(k);
                }
            }
            let rate = match c.rate_limit {
                None => None,
                Some(r) if r.per_second > 0.0 && r.per_second.is_finite() && r.burst.is_none_or(|b| b >= 1.0) => {
                    Some(crate::limits::Rate {
                        per_second: r.per_second,
                        burst: r.burst.unwrap_or(r.per_second.max(1.0)),
                    })
                }
                Some(_) => {
                    return Err(ctx.err(
                        line,
                        format!("client {:?} has an invalid rate_limit", c.id),
                        "use rate_limit = { per_second = 50, burst = 100 } with per_second > 0 and burst >= 1",
                    ))
                }
            };
            clients.push(ClientSettings {
                id: c.id.clone(),
                keys,
                tools: ToolFilter::from_list(c.tools.as_deref().unwrap_or(&["*".to_owned()])),
                rate,
            });
        }
        Ok(Settings {
            server_id: raw.server_id,
            listen,
            max_skew_ms: raw.max_skew_ms.unwrap_or(lacre_proto::DEFAULT_MAX_SKEW_MS),
            body_limit: raw.body_limit.unwrap_or(crate::http::DEFAULT_BODY_LIMIT),
            workers: raw.workers.unwrap_or(16).max(1),
            store,
            max_in_flight: raw.max_in_flight.unwrap_or(1024).max(1),
            lease_ms,
            metrics_listen,
            parse_limits,
            http,
            tool_timeout,
            signing,
            clients,
        })
    }

    /// A server with these settings, on these stores, with the built-in tools.
    pub fn server(
        &self,
        stores: &crate::store::Stores,
    ) -> Result<Server, lacre_proto::KeyringError> {
        self.server_with(stores, |_| {})
    }

    /// As [`Settings::server`], registering more tools.
    pub fn server_with(
        &self,
        stores: &crate::store::Stores,
        tools: impl FnOnce(&mut crate::tool::Registry),
    ) -> Result<Server, lacre_proto::KeyringError> {
        let mut b = Server::builder(self.server_id.clone(), self.signing.clone())
            .tools(tools)
            .parse_limits(self.parse_limits)
            .tool_timeout(self.tool_timeout)
            .max_skew_ms(self.max_skew_ms)
            .max_in_flight(self.max_in_flight)
            .job_store(stores.jobs.clone())
            .nonce_store(stores.nonces.clone());
        for c in &self.clients {
            b = b.client(&c.id, c.keys.clone(), c.tools.clone())?;
            if let Some(rate) = c.rate {
                b = b.rate_limit(&c.id, rate);
            }
        }
        Ok(b.build())
    }

    /// The worker settings these settings imply: heartbeats at a third of
    /// the lease, lease rescue at half of it (at most every 5 s).
    pub fn worker_config(&self) -> crate::jobs::WorkerConfig {
        let lease = self.lease_ms;
        crate::jobs::WorkerConfig {
            concurrency: self.workers,
            lease_ms: i64::try_from(lease).unwrap_or(30_000),
            heartbeat_ms: (lease / 3).max(10),
            maintenance_interval_ms: (lease / 2).clamp(10, 5_000),
            ..crate::jobs::WorkerConfig::default()
        }
    }
}

/// The store `lacre serve` uses when the configuration names none.
pub const DEFAULT_STORE: &str = "sqlite://lacre.db";

/// Makes a relative SQLite path relative to the configuration file, so the
/// database sits next to its config whatever the working directory.
fn resolve_sqlite_path(url: &str, config: &Path) -> String {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (file, query) = match rest.split_once('?') {
        Some((f, q)) => (f, Some(q)),
        None => (rest, None),
    };
    if file.is_empty() || file.starts_with('/') || file.starts_with(":memory:") {
        return url.to_owned();
    }
    let dir = config.parent().filter(|d| !d.as_os_str().is_empty());
    let full = match dir {
        Some(d) => d.join(file),
        None => PathBuf::from(file),
    };
    let mut out = format!("sqlite://{}", full.display());
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Fresh random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| format!("no randomness available: {e}"))?;
    Ok(b)
}

/// What `lacre serve` writes when there is no configuration: the server
/// config and a matching client profile.
#[derive(Debug, Clone)]
pub struct DefaultFiles {
    /// `lacre.toml`.
    pub server_toml: String,
    /// `lacre-client.toml`, the profile for `lacre call --profile`.
    pub client_toml: String,
    /// The client id.
    pub client_id: String,
    /// The server id.
    pub server_id: String,
}

/// Generates a default configuration with fresh keys: an Ed25519 server key
/// (clients verify replies with its public key and cannot forge them) and
/// one HMAC client with a 32-byte random secret.
pub fn generate_default(listen: &str) -> Result<DefaultFiles, String> {
    let server_seed: [u8; 32] = random_bytes()?;
    let client_secret: [u8; 32] = random_bytes()?;
    let suffix: [u8; 4] = random_bytes()?;
    let server_id = format!("lacre-{}", to_hex(&suffix));
    let client_id = "client-001".to_owned();
    let server_key = SigningKey::ed25519_from_seed(&server_seed).map_err(|e| e.to_string())?;
    let public_hex = server_key
        .verifying_key()
        .ed25519_public_bytes()
        .map(|b| to_hex(&b))
        .unwrap_or_default();
    let server_toml = format!(
        "# lacre server configuration, written by `lacre serve` with fresh random keys.\n\
         # Keep this file private: it holds the server's private key and the clients' secrets.\n\
         server_id = \"{server_id}\"\n\
         listen = \"{listen}\"\n\
         max_skew_ms = 300000\n\
         store = \"sqlite://lacre.db\"\n\
         \n\
         [signing]\n\
         alg = \"ed25519\"\n\
         private_key_hex = \"{}\"\n\
         \n\
         [[clients]]\n\
         id = \"{client_id}\"\n\
         alg = \"hmac-sha256\"\n\
         secret_hex = \"{}\"\n\
         tools = [\"*\"]\n",
        to_hex(&server_seed),
        to_hex(&client_secret)
    );
    let client_toml = format!(
        "# lacre client profile for `lacre call --profile lacre-client.toml`, written by `lacre serve`.\n\
         # Keep this file private: it holds the client's secret.\n\
         url = \"http://{listen}/mcp\"\n\
         client_id = \"{client_id}\"\n\
         server_id = \"{server_id}\"\n\
         secret_hex = \"{}\"\n\
         server_public_key = \"{public_hex}\"\n",
        to_hex(&client_secret)
    );
    Ok(DefaultFiles {
        server_toml,
        client_toml,
        client_id,
        server_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_loads() {
        let text = r#"
server_id = "mcp-server-001"
listen = "127.0.0.1:8790"
max_skew_ms = 300000
[signing]
alg = "hmac-sha256"
secret = "server_secret_key_123"
[[clients]]
id = "client-001"
alg = "hmac-sha256"
secret = "client_secret_key_456"
tools = ["*"]
[[clients]]
id = "rotating"
keys = ["old-secret", { secret_hex = "00ff" }]
tools = ["batch_sum"]
rate_limit = { per_second = 5, burst = 10 }
"#;
        let s = Settings::parse(Path::new("lacre.toml"), text).unwrap();
        assert_eq!(s.server_id, "mcp-server-001");
        assert_eq!(s.clients.len(), 2);
        assert_eq!(s.clients[1].keys.len(), 2);
        assert!(!s.clients[1].tools.allows("start_long_task"));
        assert_eq!(s.clients[1].rate.map(|r| r.burst), Some(10.0));
        assert!(s.clients[0].rate.is_none());
    }

    #[test]
    fn errors_name_file_line_and_fix() {
        let text = "server_id = \"s\"\n[signing]\nsecret = \"x\"\nsecret_hex = \"00\"\n";
        let e = Settings::parse(Path::new("/etc/lacre.toml"), text).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e
            .to_string()
            .starts_with("/etc/lacre.toml:2: an hmac-sha256 key needs exactly one of"));
        assert!(e.to_string().contains("fix:"));
        let bad = "server_id = \"s\"\nlisten = 5\n[signing]\nsecret = \"x\"\n";
        let e = Settings::parse(Path::new("c.toml"), bad).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        let unknown = "server_id = \"s\"\n[signing]\nsecret = \"x\"\nsecrett = \"y\"\n";
        let e = Settings::parse(Path::new("c.toml"), unknown).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
    }

    #[test]
    fn key_lists_inherit_the_client_alg() {
        let pk = SigningKey::ed25519_from_seed(&[1u8; 32])
            .unwrap()
            .verifying_key();
        let pk_hex = to_hex(&pk.ed25519_public_bytes().unwrap());
        let text = format!(
            "server_id = \"s\"\n[signing]\nsecret = \"x\"\n[[clients]]\nid = \"c\"\nalg = \"ed25519\"\nkeys = [\"{pk_hex}\", {{ public_key_hex = \"{pk_hex}\" }}]\n"
        );
        let s = Settings::parse(Path::new("c.toml"), &text).unwrap();
        assert!(s.clients[0]
            .keys
            .iter()
            .all(|k| k.algorithm() == Algorithm::Ed25519));
        assert_eq!(s.clients[0].keys[0].fingerprint(), pk.fingerprint());
    }

    #[test]
    fn default_config_round_trips() {
        let d = generate_default("127.0.0.1:8790").unwrap();
        let s = Settings::parse(Path::new("lacre.toml"), &d.server_toml).unwrap();
        assert_eq!(s.server_id, d.server_id);
        assert_eq!(s.signing.algorithm(), Algorithm::Ed25519);
        assert_eq!(s.clients[0].id, "client-001");
    }
}
