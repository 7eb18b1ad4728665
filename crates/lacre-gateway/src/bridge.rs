//! `lacre mcp`: a stdio MCP server (rmcp, server side) in front of one
//! lacre server, so that any MCP host calls lacre tools — each call signed
//! with the user's key before it leaves the machine, each reply verified
//! before the host sees it.
//!
//! - `tools/list`: the lacre server's tools (from a verified
//!   `server_identity`, cached for [`TOOLS_TTL`]), their `args_schema` as
//!   `inputSchema`, plus `lacre_poll_job`, `lacre_cancel_job` and
//!   `lacre_list_jobs`. Names MCP hosts would refuse are mapped
//!   ([`mcp_name`]).
//! - `tools/call` of an immediate tool: one signed call; the verified
//!   result as `structuredContent` and as JSON text. A signed lacre error
//!   is `isError` with its code; a reply that fails verification is never
//!   shown as a result.
//! - a long-running tool: the job is started and long-polled, its progress
//!   sent as `notifications/progress`; a host's `notifications/cancelled`
//!   cancels the job; after `max_wait` the answer says the job still runs
//!   and gives its id for `lacre_poll_job`.

use lacre_client::{Client, ClientError, JobHandle};
use lacre_proto::builtin::{JobView, ToolInfo};
use lacre_proto::{JobState, Map, Value};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServiceExt};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the tool list read from the server is used before it is read
/// again (an `unknown_tool` reply reads it at once).
pub const TOOLS_TTL: Duration = Duration::from_secs(30);
/// The longest single long poll (the server holds one at most 30 s).
const LONG_POLL: Duration = Duration::from_secs(25);

/// The tools the bridge adds, for jobs that outlive one MCP request.
const POLL_JOB: &str = "lacre_poll_job";
const CANCEL_JOB: &str = "lacre_cancel_job";
const LIST_JOBS: &str = "lacre_list_jobs";

/// The lacre system tools, not offered as such (the bridge's own tools
/// stand in for them; webhook deliveries do not concern a host, whose
/// bridge waits for its jobs).
const SYSTEM_TOOLS: [&str; 5] = [
    "server_identity",
    "poll_job",
    "cancel_job",
    "list_jobs",
    "list_deliveries",
];

/// How the bridge behaves.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// How long a `tools/call` of a long-running tool waits for its job
    /// before answering that it still runs (hosts time requests out,
    /// often at 60 s).
    pub max_wait: Duration,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            max_wait: Duration::from_secs(50),
        }
    }
}

/// The MCP name of a lacre tool: itself when it is 1 to 64 characters of
/// `[A-Za-z0-9_-]` (what hosts and model APIs accept), otherwise those
/// characters kept, every other one replaced by `_`, cut to 55 characters,
/// and `_` plus the first 8 hex digits of the SHA-256 of the lacre name
/// appended (so that two names that differ only in refused characters stay
/// apart).
pub fn mcp_name(lacre: &str) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !lacre.is_empty() && lacre.chars().count() <= 64 && lacre.chars().all(ok) {
        return lacre.to_owned();
    }
    let kept: String = lacre
        .chars()
        .map(|c| if ok(c) { c } else { '_' })
        .take(55)
        .collect();
    let digest = sha2::Sha256::digest(lacre.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{kept}_{hex}")
}

/// The tools as last read, by MCP name.
struct Known {
    at: Instant,
    by_mcp_name: HashMap<String, ToolInfo>,
}

/// The MCP server.
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    config: BridgeConfig,
    known: tokio::sync::Mutex<Option<Known>>,
}

/// Why the bridge stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The MCP session could not start.
    #[error("MCP session: {0}")]
    Session(String),
}

