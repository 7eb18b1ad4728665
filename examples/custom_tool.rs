//! Registering your own tools: one immediate, one long-running with
//! progress and cancellation; then calling them over HTTP with the client.
//!
//! Run: `cargo run -p lacre-server --example custom_tool`

use lacre_client::{Client, ServerTrust};
use lacre_proto::SigningKey;
use lacre_server::{Server, ToolArgs, ToolError, ToolFilter, WorkerConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Arguments of `word_count`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WordCountIn {
    /// The text to count words in.
    text: String,
}
impl ToolArgs for WordCountIn {}

#[derive(Serialize)]
struct WordCountOut {
    words: usize,
}

/// Arguments of `countdown`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CountdownIn {
    /// Steps of 200 ms, 1 to 50.
    steps: u32,
}
impl ToolArgs for CountdownIn {
    fn validate(&self) -> Result<(), String> {
        if (1..=50).contains(&self.steps) {
            Ok(())
        } else {
            Err("steps: must be between 1 and 50".into())
        }
    }
}

#[derive(Serialize)]
struct CountdownOut {
    finished_steps: u32,
    attempt: u32,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server_key = SigningKey::ed25519_from_seed(&[7u8; 32])?;
    let client_key = SigningKey::hmac(b"example-client-secret")?;

    let server = Server::builder("example-server", server_key.clone())
        .client(
            "example-client",
            [client_key.verifying_key()],
            ToolFilter::All,
        )?
        .tools(|reg| {
            reg.immediate(
                "word_count",
                "Counts the words of a text.",
                |a: WordCountIn, _ctx| async move {
                    Ok::<_, ToolError>(WordCountOut {
                        words: a.text.split_whitespace().count(),
                    })
                },
            );
            reg.long_running(
                "countdown",
                "Counts down, reporting progress.",
                |a: CountdownIn, ctx| async move {
                    for i in 0..a.steps {
                        if ctx.is_cancelled() {
                            return Err(ToolError::failed("cancelled"));
                        }
                        ctx.progress(f64::from(i) / f64::from(a.steps), format!("step {i}"));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Ok(CountdownOut {
                        finished_steps: a.steps,
                        attempt: ctx.attempt(),
                    })
                },
            );
        })
        .build();
    let _workers = server.start_workers(WorkerConfig::default());
    let (listener, addr) = lacre_server::http::bind("127.0.0.1:0".parse()?).await?;
    let serving = lacre_server::http::serve(listener, server, 1 << 20, std::future::pending());
    tokio::spawn(serving);

    let client = Client::builder(
        &format!("http://{addr}/mcp"),
        "example-client",
        "example-server",
    )
    .key(client_key)
    .trust(ServerTrust::Key(server_key.verifying_key()))
    .build()?;
    let words = client
        .call(
            "word_count",
            serde_json::json!({"text": "signed, stateless, async"}),
        )
        .await?;
    println!("word_count: {}", words.result_json());
    let job = client
        .start("countdown", serde_json::json!({"steps": 5}))
        .await?;
    let result = client
        .wait(&job, |p| {
            println!("  progress {:?} {:?}", p.progress, p.message)
        })
        .await?;
    println!(
        "countdown: {}",
        lacre_proto::Value::Object(result).to_serde()
    );
    Ok(())
}
