//! The built-in tools' arguments and results, as one set of serde types
//! that the server produces and the client reads: `server_identity`,
//! `poll_job`, `cancel_job`, `list_jobs`, and the `accepted` reply of every
//! long-running tool.
//!
//! Results are read leniently (unknown members are ignored, so a newer
//! server or the seed's own still decodes); arguments are strict, as the
//! seed's `extra="forbid"` models are.
//!
//! ```
//! use lacre_proto::builtin::{JobState, JobSummary};
//! use lacre_proto::json::{de, ser};
//!
//! let summary = JobSummary {
//!     job_id: "j1".into(),
//!     tool: "start_long_task".into(),
//!     state: JobState::Running,
//!     created_ms: 1,
//!     updated_ms: 2,
//!     progress: Some(0.5),
//!     message: None,
//! };
//! let value = ser::to_value(&summary).unwrap();
//! assert_eq!(value.to_canonical(), br#"{"created_ms":1,"job_id":"j1","progress":0.5,"state":"running","tool":"start_long_task","updated_ms":2}"#);
//! let back: JobSummary = de::from_value(&value).unwrap();
//! assert_eq!(back, summary);
//! ```

use crate::json::{self, Map, Value};
use crate::wire::{Response, Status};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a job is in its life: `queued → running → done | failed | cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker holds it.
    Running,
    /// Finished with a result.
    Done,
    /// Finished with an error.
    Failed,
    /// Cancelled by its client.
    Cancelled,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The wire name (`poll_job`'s `state`, `list_jobs`' filter).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Reads a wire name.
    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the job can change no more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// `server_identity` takes no arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerIdentityIn {}

/// Longest long poll, in ms.
pub const MAX_WAIT_MS: u64 = 30_000;

/// `poll_job` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollJobIn {
    /// The job id from the `accepted` reply.
    pub job_id: String,
    /// Hold the reply until the job changes or this many ms pass (0 to 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 30000))]
    pub wait_ms: Option<u64>,
    /// The `version` of the last reply the caller saw: a job whose version
    /// differs is answered at once, and a long poll waits for a change
    /// after that one (not after the server's first read), so no change is
    /// held back and none is shown twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_version: Option<u64>,
}

/// `cancel_job` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelJobIn {
    /// The job to cancel.
    pub job_id: String,
}

/// Most jobs `list_jobs` returns.
pub const MAX_LIST_LIMIT: u64 = 1000;

/// How many jobs `list_jobs` returns when the caller names no limit.
pub const DEFAULT_LIST_LIMIT: u64 = 100;

/// `list_jobs` arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListJobsIn {
    /// Only jobs in this state: queued, running, done, failed, cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// At most this many (1 to 1000, default 100), newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u64>,
}

/// One tool as `server_identity` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// The name to call it by.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of its arguments.
    #[serde(default)]
    pub args_schema: serde_json::Value,
    /// Whether a call answers `accepted` with a job id.
    #[serde(default)]
    pub long_running: bool,
}

/// A tool list entry as a peer may send it: lacre's objects, or the bare
/// names that a server written from the seed lists.
#[derive(Deserialize)]
#[serde(untagged)]
enum ToolEntry {
    Name(String),
    Info(ToolInfo),
}

fn tool_entries<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ToolInfo>, D::Error> {
    let entries: Vec<ToolEntry> = Deserialize::deserialize(d)?;
    Ok(entries
        .into_iter()
        .map(|e| match e {
            ToolEntry::Info(t) => t,
            ToolEntry::Name(name) => ToolInfo {
                name,
                description: String::new(),
                args_schema: serde_json::Value::Null,
                long_running: false,
            },
        })
        .collect())
}

/// What a server says it can do (`server_identity`'s `capabilities`).
/// Every member is optional on reading: the seed's server sends only
/// `tools`, as names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The protocol version (`"mcp/0.1"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The signature algorithms the server verifies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<String>,
    /// The algorithm of the server's own key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_algorithm: Option<String>,
    /// The timestamp window, ± ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_skew_ms: Option<i64>,
    /// Whether `poll_job` takes `wait_ms` (long polling). A server that
    /// does not say so (the seed's) is polled without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_poll: Option<bool>,
    /// The tools this caller may call.
    #[serde(default, deserialize_with = "tool_entries")]
    pub tools: Vec<ToolInfo>,
}

/// `server_identity`'s result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerIdentity {
    /// The server's id.
    pub server_id: String,
    /// Short fingerprint of the server's key (display only).
    pub fingerprint: String,
    /// What it can do.
    #[serde(default)]
    pub capabilities: Capabilities,
}

/// The result of an `accepted` reply: the job a long-running tool started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The job id, for `poll_job` and `cancel_job`.
    pub job_id: String,
}

/// A queued or running job as `poll_job` shows it (status `running`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    /// The job id.
    pub job_id: String,
    /// `queued` or `running`.
    pub state: JobState,
    /// Fraction done in `[0, 1]`, if the tool reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// Progress message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The job's version (it moves at every change): what to pass back as
    /// `since_version`. Absent from servers that do not know it (the seed's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// `cancel_job`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOutcome {
    /// The job id.
    pub job_id: String,
    /// Its state afterwards (`cancelled`, or the terminal state it had reached).
    pub state: JobState,
}

/// One job in `list_jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    /// The job id.
    pub job_id: String,
    /// The tool it runs.
    pub tool: String,
    /// Where it is.
    pub state: JobState,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
    /// Last change, ms since the epoch.
    pub updated_ms: i64,
    /// Fraction done, if reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// Progress message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `list_jobs`' result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<JobSummary>,
}

