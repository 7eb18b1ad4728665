//! A server on 127.0.0.1:0 and helpers to send raw, hand-made envelopes.

use lacre_proto::{
    Envelope, ErrorCode, Map, ParseLimits, Response, SigningKey, Status, Value, VerifyingKey,
};
use lacre_server::{Server, ToolArgs, ToolError, ToolFilter, WorkerConfig, Workers};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const SERVER_ID: &str = "mcp-server-001";
pub const SERVER_SECRET: &[u8] = b"server_secret_key_123";
pub const CLIENT_SECRET: &[u8] = b"client_secret_key_456";
pub const OTHER_SECRET: &[u8] = b"other_secret_789";

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailIn {
    pub message: String,
}
impl ToolArgs for FailIn {}

#[derive(Serialize)]
pub struct Never {}

pub struct TestServer {
    pub url: String,
    pub base: String,
    pub server: Server,
    pub http: reqwest::Client,
    workers: Option<Workers>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The HMAC verifying key of a test secret.
pub fn hmac_key(secret: &[u8]) -> VerifyingKey {
    SigningKey::hmac(secret).unwrap().verifying_key()
}

/// The test clients: `client-001` (`CLIENT_SECRET`, every tool) and
/// `client-002` (`OTHER_SECRET`, the tools of `client_2_tools`).
pub fn two_clients(
    builder: lacre_server::ServerBuilder,
    client_2_tools: ToolFilter,
) -> lacre_server::ServerBuilder {
    builder
        .client("client-001", [hmac_key(CLIENT_SECRET)], ToolFilter::All)
        .unwrap()
        .client("client-002", [hmac_key(OTHER_SECRET)], client_2_tools)
        .unwrap()
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|b| b).await
    }

    /// A test server on these stores.
    pub async fn on_stores(stores: &lacre_server::store::Stores) -> TestServer {
        let (jobs, nonces) = (stores.jobs.clone(), stores.nonces.clone());
        Self::start_with(|b| b.job_store(jobs).nonce_store(nonces)).await
    }

    pub async fn start_with(
        customize: impl FnOnce(lacre_server::ServerBuilder) -> lacre_server::ServerBuilder,
    ) -> TestServer {
        Self::start_with_http(customize, |_| {}).await
    }

    /// Like [`TestServer::start_with`], and lets the caller change the HTTP
    /// limits (body limit 64 KiB, header and body timeouts 600 ms by default).
    pub async fn start_with_http(
        customize: impl FnOnce(lacre_server::ServerBuilder) -> lacre_server::ServerBuilder,
        http: impl FnOnce(&mut lacre_server::http::HttpConfig),
    ) -> TestServer {
        let client_2_tools = ToolFilter::from_list(&[
            "batch_sum",
            "poll_job",
            "cancel_job",
            "list_jobs",
            "server_identity",
        ]);
        let builder = Server::builder(SERVER_ID, SigningKey::hmac(SERVER_SECRET).unwrap());
        let builder = two_clients(builder, client_2_tools).tools(|reg| {
            reg.immediate("panic_now", "Always panics.", |a: FailIn, _| async move {
                if !a.message.is_empty() {
                    panic!("{}", a.message);
                }
                Ok::<Never, ToolError>(Never {})
            });
            reg.immediate("fail_now", "Always fails.", |a: FailIn, _| async move {
                Err::<Never, _>(ToolError::failed(a.message))
            });
            reg.long_running(
                "fail_later",
                "A job that fails.",
                |a: FailIn, _| async move { Err::<Never, _>(ToolError::failed(a.message)) },
            );
        });
        let server = customize(builder).build();
        let workers = server.start_workers(WorkerConfig {
            concurrency: 4,
            heartbeat_ms: 100,
            ..WorkerConfig::default()
        });
        let (listener, addr) = lacre_server::http::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut config = lacre_server::http::HttpConfig {
            body_limit: 64 * 1024,
            header_timeout: Duration::from_millis(600),
            body_timeout: Duration::from_millis(600),
            ..lacre_server::http::HttpConfig::default()
        };
        http(&mut config);
        tokio::spawn(lacre_server::http::serve_with(
            listener,
            server.clone(),
            config,
            async {
                let _ = rx.await;
            },
        ));
        TestServer {
            url: format!("http://{addr}/mcp"),
            base: format!("http://{addr}"),
            server,
            http: reqwest::Client::new(),
            workers: Some(workers),
            stop: Some(tx),
        }
    }

    /// Posts `body` to the protocol's route, as it is.
    pub async fn post(&self, body: Vec<u8>) -> reqwest::Response {
        self.http.post(&self.url).body(body).send().await.unwrap()
    }

    /// Gets `path` (from the server's root).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        self.http.get(url).send().await.unwrap()
    }

    /// Posts raw bytes; returns the HTTP status and the reply, after
    /// checking that it is a well-formed response signed by the server.
    pub async fn post_raw(&self, body: impl Into<Vec<u8>>) -> (u16, Response) {
        let body: Vec<u8> = body.into();
        let resp = self.post(body.clone()).await;
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(ct.as_deref(), Some("application/json"));
        let bytes = resp.bytes().await.unwrap();
        let reply = check_signed(&bytes);
        check_binding(&reply, &body).unwrap();
        (status, reply)
    }

    pub async fn send(&self, env: &Envelope) -> (u16, Response) {
        self.post_raw(env.to_json()).await
    }

    pub async fn call(&self, tool: &str, args: serde_json::Value) -> (u16, Response) {
        self.send(&envelope_001(tool, args)).await
    }

    /// Sends `env` and asserts a signed error with this HTTP status and
    /// code that echoes the envelope's request id.
    pub async fn expect(&self, env: &Envelope, http: u16, code: ErrorCode) -> Response {
        let reply = self.send(env).await;
        assert_error(&reply, http, code, &env.request_id);
        reply.1
    }

    /// Sends `tool(args)` as `client_id` and asserts a signed error with
    /// this HTTP status and code that echoes the request's id.
    pub async fn expect_error(
        &self,
        client_id: &str,
        tool: &str,
        args: serde_json::Value,
        http: u16,
        code: ErrorCode,
    ) -> Response {
        self.expect(
            &envelope(client_id, secret_of(client_id), tool, args),
            http,
            code,
        )
        .await
    }

    /// Calls `tool` as client-001 and asserts a signed error with this
    /// HTTP status and code.
    pub async fn refused(
        &self,
        tool: &str,
        args: serde_json::Value,
        http: u16,
        code: ErrorCode,
    ) -> Response {
        self.expect(&envelope_001(tool, args), http, code).await
    }

    /// Starts `start_long_task` as client-001: its job id.
    pub async fn start_job(&self, args: serde_json::Value) -> String {
        let (http, resp) = self.call("start_long_task", args).await;
        assert_eq!(http, 202, "{resp:?}");
        job_id_of(&resp)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(w) = self.workers.take() {
            w.shutdown(Duration::from_secs(1)).await;
        }
    }
}

