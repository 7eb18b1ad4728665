//! `lacre mcp` driven by the official Python MCP SDK (PyPI `mcp`, pinned
//! in testdata/requirements.txt) through testdata/mcp/bridge_check.py, as
//! an MCP host spawns it, against a real `lacre serve`; and raw JSON-RPC
//! for the stateless 2026-07-28 path and malformed input.

use crate::support::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn mcp_python_or_skip(name: &str) -> bool {
    python_module_or_skip(name, "mcp")
}

/// `python3 testdata/mcp/bridge_check.py SCENARIO lacre <client flags> EXTRA`:
/// its JSON lines, by step.
fn bridge_check(scenario: &str, s: &ServeGuard, extra: &[&str]) -> Vec<serde_json::Value> {
    let script = testdata("mcp/bridge_check.py");
    let mut args = vec![script.as_str(), scenario, BIN];
    let client = s.client_args(CLIENT_ID);
    args.extend(client.iter().map(String::as_str));
    args.extend(extra);
    let out = Cmd::program("python3", &args).run();
    out.ok(&format!("bridge_check.py {scenario}"));
    out.stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(json)
        .collect()
}

/// Runs `bridge_check.py SCENARIO` against a server of its own, or `None`
/// (skip) where the MCP Python SDK is missing outside CI.
fn bridged(
    test: &str,
    scenario: &str,
    extra: &[&str],
) -> Option<(ServeGuard, Vec<serde_json::Value>)> {
    if !mcp_python_or_skip(test) {
        return None;
    }
    let s = ServeGuard::start(&format!("bridge-{scenario}"));
    let lines = bridge_check(scenario, &s, extra);
    Some((s, lines))
}

fn step<'a>(lines: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {lines:?}"))
}

