//! The dispatcher: verifies a request, routes it to its tool, and signs
//! the reply. Transports (HTTP, stdio) only move bytes in and out of
//! [`Server::handle`].

use crate::builtin::{self, CancelJobIn, ListJobsIn, PollJobIn};
use crate::error::{http_status, CallError};
use crate::jobs::{
    CreateOutcome, JobRecord, JobState, JobStore, MemoryJobStore, NewJob, WorkerConfig, Workers,
};
use crate::limits::{Rate, RateLimiter};
use crate::nonce::{MemoryNonceStore, NonceBackend};
use crate::tool::{decode, CallContext, Handler, Registry, Tool, ToolArgs, ToolError};
use lacre_proto::{
    authenticate, to_hex, Clock, Envelope, ErrorCode, KeyLookup, Keyring, KeyringError, Map,
    Response, ResponseSigner, SigningKey, Status, Value, Verified, VerifyConfig, VerifyingKey,
};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A source of unique ids (job ids).
pub trait IdSource: Send + Sync + 'static {
    /// A fresh, unguessable id, or `None` when no randomness is available
    /// (the request then fails: a guessable or repeated id is never used).
    fn new_id(&self) -> Option<String>;
}

/// UUIDv4 ids from the operating system's random generator.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandomIds;

impl IdSource for OsRandomIds {
    fn new_id(&self) -> Option<String> {
        let mut bytes = [0u8; 16];
        match getrandom::getrandom(&mut bytes) {
            Ok(()) => Some(lacre_proto::uuid_v4(bytes)),
            Err(e) => {
                tracing::error!(error = %e, "operating system random generator failed");
                None
            }
        }
    }
}

/// Which tools a client may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolFilter {
    /// Every tool (`tools = ["*"]`).
    All,
    /// Only these.
    Only(HashSet<String>),
}

impl ToolFilter {
    /// From a configuration list, where `"*"` means all.
    pub fn from_list<S: AsRef<str>>(names: &[S]) -> ToolFilter {
        if names.iter().any(|n| n.as_ref() == "*") {
            ToolFilter::All
        } else {
            ToolFilter::Only(names.iter().map(|n| n.as_ref().to_owned()).collect())
        }
    }

    /// Whether `tool` is allowed.
    pub fn allows(&self, tool: &str) -> bool {
        match self {
            ToolFilter::All => true,
            ToolFilter::Only(set) => set.contains(tool),
        }
    }
}

/// Job counts by state and when they were read (metrics).
type CachedCounts = (std::time::Instant, Vec<(JobState, u64)>);

/// Longest error message sent to a peer, in characters.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 512;

fn truncate_message(mut message: String, max_chars: usize) -> String {
    if let Some((cut, _)) = message.char_indices().nth(max_chars) {
        message.truncate(cut);
        message.push_str("...");
    }
    message
}

/// Who a request came from, for the request log and the metrics.
struct Caller {
    client_id: String,
    tool: &'static str,
}

impl Default for Caller {
    fn default() -> Self {
        Caller {
            client_id: String::new(),
            tool: "-",
        }
    }
}

/// A signed reply and the HTTP status that carries it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// 200, 202, or the error class (see [`http_status`]).
    pub http_status: u16,
    /// The signed response.
    pub response: Response,
    /// For `rate_limited`: when to retry (sent as HTTP `Retry-After`).
    pub retry_after_ms: Option<u64>,
    /// The response's wire form (serialized once, when it was signed).
    wire: Vec<u8>,
}

/// Builds a [`Server`].
pub struct ServerBuilder {
    server_id: String,
    key: SigningKey,
    max_skew_ms: u64,
    limits: lacre_proto::ParseLimits,
    keyring: Keyring,
    permissions: HashMap<String, ToolFilter>,
    registry: Registry,
    jobs: Arc<dyn JobStore>,
    nonces: Arc<dyn NonceBackend>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    idempotency_ttl_ms: i64,
    rates: HashMap<String, Rate>,
    max_in_flight: usize,
    tool_timeout: Duration,
}

impl ServerBuilder {
    /// How long an immediate tool may run before the call fails with
    /// `internal` (default 30 s). Long-running tools are not limited.
    pub fn tool_timeout(mut self, t: Duration) -> Self {
        self.tool_timeout = t;
        self
    }

