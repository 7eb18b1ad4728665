//! `lacre demo`: the seed article's `demo()`, made real. A server with
//! fresh keys on 127.0.0.1 (random port), and over real HTTP:
//! `server_identity`, `batch_sum [10,20,30]`, a 2-second `start_long_task`
//! with live progress, and its poll to `done`, every reply verified.

use crate::output::ProgressView;
use crate::ExitCode;
use anyhow::Result;
use lacre_client::{Client, JobHandle, JobView, Reply, ServerTrust};
use lacre_proto::builtin::{decode_result, Accepted};
use lacre_proto::SigningKey;
use lacre_server::keys::random_bytes;
use lacre_server::{Server, ToolFilter, WorkerConfig};
use std::time::Duration;

fn show(step: &str, reply: &Reply) {
    println!("{step}");
    println!("  {}", String::from_utf8_lossy(&reply.raw));
    println!(
        "  signature verified ({}), request_id and server_id match\n",
        if reply.response.signature.len() == 64 {
            "hmac-sha256"
        } else {
            "ed25519"
        }
    );
}

/// Runs the demo.
pub async fn demo() -> Result<ExitCode> {
    let server_secret: [u8; 32] = random_bytes()?;
    let client_secret: [u8; 32] = random_bytes()?;
    let server_key = SigningKey::hmac(&server_secret)?;
    let client_key = SigningKey::hmac(&client_secret)?;
    let server = Server::builder("mcp-server-001", server_key.clone())
        .client("client-001", [client_key.verifying_key()], ToolFilter::All)?
        .build();
    let workers = server.start_workers(WorkerConfig::default());
    let (listener, addr) = lacre_server::http::bind("127.0.0.1:0".parse()?).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(lacre_server::http::serve(
        listener,
        server.clone(),
        lacre_server::http::DEFAULT_BODY_LIMIT,
        async {
            let _ = stop_rx.await;
        },
    ));
    let url = format!("http://{addr}/mcp");
    println!(
        "lacre demo: server mcp-server-001 on {url} (fresh 32-byte hmac keys, in-memory store)\n"
    );

    let client = Client::builder(&url, "client-001", "mcp-server-001")
        .key(client_key)
        .trust(ServerTrust::Key(server_key.verifying_key()))
        .build()?;

    let r = client
        .call("server_identity", serde_json::json!({}))
        .await?;
    show("1. server_identity", &r);
    let r = client
        .call("batch_sum", serde_json::json!({"numbers": [10, 20, 30]}))
        .await?;
    show("2. batch_sum [10, 20, 30]", &r);
    let r = client
        .call(
            "start_long_task",
            serde_json::json!({"seconds": 2, "payload": {"data": "complete"}}),
        )
        .await?;
    show("3. start_long_task (2 seconds)", &r);
    let accepted: Accepted = decode_result("accepted reply", &r.result())?;
    let job = JobHandle {
        id: accepted.job_id,
    };

    println!("4. poll_job until done (long polling, progress below)");
    let view = ProgressView::new(&job.id);
    let last = loop {
        let args = serde_json::json!({"job_id": job.id, "wait_ms": 5000});
        let map = match lacre_proto::Value::from_serialize(&args) {
            Ok(lacre_proto::Value::Object(m)) => m,
            _ => anyhow::bail!("internal: poll arguments"),
        };
        let reply = client
            .call_map("poll_job", map, Duration::from_secs(5))
            .await?;
        match JobView::from_response(&reply.response)? {
            JobView::Done(_) => {
                view.finish();
                break reply;
            }
            JobView::Pending(p) => {
                view.update(&p);
                if !view.is_visible() {
                    println!(
                        "  running: {:>3.0}% {}",
                        p.progress.unwrap_or(0.0) * 100.0,
                        p.message.unwrap_or_default()
                    );
                }
            }
        }
    };
    show("   done", &last);
    println!("demo complete: every reply was signed by the server and verified by the client.");
    let _ = stop_tx.send(());
    let _ = http.await;
    workers.shutdown(Duration::from_secs(1)).await;
    Ok(ExitCode::Ok)
}
