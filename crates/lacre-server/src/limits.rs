//! Per-client rate limits (token buckets, on the injected clock) and the
//! global in-flight limit.

use crate::ClientMap;
use std::sync::Mutex;

/// What one client may hold at once, so that no client can take what the
/// others need (the global limits protect the server; these protect the
/// clients from each other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// Requests of this client handled at once (long polls not counted).
    pub max_in_flight: usize,
    /// Long polls of this client waiting at once.
    pub max_long_polls: usize,
    /// Jobs of this client queued or running.
    pub max_jobs: u64,
    /// Bytes of arguments (canonical JSON) of this client's queued or
    /// running jobs.
    pub max_job_bytes: u64,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_in_flight: 64,
            max_long_polls: 64,
            max_jobs: 1000,
            max_job_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A client's places: requests in flight and long polls waiting.
#[derive(Debug)]
pub(crate) struct ClientSlots {
    pub(crate) limits: ClientLimits,
    pub(crate) in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    pub(crate) long_polls: std::sync::Arc<tokio::sync::Semaphore>,
}

impl ClientSlots {
    pub(crate) fn new(limits: ClientLimits) -> ClientSlots {
        ClientSlots {
            limits,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(
                limits.max_in_flight.max(1),
            )),
            long_polls: std::sync::Arc::new(tokio::sync::Semaphore::new(
                limits.max_long_polls.max(1),
            )),
        }
    }
}

/// A client's rate: a sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size: how many requests may arrive at once.
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ms: i64,
}

/// Token buckets, one per client that has a configured rate.
#[derive(Debug, Default)]
pub struct RateLimiter {
    rates: ClientMap<Rate>,
    buckets: Mutex<ClientMap<Bucket>>,
}

impl RateLimiter {
    /// A limiter with these per-client rates; clients without one are unlimited.
    pub fn new(rates: impl IntoIterator<Item = (String, Rate)>) -> RateLimiter {
        RateLimiter {
            rates: rates.into_iter().collect(),
            buckets: Mutex::new(ClientMap::default()),
        }
    }

    /// Takes one token for `client_id` at `now_ms`; on refusal, returns how
    /// many milliseconds until a token is available.
    pub fn check(&self, client_id: &str, now_ms: i64) -> Result<(), u64> {
        let Some(rate) = self.rates.get(client_id) else {
            return Ok(());
        };
        if rate.per_second <= 0.0 {
            return Err(u64::MAX);
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(client_id.to_owned()).or_insert(Bucket {
            tokens: rate.burst,
            last_ms: now_ms,
        });
        let elapsed = now_ms.saturating_sub(bucket.last_ms).max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * rate.per_second).min(rate.burst);
        bucket.last_ms = bucket.last_ms.max(now_ms);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait_s = (1.0 - bucket.tokens) / rate.per_second;
            Err((wait_s * 1000.0).ceil() as u64)
        }
    }
}

/// Runs `fut` with a time limit, arming the timer only if the future does
/// not finish on its first poll: most requests are answered without ever
/// waiting, and a timer per request (three per HTTP request) costs more
/// than the work of a small tool.
pub async fn timeout_lazy<F: std::future::Future>(
    limit: std::time::Duration,
    fut: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut fut = std::pin::pin!(fut);
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await;
    match first {
        std::task::Poll::Ready(out) => Ok(out),
        std::task::Poll::Pending => tokio::time::timeout(limit, fut).await,
    }
}

/// Runs `fut`, turning a panic inside it into `Err` with the panic's
/// message: a tool that panics gets a signed `internal` reply instead of a
/// dropped connection (which a client would retry, running the tool again).
pub async fn catch_panic<F: std::future::Future>(fut: F) -> Result<F::Output, String> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(out)) => std::task::Poll::Ready(Ok(out)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(payload) => std::task::Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    })
    .await
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lazy_timeouts_still_time_out() {
        let quick = timeout_lazy(std::time::Duration::from_millis(10), async { 7 }).await;
        assert_eq!(quick.ok(), Some(7));
        let slow = timeout_lazy(
            std::time::Duration::from_millis(20),
            tokio::time::sleep(std::time::Duration::from_secs(5)),
        )
        .await;
        assert!(slow.is_err());
        let pending_then_ready = timeout_lazy(std::time::Duration::from_secs(5), async {
            tokio::task::yield_now().await;
            3
        })
        .await;
        assert_eq!(pending_then_ready.ok(), Some(3));
    }

    #[tokio::test]
    async fn panics_become_errors() {
        let ok = catch_panic(async { 1 }).await;
        assert_eq!(ok, Ok(1));
        let boom = catch_panic(async {
            tokio::task::yield_now().await;
            panic!("tool exploded");
        })
        .await;
        assert_eq!(boom, Err::<(), _>("tool exploded".to_owned()));
    }

    #[test]
    fn bucket_refills_at_the_rate() {
        let mut rates = std::collections::HashMap::new();
        rates.insert(
            "c".to_owned(),
            Rate {
                per_second: 2.0,
                burst: 2.0,
            },
        );
        let rl = RateLimiter::new(rates);
        assert_eq!(rl.check("c", 0), Ok(()));
        assert_eq!(rl.check("c", 0), Ok(()));
        assert_eq!(rl.check("c", 0), Err(500));
        assert_eq!(rl.check("c", 250), Err(250));
        assert_eq!(rl.check("c", 500), Ok(()));
        assert_eq!(rl.check("unlimited", 0), Ok(()));
    }
}
