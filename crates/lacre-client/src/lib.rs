//! # lacre-client
//!
//! Calls tools on a lacre server over HTTP. Every request is signed; every
//! reply is verified (signature, `request_id`, `server_id`) before anything
//! is returned, so a forged or misrouted reply is an error, never a result.
//! Retries after a transport failure re-send the same `request_id` with a
//! fresh nonce and timestamp, so the server's idempotency returns the same
//! job instead of starting a second one.
//!
//! ```no_run
//! # async fn run() -> Result<(), lacre_client::ClientError> {
//! use lacre_client::{Client, ServerTrust};
//! use lacre_proto::SigningKey;
//!
//! let client = Client::builder("http://127.0.0.1:8790/mcp", "client-001", "mcp-server-001")
//!     .key(SigningKey::hmac(b"client_secret_key_456").unwrap())
//!     .trust(ServerTrust::Key(SigningKey::hmac(b"server_secret_key_123").unwrap().verifying_key()))
//!     .build()?;
//! let sum = client.call("batch_sum", serde_json::json!({"numbers": [10, 20, 30]})).await?;
//! assert_eq!(sum.result_json()["total"], 60.0);
//! let job = client.start("start_long_task", serde_json::json!({"seconds": 2})).await?;
//! let result = client.wait(&job, |p| println!("{:?} {:?}", p.progress, p.message)).await?;
//! let tools = client.tools().await?;
//! assert!(tools.iter().any(|t| t.name == "batch_sum"));
//! # Ok(()) }
//! ```

mod error;

pub use error::{ClientError, TransportError};
pub use lacre_proto::builtin::{
    JobProgress, JobState, JobSummary, JobView, ServerIdentity, ToolInfo,
};

use lacre_proto::builtin::{
    decode_result, encode_result, Accepted, CancelJobIn, CancelOutcome, DeliveryList, JobList,
    ListDeliveriesIn, ListJobsIn, PollJobIn, ServerIdentityIn,
};
use lacre_proto::{
    judge_reply, Clock, Envelope, Map, Response, Sent, SigningKey, Status, Value, Verdict,
    VerifyingKey,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How the client decides to trust the server's replies.
#[derive(Debug, Clone)]
pub enum ServerTrust {
    /// The server's verifying key (its HMAC secret, or its Ed25519 public key).
    Key(VerifyingKey),
    /// A pin of the server's key: on first contact the client fetches
    /// `/.well-known/lacre.json`, checks that the published Ed25519 key's
    /// `fingerprint_sha256` starts with this pin (32 to 64 lowercase hex
    /// characters, at least 128 bits), and then trusts that key.
    Fingerprint(String),
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    url: String,
    client_id: String,
    server_id: String,
    key: Option<SigningKey>,
    trust: Option<ServerTrust>,
    call_timeout: Duration,
    total_timeout: Duration,
    retries: u32,
    max_skew_ms: u64,
    clock: Arc<dyn Clock>,
}

impl ClientBuilder {
    /// How far a reply's `ts_ms` may be from this client's clock before
    /// the reply is refused as stale (default 300 000 ms, the protocol's
    /// window): a stored reply cannot be handed back later.
    pub fn max_skew_ms(mut self, ms: u64) -> Self {
        self.max_skew_ms = ms;
        self
    }

    /// The client's signing key (HMAC secret or Ed25519 private key).
    pub fn key(mut self, key: SigningKey) -> Self {
        self.key = Some(key);
        self
    }

    /// How to trust the server.
    pub fn trust(mut self, trust: ServerTrust) -> Self {
        self.trust = Some(trust);
        self
    }

    /// Timeout of one HTTP attempt (default 30 s; long polls add their wait).
    pub fn call_timeout(mut self, t: Duration) -> Self {
        self.call_timeout = t;
        self
    }

    /// Timeout of a whole call, retries included (default 120 s).
    pub fn total_timeout(mut self, t: Duration) -> Self {
        self.total_timeout = t;
        self
    }

    /// Retries after a transport failure (default 3).
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Uses another clock (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The client.
    pub fn build(self) -> Result<Client, ClientError> {
        let key = self
            .key
            .ok_or_else(|| ClientError::Usage("no client key configured".to_owned()))?;
        let trust = self.trust.ok_or_else(|| {
            ClientError::Usage("no way to trust the server configured".to_owned())
        })?;
        let url = reqwest::Url::parse(&self.url).map_err(|source| ClientError::InvalidUrl {
            url: self.url.clone(),
            source: Box::new(source),
        })?;
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(TransportError::Http)?;
        let server_key = match &trust {
            ServerTrust::Key(k) => Some(k.clone()),
            ServerTrust::Fingerprint(pin) => {
                lacre_proto::check_pin(pin).map_err(|e| ClientError::Usage(e.to_string()))?;
                None
            }
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                url,
                client_id: self.client_id,
                server_id: self.server_id,
                key,
                trust,
                server_key: RwLock::new(server_key),
                max_skew_ms: self.max_skew_ms,
                long_poll: RwLock::new(None),
                call_timeout: self.call_timeout,
                total_timeout: self.total_timeout,
                retries: self.retries,
                clock: self.clock,
            }),
        })
    }
}

