//! The delivery loop: claims due events from the outbox, sends each to its
//! client's endpoint, and records what came of it.

use super::target::{self, GuardedResolver, TargetError};
use super::{
    Attempt, AttemptOutcome, Delivery, DeliveryClaim, Endpoint, WebhookSettings, MAX_DELAY,
};
use crate::dispatch::Server;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// Most bytes of a receiver's answer read (the rest is dropped with the
/// connection): a receiver cannot make a replica buffer without bound.
pub const MAX_RESPONSE_BYTES: usize = 4096;

/// Most characters of a receiver's answer kept as the attempt's error.
const ERROR_SNIPPET_CHARS: usize = 200;

/// A running delivery loop.
pub struct Deliveries {
    handle: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

impl Deliveries {
    /// Starts the loop of `server` (its endpoints, store, key and clock).
    pub(crate) fn spawn(server: Server, settings: WebhookSettings) -> Result<Deliveries, String> {
        let client = reqwest::Client::builder()
            // A redirect could lead anywhere, past the address check.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("lacre/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: settings.allow_private_targets,
            }))
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        let (shutdown, rx) = watch::channel(false);
        let handle = tokio::spawn(run(server, settings, client, rx));
        Ok(Deliveries { handle, shutdown })
    }

    /// Stops claiming; waits up to `grace` for the attempts under way (an
    /// attempt cut short is claimed again once its lease expires, with the
    /// same `webhook-id`).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let mut handle = self.handle;
        if tokio::time::timeout(grace, &mut handle).await.is_err() {
            handle.abort();
        }
    }
}

async fn run(
    server: Server,
    settings: WebhookSettings,
    client: reqwest::Client,
    mut shutdown: watch::Receiver<bool>,
) {
    let settings = Arc::new(settings);
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let mut changes = server.job_store().changes();
    let mut sending = tokio::task::JoinSet::new();
    // A claim outlives the attempt it covers (connect and answer within
    // `timeout`), so that no other replica sends the same event meanwhile.
    let lease_ms = i64::try_from(settings.timeout.as_millis())
        .unwrap_or(i64::MAX)
        .saturating_add(10_000);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        while sending.try_join_next().is_some() {}
        let now = server.inner.clock.now_ms();
        match server.job_store().claim_delivery(now, lease_ms).await {
            Ok(Some(claim)) => {
                let (server, client, settings) =
                    (server.clone(), client.clone(), Arc::clone(&settings));
                sending.spawn(async move {
                    attempt(&server, &client, &settings, claim).await;
                    drop(permit);
                });
            }
            Ok(None) => {
                drop(permit);
                tokio::select! {
                    _ = changes.changed() => {}
                    _ = tokio::time::sleep(settings.poll_interval) => {}
                    _ = shutdown.changed() => break,
                }
            }
            Err(e) => {
                drop(permit);
                tracing::warn!(error = %e, "cannot read the webhook outbox");
                tokio::select! {
                    _ = tokio::time::sleep(settings.poll_interval) => {}
                    _ = shutdown.changed() => break,
                }
            }
        }
    }
    while sending.join_next().await.is_some() {}
}

/// One attempt of one delivery, recorded under its claim.
async fn attempt(
    server: &Server,
    client: &reqwest::Client,
    settings: &WebhookSettings,
    claim: DeliveryClaim,
) {
    let d = &claim.delivery;
    let outcome = match server.inner.webhooks.get(&d.client_id) {
        None => AttemptOutcome::GaveUp {
            status: None,
            error: format!("client {:?} has no webhook_url any more", d.client_id),
        },
        Some(endpoint) => send(server, client, settings, endpoint, d).await,
    };
    let label = match &outcome {
        AttemptOutcome::Delivered { .. } => "delivered",
        AttemptOutcome::Retry { .. } => "retry",
        AttemptOutcome::GaveUp { .. } => "failed",
        AttemptOutcome::EndpointGone => "disabled",
    };
    server.inner.metrics.record_delivery(label);
    match &outcome {
        AttemptOutcome::Delivered { status } => {
            tracing::info!(webhook_id = %d.id, attempt = d.attempts, status, "webhook delivered");
        }
        AttemptOutcome::Retry { error, at_ms, .. } => {
            tracing::info!(webhook_id = %d.id, attempt = d.attempts, error = %error, next_attempt_ms = at_ms, "webhook not delivered; will retry");
        }
        AttemptOutcome::GaveUp { error, .. } => {
            tracing::warn!(webhook_id = %d.id, attempt = d.attempts, error = %error, "webhook not delivered; giving up");
        }
        AttemptOutcome::EndpointGone => {
            tracing::warn!(webhook_id = %d.id, client_id = %d.client_id, "receiver answered 410 Gone: endpoint disabled until `lacre webhooks enable`");
        }
    }
    let report = Attempt {
        id: &d.id,
        fence: claim.fence,
        now_ms: server.inner.clock.now_ms(),
        outcome,
    };
    match server.job_store().record_attempt(report).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(webhook_id = %d.id, "delivery was taken over meanwhile; its record is the new holder's")
        }
        Err(e) => tracing::warn!(webhook_id = %d.id, error = %e, "cannot record a webhook attempt"),
    }
}

