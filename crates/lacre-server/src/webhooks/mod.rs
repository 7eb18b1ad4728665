//! Webhooks: a job that ends is told to its client's endpoint, signed as
//! Standard Webhooks says (SPEC §9.6).
//!
//! The event is written to an outbox in the store in the same transaction
//! as the job's final state ([`Outbox`]); a delivery loop on every replica
//! claims due events (one replica at a time holds each, under a lease and a
//! fencing token, as jobs are claimed), builds the body from the job as it
//! is at that moment (the signed reply `poll_job` would return), signs it
//! and sends it, and records the attempt: delivered, retried later on the
//! schedule, given up, or the endpoint disabled (HTTP 410).

mod deliver;
mod target;

pub use deliver::{rfc3339, Deliveries, MAX_RESPONSE_BYTES};
pub use target::{is_private, TargetError};

use crate::error::StoreError;
use crate::jobs::Listing;
use std::time::Duration;

/// The events a client may be told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// The job finished with a result.
    Done,
    /// The job failed.
    Failed,
    /// The job was cancelled.
    Cancelled,
}

impl EventType {
    /// Every event type, in the order of their bits.
    pub const ALL: [EventType; 3] = [EventType::Done, EventType::Failed, EventType::Cancelled];

    /// The wire name (`job.done`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Done => "job.done",
            EventType::Failed => "job.failed",
            EventType::Cancelled => "job.cancelled",
        }
    }

    /// The event of this wire name.
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The event a job reaching `state` raises, if any.
    pub fn of_state(state: crate::jobs::JobState) -> Option<EventType> {
        use crate::jobs::JobState;
        match state {
            JobState::Done => Some(EventType::Done),
            JobState::Failed => Some(EventType::Failed),
            JobState::Cancelled => Some(EventType::Cancelled),
            JobState::Queued | JobState::Running => None,
        }
    }

    /// The job state this event is named after (`done`, ...): the second
    /// half of the `webhook-id`.
    pub fn state(self) -> crate::jobs::JobState {
        use crate::jobs::JobState;
        match self {
            EventType::Done => JobState::Done,
            EventType::Failed => JobState::Failed,
            EventType::Cancelled => JobState::Cancelled,
        }
    }

    fn bit(self) -> u8 {
        match self {
            EventType::Done => 1,
            EventType::Failed => 2,
            EventType::Cancelled => 4,
        }
    }
}

/// The events a job's client asked to be told of, fixed when the job is
/// created (stored with it, so that whichever replica ends the job writes
/// the event without reading configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventMask(u8);

impl EventMask {
    /// No events: the client has no webhook.
    pub const NONE: EventMask = EventMask(0);
    /// The default of a client with a `webhook_url`: every event.
    pub const ALL: EventMask = EventMask(7);

    /// These events.
    pub fn of(events: &[EventType]) -> EventMask {
        EventMask(events.iter().fold(0, |m, e| m | e.bit()))
    }

    /// Whether `event` is among them.
    pub fn contains(self, event: EventType) -> bool {
        self.0 & event.bit() != 0
    }

    /// The stored form.
    pub fn bits(self) -> i64 {
        i64::from(self.0)
    }

    /// From the stored form (unknown bits are dropped).
    pub fn from_bits(bits: i64) -> EventMask {
        EventMask(u8::try_from(bits & 7).unwrap_or(0))
    }

