//! The dispatcher: verifies a request, routes it to its tool (once, by
//! the registry), and signs the reply. Transports (HTTP, stdio) only move
//! bytes in and out of [`Server::handle`]; each maps the reply's typed
//! [`ReplyKind`] to its own framing (the HTTP status lives in
//! [`crate::http`]).

use crate::access::ToolFilter;
use crate::builder::ServerBuilder;
use crate::error::CallError;
use crate::ids::IdSource;
use crate::jobs::{CreateOutcome, JobLimit, JobState, JobStore, NewJob, WorkerConfig, Workers};
use crate::limits::RateLimiter;
use crate::nonce::NonceBackend;
use crate::system::SystemContext;
use crate::tool::{CallContext, Handler, Registry, Tool, ToolError, ToolOutcome};
use crate::ClientMap;
use lacre_proto::builtin::{encode_result, Accepted};
use lacre_proto::{
    authenticate, to_hex, Clock, Envelope, ErrorCode, KeyLookup, Keyring, Map, Response,
    ResponseSigner, SigningKey, Status, Value, Verified, VerifyConfig, VerifyingKey,
};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

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
    /// The tool the request named (kept only for the audit log).
    tool_name: String,
}

impl Default for Caller {
    fn default() -> Self {
        Caller {
            client_id: String::new(),
            tool: "-",
            tool_name: String::new(),
        }
    }
}

/// What a reply says, typed: the status of a success or the code of an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyKind {
    /// A success with this status (`ok`, `accepted`, `running`, `done`).
    Success(Status),
    /// An error with this code.
    Error(ErrorCode),
}

impl ReplyKind {
    /// A static label: the status or the known error code (`other` for a
    /// code outside the SPEC's table). Metrics and logs use it.
    pub fn label(&self) -> &'static str {
        match self {
            ReplyKind::Success(s) => s.as_str(),
            ReplyKind::Error(code) => code.known_str().unwrap_or("other"),
        }
    }
}

/// A signed reply with its typed outcome.
#[derive(Debug, Clone)]
pub struct Reply {
    /// What the reply says, for the transport (HTTP status) and metrics.
    pub kind: ReplyKind,
    /// The signed response.
    pub response: Response,
    /// For `rate_limited`: when to retry (sent as HTTP `Retry-After`).
    pub retry_after_ms: Option<u64>,
    /// The response's wire form (serialized once, when it was signed).
    wire: Vec<u8>,
}

pub(crate) struct Inner {
    pub(crate) verify: VerifyConfig,
    pub(crate) signer: ResponseSigner,
    pub(crate) keyring: Keyring,
    pub(crate) permissions: ClientMap<ToolFilter>,
    /// `server_identity` as each client sees it.
    /// The tools and identity documents of the moment.
    pub(crate) catalog: crate::catalog::Live,
    pub(crate) jobs: Arc<dyn JobStore>,
    pub(crate) nonces: Arc<dyn NonceBackend>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<dyn IdSource>,
    pub(crate) idempotency_ttl_ms: i64,
    pub(crate) rates: RateLimiter,
    /// Each client's own places (its limits).
    pub(crate) client_slots: ClientMap<crate::limits::ClientSlots>,
    pub(crate) in_flight: Arc<tokio::sync::Semaphore>,
    /// `max_in_flight`: the places `in_flight` started with.
    pub(crate) max_in_flight: usize,
    pub(crate) metrics: crate::metrics::Metrics,
    pub(crate) tool_timeout: Duration,
    pub(crate) job_counts: std::sync::Mutex<Option<CachedCounts>>,
    /// More metrics from the embedding program (the gateway's upstreams).
    pub(crate) extra_metrics: std::sync::OnceLock<MetricsSource>,
    /// Clients' webhook endpoints.
    pub(crate) webhooks: ClientMap<crate::webhooks::Endpoint>,
    /// The audit log's queue, once [`Server::start_audit`] ran.
    pub(crate) audit: std::sync::OnceLock<crate::audit::AuditSink>,
}

