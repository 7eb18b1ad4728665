//! Validation: the file as written becomes [`Settings`], every value
//! checked, every default applied, every error located.

use super::defaults::*;
use super::file::{ClientSpec, FileConfig, KeyEntry, KeySpec};
use super::{keys, ConfigError, Ctx};
use crate::access::ToolFilter;
use crate::limits::Rate;
use lacre_proto::{SigningKey, VerifyingKey};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

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
    pub rate: Option<Rate>,
    /// Its own limits.
    pub limits: crate::limits::ClientLimits,
    /// Where it is told that its jobs ended, if anywhere.
    pub webhook: Option<crate::webhooks::Endpoint>,
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
    /// Allowance between replicas' clocks.
    pub replica_skew_ms: u64,
    /// Where `/metrics` is served, if not on the main address.
    pub metrics_listen: Option<SocketAddr>,
    /// JSON parsing limits.
    pub parse_limits: lacre_proto::ParseLimits,
    /// HTTP limits and timeouts.
    pub http: crate::http::HttpConfig,
    /// Immediate tools' time limit.
    pub tool_timeout: Duration,
    /// Global in-flight limit.
    pub max_in_flight: usize,
    /// The server's key.
    pub signing: SigningKey,
    /// The clients.
    pub clients: Vec<ClientSettings>,
    /// Commands offered as tools (`[[tools]]`).
    pub command_tools: Vec<super::upstreams::CommandTool>,
    /// MCP servers whose tools are offered (`[[mcp_servers]]`).
    pub mcp_servers: Vec<super::upstreams::McpServer>,
    /// How webhooks are delivered (`[webhooks]`).
    pub webhooks: crate::webhooks::WebhookSettings,
    /// The audit log, when enabled (`[audit]`).
    pub audit: Option<crate::audit::AuditSettings>,
    /// Where nonces are kept (`[nonces]`).
    pub nonces: NonceSettings,
}

/// Where replay protection keeps its nonces (`[nonces]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceSettings {
    /// `journal` as written: `None` means "with a SQLite file".
    pub journal: Option<bool>,
    /// Wait for `fdatasync` before each request runs (group commit).
    pub fsync: bool,
}

impl NonceSettings {
    /// With the store `url`: `Some(fsync)` if nonces go to a journal
    /// beside its SQLite file, `None` if the store keeps them itself.
    pub fn journal_for(&self, url: &str) -> Option<bool> {
        (self.journal != Some(false) && crate::store::journal_dir(url).is_some())
            .then_some(self.fsync)
    }
}

