//! The audit log of a real server: calls through the CLI, a clean stop,
//! then `lacre audit verify` and `export` on its database; one byte
//! changed in the file makes verify fail at that entry.

use crate::support::*;

fn audited_config() -> String {
    format!(
        "store = \"sqlite://lacre.db\"\n{}\n[audit]\nenabled = true\nretention_days = 7\n",
        default_config()
    )
}

#[test]
fn a_served_run_verifies_and_a_changed_byte_is_found() {
    if !python3_or_skip("a_served_run_verifies_and_a_changed_byte_is_found") {
        return;
    }
    let mut s = ServeGuard::start_with_config("audit", &audited_config());
    for _ in 0..3 {
        s.lacre(&["call", "batch_sum", r#"{"numbers":[1,2,3]}"#])
            .expect_code(0, "batch_sum");
    }
    // Refused for its allow-list, but authenticated: logged too.
    s.lacre_as(
        "client-002",
        &["call", "start_long_task", r#"{"seconds":1}"#],
    )
    .expect_code(4, "forbidden tool");
    // A clean stop writes what is queued.
    assert_eq!(s.terminate(), Some(0), "{}", s.stderr_text());
    let db = s.file("lacre.db");
    let store = format!("sqlite://{db}");
    let config = s.file("lacre.toml");
    let ok = Cmd::lacre(&["audit", "--store", &store, "verify", "--config", &config]).run();
    ok.expect_code(0, "audit verify");
    let last = ok.stdout.lines().last().unwrap_or_default().to_owned();
    let n: usize = last
        .strip_prefix("verified ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{ok:?}"));
    assert!(n >= 4, "{ok:?}");
    assert!(last.ends_with("in 1 chains"), "{ok:?}");
    // Exported as JSON lines, filtered by client.
    let all = Cmd::lacre(&["audit", "--store", &store, "export"]).run();
    all.expect_code(0, "audit export");
    assert_eq!(all.stdout.lines().count(), n);
    let theirs = Cmd::lacre(&[
        "audit",
        "--store",
        &store,
        "export",
        "--client",
        "client-002",
    ])
    .run();
    let lines: Vec<serde_json::Value> = theirs.stdout.lines().map(json).collect();
    assert_eq!(lines.len(), 1, "{theirs:?}");
    assert_eq!(lines[0]["tool"], "start_long_task");
    assert!(
        lines[0]["reply"]
            .as_str()
            .unwrap()
            .contains("forbidden_tool"),
        "{theirs:?}"
    );
    let later = Cmd::lacre(&[
        "audit",
        "--store",
        &store,
        "export",
        "--since",
        "2999-01-01T00:00:00Z",
    ])
    .run();
    later.expect_code(0, "export --since");
    assert_eq!(later.stdout, "");
    // One byte of the first reply changed in the file.
    let edit = "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\n\
                n=c.execute(\"UPDATE lacre_audit SET reply=replace(reply,'\\\"total\\\":6','\\\"total\\\":7') WHERE seq=1\").rowcount\n\
                c.commit()\nprint(n)";
    let out = Cmd::program("python3", &["-c", edit, &db]).run();
    out.expect_code(0, "edit with python3");
    assert_eq!(out.stdout.trim(), "1", "{out:?}");
    let broken = Cmd::lacre(&["audit", "--store", &store, "verify", "--config", &config]).run();
    broken.expect_code(5, "audit verify after an edit");
    assert!(
        broken.stdout.starts_with("BROKEN: chain ") && broken.stdout.contains("entry 1: altered"),
        "{broken:?}"
    );
}
