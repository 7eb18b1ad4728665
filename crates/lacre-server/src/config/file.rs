//! The configuration file's schema, as written (TOML). Fields whose errors
//! name a line are `Spanned`, so an error points at the value itself.

use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

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
    /// An HMAC secret as text (an Ed25519 public key for `alg = "ed25519"`).
    Secret(String),
    /// A full key description.
    Spec(KeySpec),
}

impl ClientSpec {
    /// The single-key fields, as a key description.
    pub fn single_key(&self) -> Option<KeySpec> {
        let spec = KeySpec {
            alg: self.alg.clone(),
            secret: self.secret.clone(),
            secret_hex: self.secret_hex.clone(),
            secret_file: self.secret_file.clone(),
            secret_env: self.secret_env.clone(),
            public_key_hex: self.public_key_hex.clone(),
            ..KeySpec::default()
        };
        spec.has_source().then_some(spec)
    }
}

impl KeySpec {
    /// Whether any key source is given.
    pub fn has_source(&self) -> bool {
        self.sources().iter().any(|(_, given)| *given)
    }

    /// Every source field, by name, and whether it is given.
    pub fn sources(&self) -> [(&'static str, bool); 7] {
        [
            ("secret", self.secret.is_some()),
            ("secret_hex", self.secret_hex.is_some()),
            ("secret_file", self.secret_file.is_some()),
            ("secret_env", self.secret_env.is_some()),
            ("private_key_hex", self.private_key_hex.is_some()),
            ("private_key_file", self.private_key_file.is_some()),
            ("public_key_hex", self.public_key_hex.is_some()),
        ]
    }
}

/// A `[[clients]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// The `client_id`.
    pub id: Spanned<String>,
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
    /// This client's own limits (each field defaults to `[client_limits]`).
    pub limits: Option<ClientLimitsSpec>,
    /// Where this client is told that its jobs ended (SPEC §9.6).
    pub webhook_url: Option<Spanned<String>>,
    /// The endpoint's `whsec_` secret, inline ...
    pub webhook_secret: Option<Spanned<String>>,
    /// ... from this environment variable ...
    pub webhook_secret_env: Option<Spanned<String>>,
    /// ... or from this file (relative to the configuration file).
    pub webhook_secret_file: Option<Spanned<PathBuf>>,
    /// The events sent (default `["job.done", "job.failed", "job.cancelled"]`).
    pub webhook_events: Option<Spanned<Vec<String>>>,
}

/// The `[webhooks]` table: how every client's webhooks are delivered.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksSpec {
    /// Allow loopback, private and link-local targets (default false).
    pub allow_private_targets: Option<bool>,
    /// Time one attempt may take, ms (default 15000).
    pub timeout_ms: Option<Spanned<u64>>,
    /// Delays before each attempt, the first "0s" (default "0s", "5s",
    /// "5m", "30m", "2h", "5h", "10h", "14h", "20h", "24h").
    pub schedule: Option<Spanned<Vec<String>>>,
    /// Deliveries sent at once by each replica (default 8).
    pub concurrency: Option<Spanned<usize>>,
}

/// Per-client limits: `[client_limits]` (the defaults of every client) or
/// a client's `limits = { ... }`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientLimitsSpec {
    /// Requests handled at once (default 64; long polls not counted).
    pub max_in_flight: Option<usize>,
    /// Long polls waiting at once (default 64).
    pub max_long_polls: Option<usize>,
    /// Queued + running jobs (default 1000).
    pub max_jobs: Option<u64>,
    /// Bytes of arguments of queued + running jobs (default 67108864).
    pub max_job_bytes: Option<u64>,
}

