//! A server written from the seed's text: its `server_identity` lists bare
//! tool names and advertises no long polling, and its `poll_job` refuses
//! `wait_ms` with an error text of its own.

use crate::support::*;
use lacre_client::JobHandle;
use lacre_proto::{
    Envelope, ErrorCode, Map, ParseLimits, ResponseSigner, SigningKey, Status, Value,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn map(text: &str) -> Map {
    lacre_proto::parse_object(text.as_bytes(), ParseLimits::default()).unwrap()
}

#[tokio::test]
async fn wait_polls_a_seed_server_without_wait_ms() {
    let key = SigningKey::hmac(SERVER_SECRET).unwrap();
    let polls = Arc::new(AtomicUsize::new(0));
    let long_polls = Arc::new(AtomicUsize::new(0));
    let (p, lp) = (Arc::clone(&polls), Arc::clone(&long_polls));
    let url = fake_server(move |body| {
        let env = Envelope::parse(body, ParseLimits::default()).unwrap();
        let signer = ResponseSigner::new(SERVER_ID, key.clone());
        let ok = |status, result: &str| {
            signer
                .success(&env.request_id, env.ts_ms, status, Some(map(result)))
                .to_json()
        };
        match env.tool.as_str() {
            "server_identity" => ok(
                Status::Ok,
                r#"{"server_id":"mcp-server-001","fingerprint":"c8961fa7a791e78f","capabilities":{"tools":["server_identity","batch_sum","start_long_task","poll_job"]}}"#,
            ),
            "poll_job" if env.args.contains_key("wait_ms") => {
                lp.fetch_add(1, Ordering::SeqCst);
                signer
                    .error_json(
                        &env.request_id,
                        env.ts_ms,
                        &ErrorCode::parse("bad args"),
                        "1 validation error for PollJobIn wait_ms Extra inputs are not permitted",
                        None,
                    )
                    .1
            }
            "poll_job" if p.fetch_add(1, Ordering::SeqCst) < 2 => {
                ok(Status::Running, r#"{"job_id":"j1","state":"running"}"#)
            }
            "poll_job" => ok(Status::Done, r#"{"data":"complete"}"#),
            other => panic!("unexpected tool {other}"),
        }
    })
    .await;
    let job = JobHandle { id: "j1".into() };
    let mut seen = 0;
    let result = client(&url).wait(&job, |_| seen += 1).await.unwrap();
    assert_eq!(result.get("data").and_then(Value::as_str), Some("complete"));
    assert_eq!(seen, 2, "two running replies reported as progress");
    assert_eq!(
        long_polls.load(Ordering::SeqCst),
        0,
        "a server that does not advertise long polling gets no wait_ms"
    );
}