/// Produces lines of the Prometheus text format to append to `/metrics`.
pub type MetricsSource = Arc<dyn Fn() -> String + Send + Sync>;

/// A request's place among those handled at once; released on drop.
#[derive(Debug)]
pub struct Admission {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// The places a request holds while it is handled (the global one, its
/// client's), which a long poll gives back while it waits.
#[derive(Clone, Default)]
pub(crate) struct Held(Arc<std::sync::Mutex<(Option<Admission>, Option<OwnedSemaphorePermit>)>>);

impl Held {
    fn new(admission: Admission) -> Held {
        Held(Arc::new(std::sync::Mutex::new((Some(admission), None))))
    }

    fn keep(&self, permit: OwnedSemaphorePermit) {
        if let Ok(mut g) = self.0.lock() {
            g.1 = Some(permit);
        }
    }

    /// Gives every place back.
    pub(crate) fn release(&self) {
        if let Ok(mut g) = self.0.lock() {
            *g = (None, None);
        }
    }
}

/// A protocol server: cheap to clone, shared by every transport.
#[derive(Clone)]
pub struct Server {
    pub(crate) inner: Arc<Inner>,
}

/// The verification codes counted apart in the metrics (refusals before a
/// tool was chosen).
const VERIFICATION_CODES: [ErrorCode; 8] = [
    ErrorCode::BadEnvelope,
    ErrorCode::UnsupportedVersion,
    ErrorCode::WrongServer,
    ErrorCode::UnknownClient,
    ErrorCode::BadSignature,
    ErrorCode::StaleTimestamp,
    ErrorCode::ReplayedNonce,
    ErrorCode::StoreUnavailable,
];

impl Server {
    /// Starts building a server with its id and signing key; the built-in
    /// tools are registered, stores are in memory.
    pub fn builder(server_id: impl Into<String>, key: SigningKey) -> ServerBuilder {
        ServerBuilder::new(server_id.into(), key)
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

    /// The tools offered now.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.inner.catalog.load().registry)
    }

    /// Changes the tools while the server runs: `f` edits a copy of the
    /// registry, which then replaces the current one for every request and
    /// worker that starts after it (those under way keep the tool they
    /// found). Clients' `server_identity` answers follow.
    pub fn update_tools(&self, f: impl FnOnce(&mut Registry)) {
        let inner = &*self.inner;
        inner
            .catalog
            .update(f, &inner.signer, &inner.verify, &inner.permissions);
    }

    /// Starts the worker pool that runs long-running tools.
    pub fn start_workers(&self, config: WorkerConfig) -> Workers {
        Workers::spawn_live(
            config,
            Arc::clone(&self.inner.jobs),
            Arc::clone(&self.inner.catalog.current),
            Arc::clone(&self.inner.clock),
        )
    }

    /// Starts the loop that delivers webhooks (SPEC §9.6), or `None` when no
    /// client has an endpoint. Every replica may run one: each event is
    /// claimed by one at a time.
    pub fn start_deliveries(
        &self,
        settings: crate::webhooks::WebhookSettings,
    ) -> Result<Option<crate::webhooks::Deliveries>, String> {
        if self.inner.webhooks.is_empty() {
            return Ok(None);
        }
        crate::webhooks::Deliveries::spawn(self.clone(), settings).map(Some)
    }

    /// Starts the audit log (SPEC §10.7): from now on every authenticated
    /// request and its reply are appended to `store`, in a new chain whose
    /// writer is returned (finish it at shutdown). A second start is
    /// refused.
    pub fn start_audit(
        &self,
        store: Arc<dyn crate::audit::AuditStore>,
        settings: crate::audit::AuditSettings,
    ) -> Result<crate::audit::AuditWriter, String> {
        if self.inner.audit.get().is_some() {
            return Err("the audit log is already started".to_owned());
        }
        let chain = self
            .inner
            .ids
            .new_id()
            .ok_or("no randomness available for the audit chain id")?;
        let (sink, writer) =
            crate::audit::AuditWriter::spawn(store, chain, settings, Arc::clone(&self.inner.clock));
        self.inner
            .audit
            .set(sink)
            .map_err(|_| "the audit log is already started".to_owned())?;
        Ok(writer)
    }

