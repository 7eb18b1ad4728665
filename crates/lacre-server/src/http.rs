//! The HTTP transport: `POST /mcp`, `GET /healthz`,
//! `GET /.well-known/lacre.json`.

use crate::dispatch::{Reply, ReplyKind, Server};
use crate::error::CallError;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use lacre_proto::{EnvelopeError, ErrorCode, Status, VerifyError};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Default budget of request body bytes held at once: 64 MiB.
pub const DEFAULT_BODY_BUDGET: usize = 64 * 1024 * 1024;

/// Limits and timeouts of the HTTP transport.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body; larger ones get a signed `too_large`.
    pub body_limit: usize,
    /// Time a client has to send the request line and headers (slowloris).
    pub header_timeout: std::time::Duration,
    /// Time a client has to send the body once headers are in.
    pub body_timeout: std::time::Duration,
    /// Longest a request may take once read (must exceed the longest long
    /// poll, 30 s); beyond it the reply is `overloaded`.
    pub request_timeout: std::time::Duration,
    /// Most open connections; further clients wait in the accept queue.
    pub max_connections: usize,
    /// Most bytes of request bodies held at once, all connections together
    /// (default 64 MiB); a request whose body does not fit is answered
    /// `overloaded` before its body is read.
    pub body_budget: usize,
    /// Whether `/metrics` is served on this listener too (it may instead be
    /// bound to a separate address with [`serve_metrics`]).
    pub metrics: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit: DEFAULT_BODY_LIMIT,
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(10),
            request_timeout: std::time::Duration::from_secs(60),
            max_connections: 4096,
            body_budget: DEFAULT_BODY_BUDGET,
            metrics: true,
        }
    }
}

/// The HTTP status that carries a reply: 200 for a success, 202 for
/// `accepted`, and the error's class for an error.
pub fn http_status(kind: &ReplyKind) -> u16 {
    let code = match kind {
        ReplyKind::Success(Status::Accepted) => return 202,
        ReplyKind::Success(_) => return 200,
        ReplyKind::Error(code) => code,
    };
    match code {
        ErrorCode::BadEnvelope | ErrorCode::UnsupportedVersion => 400,
        ErrorCode::WrongServer
        | ErrorCode::UnknownClient
        | ErrorCode::BadSignature
        | ErrorCode::StaleTimestamp
        | ErrorCode::ReplayedNonce => 401,
        ErrorCode::ForbiddenTool => 403,
        ErrorCode::UnknownTool | ErrorCode::UnknownJob => 404,
        ErrorCode::IdempotencyConflict => 409,
        ErrorCode::TooLarge => 413,
        ErrorCode::InvalidArgs => 422,
        ErrorCode::RateLimited => 429,
        ErrorCode::Overloaded | ErrorCode::StoreUnavailable | ErrorCode::UpstreamUnavailable => 503,
        ErrorCode::ToolError => 502,
        // The poll itself succeeded: the signed body says the job failed.
        ErrorCode::JobFailed | ErrorCode::JobCancelled => 200,
        _ => 500,
    }
}

#[derive(Clone)]
struct AppState {
    server: Server,
    config: Arc<HttpConfig>,
    /// Bytes of request bodies held at once, in units of [`BUDGET_UNIT`].
    budget: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    fn new(server: Server, config: HttpConfig) -> AppState {
        let units = budget_units(config.body_budget.max(config.body_limit));
        AppState {
            server,
            budget: Arc::new(tokio::sync::Semaphore::new(units as usize)),
            config: Arc::new(config),
        }
    }
}

/// The body budget is counted in KiB.
const BUDGET_UNIT: usize = 1024;

/// Budget units for a body of `bytes` (at least one).
fn budget_units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(BUDGET_UNIT).max(1)).unwrap_or(u32::MAX)
}

