//! Request metrics, rendered in the Prometheus text format at `GET /metrics`.
//!
//! Label values are bounded: the tool label is a registered tool's name (or
//! `-` before a tool is known, `unknown` for an unregistered one), and the
//! outcome is a status or an error code, so a hostile client cannot grow
//! the label set.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0, 10.0,
];

/// What the nonce store holds, for the gauges.
#[derive(Debug, Clone, Copy, Default)]
pub struct NonceGauges {
    /// Nonces remembered.
    pub remembered: usize,
    /// Bytes of memory their records take.
    pub memory_bytes: usize,
}

/// Counters and a latency histogram, updated on every request.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    verification_failures: Mutex<BTreeMap<&'static str, u64>>,
    /// Webhook delivery attempts, by outcome.
    deliveries: Mutex<BTreeMap<&'static str, u64>>,
    /// Requests by the first bucket they fit in (one increment a request;
    /// the cumulative counts are summed when the page is rendered).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Records one request.
    pub fn record(&self, tool: &'static str, outcome: &'static str, latency: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((tool, outcome)).or_insert(0) += 1;
        }
        let secs = latency.as_secs_f64();
        if let Some(bucket) = self
            .buckets
            .iter()
            .zip(BUCKETS)
            .find_map(|(bucket, le)| (secs <= le).then_some(bucket))
        {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Records a request refused by the verification pipeline.
    pub fn record_verification_failure(&self, reason: &'static str) {
        if let Ok(mut m) = self.verification_failures.lock() {
            *m.entry(reason).or_insert(0) += 1;
        }
    }

    /// Records one webhook delivery attempt: `delivered`, `retry`,
    /// `failed` (given up) or `disabled` (the receiver answered 410).
    pub fn record_delivery(&self, outcome: &'static str) {
        if let Ok(mut m) = self.deliveries.lock() {
            *m.entry(outcome).or_insert(0) += 1;
        }
    }

    /// The Prometheus text exposition, with the gauges the caller measured.
    pub fn render(
        &self,
        jobs_by_state: &[(&str, u64)],
        nonces: NonceGauges,
        in_flight: usize,
    ) -> String {
        let mut out = String::new();
        out.push_str("# HELP lacre_requests_total Requests handled, by tool and outcome (status or error code).\n");
        out.push_str("# TYPE lacre_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((tool, outcome), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "lacre_requests_total{{tool=\"{}\",outcome=\"{}\"}} {n}",
                    escape(tool),
                    escape(outcome)
                );
            }
        }
        out.push_str("# HELP lacre_verification_failures_total Requests refused before dispatch, by reason.\n");
        out.push_str("# TYPE lacre_verification_failures_total counter\n");
        if let Ok(m) = self.verification_failures.lock() {
            for (reason, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "lacre_verification_failures_total{{reason=\"{}\"}} {n}",
                    escape(reason)
                );
            }
        }
        out.push_str("# HELP lacre_request_duration_seconds Time to handle a request (after the body is read).\n");
        out.push_str("# TYPE lacre_request_duration_seconds histogram\n");
        // The count first: a request recorded while the buckets are read
        // cannot then make a bucket exceed `+Inf`.
        let count = self.count.load(Ordering::Relaxed);
        let mut cumulative = 0;
        for (bucket, le) in self.buckets.iter().zip(BUCKETS) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "lacre_request_duration_seconds_bucket{{le=\"{le}\"}} {}",
                cumulative.min(count)
            );
        }
        let _ = writeln!(
            out,
            "lacre_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "lacre_request_duration_seconds_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "lacre_request_duration_seconds_count {count}");
        out.push_str("# HELP lacre_jobs Jobs in the store, by state.\n");
        out.push_str("# TYPE lacre_jobs gauge\n");
        for (state, n) in jobs_by_state {
            let _ = writeln!(out, "lacre_jobs{{state=\"{state}\"}} {n}");
        }
        out.push_str(
            "# HELP lacre_nonces Nonces remembered by this process (replay protection).\n",
        );
        out.push_str("# TYPE lacre_nonces gauge\n");
        let _ = writeln!(out, "lacre_nonces {}", nonces.remembered);
        out.push_str(
            "# HELP lacre_nonce_memory_bytes Bytes of memory this process's nonce records take.\n",
        );
        out.push_str("# TYPE lacre_nonce_memory_bytes gauge\n");
        let _ = writeln!(out, "lacre_nonce_memory_bytes {}", nonces.memory_bytes);
        out.push_str(
            "# HELP lacre_requests_in_flight Requests being handled (waiting long polls excluded).\n",
        );
        out.push_str("# TYPE lacre_requests_in_flight gauge\n");
        let _ = writeln!(out, "lacre_requests_in_flight {in_flight}");
        out.push_str(
            "# HELP lacre_webhook_deliveries_total Webhook delivery attempts, by outcome.\n",
        );
        out.push_str("# TYPE lacre_webhook_deliveries_total counter\n");
        if let Ok(m) = self.deliveries.lock() {
            for (outcome, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "lacre_webhook_deliveries_total{{outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.record("batch_sum", "ok", Duration::from_micros(300));
        m.record("batch_sum", "ok", Duration::from_millis(20));
        m.record("-", "bad_signature", Duration::from_micros(50));
        m.record_verification_failure("bad_signature");
        m.record_delivery("retry");
        m.record_delivery("retry");
        let nonces = NonceGauges {
            remembered: 7,
            memory_bytes: 4096,
        };
        let text = m.render(&[("queued", 2)], nonces, 3);
        assert!(text.contains("lacre_requests_total{tool=\"batch_sum\",outcome=\"ok\"} 2"));
        assert!(text.contains("lacre_verification_failures_total{reason=\"bad_signature\"} 1"));
        // Cumulative: each bucket counts every request at or below its bound.
        for (le, n) in [
            ("0.0001", 1),
            ("0.00025", 1),
            ("0.0005", 2),
            ("0.01", 2),
            ("0.025", 3),
            ("10", 3),
        ] {
            let line = format!("lacre_request_duration_seconds_bucket{{le=\"{le}\"}} {n}\n");
            assert!(text.contains(&line), "{line}");
        }
        assert!(text.contains("lacre_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("lacre_jobs{state=\"queued\"} 2"));
        assert!(text.contains("lacre_nonces 7"));
        assert!(text.contains("lacre_nonce_memory_bytes 4096"));
        assert!(text.contains("lacre_requests_in_flight 3"));
        assert!(text.contains("lacre_webhook_deliveries_total{outcome=\"retry\"} 2"));
    }
}