#[test]
fn an_mcp_host_lists_and_calls_lacre_tools() {
    let Some((_s, lines)) = bridged("an_mcp_host_lists_and_calls_lacre_tools", "basic", &[]) else {
        return;
    };
    let init = step(&lines, "initialize");
    assert_eq!(init["server"], "lacre");
    assert_eq!(
        init["protocol"], "2025-11-25",
        "the SDK's version, supported"
    );
    let names: Vec<&str> = step(&lines, "tools")["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "batch_sum",
            "lacre_cancel_job",
            "lacre_list_jobs",
            "lacre_poll_job",
            "start_long_task"
        ]
    );
    let schema = &step(&lines, "tools")["schemas"]["batch_sum"];
    assert_eq!(
        schema["required"],
        serde_json::json!(["numbers"]),
        "{schema}"
    );
    let sum = step(&lines, "batch_sum");
    assert_eq!(sum["is_error"], false);
    assert_eq!(
        sum["structured"],
        serde_json::json!({"count": 3, "total": 60.0})
    );
    assert_eq!(
        sum["text"],
        serde_json::json!([r#"{"count":3,"total":60.0}"#])
    );
    let bad = step(&lines, "bad_args");
    assert_eq!(bad["is_error"], true);
    assert!(
        bad["text"][0]
            .as_str()
            .unwrap()
            .starts_with("invalid_args: "),
        "{bad}"
    );
    let unknown = step(&lines, "unknown_tool");
    assert_eq!(unknown["code"], -32602, "{unknown}");
    let long = step(&lines, "long_task");
    assert_eq!(long["is_error"], false, "{long}");
    assert_eq!(long["structured"], serde_json::json!({"x": 1}));
    let progress: Vec<f64> = long["progress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["progress"].as_f64().unwrap())
        .collect();
    assert!(!progress.is_empty(), "no progress notification: {long}");
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "not increasing: {progress:?}"
    );
    assert!(
        long["progress"][0]["message"]
            .as_str()
            .is_some_and(|m| m.ends_with(" seconds")),
        "{long}"
    );
}

#[test]
fn a_host_cancel_cancels_the_job() {
    let Some((s, lines)) = bridged("a_host_cancel_cancels_the_job", "cancel", &[]) else {
        return;
    };
    let jobs = &step(&lines, "jobs")["structured"]["jobs"];
    assert_eq!(jobs[0]["tool"], "start_long_task", "{jobs}");
    assert_eq!(jobs[0]["state"], "cancelled", "{jobs}");
    // The server says so too.
    let out = s.lacre(&["jobs"]);
    assert!(out.stdout.contains("cancelled"), "{}", out.stdout);
}

#[test]
fn a_job_outliving_max_wait_is_picked_up_with_lacre_poll_job() {
    let Some((_s, lines)) = bridged(
        "a_job_outliving_max_wait_is_picked_up_with_lacre_poll_job",
        "max_wait",
        &["--max-wait", "1"],
    ) else {
        return;
    };
    let first = step(&lines, "first");
    assert_eq!(first["is_error"], false);
    assert_eq!(first["structured"]["state"], "running", "{first}");
    assert!(first["text"][0]
        .as_str()
        .unwrap()
        .contains("lacre_poll_job"));
    let polled = step(&lines, "polled");
    assert_eq!(
        polled["structured"],
        serde_json::json!({"late": true}),
        "{polled}"
    );
}

#[test]
fn the_bridge_survives_its_server_going_away_and_coming_back() {
    let name = "the_bridge_survives_its_server_going_away_and_coming_back";
    if !mcp_python_or_skip(name) {
        return;
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut s =
        ServeGuard::start_with_args("bridge-restart", &default_config(), &["--listen", &addr]);
    let script = testdata("mcp/bridge_check.py");
    let mut args = vec![script.clone(), "restart".into(), BIN.into()];
    args.extend(s.client_args(CLIENT_ID));
    let mut child = Command::new("python3")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = |want: &str| -> serde_json::Value {
        loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("no {want} line"))
                .unwrap();
            if line.starts_with('{') {
                let v = json(&line);
                if v["step"] == want {
                    return v;
                }
            }
        }
    };
    assert_eq!(next("before")["structured"]["total"], 3.0);
    s.kill();
    writeln!(stdin).unwrap();
    let down = next("down");
    assert_eq!(down["is_error"], true, "{down}");
    assert!(
        down["text"][0]
            .as_str()
            .unwrap()
            .starts_with("the lacre server could not be reached"),
        "{down}"
    );
    let s = s.kill_and_restart();
    assert!(s.url.contains(&addr), "{}", s.url);
    writeln!(stdin).unwrap();
    let after = next("after");
    assert_eq!(
        after["structured"],
        serde_json::json!({"count": 2, "total": 9.0}),
        "{after}"
    );
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// Writes `lines` to `lacre mcp`'s stdin (then closes it) and returns its
/// stdout lines.
fn raw_bridge(s: &ServeGuard, lines: &[&str]) -> Vec<serde_json::Value> {
    let mut input = lines.join("\n");
    input.push('\n');
    let out = Cmd::lacre(&["mcp"])
        .args(&s.client_args(CLIENT_ID))
        .stdin(input)
        .run();
    out.ok("lacre mcp, raw");
    out.stdout.lines().map(json).collect()
}

#[test]
fn stateless_requests_and_malformed_input() {
    let s = ServeGuard::start("bridge-raw");
    let meta = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;
    let discover =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{{{meta}}}}}"#);
    let list = format!(r#"{{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{{{meta}}}}}"#);
    let call = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"batch_sum","arguments":{{"numbers":[1,2]}},{meta}}}}}"#
    );
    // (2026-07-28 has no `ping`: a call shows the bridge still answers.)
    let again = format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"batch_sum","arguments":{{"numbers":[5]}},{meta}}}}}"#
    );
    let replies = raw_bridge(
        &s,
        &[
            &discover,
            &list,
            &call,
            "{not json",
            r#"[1,2]"#,
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":"x"}"#,
            &again,
        ],
    );
    let by_id = |id: i64| {
        replies
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no reply {id} in {replies:?}"))
    };
    let d = &by_id(1)["result"];
    assert!(
        d["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("2026-07-28")),
        "{d}"
    );
    assert!(d["capabilities"]["tools"].is_object(), "{d}");
    let l = &by_id(2)["result"];
    assert_eq!(l["resultType"], "complete", "{l}");
    assert!(
        l.get("ttlMs").is_some() && l.get("cacheScope").is_some(),
        "{l}"
    );
    let c = &by_id(3)["result"];
    assert_eq!(c["resultType"], "complete", "{c}");
    assert_eq!(
        c["structuredContent"],
        serde_json::json!({"count": 2, "total": 3.0})
    );
    // Not JSON: the parse error, id null; valid JSON that is no request:
    // invalid request; and the bridge still answers after both.
    assert!(
        replies
            .iter()
            .any(|r| r["id"].is_null() && r["error"]["code"] == -32700),
        "{replies:?}"
    );
    assert!(
        replies.iter().any(|r| r["error"]["code"] == -32600),
        "{replies:?}"
    );
    assert_eq!(by_id(4)["error"]["code"], -32602, "{replies:?}");
    assert_eq!(
        by_id(9)["result"]["structuredContent"],
        serde_json::json!({"count": 1, "total": 5.0}),
        "{replies:?}"
    );
}