/// A reply's `Content-Type`, if it has a readable one.
pub fn content_type(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Parses a reply and checks its signature with the server's key.
pub fn check_signed(bytes: &[u8]) -> Response {
    let resp = Response::parse(bytes, ParseLimits::default())
        .unwrap_or_else(|e| panic!("not a response ({e}): {}", String::from_utf8_lossy(bytes)));
    let key = SigningKey::hmac(SERVER_SECRET).unwrap().verifying_key();
    key.verify_hex(&resp.signing_bytes(), &resp.signature)
        .unwrap_or_else(|e| {
            panic!(
                "reply signature does not verify ({e}): {}",
                String::from_utf8_lossy(bytes)
            )
        });
    assert_eq!(resp.server_id, SERVER_ID);
    resp
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}", now_ms())
}

pub fn args_map(args: serde_json::Value) -> Map {
    match Value::from_serde(args) {
        Value::Object(m) => m,
        other => panic!("args must be an object, got {other:?}"),
    }
}

/// Registers `name`, a tool that waits `ms` and answers `{}`: immediate,
/// or a job that reports nothing while it waits (its long polls wait too).
pub fn sleeper(reg: &mut lacre_server::Registry, name: &str, long_running: bool, ms: u64) {
    let def = lacre_server::ToolDef {
        name: name.into(),
        description: format!("Waits {ms} ms."),
        args_schema: serde_json::json!({"type": "object"}),
    };
    let wait = move || async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Map::new())
    };
    if long_running {
        reg.dynamic_long_running(def, move |_, _| wait()).unwrap();
    } else {
        reg.dynamic_immediate(def, move |_, _| wait()).unwrap();
    }
}

/// The HMAC secret of a test client.
pub fn secret_of(client_id: &str) -> &'static [u8] {
    match client_id {
        "client-002" => OTHER_SECRET,
        _ => CLIENT_SECRET,
    }
}

