//! `lacre call`, `lacre job`, `lacre jobs`, `lacre tools`.
// Indexing here is on `serde_json::Value` by string key, which yields
// `Null` for a missing key and never panics.
#![allow(clippy::indexing_slicing)]

use crate::output::{print_json, report, ProgressView};
use crate::profile::ClientArgs;
use crate::ExitCode;
use anyhow::Result;
use lacre_client::{Client, ClientError, JobHandle, JobStatus};
use lacre_proto::{json, Map, ParseLimits, Value};
use std::io::IsTerminal;

fn parse_args(text: Option<&str>) -> Result<Map, String> {
    let Some(text) = text else {
        return Ok(Map::new());
    };
    match json::parse(text.as_bytes(), ParseLimits::default()) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(format!(
            "ARGS_JSON must be a json object, got {}",
            other.type_name()
        )),
        Err(e) => Err(format!("ARGS_JSON is not valid json: {e}")),
    }
}

/// `lacre call TOOL [ARGS_JSON] [--wait] [--raw]`.
pub async fn call(
    args: &ClientArgs,
    tool: &str,
    json_args: Option<&str>,
    wait: bool,
    raw: bool,
) -> Result<ExitCode> {
    let map = match parse_args(json_args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::Usage);
        }
    };
    let client = args.client()?;
    let reply = match client.call_map(tool, map, std::time::Duration::ZERO).await {
        Ok(r) => r,
        Err(e) => {
            if raw {
                if let ClientError::Server { response, .. } = &e {
                    println!("{}", String::from_utf8_lossy(&response.to_json()));
                }
            }
            return Ok(report(&e));
        }
    };
    let job_id = reply
        .response
        .result
        .as_ref()
        .and_then(|r| r.get("job_id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if wait && reply.response.status == lacre_proto::Status::Accepted {
        if let Some(id) = job_id {
            return wait_job(&client, &JobHandle { id }).await;
        }
    }
    if raw {
        println!("{}", String::from_utf8_lossy(&reply.raw));
    } else {
        print_json(&reply.result());
    }
    Ok(ExitCode::Ok)
}