impl Bridge {
    /// A bridge calling through `client`.
    pub fn new(client: Client, config: BridgeConfig) -> Bridge {
        Bridge {
            inner: Arc::new(Inner {
                client,
                config,
                known: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Serves MCP on stdin/stdout until stdin ends.
    ///
    /// Lines go through [`filter_input`] first: a line that is not JSON
    /// gets JSON-RPC's parse error (`-32700`, id `null`) instead of being
    /// dropped, and a line over [`MAX_LINE`] bytes an invalid-request error,
    /// so a host always hears back; whole lines from both go to stdout, one
    /// writer, never interleaved.
    pub async fn serve_stdio(self) -> Result<(), BridgeError> {
        let stdout = Arc::new(tokio::sync::Mutex::new(tokio::io::stdout()));
        let (to_sdk, sdk_in) = tokio::io::duplex(1 << 16);
        let (sdk_out, from_sdk) = tokio::io::duplex(1 << 16);
        let pending = Pending::default();
        tokio::spawn(filter_input(
            tokio::io::stdin(),
            to_sdk,
            Arc::clone(&stdout),
            pending.clone(),
        ));
        tokio::spawn(copy_lines(from_sdk, Arc::clone(&stdout), pending));
        let service = match self.serve((sdk_in, sdk_out)).await {
            Ok(service) => service,
            // The host went away before (or without) a handshake, after
            // stateless requests perhaps: a normal end.
            Err(rmcp::service::ServerInitializeError::ConnectionClosed(_)) => return Ok(()),
            Err(e) => return Err(BridgeError::Session(e.to_string())),
        };
        let _ = service.waiting().await;
        Ok(())
    }

    /// The tools, read again when older than [`TOOLS_TTL`] or when
    /// `fresh`; whether the list changed since the last read.
    async fn tools(&self, fresh: bool) -> Result<(HashMap<String, ToolInfo>, bool), ClientError> {
        let mut known = self.inner.known.lock().await;
        if let Some(k) = known.as_ref() {
            if !fresh && k.at.elapsed() < TOOLS_TTL {
                return Ok((k.by_mcp_name.clone(), false));
            }
        }
        let listed = self.inner.client.tools().await?;
        let by_mcp_name: HashMap<String, ToolInfo> = listed
            .into_iter()
            .filter(|t| !SYSTEM_TOOLS.contains(&t.name.as_str()))
            .map(|t| (mcp_name(&t.name), t))
            .collect();
        let changed = known.as_ref().is_some_and(|k| k.by_mcp_name != by_mcp_name);
        *known = Some(Known {
            at: Instant::now(),
            by_mcp_name: by_mcp_name.clone(),
        });
        Ok((by_mcp_name, changed))
    }

    async fn call_lacre(
        &self,
        name: &str,
        args: Map,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let (tools, changed) = self.tools(false).await.map_err(unreachable_server)?;
        if changed {
            let _ = context.peer.notify_tool_list_changed().await;
        }
        let tool = match tools.get(name) {
            Some(t) => t.clone(),
            None => {
                // Perhaps new on the server: read the list once more.
                let (tools, changed) = self.tools(true).await.map_err(unreachable_server)?;
                if changed {
                    let _ = context.peer.notify_tool_list_changed().await;
                }
                tools.get(name).cloned().ok_or_else(|| {
                    ErrorData::invalid_params(format!("unknown tool {name:?}"), None)
                })?
            }
        };
        let client = &self.inner.client;
        if !tool.long_running {
            return Ok(
                match client.call_map(&tool.name, args, Duration::ZERO).await {
                    Ok(reply) => success(reply.result()),
                    Err(e) => {
                        if matches!(&e, ClientError::Server { code, .. } if code.as_str() == "unknown_tool")
                        {
                            let _ = self.tools(true).await;
                        }
                        failure(&e)
                    }
                },
            );
        }
        let job = match client.start(&tool.name, Value::Object(args)).await {
            Ok(job) => job,
            Err(e) => return Ok(failure(&e)),
        };
        Ok(self.follow(&job, context).await)
    }

    /// Follows a job until it ends, the host cancels, or `max_wait`.
    async fn follow(
        &self,
        job: &JobHandle,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let client = &self.inner.client;
        let token = context.meta.get_progress_token();
        let deadline = Instant::now() + self.inner.config.max_wait;
        let mut last = f64::NEG_INFINITY;
        let mut since = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return still_running(job, None);
            }
            let polled = tokio::select! {
                _ = context.ct.cancelled() => {
                    // The host gave up on the request: so does the job.
                    let _ = client.cancel(job).await;
                    return CallToolResult::error(vec![ContentBlock::text(format!(
                        "cancelled: job {} was cancelled on the lacre server", job.id
                    ))]);
                }
                polled = client.poll_since(job, Some(left.min(LONG_POLL)), since) => polled,
            };
            match polled {
                Ok(JobView::Done(result)) => return success(result),
                Ok(JobView::Pending(p)) => {
                    since = p.version;
                    // Only what the job reported: a job that has said
                    // nothing yet (queued, or just claimed) sends nothing.
                    if let (Some(token), Some(fraction)) = (&token, p.progress) {
                        // MCP wants progress to increase strictly.
                        if fraction > last {
                            last = fraction;
                            let mut note = ProgressNotificationParam::new(token.clone(), fraction)
                                .with_total(1.0);
                            if let Some(m) = &p.message {
                                note = note.with_message(m.clone());
                            }
                            let _ = context.peer.notify_progress(note).await;
                        }
                    }
                    if Instant::now() >= deadline {
                        return still_running(job, Some(&p));
                    }
                }
                Err(e) => return failure(&e),
            }
        }
    }

    async fn bridge_tool(&self, name: &str, args: &Map) -> Option<CallToolResult> {
        let client = &self.inner.client;
        let job_id = || match args.get("job_id") {
            Some(Value::String(s)) => Ok(JobHandle { id: s.clone() }),
            _ => Err(CallToolResult::error(vec![ContentBlock::text(
                "invalid_args: job_id: a string is required",
            )])),
        };
        Some(match name {
            POLL_JOB => match job_id() {
                Err(e) => e,
                Ok(job) => match client.poll(&job, Some(LONG_POLL)).await {
                    Ok(JobView::Done(result)) => success(result),
                    Ok(JobView::Pending(p)) => still_running(&job, Some(&p)),
                    Err(e) => failure(&e),
                },
            },
            CANCEL_JOB => match job_id() {
                Err(e) => e,
                Ok(job) => match client.cancel(&job).await {
                    Ok(state) => {
                        let mut m = Map::new();
                        m.insert("job_id".into(), Value::String(job.id));
                        m.insert("state".into(), Value::String(state.as_str().to_owned()));
                        success(m)
                    }
                    Err(e) => failure(&e),
                },
            },
            LIST_JOBS => {
                let state = match args.get("state") {
                    Some(Value::String(s)) => match JobState::parse(s) {
                        Some(st) => Some(st),
                        None => {
                            return Some(CallToolResult::error(vec![ContentBlock::text(format!(
                                "invalid_args: state: {s:?} is not a job state"
                            ))]))
                        }
                    },
                    _ => None,
                };
                match client.list_jobs(state, Some(50)).await {
                    Ok(jobs) => match Value::from_serialize(&jobs) {
                        Ok(list) => {
                            let mut m = Map::new();
                            m.insert("jobs".into(), list);
                            success(m)
                        }
                        Err(e) => CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
                    },
                    Err(e) => failure(&e),
                }
            }
            _ => return None,
        })
    }
}

/// Longest JSON-RPC line read from the host (4 MiB).
pub const MAX_LINE: usize = 4 << 20;

type SharedOut<W> = Arc<tokio::sync::Mutex<W>>;

async fn write_line<W: tokio::io::AsyncWrite + Unpin>(out: &SharedOut<W>, line: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let mut w = out.lock().await;
    let _ = w.write_all(line).await;
    let _ = w.write_all(b"\n").await;
    let _ = w.flush().await;
}

/// Passes the host's lines on to the SDK, answering those it would drop.
pub async fn filter_input<R, S, W>(input: R, mut sdk: S, out: SharedOut<W>, pending: Pending)
where
    R: tokio::io::AsyncRead + Unpin,
    S: tokio::io::AsyncWrite + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let mut input = tokio::io::BufReader::new(input);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1;
        match (&mut input).take(limit).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.len() > MAX_LINE && line.last() != Some(&b'\n') {
            // Skip the rest of the over-long line, then say so.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                match (&mut input)
                    .take(1 << 16)
                    .read_until(b'\n', &mut rest)
                    .await
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) if rest.last() == Some(&b'\n') => break,
                    Ok(_) => {}
                }
            }
            let msg = format!("request over {MAX_LINE} bytes");
            let err = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": msg}});
            write_line(&out, err.to_string().as_bytes()).await;
            continue;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(text) else {
            let err = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}});
            write_line(&out, err.to_string().as_bytes()).await;
            continue;
        };
        if let (Some(id), Some(_)) = (message.get("id"), message.get("method")) {
            // What the SDK would answer without the id: answered here, with it.
            let refusal = if message.get("jsonrpc") != Some(&serde_json::json!("2.0")) {
                Some((-32600, "Invalid request: jsonrpc must be \"2.0\""))
            } else if message.get("params").is_some_and(|p| !p.is_object()) {
                Some((-32602, "Invalid params: params must be an object"))
            } else {
                None
            };
            if let Some((code, msg)) = refusal {
                let err = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": msg}});
                write_line(&out, err.to_string().as_bytes()).await;
                continue;
            }
            pending.add(id.to_string());
        }
        if sdk.write_all(text).await.is_err() || sdk.write_all(b"\n").await.is_err() {
            break;
        }
    }
    // End of input: the requests already read are answered first (bounded),
    // then the SDK sees the end and the session ends.
    pending.drained(DRAIN).await;
    let _ = sdk.shutdown().await;
}