fn address(
    ctx: &Ctx,
    value: &Spanned<String>,
    name: &str,
    example: &str,
) -> Result<SocketAddr, ConfigError> {
    value.get_ref().parse().map_err(|_| {
        ctx.err(
            Some(ctx.line_of(value.span().start)),
            format!("{name} = {:?} is not an address", value.get_ref()),
            format!("write it as \"{example}\""),
        )
    })
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
        let ctx = Ctx { file: path, text };
        let raw: FileConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| ctx.line_of(s.start));
            ctx.err(
                line,
                e.message().trim().to_owned(),
                "see docs/SPEC.md (configuration) or delete the file to get a fresh default",
            )
        })?;
        let listen = match &raw.listen {
            Some(l) => address(&ctx, l, "listen", "127.0.0.1:8790\" or \"[::1]:8790")?,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| ctx.err(None, "internal: default listen address", ""))?,
        };
        let server_id = raw.server_id.get_ref();
        if server_id.is_empty() || server_id.chars().count() > lacre_proto::MAX_ID_CHARS {
            return Err(ctx.err(
                Some(ctx.line_of(raw.server_id.span().start)),
                "server_id must be 1 to 128 characters",
                "set server_id = \"my-server\"",
            ));
        }
        let store = store_url(&ctx, &raw)?;
        let metrics_listen = match &raw.metrics_listen {
            None => None,
            Some(a) => Some(address(&ctx, a, "metrics_listen", "127.0.0.1:9790")?),
        };
        let l = &raw.limits;
        let request_timeout_ms = l
            .request_timeout_ms
            .as_ref()
            .map_or(DEFAULT_REQUEST_TIMEOUT_MS, |v| *v.get_ref());
        if request_timeout_ms <= 30_000 {
            return Err(ctx.err(
                l.request_timeout_ms
                    .as_ref()
                    .map(|v| ctx.line_of(v.span().start)),
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
        let ms = Duration::from_millis;
        let body_limit = raw.body_limit.unwrap_or(crate::http::DEFAULT_BODY_LIMIT);
        let http = crate::http::HttpConfig {
            body_limit,
            header_timeout: ms(l
                .header_timeout_ms
                .unwrap_or(DEFAULT_HEADER_TIMEOUT_MS)
                .max(100)),
            body_timeout: ms(l
                .body_timeout_ms
                .unwrap_or(DEFAULT_BODY_TIMEOUT_MS)
                .max(100)),
            request_timeout: ms(request_timeout_ms),
            max_connections: l.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS).max(1),
            body_budget: l
                .body_budget_bytes
                .unwrap_or(crate::http::DEFAULT_BODY_BUDGET)
                .max(body_limit),
            metrics: metrics_listen.is_none(),
        };
        let tool_timeout = ms(l.tool_timeout_ms.unwrap_or(DEFAULT_TOOL_TIMEOUT_MS).max(1));
        let lease_ms = raw
            .lease_ms
            .as_ref()
            .map_or(DEFAULT_LEASE_MS, |v| *v.get_ref());
        if !(100..=3_600_000).contains(&lease_ms) {
            return Err(ctx.err(
                raw.lease_ms.as_ref().map(|v| ctx.line_of(v.span().start)),
                format!("lease_ms = {lease_ms} is out of range"),
                "use a lease between 100 and 3600000 ms (default 30000)",
            ));
        }
        if let Some(w) = raw.workers.as_ref().filter(|w| *w.get_ref() == 0) {
            return Err(ctx.err(
                Some(ctx.line_of(w.span().start)),
                "workers = 0 would run no job: long-running tools would stay queued",
                "use workers = 1 or more (default 16)",
            ));
        }
        let signing_line = Some(ctx.line_of(raw.signing.span().start));
        let signing = keys::key::<SigningKey>(&ctx, signing_line, raw.signing.get_ref())?;
        let mut clients = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let default_limits = raw
            .client_limits
            .over(crate::limits::ClientLimits::default());
        for c in &raw.clients {
            let client = client(&ctx, c, default_limits)?;
            if !seen.insert(client.id.clone()) {
                return Err(ctx.err(
                    Some(ctx.line_of(c.id.span().start)),
                    format!("client {:?} is listed twice", client.id),
                    "merge the two [[clients]] tables",
                ));
            }
            clients.push(client);
        }
        use super::upstreams::{command_tool, each_named, mcp_server, MCP_SERVERS, TOOLS};
        let command_tools = each_named(&ctx, &raw.tools, TOOLS, |t| &t.name, command_tool)?;
        let mcp_servers = each_named(&ctx, &raw.mcp_servers, MCP_SERVERS, |m| &m.name, mcp_server)?;
        let webhooks = super::webhooks::settings(&ctx, &raw.webhooks)?;
        let audit = match (raw.audit.enabled, &raw.audit.retention_days) {
            (_, Some(d)) if *d.get_ref() == 0 => {
                return Err(ctx.err(
                    Some(ctx.line_of(d.span().start)),
                    "retention_days = 0 would delete every entry",
                    "keep entries 1 day or more (default 30)",
                ))
            }
            (Some(true), days) => Some(crate::audit::AuditSettings {
                retention_days: days.as_ref().map_or(30, |d| *d.get_ref()),
            }),
            _ => None,
        };
        let nonces = nonce_settings(&ctx, &raw, &store)?;
        Ok(Settings {
            server_id: server_id.clone(),
            listen,
            max_skew_ms: raw.max_skew_ms.unwrap_or(lacre_proto::DEFAULT_MAX_SKEW_MS),
            body_limit,
            workers: raw
                .workers
                .as_ref()
                .map_or(DEFAULT_WORKERS, |w| *w.get_ref()),
            store,
            max_in_flight: raw.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT).max(1),
            lease_ms,
            replica_skew_ms: raw.replica_skew_ms.unwrap_or(DEFAULT_REPLICA_SKEW_MS),
            metrics_listen,
            parse_limits,
            http,
            tool_timeout,
            signing,
            clients,
            command_tools,
            mcp_servers,
            webhooks,
            audit,
            nonces,
        })
    }
}

/// `[nonces]`: a journal by default with a SQLite file, refused elsewhere
/// (PostgreSQL replicas must share their nonces; memory keeps nothing).
fn nonce_settings(ctx: &Ctx, raw: &FileConfig, store: &str) -> Result<NonceSettings, ConfigError> {
    let spec = &raw.nonces;
    let settings = NonceSettings {
        journal: spec.journal.as_ref().map(|j| *j.get_ref()),
        fsync: spec.fsync.as_ref().is_some_and(|f| *f.get_ref()),
    };
    let at = |v: &Spanned<bool>| Some(ctx.line_of(v.span().start));
    match (&spec.journal, &spec.fsync, settings.journal_for(store)) {
        (Some(j), _, None) if *j.get_ref() => Err(ctx.err(
            at(j),
            "a nonce journal needs a SQLite database file as the store",
            "remove journal = true: PostgreSQL replicas share their nonces in the database",
        )),
        (_, Some(f), None) if *f.get_ref() => Err(ctx.err(
            at(f),
            "fsync = true applies to a nonce journal, and this store has none",
            "remove fsync, or use a SQLite store with the journal on",
        )),
        _ => Ok(settings),
    }
}