    /// The signed reply of an outcome that answers the request
    /// `request_id` without being bound to its bytes (a notification
    /// carries the reply of the request that started the job).
    pub(crate) fn unbound_reply(&self, request_id: &str, outcome: ToolOutcome) -> Reply {
        match outcome {
            Ok((status, result)) => {
                let now = self.inner.clock.now_ms();
                let (response, wire) =
                    self.inner
                        .signer
                        .success_json(request_id, now, status, Some(result));
                Reply {
                    kind: ReplyKind::Success(status),
                    response,
                    retry_after_ms: None,
                    wire,
                }
            }
            Err(err) => self.refusal(request_id, &err, None),
        }
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
            "fingerprint_sha256": key.verifying_key().fingerprint_sha256(),
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
            // The same key as Standard Webhooks writes it, for receivers of
            // `v1a` notifications (SPEC §9.5).
            if let Some(whpk) = lacre_proto::webhook::public_key_text(&key.verifying_key()) {
                map.insert("webhook_public_key".into(), serde_json::Value::String(whpk));
            }
        }
        doc
    }

    /// A signed error reply for a request whose bytes were not read (too
    /// large, overloaded, unreadable): `request_id` `""`, bound to nothing.
    pub fn error_reply(&self, request_id: &str, err: &CallError) -> Reply {
        self.refusal(request_id, err, None)
    }

    /// A signed error reply bound to the request's bytes (SPEC §6.5): its
    /// `result` is `{"request_sha256": ...}`, so that only the sender of
    /// these exact bytes can take it as the answer to its request.
    fn bound_error(&self, request: &[u8], request_id: &str, err: &CallError) -> Reply {
        self.refusal(request_id, err, Some(request))
    }

    fn refusal(&self, request_id: &str, err: &CallError, request: Option<&[u8]>) -> Reply {
        let code = err.code();
        // Messages may quote what the caller sent (a bad argument): keep the
        // reply small, whatever the request was.
        let message = truncate_message(err.public_message(), MAX_ERROR_MESSAGE_CHARS);
        let now = self.inner.clock.now_ms();
        let (response, wire) = self
            .inner
            .signer
            .error_json(request_id, now, &code, &message, request);
        Reply {
            kind: ReplyKind::Error(code),
            response,
            retry_after_ms: match err {
                CallError::RateLimited { retry_after_ms } => Some(*retry_after_ms),
                CallError::ClientLimit { .. } => Some(1000),
                _ => None,
            },
            wire,
        }
    }

    /// A place among the requests handled at once (`max_in_flight`), or
    /// `None` when the server is full. Transports take it before they
    /// buffer a request body, so memory is bounded before anyone is
    /// authenticated.
    pub fn admit(&self) -> Option<Admission> {
        Arc::clone(&self.inner.in_flight)
            .try_acquire_owned()
            .ok()
            .map(|permit| Admission { _permit: permit })
    }

    /// Requests admitted and not yet answered (long polls that gave their
    /// place back while they wait are not counted): the
    /// `lacre_requests_in_flight` gauge.
    pub fn in_flight(&self) -> usize {
        self.inner
            .max_in_flight
            .saturating_sub(self.inner.in_flight.available_permits())
    }

    /// Handles one request body and returns the signed reply. Never fails:
    /// every error becomes a signed error response.
    pub async fn handle(&self, body: &[u8]) -> Reply {
        match self.admit() {
            Some(admission) => self.handle_admitted(body, admission).await,
            None => self.bound_error(body, "", &CallError::Overloaded),
        }
    }