/// A signed envelope with a fresh request_id and nonce.
pub fn envelope(client_id: &str, secret: &[u8], tool: &str, args: serde_json::Value) -> Envelope {
    let mut env = Envelope {
        request_id: unique("req"),
        ts_ms: now_ms(),
        client_id: client_id.into(),
        server_id: SERVER_ID.into(),
        tool: tool.into(),
        args: args_map(args),
        nonce: unique("nonce"),
        signature: String::new(),
    };
    env.sign(&SigningKey::hmac(secret).unwrap());
    env
}

/// A signed envelope of client-001's.
pub fn envelope_001(tool: &str, args: serde_json::Value) -> Envelope {
    envelope("client-001", CLIENT_SECRET, tool, args)
}

/// A valid `batch_sum` call of client-001.
pub fn sum_call() -> Envelope {
    envelope_001("batch_sum", serde_json::json!({"numbers": [1]}))
}

/// Asserts an error reply: HTTP status, ok false, status error, code, request_id.
#[track_caller]
pub fn assert_error(reply: &(u16, Response), http: u16, code: ErrorCode, request_id: &str) {
    let (status, resp) = reply;
    assert_eq!(*status, http, "HTTP status for {code}: {resp:?}");
    assert!(!resp.ok);
    assert_eq!(resp.status, Status::Error);
    let text = resp.error.as_deref().unwrap_or_default();
    assert_eq!(
        ErrorCode::split_error_text(text).0,
        code,
        "error text {text:?}"
    );
    assert_eq!(resp.request_id, request_id);
    // An error carries nothing but, when the server read the request, its
    // binding (checked against the bytes by `check_binding`).
    if let Some(result) = &resp.result {
        let digest = lacre_proto::binding_of(resp).unwrap_or_default();
        assert!(
            result.len() == 1 && digest.len() == 64,
            "an error's result is only its binding: {result:?}"
        );
    }
}

/// Checks that an error reply to `request` is bound to exactly those bytes
/// (SPEC §6.5); replies the server sends without reading a request
/// (`too_large`, `overloaded` at the door) carry no binding.
pub fn check_binding(resp: &Response, request: &[u8]) -> Result<(), String> {
    if resp.status != Status::Error {
        return Ok(());
    }
    match lacre_proto::binding_of(resp) {
        Some(d) if d == lacre_proto::request_digest(request) => Ok(()),
        Some(d) => Err(format!("bound to other bytes ({d}): {resp:?}")),
        None if resp.request_id.is_empty() => Ok(()),
        None => Err(format!(
            "an error with a request_id but no binding: {resp:?}"
        )),
    }
}

pub fn result_json(resp: &Response) -> serde_json::Value {
    Value::Object(resp.result.clone().unwrap_or_default()).to_serde()
}

/// The names of the tools a `server_identity` reply lists.
pub fn tool_names(resp: &Response) -> Vec<String> {
    let r = result_json(resp);
    let tools = r["capabilities"]["tools"].as_array().unwrap();
    tools
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The job id of an `accepted` reply.
pub fn job_id_of(resp: &Response) -> String {
    assert_eq!(resp.status, Status::Accepted, "{resp:?}");
    result_json(resp)["job_id"].as_str().unwrap().to_owned()
}

/// Waits until `check` holds (at most 5 s, polling every 5 ms): a wait on
/// observable state, not a sleep that hopes the server got there.
pub async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A tool that holds each call until the test releases it, and says when a
/// call has come in.
pub struct Gate {
    entered: tokio::sync::Semaphore,
    released: tokio::sync::Semaphore,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            entered: tokio::sync::Semaphore::new(0),
            released: tokio::sync::Semaphore::new(0),
        }
    }
}

impl Gate {
    /// Registers `name`, an immediate tool that waits at this gate.
    pub fn register(self: &std::sync::Arc<Self>, reg: &mut lacre_server::Registry, name: &str) {
        let def = lacre_server::ToolDef {
            name: name.into(),
            description: "Waits until the test lets it go.".into(),
            args_schema: serde_json::json!({"type": "object"}),
        };
        let gate = std::sync::Arc::clone(self);
        reg.dynamic_immediate(def, move |_, _| {
            let gate = std::sync::Arc::clone(&gate);
            async move {
                gate.entered.add_permits(1);
                if let Ok(p) = gate.released.acquire().await {
                    p.forget();
                }
                Ok(Map::new())
            }
        })
        .unwrap();
    }

    /// Waits until a call is inside the tool.
    pub async fn entered(&self) {
        let entered = tokio::time::timeout(Duration::from_secs(5), self.entered.acquire()).await;
        entered.expect("no call reached the gate").unwrap().forget();
    }

    /// Lets `n` calls through.
    pub fn release(&self, n: usize) {
        self.released.add_permits(n);
    }
}
