//! `lacre call`, `lacre job`, `lacre jobs`, `lacre tools`.

use crate::output::{percent, print_json, report, ProgressView};
use crate::profile::ClientArgs;
use crate::ExitCode;
use anyhow::Result;
use lacre_client::{Client, ClientError, JobHandle, JobState, JobView};
use lacre_proto::builtin::{decode_result, encode_result, Accepted, JobList};
use lacre_proto::json::ObjectError;
use lacre_proto::{parse_object, Map, ParseLimits, Status, Value};
use std::io::IsTerminal;

fn parse_args(text: Option<&str>) -> Result<Map, String> {
    let Some(text) = text else {
        return Ok(Map::new());
    };
    match parse_object(text.as_bytes(), ParseLimits::default()) {
        Ok(m) => Ok(m),
        Err(ObjectError::Json(e)) => Err(format!("ARGS_JSON is not valid json: {e}")),
        Err(e) => Err(format!("ARGS_JSON {e}")),
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
    if wait && reply.response.status == Status::Accepted {
        let accepted: Accepted = decode_result("accepted reply", &reply.result())?;
        return wait_job(
            &client,
            &JobHandle {
                id: accepted.job_id,
            },
        )
        .await;
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

/// What `lacre job` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JobAction {
    /// Print the job's state (and result once done).
    Status,
    /// Wait for the job, showing progress; print its result.
    Wait,
    /// Cancel the job; print its state afterwards.
    Cancel,
}

fn print_encoded<T: serde::Serialize>(value: &T) -> Result<ExitCode> {
    print_json(&encode_result("output", value)?);
    Ok(ExitCode::Ok)
}

/// `lacre job status|wait|cancel JOB_ID`.
pub async fn job(args: &ClientArgs, action: JobAction, job_id: &str) -> Result<ExitCode> {
    let client = args.client()?;
    let job = JobHandle {
        id: job_id.to_owned(),
    };
    match action {
        JobAction::Wait => wait_job(&client, &job).await,
        JobAction::Cancel => match client.cancel(&job).await {
            Ok(state) => print_encoded(&lacre_proto::builtin::CancelOutcome {
                job_id: job.id,
                state,
            }),
            Err(e) => Ok(report(&e)),
        },
        JobAction::Status => match client.poll(&job, None).await {
            Ok(JobView::Done(result)) => {
                let mut m = Map::new();
                m.insert("job_id".into(), Value::from(job_id));
                m.insert("state".into(), Value::from(JobState::Done.as_str()));
                m.insert("result".into(), Value::Object(result));
                print_json(&m);
                Ok(ExitCode::Ok)
            }
            Ok(JobView::Pending(mut p)) => {
                p.job_id = job.id;
                print_encoded(&p)
            }
            Err(e) => Ok(report(&e)),
        },
    }
}

/// `lacre jobs [--state S] [--limit N]`.
pub async fn jobs(
    args: &ClientArgs,
    state: Option<JobState>,
    limit: Option<u64>,
) -> Result<ExitCode> {
    let jobs = match args.client()?.list_jobs(state, limit).await {
        Ok(jobs) => jobs,
        Err(e) => return Ok(report(&e)),
    };
    if !std::io::stdout().is_terminal() {
        return print_encoded(&JobList { jobs });
    }
    println!(
        "{:<38} {:<18} {:<10} {:>8}",
        "JOB", "TOOL", "STATE", "PROGRESS"
    );
    for j in jobs {
        let (id, tool, state, done) = (j.job_id, j.tool, j.state, percent(j.progress));
        println!("{id:<38} {tool:<18} {state:<10} {done:>8}");
    }
    Ok(ExitCode::Ok)
}

/// `lacre tools [--json]`.
pub async fn tools(args: &ClientArgs, as_json: bool) -> Result<ExitCode> {
    let tools = match args.client()?.tools().await {
        Ok(tools) => tools,
        Err(e) => return Ok(report(&e)),
    };
    if as_json {
        let mut m = Map::new();
        m.insert("tools".into(), Value::from_serialize(&tools)?);
        print_json(&m);
        return Ok(ExitCode::Ok);
    }
    // Upstream tools have long names: the column fits them.
    let width = tools.iter().map(|t| t.name.chars().count()).max();
    let width = width.unwrap_or(0).max(18);
    println!("{:<width$} {:<5} DESCRIPTION", "TOOL", "KIND");
    for t in tools {
        let kind = if t.long_running { "job" } else { "call" };
        println!("{:<width$} {:<5} {}", t.name, kind, t.description);
    }
    Ok(ExitCode::Ok)
}

/// `lacre jobs --store URL`: every client's jobs, read from the store.
pub async fn jobs_in_store(
    url: &str,
    state: Option<JobState>,
    limit: Option<u64>,
) -> Result<ExitCode> {
    let stores = crate::serve::open_store(url).await?;
    let limit = usize::try_from(limit.unwrap_or(100)).unwrap_or(100);
    let every_client = lacre_server::Listing::all(state, limit);
    let jobs = stores.jobs.list(every_client).await?;
    println!(
        "{:<38} {:<16} {:<18} {:<10} {:>8} {:>7}",
        "JOB", "CLIENT", "TOOL", "STATE", "PROGRESS", "ATTEMPT"
    );
    for j in jobs {
        let (id, client, tool, attempt) = (j.id, j.client_id, j.tool, j.attempt);
        let (state, done) = (j.state.as_str(), percent(j.progress));
        println!("{id:<38} {client:<16} {tool:<18} {state:<10} {done:>8} {attempt:>7}");
    }
    Ok(ExitCode::Ok)
}