    /// [`Server::handle`] for a request already admitted.
    pub async fn handle_admitted(&self, body: &[u8], admission: Admission) -> Reply {
        let started = std::time::Instant::now();
        let mut who = Caller::default();
        let held = Held::new(admission);
        let reply = self.handle_inner(body, &mut who, &held).await;
        held.release();
        // Outcome labels are static (a status or a known code), so the
        // metrics need no allocation and their label set stays bounded.
        let outcome = reply.kind.label();
        let latency = started.elapsed();
        self.inner.metrics.record(who.tool, outcome, latency);
        if let ReplyKind::Error(code) = &reply.kind {
            if who.tool == "-" && VERIFICATION_CODES.contains(code) {
                self.inner.metrics.record_verification_failure(outcome);
            }
        }
        // The audit log: what an authenticated client sent, and the answer.
        if let Some(audit) = self.inner.audit.get().filter(|_| !who.client_id.is_empty()) {
            audit
                .record(crate::audit::Pending {
                    client_id: who.client_id.clone(),
                    tool: std::mem::take(&mut who.tool_name),
                    request_id: reply.response.request_id.clone(),
                    at_ms: reply.response.ts_ms,
                    request: body.to_vec(),
                    reply: reply.to_json(),
                })
                .await;
        }
        // One line per request. Never the signature, the arguments or keys.
        tracing::info!(
            target: "lacre::request",
            // As strings (quoted and escaped like `?`), which the CLI's
            // log format writes without a `fmt` call.
            request_id = reply.response.request_id.as_str(),
            client_id = who.client_id.as_str(),
            tool = %who.tool,
            status = %outcome,
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
        let nonces = crate::metrics::NonceGauges {
            remembered: self.inner.nonces.len(),
            memory_bytes: self.inner.nonces.memory_bytes(),
        };
        let mut page = self.inner.metrics.render(&jobs, nonces, self.in_flight());
        if let Some(extra) = self.inner.extra_metrics.get() {
            page.push_str(&extra());
        }
        page
    }

    /// Appends what `source` produces to every `/metrics` page (once per
    /// server; a second source is refused and returned).
    pub fn set_metrics_source(&self, source: MetricsSource) -> Result<(), MetricsSource> {
        self.inner.extra_metrics.set(source)
    }

    async fn handle_inner(&self, body: &[u8], who: &mut Caller, held: &Held) -> Reply {
        let inner = &*self.inner;
        let auth = match authenticate(body, &inner.verify, &inner.keyring, &*inner.clock) {
            Ok(a) => a,
            Err(rej) => {
                tracing::debug!(code = %rej.error.code(), reason = ?rej.error.to_string(), "request rejected");
                return self.bound_error(body, &rej.request_id, &CallError::Rejected(rej.error));
            }
        };
        let env = auth.envelope();
        who.client_id = env.client_id.clone();
        if inner.audit.get().is_some() {
            who.tool_name = env.tool.clone();
        }
        let nonce = inner.nonces.check_and_record(&auth.nonce_use()).await;
        // The time the timestamp was checked at serves the rate limit too.
        let checked_at_ms = auth.nonce_use().now_ms;
        let mut verified = match auth.finish(nonce) {
            Ok(v) => v,
            Err(rej) => {
                return self.bound_error(body, &rej.request_id, &CallError::Rejected(rej.error))
            }
        };
        // From here on the caller is authenticated: label by tool (bounded
        // to the registry, so hostile names cannot grow the metrics).
        let catalog = inner.catalog.load();
        let tool = catalog.registry.get(&verified.tool);
        who.tool = tool.map_or("unknown", |t| t.static_name());
        if let Err(retry_after_ms) = inner.rates.check(&verified.client_id, checked_at_ms) {
            return self.bound_error(
                body,
                &verified.request_id,
                &CallError::RateLimited { retry_after_ms },
            );
        }
        // The client's own share of the requests in flight: one client
        // cannot take every place.
        if let Some(slots) = inner.client_slots.get(&verified.client_id) {
            match Arc::clone(&slots.in_flight).try_acquire_owned() {
                Ok(permit) => held.keep(permit),
                Err(_) => {
                    let err = CallError::ClientLimit {
                        what: "too many requests in flight",
                        limit: slots.limits.max_in_flight as u64,
                    };
                    return self.bound_error(body, &verified.request_id, &err);
                }
            }
        }
        let outcome = self.dispatch(&mut verified, tool, held, &catalog).await;
        match outcome {
            Ok((status, result)) => {
                let now = inner.clock.now_ms();
                let (response, wire) =
                    inner
                        .signer
                        .success_json(&verified.request_id, now, status, Some(result));
                Reply {
                    kind: ReplyKind::Success(status),
                    response,
                    retry_after_ms: None,
                    wire,
                }
            }
            Err(err) => {
                if let CallError::Store(e) = &err {
                    tracing::warn!(error = %e, request_id = ?verified.request_id, "store failure");
                }
                self.bound_error(body, &verified.request_id, &err)
            }
        }
    }

    /// Runs the tool the registry found for this request: the one place a
    /// request meets its handler, which is given the arguments (moved out).
    async fn dispatch(
        &self,
        env: &mut Verified<Envelope>,
        tool: Option<&Arc<Tool>>,
        held: &Held,
        catalog: &crate::catalog::Catalog,
    ) -> ToolOutcome {
        let inner = &*self.inner;
        // The system tools (identity and the caller's own jobs) are always
        // allowed. For anything else, a client with an allow-list is told
        // `forbidden_tool` whether or not the tool exists, so the list does
        // not leak which tools the server has.
        let system = tool.is_some_and(|t| t.is_system());
        if !system && !self.allowed(&env.client_id, &env.tool) {
            return Err(CallError::ForbiddenTool(env.tool.clone()));
        }
        let tool = tool.ok_or_else(|| CallError::UnknownTool(env.tool.clone()))?;
        match &tool.handler {
            Handler::System(f) => {
                let ctx = self.system_context(&env.client_id, held, catalog);
                f(env.take_args(), ctx).await
            }
            Handler::Immediate(f) => {
                let ctx = CallContext {
                    client_id: env.client_id.clone(),
                    request_id: env.request_id.clone(),
                };
                let run = crate::limits::catch_panic(f(env.take_args(), ctx));
                match crate::limits::timeout_lazy(inner.tool_timeout, run).await {
                    Ok(Ok(Ok(result))) => Ok((Status::Ok, result)),
                    Ok(Ok(Err(ToolError::InvalidArgs(m)))) => Err(CallError::InvalidArgs(m)),
                    Ok(Ok(Err(ToolError::Failed(m)))) => Err(CallError::Internal(m)),
                    Ok(Ok(Err(ToolError::Reported(m)))) => Err(CallError::ToolError(m)),
                    Ok(Ok(Err(ToolError::Unavailable(m) | ToolError::Requeue(m)))) => {
                        Err(CallError::UpstreamUnavailable(m))
                    }
                    Ok(Err(panic)) => {
                        tracing::error!(tool = %env.tool, panic = ?panic, "tool panicked");
                        Err(CallError::Internal(format!("tool {:?} panicked", env.tool)))
                    }
                    Err(_) => Err(CallError::Internal(format!(
                        "tool {:?} did not answer within {} ms",
                        env.tool,
                        inner.tool_timeout.as_millis()
                    ))),
                }
            }
            Handler::Job(_) => self.start_job(env, tool).await,
        }
    }

    fn system_context(
        &self,
        client_id: &str,
        held: &Held,
        catalog: &crate::catalog::Catalog,
    ) -> SystemContext {
        let inner = &*self.inner;
        SystemContext {
            client_id: client_id.to_owned(),
            held: held.clone(),
            long_polls: inner
                .client_slots
                .get(client_id)
                .map(|s| (Arc::clone(&s.long_polls), s.limits.max_long_polls)),
            jobs: Arc::clone(&inner.jobs),
            has_webhook: inner.webhooks.contains_key(client_id),
            clock: Arc::clone(&inner.clock),
            // Every authenticated client has an entry (identities are built
            // for the same clients as the keyring).
            identity: catalog
                .identities
                .get(client_id)
                .cloned()
                .unwrap_or_default(),
        }
    }

    fn allowed(&self, client_id: &str, tool: &str) -> bool {
        self.inner
            .permissions
            .get(client_id)
            .is_some_and(|f| f.allows(tool))
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

    async fn start_job(&self, env: &mut Verified<Envelope>, tool: &Tool) -> ToolOutcome {
        let inner = &*self.inner;
        tool.validate(&env.args).map_err(CallError::InvalidArgs)?;
        let limits = inner
            .client_slots
            .get(&env.client_id)
            .map_or_else(crate::limits::ClientLimits::default, |s| s.limits);
        let job = NewJob {
            id: inner.ids.new_id().ok_or_else(|| {
                CallError::Internal("no randomness available for a job id".to_owned())
            })?,
            client_id: env.client_id.clone(),
            request_id: env.request_id.clone(),
            request_hash: Self::request_hash(env),
            tool: env.tool.clone(),
            args: env.take_args(),
            now_ms: inner.clock.now_ms(),
            idempotency_ttl_ms: inner.idempotency_ttl_ms,
            max_jobs: limits.max_jobs,
            max_job_bytes: limits.max_job_bytes,
            events: inner
                .webhooks
                .get(&env.client_id)
                .map_or(crate::webhooks::EventMask::NONE, |w| w.events),
        };
        match inner.jobs.create(job).await? {
            CreateOutcome::Created(job) | CreateOutcome::Existing(job) => {
                let accepted = Accepted { job_id: job.id };
                let result = encode_result("accepted", &accepted)
                    .map_err(|e| CallError::Internal(e.to_string()))?;
                Ok((Status::Accepted, result))
            }
            CreateOutcome::Conflict => Err(CallError::IdempotencyConflict(env.request_id.clone())),
            CreateOutcome::OverLimit(JobLimit::Jobs) => Err(CallError::ClientLimit {
                what: "too many queued or running jobs",
                limit: limits.max_jobs,
            }),
            CreateOutcome::OverLimit(JobLimit::Bytes) => Err(CallError::ClientLimit {
                what: "too many bytes of job arguments stored",
                limit: limits.max_job_bytes,
            }),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ed25519_server_publishes_its_webhook_key() {
        let key = SigningKey::ed25519_from_seed(&[3u8; 32]).unwrap();
        let server = Server::builder("s", key.clone()).build();
        let doc = server.well_known();
        let whpk = doc["webhook_public_key"].as_str().unwrap();
        let parsed = lacre_proto::webhook::WebhookKey::parse(whpk).unwrap();
        assert!(
            matches!(parsed, lacre_proto::webhook::WebhookKey::Public(k) if k.fingerprint() == key.verifying_key().fingerprint())
        );
        let hmac = Server::builder("s", SigningKey::hmac(b"k").unwrap()).build();
        assert!(hmac.well_known().get("webhook_public_key").is_none());
    }

    #[test]
    fn the_request_hash_is_the_specs() {
        // SPEC §10.3's example, published there.
        let env = Envelope::parse(
            br#"{"v":"mcp/0.1","request_id":"r","ts_ms":1,"client_id":"c","server_id":"mcp-server-001","tool":"start_long_task","args":{"seconds":2,"payload":{"data":"complete"}},"nonce":"n","signature":""}"#,
            lacre_proto::ParseLimits::default(),
        )
        .unwrap();
        assert_eq!(
            Server::request_hash(&env),
            "ad87a9b9f87aa7f599c46d7da239f986950a59e709aea44e95c4f68d3b46021b"
        );
    }
}
