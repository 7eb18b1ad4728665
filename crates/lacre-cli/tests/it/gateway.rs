//! The gateway end to end: `lacre serve` with `[[tools]]` (python3
//! scripts in testdata/gateway) and `[[mcp_servers]]` (the reference
//! server `@modelcontextprotocol/server-everything`, pinned in
//! testdata/peers), called through the CLI over real HTTP. Nothing is
//! mocked: real processes, real signatures, real MCP.

use crate::support::*;
use std::time::Duration;

/// The default config with a shorter lease (the worker notices a cancel
/// at its next heartbeat, a third of the lease) and `extra` appended.
fn config_with(extra: &str) -> String {
    let base = default_config().replace(
        "max_skew_ms = 300000\n",
        "max_skew_ms = 300000\nstore = \"memory\"\nlease_ms = 1500\n",
    );
    format!("{base}\n{extra}")
}

fn command_tools() -> String {
    let word_count = testdata("gateway/word_count.py");
    let fixture = testdata("gateway/fixture_tool.py");
    let schema = r#"{ type = "object", properties = { mode = { type = "string" }, seconds = { type = "number" }, steps = { type = "integer" }, pid_file = { type = "string" } }, required = ["mode"], additionalProperties = false }"#;
    format!(
        r#"
[[tools]]
name = "word_count"
description = "Counts the words of a text."
command = ["python3", "{word_count}"]
args_schema = {{ type = "object", properties = {{ text = {{ type = "string" }} }}, required = ["text"], additionalProperties = false }}

[[tools]]
name = "fixture"
command = ["python3", "{fixture}"]
args_schema = {schema}
timeout_ms = 2000
max_output_bytes = 65536

[[tools]]
name = "fixture_job"
command = ["python3", "{fixture}"]
args_schema = {schema}
long_running = true
"#
    )
}

/// `lacre call TOOL ARGS` as client-001; its output.
fn call(s: &ServeGuard, tool: &str, args: &str) -> Output {
    s.lacre(&["call", tool, args])
}

/// Starts the job `tool ARGS` and long-polls it until it is done; every
/// view seen, in order.
fn run_job(s: &ServeGuard, tool: &str, args: &str) -> Vec<serde_json::Value> {
    let out = call(s, tool, args);
    out.expect_code(0, &format!("start {tool}"));
    poll_until(s, &job_id_of(&out.stdout), |v| v["state"] == "done")
}

