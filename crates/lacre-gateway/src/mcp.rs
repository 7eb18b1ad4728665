//! MCP servers as upstreams (`[[mcp_servers]]`), through the official Rust
//! SDK (`rmcp`, client side). This module is the only one that names
//! `rmcp` types for the gateway, so that the SDK's major versions stay
//! contained.
//!
//! One supervisor task per upstream keeps one connection: it starts the
//! child, runs the MCP handshake, and when the child exits starts it again
//! with a backoff of 1 s doubling to 30 s. Calls are multiplexed over the
//! connection of the moment; a call made while the upstream is down, or in
//! flight when it dies, fails with `upstream_unavailable` (an immediate
//! tool) or goes back to the queue or fails as `retry_on_lost_worker` says
//! (a job). A job's cancel is sent on as `notifications/cancelled`, and the
//! upstream's `notifications/progress` become the job's progress.

use crate::process;
use lacre_proto::{Map, Value};
use lacre_server::config::upstreams::{McpServer, McpTransport, RetryPolicy};
use lacre_server::{JobContext, Registry, ToolDef, ToolError};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotification,
    CancelledNotificationParam, ClientRequest, ProgressNotificationParam, ProgressToken, RequestId,
    ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RunningService};
use rmcp::{Peer, RoleClient, ServiceError, ServiceExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::sync::{oneshot, watch};

/// Time allowed for a child to start and answer the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How much of an upstream's error text a caller is shown.
pub const MAX_ERROR_CHARS: usize = 2000;

/// A tool an upstream offers, as listed at start.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTool {
    /// Its name upstream.
    pub upstream_name: String,
    /// Its name here (prefix + upstream name).
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its input schema.
    pub input_schema: serde_json::Value,
    /// Runs as a job here.
    pub long_running: bool,
    /// Annotated `idempotentHint` or `readOnlyHint` upstream.
    pub idempotent: bool,
}

/// Where an upstream stands (for `lacre upstreams` and the logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamState {
    /// Starting or restarting.
    Connecting,
    /// Connected; calls go through.
    Up,
    /// The last attempt failed with this error; another follows.
    Down(String),
    /// Stopped at shutdown.
    Stopped,
}

/// Progress sinks by the progress token of their request.
type ProgressSinks = Arc<Mutex<HashMap<ProgressToken, JobContext>>>;

/// The MCP client side of one connection: where notifications go.
#[derive(Clone)]
struct Listener {
    upstream: String,
    progress: ProgressSinks,
    /// Set once the tools were listed: servers announce a change right
    /// after the handshake, which is no change to the list lacre reads.
    listed: Arc<std::sync::atomic::AtomicBool>,
    /// Told when the upstream announces that its tools changed.
    changed: Arc<tokio::sync::Notify>,
}

impl rmcp::ClientHandler for Listener {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let sinks = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ctx) = sinks.get(&params.progress_token) {
            let fraction = match params.total {
                Some(total) if total > 0.0 => params.progress / total,
                _ => 0.0,
            };
            let message = params.message.unwrap_or_else(|| match params.total {
                Some(total) => format!("{}/{total}", params.progress),
                None => params.progress.to_string(),
            });
            ctx.progress(fraction, message);
        }
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if !self.listed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        tracing::info!(upstream = %self.upstream, "upstream says its tools changed; listing them again");
        self.changed.notify_one();
    }

    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            rmcp::model::ClientCapabilities::default(),
            rmcp::model::Implementation::new("lacre", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// One upstream MCP server and its supervisor.
pub struct Upstream {
    cfg: McpServer,
    listener: Listener,
    peer: watch::Sender<Option<Peer<RoleClient>>>,
    state: watch::Sender<UpstreamState>,
    tools: Mutex<Vec<UpstreamTool>>,
    counts: Counts,
    /// The server whose tools these are, once built: later changes of the
    /// upstream's tools are published to it.
    server: std::sync::OnceLock<lacre_server::Server>,
    /// The names registered for this upstream (to remove on a change).
    registered: Mutex<Vec<String>>,
}

/// What `/metrics` shows of an upstream.
#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    tool_error: AtomicU64,
    unavailable: AtomicU64,
    connects: AtomicU64,
}