/// How long requests already received may take to be answered once the
/// host has closed stdin.
const DRAIN: Duration = Duration::from_secs(60);

/// Ids of requests read from the host and not yet answered.
#[derive(Clone, Default)]
pub struct Pending {
    ids: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    changed: Arc<tokio::sync::Notify>,
}

impl Pending {
    fn add(&self, id: String) {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id);
    }

    fn answered(&self, id: &str) {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.changed.notify_waiters();
    }

    fn is_empty(&self) -> bool {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Waits until every request read has been answered, at most `limit`.
    async fn drained(&self, limit: Duration) {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                if self.is_empty() {
                    return;
                }
                changed.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }
}

/// Copies the SDK's output lines to `out`, a whole line at a time.
async fn copy_lines<R, W>(from: R, out: SharedOut<W>, pending: Pending)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncBufReadExt;
    let mut from = tokio::io::BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        match from.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = line.trim_ascii_end();
                write_line(&out, text).await;
                if let Ok(reply) = serde_json::from_slice::<serde_json::Value>(text) {
                    if reply.get("method").is_none() {
                        if let Some(id) = reply.get("id") {
                            pending.answered(&id.to_string());
                        }
                    }
                }
            }
        }
    }
}

/// The bridge's own tools, as MCP lists them.
fn bridge_tools() -> Vec<Tool> {
    let job_id = serde_json::json!({
        "type": "object",
        "properties": {"job_id": {"type": "string", "description": "The job id a long-running call answered with."}},
        "required": ["job_id"],
        "additionalProperties": false
    });
    let list = serde_json::json!({
        "type": "object",
        "properties": {"state": {"type": "string", "enum": ["queued", "running", "done", "failed", "cancelled"]}},
        "additionalProperties": false
    });
    let tool = |name: &'static str, description: &'static str, schema: &serde_json::Value| {
        let schema = schema.as_object().cloned().unwrap_or_default();
        Tool::new(name, description, Arc::new(schema))
    };
    vec![
        tool(POLL_JOB, "Waits up to 25 s for a lacre job started by a long-running tool; its result once done, else its progress.", &job_id),
        tool(CANCEL_JOB, "Cancels a lacre job started by a long-running tool.", &job_id),
        tool(LIST_JOBS, "Your lacre jobs, newest first (at most 50), optionally only those in one state.", &list),
    ]
}

