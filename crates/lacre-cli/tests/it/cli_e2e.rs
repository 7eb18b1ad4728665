//! The `lacre` binary end to end: `lacre serve` as a child process, the
//! CLI talking real HTTP to it, and the local commands (keygen, canonical,
//! sign, verify, demo, serve --stdio).

use crate::support::{
    default_config, free_port, job_id_of, json, raw_post, Cmd, ServeGuard, TempDir, CLIENT2_ID,
    CLIENT2_SECRET, CLIENT3_ID, CLIENT_ID, CLIENT_SECRET, SERVER_ID, SERVER_SECRET, SUM_ARGS,
    SUM_RESULT,
};
use std::time::{Duration, Instant};

// ---- calls ----------------------------------------------------------------

#[test]
fn call_prints_the_result_as_canonical_json() {
    let s = ServeGuard::start("call");
    let out = s.lacre(&["call", "batch_sum", SUM_ARGS]);
    out.ok("call batch_sum");
    assert_eq!(out.stdout, SUM_RESULT);
    // Integers are read as floats; fractional parts survive.
    let out = s.lacre(&["call", "batch_sum", r#"{"numbers":[0.5,1,-3]}"#]);
    out.ok("call batch_sum with floats");
    assert_eq!(out.stdout, "{\"count\":3,\"total\":-1.5}\n");
}

#[test]
fn secrets_from_the_environment() {
    let s = ServeGuard::start("env-secrets");
    let out = s
        .sum_call()
        .env("LACRE_SECRET", CLIENT_SECRET)
        .env("LACRE_SERVER_SECRET", SERVER_SECRET)
        .cwd(s.dir.path())
        .run();
    out.ok("call with LACRE_SECRET / LACRE_SERVER_SECRET");
    assert_eq!(out.stdout, SUM_RESULT);
    // The URL and ids from the environment too, and a `hex:` secret.
    let hex: String = SERVER_SECRET.bytes().map(|b| format!("{b:02x}")).collect();
    let out = Cmd::lacre(&["call", "batch_sum", SUM_ARGS])
        .env("LACRE_URL", &s.url)
        .env("LACRE_CLIENT_ID", CLIENT_ID)
        .env("LACRE_SERVER_ID", SERVER_ID)
        .env("LACRE_SECRET", CLIENT_SECRET)
        .env("LACRE_SERVER_SECRET", &format!("hex:{hex}"))
        .cwd(s.dir.path())
        .run();
    out.ok("call configured only by the environment");
    assert_eq!(out.stdout, SUM_RESULT);
}

#[test]
fn profile_file_supplies_url_ids_and_keys() {
    let s = ServeGuard::start("profile");
    // Relative key files resolve against the profile's directory, not the cwd.
    let profile = s.dir.write(
        "me.toml",
        &format!(
            "url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nserver_id = \"{SERVER_ID}\"\n\
             secret_file = \"client-001.secret\"\nserver_secret = \"{SERVER_SECRET}\"\n",
            s.url
        ),
    );
    let elsewhere = TempDir::new("profile-cwd");
    let out = Cmd::lacre(&["call", "batch_sum", SUM_ARGS, "--profile"])
        .args(&[profile.display().to_string()])
        .cwd(elsewhere.path())
        .run();
    out.ok("call --profile");
    assert_eq!(out.stdout, SUM_RESULT);

    // Flags override the profile: client-002's key with client-002's id.
    let out = Cmd::lacre(&["call", "batch_sum", SUM_ARGS, "--profile"])
        .args(&[profile.display().to_string()])
        .args(&["--client-id", CLIENT2_ID])
        .env("LACRE_SECRET", CLIENT2_SECRET)
        .cwd(elsewhere.path())
        .run();
    out.ok("call --profile with overrides");
    assert_eq!(out.stdout, SUM_RESULT);

    // A profile with a misspelt field is refused, not silently ignored.
    let bad = s.dir.write(
        "bad.toml",
        &format!("url = \"{}\"\nclient_idd = \"{CLIENT_ID}\"\n", s.url),
    );
    let out = Cmd::lacre(&["call", "batch_sum", SUM_ARGS, "--profile"])
        .args(&[bad.display().to_string()])
        .cwd(elsewhere.path())
        .run();
    out.expect_error(1, "a bad profile must fail", "client_idd");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

fn flip_signature(raw: &str) -> String {
    let marker = "\"signature\":\"";
    let at = raw.find(marker).expect("signature field") + marker.len();
    let mut bytes = raw.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).expect("utf-8")
}

#[test]
fn raw_reply_verifies_and_tampering_is_detected() {
    let s = ServeGuard::start("raw");
    let out = s.lacre(&["call", "batch_sum", SUM_ARGS, "--raw"]);
    out.ok("call --raw");
    let raw = out.stdout.trim_end().to_owned();
    let v = json(&raw);
    assert_eq!(v["ok"], true);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["server_id"], SERVER_ID);
    assert_eq!(v["result"], serde_json::json!({"count":3,"total":60.0}));
    assert!(raw.contains("\"total\":60.0"), "{raw}");
    assert_eq!(v["signature"].as_str().map(str::len), Some(64), "{raw}");

    let server_secret = s.file("server.secret");
    let verify = |text: &str| {
        Cmd::lacre(&["verify", "--secret-file", &server_secret])
            .stdin(text)
            .run()
    };
    let out = verify(&raw);
    out.ok("verify the raw reply");
    assert_eq!(out.stdout, "valid\n");

    let flipped = flip_signature(&raw);
    assert_ne!(flipped, raw);
    let out = verify(&flipped);
    out.expect_code(5, "verify with one signature character flipped");
    assert!(out.stdout.starts_with("invalid"), "{}", out.stdout);

    let forged = raw.replace("\"total\":60.0", "\"total\":61.0");
    assert_ne!(forged, raw);
    verify(&forged).expect_code(5, "verify a reply with a changed result");

    // The client's own secret is not the server's.
    let out = Cmd::lacre(&["verify", "--secret-file", &s.file("client-001.secret")])
        .stdin(raw.as_str())
        .run();
    out.expect_code(5, "verify with the wrong key");
}

// ---- jobs -----------------------------------------------------------------

#[test]
fn call_wait_prints_the_job_payload() {
    let s = ServeGuard::start("wait");
    let started = Instant::now();
    let out = s.lacre(&[
        "call",
        "start_long_task",
        r#"{"seconds":1,"payload":{"x":1}}"#,
        "--wait",
    ]);
    out.ok("call start_long_task --wait");
    assert_eq!(out.stdout, "{\"x\":1}\n");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "a 1-second job finished after {:?}",
        started.elapsed()
    );
}