    /// Whether no event is asked for.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The error recorded for the attempt that a 410 answered.
pub const GONE: &str = "HTTP 410 Gone: endpoint disabled until an operator enables it";

/// The `webhook-id` of a job's event: `<job_id>.<state>`, the same for
/// every attempt.
pub fn webhook_id(job_id: &str, event: EventType) -> String {
    format!("{job_id}.{}", event.state().as_str())
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Waiting for its next attempt (or for its endpoint to be re-enabled).
    Pending,
    /// Claimed by a replica that is sending it.
    Sending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt of the schedule failed (or it cannot be built); an
    /// operator may retry it.
    Failed,
}

impl DeliveryState {
    /// Every state.
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Pending,
        DeliveryState::Sending,
        DeliveryState::Delivered,
        DeliveryState::Failed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sending => "sending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    /// The state of this stored name.
    pub fn parse(s: &str) -> Option<DeliveryState> {
        DeliveryState::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// One event and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The `webhook-id` (`<job_id>.<state>`).
    pub id: String,
    /// Whose endpoint it goes to.
    pub client_id: String,
    /// The job.
    pub job_id: String,
    /// The request that started the job (the embedded reply answers it).
    pub request_id: String,
    /// What happened.
    pub event: EventType,
    /// Where the delivery is.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (ms since the epoch).
    pub next_attempt_ms: i64,
    /// When the event was written.
    pub created_ms: i64,
    /// Last change.
    pub updated_ms: i64,
    /// The HTTP status of the last attempt, if one was received.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When the receiver accepted it.
    pub delivered_ms: Option<i64>,
}

/// A delivery handed to a sender, with the fencing token of this claim.
#[derive(Debug, Clone)]
pub struct DeliveryClaim {
    /// The delivery (state `sending`; `attempts` counts this one).
    pub delivery: Delivery,
    /// Only this token may record the attempt.
    pub fence: u64,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    /// The receiver answered 2xx.
    Delivered {
        /// Its status.
        status: u16,
    },
    /// Not accepted; try again at `at_ms`.
    Retry {
        /// When.
        at_ms: i64,
        /// The receiver's status, if it answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
    },
    /// Not accepted, and no attempt is left (or none can succeed).
    GaveUp {
        /// The receiver's status, if it answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
    },
    /// The receiver answered 410 Gone: the client's endpoint is disabled
    /// (its events wait) until an operator enables it again.
    EndpointGone,
}

/// What an attempt writes to its delivery (every store applies the same).
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The delivery's state afterwards.
    pub state: DeliveryState,
    /// When it is next due (unchanged when `None`).
    pub next_attempt_ms: Option<i64>,
    /// The receiver's status, if it answered.
    pub last_status: Option<u16>,
    /// What went wrong, if anything.
    pub last_error: Option<String>,
    /// When the receiver accepted it.
    pub delivered_ms: Option<i64>,
}

impl AttemptOutcome {
    /// What this outcome, at `now_ms`, writes to its delivery.
    pub fn recorded(&self, now_ms: i64) -> Recorded {
        let (state, next_attempt_ms, last_status, last_error, delivered_ms) = match self {
            AttemptOutcome::Delivered { status } => (
                DeliveryState::Delivered,
                None,
                Some(*status),
                None,
                Some(now_ms),
            ),
            AttemptOutcome::Retry {
                at_ms,
                status,
                error,
            } => (
                DeliveryState::Pending,
                Some(*at_ms),
                *status,
                Some(error.clone()),
                None,
            ),
            AttemptOutcome::GaveUp { status, error } => (
                DeliveryState::Failed,
                None,
                *status,
                Some(error.clone()),
                None,
            ),
            AttemptOutcome::EndpointGone => (
                DeliveryState::Pending,
                Some(now_ms),
                Some(410),
                Some(GONE.to_owned()),
                None,
            ),
        };
        Recorded {
            state,
            next_attempt_ms,
            last_status,
            last_error,
            delivered_ms,
        }
    }
}

/// A sender's report on the delivery it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt<'a> {
    /// The delivery.
    pub id: &'a str,
    /// The claim's fencing token; a stale one records nothing.
    pub fence: u64,
    /// Now.
    pub now_ms: i64,
    /// What happened.
    pub outcome: AttemptOutcome,
}

/// A client's endpoint that an operator must enable again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisabledEndpoint {
    /// The client.
    pub client_id: String,
    /// Since when.
    pub disabled_ms: i64,
    /// Why.
    pub reason: String,
}