fn json_response(status: u16, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn reply_response(reply: Reply) -> Response {
    let retry_after_ms = reply.retry_after_ms;
    let mut resp = json_response(http_status(&reply.kind), reply.into_json());
    if let Some(ms) = retry_after_ms {
        // Retry-After is in whole seconds; round up so a retry is not early.
        let secs = ms.div_ceil(1000).max(1);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}

async fn mcp(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    // Admission before the body is buffered: a place in flight, then the
    // body's bytes from the global budget (its Content-Length, or the body
    // limit when it has none). Refused at once, signed, while nothing of
    // the body has been read.
    let limit = app.config.body_limit;
    let Some(admission) = app.server.admit() else {
        return reply_response(app.server.error_reply("", &CallError::Overloaded));
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let reserve = declared.unwrap_or(limit).min(limit);
    let Ok(_budget) = Arc::clone(&app.budget).try_acquire_many_owned(budget_units(reserve)) else {
        return reply_response(app.server.error_reply("", &CallError::Overloaded));
    };
    // Read the body ourselves so that an oversized one gets a signed
    // `too_large` reply instead of a bare 413.
    let read =
        crate::limits::timeout_lazy(app.config.body_timeout, axum::body::to_bytes(body, limit))
            .await;
    let Ok(read) = read else {
        // A client trickling its body must not hold the connection forever.
        let err = CallError::Rejected(VerifyError::Malformed(EnvelopeError::Unreadable));
        return reply_response(app.server.error_reply("", &err));
    };
    let bytes = match read {
        Ok(b) => b,
        Err(e) => {
            let inner = e.into_inner();
            let too_large = inner.is::<http_body_util::LengthLimitError>()
                || std::error::Error::source(&*inner)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            let err = if too_large {
                CallError::TooLarge(limit)
            } else {
                CallError::Rejected(VerifyError::Malformed(EnvelopeError::Unreadable))
            };
            return reply_response(app.server.error_reply("", &err));
        }
    };
    let handled = app.server.handle_admitted(&bytes, admission);
    match crate::limits::timeout_lazy(app.config.request_timeout, handled).await {
        Ok(reply) => reply_response(reply),
        Err(_) => {
            // The handler was dropped before its own log line: say it here.
            tracing::warn!(
                target: "lacre::request",
                timeout_ms = app.config.request_timeout.as_millis() as u64,
                "request timed out"
            );
            reply_response(app.server.error_reply("", &CallError::Overloaded))
        }
    }
}

async fn healthz() -> Response {
    json_response(200, br#"{"status":"ok"}"#.to_vec())
}

async fn well_known(State(app): State<AppState>) -> Response {
    let body = serde_json::to_vec(&app.server.well_known()).unwrap_or_default();
    json_response(200, body)
}

async fn metrics(State(app): State<AppState>) -> Response {
    let mut resp = (StatusCode::OK, app.server.metrics_text().await).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

/// The HTTP routes of `server`.
pub fn router(server: Server, config: HttpConfig) -> Router {
    let with_metrics = config.metrics;
    let r = Router::new()
        .route("/mcp", post(mcp))
        .route("/healthz", get(healthz))
        .route("/.well-known/lacre.json", get(well_known));
    let r = if with_metrics {
        r.route("/metrics", get(metrics))
    } else {
        r
    };
    r.with_state(AppState::new(server, config))
}

/// Serves `server` on `listener` with the default limits and `body_limit`
/// until `shutdown` resolves (see [`serve_with`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    server: Server,
    body_limit: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = HttpConfig {
        body_limit,
        ..HttpConfig::default()
    };
    serve_with(listener, server, config, shutdown).await
}

/// Serves `server` on `listener` until `shutdown` resolves, then stops
/// accepting and lets in-flight requests finish (at most
/// `request_timeout`). Each connection is HTTP/1.1 with keep-alive; a
/// client that does not send its headers within `header_timeout` is
/// disconnected.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    server: Server,
    config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let drain = config.request_timeout;
    let app = router(server, config.clone());
    accept_loop(
        listener,
        app,
        config.header_timeout,
        config.max_connections,
        drain,
        shutdown,
    )
    .await
}

/// Serves only `/metrics` and `/healthz` (a separate, internal address).
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    server: Server,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = HttpConfig::default();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(AppState::new(server, config.clone()));
    accept_loop(
        listener,
        app,
        config.header_timeout,
        64,
        config.request_timeout,
        shutdown,
    )
    .await
}

/// What a connection is doing, for its watchdog.
struct Activity {
    started: std::time::Instant,
    in_flight: std::sync::atomic::AtomicUsize,
    /// Milliseconds since `started` when the last request finished.
    last_done_ms: std::sync::atomic::AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: std::time::Instant::now(),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            last_done_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn begin(&self) {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn end(&self) {
        self.last_done_ms
            .store(self.now_ms(), std::sync::atomic::Ordering::Relaxed);
        self.in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Resolves when the connection has had no request in progress and
    /// finished none for `limit`: a client that is idle, or that trickles a
    /// request's headers (slowloris), is disconnected. Once the headers are
    /// in, the handler runs and the body and request timeouts apply.
    async fn watchdog(&self, limit: std::time::Duration) {
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        let tick = (limit / 4).max(std::time::Duration::from_millis(25));
        loop {
            tokio::time::sleep(tick).await;
            let busy = self.in_flight.load(std::sync::atomic::Ordering::Relaxed) > 0;
            let idle_for = self
                .now_ms()
                .saturating_sub(self.last_done_ms.load(std::sync::atomic::Ordering::Relaxed));
            if !busy && idle_for >= limit_ms {
                return;
            }
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    header_timeout: std::time::Duration,
    max_connections: usize,
    drain: std::time::Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper's own header_read_timeout arms a timer for every request, which
    // cost two thirds of the throughput on one core; a watchdog per
    // connection (below) does the same job at one timer per connection.
    builder.keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let service = {
            let app = app.clone();
            let activity = Arc::clone(&activity);
            tower::service_fn(move |req: axum::http::Request<hyper::body::Incoming>| {
                let app = app.clone();
                let activity = Arc::clone(&activity);
                activity.begin();
                async move {
                    let resp = tower::ServiceExt::oneshot(app, req).await;
                    activity.end();
                    resp
                }
            })
        };
        let service = hyper_util::service::TowerToHyperService::new(service);
        let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        let task = tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
        // The watchdog runs beside the connection, not polled with it (a
        // timer polled on every wake-up of the connection cost throughput).
        let abort = task.abort_handle();
        tokio::spawn(async move {
            tokio::select! {
                _ = activity.watchdog(header_timeout) => {
                    tracing::debug!("closing a connection that sent no complete request in time");
                    abort.abort();
                }
                _ = task => {}
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {drain:?}; closing them");
    }
    Ok(())
}
/// Binds `addr` (port 0 picks a free one) and returns the listener and the
/// address it got.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