/// The notification body: the event, when it was built, and the signed
/// reply `poll_job` returns for the job now (`None`: the job is gone).
async fn body(server: &Server, d: &Delivery, now_ms: i64) -> Result<Option<Vec<u8>>, String> {
    let status = server
        .job_store()
        .status(&d.job_id)
        .await
        .map_err(|e| format!("cannot read the job: {e}"))?;
    let Some(status) = status else {
        return Ok(None);
    };
    let reply = server.unbound_reply(&d.request_id, crate::system::job_reply(status));
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"{\"data\":");
    out.extend_from_slice(&reply.into_json());
    out.extend_from_slice(b",\"timestamp\":\"");
    out.extend_from_slice(rfc3339(now_ms).as_bytes());
    out.extend_from_slice(b"\",\"type\":\"");
    out.extend_from_slice(d.event.as_str().as_bytes());
    out.extend_from_slice(b"\"}");
    Ok(Some(out))
}

/// The `webhook-signature` header: a `v1` entry per secret, and a `v1a`
/// entry when the server's key is Ed25519.
fn signature_header(
    server: &Server,
    endpoint: &Endpoint,
    id: &str,
    ts_s: i64,
    body: &[u8],
) -> String {
    let mut entries: Vec<String> = endpoint
        .secrets
        .iter()
        .filter_map(|s| lacre_proto::webhook::sign_v1(s, id, ts_s, body))
        .collect();
    entries.extend(lacre_proto::webhook::sign_v1a(
        server.inner.signer.key(),
        id,
        ts_s,
        body,
    ));
    entries.join(" ")
}

async fn send(
    server: &Server,
    client: &reqwest::Client,
    settings: &WebhookSettings,
    endpoint: &Endpoint,
    d: &Delivery,
) -> AttemptOutcome {
    let now = server.inner.clock.now_ms();
    let failed =
        |status: Option<u16>, error: String, retry_after: Option<Duration>| match next_attempt_ms(
            settings,
            d.attempts,
            now,
            retry_after,
        ) {
            Some(at_ms) => AttemptOutcome::Retry {
                at_ms,
                status,
                error,
            },
            None => AttemptOutcome::GaveUp { status, error },
        };
    // An address written in the URL is not resolved: check it here.
    if let Some(ip) = literal_ip(&endpoint.url) {
        if !settings.allow_private_targets && target::is_private(ip) {
            return failed(None, TargetError::Private(ip).to_string(), None);
        }
    }
    let body = match body(server, d, now).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            return AttemptOutcome::GaveUp {
                status: None,
                error: "the job is no longer stored".to_owned(),
            }
        }
        Err(e) => return failed(None, e, None),
    };
    let ts_s = now.div_euclid(1000);
    let signature = signature_header(server, endpoint, &d.id, ts_s, &body);
    let response = client
        .post(endpoint.url.clone())
        .header("content-type", "application/json")
        .header("webhook-id", &d.id)
        .header("webhook-timestamp", ts_s.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let mut response = match response {
        Ok(r) => r,
        Err(e) => return failed(None, describe(&e), None),
    };
    let status = response.status().as_u16();
    let retry_after = match status {
        429 | 503 => response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, now)),
        _ => None,
    };
    let snippet = read_capped(&mut response).await;
    match status {
        200..=299 => AttemptOutcome::Delivered { status },
        410 => AttemptOutcome::EndpointGone,
        _ => {
            let mut error = format!("HTTP {status}");
            if !snippet.is_empty() {
                error.push_str(": ");
                error.push_str(&snippet);
            }
            failed(Some(status), error, retry_after)
        }
    }
}