/// Asks on the terminal whether to cancel; `false` when there is no terminal.
fn confirm_cancel(job_id: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("\ninterrupted: cancel job {job_id}? [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).is_ok() && line.trim().eq_ignore_ascii_case("y")
}

/// Waits for a job, showing progress; Ctrl-C offers to cancel it.
pub async fn wait_job(client: &Client, job: &JobHandle) -> Result<ExitCode> {
    let view = ProgressView::new(&job.id);
    let waited = tokio::select! {
        r = client.wait(job, |p| view.update(p)) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    view.finish();
    match waited {
        Some(Ok(result)) => {
            print_json(&result);
            Ok(ExitCode::Ok)
        }
        Some(Err(e)) => Ok(report(&e)),
        None => {
            let job_id = job.id.clone();
            let cancel = tokio::task::spawn_blocking(move || confirm_cancel(&job_id))
                .await
                .unwrap_or(false);
            if cancel {
                match client.cancel(job).await {
                    Ok(state) => eprintln!("job {} is now {state}", job.id),
                    Err(e) => return Ok(report(&e)),
                }
            } else {
                eprintln!(
                    "job {} keeps running; `lacre job wait {}` to resume",
                    job.id, job.id
                );
            }
            Ok(ExitCode::Interrupted)
        }
    }
}

/// `lacre job status|wait|cancel JOB_ID`.
pub async fn job(args: &ClientArgs, action: &str, job_id: &str) -> Result<ExitCode> {
    let client = args.client()?;
    let job = JobHandle {
        id: job_id.to_owned(),
    };
    match action {
        "wait" => wait_job(&client, &job).await,
        "cancel" => match client.cancel(&job).await {
            Ok(state) => {
                let mut m = Map::new();
                m.insert("job_id".into(), Value::from(job_id));
                m.insert("state".into(), Value::from(state));
                print_json(&m);
                Ok(ExitCode::Ok)
            }
            Err(e) => Ok(report(&e)),
        },
        _ => match client.poll(&job, None).await {
            Ok(JobStatus::Done(result)) => {
                let mut m = Map::new();
                m.insert("job_id".into(), Value::from(job_id));
                m.insert("state".into(), Value::from("done"));
                m.insert("result".into(), Value::Object(result));
                print_json(&m);
                Ok(ExitCode::Ok)
            }
            Ok(JobStatus::Running(p)) => {
                let mut m = Map::new();
                m.insert("job_id".into(), Value::from(job_id));
                m.insert("state".into(), Value::from(p.state));
                if let Some(f) = p.fraction.and_then(Value::float) {
                    m.insert("progress".into(), f);
                }
                if let Some(msg) = p.message {
                    m.insert("message".into(), Value::from(msg));
                }
                print_json(&m);
                Ok(ExitCode::Ok)
            }
            Err(e) => Ok(report(&e)),
        },
    }
}

/// `lacre jobs [--state S] [--limit N]`.
pub async fn jobs(args: &ClientArgs, state: Option<&str>, limit: Option<u64>) -> Result<ExitCode> {
    let client = args.client()?;
    let mut a = serde_json::Map::new();
    if let Some(s) = state {
        a.insert("state".into(), s.into());
    }
    if let Some(l) = limit {
        a.insert("limit".into(), l.into());
    }
    match client.call("list_jobs", serde_json::Value::Object(a)).await {
        Ok(reply) => {
            if std::io::stdout().is_terminal() {
                let jobs = reply.result_json()["jobs"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                println!(
                    "{:<38} {:<18} {:<10} {:>8}",
                    "JOB", "TOOL", "STATE", "PROGRESS"
                );
                for j in jobs {
                    let progress = j["progress"]
                        .as_f64()
                        .map(|p| format!("{:.0}%", p * 100.0))
                        .unwrap_or_default();
                    println!(
                        "{:<38} {:<18} {:<10} {:>8}",
                        j["job_id"].as_str().unwrap_or(""),
                        j["tool"].as_str().unwrap_or(""),
                        j["state"].as_str().unwrap_or(""),
                        progress
                    );
                }
            } else {
                print_json(&reply.result());
            }
            Ok(ExitCode::Ok)
        }
        Err(e) => Ok(report(&e)),
    }
}

/// `lacre tools [--json]`.
pub async fn tools(args: &ClientArgs, as_json: bool) -> Result<ExitCode> {
    let client = args.client()?;
    match client.call("server_identity", serde_json::json!({})).await {
        Ok(reply) => {
            let result = reply.result_json();
            let tools = result["capabilities"]["tools"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if as_json {
                let mut m = Map::new();
                m.insert(
                    "tools".into(),
                    Value::from_serde(serde_json::Value::Array(tools)),
                );
                print_json(&m);
            } else {
                println!("{:<18} {:<5} DESCRIPTION", "TOOL", "KIND");
                for t in tools {
                    let kind = if t["long_running"].as_bool() == Some(true) {
                        "job"
                    } else {
                        "call"
                    };
                    println!(
                        "{:<18} {:<5} {}",
                        t["name"].as_str().unwrap_or(""),
                        kind,
                        t["description"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(ExitCode::Ok)
        }
        Err(e) => Ok(report(&e)),
    }
}

/// `lacre jobs --store URL`: every client's jobs, read from the store.
pub async fn jobs_in_store(url: &str, state: Option<&str>, limit: Option<u64>) -> Result<ExitCode> {
    let state = match state {
        None => None,
        Some(s) => match lacre_server::JobState::parse(s) {
            Some(st) => Some(st),
            None => {
                eprintln!("error: --state must be queued, running, done, failed or cancelled");
                return Ok(ExitCode::Usage);
            }
        },
    };
    let stores = crate::serve::open_store(url).await?;
    let limit = usize::try_from(limit.unwrap_or(100)).unwrap_or(100);
    let jobs = stores.jobs.list_all(state, limit).await?;
    println!(
        "{:<38} {:<16} {:<18} {:<10} {:>8} {:>7}",
        "JOB", "CLIENT", "TOOL", "STATE", "PROGRESS", "ATTEMPT"
    );
    for j in jobs {
        let progress = j
            .progress
            .map(|p| format!("{:.0}%", p * 100.0))
            .unwrap_or_default();
        println!(
            "{:<38} {:<16} {:<18} {:<10} {:>8} {:>7}",
            j.id,
            j.client_id,
            j.tool,
            j.state.as_str(),
            progress,
            j.attempt
        );
    }
    Ok(ExitCode::Ok)
}
