//! Tools described at run time (schema as data), over real HTTP: their
//! schema is published as given, arguments are checked against it before
//! the handler runs, and long-running ones get the job machinery.

use crate::support::*;
use lacre_proto::{ErrorCode, Map, Status, Value};
use lacre_server::{ToolDef, ToolError};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn greet_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {"name": {"type": "string", "minLength": 1}},
        "required": ["name"],
        "additionalProperties": false
    })
}

async fn server(runs: Arc<AtomicUsize>) -> TestServer {
    TestServer::start_with(move |b| {
        b.tools(move |reg| {
            let runs = Arc::clone(&runs);
            reg.dynamic_immediate(
                ToolDef {
                    name: "greet".into(),
                    description: "Says hello.".into(),
                    args_schema: greet_schema(),
                },
                move |args: Map, _ctx| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let name = args.get("name").and_then(Value::as_str).unwrap_or("?");
                        let mut out = Map::new();
                        out.insert("greeting".into(), Value::from(format!("hello, {name}")));
                        Ok::<_, ToolError>(out)
                    }
                },
            )
            .unwrap();
            reg.dynamic_long_running(
                ToolDef {
                    name: "slow_greet".into(),
                    description: "Says hello, slowly.".into(),
                    args_schema: greet_schema(),
                },
                |args: Map, ctx| async move {
                    ctx.progress(0.5, "thinking");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, ToolError>(args)
                },
            )
            .unwrap();
        })
    })
    .await
}

/// Long-polls `job_id` until it is no longer running. Each long poll
/// returns at the job's next change (claimed, progress, done): a bounded
/// number of them reaches the end.
async fn finished(s: &TestServer, job_id: &str) -> lacre_proto::Response {
    for _ in 0..20 {
        let (_, reply) = s
            .call("poll_job", json!({"job_id": job_id, "wait_ms": 5000}))
            .await;
        if reply.status != Status::Running {
            return reply;
        }
    }
    panic!("job {job_id} did not finish within 20 long polls");
}

#[tokio::test]
async fn schema_is_published_verbatim() {
    let s = server(Arc::default()).await;
    let (_, resp) = s.call("server_identity", json!({})).await;
    let r = result_json(&resp);
    let tools = r["capabilities"]["tools"].as_array().unwrap();
    let greet = tools.iter().find(|t| t["name"] == "greet").unwrap();
    assert_eq!(greet["args_schema"], greet_schema());
    assert_eq!(greet["long_running"], false);
    let slow = tools.iter().find(|t| t["name"] == "slow_greet").unwrap();
    assert_eq!(slow["long_running"], true);
    s.stop().await;
}

#[tokio::test]
async fn arguments_are_checked_before_the_handler_runs() {
    let runs = Arc::new(AtomicUsize::new(0));
    let s = server(Arc::clone(&runs)).await;
    let reply = s
        .refused("greet", json!({"name": 5}), 422, ErrorCode::InvalidArgs)
        .await;
    let text = reply.error.unwrap();
    assert_eq!(text, r#"invalid_args: name: 5 is not of type "string""#);
    let env = envelope_001("greet", json!({"name": "a", "x": 1}));
    s.expect(&env, 422, ErrorCode::InvalidArgs).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "the handler never ran");

    let (http, resp) = s.call("greet", json!({"name": "ada"})).await;
    assert_eq!(http, 200);
    assert_eq!(result_json(&resp), json!({"greeting": "hello, ada"}));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    s.stop().await;
}

#[tokio::test]
async fn long_running_dynamic_tools_are_jobs() {
    let s = server(Arc::default()).await;
    let env = envelope_001("slow_greet", json!({}));
    // Refused at the door: no job is created for bad arguments.
    s.expect(&env, 422, ErrorCode::InvalidArgs).await;
    let (http, resp) = s.call("slow_greet", json!({"name": "ada"})).await;
    assert_eq!(http, 202);
    let job_id = job_id_of(&resp);
    let done = finished(&s, &job_id).await;
    assert_eq!(done.status, Status::Done, "{done:?}");
    assert_eq!(result_json(&done), json!({"name": "ada"}));
    s.stop().await;
}

#[tokio::test]
async fn tools_change_while_the_server_runs() {
    let s = server(Arc::default()).await;
    s.refused("late", json!({}), 404, ErrorCode::UnknownTool)
        .await;
    // A tool added while the server runs: called, listed, run as a job.
    s.server.update_tools(|reg| {
        reg.dynamic_long_running(
            ToolDef {
                name: "late".into(),
                description: "Came later.".into(),
                args_schema: json!({"type": "object"}),
            },
            |args: Map, _ctx| async move { Ok::<_, ToolError>(args) },
        )
        .unwrap();
        reg.remove("greet");
    });
    let (_, identity) = s.call("server_identity", json!({})).await;
    let names = tool_names(&identity);
    assert!(names.contains(&"late".to_owned()), "{names:?}");
    assert!(!names.contains(&"greet".to_owned()), "{names:?}");
    let (http, resp) = s.call("late", json!({"x": 1})).await;
    assert_eq!(http, 202, "{resp:?}");
    let job_id = job_id_of(&resp);
    let done = finished(&s, &job_id).await;
    assert_eq!(
        done.status,
        Status::Done,
        "the worker found the new tool: {done:?}"
    );
    assert_eq!(result_json(&done), json!({"x": 1}));
    // The removed tool is gone for new requests.
    s.refused("greet", json!({"name": "a"}), 404, ErrorCode::UnknownTool)
        .await;
    s.stop().await;
}