fn success(result: Map) -> CallToolResult {
    CallToolResult::structured(Value::Object(result).to_serde())
}

fn still_running(job: &JobHandle, p: Option<&lacre_proto::builtin::JobProgress>) -> CallToolResult {
    let mut m = serde_json::Map::new();
    m.insert("job_id".into(), job.id.clone().into());
    m.insert(
        "state".into(),
        p.map_or("running", |p| p.state.as_str()).into(),
    );
    if let Some(f) = p.and_then(|p| p.progress) {
        m.insert("progress".into(), f.into());
    }
    if let Some(msg) = p.and_then(|p| p.message.clone()) {
        m.insert("message".into(), msg.into());
    }
    let text = format!(
        "job {} is still running; call {POLL_JOB} with {{\"job_id\": \"{}\"}} for its result, or {CANCEL_JOB} to stop it",
        job.id, job.id
    );
    let mut result = CallToolResult::structured(serde_json::Value::Object(m));
    result.content = vec![ContentBlock::text(text)];
    result
}

/// What a failed call shows the host: never a result it cannot trust.
fn failure(e: &ClientError) -> CallToolResult {
    let text = match e {
        ClientError::Server { code, message, .. } => format!("{code}: {message}"),
        ClientError::Verification(v) => format!(
            "the lacre server's reply could not be verified, so nothing of it is shown: {v}"
        ),
        ClientError::Trust(t) => format!("the lacre server is not trusted: {t}"),
        ClientError::OutcomeUnknown(m) => {
            format!("outcome unknown: {m}; the call may have run on the lacre server")
        }
        other => format!("the lacre server could not be reached: {other}"),
    };
    CallToolResult::error(vec![ContentBlock::text(text)])
}