#[test]
fn job_status_cancel_and_list() {
    let s = ServeGuard::start("jobs");
    let out = s.lacre(&["call", "start_long_task", r#"{"seconds":3}"#]);
    out.ok("start a 3-second job");
    let id = job_id_of(&out.stdout);
    assert_eq!(out.stdout, format!("{{\"job_id\":\"{id}\"}}\n"));

    let out = s.lacre(&["job", "status", &id]);
    out.ok("job status");
    let st = json(&out.stdout);
    assert_eq!(st["job_id"], id.as_str());
    let state = st["state"].as_str().unwrap_or_default();
    assert!(
        state == "running" || state == "queued",
        "state {state:?}: {}",
        out.stdout
    );

    let out = s.lacre(&["job", "cancel", &id]);
    out.ok("job cancel");
    assert_eq!(
        json(&out.stdout),
        serde_json::json!({"job_id": id, "state": "cancelled"})
    );

    let out = s.lacre(&["job", "status", &id]);
    out.expect_error(4, "status of a cancelled job", "job_cancelled");

    let out = s.lacre(&["jobs"]);
    out.ok("jobs");
    assert_eq!(out.stdout.trim_end().lines().count(), 1, "compact json");
    let list = json(&out.stdout);
    let jobs = list["jobs"].as_array().expect("jobs array");
    let mine: Vec<_> = jobs.iter().filter(|j| j["job_id"] == id.as_str()).collect();
    assert_eq!(mine.len(), 1, "{}", out.stdout);
    assert_eq!(mine[0]["state"], "cancelled");
    assert_eq!(mine[0]["tool"], "start_long_task");

    let out = s.lacre(&["jobs", "--state", "cancelled"]);
    out.ok("jobs --state cancelled");
    assert!(out.stdout.contains(&id), "{}", out.stdout);
    let out = s.lacre(&["jobs", "--state", "done"]);
    out.ok("jobs --state done");
    assert!(!out.stdout.contains(&id), "{}", out.stdout);
    // A state that does not exist is a usage error, refused before any
    // request is sent.
    let out = s.lacre(&["jobs", "--state", "bogus"]);
    out.expect_error(
        2,
        "jobs --state bogus",
        "must be queued, running, done, failed or cancelled",
    );
}

#[test]
fn job_wait_prints_the_payload() {
    let s = ServeGuard::start("job-wait");
    let out = s.lacre(&[
        "call",
        "start_long_task",
        r#"{"seconds":1,"payload":{"y":[1,2]}}"#,
    ]);
    out.ok("start a 1-second job");
    let id = job_id_of(&out.stdout);
    let out = s.lacre(&["job", "wait", &id]);
    out.ok("job wait");
    assert_eq!(out.stdout, "{\"y\":[1,2]}\n");
    // Once done, status shows the result.
    let out = s.lacre(&["job", "status", &id]);
    out.ok("job status after done");
    let st = json(&out.stdout);
    assert_eq!(st["state"], "done");
    assert_eq!(st["result"], serde_json::json!({"y":[1,2]}));
}

// ---- tools ----------------------------------------------------------------

#[test]
fn tools_table_and_json() {
    let s = ServeGuard::start("tools");
    let out = s.lacre(&["tools"]);
    out.ok("tools");
    let mut lines = out.stdout.lines();
    assert!(
        lines.next().is_some_and(|h| h.starts_with("TOOL")),
        "{}",
        out.stdout
    );
    let row = |name: &str| {
        out.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}: {}", out.stdout))
            .to_owned()
    };
    assert_eq!(row("batch_sum").split_whitespace().nth(1), Some("call"));
    assert_eq!(
        row("start_long_task").split_whitespace().nth(1),
        Some("job")
    );

    let out = s.lacre(&["tools", "--json"]);
    out.ok("tools --json");
    let v = json(&out.stdout);
    let tools = v["tools"].as_array().expect("tools array");
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"batch_sum"), "{names:?}");
    assert!(names.contains(&"start_long_task"), "{names:?}");
    for t in tools {
        assert_eq!(t["args_schema"]["type"], "object", "{t}");
    }
    let sum = tools
        .iter()
        .find(|t| t["name"] == "batch_sum")
        .expect("batch_sum");
    assert_eq!(
        sum["args_schema"]["required"],
        serde_json::json!(["numbers"])
    );
}