/// The store URL: `store`, `store_env` or `store_file` (at most one),
/// checked, with a relative SQLite path made relative to the config file.
fn store_url(ctx: &Ctx, raw: &FileConfig) -> Result<String, ConfigError> {
    let line = |span: std::ops::Range<usize>| Some(ctx.line_of(span.start));
    let given = [
        raw.store.as_ref().map(|s| line(s.span())),
        raw.store_env.as_ref().map(|s| line(s.span())),
        raw.store_file.as_ref().map(|s| line(s.span())),
    ];
    if given.iter().flatten().count() > 1 {
        return Err(ctx.err(
            given.iter().flatten().nth(1).copied().flatten(),
            "give the store as one of store, store_env, store_file",
            "keep one of them",
        ));
    }
    let (url, at) = if let Some(s) = &raw.store {
        (s.get_ref().clone(), line(s.span()))
    } else if let Some(var) = &raw.store_env {
        let value = ctx.env_value(var, "postgres://...")?;
        (value.trim().to_owned(), line(var.span()))
    } else if let Some(file) = &raw.store_file {
        (ctx.file_text(file)?.trim().to_owned(), line(file.span()))
    } else {
        (DEFAULT_STORE.to_owned(), None)
    };
    match crate::store::StoreKind::of(&url) {
        Some(crate::store::StoreKind::Sqlite) => Ok(super::resolve_sqlite_path(&url, ctx.file)),
        Some(_) => Ok(url),
        None => Err(ctx.err(
            at,
            format!("store {:?} is not supported", crate::store::redact(&url)),
            "use store = \"memory\", \"sqlite://lacre.db\" or \"postgres://user@host/db\"",
        )),
    }
}

/// One `[[clients]]` table, resolved.
fn client(
    ctx: &Ctx,
    c: &ClientSpec,
    default_limits: crate::limits::ClientLimits,
) -> Result<ClientSettings, ConfigError> {
    let id = c.id.get_ref();
    let line = Some(ctx.line_of(c.id.span().start));
    if id.is_empty() || id.chars().count() > lacre_proto::MAX_ID_CHARS {
        return Err(ctx.err(
            line,
            "client id must be 1 to 128 characters",
            "set id = \"client-001\"",
        ));
    }
    let specs: Vec<KeySpec> = match (&c.keys, c.single_key()) {
        (Some(_), Some(_)) => {
            return Err(ctx.err(
                line,
                format!("client {id:?} has both keys = [...] and a single key"),
                "move the single key into the keys list",
            ))
        }
        // Entries inherit the client's `alg`: a plain string is a secret
        // for hmac-sha256 and a public key for ed25519.
        (Some(list), None) => list
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
        (None, Some(single)) => vec![single],
        // No key at all: let the resolver say which fields are missing.
        (None, None) => vec![KeySpec {
            alg: c.alg.clone(),
            ..KeySpec::default()
        }],
    };
    if specs.is_empty() || specs.len() > lacre_proto::MAX_KEYS_PER_CLIENT {
        return Err(ctx.err(
            line,
            format!(
                "client {id:?} must have 1 to {} active keys",
                lacre_proto::MAX_KEYS_PER_CLIENT
            ),
            "remove retired keys from the keys list",
        ));
    }
    let keys = specs
        .iter()
        .map(|spec| keys::key::<VerifyingKey>(ctx, line, spec))
        .collect::<Result<Vec<_>, _>>()?;
    let rate = match c.rate_limit {
        None => None,
        Some(r)
            if r.per_second > 0.0
                && r.per_second.is_finite()
                && r.burst.is_none_or(|b| b >= 1.0) =>
        {
            Some(Rate {
                per_second: r.per_second,
                burst: r.burst.unwrap_or(r.per_second.max(1.0)),
            })
        }
        Some(_) => return Err(ctx.err(
            line,
            format!("client {id:?} has an invalid rate_limit"),
            "use rate_limit = { per_second = 50, burst = 100 } with per_second > 0 and burst >= 1",
        )),
    };
    Ok(ClientSettings {
        id: id.clone(),
        keys,
        tools: ToolFilter::from_list(c.tools.as_deref().unwrap_or(&["*".to_owned()])),
        rate,
        limits: c.limits.unwrap_or_default().over(default_limits),
        webhook: super::webhooks::endpoint(ctx, c)?,
    })
}