/// Which deliveries to send again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetrySelector<'a> {
    /// This one (failed or pending), now.
    Id(&'a str),
    /// Every failed delivery of this client.
    FailedOf(&'a str),
    /// Every failed delivery.
    AllFailed,
}

/// The outbox of job events, kept by the job store (an event is written
/// in the same transaction as the job's final state, so a store that
/// keeps jobs keeps their events).
#[async_trait::async_trait]
pub trait Outbox: Send + Sync {
    /// Claims the oldest due delivery whose endpoint is enabled (or one
    /// whose sender's lease expired) for `lease_ms`, counting the attempt.
    async fn claim_delivery(
        &self,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<DeliveryClaim>, StoreError>;
    /// Records an attempt; `false` when the fence is stale and nothing was
    /// written.
    async fn record_attempt(&self, attempt: Attempt<'_>) -> Result<bool, StoreError>;
    /// Deliveries, newest first, optionally of one client and in one state.
    async fn deliveries(
        &self,
        which: Listing<'_, DeliveryState>,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Sends deliveries again from the first step of the schedule; returns
    /// how many were re-queued.
    async fn retry_deliveries(
        &self,
        which: RetrySelector<'_>,
        now_ms: i64,
    ) -> Result<u64, StoreError>;
    /// Endpoints disabled by a 410.
    async fn disabled_endpoints(&self) -> Result<Vec<DisabledEndpoint>, StoreError>;
    /// Enables a client's endpoint again; `false` if it was not disabled.
    async fn enable_endpoint(&self, client_id: &str) -> Result<bool, StoreError>;
}

/// A client's webhook endpoint, as configured by the operator (its
/// `Debug` form hides the secrets).
#[derive(Clone)]
pub struct Endpoint {
    /// Where to send (`http` or `https`).
    pub url: reqwest::Url,
    /// `whsec_` secrets: each signs a `v1` entry (two during a rotation).
    pub secrets: Vec<Vec<u8>>,
    /// The events sent.
    pub events: EventMask,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url.as_str())
            .field("secrets", &format_args!("<{} hidden>", self.secrets.len()))
            .field("events", &self.events)
            .finish()
    }
}

/// The delivery settings (`[webhooks]`).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Allow loopback, private and link-local targets (default false).
    pub allow_private_targets: bool,
    /// Time one attempt may take (default 15 s).
    pub timeout: Duration,
    /// Delay before each attempt, the first from the event (default 0 s,
    /// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h).
    pub schedule: Vec<Duration>,
    /// Deliveries sent at once by this replica (default 8).
    pub concurrency: usize,
    /// How often the outbox is looked at when no change wakes the loop
    /// (default 1 s).
    pub poll_interval: Duration,
}

/// The default schedule: ten attempts over about three days.
pub const DEFAULT_SCHEDULE: [&str; 10] = [
    "0s", "5s", "5m", "30m", "2h", "5h", "10h", "14h", "20h", "24h",
];

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            allow_private_targets: false,
            timeout: Duration::from_secs(15),
            schedule: DEFAULT_SCHEDULE
                .iter()
                .filter_map(|s| parse_delay(s))
                .collect(),
            concurrency: 8,
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// Longest delay between two attempts (one day), whatever the schedule or
/// a receiver's `Retry-After` says.
pub const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);

/// A delay of the schedule: a whole number and a unit, `ms`, `s`, `m`, `h`
/// or `d` (`"0s"`, `"250ms"`, `"5m"`); at most [`MAX_DELAY`].
pub fn parse_delay(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().ok()?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => None,
    }?;
    let d = Duration::from_millis(ms);
    (d <= MAX_DELAY).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_parse_with_their_units() {
        assert_eq!(parse_delay("0s"), Some(Duration::ZERO));
        assert_eq!(parse_delay("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_delay("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_delay("24h"), Some(MAX_DELAY));
        assert_eq!(parse_delay("1d"), Some(MAX_DELAY));
        for bad in ["", "5", "s", "-5s", "5 s", "5x", "25h", "1.5s"] {
            assert_eq!(parse_delay(bad), None, "{bad:?}");
        }
        assert_eq!(WebhookSettings::default().schedule.len(), 10);
    }

    #[test]
    fn endpoints_do_not_show_their_secrets() {
        let e = Endpoint {
            url: "https://h/x".parse().unwrap(),
            secrets: vec![b"very-secret-bytes".to_vec()],
            events: EventMask::ALL,
        };
        let shown = format!("{e:?}");
        assert!(
            shown.contains("https://h/x") && shown.contains("<1 hidden>"),
            "{shown}"
        );
        assert!(!shown.contains("118, 101"), "{shown}");
    }

    #[test]
    fn masks_hold_their_events() {
        let m = EventMask::of(&[EventType::Done, EventType::Cancelled]);
        assert!(m.contains(EventType::Done) && m.contains(EventType::Cancelled));
        assert!(!m.contains(EventType::Failed));
        assert_eq!(EventMask::from_bits(m.bits()), m);
        assert!(EventType::ALL.iter().all(|e| EventMask::ALL.contains(*e)));
        assert!(EventMask::NONE.is_empty());
        assert_eq!(webhook_id("j1", EventType::Failed), "j1.failed");
    }
}