struct Inner {
    http: reqwest::Client,
    url: reqwest::Url,
    client_id: String,
    server_id: String,
    key: SigningKey,
    trust: ServerTrust,
    server_key: RwLock<Option<VerifyingKey>>,
    /// How far a reply's timestamp may be from this client's clock.
    max_skew_ms: u64,
    /// Whether the server advertises long polling (`None`: not asked yet).
    long_poll: RwLock<Option<bool>>,
    call_timeout: Duration,
    total_timeout: Duration,
    retries: u32,
    clock: Arc<dyn Clock>,
}

/// A lacre client: cheap to clone, safe to share.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// A verified reply of a successful call (status `ok`, `accepted`, `running` or `done`).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The whole signed response.
    pub response: Response,
    /// The response exactly as received.
    pub raw: Vec<u8>,
}

impl Reply {
    /// The `result` object (empty when the server sent `null`).
    pub fn result(&self) -> Map {
        self.response.result.clone().unwrap_or_default()
    }

    /// The `result` as a `serde_json::Value`.
    pub fn result_json(&self) -> serde_json::Value {
        Value::Object(self.result()).to_serde()
    }
}

/// A job started by [`Client::start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobHandle {
    /// The job id.
    pub id: String,
}

/// The built-in tools, which may run twice without harm (reads, and a
/// cancel of what is already cancelled).
const BUILTIN_IDEMPOTENT: [&str; 5] = [
    "server_identity",
    "poll_job",
    "list_jobs",
    "cancel_job",
    "list_deliveries",
];

/// When a transport failure is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Always (up to the retry count): the call is idempotent.
    Always,
    /// Only when the request certainly did not reach the server.
    IfUndelivered,
}

/// Largest reply the client reads (a hostile peer must not exhaust memory).
pub use lacre_proto::MAX_REPLY_BYTES;

/// The system clock (the client's default; tests inject another [`Clock`]).
pub use lacre_proto::SystemClock;

/// Checking a job notification as a receiver (SPEC §9.5): Standard
/// Webhooks `v1` (a `whsec_` secret) and `v1a` (the server's `whpk_` key).
pub use lacre_proto::webhook::{
    verify as verify_webhook, WebhookError, WebhookHeaders, WebhookKey,
};

