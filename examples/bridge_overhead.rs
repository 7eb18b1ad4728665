//! What `lacre mcp` adds to a call: `batch_sum` called one at a time
//! (a) with `lacre-client`, the library `lacre call` uses, and (b) by an MCP
//! client (rmcp) through a `lacre mcp` child process over stdio, which
//! signs with the same library; both against one lacre server on
//! 127.0.0.1 (memory store, HMAC keys), in alternating rounds of one run.
//!
//! ```text
//! cargo build --release -p lacre-cli
//! cargo run --release -p lacre-gateway --example bridge_overhead -- target/release/lacre [CALLS]
//! ```

use lacre_client::{Client, ServerTrust};
use lacre_proto::SigningKey;
use lacre_server::{Server, ToolFilter};
use rmcp::model::CallToolRequestParams;
use rmcp::ServiceExt;
use std::time::{Duration, Instant};

fn report(name: &str, mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |p: f64| {
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v.get(i).copied().unwrap_or_default().as_secs_f64() * 1e6
    };
    let (p50, p99) = (at(0.5), at(0.99));
    println!(
        "{name:<36} n={:<5} median {p50:>8.1} µs   p99 {p99:>8.1} µs",
        v.len()
    );
    (p50, p99)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut argv = std::env::args().skip(1);
    let lacre = argv
        .next()
        .ok_or("usage: bridge_overhead PATH/TO/lacre [CALLS]")?;
    let calls: usize = argv.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);

    let server_key = SigningKey::hmac(b"server_secret_key_123")?;
    let client_key = SigningKey::hmac(b"client_secret_key_456")?;
    let server = Server::builder("mcp-server-001", server_key.clone())
        .client("client-001", [client_key.verifying_key()], ToolFilter::All)?
        .build();
    let (listener, addr) = lacre_server::http::bind("127.0.0.1:0".parse()?).await?;
    let serving = lacre_server::http::serve(listener, server, 1 << 20, std::future::pending());
    tokio::spawn(serving);
    let url = format!("http://{addr}/mcp");
    let client = Client::builder(&url, "client-001", "mcp-server-001")
        .key(client_key)
        .trust(ServerTrust::Key(server_key.verifying_key()))
        .build()?;

    let mut cmd = tokio::process::Command::new(&lacre);
    cmd.args([
        "mcp",
        "--url",
        &url,
        "--client-id",
        "client-001",
        "--server-id",
        "mcp-server-001",
        "--log-level",
        "error",
    ])
    .env("LACRE_SECRET", "client_secret_key_456")
    .env("LACRE_SERVER_SECRET", "server_secret_key_123")
    .stderr(std::process::Stdio::inherit());
    let host = ().serve(rmcp::transport::TokioChildProcess::new(cmd)?).await?;
    let args = serde_json::json!({"numbers": [10, 20, 30]});
    let params = || {
        let serde_json::Value::Object(m) = args.clone() else {
            unreachable!()
        };
        CallToolRequestParams::new("batch_sum").with_arguments(m)
    };

    for _ in 0..50 {
        client.call("batch_sum", &args).await?;
        host.call_tool(params()).await?;
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let round = (calls / 10).max(1);
    while a.len() < calls {
        for _ in 0..round {
            let t = Instant::now();
            client.call("batch_sum", &args).await?;
            a.push(t.elapsed());
        }
        for _ in 0..round {
            let t = Instant::now();
            let r = host.call_tool(params()).await?;
            b.push(t.elapsed());
            assert_eq!(
                r.structured_content,
                Some(serde_json::json!({"count": 3, "total": 60.0}))
            );
        }
    }
    println!("batch_sum, one call at a time, {calls} calls each:");
    let (a50, a99) = report("lacre-client (lacre call's path)", a);
    let (b50, b99) = report("MCP client -> lacre mcp (stdio)", b);
    println!(
        "lacre mcp adds: median {:.1} µs, p99 {:.1} µs",
        b50 - a50,
        b99 - a99
    );
    Ok(())
}