impl ClientLimitsSpec {
    /// These limits over `base`.
    pub fn over(self, base: crate::limits::ClientLimits) -> crate::limits::ClientLimits {
        crate::limits::ClientLimits {
            max_in_flight: self.max_in_flight.unwrap_or(base.max_in_flight).max(1),
            max_long_polls: self.max_long_polls.unwrap_or(base.max_long_polls).max(1),
            max_jobs: self.max_jobs.unwrap_or(base.max_jobs).max(1),
            max_job_bytes: self.max_job_bytes.unwrap_or(base.max_job_bytes),
        }
    }
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
    pub request_timeout_ms: Option<Spanned<u64>>,
    /// Time an immediate tool may run, ms (default 30000).
    pub tool_timeout_ms: Option<u64>,
    /// Most open connections (default 4096).
    pub max_connections: Option<usize>,
    /// Most bytes of request bodies held at once (default 67108864); more
    /// get `overloaded` before their bodies are read.
    pub body_budget_bytes: Option<usize>,
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
    pub server_id: Spanned<String>,
    /// Address to listen on (default `127.0.0.1:8790`).
    pub listen: Option<Spanned<String>>,
    /// Timestamp window, ± ms (default 300000).
    pub max_skew_ms: Option<u64>,
    /// Request body limit in bytes (default 1 MiB).
    pub body_limit: Option<usize>,
    /// Jobs run at once (default 16).
    pub workers: Option<Spanned<usize>>,
    /// Where jobs, nonces and idempotency records live: `memory`,
    /// `sqlite://PATH` (default `sqlite://lacre.db`, relative to the config
    /// file) or `postgres://...`.
    pub store: Option<Spanned<String>>,
    /// The store URL from this environment variable instead (keeps a
    /// database password out of the file and of `ps`).
    pub store_env: Option<Spanned<String>>,
    /// The store URL from this file instead (relative to the config file).
    pub store_file: Option<Spanned<PathBuf>>,
    /// How long a worker's claim on a job lasts without a heartbeat
    /// (default 30000 ms); a job whose worker died is taken over after it.
    pub lease_ms: Option<Spanned<u64>>,
    /// Most requests handled at once; more get `overloaded` (default 1024).
    pub max_in_flight: Option<usize>,
    /// How far apart replicas' clocks may be, ms (default 60000): shared
    /// nonce and idempotency records are pruned only this long after they
    /// expire, so a replica ahead cannot delete what one behind still needs.
    pub replica_skew_ms: Option<u64>,
    /// Where `/metrics` is served instead of the main address (an internal
    /// address, e.g. "127.0.0.1:9790"); unset: on the main address.
    pub metrics_listen: Option<Spanned<String>>,
    /// Limits and timeouts.
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Every client's own limits, unless its table says otherwise.
    #[serde(default)]
    pub client_limits: ClientLimitsSpec,
    /// The server's own key.
    pub signing: Spanned<KeySpec>,
    /// Who may call.
    #[serde(default)]
    pub clients: Vec<ClientSpec>,
    /// Commands offered as tools (`[[tools]]`).
    #[serde(default)]
    pub tools: Vec<CommandToolSpec>,
    /// MCP servers whose tools are offered (`[[mcp_servers]]`).
    #[serde(default)]
    pub mcp_servers: Vec<McpServerSpec>,
    /// How webhooks are delivered.
    #[serde(default)]
    pub webhooks: WebhooksSpec,
    /// The audit log.
    #[serde(default)]
    pub audit: AuditSpec,
    /// Where replay protection keeps its nonces.
    #[serde(default)]
    pub nonces: NoncesSpec,
}

/// The `[nonces]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoncesSpec {
    /// With a SQLite store: keep nonces in a journal beside the database
    /// (`<file>-nonces`) instead of in its table (default true). Must not
    /// be true with another store.
    pub journal: Option<Spanned<bool>>,
    /// Wait for `fdatasync` before a request runs, so its nonce survives a
    /// power loss, not only a crash of the process (default false).
    pub fsync: Option<Spanned<bool>>,
}

/// The `[audit]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSpec {
    /// Append every authenticated request and its reply to the store's
    /// audit log (default false).
    pub enabled: Option<bool>,
    /// How long entries are kept, days (default 30).
    pub retention_days: Option<Spanned<u32>>,
}

/// A `[[tools]]` table: a command offered as a tool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandToolSpec {
    /// The tool's name.
    pub name: Spanned<String>,
    /// What it does (shown by `server_identity`).
    pub description: Option<String>,
    /// The program and its arguments; a relative program path is taken
    /// from the configuration file's directory, which is also the working
    /// directory.
    pub command: Spanned<Vec<String>>,
    /// JSON Schema of the argument object, inline.
    pub args_schema: Option<Spanned<toml::Value>>,
    /// JSON Schema of the argument object, from a JSON file (relative to
    /// the configuration file).
    pub args_schema_file: Option<Spanned<PathBuf>>,
    /// Run as a job (`accepted` at once) instead of answering at once.
    pub long_running: Option<bool>,
    /// Time the command may run, ms (default 30000 immediate, 3600000 jobs).
    pub timeout_ms: Option<u64>,
    /// Most bytes the command may print on stdout (default 1048576).
    pub max_output_bytes: Option<usize>,
    /// The command's environment, besides PATH and HOME.
    pub env: Option<std::collections::BTreeMap<String, String>>,
    /// Pass the server's whole environment on (default false: it may hold
    /// the server's secrets).
    pub inherit_env: Option<bool>,
}

/// A `[[mcp_servers]]` table: an MCP server whose tools are offered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerSpec {
    /// The upstream's name (logs, metrics, the default prefix).
    pub name: Spanned<String>,
    /// A child process speaking MCP on stdio: the program and its arguments.
    pub command: Option<Spanned<Vec<String>>>,
    /// A Streamable HTTP endpoint.
    pub url: Option<Spanned<String>>,
    /// HTTP headers whose values are read from environment variables
    /// (`{ Authorization = "REMOTE_MCP_TOKEN" }`).
    pub headers_env: Option<std::collections::BTreeMap<String, String>>,
    /// The child's environment, besides PATH and HOME.
    pub env: Option<std::collections::BTreeMap<String, String>>,
    /// Pass the server's whole environment on (default false).
    pub inherit_env: Option<bool>,
    /// Upstream tools (names or patterns) that run as jobs.
    pub long_running: Option<Vec<String>>,
    /// Prepended to every upstream tool's name (default `name` + "_").
    pub prefix: Option<String>,
    /// Which upstream tools to offer (names or patterns; default all).
    pub tools: Option<Vec<String>>,
    /// Time an immediate call may take, ms (default 30000).
    pub call_timeout_ms: Option<u64>,
    /// Whether a job whose worker or upstream was lost runs again:
    /// `"idempotent"` (default: only tools annotated idempotent or
    /// read-only), `"always"` or `"never"`.
    pub retry_on_lost_worker: Option<Spanned<String>>,
}