async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(TransportError::Http)? {
        if out.len() + chunk.len() > cap {
            return Err(TransportError::TooLarge(cap).into());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A fresh UUIDv4. A failing random generator is an error: a fixed nonce
/// or request id would be a replayable constant.
fn random_uuid() -> Result<String, ClientError> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(ClientError::Random)?;
    Ok(lacre_proto::uuid_v4(b))
}

fn to_args<A: Serialize>(args: &A) -> Result<Map, ClientError> {
    match Value::from_serialize(args) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(ClientError::Usage(format!(
            "args must be a json object, got {}",
            other.type_name()
        ))),
        Err(e) => Err(ClientError::Usage(format!(
            "args cannot be serialized: {e}"
        ))),
    }
}

impl Client {
    /// Starts building a client for the server at `url` (e.g.
    /// `http://127.0.0.1:8790/mcp`).
    pub fn builder(url: &str, client_id: &str, server_id: &str) -> ClientBuilder {
        ClientBuilder {
            url: url.to_owned(),
            client_id: client_id.to_owned(),
            server_id: server_id.to_owned(),
            key: None,
            trust: None,
            call_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(120),
            retries: 3,
            max_skew_ms: lacre_proto::DEFAULT_MAX_SKEW_MS,
            clock: Arc::new(SystemClock),
        }
    }

    /// The `client_id`.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The `server_id`.
    pub fn server_id(&self) -> &str {
        &self.inner.server_id
    }

    /// A signed envelope for `tool` with a fresh nonce and timestamp.
    pub fn envelope(
        &self,
        request_id: &str,
        tool: &str,
        args: Map,
    ) -> Result<Envelope, ClientError> {
        let mut env = Envelope {
            request_id: request_id.to_owned(),
            ts_ms: self.inner.clock.now_ms(),
            client_id: self.inner.client_id.clone(),
            server_id: self.inner.server_id.clone(),
            tool: tool.to_owned(),
            args,
            nonce: random_uuid()?,
            signature: String::new(),
        };
        env.sign(&self.inner.key);
        Ok(env)
    }

