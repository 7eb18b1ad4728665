//! Reading and writing job rows.

use super::corrupt;
use crate::error::StoreError;
use crate::jobs::{JobRecord, JobState, JobStatus};
use lacre_proto::builtin::JobSummary;
use lacre_proto::{Map, ParseLimits, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

pub(super) fn json_text(map: &Map) -> String {
    String::from_utf8_lossy(&lacre_proto::canonical(&Value::Object(map.clone()))).into_owned()
}

pub(super) fn parse_map(text: &str, limits: ParseLimits) -> Result<Map, StoreError> {
    lacre_proto::parse_object(text.as_bytes(), limits)
        .map_err(|_| corrupt("stored json is not an object"))
}

/// A stored result, read back. The server's `[limits]` bound the requests
/// it reads (and so a job's arguments), not what its tools return: a result
/// is read with the limits a client reads replies with (a long-running MCP
/// tool's 300 KB image is one string past the request limit), bounded all
/// the same.
fn parse_result(text: &str) -> Result<Map, StoreError> {
    parse_map(text, lacre_proto::REPLY_LIMITS)
}

pub(super) fn job_from_row(row: &AnyRow, limits: ParseLimits) -> Result<JobRecord, StoreError> {
    let get_s = |c: &str| {
        row.try_get::<String, _>(c)
            .map_err(|e| StoreError::Corrupt(format!("{c}: {e}")))
    };
    let get_i = |c: &str| {
        row.try_get::<i64, _>(c)
            .map_err(|e| StoreError::Corrupt(format!("{c}: {e}")))
    };
    let opt_s = |c: &str| {
        row.try_get::<Option<String>, _>(c)
            .map_err(|e| StoreError::Corrupt(format!("{c}: {e}")))
    };
    let state_text = get_s("state")?;
    let state = JobState::parse(&state_text).ok_or_else(|| corrupt("unknown job state"))?;
    Ok(JobRecord {
        id: get_s("id")?,
        client_id: get_s("client_id")?,
        request_id: get_s("request_id")?,
        tool: get_s("tool")?,
        args: parse_map(&get_s("args")?, limits)?,
        state,
        progress: row
            .try_get::<Option<f64>, _>("progress")
            .map_err(|e| StoreError::Corrupt(format!("progress: {e}")))?,
        message: opt_s("message")?,
        result: opt_s("result")?.map(|t| parse_result(&t)).transpose()?,
        error: opt_s("error")?,
        attempt: u32::try_from(get_i("attempt")?).unwrap_or(u32::MAX),
        created_ms: get_i("created_ms")?,
        updated_ms: get_i("updated_ms")?,
        finished_ms: row
            .try_get::<Option<i64>, _>("finished_ms")
            .map_err(|e| StoreError::Corrupt(format!("finished_ms: {e}")))?,
        version: u64::try_from(get_i("version")?).unwrap_or(0),
        events: crate::webhooks::EventMask::from_bits(get_i("events")?),
    })
}

/// A row of `lacre_deliveries`.
pub(super) fn delivery_from_row(row: &AnyRow) -> Result<crate::webhooks::Delivery, StoreError> {
    use crate::webhooks::{Delivery, DeliveryState, EventType};
    let col = |c: &str, e: sqlx::Error| StoreError::Corrupt(format!("{c}: {e}"));
    let get_s = |c: &str| row.try_get::<String, _>(c).map_err(|e| col(c, e));
    let get_i = |c: &str| row.try_get::<i64, _>(c).map_err(|e| col(c, e));
    let opt_i = |c: &str| row.try_get::<Option<i64>, _>(c).map_err(|e| col(c, e));
    Ok(Delivery {
        id: get_s("id")?,
        client_id: get_s("client_id")?,
        job_id: get_s("job_id")?,
        request_id: get_s("request_id")?,
        event: EventType::parse(&get_s("event")?).ok_or_else(|| corrupt("unknown event"))?,
        state: DeliveryState::parse(&get_s("state")?)
            .ok_or_else(|| corrupt("unknown delivery state"))?,
        attempts: u32::try_from(get_i("attempts")?).unwrap_or(u32::MAX),
        next_attempt_ms: get_i("next_at_ms")?,
        created_ms: get_i("created_ms")?,
        updated_ms: get_i("updated_ms")?,
        last_status: opt_i("last_status")?.and_then(|s| u16::try_from(s).ok()),
        last_error: row
            .try_get::<Option<String>, _>("last_error")
            .map_err(|e| col("last_error", e))?,
        delivered_ms: opt_i("delivered_ms")?,
    })
}

pub(super) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What `poll_job` needs from a row of `JobStore::status`'s narrow SELECT.
pub(super) fn status_from_row(row: &AnyRow) -> Result<JobStatus, StoreError> {
    let col = |c: &str, e: sqlx::Error| StoreError::Corrupt(format!("{c}: {e}"));
    let state: String = row.try_get("state").map_err(|e| col("state", e))?;
    let result: Option<String> = row.try_get("result").map_err(|e| col("result", e))?;
    Ok(JobStatus {
        id: row.try_get("id").map_err(|e| col("id", e))?,
        client_id: row.try_get("client_id").map_err(|e| col("client_id", e))?,
        state: JobState::parse(&state).ok_or_else(|| corrupt("unknown job state"))?,
        progress: row.try_get("progress").map_err(|e| col("progress", e))?,
        message: row.try_get("message").map_err(|e| col("message", e))?,
        result: result.map(|t| parse_result(&t)).transpose()?,
        error: row.try_get("error").map_err(|e| col("error", e))?,
        version: u64::try_from(
            row.try_get::<i64, _>("version")
                .map_err(|e| col("version", e))?,
        )
        .unwrap_or(0),
    })
}

/// A `list_jobs` entry from a row of `JobStore::summaries`' narrow SELECT.
pub(super) fn summary_from_row(row: &AnyRow) -> Result<JobSummary, StoreError> {
    let col = |c: &str, e: sqlx::Error| StoreError::Corrupt(format!("{c}: {e}"));
    let state: String = row.try_get("state").map_err(|e| col("state", e))?;
    Ok(JobSummary {
        job_id: row.try_get("id").map_err(|e| col("id", e))?,
        tool: row.try_get("tool").map_err(|e| col("tool", e))?,
        state: JobState::parse(&state).ok_or_else(|| corrupt("unknown job state"))?,
        created_ms: row
            .try_get("created_ms")
            .map_err(|e| col("created_ms", e))?,
        updated_ms: row
            .try_get("updated_ms")
            .map_err(|e| col("updated_ms", e))?,
        progress: row
            .try_get::<Option<f64>, _>("progress")
            .map_err(|e| col("progress", e))?
            .filter(|p| p.is_finite()),
        message: row.try_get("message").map_err(|e| col("message", e))?,
    })
}
