//! Interop with the seed article's Python code (interop/), both ways: the
//! seed's client against `lacre serve`, and `lacre call` against the
//! seed's server.

use crate::support::{
    json, seed_client, seed_python_or_skip, Cmd, SeedServer, ServeGuard, TempDir, CLIENT_ID,
    CLIENT_SECRET, SERVER_ID, SERVER_SECRET,
};

#[test]
fn seed_client_against_lacre_serve() {
    if !seed_python_or_skip("seed_client_against_lacre_serve") {
        return;
    }
    let s = ServeGuard::start("seed-client");
    let out = seed_client(&s.url, &["--check-replay"]).run();
    out.ok("seed_client.py --check-replay against lacre serve");
    let last = out.stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("seed demo: all ") && last.ends_with(" responses verified"),
        "last line {last:?}\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout
            .contains("note: replay and bad-signature checks passed"),
        "{}",
        out.stdout
    );
    // Every JSON line the seed client printed is a reply it verified; one
    // of them is the article's batch_sum.
    let replies: Vec<_> = out.stdout.lines().filter(|l| l.starts_with('{')).collect();
    assert!(replies.len() >= 7, "{}", out.stdout);
    assert!(
        replies
            .iter()
            .any(|r| json(r)["result"] == serde_json::json!({"count": 3, "total": 60.0})),
        "{}",
        out.stdout
    );
}

/// `--url --client-id --server-id --secret-file --server-secret-file` for
/// the seed server, with the server secret read from `server_secret_file`.
fn seed_client_args(
    dir: &TempDir,
    seed: &SeedServer,
    server_secret_file: &std::path::Path,
) -> Vec<String> {
    let client = dir.write("client.secret", CLIENT_SECRET);
    vec![
        "--url".into(),
        seed.url.clone(),
        "--client-id".into(),
        CLIENT_ID.into(),
        "--server-id".into(),
        SERVER_ID.into(),
        "--secret-file".into(),
        client.display().to_string(),
        "--server-secret-file".into(),
        server_secret_file.display().to_string(),
    ]
}

#[test]
fn lacre_cli_against_seed_server() {
    if !seed_python_or_skip("lacre_cli_against_seed_server") {
        return;
    }
    let dir = TempDir::new("seed-server");
    let server_secret = dir.write("server.secret", &format!("{SERVER_SECRET}\n"));
    let seed = SeedServer::start();
    let args = seed_client_args(&dir, &seed, &server_secret);
    let lacre = |cmd: &[&str]| Cmd::lacre(cmd).args(&args).cwd(dir.path()).run();

    let out = lacre(&["call", "batch_sum", r#"{"numbers":[10,20,30]}"#]);
    out.ok("lacre call batch_sum against the seed");
    assert_eq!(out.stdout, "{\"count\":3,\"total\":60.0}\n");

    // The seed's reply, as it came over the wire (json.dumps with ", "),
    // verifies with `lacre verify`.
    let out = lacre(&["call", "batch_sum", r#"{"numbers":[1.5,2]}"#, "--raw"]);
    out.ok("lacre call --raw against the seed");
    assert!(out.stdout.contains("\"total\": 3.5"), "{}", out.stdout);
    let raw = out.stdout.trim_end().to_owned();
    let out = Cmd::lacre(&[
        "verify",
        "--secret-file",
        &server_secret.display().to_string(),
    ])
    .stdin(raw.as_str())
    .run();
    out.ok("lacre verify of a seed reply");
    assert_eq!(out.stdout, "valid\n");

    // The seed rejects `wait_ms` (extra="forbid"): the client falls back
    // from long polling to plain polling.
    let out = lacre(&[
        "call",
        "start_long_task",
        r#"{"seconds":1,"payload":{"data":"complete"}}"#,
        "--wait",
    ]);
    out.ok("lacre call start_long_task --wait against the seed");
    assert_eq!(out.stdout, "{\"data\":\"complete\"}\n");

    // The seed's signed errors are not bound to the request's bytes, so
    // they cannot tell its outcome (SPEC §6.5): exit 6, with the code.
    let out = lacre(&["call", "no_such_tool", "{}"]);
    out.expect_error(6, "unknown tool at the seed", "unknown_tool");

    // Replies that do not verify: exit 5, nothing on stdout.
    let wrong = dir.write("wrong.secret", "not_the_server_secret\n");
    let args = seed_client_args(&dir, &seed, &wrong);
    let out = Cmd::lacre(&["call", "batch_sum", r#"{"numbers":[10,20,30]}"#])
        .args(&args)
        .cwd(dir.path())
        .run();
    out.expect_code(5, "wrong server secret against the seed");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("reply rejected"), "{}", out.stderr);
}