    async fn server_key(&self) -> Result<VerifyingKey, ClientError> {
        if let Some(k) = self.inner.server_key.read().ok().and_then(|g| g.clone()) {
            return Ok(k);
        }
        let ServerTrust::Fingerprint(expected) = &self.inner.trust else {
            return Err(ClientError::Trust("no server key".to_owned()));
        };
        let url = self
            .inner
            .url
            .join("/.well-known/lacre.json")
            .map_err(|e| ClientError::Usage(e.to_string()))?;
        let resp = self
            .inner
            .http
            .get(url)
            .timeout(self.inner.call_timeout)
            .send()
            .await
            .map_err(TransportError::Http)?;
        let body = read_capped(resp, 64 * 1024).await?;
        let doc: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Trust(format!("bad /.well-known/lacre.json: {e}")))?;
        let published = doc.get("server_id").and_then(serde_json::Value::as_str);
        if published != Some(self.inner.server_id.as_str()) {
            return Err(ClientError::Trust(format!(
                "server publishes server_id {published:?}, expected {:?}",
                self.inner.server_id
            )));
        }
        let pk_hex = doc
            .get("public_key_hex")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| {
                ClientError::Trust(
                    "server has no Ed25519 key; configure its HMAC secret instead of a fingerprint"
                        .to_owned(),
                )
            })?;
        let key = lacre_proto::from_hex(pk_hex)
            .ok()
            .and_then(|b| VerifyingKey::ed25519(&b).ok())
            .ok_or_else(|| {
                ClientError::Trust("server publishes an invalid public key".to_owned())
            })?;
        if !key.matches_pin(expected).unwrap_or(false) {
            return Err(ClientError::Trust(format!(
                "server key fingerprint {} does not match the pinned {expected}",
                key.fingerprint_sha256()
            )));
        }
        if let Ok(mut g) = self.inner.server_key.write() {
            *g = Some(key.clone());
        }
        Ok(key)
    }

    /// Calls `tool` and returns the verified reply. A verified error reply
    /// becomes [`ClientError::Server`] with the server's code.
    pub async fn call<A: Serialize>(&self, tool: &str, args: A) -> Result<Reply, ClientError> {
        self.call_map(tool, to_args(&args)?, Duration::ZERO).await
    }

    /// Calls `tool` with typed arguments and decodes the result.
    pub async fn call_typed<A: Serialize, O: DeserializeOwned>(
        &self,
        tool: &str,
        args: &A,
    ) -> Result<O, ClientError> {
        let reply = self.call_map(tool, to_args(args)?, Duration::ZERO).await?;
        Ok(decode_result("result", &reply.result())?)
    }

    /// Calls with an argument map; `extra_wait` lengthens the per-attempt
    /// timeout (long polls). A call that may have reached the server is
    /// retried only when running it twice does no harm: the built-in tools
    /// (reads, and `cancel_job`); see [`Client::start`] for long-running
    /// tools. Otherwise the failure is [`ClientError::OutcomeUnknown`].
    pub async fn call_map(
        &self,
        tool: &str,
        args: Map,
        extra_wait: Duration,
    ) -> Result<Reply, ClientError> {
        let retry = if BUILTIN_IDEMPOTENT.contains(&tool) {
            Retry::Always
        } else {
            Retry::IfUndelivered
        };
        self.call_retrying(tool, args, extra_wait, retry).await
    }

    async fn call_retrying(
        &self,
        tool: &str,
        args: Map,
        extra_wait: Duration,
        retry: Retry,
    ) -> Result<Reply, ClientError> {
        let request_id = random_uuid()?;
        let attempt = self.call_with_retries(&request_id, tool, args, extra_wait, retry);
        let total = self.inner.total_timeout + extra_wait;
        match tokio::time::timeout(total, attempt).await {
            Ok(r) => r,
            // A tool call cut short may have reached the server and run
            // (or, for a start, made a job): "timed out" would hide that.
            Err(_) if !BUILTIN_IDEMPOTENT.contains(&tool) => {
                Err(ClientError::OutcomeUnknown(format!(
                    "timed out after {} ms; the request may have reached the server",
                    total.as_millis()
                )))
            }
            Err(_) => Err(ClientError::Timeout),
        }
    }

    async fn call_with_retries(
        &self,
        request_id: &str,
        tool: &str,
        args: Map,
        extra_wait: Duration,
        retry: Retry,
    ) -> Result<Reply, ClientError> {
        let server_key = self.server_key().await?;
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            // Same request_id every attempt; fresh nonce and timestamp.
            let env = self.envelope(request_id, tool, args.clone())?;
            match self.send_once(&env, &server_key, extra_wait).await {
                Err(ClientError::Transport(e))
                    if retry == Retry::IfUndelivered && !e.certainly_undelivered() =>
                {
                    return Err(ClientError::OutcomeUnknown(format!(
                        "{e}; the request may have reached the server, and `{tool}` is not retried \
                         because running it twice could do harm"
                    )));
                }
                Err(ClientError::Transport(e)) if attempt < self.inner.retries => {
                    tracing::debug!(error = %e, attempt, "transport failure, retrying");
                    attempt += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// Sends one signed envelope and verifies the reply.
    pub async fn send_once(
        &self,
        env: &Envelope,
        server_key: &VerifyingKey,
        extra_wait: Duration,
    ) -> Result<Reply, ClientError> {
        let body = env.to_json();
        let resp = self
            .inner
            .http
            .post(self.inner.url.clone())
            .header("content-type", "application/json")
            .body(body.clone())
            .timeout(self.inner.call_timeout + extra_wait)
            .send()
            .await
            .map_err(TransportError::Http)?;
        let http_status = resp.status();
        let raw = read_capped(resp, MAX_REPLY_BYTES).await?;
        let sent = Sent {
            bytes: &body,
            request_id: &env.request_id,
            server_id: &self.inner.server_id,
        };
        let now = self.inner.clock.now_ms();
        match judge_reply(&raw, server_key, sent, now, self.inner.max_skew_ms) {
            Ok(Verdict::Success(response)) => Ok(Reply { response, raw }),
            Ok(Verdict::Refused {
                code,
                message,
                response,
            }) => Err(ClientError::Server {
                code,
                message,
                response: Box::new(response),
            }),
            Ok(Verdict::OutcomeUnknown { code, message, .. }) => Err(ClientError::OutcomeUnknown(
                format!("{code}: {message} (the request may have reached the server)"),
            )),
            Err(lacre_proto::ResponseError::Malformed(source)) if http_status.is_server_error() => {
                Err(TransportError::Unsigned {
                    status: http_status.as_u16(),
                    source,
                }
                .into())
            }
            Err(e) => Err(ClientError::Verification(e)),
        }
    }

    /// Starts a long-running tool; returns its job.
    /// A lost reply is retried with the same `request_id`: the server's
    /// idempotency for long-running tools (SPEC §10.3) returns the job the
    /// lost attempt created instead of starting a second one.
    pub async fn start<A: Serialize>(&self, tool: &str, args: A) -> Result<JobHandle, ClientError> {
        let reply = self
            .call_retrying(tool, to_args(&args)?, Duration::ZERO, Retry::Always)
            .await?;
        let accepted: Accepted = decode_result("accepted reply", &reply.result())?;
        Ok(JobHandle {
            id: accepted.job_id,
        })
    }

    /// Calls a built-in tool with typed arguments and decodes its result.
    async fn builtin<A: Serialize, O: serde::de::DeserializeOwned>(
        &self,
        tool: &'static str,
        args: &A,
        extra_wait: Duration,
    ) -> Result<(Reply, Option<O>), ClientError> {
        let args = encode_result("arguments", args)?;
        let reply = self.call_map(tool, args, extra_wait).await?;
        let typed = match reply.response.status {
            Status::Ok => Some(decode_result(tool, &reply.result())?),
            _ => None,
        };
        Ok((reply, typed))
    }

    /// Who the server is and what this client may call (`server_identity`).
    pub async fn identity(&self) -> Result<ServerIdentity, ClientError> {
        let (_, identity) = self
            .builtin("server_identity", &ServerIdentityIn {}, Duration::ZERO)
            .await?;
        identity.ok_or_else(|| unexpected_status("server_identity"))
    }

    /// The tools this client may call.
    pub async fn tools(&self) -> Result<Vec<ToolInfo>, ClientError> {
        Ok(self.identity().await?.capabilities.tools)
    }

    /// This client's jobs, newest first (`list_jobs`).
    pub async fn list_jobs(
        &self,
        state: Option<JobState>,
        limit: Option<u64>,
    ) -> Result<Vec<JobSummary>, ClientError> {
        let args = ListJobsIn {
            state: state.map(|s| s.as_str().to_owned()),
            limit,
        };
        let (_, list) = self
            .builtin::<_, JobList>("list_jobs", &args, Duration::ZERO)
            .await?;
        Ok(list.ok_or_else(|| unexpected_status("list_jobs"))?.jobs)
    }

    /// The webhooks the server sent (or is sending) to this client's
    /// endpoint, newest first (`list_deliveries`).
    pub async fn list_deliveries(
        &self,
        state: Option<&str>,
        limit: Option<u64>,
    ) -> Result<DeliveryList, ClientError> {
        let args = ListDeliveriesIn {
            state: state.map(str::to_owned),
            limit,
        };
        let (_, list) = self
            .builtin::<_, DeliveryList>("list_deliveries", &args, Duration::ZERO)
            .await?;
        list.ok_or_else(|| unexpected_status("list_deliveries"))
    }

    /// Polls a job once; with `wait`, the server holds the reply until the
    /// job changes (long poll). A failed or cancelled job is a
    /// [`ClientError::Server`] with code `job_failed` or `job_cancelled`.
    pub async fn poll(
        &self,
        job: &JobHandle,
        wait: Option<Duration>,
    ) -> Result<JobView, ClientError> {
        self.poll_since(job, wait, None).await
    }

    /// [`Client::poll`] after the reply whose `version` was `since`: a job
    /// that changed since is answered at once, and a long poll waits for
    /// the next change after that one (SPEC §9, `since_version`). Pass the
    /// [`JobProgress::version`] of the previous reply.
    pub async fn poll_since(
        &self,
        job: &JobHandle,
        wait: Option<Duration>,
        since: Option<u64>,
    ) -> Result<JobView, ClientError> {
        let args = PollJobIn {
            job_id: job.id.clone(),
            wait_ms: wait.map(|w| u64::try_from(w.as_millis()).unwrap_or(30_000)),
            since_version: since,
        };
        let (reply, _) = self
            .builtin::<_, serde::de::IgnoredAny>("poll_job", &args, wait.unwrap_or_default())
            .await?;
        Ok(JobView::from_response(&reply.response)?)
    }

    /// Whether the server long-polls, from what its `server_identity`
    /// advertises (`capabilities.long_poll`), asked once and remembered.
    /// `None` when it could not be asked.
    async fn long_poll_support(&self) -> Option<bool> {
        if let Some(known) = self.inner.long_poll.read().ok().and_then(|g| *g) {
            return Some(known);
        }
        let known = match self.identity().await {
            Ok(identity) => identity.capabilities.long_poll == Some(true),
            // A verified answer without the capability: the seed's server.
            Err(ClientError::Server { .. } | ClientError::Decode(_)) => false,
            Err(_) => return None,
        };
        if let Ok(mut g) = self.inner.long_poll.write() {
            *g = Some(known);
        }
        Some(known)
    }

    /// Waits for a job to finish, reporting progress; returns its result.
    /// Long-polls a server that advertises it; polls others (such as the
    /// seed's) with backoff. When the server could not be asked, it tries a
    /// long poll and, on an error reply to it, polls without `wait_ms`.
    pub async fn wait(
        &self,
        job: &JobHandle,
        mut on_progress: impl FnMut(&JobProgress),
    ) -> Result<Map, ClientError> {
        let advertised = self.long_poll_support().await;
        let mut long_poll = advertised != Some(false);
        let mut delay = Duration::from_millis(200);
        // The version last seen, when the server reports one (a server
        // that does not would refuse an argument it does not know).
        let mut since = None;
        loop {
            let wait = long_poll.then_some(Duration::from_secs(25));
            match self.poll_since(job, wait, since).await {
                Ok(JobView::Done(result)) => return Ok(result),
                Ok(JobView::Pending(p)) => {
                    since = p.version;
                    on_progress(&p);
                    if !long_poll {
                        tokio::time::sleep(delay).await;
                        delay = (delay.mul_f64(1.5)).min(Duration::from_secs(2));
                    }
                }
                // Only a guess can be wrong: an error reply to a long poll
                // the server never advertised is retried once without it.
                Err(ClientError::Server { .. } | ClientError::OutcomeUnknown(_))
                    if long_poll && advertised.is_none() =>
                {
                    tracing::debug!("server refuses wait_ms; falling back to polling");
                    long_poll = false;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Cancels a job; returns its state afterwards.
    pub async fn cancel(&self, job: &JobHandle) -> Result<JobState, ClientError> {
        let args = CancelJobIn {
            job_id: job.id.clone(),
        };
        let (_, outcome) = self
            .builtin::<_, CancelOutcome>("cancel_job", &args, Duration::ZERO)
            .await?;
        Ok(outcome
            .ok_or_else(|| unexpected_status("cancel_job"))?
            .state)
    }
}

fn unexpected_status(tool: &'static str) -> ClientError {
    ClientError::Decode(lacre_proto::builtin::ShapeError {
        what: tool,
        reason: "the reply's status is not ok".to_owned(),
    })
}
