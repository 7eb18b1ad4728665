//! The HTTP transport: `POST /mcp`, `GET /healthz`,
//! `GET /.well-known/signet.json`.

use crate::dispatch::{Reply, Server};
use crate::error::CallError;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use signet_proto::{EnvelopeError, VerifyError};
use std::future::Future;
use std::net::SocketAddr;

/// Default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

#[derive(Clone)]
struct AppState {
    server: Server,
    body_limit: usize,
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
    let mut resp = json_response(reply.http_status, reply.to_json());
    if let Some(ms) = reply.retry_after_ms {
        // Retry-After is in whole seconds; round up so a retry is not early.
        let secs = ms.div_ceil(1000).max(1);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}

async fn mcp(State(app): State<AppState>, body: Body) -> Response {
    // Read the body ourselves so that an oversized one gets a signed
    // `too_large` reply instead of a bare 413.
    let bytes = match axum::body::to_bytes(body, app.body_limit).await {
        Ok(b) => b,
        Err(e) => {
            let inner = e.into_inner();
            let too_large = inner.is::<http_body_util::LengthLimitError>()
                || std::error::Error::source(&*inner)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            let err = if too_large {
                CallError::TooLarge(app.body_limit)
            } else {
                CallError::Rejected(VerifyError::Malformed(EnvelopeError::Unreadable))
            };
            return reply_response(app.server.error_reply("", &err));
        }
    };
    reply_response(app.server.handle(&bytes).await)
}

async fn healthz() -> Response {
    json_response(200, br#"{"status":"ok"}"#.to_vec())
}

async fn well_known(State(app): State<AppState>) -> Response {
    let body = serde_json::to_vec(&app.server.well_known()).unwrap_or_default();
    json_response(200, body)
}

/// The HTTP routes of `server`.
pub fn router(server: Server, body_limit: usize) -> Router {
    Router::new()
        .route("/mcp", post(mcp))
        .route("/healthz", get(healthz))
        .route("/.well-known/signet.json", get(well_known))
        .with_state(AppState { server, body_limit })
}

/// Serves `server` on `listener` until `shutdown` resolves, then stops
/// accepting and lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    server: Server,
    body_limit: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(server, body_limit))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `addr` (port 0 picks a free one) and returns the listener and the
/// address it got.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