#[test]
fn host_to_bridge_to_gateway_to_an_mcp_server() {
    let name = "host_to_bridge_to_gateway_to_an_mcp_server";
    let Some(entry) = server_everything_with(name, &[mcp_python_or_skip]) else {
        return;
    };
    let cfg = format!(
        "{}\n[[mcp_servers]]\nname = \"everything\"\ncommand = [\"node\", \"{entry}\", \"stdio\"]\nlong_running = [\"trigger-long-running-operation\"]\n",
        default_config()
    );
    let s = ServeGuard::start_with_config("bridge-chain", &cfg);
    let script = testdata("mcp/bridge_check.py");
    let mut args = vec![script.as_str(), "call", BIN];
    let client = s.client_args(CLIENT_ID);
    args.extend(client.iter().map(String::as_str));
    let out = Cmd::program("python3", &args)
        .env(
            "LACRE_CHECK_TOOL",
            "everything_trigger-long-running-operation",
        )
        .env("LACRE_CHECK_ARGS", r#"{"duration": 3, "steps": 3}"#)
        .run();
    out.ok("bridge_check.py call");
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(json)
        .collect();
    let call = step(&lines, "call");
    assert_eq!(call["is_error"], false, "{call}");
    assert_eq!(
        call["structured"]["content"][0]["text"],
        "Long running operation completed. Duration: 3 seconds, Steps: 3."
    );
    let progress = call["progress"].as_array().unwrap();
    assert!(!progress.is_empty(), "no progress reached the host: {call}");
    assert!(
        progress
            .iter()
            .any(|p| p["message"].as_str().is_some_and(|m| m.contains('/'))),
        "{call}"
    );
}

#[test]
fn the_mcp_inspector_cli_lists_and_calls_through_lacre_mcp() {
    let name = "the_mcp_inspector_cli_lists_and_calls_through_lacre_mcp";
    let Some(_) = server_everything_or_skip(name) else {
        return;
    };
    let build = testdata("peers/node_modules/@modelcontextprotocol/inspector-cli/build");
    if !std::path::Path::new(&build).join("cli.js").exists() {
        skip_or_panic(
            name,
            "the npm test peers are not installed (npm ci --prefix testdata/peers)",
        );
        return;
    }
    let s = ServeGuard::start("bridge-inspector");
    let inspector = |method: &[&str]| {
        let cli = format!("{build}/cli.js");
        let mut args = vec![cli.as_str(), "--cli", BIN, "mcp"];
        let client = s.client_args(CLIENT_ID);
        args.extend(client.iter().map(String::as_str));
        args.extend(method);
        // inspector-cli 1.0.3 finds its own package.json relative to the
        // working directory: run it from its build directory.
        let out = Cmd::program("node", &args)
            .cwd(std::path::Path::new(&build))
            .run();
        out.ok(&format!("inspector {method:?}"));
        json(&out.stdout)
    };
    let listed = inspector(&["--method", "tools/list"]);
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"batch_sum") && names.contains(&"lacre_poll_job"),
        "{names:?}"
    );
    let called = inspector(&[
        "--method",
        "tools/call",
        "--tool-name",
        "batch_sum",
        "--tool-arg",
        "numbers=[1,2,3]",
    ]);
    assert_eq!(called["isError"], false, "{called}");
    assert_eq!(
        called["structuredContent"],
        serde_json::json!({"count": 3, "total": 6})
    );
}

#[test]
fn the_handshake_answers_the_hosts_version_or_the_latest() {
    let s = ServeGuard::start("bridge-versions");
    let init = |version: &str| {
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"{version}","capabilities":{{}},"clientInfo":{{"name":"raw","version":"0"}}}}}}"#
        );
        let replies = raw_bridge(&s, &[&line]);
        replies
            .iter()
            .find(|r| r["id"] == 1)
            .unwrap_or_else(|| panic!("no initialize reply: {replies:?}"))["result"]
            ["protocolVersion"]
            .clone()
    };
    assert_eq!(init("2025-06-18"), "2025-06-18");
    assert_eq!(init("2025-11-25"), "2025-11-25");
    // A version it does not know: the latest of the handshake era.
    assert_eq!(init("2099-01-01"), "2025-11-25");
}