/// `list_deliveries` arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListDeliveriesIn {
    /// Only deliveries in this state: pending, sending, delivered, failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// At most this many (1 to 1000, default 100), newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u64>,
}

/// One webhook delivery in `list_deliveries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverySummary {
    /// The `webhook-id` (`<job_id>.<state>`).
    pub webhook_id: String,
    /// The job.
    pub job_id: String,
    /// `job.done`, `job.failed` or `job.cancelled`.
    pub event: String,
    /// `pending`, `sending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the event was written, ms since the epoch.
    pub created_ms: i64,
    /// When the next attempt is due (pending and sending ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_ms: Option<i64>,
    /// The HTTP status of the last attempt, if one was received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the receiver accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_ms: Option<i64>,
}

/// `list_deliveries`' result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryList {
    /// Whether this client has a webhook endpoint configured.
    pub configured: bool,
    /// Whether its endpoint is disabled (it answered 410 Gone) until an
    /// operator enables it again; its events wait meanwhile.
    pub endpoint_disabled: bool,
    /// Newest first.
    pub deliveries: Vec<DeliverySummary>,
}

/// What a successful `poll_job` reply says about a job: the typed reading
/// of its status and result. A failed or cancelled job is answered with a
/// signed error (`job_failed`, `job_cancelled`), read as any error is.
#[derive(Debug, Clone, PartialEq)]
pub enum JobView {
    /// Queued or running (status `running`).
    Pending(JobProgress),
    /// Finished (status `done`): the tool's result, as the seed returns it.
    Done(Map),
}

/// A result that does not have the shape its tool promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected {what}: {reason}")]
pub struct ShapeError {
    /// What was being read.
    pub what: &'static str,
    /// Why it does not fit.
    pub reason: String,
}

/// Reads a result object as `T`.
pub fn decode_result<T: serde::de::DeserializeOwned>(
    what: &'static str,
    result: &Map,
) -> Result<T, ShapeError> {
    json::de::from_map(result).map_err(|e| ShapeError {
        what,
        reason: e.to_string(),
    })
}

/// Writes a result type as a result object.
pub fn encode_result<T: Serialize>(what: &'static str, value: &T) -> Result<Map, ShapeError> {
    match json::ser::to_value(value) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(ShapeError {
            what,
            reason: format!("a {} is not an object", other.type_name()),
        }),
        Err(e) => Err(ShapeError {
            what,
            reason: e.to_string(),
        }),
    }
}

impl JobView {
    /// Reads a successful `poll_job` reply (status `running` or `done`).
    /// Error replies are the caller's to read: `job_failed` and
    /// `job_cancelled` arrive as verified errors.
    pub fn from_response(response: &Response) -> Result<JobView, ShapeError> {
        let result = response.result.clone().unwrap_or_default();
        match response.status {
            Status::Done => Ok(JobView::Done(result)),
            Status::Running => {
                // The seed's server sends `{"status": "running"}` without
                // our members: read what is there, default the rest.
                let state = match result.get("state") {
                    None => JobState::Running,
                    Some(_) => decode_result::<StateOnly>("job state", &result)?.state,
                };
                Ok(JobView::Pending(JobProgress {
                    job_id: result
                        .get("job_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    state,
                    progress: result.get("progress").and_then(number_as_f64),
                    message: result
                        .get("message")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    version: result.get("version").and_then(number_as_u64),
                }))
            }
            other => Err(ShapeError {
                what: "poll_job reply",
                reason: format!("status {:?}", other.as_str()),
            }),
        }
    }
}

#[derive(Deserialize)]
struct StateOnly {
    state: JobState,
}

fn number_as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(crate::json::Number::Int(i)) => u64::try_from(*i).ok(),
        _ => None,
    }
}

fn number_as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(crate::json::Number::Float(f)) => Some(*f),
        Value::Number(crate::json::Number::Int(i)) => Some(*i as f64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{parse_object, ParseLimits};

    fn obj(text: &str) -> Map {
        parse_object(text.as_bytes(), ParseLimits::default()).unwrap()
    }

    #[test]
    fn seed_identity_with_bare_tool_names_decodes() {
        let m = obj(
            r#"{"server_id":"s","fingerprint":"ab","capabilities":{"tools":["batch_sum","poll_job"]}}"#,
        );
        let id: ServerIdentity = decode_result("identity", &m).unwrap();
        assert_eq!(id.capabilities.tools.len(), 2);
        assert_eq!(id.capabilities.tools[1].name, "poll_job");
        assert!(!id.capabilities.tools[1].long_running);
        assert_eq!(id.capabilities.version, None);
    }

    #[test]
    fn job_state_names_round_trip() {
        for st in JobState::ALL {
            assert_eq!(JobState::parse(st.as_str()), Some(st));
            let v = json::ser::to_value(&st).unwrap();
            assert_eq!(v.as_str(), Some(st.as_str()));
        }
        assert_eq!(JobState::parse("Running"), None);
    }

    #[test]
    fn seed_running_reply_reads_as_pending() {
        let r = Response {
            request_id: "r".into(),
            ts_ms: 0,
            ok: true,
            server_id: "s".into(),
            status: Status::Running,
            result: Some(obj(r#"{"status":"running"}"#)),
            error: None,
            signature: String::new(),
        };
        let JobView::Pending(p) = JobView::from_response(&r).unwrap() else {
            panic!("not pending");
        };
        assert_eq!(p.state, JobState::Running);
        assert_eq!(p.progress, None);
    }

    #[test]
    fn an_unknown_state_is_a_shape_error() {
        let m = obj(r#"{"job_id":"j","state":"exploded"}"#);
        assert!(decode_result::<JobProgress>("job", &m).is_err());
    }
}