#[test]
fn tools_lists_only_what_a_restricted_client_may_call() {
    // client-003 may call batch_sum and server_identity (see
    // `restricted_client_lists_its_tools` for client-002, batch_sum only).
    let s = ServeGuard::start("tools-restricted");
    let out = s.lacre_as(CLIENT3_ID, &["tools", "--json"]);
    out.ok("tools --json as client-003");
    let v = json(&out.stdout);
    let names: Vec<&str> = v["tools"]
        .as_array()
        .expect("tools array")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"batch_sum"), "{names:?}");
    assert!(!names.contains(&"start_long_task"), "{names:?}");
}

#[test]
fn restricted_client_may_call_only_its_tools() {
    let s = ServeGuard::start("restricted");
    let out = s.lacre_as(CLIENT2_ID, &["call", "batch_sum", SUM_ARGS]);
    out.ok("client-002 calls batch_sum");
    assert_eq!(out.stdout, SUM_RESULT);
    let out = s.lacre_as(CLIENT2_ID, &["call", "start_long_task", r#"{"seconds":1}"#]);
    out.expect_error(4, "client-002 calls start_long_task", "forbidden_tool");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn restricted_client_lists_its_tools() {
    let s = ServeGuard::start("tools-client-002");
    let out = s.lacre_as(CLIENT2_ID, &["tools"]);
    out.ok("tools as client-002");
    assert!(out.stdout.contains("batch_sum"), "{}", out.stdout);
    assert!(!out.stdout.contains("start_long_task"), "{}", out.stdout);
}

// ---- error classes --------------------------------------------------------

fn expect_server_error(out: &crate::support::Output, code: &str, what: &str) {
    out.expect_code(4, what);
    assert!(
        out.stderr.contains(&format!("{code}:")),
        "{what}: stderr should name {code}: {}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{what}: stdout {}", out.stdout);
}

#[test]
fn server_errors_exit_4_with_the_code() {
    let s = ServeGuard::start("server-errors");
    expect_server_error(
        &s.lacre(&["call", "no_such_tool", "{}"]),
        "unknown_tool",
        "unknown tool",
    );
    expect_server_error(
        &s.lacre(&["call", "batch_sum", r#"{"numbers":[]}"#]),
        "invalid_args",
        "empty numbers",
    );
    expect_server_error(
        &s.lacre(&["call", "batch_sum", r#"{"numbers":["x"]}"#]),
        "invalid_args",
        "a string among the numbers",
    );
    expect_server_error(
        &s.lacre(&["call", "batch_sum", r#"{"numbers":[1],"extra":true}"#]),
        "invalid_args",
        "an unknown argument",
    );
    expect_server_error(
        &s.lacre_as(CLIENT2_ID, &["call", "start_long_task", r#"{"seconds":1}"#]),
        "forbidden_tool",
        "client-002 calls start_long_task",
    );
    expect_server_error(
        &s.lacre(&["job", "status", "00000000-0000-4000-8000-000000000000"]),
        "unknown_job",
        "a made-up job id",
    );
    expect_server_error(
        &s.lacre(&["job", "cancel", "made-up"]),
        "unknown_job",
        "cancel a made-up job",
    );

    // Wrong client secret.
    let out = s
        .sum_call()
        .args(&["--secret-file", &s.file("wrong.secret")])
        .args(&["--server-secret-file", &s.file("server.secret")])
        .run();
    expect_server_error(&out, "bad_signature", "wrong client secret");

    // Unknown client.
    let out = Cmd::lacre(&["call", "batch_sum", SUM_ARGS])
        .args(&["--url", &s.url, "--client-id", "client-999"])
        .args(&["--server-id", SERVER_ID])
        .args(&["--secret-file", &s.file("client-001.secret")])
        .args(&["--server-secret-file", &s.file("server.secret")])
        .run();
    expect_server_error(&out, "unknown_client", "unknown client id");
}

/// A signed envelope for `server_id`, made with `lacre sign`.
fn sign_envelope(secret_file: &str, server_id: &str, args: &str) -> String {
    let env = format!(
        r#"{{"client_id":"{CLIENT_ID}","server_id":"{server_id}","tool":"batch_sum","args":{args}}}"#
    );
    let out = Cmd::lacre(&["sign", "--secret-file", secret_file])
        .stdin(env)
        .run();
    out.ok("lacre sign");
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    out.stdout.trim_end().to_owned()
}

#[test]
fn wrong_server_id_is_refused() {
    let s = ServeGuard::start("wrong-server");
    // What the server answers: a signed `wrong_server` error.
    let env = sign_envelope(
        &s.file("client-001.secret"),
        "other-server",
        "{\"numbers\":[1]}",
    );
    let reply = raw_post(&s.url, env.as_bytes());
    let v = json(&reply);
    assert_eq!(v["ok"], false, "{reply}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("wrong_server")),
        "{reply}"
    );
    Cmd::lacre(&["verify", "--secret-file", &s.file("server.secret")])
        .stdin(reply.as_str())
        .run()
        .ok("the wrong_server reply is signed");

    // The CLI fails with the verified refusal and names both ids (see
    // `wrong_server_id_exits_4`).
    let out = sum_for_another_server(&s);
    out.expect_code(4, "a call addressed to another server");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr.contains("other-server") && out.stderr.contains(SERVER_ID),
        "{}",
        out.stderr
    );
}

/// `lacre call batch_sum` with this client's flags but `--server-id other-server`.
fn sum_for_another_server(s: &ServeGuard) -> crate::support::Output {
    let mut args = s.client_args(CLIENT_ID);
    let at = args.iter().position(|a| a == "--server-id").expect("flag") + 1;
    args[at] = "other-server".into();
    Cmd::lacre(&["call", "batch_sum", SUM_ARGS])
        .args(&args)
        .run()
}

#[test]
fn wrong_server_id_exits_4() {
    let s = ServeGuard::start("wrong-server-4");
    let out = sum_for_another_server(&s);
    expect_server_error(&out, "wrong_server", "wrong --server-id");
}

#[test]
fn wrong_server_secret_exits_5() {
    let s = ServeGuard::start("wrong-server-secret");
    let out = s
        .sum_call()
        .args(&["--secret-file", &s.file("client-001.secret")])
        .args(&["--server-secret-file", &s.file("wrong.secret")])
        .run();
    out.expect_error(5, "replies signed with another key", "reply rejected");
    assert!(
        out.stdout.is_empty(),
        "no unverified result: {}",
        out.stdout
    );
    // Also for error replies: an unverifiable error is not a server error.
    let out = Cmd::lacre(&["call", "no_such_tool", "{}"])
        .args(&["--url", &s.url, "--client-id", CLIENT_ID])
        .args(&["--server-id", SERVER_ID])
        .args(&["--secret-file", &s.file("client-001.secret")])
        .args(&["--server-secret-file", &s.file("wrong.secret")])
        .run();
    out.expect_code(5, "an error reply that does not verify");
}

#[test]
fn unreachable_server_exits_3() {
    let dir = TempDir::new("transport");
    let secret = dir.write("c.secret", "x-secret");
    let out = Cmd::lacre(&["call", "batch_sum", SUM_ARGS])
        .args(&["--url", "http://127.0.0.1:1/mcp", "--client-id", CLIENT_ID])
        .args(&["--server-id", SERVER_ID, "--timeout", "5"])
        .args(&["--secret-file", &secret.display().to_string()])
        .env("LACRE_SERVER_SECRET", SERVER_SECRET)
        .cwd(dir.path())
        .run();
    out.expect_error(3, "connection refused", "transport");
}

// ---- usage errors ---------------------------------------------------------

#[test]
fn bad_args_json_is_a_usage_error() {
    let s = ServeGuard::start("usage");
    let out = s.lacre(&["call", "batch_sum", "[1]"]);
    out.expect_error(2, "ARGS_JSON is an array", "json object");
    assert!(out.stdout.is_empty());
    let out = s.lacre(&["call", "batch_sum", "numbers=1"]);
    out.expect_error(2, "ARGS_JSON is not json", "not valid json");
    let out = s.lacre(&["call", "batch_sum", r#"{"numbers":[1],"numbers":[2]}"#]);
    out.expect_code(2, "ARGS_JSON with a duplicate key");
    let out = s.lacre(&["job", "frobnicate", "id"]);
    out.expect_code(2, "unknown job action");
}

fn call_without_client_key() -> crate::support::Output {
    // An empty cwd: no ./lacre-client.toml to fall back on.
    let dir = TempDir::new("no-key");
    Cmd::lacre(&["call", "batch_sum", SUM_ARGS])
        .args(&["--url", "http://127.0.0.1:1/mcp", "--client-id", CLIENT_ID])
        .args(&["--server-id", SERVER_ID])
        .env("LACRE_SERVER_SECRET", SERVER_SECRET)
        .cwd(dir.path())
        .run()
}

#[test]
fn missing_client_key_is_refused_before_any_request() {
    let out = call_without_client_key();
    // Refused locally as a usage error (the URL is unreachable, so a
    // request would exit 3).
    out.expect_error(2, "no client key", "no client key");
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_client_key_exits_2() {
    call_without_client_key().expect_code(2, "no client key given");
}

// ---- keygen ---------------------------------------------------------------

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn keygen_writes_private_keys_that_work() {
    let dir = TempDir::new("keygen");
    let hmac = dir.join("client.key");
    let hmac_s = hmac.display().to_string();
    let keygen = |args: &[&str]| Cmd::lacre(&["keygen"]).args(args).cwd(dir.path()).run();
    let out = keygen(&["--alg", "hmac-sha256", "--out", &hmac_s]);
    out.ok("keygen hmac");
    let text = std::fs::read_to_string(&hmac).expect("hmac key file");
    let hex = text
        .strip_prefix("hex:")
        .unwrap_or_else(|| panic!("no hex: prefix: {text:?}"))
        .trim_end();
    assert_eq!(hex.len(), 64, "{text:?}");
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{text:?}");
    #[cfg(unix)]
    assert_eq!(mode(&hmac), 0o600);
    assert!(out.stdout.contains("[[clients]]"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("secret_file = \"{hmac_s}\"")),
        "{}",
        out.stdout
    );

    let ed = dir.join("server.key");
    let ed_s = ed.display().to_string();
    let out = keygen(&["--alg", "ed25519", "--out", &ed_s]);
    out.ok("keygen ed25519");
    let public = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap_or_else(|| panic!("no public key line: {}", out.stdout))
        .to_owned();
    assert_eq!(public.len(), 64, "{public}");
    assert!(public.bytes().all(|b| b.is_ascii_hexdigit()), "{public}");
    #[cfg(unix)]
    assert_eq!(mode(&ed), 0o600);

    // Never overwrites.
    let before = std::fs::read(&hmac).expect("read");
    let out = keygen(&["--out", &hmac_s]);
    out.expect_error(1, "keygen over an existing file", "must not exist");
    assert_eq!(std::fs::read(&hmac).expect("read"), before);
    let before = std::fs::read(&ed).expect("read");
    let out = keygen(&["--alg", "ed25519", "--out", &ed_s]);
    out.expect_error(1, "keygen over an existing Ed25519 file", "must not exist");
    assert_eq!(std::fs::read(&ed).expect("read"), before);

    // The keys work: an Ed25519 server key and an HMAC client secret, as
    // the printed snippets say.
    let config = format!(
        "server_id = \"{SERVER_ID}\"\n[signing]\nalg = \"ed25519\"\nprivate_key_file = \"{ed_s}\"\n\
         [[clients]]\nid = \"{CLIENT_ID}\"\nalg = \"hmac-sha256\"\nsecret_file = \"{hmac_s}\"\n"
    );
    let s = ServeGuard::start_with_config("keygen-serve", &config);
    let call = |server_key: &str| {
        Cmd::lacre(&["call", "batch_sum", SUM_ARGS])
            .args(&["--url", &s.url, "--client-id", CLIENT_ID])
            .args(&["--server-id", SERVER_ID, "--secret-file", &hmac_s])
            .args(&["--server-public-key", server_key])
            .run()
    };
    let out = call(&public);
    out.ok("call with keygen's keys");
    assert_eq!(out.stdout, SUM_RESULT);
    // Another valid public key does not verify the replies. (Changing a
    // digit of the key mostly gives no curve point at all, refused before
    // any request: exit 1, which tested nothing about the replies.)
    assert_ne!(public, ED_PUBLIC);
    let out = call(ED_PUBLIC);
    out.expect_error(5, "replies checked with another server key", "signature");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

// ---- serve ----------------------------------------------------------------

#[test]
fn serve_without_config_writes_one_and_a_profile() {
    // An empty working directory, kept across two server starts.
    let work = TempDir::new("default-serve");
    let cwd = work.path().to_path_buf();
    let args = ["serve".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
    let s = ServeGuard::spawn(TempDir::new("default-serve-guard"), &args, Some(&cwd));
    let stderr = s.stderr_text();
    assert!(stderr.contains("wrote lacre.toml"), "{stderr}");
    let config = std::fs::read_to_string(cwd.join("lacre.toml")).expect("lacre.toml");
    let profile = std::fs::read_to_string(cwd.join("lacre-client.toml")).expect("profile");
    assert!(config.contains("alg = \"ed25519\""), "{config}");
    assert!(profile.contains("server_public_key = \""), "{profile}");
    #[cfg(unix)]
    {
        assert_eq!(mode(&cwd.join("lacre.toml")), 0o600);
        assert_eq!(mode(&cwd.join("lacre-client.toml")), 0o600);
    }
    // The profile was written for `--listen 127.0.0.1:0`; the real port
    // comes from the listening line. Keys and ids come from the profile.
    let out = Cmd::lacre(&["call", "batch_sum", r#"{"numbers":[1,2]}"#, "--url", &s.url])
        .cwd(&cwd)
        .run();
    out.ok("call with the written profile");
    assert_eq!(out.stdout, "{\"count\":2,\"total\":3.0}\n");
    // The server signs with Ed25519: 128 hex digits.
    let out = Cmd::lacre(&["call", "batch_sum", "{\"numbers\":[1]}", "--raw"])
        .args(&["--url", &s.url])
        .cwd(&cwd)
        .run();
    out.ok("call --raw with the written profile");
    assert_eq!(
        json(&out.stdout)["signature"].as_str().map(str::len),
        Some(128),
        "{}",
        out.stdout
    );
    // files_and_secrets: the database holds every client's arguments and
    // results: owner-only, like the config (its WAL files too).
    #[cfg(unix)]
    for file in ["lacre.db", "lacre.db-wal", "lacre.db-shm"] {
        assert_eq!(
            mode(&cwd.join(file)) & 0o077,
            0,
            "{file} is readable by others"
        );
    }
    drop(s);

    // A second start reuses the file instead of writing fresh keys.
    let s2 = ServeGuard::spawn(TempDir::new("default-serve-guard-2"), &args, Some(&cwd));
    assert!(!s2.stderr_text().contains("wrote"), "{}", s2.stderr_text());
    assert_eq!(
        std::fs::read_to_string(cwd.join("lacre.toml")).expect("lacre.toml"),
        config
    );
    let out = Cmd::lacre(&[
        "call",
        "batch_sum",
        r#"{"numbers":[1,2]}"#,
        "--url",
        &s2.url,
    ])
    .cwd(&cwd)
    .run();
    out.ok("call after a restart");
}

#[test]
fn config_errors_name_file_line_and_fix() {
    let dir = TempDir::new("bad-config");
    let cfg = dir.write(
        "lacre.toml",
        "server_id = \"s\"\nlisten = \"127.0.0.1:0\"\n[signing]\nsecret = \"server_secret_key_123\"\nbogus = 1\n",
    );
    let out = Cmd::lacre(&["serve", "--config", &cfg.display().to_string()])
        .cwd(dir.path())
        .run();
    out.expect_error(1, "a config with an unknown key", "lacre.toml:5:");
    assert!(out.stderr.contains("bogus"), "{}", out.stderr);
    assert!(out.stderr.contains("fix:"), "{}", out.stderr);

    // A missing config file is refused (not replaced by a default).
    let missing = dir.join("nope.toml");
    let out = Cmd::lacre(&["serve", "--config", &missing.display().to_string()])
        .cwd(dir.path())
        .run();
    out.expect_error(1, "a missing config file", "nope.toml");
    assert!(out.stderr.contains("fix:"), "{}", out.stderr);
    assert!(!missing.exists());
}

#[test]
fn demo_runs_the_article_flow() {
    let out = Cmd::lacre(&["demo"]).run();
    out.ok("lacre demo");
    for want in [
        "\"total\":60.0",
        "\"status\":\"done\"",
        "\"data\":\"complete\"",
        "demo complete",
    ] {
        assert!(out.stdout.contains(want), "no {want} in:\n{}", out.stdout);
    }
}

// ---- stdio ----------------------------------------------------------------

/// `lacre serve --stdio` on the guard's configuration, with a database of
/// its own: the HTTP server holds the nonce journal of the guard's (one
/// process a journal).
fn serve_stdio(s: &ServeGuard, input: String) -> Vec<String> {
    let config = s.file("lacre.toml");
    let out = Cmd::lacre(&[
        "serve",
        "--stdio",
        "--config",
        &config,
        "--store",
        "sqlite://stdio.db",
    ])
    .stdin(input)
    .cwd(s.dir.path())
    .run();
    out.ok("serve --stdio");
    out.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn serve_stdio_answers_one_line_per_envelope() {
    // The HTTP server is not used; the guard provides the config and keys.
    let s = ServeGuard::start("stdio");
    let client_secret = s.file("client-001.secret");
    let a = sign_envelope(&client_secret, SERVER_ID, r#"{"numbers":[1,2.5]}"#);
    let b = sign_envelope(&client_secret, SERVER_ID, r#"{"numbers":[1,2.5]}"#);
    assert_ne!(a, b, "fresh request_id and nonce each time");

    let verify = |line: &str| {
        Cmd::lacre(&["verify", "--secret-file", &s.file("server.secret")])
            .stdin(line)
            .run()
            .ok(&format!("verify {line}"))
            .stdout
            .clone()
    };
    let replies = serve_stdio(&s, format!("{a}\n{b}\n"));
    assert_eq!(replies.len(), 2, "{replies:?}");
    for r in &replies {
        assert_eq!(verify(r), "valid\n");
        assert!(r.contains("\"total\":3.5"), "{r}");
        assert_eq!(json(r)["ok"], true, "{r}");
    }
    // Replies may come out of order; each answers one request.
    let mut ids: Vec<String> = replies
        .iter()
        .map(|r| {
            json(r)["request_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    ids.sort();
    let mut want = vec![
        json(&a)["request_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        json(&b)["request_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ];
    want.sort();
    assert_eq!(ids, want);

    // The same (fresh) line twice: one answer, one replay refusal, both signed.
    let c = sign_envelope(&client_secret, SERVER_ID, r#"{"numbers":[1,2.5]}"#);
    let replies = serve_stdio(&s, format!("{c}\n{c}\n"));
    assert_eq!(replies.len(), 2, "{replies:?}");
    for r in &replies {
        assert_eq!(verify(r), "valid\n");
    }
    let replayed: Vec<_> = replies
        .iter()
        .filter(|r| r.contains("replayed_nonce"))
        .collect();
    assert_eq!(replayed.len(), 1, "{replies:?}");
    assert_eq!(json(replayed[0])["ok"], false);
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.contains("\"total\":3.5"))
            .count(),
        1,
        "{replies:?}"
    );
    // With the durable store (SQLite, the default), a nonce stays used across
    // processes: replaying `a` in a new stdio session is refused too.
    let replies = serve_stdio(&s, format!("{a}\n"));
    assert!(replies[0].contains("replayed_nonce"), "{replies:?}");
}

// ---- canonical, sign, verify ----------------------------------------------

#[test]
fn canonical_prints_the_signed_bytes() {
    let out = Cmd::lacre(&["canonical"])
        .stdin("{\"b\":1E2,\"a\":\"é\"}\n")
        .run();
    out.ok("canonical");
    assert_eq!(out.stdout, r#"{"a":"\u00e9","b":100.0}"#);

    let out = Cmd::lacre(&["canonical"]).stdin(r#"{"a":1,"a":2}"#).run();
    out.expect_code(1, "duplicate key");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("duplicate"), "{}", out.stderr);

    let out = Cmd::lacre(&["canonical"]).stdin("{\"a\":").run();
    out.expect_code(1, "truncated json");
    assert!(!out.stderr.is_empty());
}

#[test]
fn sign_then_verify_round_trips() {
    let dir = TempDir::new("sign");
    let secret = dir.write("c.secret", "client_secret_key_456\n");
    let secret = secret.display().to_string();
    let out = Cmd::lacre(&["sign", "--secret-file", &secret])
        .stdin(r#"{"client_id":"c","server_id":"s","tool":"batch_sum","args":{"numbers":[1]}}"#)
        .run();
    out.ok("sign");
    let env = json(&out.stdout);
    for field in ["v", "request_id", "ts_ms", "nonce", "signature"] {
        assert!(!env[field].is_null(), "no {field}: {}", out.stdout);
    }
    Cmd::lacre(&["verify", "--secret-file", &secret])
        .stdin(out.stdout.as_str())
        .run()
        .ok("verify what sign wrote");
    let out = Cmd::lacre(&["verify"])
        .env("LACRE_SECRET", "another_secret")
        .stdin(out.stdout.as_str())
        .run();
    out.expect_code(5, "verify with another secret");
}

#[test]
fn log_lines_cannot_be_forged_through_request_fields() {
    // An unauthenticated request whose request_id holds a newline, a fake
    // log line and an ANSI escape: the request log must show it escaped.
    let s = ServeGuard::start("log-injection");
    let body = r#"{"args":{},"client_id":"client-001","nonce":"n","request_id":"evil\n2026-12-01T00:00:00.000000Z  INFO lacre::request: forged\u001b[31m","server_id":"mcp-server-001","signature":"00","tool":"batch_sum","ts_ms":1,"v":"mcp/0.1"}"#;
    let reply = raw_post(&s.url, body.as_bytes());
    assert!(reply.contains("bad_signature"), "{reply}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = s.stderr_text();
        if log.contains("evil") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(log.contains("evil"), "the request was not logged: {log}");
    for line in log.lines() {
        assert!(
            !line.starts_with("2026-12-01T00:00:00.000000Z"),
            "a forged log line: {line:?}"
        );
        assert!(
            !line.contains('\u{1b}'),
            "a raw escape in the log: {line:?}"
        );
    }
}

#[test]
fn the_json_log_holds_the_request_line_fields_as_plain_strings() {
    // `--log-format json`: the request line's strings are JSON strings of
    // the values themselves (recorded with `?` they were their `Debug`
    // form, quotes included: "\"client-001\"").
    let s = ServeGuard::start_with_args(
        "json-log",
        &crate::support::default_config(),
        &["--log-format", "json"],
    );
    s.lacre(&["call", "batch_sum", SUM_ARGS]).ok("call");
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let log = s.stderr_text();
        let found = log
            .lines()
            .find(|l| l.contains("lacre::request"))
            .map(str::to_owned);
        match found {
            Some(line) => break line,
            None if Instant::now() > deadline => panic!("no request line: {log}"),
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let v: serde_json::Value = serde_json::from_str(&line).expect(&line);
    let fields = &v["fields"];
    assert_eq!(fields["client_id"], "client-001", "{line}");
    assert_eq!(fields["tool"], "batch_sum", "{line}");
    assert_eq!(fields["status"], "ok", "{line}");
    let rid = fields["request_id"].as_str().expect(&line);
    assert!(!rid.is_empty() && !rid.starts_with('"'), "{line}");
}

#[test]
fn test_tools_provoke_internal_and_job_failed_without_harm() {
    // For implementers: `serve --test-tools` offers tools that fail, panic
    // or sleep on request.
    let s = ServeGuard::start_with_args(
        "test-tools",
        &crate::support::default_config(),
        &["--test-tools"],
    );
    let out = s.lacre(&["call", "test_fault", r#"{"action":"ok"}"#]);
    out.ok("test_fault ok");
    assert_eq!(out.stdout, "{}\n");
    for action in ["fail", "panic"] {
        let out = s.lacre(&["call", "test_fault", &format!(r#"{{"action":"{action}"}}"#)]);
        out.expect_code(4, action);
        assert!(out.stderr.contains("internal"), "{action}: {}", out.stderr);
    }
    let out = s.lacre(&["call", "test_fault_job", r#"{"action":"fail"}"#, "--wait"]);
    out.expect_error(4, "test_fault_job fail", "job_failed");
    // The server is still serving.
    s.lacre(&["call", "batch_sum", SUM_ARGS])
        .ok("after the faults");
    // Without the flag the tools do not exist.
    let plain = ServeGuard::start("no-test-tools");
    let out = plain.lacre(&["call", "test_fault", r#"{"action":"ok"}"#]);
    out.expect_error(4, "test_fault without --test-tools", "unknown_tool");
}

// ---- listeners ------------------------------------------------------------

/// The status line's code of `METHOD PATH` on `host:port`.
fn status_on(host: &str, method: &str, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    stream.write_all(head.as_bytes()).expect("write");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read");
    reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {reply:?}"))
}

#[test]
fn metrics_listen_takes_metrics_off_the_public_listener() {
    let internal = format!("127.0.0.1:{}", free_port());
    let config = default_config().replace(
        "max_skew_ms = 300000\n",
        &format!("max_skew_ms = 300000\nmetrics_listen = \"{internal}\"\n"),
    );
    assert!(config.contains("metrics_listen"));
    let s = ServeGuard::start_with_config("metrics_listen", &config);
    let public = s
        .url
        .strip_prefix("http://")
        .and_then(|r| r.strip_suffix("/mcp"))
        .expect("url")
        .to_owned();
    // SPEC §7.1: which listener serves which path.
    let rows = [
        (&public, "POST", "/mcp", 400),
        (&public, "GET", "/.well-known/lacre.json", 200),
        (&public, "GET", "/healthz", 200),
        (&public, "GET", "/metrics", 404),
        (&internal, "POST", "/mcp", 404),
        (&internal, "GET", "/.well-known/lacre.json", 404),
        (&internal, "GET", "/healthz", 200),
        (&internal, "GET", "/metrics", 200),
    ];
    for (host, method, path, want) in rows {
        assert_eq!(
            status_on(host, method, path),
            want,
            "{method} {path} on {host}"
        );
    }
}

// ---- client keys ----------------------------------------------------------

/// The Ed25519 key of testdata/vectors/signatures.json: seed and public key.
const ED_SEED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const ED_PUBLIC: &str = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";

/// A directory with the default configuration and `more` after it (and
/// client-002's secret file): the directory and the configuration's path.
fn config_dir(name: &str, more: &str) -> (TempDir, String) {
    let dir = TempDir::new(name);
    dir.write("client-002.secret", CLIENT2_SECRET);
    let config = format!("{}\n{more}", default_config());
    let path = dir.write("lacre.toml", &config).display().to_string();
    (dir, path)
}

#[test]
fn one_client_with_keys_of_every_kind_over_http() {
    // Three active keys of two algorithms from three sources: a file with
    // `hex:` and a CRLF ending, an environment variable, an inline
    // Ed25519 public key. Each signs a call that verifies over HTTP.
    let client = format!(
        "[[clients]]\nid = \"mixed\"\nkeys = [{{ secret_file = \"mixed-hex.secret\" }}, {{ secret_env = \"LACRE_TEST_MIXED\" }}, {{ alg = \"ed25519\", public_key_hex = \"{ED_PUBLIC}\" }}]\n"
    );
    let (dir, path) = config_dir("mixed_keys", &client);
    dir.write("mixed-hex.secret", "hex:6d697865642d6f6e65\r\n"); // "mixed-one"
    let args = ["serve", "--config", &path, "--listen", "127.0.0.1:0"].map(String::from);
    let s = ServeGuard::spawn_with_env(
        dir,
        &args,
        None,
        &[("LACRE_TEST_MIXED", "from-the-environment")],
    );
    s.dir.write("server.secret", SERVER_SECRET);
    let with = |flag: &str, file: &str| {
        Cmd::lacre(&["call", "batch_sum", SUM_ARGS])
            .args(&[
                "--url",
                &s.url,
                "--client-id",
                "mixed",
                "--server-id",
                SERVER_ID,
            ])
            .args(&["--server-secret-file", &s.file("server.secret")])
            .args(&[flag, &s.dir.join(file).display().to_string()])
            .run()
    };
    s.dir.write("as-file.secret", "mixed-one");
    s.dir.write("as-env.secret", "from-the-environment");
    s.dir.write("ed.key", ED_SEED);
    s.dir.write("wrong.key", &"11".repeat(32));
    s.dir.write("wrong.secret", "not-a-key-of-mixed");
    for (flag, file) in [
        ("--secret-file", "as-file.secret"),
        ("--secret-file", "as-env.secret"),
        ("--key-file", "ed.key"),
    ] {
        let out = with(flag, file);
        out.expect_code(0, file);
        assert_eq!(out.stdout, SUM_RESULT, "{file}");
    }
    // A key the server does not hold for this client: a bound refusal.
    for (flag, file) in [
        ("--secret-file", "wrong.secret"),
        ("--key-file", "wrong.key"),
    ] {
        let out = with(flag, file);
        out.expect_code(4, file);
        assert!(out.stderr.contains("bad_signature"), "{file}: {out:?}");
    }
}

#[test]
fn a_client_with_four_keys_is_refused_at_start() {
    let client = "[[clients]]\nid = \"many\"\nkeys = [\"k1\", \"k2\", \"k3\", \"k4\"]\n";
    let (_dir, path) = config_dir("four_keys", client);
    let out = Cmd::lacre(&["serve", "--config", &path]).run();
    // A configuration error: exit 1, before anything is served.
    out.expect_code(1, "serve with four keys");
    assert!(
        out.stderr
            .contains("client \"many\" must have 1 to 3 active keys"),
        "{out:?}"
    );
}

// ---- webhook --------------------------------------------------------------

#[test]
fn webhook_sign_and_verify_round_trip_and_refuse_changes() {
    // The reference package's side of this is python/tests/test_webhooks.py.
    let dir = TempDir::new("webhook");
    let key = dir.write("ed.key", ED_SEED).display().to_string();
    let secret = "whsec_c2VjcmV0IG9mIHRoZSBjbGllbnQ=";
    let body = r#"{"type":"job.done","data":{"x":1}}"#;
    let out = Cmd::lacre(&["webhook", "sign", "--id", "j.done", "--secret", secret])
        .args(&["--key-file", &key])
        .stdin(body)
        .run();
    out.ok("webhook sign");
    let signature = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("webhook-signature: "))
        .expect("a signature header");
    assert!(
        signature.starts_with("v1,") && signature.contains(" v1a,"),
        "{signature}"
    );
    // The key as a receiver gets it (whpk_; python/tests/test_webhooks.py
    // builds it independently, with the standard library's base64).
    let ed = lacre_proto::VerifyingKey::ed25519(&lacre_proto::from_hex(ED_PUBLIC).expect("hex"))
        .expect("the vector key");
    let public = lacre_proto::webhook::public_key_text(&ed).expect("an Ed25519 key");
    let request = format!(
        "POST /hook HTTP/1.1\r\n{}\r\n{body}",
        out.stdout.replace('\n', "\r\n")
    );
    for flag in [["--secret", secret], ["--public-key", &public]] {
        let ok = Cmd::lacre(&["webhook", "verify"])
            .args(&flag)
            .stdin(request.as_str())
            .run();
        ok.ok("webhook verify");
        assert_eq!(ok.stdout, "valid\n");
        let changed = Cmd::lacre(&["webhook", "verify"])
            .args(&flag)
            .stdin(request.replace("\"x\":1", "\"x\":2"))
            .run();
        changed.expect_code(5, "a changed body");
        assert_eq!(changed.stdout, "invalid: no signature verifies\n");
    }
}
