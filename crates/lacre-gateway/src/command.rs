//! Commands as tools (`[[tools]]`): one process per call.
//!
//! The protocol between lacre and the command (SPEC §9.2):
//! - stdin: the validated argument object as canonical JSON, then EOF;
//! - stdout: the result, one JSON object (at most `max_output_bytes`);
//! - exit status 0 means success; anything else is a `tool_error` carrying
//!   the last lines of stderr;
//! - long-running commands may write progress to file descriptor 3, one
//!   JSON object per line: `{"progress": 0.5, "message": "half way"}`;
//! - environment: PATH, HOME, the configured `env`, and `LACRE_CLIENT_ID`
//!   with `LACRE_REQUEST_ID` (immediate) or `LACRE_JOB_ID` with
//!   `LACRE_ATTEMPT` (jobs);
//! - a timeout or a cancel kills the command's whole process group.

use crate::process;
use lacre_proto::{Map, ParseLimits, Value};
use lacre_server::config::upstreams::CommandTool;
use lacre_server::{JobContext, Registry, ToolDef, ToolError};
use std::io::BufRead;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// How much of stderr a failure shows (its end).
pub const STDERR_TAIL_BYTES: usize = 2048;
/// Longest progress line read from fd 3; longer lines are skipped.
const MAX_PROGRESS_LINE: usize = 8192;

/// Registers every command tool. Fails on a name already taken.
pub fn register(reg: &mut Registry, tools: &[CommandTool]) -> Result<(), crate::GatewayError> {
    for tool in tools {
        if reg.get(&tool.name).is_some() {
            return Err(crate::GatewayError::NameTaken(tool.name.clone()));
        }
        let def = ToolDef {
            name: tool.name.clone(),
            description: tool.description.clone(),
            args_schema: tool.args_schema.clone(),
        };
        let t = Arc::new(tool.clone());
        let schema_err = |e| crate::GatewayError::Schema(tool.name.clone(), e);
        if tool.long_running {
            reg.dynamic_long_running(def, move |args, ctx: JobContext| {
                let t = Arc::clone(&t);
                async move {
                    let vars = [
                        ("LACRE_JOB_ID", ctx.job_id().to_owned()),
                        ("LACRE_ATTEMPT", ctx.attempt().to_string()),
                    ];
                    run(&t, &args, &vars, Some(&ctx)).await
                }
            })
            .map_err(schema_err)?;
        } else {
            reg.dynamic_immediate(def, move |args, ctx| {
                let t = Arc::clone(&t);
                async move {
                    let vars = [
                        ("LACRE_CLIENT_ID", ctx.client_id),
                        ("LACRE_REQUEST_ID", ctx.request_id),
                    ];
                    run(&t, &args, &vars, None).await
                }
            })
            .map_err(schema_err)?;
        }
    }
    Ok(())
}

/// Kills the process group when dropped: a cancelled job (its future is
/// dropped), a timeout, or a finished command's stragglers.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            process::kill_group(pid);
        }
    }
}

/// Runs the command once.
pub async fn run(
    tool: &CommandTool,
    args: &Map,
    vars: &[(&str, String)],
    job: Option<&JobContext>,
) -> Result<Map, ToolError> {
    let progress =
        match job {
            Some(_) => Some(std::io::pipe().map_err(|e| {
                ToolError::Unavailable(format!("cannot make the progress pipe: {e}"))
            })?),
            None => None,
        };
    let mut cmd = process::command(
        &tool.command,
        progress
            .as_ref()
            .map(|(_, w)| std::os::fd::AsRawFd::as_raw_fd(w)),
    );
    if progress.is_some() {
        cmd.env("LACRE_PROGRESS_FD", process::PROGRESS_FD.to_string());
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| {
        ToolError::Unavailable(format!(
            "cannot start {}: {e}",
            tool.command.program.display()
        ))
    })?;
    let _group = GroupGuard(child.id());
    // The parent's copy of the write end must close, or fd 3 never ends.
    let progress_reader = progress.map(|(r, w)| {
        drop(w);
        r
    });
    if let (Some(reader), Some(ctx)) = (progress_reader, job) {
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || read_progress(reader, &ctx));
    }
    let stdin = child.stdin.take();
    let input = Value::Object(args.clone()).to_canonical();
    let feed = async move {
        if let Some(mut stdin) = stdin {
            // A command that exits without reading its input is not an error.
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        }
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let cap = tool.max_output_bytes;
    let work = async {
        let (_, out, err, status) = tokio::join!(
            feed,
            read_capped(stdout, cap),
            read_tail(stderr, STDERR_TAIL_BYTES),
            child.wait()
        );
        (out, err, status)
    };
    let Ok((out, err, status)) = tokio::time::timeout(tool.timeout, work).await else {
        return Err(ToolError::Reported(format!(
            "{} did not finish within {} ms and was killed",
            tool.name,
            tool.timeout.as_millis()
        )));
    };
    let status = status.map_err(|e| ToolError::Unavailable(format!("lost the command: {e}")))?;
    let out = out.map_err(|e| ToolError::Unavailable(format!("cannot read its output: {e}")))?;
    // Checked first: a command cut off at the cap often dies of the closed
    // pipe, and the cap is the cause.
    let Some(out) = out else {
        return Err(ToolError::Reported(format!(
            "{} printed more than {cap} bytes on stdout",
            tool.name
        )));
    };
    if !status.success() {
        let how = match status.code() {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_owned(),
        };
        return Err(ToolError::Reported(with_stderr(
            format!("{} {how}", tool.name),
            &err,
        )));
    }
    // The output is a result, not a request: read with the limits replies
    // are read with (its size is already bounded by `max_output_bytes`).
    lacre_proto::parse_object(&out, lacre_proto::REPLY_LIMITS).map_err(|e| {
        ToolError::Reported(with_stderr(
            format!("{} did not print a JSON object on stdout: {e}", tool.name),
            &err,
        ))
    })
}