/// `tool {"reason": REASON}` answers the upstream's refusal as a signed
/// `tool_error` with its text.
fn refused_by_upstream(s: &ServeGuard, tool: &str, reason: &str) {
    let out = call(s, tool, &format!(r#"{{"reason":"{reason}"}}"#));
    out.expect_code(4, tool);
    assert_eq!(
        out.stderr.trim(),
        format!("error: tool_error: refused: {reason}")
    );
}

/// Long-polls `job` until `done` holds for its view (at most 60 s); every
/// view seen, in order.
fn poll_until(
    s: &ServeGuard,
    job: &str,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let args = format!(r#"{{"job_id":"{job}","wait_ms":2000}}"#);
        let out = s.lacre(&["call", "poll_job", &args]);
        // The CLI prints a done job's result alone, and a failed or
        // cancelled job's error reply on stderr.
        let view = match out.code {
            0 => {
                let v = json(&out.stdout);
                if v.get("state").is_some() {
                    v
                } else {
                    serde_json::json!({ "state": "done", "result": v })
                }
            }
            _ => serde_json::json!({ "error": out.stderr.trim() }),
        };
        let stop = done(&view);
        seen.push(view);
        if stop {
            return seen;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {job} never got there; last views: {:?}",
            seen.iter().rev().take(5).collect::<Vec<_>>()
        );
    }
}

#[test]
fn command_tools_answer_fail_and_stay_bounded() {
    if !python3_or_skip("command_tools_answer_fail_and_stay_bounded") {
        return;
    }
    let s = ServeGuard::start_with_env(
        "gw-commands",
        &config_with(&command_tools()),
        &[],
        &[("LACRE_TEST_SERVER_ONLY", "server-secret-value")],
    );
    // Success, with non-ASCII text both ways.
    let out = call(&s, "word_count", r#"{"text":"héllo wörld ✓"}"#);
    out.ok("word_count");
    assert_eq!(
        json(&out.stdout),
        serde_json::json!({"text": "héllo wörld ✓", "words": 3})
    );
    // Bad arguments never reach the command.
    let out = call(&s, "word_count", r#"{"text":5}"#);
    out.expect_error(4, "word_count with a number", "invalid_args");
    // The caller's identity reaches the tool; the server's environment does not.
    let out = call(&s, "fixture", r#"{"mode":"ok"}"#);
    out.ok("fixture ok");
    assert_eq!(json(&out.stdout)["lacre"]["LACRE_CLIENT_ID"], CLIENT_ID);
    let out = call(&s, "fixture", r#"{"mode":"env"}"#);
    out.ok("fixture env");
    let env = json(&out.stdout)["env"].clone();
    assert!(env.get("LACRE_TEST_SERVER_ONLY").is_none(), "{env}");
    assert!(env.get("PATH").is_some(), "{env}");
    // Failures: signed tool_error replies with the reason.
    let cases = [
        (r#"{"mode":"fail"}"#, "fixture exited with status 3; stderr: first line\nsecond line: it went wrong\\u{1b}[0m"),
        (r#"{"mode":"sleep","seconds":10}"#, "fixture did not finish within 2000 ms and was killed"),
        (r#"{"mode":"big"}"#, "fixture printed more than 65536 bytes on stdout"),
        (r#"{"mode":"garbage"}"#, "fixture did not print a JSON object on stdout: must be a json object, got array"),
    ];
    for (args, want) in cases {
        let out = call(&s, "fixture", args);
        out.expect_code(4, args);
        assert_eq!(
            out.stderr.trim(),
            format!("error: tool_error: {want}"),
            "{args}"
        );
    }
    // A result past the request limits (one 300 KB string) is a result: it
    // was refused as "not a JSON object" under the 256 KiB request limit.
    let out = s.lacre(&["call", "fixture_job", r#"{"mode":"large"}"#, "--wait"]);
    out.ok("fixture_job large");
    assert_eq!(json(&out.stdout)["x"].as_str().map(str::len), Some(300_000));
}

#[test]
fn command_jobs_report_progress_and_die_when_cancelled() {
    if !python3_or_skip("command_jobs_report_progress_and_die_when_cancelled") {
        return;
    }
    let s = ServeGuard::start_with_config("gw-command-jobs", &config_with(&command_tools()));
    let views = run_job(
        &s,
        "fixture_job",
        r#"{"mode":"progress","steps":5,"seconds":0.4}"#,
    );
    let messages: Vec<&str> = views.iter().filter_map(|v| v["message"].as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("step ") && m.ends_with(" of 5")),
        "no progress seen: {views:?}"
    );
    assert_eq!(
        views.last().map(|v| v["result"]["steps"].clone()),
        Some(serde_json::json!(5))
    );

    // Cancel mid-run: the command's process is killed.
    let pid_file = s.file("job.pid");
    let args = format!(r#"{{"mode":"sleep","seconds":60,"pid_file":"{pid_file}"}}"#);
    let out = call(&s, "fixture_job", &args);
    let job = job_id_of(&out.stdout);
    let pid = written_pid(&pid_file);
    assert!(process_alive(pid));
    s.lacre(&["job", "cancel", &job]).ok("cancel");
    eventually(
        "the cancelled command was killed",
        Duration::from_secs(10),
        || !process_alive(pid),
    );
}

/// The reference server twice: `everything` (the default retry policy)
/// and `strict` (`retry_on_lost_worker = "never"`).
fn everything(entry: &str) -> String {
    format!(
        r#"
[[mcp_servers]]
name = "everything"
command = ["node", "{entry}", "stdio"]
long_running = ["trigger-long-running-operation"]

[[mcp_servers]]
name = "strict"
command = ["node", "{entry}", "stdio"]
tools = ["trigger-*"]
long_running = ["trigger-long-running-operation"]
retry_on_lost_worker = "never"
"#
    )
}

/// The process id a job's command writes to `pid_file` once it runs.
fn written_pid(pid_file: &str) -> u32 {
    let mut text = String::new();
    eventually("the job's command started", Duration::from_secs(20), || {
        text = std::fs::read_to_string(pid_file).unwrap_or_default();
        !text.trim().is_empty()
    });
    text.trim().parse().unwrap()
}

/// The pid in the server's first `upstream connected upstream=NAME pid=N`
/// line after line `skip`.
fn upstream_pid(s: &ServeGuard, name: &str, skip: usize) -> (usize, u32) {
    let needle = format!("upstream connected upstream={name} ");
    let (i, line) = s.wait_for_line(&needle, skip, Duration::from_secs(30));
    let pid = line
        .split("pid=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"));
    (i, pid)
}

/// Starts `<upstream>_trigger-long-running-operation` with `args`, waits
/// until it runs, and SIGKILLs the upstream's child; the log line of that
/// child's connection, its pid and the job.
fn kill_upstream_mid_job(s: &ServeGuard, upstream: &str, args: &str) -> (usize, u32, String) {
    let (line, pid) = upstream_pid(s, upstream, 0);
    let out = call(
        s,
        &format!("{upstream}_trigger-long-running-operation"),
        args,
    );
    let job = job_id_of(&out.stdout);
    poll_until(s, &job, |v| v["state"] == "running");
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    (line, pid, job)
}

#[test]
fn mcp_upstream_tools_are_lacre_tools() {
    let Some(entry) = server_everything_or_skip("mcp_upstream_tools_are_lacre_tools") else {
        return;
    };
    let mut s = ServeGuard::start_with_env(
        "gw-everything",
        &config_with(&everything(&entry)),
        &[],
        &[("LACRE_TEST_SERVER_ONLY", "server-secret-value")],
    );
    // Listed like any other tool, with the upstream's schema.
    let out = s.lacre(&["tools"]);
    out.ok("tools");
    assert!(out.stdout.contains("everything_echo "), "{}", out.stdout);
    assert!(
        out.stdout.lines().any(
            |l| l.starts_with("everything_trigger-long-running-operation ") && l.contains(" job ")
        ),
        "{}",
        out.stdout
    );
    // Immediate calls, non-ASCII intact.
    let out = call(&s, "everything_echo", r#"{"message":"héllo ✓ 𝄞"}"#);
    out.ok("echo");
    assert_eq!(
        json(&out.stdout),
        serde_json::json!({"content": [{"type": "text", "text": "Echo: héllo ✓ 𝄞"}]})
    );
    let out = call(&s, "everything_get-sum", r#"{"a":2,"b":40}"#);
    out.ok("get-sum");
    assert_eq!(
        json(&out.stdout)["content"][0]["text"],
        "The sum of 2 and 40 is 42."
    );
    // Arguments the upstream's schema refuses are refused here, signed.
    let out = call(&s, "everything_get-sum", r#"{"a":"two","b":40}"#);
    out.expect_error(
        4,
        "get-sum with a string",
        "invalid_args: a: \"two\" is not of type \"number\"",
    );
    // A client whose allow-list leaves the upstream out.
    let out = s.lacre_as(
        CLIENT2_ID,
        &["call", "everything_echo", r#"{"message":"x"}"#],
    );
    out.expect_error(4, "client-002 calls echo", "forbidden_tool");
    // The child sees PATH and HOME, not the server's environment.
    let out = call(&s, "everything_get-env", "{}");
    out.ok("get-env");
    let text = json(&out.stdout)["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let env: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(env.get("LACRE_TEST_SERVER_ONLY").is_none(), "{env}");
    assert!(env.get("PATH").is_some(), "{env}");

    // A long-running upstream tool is a job: progress through long polls,
    // then the upstream's result.
    let views = run_job(
        &s,
        "everything_trigger-long-running-operation",
        r#"{"duration":2,"steps":4}"#,
    );
    assert!(
        views
            .iter()
            .any(|v| v["state"] == "running" && v["progress"].as_f64().is_some_and(|p| p > 0.0)),
        "no progress seen: {views:?}"
    );
    assert_eq!(
        views.last().unwrap()["result"]["content"][0]["text"],
        "Long running operation completed. Duration: 2 seconds, Steps: 4."
    );

    // Cancel mid-run.
    let out = call(
        &s,
        "everything_trigger-long-running-operation",
        r#"{"duration":30,"steps":30}"#,
    );
    let job = job_id_of(&out.stdout);
    poll_until(&s, &job, |v| v["state"] == "running");
    s.lacre(&["job", "cancel", &job]).ok("cancel");
    let views = poll_until(&s, &job, |v| v.get("error").is_some());
    assert!(
        views.last().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("job_cancelled"),
        "{views:?}"
    );

    // The child killed mid-job: the job (an idempotent tool) runs again on
    // the restarted child and completes; immediate calls work again.
    let (line, pid, job) = kill_upstream_mid_job(&s, "everything", r#"{"duration":3,"steps":3}"#);
    let (_, new_pid) = upstream_pid(&s, "everything", line + 1);
    assert_ne!(new_pid, pid);
    s.wait_for_line(
        "job handed back for another attempt",
        0,
        Duration::from_secs(10),
    );
    let views = poll_until(&s, &job, |v| {
        v["state"] == "done" || v.get("error").is_some()
    });
    assert_eq!(
        views.last().unwrap()["result"]["content"][0]["text"],
        "Long running operation completed. Duration: 3 seconds, Steps: 3.",
        "{views:?}"
    );
    call(&s, "everything_echo", r#"{"message":"again"}"#).ok("echo after restart");

    // With retry_on_lost_worker = "never" the same loss fails the job.
    let out = s.lacre(&["tools"]);
    assert!(
        out.stdout
            .contains("strict_trigger-long-running-operation "),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("strict_echo "),
        "tools = [\"trigger-*\"]: {}",
        out.stdout
    );
    let (line, _, job) = kill_upstream_mid_job(&s, "strict", r#"{"duration":5,"steps":5}"#);
    let views = poll_until(&s, &job, |v| v.get("error").is_some());
    let error = views.last().unwrap()["error"].as_str().unwrap();
    assert!(
        error.starts_with("error: job_failed: upstream unavailable: upstream \"strict\" went away"),
        "{error}"
    );
    let (_, strict_pid) = upstream_pid(&s, "strict", line + 1);

    // /metrics counts per upstream: the restarts, the calls by outcome.
    let metrics = raw_get(&s.url, "/metrics");
    for line in [
        "lacre_upstream_up{upstream=\"everything\"} 1",
        "lacre_upstream_connects_total{upstream=\"everything\"} 2",
        "lacre_upstream_connects_total{upstream=\"strict\"} 2",
        // echo, get-sum, get-env, echo again, and the two jobs that
        // completed (the cancelled one was stopped, not answered); the run
        // the kill cut short on each upstream.
        "lacre_upstream_calls_total{upstream=\"everything\",outcome=\"ok\"} 6",
        "lacre_upstream_calls_total{upstream=\"everything\",outcome=\"upstream_unavailable\"} 1",
        "lacre_upstream_calls_total{upstream=\"strict\",outcome=\"upstream_unavailable\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in\n{metrics}"
        );
    }

    // SIGTERM: the server stops and leaves no child behind.
    assert!(process_alive(new_pid) && process_alive(strict_pid));
    assert_eq!(s.terminate(), Some(0), "{}", s.stderr_text());
    eventually(
        "the upstream children are gone",
        Duration::from_secs(5),
        || !process_alive(new_pid) && !process_alive(strict_pid),
    );
}

/// Whether python3 imports fastmcp (testdata/requirements.txt).
fn fastmcp_or_skip(name: &str) -> bool {
    python_module_or_skip(name, "fastmcp")
}

#[test]
fn a_fastmcp_server_behind_lacre_and_the_seed_client_calling_it() {
    let name = "a_fastmcp_server_behind_lacre_and_the_seed_client_calling_it";
    if !fastmcp_or_skip(name) {
        return;
    }
    let server = example("fastmcp_server.py");
    let upstream = format!(
        r#"
[[mcp_servers]]
name = "py"
command = ["python3", "{server}"]
long_running = ["count_*"]
"#
    );
    let s = ServeGuard::start_with_config("gw-fastmcp", &config_with(&upstream));
    // structuredContent is kept next to the content items.
    let out = call(&s, "py_add", r#"{"a":2,"b":40}"#);
    out.ok("py_add");
    let v = json(&out.stdout);
    assert_eq!(
        v["structuredContent"],
        serde_json::json!({"result": 42}),
        "{v}"
    );
    assert_eq!(v["content"][0]["text"], "42", "{v}");
    // FastMCP's schema says integers: a float is refused here, signed.
    let out = call(&s, "py_add", r#"{"a":2.5,"b":40}"#);
    out.expect_error(4, "py_add with a float", "invalid_args");
    // isError becomes tool_error with the upstream's text.
    refused_by_upstream(&s, "py_refuse", "not today");
    // A job with FastMCP progress.
    let views = run_job(&s, "py_count_slowly", r#"{"to":5,"delay":0.3}"#);
    assert!(
        views.iter().any(|v| v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("counted "))),
        "no progress seen: {views:?}"
    );
    assert_eq!(
        views.last().unwrap()["result"]["structuredContent"],
        serde_json::json!({"counted": 5})
    );

    // The seed's own client, HMAC-signed, calls the upstream tool through
    // lacre and verifies the signed reply.
    let out = seed_client(&s.url, &["--call", "py_shout", r#"{"text": "héllo"}"#]).run();
    out.ok("seed_client.py --call py_shout");
    let reply = json(out.stdout.lines().next().unwrap_or_default());
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["result"]["content"][0]["text"], "HÉLLO", "{reply}");
    assert_eq!(
        out.stdout.lines().last(),
        Some("seed call: 1 response verified")
    );

    // Concurrent calls share the one connection; a call in flight when the
    // child dies gets a signed upstream_unavailable at once, not a hang.
    let (line, pid) = upstream_pid(&s, "py", 0);
    let s = &s;
    std::thread::scope(|scope| {
        let calls: Vec<_> = (0..4)
            .map(|i| scope.spawn(move || call(s, "py_add", &format!(r#"{{"a":{i},"b":1}}"#))))
            .collect();
        for (i, c) in calls.into_iter().enumerate() {
            let out = c.join().unwrap();
            out.ok("concurrent py_add");
            assert_eq!(json(&out.stdout)["structuredContent"]["result"], i + 1);
        }
        let napping = scope.spawn(|| call(s, "py_nap", r#"{"seconds":30}"#));
        // The call is in lacre's hands (and, microseconds later, the child's).
        eventually("py_nap in flight", Duration::from_secs(10), || {
            raw_get(&s.url, "/metrics")
                .lines()
                .any(|l| l == "lacre_requests_in_flight 1")
        });
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        let started = std::time::Instant::now();
        let out = napping.join().unwrap();
        out.expect_code(4, "py_nap with its child killed");
        assert!(
            out.stderr
                .starts_with("error: upstream_unavailable: upstream \"py\" went away"),
            "{}",
            out.stderr
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    });
    upstream_pid(s, "py", line + 1);

    // The upstream adds a tool and says so (notifications/tools/list_changed):
    // it is offered, listed by server_identity, and callable.
    assert!(!s.lacre(&["tools"]).stdout.contains("py_greet "));
    call(s, "py_add_greeter", "{}").ok("py_add_greeter");
    eventually("py_greet is offered", Duration::from_secs(10), || {
        s.lacre(&["tools"]).stdout.contains("py_greet ")
    });
    let out = call(s, "py_greet", r#"{"name":"lacre"}"#);
    out.ok("py_greet");
    assert_eq!(json(&out.stdout)["content"][0]["text"], "hello, lacre");
}

#[test]
fn an_upstream_job_started_on_one_replica_is_polled_on_another() {
    use crate::durable::{pg_available, PgSchema};
    let name = "an_upstream_job_started_on_one_replica_is_polled_on_another";
    let Some(entry) = server_everything_with(name, &[pg_available]) else {
        return;
    };
    let schema = PgSchema::new("gateway");
    let cfg = config_with(&everything(&entry)).replace(
        "store = \"memory\"",
        &format!("store = \"{}\"", schema.url_via("127.0.0.1:5432")),
    );
    let a = ServeGuard::start_with_config("gw-pg-a", &cfg);
    let b = ServeGuard::start_with_config("gw-pg-b", &cfg);
    let out = call(
        &a,
        "everything_trigger-long-running-operation",
        r#"{"duration":2,"steps":2}"#,
    );
    out.expect_code(0, "start on A");
    let job = job_id_of(&out.stdout);
    let out = b.lacre(&["job", "wait", &job]);
    out.expect_code(0, "wait on B");
    assert_eq!(
        json(&out.stdout)["content"][0]["text"],
        "Long running operation completed. Duration: 2 seconds, Steps: 2."
    );
    drop((a, b));
    drop(schema);
}

/// `python3 examples/gateway/fastmcp_server.py --http PORT`, killed on drop.
struct FastMcpHttp {
    child: std::process::Child,
    url: String,
}

impl FastMcpHttp {
    fn start() -> FastMcpHttp {
        let port = free_port();
        Self::start_on(port)
    }

    fn start_on(port: u16) -> FastMcpHttp {
        let child = std::process::Command::new("python3")
            .args([
                example("fastmcp_server.py").as_str(),
                "--http",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        eventually(
            "the FastMCP server listens",
            Duration::from_secs(30),
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        FastMcpHttp {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }
}

impl Drop for FastMcpHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn example(file: &str) -> String {
    format!(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/gateway/{}"),
        file
    )
}

#[test]
fn a_fastmcp_server_over_streamable_http() {
    let name = "a_fastmcp_server_over_streamable_http";
    if !fastmcp_or_skip(name) {
        return;
    }
    let upstream = FastMcpHttp::start();
    let cfg = config_with(&format!(
        r#"
[[mcp_servers]]
name = "remote"
url = "{}"
headers_env = {{ Authorization = "LACRE_TEST_UPSTREAM_TOKEN" }}
long_running = ["count_*"]
"#,
        upstream.url
    ));
    let s = ServeGuard::start_with_env(
        "gw-fastmcp-http",
        &cfg,
        &[],
        &[("LACRE_TEST_UPSTREAM_TOKEN", "Bearer upstream-token-1")],
    );
    let out = call(&s, "remote_add", r#"{"a":20,"b":22}"#);
    out.ok("remote_add");
    assert_eq!(
        json(&out.stdout)["structuredContent"],
        serde_json::json!({"result": 42})
    );
    // The header value came from lacre's environment; it is not in its log.
    let out = call(&s, "remote_caller_header", "{}");
    out.ok("remote_caller_header");
    assert_eq!(
        json(&out.stdout)["content"][0]["text"],
        "Bearer upstream-token-1"
    );
    assert!(!s.stderr_text().contains("upstream-token-1"));
    refused_by_upstream(&s, "remote_refuse", "over http");
    let views = run_job(&s, "remote_count_slowly", r#"{"to":3,"delay":0.2}"#);
    assert_eq!(
        views.last().unwrap()["result"]["structuredContent"],
        serde_json::json!({"counted": 3})
    );
    // The upstream goes away: a signed upstream_unavailable, not a hang.
    drop(upstream);
    let out = call(&s, "remote_add", r#"{"a":1,"b":1}"#);
    out.expect_error(
        4,
        "remote_add with the upstream gone",
        "upstream_unavailable",
    );
}

#[test]
fn an_upstream_down_at_start_offers_its_tools_once_up() {
    let name = "an_upstream_down_at_start_offers_its_tools_once_up";
    if !fastmcp_or_skip(name) {
        return;
    }
    let port = free_port();
    let cfg = config_with(&format!(
        "\n[[mcp_servers]]\nname = \"late\"\nurl = \"http://127.0.0.1:{port}/mcp\"\n"
    ));
    let s = ServeGuard::start_with_config("gw-late", &cfg);
    // Down: not offered, and lacre serves the rest.
    assert!(!s.lacre(&["tools"]).stdout.contains("late_add "));
    s.sum_call()
        .args(&["--secret-file", &s.file("client-001.secret")])
        .args(&["--server-secret-file", &s.file("server.secret")])
        .run()
        .ok("batch_sum while the upstream is down");
    let _upstream = FastMcpHttp::start_on(port);
    eventually("late_add is offered", Duration::from_secs(40), || {
        s.lacre(&["tools"]).stdout.contains("late_add ")
    });
    let out = call(&s, "late_add", r#"{"a":1,"b":2}"#);
    out.ok("late_add");
    assert_eq!(
        json(&out.stdout)["structuredContent"],
        serde_json::json!({"result": 3})
    );
}

#[test]
fn a_server_killed_with_sigkill_leaves_no_child_behind() {
    let name = "a_server_killed_with_sigkill_leaves_no_child_behind";
    let Some(entry) = server_everything_with(name, &[python3_or_skip]) else {
        return;
    };
    let pid_file_dir = TempDir::new("gw-sigkill-pids");
    let pid_file = pid_file_dir.join("job.pid").display().to_string();
    let mut s = ServeGuard::start_with_config(
        "gw-sigkill",
        &config_with(&format!("{}{}", everything(&entry), command_tools())),
    );
    let (_, upstream) = upstream_pid(&s, "everything", 0);
    // A command tool's job mid-run too.
    let args = format!(r#"{{"mode":"sleep","seconds":60,"pid_file":"{pid_file}"}}"#);
    call(&s, "fixture_job", &args).ok("start fixture_job");
    let command = written_pid(&pid_file);
    assert!(process_alive(upstream) && process_alive(command));
    // No chance to clean up: the kernel kills the children (PR_SET_PDEATHSIG).
    s.kill();
    eventually(
        "the children died with the server",
        Duration::from_secs(5),
        || !process_alive(upstream) && !process_alive(command),
    );
}