/// The address in a URL's host, if it is one.
fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// An error of `reqwest`, with its causes (the refusal of a private
/// address is the resolver's, two levels down).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Reads at most [`MAX_RESPONSE_BYTES`] of the answer; returns its start,
/// printable, for the attempt's record.
async fn read_capped(response: &mut reqwest::Response) -> String {
    let mut kept: Vec<u8> = Vec::new();
    while kept.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_BYTES - kept.len();
                kept.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or(&chunk));
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&kept)
        .chars()
        .take(ERROR_SNIPPET_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// When the attempt after the `attempts_made`-th is due: the schedule's
/// next delay with ±10% jitter, no earlier than the receiver's
/// `Retry-After`, at most a day away; `None` once the schedule is spent.
pub(super) fn next_attempt_ms(
    settings: &WebhookSettings,
    attempts_made: u32,
    now_ms: i64,
    retry_after: Option<Duration>,
) -> Option<i64> {
    let delay = *settings
        .schedule
        .get(usize::try_from(attempts_made).ok()?)?;
    let delay = jitter(delay).max(retry_after.unwrap_or(Duration::ZERO));
    let ms = i64::try_from(delay.min(MAX_DELAY).as_millis()).unwrap_or(0);
    Some(now_ms.saturating_add(ms))
}

/// `d` scaled by a random factor in [0.9, 1.1): receivers that failed
/// together are not all retried in the same instant.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    if getrandom::getrandom(&mut b).is_err() {
        return d;
    }
    let unit = f64::from(u16::from_le_bytes(b)) / 65536.0;
    d.mul_f64(0.9 + 0.2 * unit)
}

/// A `Retry-After` value: delay-seconds or an HTTP date.
fn retry_after(value: &str, now_ms: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(s) = value.parse::<u64>() {
        return Some(Duration::from_secs(s).min(MAX_DELAY));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = i64::try_from(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis()).ok()?;
    let ms = u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0);
    Some(Duration::from_millis(ms).min(MAX_DELAY))
}

/// RFC 3339 in UTC with milliseconds (`2026-12-01T15:33:43.123Z`).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // `date -u -d @1796139223 +%FT%TZ` prints 2026-12-01T15:33:43Z.
        assert_eq!(rfc3339(1_796_139_223_123), "2026-12-01T15:33:43.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn the_schedule_sets_the_next_attempt() {
        let settings = WebhookSettings {
            schedule: vec![Duration::ZERO, Duration::from_secs(10)],
            ..WebhookSettings::default()
        };
        // After the first attempt: 10 s ± 10%.
        let at = next_attempt_ms(&settings, 1, 1_000, None).unwrap();
        assert!((10_000..=12_000).contains(&at), "{at}");
        // A later Retry-After wins; an earlier one does not.
        let at = next_attempt_ms(&settings, 1, 1_000, Some(Duration::from_secs(60))).unwrap();
        assert_eq!(at, 61_000);
        let at = next_attempt_ms(&settings, 1, 1_000, Some(Duration::from_secs(1))).unwrap();
        assert!(at >= 10_000, "{at}");
        // Spent.
        assert_eq!(next_attempt_ms(&settings, 2, 1_000, None), None);
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(retry_after("120", 0), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("999999999", 0), Some(MAX_DELAY));
        // 1994-11-06T08:49:37Z is 784111777 s.
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_767_000),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_787_000),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", 0), None);
    }

    #[test]
    fn literal_addresses_are_found() {
        let ip = |u: &str| literal_ip(&reqwest::Url::parse(u).unwrap());
        assert_eq!(
            ip("http://127.0.0.1:9/x"),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(ip("http://[::1]:9/x"), Some("::1".parse().unwrap()));
        assert_eq!(ip("https://hooks.example.com/x"), None);
    }
}