/// `msg`, then the end of stderr (control characters escaped).
fn with_stderr(msg: String, stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim_end();
    if text.is_empty() {
        return msg;
    }
    let shown: String = text
        .chars()
        .flat_map(|c| match c {
            '\n' => vec!['\n'],
            c if c.is_control() => c.escape_default().collect(),
            c => vec![c],
        })
        .collect();
    format!("{msg}; stderr: {shown}")
}

/// Reads all of `r`, or `None` once it passes `cap` bytes.
async fn read_capped(
    r: Option<impl AsyncRead + Unpin>,
    cap: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let Some(r) = r else {
        return Ok(Some(Vec::new()));
    };
    let mut buf = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    r.take(limit).read_to_end(&mut buf).await?;
    Ok((buf.len() <= cap).then_some(buf))
}

/// Reads all of `r`, keeping only its last `keep` bytes.
async fn read_tail(r: Option<impl AsyncRead + Unpin>, keep: usize) -> Vec<u8> {
    let Some(mut r) = r else { return Vec::new() };
    let mut tail = std::collections::VecDeque::with_capacity(keep);
    let mut chunk = [0u8; 4096];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                for &b in chunk.get(..n).unwrap_or_default() {
                    if tail.len() == keep {
                        tail.pop_front();
                    }
                    tail.push_back(b);
                }
            }
        }
    }
    // Start at a line boundary when the tail was cut.
    let v: Vec<u8> = tail.into();
    match v.iter().position(|&b| b == b'\n') {
        Some(i) if v.len() == keep => v.get(i + 1..).unwrap_or_default().to_vec(),
        _ => v,
    }
}

/// Reads progress lines from fd 3 until the command closes it.
fn read_progress(reader: std::io::PipeReader, ctx: &JobContext) {
    let mut lines = std::io::BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = std::io::Read::take(&mut lines, MAX_PROGRESS_LINE as u64 + 1);
        match limited.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.len() > MAX_PROGRESS_LINE {
            // Skip the rest of an over-long line.
            let mut rest = Vec::new();
            if lines.read_until(b'\n', &mut rest).is_err() {
                return;
            }
            continue;
        }
        if let Some((fraction, message)) = parse_progress(&line) {
            ctx.progress(fraction, message);
        }
    }
}

/// `{"progress": <number>, "message": <string, optional>}`.
fn parse_progress(line: &[u8]) -> Option<(f64, String)> {
    let m = lacre_proto::parse_object(line, ParseLimits::default()).ok()?;
    let fraction = match m.get("progress")? {
        Value::Number(lacre_proto::Number::Int(i)) => *i as f64,
        Value::Number(lacre_proto::Number::Float(f)) => *f,
        _ => return None,
    };
    let message = match m.get("message") {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    Some((fraction, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_are_read_leniently() {
        assert_eq!(
            parse_progress(b"{\"progress\": 0.5, \"message\": \"half\"}\n"),
            Some((0.5, "half".to_owned()))
        );
        assert_eq!(
            parse_progress(b"{\"progress\": 1}"),
            Some((1.0, String::new()))
        );
        assert_eq!(parse_progress(b"not json\n"), None);
        assert_eq!(parse_progress(b"{\"progress\": \"x\"}\n"), None);
    }

    #[test]
    fn stderr_is_shown_escaped() {
        assert_eq!(
            with_stderr("t exited".into(), b"line 1\nbad \x1b[31m\n"),
            "t exited; stderr: line 1\nbad \\u{1b}[31m"
        );
        assert_eq!(with_stderr("t exited".into(), b"  \n"), "t exited");
    }
}