impl Upstream {
    /// Starts the supervisor of `cfg`; resolves once the first connection
    /// listed its tools, or failed (the supervisor goes on retrying).
    pub async fn start(
        cfg: McpServer,
        stop: watch::Receiver<bool>,
    ) -> (Arc<Upstream>, Result<(), String>) {
        let listener = Listener {
            upstream: cfg.name.clone(),
            progress: Arc::default(),
            listed: Arc::default(),
            changed: Arc::default(),
        };
        let up = Arc::new(Upstream {
            cfg,
            listener,
            peer: watch::Sender::new(None),
            state: watch::Sender::new(UpstreamState::Connecting),
            tools: Mutex::new(Vec::new()),
            counts: Counts::default(),
            server: std::sync::OnceLock::new(),
            registered: Mutex::new(Vec::new()),
        });
        let (first_tx, first_rx) = oneshot::channel();
        tokio::spawn(Arc::clone(&up).supervise(first_tx, stop));
        let first = first_rx
            .await
            .unwrap_or_else(|_| Err("supervisor ended".to_owned()));
        (up, first)
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Where it stands.
    pub fn state(&self) -> UpstreamState {
        self.state.borrow().clone()
    }

    /// A receiver of its state changes.
    pub fn watch_state(&self) -> watch::Receiver<UpstreamState> {
        self.state.subscribe()
    }

    /// The tools it offers (as listed at its first connection).
    pub fn tools(&self) -> Vec<UpstreamTool> {
        self.tools.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn supervise(
        self: Arc<Self>,
        first: oneshot::Sender<Result<(), String>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut first = Some(first);
        let mut backoff = Duration::from_secs(1);
        loop {
            if *stop.borrow() {
                break;
            }
            self.state.send_replace(UpstreamState::Connecting);
            let attempt = tokio::select! {
                r = self.connect() => r,
                _ = stop.changed() => break,
            };
            match attempt {
                Ok((service, pid)) => {
                    let peer = service.peer().clone();
                    let listed = self.list_tools(&peer).await;
                    if let Err(e) = &listed {
                        tracing::error!(upstream = %self.cfg.name, error = %e, "cannot list the upstream's tools");
                    }
                    match first.take() {
                        Some(tx) => {
                            let _ = tx.send(listed.map(|_| ()));
                        }
                        // Up after a failed start, or back with other tools.
                        None => {
                            if listed == Ok(true) {
                                self.publish();
                            }
                        }
                    }
                    tracing::info!(upstream = %self.cfg.name, pid, "upstream connected");
                    self.counts.connects.fetch_add(1, Ordering::Relaxed);
                    self.peer.send_replace(Some(peer.clone()));
                    self.state.send_replace(UpstreamState::Up);
                    let since = tokio::time::Instant::now();
                    let waiting = service.waiting();
                    tokio::pin!(waiting);
                    let stopped = loop {
                        tokio::select! {
                            quit = &mut waiting => {
                                tracing::warn!(upstream = %self.cfg.name, reason = ?quit, "upstream connection ended; restarting");
                                break false;
                            }
                            _ = stop.changed() => break true,
                            _ = self.listener.changed.notified() => {
                                match self.list_tools(&peer).await {
                                    Ok(true) => self.publish(),
                                    Ok(false) => {}
                                    Err(e) => tracing::error!(upstream = %self.cfg.name, error = %e, "cannot list the upstream's tools"),
                                }
                            }
                        }
                    };
                    self.peer.send_replace(None);
                    if let Some(pid) = pid {
                        process::kill_group(pid);
                    }
                    if stopped {
                        break;
                    }
                    if since.elapsed() > MAX_BACKOFF {
                        backoff = Duration::from_secs(1);
                    }
                }
                Err(e) => {
                    tracing::error!(upstream = %self.cfg.name, error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot start upstream");
                    self.state.send_replace(UpstreamState::Down(e.clone()));
                    if let Some(tx) = first.take() {
                        let _ = tx.send(Err(e));
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => break,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        self.peer.send_replace(None);
        self.state.send_replace(UpstreamState::Stopped);
    }

    async fn connect(&self) -> Result<(RunningService<RoleClient, Listener>, Option<u32>), String> {
        let command = match &self.cfg.transport {
            McpTransport::Stdio(command) => command,
            McpTransport::Http { url, headers_env } => {
                return self.connect_http(url, headers_env).await.map(|s| (s, None))
            }
        };
        let cmd = process::command(command, None);
        let (transport, stderr) = rmcp::transport::TokioChildProcess::builder(cmd)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", command.program.display()))?;
        let pid = transport.id();
        if let Some(stderr) = stderr {
            tokio::spawn(log_stderr(self.cfg.name.clone(), stderr));
        }
        let handshake = self.listener.clone().serve(transport);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(service)) => Ok((service, pid)),
            Ok(Err(e)) => {
                if let Some(pid) = pid {
                    process::kill_group(pid);
                }
                Err(format!("MCP handshake failed: {e}"))
            }
            Err(_) => {
                if let Some(pid) = pid {
                    process::kill_group(pid);
                }
                Err(format!(
                    "no answer to the MCP handshake within {} s",
                    HANDSHAKE_TIMEOUT.as_secs()
                ))
            }
        }
    }

    /// A Streamable HTTP upstream: rmcp's reqwest client (TLS with rustls
    /// and the ring provider), header values read from the environment at
    /// each connection and marked sensitive (never logged).
    async fn connect_http(
        &self,
        url: &str,
        headers_env: &std::collections::BTreeMap<String, String>,
    ) -> Result<RunningService<RoleClient, Listener>, String> {
        use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
        let mut headers = HashMap::new();
        for (name, var) in headers_env {
            let value = std::env::var(var)
                .map_err(|_| format!("header {name}: environment variable {var} is not set"))?;
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("header {name:?}: {e}"))?;
            let mut value = http::HeaderValue::from_str(&value).map_err(|e| {
                format!("header {name}: the value of {var} is not a header value: {e}")
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        crate::tls::install_provider();
        let config = StreamableHttpClientTransportConfig::with_uri(url).custom_headers(headers);
        let transport = rmcp::transport::StreamableHttpClientTransport::from_config(config);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.listener.clone().serve(transport)).await
        {
            Ok(Ok(service)) => Ok(service),
            Ok(Err(e)) => Err(format!("MCP handshake with {url} failed: {e}")),
            Err(_) => Err(format!(
                "no answer to the MCP handshake from {url} within {} s",
                HANDSHAKE_TIMEOUT.as_secs()
            )),
        }
    }

    /// Lists the upstream's tools; whether they differ from those known.
    async fn list_tools(&self, peer: &Peer<RoleClient>) -> Result<bool, String> {
        let listed = peer.list_all_tools().await.map_err(|e| e.to_string())?;
        let mut tools = Vec::new();
        for t in listed {
            let upstream_name = t.name.to_string();
            let offered = match &self.cfg.tools {
                None => true,
                Some(list) => list
                    .iter()
                    .any(|p| lacre_server::access::glob_match(p, &upstream_name)),
            };
            if !offered {
                continue;
            }
            let annotations = t.annotations.as_ref();
            tools.push(UpstreamTool {
                name: format!("{}{upstream_name}", self.cfg.prefix),
                description: t
                    .description
                    .as_deref()
                    .or(t.title.as_deref())
                    .unwrap_or_default()
                    .to_owned(),
                input_schema: serde_json::Value::Object((*t.input_schema).clone()),
                long_running: self
                    .cfg
                    .long_running
                    .iter()
                    .any(|p| lacre_server::access::glob_match(p, &upstream_name)),
                idempotent: annotations.is_some_and(|a| {
                    a.idempotent_hint == Some(true) || a.read_only_hint == Some(true)
                }),
                upstream_name,
            });
        }
        let changed = {
            let mut known = self.tools.lock().unwrap_or_else(|p| p.into_inner());
            let changed = *known != tools;
            *known = tools;
            changed
        };
        self.listener
            .listed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(changed)
    }

    /// From now on, changes of the upstream's tools (it came up late, or
    /// announced new ones) are published to `server`; tools listed since
    /// [`Upstream::register`] are published now.
    pub fn attach(self: &Arc<Self>, server: &lacre_server::Server) {
        if self.server.set(server.clone()).is_ok() {
            let registered = self
                .registered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let listed: Vec<String> = self.tools().into_iter().map(|t| t.name).collect();
            if registered != listed {
                self.publish();
            }
        }
    }

    /// Replaces this upstream's tools in the attached server.
    fn publish(self: &Arc<Self>) {
        let Some(server) = self.server.get() else {
            return;
        };
        server.update_tools(|reg| {
            let old =
                std::mem::take(&mut *self.registered.lock().unwrap_or_else(|p| p.into_inner()));
            for name in &old {
                reg.remove(name);
            }
            self.register(reg);
        });
        tracing::info!(upstream = %self.cfg.name, tools = self.registered.lock().unwrap_or_else(|p| p.into_inner()).len(), "upstream's tools are offered");
    }

    /// Registers the upstream's tools; a tool whose name is taken or whose
    /// schema does not compile is left out, with an error in the log.
    pub fn register(self: &Arc<Self>, reg: &mut Registry) {
        let mut names = Vec::new();
        for tool in self.tools() {
            if reg.get(&tool.name).is_some() {
                tracing::error!(upstream = %self.cfg.name, tool = %tool.name, "tool name already taken; not offered (set a prefix)");
                continue;
            }
            if tool.name.chars().count() > lacre_proto::MAX_ID_CHARS {
                tracing::error!(upstream = %self.cfg.name, tool = %tool.name, "tool name over 128 characters; not offered (shorten the prefix)");
                continue;
            }
            let def = ToolDef {
                name: tool.name.clone(),
                description: tool.description.clone(),
                args_schema: tool.input_schema.clone(),
            };
            let up = Arc::clone(self);
            let t = Arc::new(tool.clone());
            let registered = if tool.long_running {
                reg.dynamic_long_running(def, move |args, ctx| {
                    let (up, t) = (Arc::clone(&up), Arc::clone(&t));
                    async move { up.run_job(&t, args, ctx).await }
                })
            } else {
                reg.dynamic_immediate(def, move |args, _ctx| {
                    let (up, t) = (Arc::clone(&up), Arc::clone(&t));
                    async move {
                        let timeout = Some(up.cfg.call_timeout);
                        up.counted(up.call(&t.upstream_name, args, timeout, None).await)
                            .map_err(|lost| match lost {
                                Failure::Lost(m) => ToolError::Unavailable(m),
                                Failure::Tool(e) => e,
                            })
                    }
                })
            };
            match registered {
                Ok(_) => names.push(tool.name.clone()),
                Err(e) => {
                    tracing::error!(upstream = %self.cfg.name, tool = %tool.name, error = %e, "tool schema does not compile; not offered")
                }
            }
        }
        *self.registered.lock().unwrap_or_else(|p| p.into_inner()) = names;
    }

    async fn run_job(
        &self,
        tool: &UpstreamTool,
        args: Map,
        ctx: JobContext,
    ) -> Result<Map, ToolError> {
        let may_retry = match self.cfg.retry {
            RetryPolicy::Always => true,
            RetryPolicy::Never => false,
            RetryPolicy::Idempotent => tool.idempotent,
        };
        if ctx.attempt() > 1 && !may_retry {
            return Err(ToolError::Failed(format!(
                "an earlier run of this job was lost and {} is not run twice (retry_on_lost_worker = {})",
                tool.name,
                match self.cfg.retry {
                    RetryPolicy::Never => "never",
                    _ => "idempotent, and the tool is not annotated idempotent",
                }
            )));
        }
        match self.counted(self.call(&tool.upstream_name, args, None, Some(&ctx)).await) {
            Ok(m) => Ok(m),
            Err(Failure::Tool(e)) => Err(e),
            Err(Failure::Lost(m)) if may_retry => Err(ToolError::Requeue(m)),
            Err(Failure::Lost(m)) => Err(ToolError::Unavailable(m)),
        }
    }

    /// Counts the outcome of one `tools/call` (see [`Upstream::call`]).
    fn counted(&self, out: Result<Map, Failure>) -> Result<Map, Failure> {
        let counter = match &out {
            Ok(_) => &self.counts.ok,
            Err(Failure::Tool(ToolError::Reported(_))) => &self.counts.tool_error,
            Err(_) => &self.counts.unavailable,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        out
    }

    /// Prometheus lines for this upstream.
    pub fn metrics_text(&self) -> String {
        let name = self.cfg.name.replace('\\', "\\\\").replace('"', "\\\"");
        let up = u8::from(self.state() == UpstreamState::Up);
        let c = &self.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "lacre_upstream_up{{upstream=\"{name}\"}} {up}\n\
             lacre_upstream_connects_total{{upstream=\"{name}\"}} {}\n\
             lacre_upstream_calls_total{{upstream=\"{name}\",outcome=\"ok\"}} {}\n\
             lacre_upstream_calls_total{{upstream=\"{name}\",outcome=\"tool_error\"}} {}\n\
             lacre_upstream_calls_total{{upstream=\"{name}\",outcome=\"upstream_unavailable\"}} {}\n",
            get(&c.connects),
            get(&c.ok),
            get(&c.tool_error),
            get(&c.unavailable),
        )
    }

    /// One `tools/call` (its outcome counted by the caller).
    async fn call(
        &self,
        upstream_name: &str,
        args: Map,
        timeout: Option<Duration>,
        job: Option<&JobContext>,
    ) -> Result<Map, Failure> {
        let Some(peer) = self.peer.borrow().clone() else {
            return Err(Failure::Lost(format!(
                "upstream {:?} is not connected ({})",
                self.cfg.name,
                describe(&self.state())
            )));
        };
        let serde_json::Value::Object(arguments) = Value::Object(args).to_serde() else {
            return Err(Failure::Tool(ToolError::Failed(
                "arguments are not an object".to_owned(),
            )));
        };
        let params = CallToolRequestParams::new(upstream_name.to_owned()).with_arguments(arguments);
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let handle = peer
            .send_cancellable_request(request, PeerRequestOptions::no_options())
            .await
            .map_err(|e| self.lost(&e))?;
        let mut guard = CancelOnDrop {
            peer: peer.clone(),
            id: Some(handle.id.clone()),
            token: handle.progress_token.clone(),
            sinks: Arc::clone(&self.listener.progress),
        };
        if let Some(ctx) = job {
            self.listener
                .progress
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(handle.progress_token.clone(), ctx.clone());
        }
        let answer = match timeout {
            Some(t) => match tokio::time::timeout(t, handle.await_response()).await {
                Ok(a) => a,
                Err(_) => {
                    return Err(Failure::Tool(ToolError::Unavailable(format!(
                    "upstream {:?} did not answer within {} ms (the call was cancelled upstream)",
                    self.cfg.name,
                    t.as_millis()
                ))))
                }
            },
            None => handle.await_response().await,
        };
        guard.id = None;
        match answer {
            Ok(ServerResult::CallToolResult(r)) => result(r).map_err(Failure::Tool),
            Ok(other) => Err(Failure::Tool(ToolError::Reported(format!(
                "upstream answered tools/call with an unexpected result: {}",
                cap(&format!("{other:?}"))
            )))),
            Err(ServiceError::McpError(e)) => Err(Failure::Tool(ToolError::Reported(cap(
                &format!("{} (JSON-RPC error {})", e.message, e.code.0),
            )))),
            Err(e @ (ServiceError::TransportClosed | ServiceError::TransportSend(_))) => {
                Err(self.lost(&e))
            }
            Err(e) => Err(Failure::Tool(ToolError::Reported(cap(&e.to_string())))),
        }
    }

    fn lost(&self, e: &ServiceError) -> Failure {
        Failure::Lost(format!(
            "upstream {:?} went away during the call: {e}",
            self.cfg.name
        ))
    }
}

/// Why a call did not produce a result.
enum Failure {
    /// The connection was lost (or never there): the call may be retried.
    Lost(String),
    /// Anything else, as the caller is told.
    Tool(ToolError),
}

/// Sends `notifications/cancelled` for a request dropped before its answer
/// (a cancelled job, a caller gone), and forgets its progress sink.
struct CancelOnDrop {
    peer: Peer<RoleClient>,
    id: Option<RequestId>,
    token: ProgressToken,
    sinks: ProgressSinks,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.token);
        let Some(id) = self.id.take() else { return };
        let peer = self.peer.clone();
        let note = CancelledNotification::new(CancelledNotificationParam::new(
            Some(id),
            Some("cancelled by the lacre caller".to_owned()),
        ));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = peer.send_notification(note.into()).await;
            });
        }
    }
}

/// The lacre result of an MCP tool result: `content` (the items as the
/// upstream sent them) and `structuredContent` when present; `isError`
/// becomes a `tool_error` with the text items.
fn result(r: CallToolResult) -> Result<Map, ToolError> {
    let content = serde_json::to_value(&r.content).unwrap_or(serde_json::Value::Array(vec![]));
    if r.is_error == Some(true) {
        let text: Vec<&str> = content
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("text").and_then(serde_json::Value::as_str))
            .collect();
        return Err(ToolError::Reported(cap(&text.join("\n"))));
    }
    let mut m = Map::new();
    m.insert("content".to_owned(), Value::from_serde(content));
    if let Some(s) = r.structured_content {
        m.insert("structuredContent".to_owned(), Value::from_serde(s));
    }
    Ok(m)
}

fn cap(text: &str) -> String {
    if text.chars().count() <= MAX_ERROR_CHARS {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(MAX_ERROR_CHARS).collect();
    s.push('…');
    s
}

fn describe(state: &UpstreamState) -> String {
    match state {
        UpstreamState::Connecting => "starting".to_owned(),
        UpstreamState::Up => "up".to_owned(),
        UpstreamState::Down(e) => format!("down: {e}"),
        UpstreamState::Stopped => "stopped".to_owned(),
    }
}

/// Copies an upstream's stderr to the log, line by line (lines capped).
async fn log_stderr(upstream: String, stderr: tokio::process::ChildStderr) {
    let mut reader = tokio::io::BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        // A line without an end is logged in pieces, never held whole.
        let mut piece = (&mut reader).take(8192);
        match piece.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        tracing::info!(upstream = %upstream, "{}", cap(text.trim_end()));
    }
}
