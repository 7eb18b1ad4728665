//! Reading and writing job rows.

use super::corrupt;
use crate::error::StoreError;
use crate::jobs::{JobRecord, JobState};
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
        result: opt_s("result")?
            .map(|t| parse_map(&t, limits))
            .transpose()?,
        error: opt_s("error")?,
        attempt: u32::try_from(get_i("attempt")?).unwrap_or(u32::MAX),
        created_ms: get_i("created_ms")?,
        updated_ms: get_i("updated_ms")?,
        finished_ms: row
            .try_get::<Option<i64>, _>("finished_ms")
            .map_err(|e| StoreError::Corrupt(format!("finished_ms: {e}")))?,
        version: u64::try_from(get_i("version")?).unwrap_or(0),
    })
}

pub(super) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