fn unreachable_server(e: ClientError) -> ErrorData {
    ErrorData::internal_error(format!("cannot list the lacre server's tools: {e}"), None)
}

impl rmcp::ServerHandler for Bridge {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build())
            .with_server_info(Implementation::new("lacre", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Tools of a lacre server: every call is signed with your key and every reply verified. \
                 Long-running tools answer with their result when they finish within the wait, else with \
                 a job_id for lacre_poll_job.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let (tools, _) = self.tools(false).await.map_err(unreachable_server)?;
        let mut listed: Vec<Tool> = tools
            .into_iter()
            .map(|(name, t)| {
                let schema = t.args_schema.as_object().cloned().unwrap_or_default();
                let description = if t.long_running {
                    format!("{} (long-running: runs as a lacre job)", t.description)
                } else {
                    t.description.clone()
                };
                Tool::new(name, description, Arc::new(schema))
            })
            .collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        listed.extend(bridge_tools());
        Ok(ListToolsResult::with_all_items(listed))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args: Map = match request.arguments {
            None => Map::new(),
            Some(obj) => match Value::from_serde(serde_json::Value::Object(obj)) {
                Value::Object(m) => m,
                _ => Map::new(),
            },
        };
        if let Some(result) = self.bridge_tool(&request.name, &args).await {
            return Ok(result.into());
        }
        Ok(self.call_lacre(&request.name, args, &context).await?.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_hosts_refuse_are_mapped_apart() {
        assert_eq!(mcp_name("batch_sum"), "batch_sum");
        assert_eq!(mcp_name("everything_get-sum"), "everything_get-sum");
        let dotted = mcp_name("files.read");
        assert!(dotted.starts_with("files_read_"), "{dotted}");
        assert_ne!(dotted, mcp_name("files_read"));
        assert_ne!(mcp_name("a.b"), mcp_name("a:b"));
        let long = mcp_name(&"x".repeat(100));
        assert_eq!(long.chars().count(), 64, "{long}");
        assert!(long
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    }
}