    /// Limits a client to a sustained rate with a burst (token bucket).
    pub fn rate_limit(mut self, client_id: &str, rate: Rate) -> Self {
        self.rates.insert(client_id.to_owned(), rate);
        self
    }

    /// Most requests handled at once; more are refused with `overloaded`
    /// rather than queued without bound (default 1024).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Adds a client with its active keys (1 to 3) and allowed tools.
    pub fn client(
        mut self,
        id: &str,
        keys: Vec<VerifyingKey>,
        tools: ToolFilter,
    ) -> Result<Self, KeyringError> {
        self.keyring.insert(id, keys)?;
        self.permissions.insert(id.to_owned(), tools);
        Ok(self)
    }

    /// Sets the timestamp window (± ms).
    pub fn max_skew_ms(mut self, ms: u64) -> Self {
        self.max_skew_ms = ms;
        self
    }

    /// Sets JSON parsing limits.
    pub fn parse_limits(mut self, limits: lacre_proto::ParseLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Registers more tools.
    pub fn tools(mut self, f: impl FnOnce(&mut Registry)) -> Self {
        f(&mut self.registry);
        self
    }

    /// Uses another job store (default: in memory).
    pub fn job_store(mut self, store: Arc<dyn JobStore>) -> Self {
        self.jobs = store;
        self
    }

    /// Uses another nonce store (default: in memory).
    pub fn nonce_store(mut self, store: Arc<dyn NonceBackend>) -> Self {
        self.nonces = store;
        self
    }

    /// Uses another clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses another id source (default: OS randomness).
    pub fn ids(mut self, ids: Arc<dyn IdSource>) -> Self {
        self.ids = ids;
        self
    }

    /// How long idempotency records are kept (default 24 h).
    pub fn idempotency_ttl_ms(mut self, ms: i64) -> Self {
        self.idempotency_ttl_ms = ms;
        self
    }

    /// The server.
    pub fn build(self) -> Server {
        let mut verify = VerifyConfig::new(self.server_id.clone());
        verify.max_skew_ms = self.max_skew_ms;
        verify.limits = self.limits;
        Server {
            inner: Arc::new(Inner {
                verify,
                signer: ResponseSigner::new(self.server_id, self.key),
                keyring: self.keyring,
                permissions: self.permissions,
                registry: Arc::new(self.registry),
                jobs: self.jobs,
                nonces: self.nonces,
                clock: self.clock,
                ids: self.ids,
                idempotency_ttl_ms: self.idempotency_ttl_ms,
                rates: RateLimiter::new(self.rates),
                in_flight: Arc::new(tokio::sync::Semaphore::new(self.max_in_flight)),
                metrics: crate::metrics::Metrics::default(),
                job_counts: std::sync::Mutex::new(None),
                tool_timeout: self.tool_timeout,
            }),
        }
    }
}

struct Inner {
    verify: VerifyConfig,
    signer: ResponseSigner,
    keyring: Keyring,
    permissions: HashMap<String, ToolFilter>,
    registry: Arc<Registry>,
    jobs: Arc<dyn JobStore>,
    nonces: Arc<dyn NonceBackend>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    idempotency_ttl_ms: i64,
    rates: RateLimiter,
    in_flight: Arc<tokio::sync::Semaphore>,
    metrics: crate::metrics::Metrics,
    tool_timeout: Duration,
    job_counts: std::sync::Mutex<Option<CachedCounts>>,
}

/// A protocol server: cheap to clone, shared by every transport.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

type Outcome = Result<(Status, Map), CallError>;

fn obj(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Map {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn decode_args<A: ToolArgs>(args: &Map) -> Result<A, CallError> {
    decode::<A>(args).map_err(CallError::InvalidArgs)
}

impl Server {
    /// Starts building a server with its id and signing key; the built-in
    /// tools are registered, stores are in memory.
    pub fn builder(server_id: impl Into<String>, key: SigningKey) -> ServerBuilder {
        let mut registry = Registry::new();
        builtin::register(&mut registry);
        ServerBuilder {
            server_id: server_id.into(),
            key,
            max_skew_ms: lacre_proto::DEFAULT_MAX_SKEW_MS,
            limits: lacre_proto::ParseLimits::default(),
            keyring: Keyring::new(),
            permissions: HashMap::new(),
            registry,
            jobs: Arc::new(MemoryJobStore::new()),
            nonces: Arc::new(MemoryNonceStore::new()),
            clock: Arc::new(SystemClock),
            ids: Arc::new(OsRandomIds),
            idempotency_ttl_ms: 24 * 3600 * 1000,
            rates: HashMap::new(),
            max_in_flight: 1024,
            tool_timeout: Duration::from_secs(30),
        }
    }

    /// This server's id.
    pub fn server_id(&self) -> &str {
        self.inner.signer.server_id()
    }

    /// The fingerprint of this server's key.
    pub fn fingerprint(&self) -> String {
        self.inner.signer.key().fingerprint()
    }

    /// The job store.
    pub fn job_store(&self) -> &Arc<dyn JobStore> {
        &self.inner.jobs
    }

    /// The nonce store.
    pub fn nonce_store(&self) -> &Arc<dyn NonceBackend> {
        &self.inner.nonces
    }

    /// Starts the worker pool that runs long-running tools.
    pub fn start_workers(&self, config: WorkerConfig) -> Workers {
        Workers::spawn(
            config,
            Arc::clone(&self.inner.jobs),
            Arc::clone(&self.inner.registry),
            Arc::clone(&self.inner.clock),
        )
    }

    /// What `GET /.well-known/lacre.json` publishes: what a client needs
    /// to decide whether to trust this server.
    pub fn well_known(&self) -> serde_json::Value {
        let key = self.inner.signer.key();
        let mut doc = serde_json::json!({
            "server_id": self.server_id(),
            "version": lacre_proto::VERSION,
            "algorithm": key.algorithm().as_str(),
            "algorithms": ["hmac-sha256", "ed25519"],
            "fingerprint": self.fingerprint(),
            "max_skew_ms": self.inner.verify.max_skew_ms,
        });
        if let (Some(pk), Some(map)) = (
            key.verifying_key().ed25519_public_bytes(),
            doc.as_object_mut(),
        ) {
            map.insert(
                "public_key_hex".into(),
                serde_json::Value::String(to_hex(&pk)),
            );
        }
        doc
    }

    /// A signed error reply for a request that never reached the
    /// dispatcher (too large, overloaded, rate limited...).
    pub fn error_reply(&self, request_id: &str, err: &CallError) -> Reply {
        let code = err.code();
        // Messages may quote what the caller sent (a bad argument): keep the
        // reply small, whatever the request was.
        let message = truncate_message(err.public_message(), MAX_ERROR_MESSAGE_CHARS);
        let (response, wire) =
            self.inner
                .signer
                .error_json(request_id, self.inner.clock.now_ms(), &code, &message);
        Reply {
            http_status: http_status(&code),
            response,
            retry_after_ms: match err {
                CallError::RateLimited { retry_after_ms } => Some(*retry_after_ms),
                _ => None,
            },
            wire,
        }
    }

    /// Handles one request body and returns the signed reply. Never fails:
    /// every error becomes a signed error response.
    pub async fn handle(&self, body: &[u8]) -> Reply {
        let started = std::time::Instant::now();
        let mut who = Caller::default();
        let reply = self.handle_inner(body, &mut who).await;
        // Outcome labels are static (a status or a known code), so the
        // metrics need no allocation and their label set stays bounded.
        let outcome: &'static str = match reply.response.error.as_deref() {
            Some(e) => ErrorCode::split_error_text(e)
                .0
                .known_str()
                .unwrap_or("other"),
            None => reply.response.status.as_str(),
        };
        let latency = started.elapsed();
        self.inner.metrics.record(who.tool, outcome, latency);
        const VERIFICATION_CODES: [&str; 8] = [
            "bad_envelope",
            "unsupported_version",
            "wrong_server",
            "unknown_client",
            "bad_signature",
            "stale_timestamp",
            "replayed_nonce",
            "store_unavailable",
        ];
        if who.tool == "-" && VERIFICATION_CODES.contains(&outcome) {
            self.inner.metrics.record_verification_failure(outcome);
        }
        // One line per request. Never the signature, the arguments or keys.
        tracing::info!(
            target: "lacre::request",
            request_id = %reply.response.request_id,
            client_id = %who.client_id,
            tool = %who.tool,
            status = %outcome,
            http = reply.http_status,
            latency_us = latency.as_micros() as u64,
        );
        reply
    }

    /// The metrics page (`GET /metrics`), in the Prometheus text format.
    pub async fn metrics_text(&self) -> String {
        // Counting jobs is a query on a SQL store: do it at most every 5 s,
        // however often (and by whom) /metrics is fetched.
        let cached = self.inner.job_counts.lock().ok().and_then(|c| {
            c.as_ref()
                .filter(|(at, _)| at.elapsed() < Duration::from_secs(5))
                .map(|(_, v)| v.clone())
        });
        let jobs = match cached {
            Some(v) => v,
            None => {
                let fresh = self.inner.jobs.count_by_state().await.unwrap_or_default();
                if let Ok(mut c) = self.inner.job_counts.lock() {
                    *c = Some((std::time::Instant::now(), fresh.clone()));
                }
                fresh
            }
        };
        let jobs: Vec<(&str, u64)> = jobs.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        self.inner.metrics.render(&jobs, self.inner.nonces.len())
    }

    async fn handle_inner(&self, body: &[u8], who: &mut Caller) -> Reply {
        let inner = &*self.inner;
        let Ok(_permit) = inner.in_flight.try_acquire() else {
            return self.error_reply("", &CallError::Overloaded);
        };
        let auth = match authenticate(body, &inner.verify, &inner.keyring, &*inner.clock) {
            Ok(a) => a,
            Err(rej) => {
                tracing::debug!(code = %rej.error.code(), reason = %rej.error, "request rejected");
                return self.error_reply(&rej.request_id, &CallError::Rejected(rej.error));
            }
        };
        let env = auth.envelope();
        who.client_id = env.client_id.clone();
        let nonce = inner
            .nonces
            .check_and_record(
                &env.client_id,
                &env.nonce,
                auth.nonce_expires_at_ms(),
                auth.checked_at_ms(),
            )
            .await;
        let verified = match auth.finish(nonce) {
            Ok(v) => v,
            Err(rej) => return self.error_reply(&rej.request_id, &CallError::Rejected(rej.error)),
        };
        // From here on the caller is authenticated: label by tool (bounded
        // to the registry, so hostile names cannot grow the metrics).
        who.tool = match inner.registry.get(&verified.tool) {
            Some(t) => t.static_name(),
            None => "unknown",
        };
        if let Err(retry_after_ms) = inner.rates.check(&verified.client_id, inner.clock.now_ms()) {
            return self.error_reply(
                &verified.request_id,
                &CallError::RateLimited { retry_after_ms },
            );
        }
        let outcome = self.dispatch(&verified).await;
        let now = inner.clock.now_ms();
        match outcome {
            Ok((status, result)) => {
                let (response, wire) =
                    inner
                        .signer
                        .success_json(&verified.request_id, now, status, Some(result));
                Reply {
                    http_status: if status == Status::Accepted { 202 } else { 200 },
                    response,
                    retry_after_ms: None,
                    wire,
                }
            }
            Err(err) => {
                if let CallError::Store(e) = &err {
                    tracing::warn!(error = %e, request_id = %verified.request_id, "store failure");
                }
                self.error_reply(&verified.request_id, &err)
            }
        }
    }

    async fn dispatch(&self, env: &Verified<Envelope>) -> Outcome {
        let inner = &*self.inner;
        let tool = inner.registry.get(&env.tool);
        let system = tool.is_some_and(|t| matches!(t.handler, Handler::System));
        // The system tools (identity and the caller's own jobs) are always
        // allowed. For anything else, a client with an allow-list is told
        // `forbidden_tool` whether or not the tool exists, so the list does
        // not leak which tools the server has.
        if !system && !self.allowed(&env.client_id, &env.tool) {
            return Err(CallError::ForbiddenTool(env.tool.clone()));
        }
        let tool = tool.ok_or_else(|| CallError::UnknownTool(env.tool.clone()))?;
        match &tool.handler {
            Handler::System => self.system_tool(env).await,
            Handler::Immediate(f) => {
                let ctx = CallContext {
                    client_id: env.client_id.clone(),
                    request_id: env.request_id.clone(),
                };
                match crate::limits::timeout_lazy(self.inner.tool_timeout, f(env.args.clone(), ctx))
                    .await
                {
                    Ok(Ok(result)) => Ok((Status::Ok, result)),
                    Ok(Err(ToolError::InvalidArgs(m))) => Err(CallError::InvalidArgs(m)),
                    Ok(Err(ToolError::Failed(m))) => Err(CallError::Internal(m)),
                    Err(_) => Err(CallError::Internal(format!(
                        "tool {:?} did not answer within {} ms",
                        env.tool,
                        self.inner.tool_timeout.as_millis()
                    ))),
                }
            }
            Handler::Job(_) => self.start_job(env, tool).await,
        }
    }

    fn allowed(&self, client_id: &str, tool: &str) -> bool {
        self.inner
            .permissions
            .get(client_id)
            .is_some_and(|f| f.allows(tool))
    }

    async fn system_tool(&self, env: &Verified<Envelope>) -> Outcome {
        match env.tool.as_str() {
            "server_identity" => {
                decode_args::<builtin::ServerIdentityIn>(&env.args)?;
                Ok((Status::Ok, self.identity(&env.client_id)))
            }
            "poll_job" => {
                self.poll_job(env, decode_args::<PollJobIn>(&env.args)?)
                    .await
            }
            "cancel_job" => {
                self.cancel_job(env, decode_args::<CancelJobIn>(&env.args)?)
                    .await
            }
            "list_jobs" => {
                self.list_jobs(env, decode_args::<ListJobsIn>(&env.args)?)
                    .await
            }
            other => Err(CallError::UnknownTool(other.to_owned())),
        }
    }

    fn identity(&self, client_id: &str) -> Map {
        let inner = &*self.inner;
        let tools: Vec<Value> = inner
            .registry
            .iter()
            .filter(|t| matches!(t.handler, Handler::System) || self.allowed(client_id, t.name()))
            .map(|t| {
                Value::Object(obj([
                    ("name", Value::from(t.name())),
                    ("description", Value::from(t.description())),
                    (
                        "long_running",
                        Value::Bool(t.kind() == crate::tool::ToolKind::LongRunning),
                    ),
                    ("args_schema", Value::from_serde(t.schema().clone())),
                ]))
            })
            .collect();
        let skew = i64::try_from(inner.verify.max_skew_ms).unwrap_or(i64::MAX);
        let capabilities = obj([
            ("version", Value::from(lacre_proto::VERSION)),
            (
                "algorithms",
                Value::Array(vec![Value::from("hmac-sha256"), Value::from("ed25519")]),
            ),
            (
                "server_algorithm",
                Value::from(inner.signer.key().algorithm().as_str()),
            ),
            ("max_skew_ms", Value::from(skew)),
            ("tools", Value::Array(tools)),
        ]);
        obj([
            ("server_id", Value::from(self.server_id())),
            ("fingerprint", Value::from(self.fingerprint())),
            ("capabilities", Value::Object(capabilities)),
        ])
    }

    /// Hash of the request without nonce and timestamp: what makes a retry
    /// the same request.
    fn request_hash(env: &Envelope) -> String {
        let mut m = Map::new();
        m.insert("args".into(), Value::Object(env.args.clone()));
        m.insert("server_id".into(), Value::from(env.server_id.as_str()));
        m.insert("tool".into(), Value::from(env.tool.as_str()));
        to_hex(&Sha256::digest(lacre_proto::canonical(&Value::Object(m))))
    }

    async fn start_job(&self, env: &Verified<Envelope>, tool: &Tool) -> Outcome {
        let inner = &*self.inner;
        tool.validate(&env.args).map_err(CallError::InvalidArgs)?;
        let job = NewJob {
            id: inner.ids.new_id().ok_or_else(|| {
                CallError::Internal("no randomness available for a job id".to_owned())
            })?,
            client_id: env.client_id.clone(),
            request_id: env.request_id.clone(),
            request_hash: Self::request_hash(env),
            tool: env.tool.clone(),
            args: env.args.clone(),
            now_ms: inner.clock.now_ms(),
            idempotency_ttl_ms: inner.idempotency_ttl_ms,
        };
        match inner.jobs.create(job).await? {
            CreateOutcome::Created(job) | CreateOutcome::Existing(job) => {
                Ok((Status::Accepted, obj([("job_id", Value::from(job.id))])))
            }
            CreateOutcome::Conflict => Err(CallError::IdempotencyConflict(env.request_id.clone())),
        }
    }

    async fn owned_job(&self, client_id: &str, job_id: &str) -> Result<JobRecord, CallError> {
        match self.inner.jobs.get(job_id).await? {
            Some(job) if job.client_id == client_id => Ok(job),
            // Someone else's job looks exactly like no job.
            _ => Err(CallError::UnknownJob(job_id.to_owned())),
        }
    }

    async fn poll_job(&self, env: &Verified<Envelope>, args: PollJobIn) -> Outcome {
        let mut changes = self.inner.jobs.changes();
        changes.borrow_and_update();
        let mut job = self.owned_job(&env.client_id, &args.job_id).await?;
        let wait = Duration::from_millis(args.wait_ms.unwrap_or(0));
        if !wait.is_zero() && !job.state.is_terminal() {
            let deadline = tokio::time::Instant::now() + wait;
            let seen = job.version;
            loop {
                tokio::select! {
                    changed = changes.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                    _ = tokio::time::sleep_until(deadline) => break,
                    // Fallback for stores whose other replicas cannot wake
                    // us (or a missed wake-up): look again every second.
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                job = self.owned_job(&env.client_id, &args.job_id).await?;
                if job.version != seen {
                    break;
                }
            }
        }
        job_reply(job)
    }

    async fn cancel_job(&self, env: &Verified<Envelope>, args: CancelJobIn) -> Outcome {
        let now = self.inner.clock.now_ms();
        match self
            .inner
            .jobs
            .cancel(&args.job_id, &env.client_id, now)
            .await?
        {
            Some(job) => Ok((
                Status::Ok,
                obj([
                    ("job_id", Value::from(job.id)),
                    ("state", Value::from(job.state.as_str())),
                ]),
            )),
            None => Err(CallError::UnknownJob(args.job_id)),
        }
    }

    async fn list_jobs(&self, env: &Verified<Envelope>, args: ListJobsIn) -> Outcome {
        let state = args.state.as_deref().and_then(JobState::parse);
        let limit = usize::try_from(args.limit.unwrap_or(100)).unwrap_or(100);
        let jobs = self.inner.jobs.list(&env.client_id, state, limit).await?;
        let items = jobs
            .into_iter()
            .map(|j| Value::Object(job_summary(&j)))
            .collect();
        Ok((Status::Ok, obj([("jobs", Value::Array(items))])))
    }
}

fn job_summary(job: &JobRecord) -> Map {
    let mut m = obj([
        ("job_id", Value::from(job.id.as_str())),
        ("tool", Value::from(job.tool.as_str())),
        ("state", Value::from(job.state.as_str())),
        ("created_ms", Value::from(job.created_ms)),
        ("updated_ms", Value::from(job.updated_ms)),
    ]);
    if let Some(p) = job.progress.and_then(Value::float) {
        m.insert("progress".into(), p);
    }
    if let Some(msg) = &job.message {
        m.insert("message".into(), Value::from(msg.as_str()));
    }
    m
}

fn job_reply(job: JobRecord) -> Outcome {
    match job.state {
        JobState::Queued | JobState::Running => {
            let mut m = obj([
                ("job_id", Value::from(job.id.as_str())),
                ("state", Value::from(job.state.as_str())),
            ]);
            if let Some(p) = job.progress.and_then(Value::float) {
                m.insert("progress".into(), p);
            }
            if let Some(msg) = job.message {
                m.insert("message".into(), Value::from(msg));
            }
            Ok((Status::Running, m))
        }
        JobState::Done => Ok((Status::Done, job.result.unwrap_or_default())),
        JobState::Failed => Err(CallError::JobFailed(
            job.error.unwrap_or_else(|| "job failed".to_owned()),
        )),
        JobState::Cancelled => Err(CallError::JobCancelled),
    }
}

impl Reply {
    /// The reply's bytes on the wire.
    pub fn to_json(&self) -> Vec<u8> {
        self.wire.clone()
    }

    /// The reply's bytes on the wire, without a copy.
    pub fn into_json(self) -> Vec<u8> {
        self.wire
    }
}

impl KeyLookup for Server {
    fn client_keys(&self, client_id: &str) -> Option<&[VerifyingKey]> {
        self.inner.keyring.client_keys(client_id)
    }
}
