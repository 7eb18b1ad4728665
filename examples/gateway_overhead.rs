//! What lacre adds to an upstream MCP tool call: `echo` of the reference
//! server `@modelcontextprotocol/server-everything`, called one at a time
//! (a) directly over MCP stdio with rmcp, as the gateway itself calls it,
//! and (b) through lacre: a signed request over HTTP on 127.0.0.1, nonce
//! and timestamp checked, arguments checked against the tool's schema,
//! forwarded over the same kind of connection, the reply signed and the
//! signature verified by the client. Both in one run, alternating rounds,
//! so that the machine's noise falls on both.
//!
//! ```text
//! npm ci --prefix testdata/peers
//! cargo run --release -p lacre-gateway --example gateway_overhead -- [CALLS]
//! ```

use lacre_client::{Client, ServerTrust};
use lacre_proto::SigningKey;
use rmcp::model::CallToolRequestParams;
use rmcp::ServiceExt;
use std::time::{Duration, Instant};

const ENTRY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn report(name: &str, mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let (p50, p99) = (percentile(&v, 0.5), percentile(&v, 0.99));
    println!(
        "{name:<34} n={:<5} median {:>8.1} µs   p99 {:>8.1} µs",
        v.len(),
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
    (p50, p99)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    if !std::path::Path::new(ENTRY).exists() {
        return Err(format!("{ENTRY} is missing: npm ci --prefix testdata/peers").into());
    }

    // (a) Direct: rmcp client over stdio.
    let mut cmd = tokio::process::Command::new("node");
    cmd.args([ENTRY, "stdio"])
        .stderr(std::process::Stdio::null());
    let direct = ().serve(rmcp::transport::TokioChildProcess::new(cmd)?).await?;
    let args = serde_json::json!({"message": "hello, upstream"});
    let echo = || {
        let serde_json::Value::Object(m) = args.clone() else {
            unreachable!()
        };
        CallToolRequestParams::new("echo").with_arguments(m)
    };

    // (b) Through lacre: the same server behind a lacre server on 127.0.0.1.
    let config = format!(
        r#"server_id = "gw-bench"
store = "memory"
signing = {{ secret = "server_secret_key_123" }}
clients = [{{ id = "client-001", secret = "client_secret_key_456" }}]
[[mcp_servers]]
name = "everything"
command = ["node", "{ENTRY}", "stdio"]
"#
    );
    let settings =
        lacre_server::config::Settings::parse(std::path::Path::new("bench.toml"), &config)?;
    let stores = lacre_server::store::open("memory").await?;
    let gateway = lacre_gateway::Gateway::start(&settings).await;
    let mut registered = Ok(());
    let server = settings.server_with(&stores, |reg| registered = gateway.register(reg))?;
    registered?;
    let (listener, addr) = lacre_server::http::bind("127.0.0.1:0".parse()?).await?;
    let serving = lacre_server::http::serve(listener, server, 1 << 20, std::future::pending());
    tokio::spawn(serving);
    let client = Client::builder(&format!("http://{addr}/mcp"), "client-001", "gw-bench")
        .key(SigningKey::hmac(b"client_secret_key_456")?)
        .trust(ServerTrust::Key(
            SigningKey::hmac(b"server_secret_key_123")?.verifying_key(),
        ))
        .build()?;

    // Warm both paths, then alternate rounds of `calls / 10`.
    for _ in 0..50 {
        direct.call_tool(echo()).await?;
        client.call("everything_echo", &args).await?;
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let round = (calls / 10).max(1);
    while a.len() < calls {
        for _ in 0..round {
            let t = Instant::now();
            let r = direct.call_tool(echo()).await?;
            a.push(t.elapsed());
            assert_ne!(r.is_error, Some(true));
        }
        for _ in 0..round {
            let t = Instant::now();
            let r = client.call("everything_echo", &args).await?;
            b.push(t.elapsed());
            let text = r.result_json().pointer("/content/0/text").cloned();
            assert_eq!(text, Some("Echo: hello, upstream".into()));
        }
    }
    println!("echo of server-everything, one call at a time, {calls} calls each:");
    let (a50, a99) = report("direct (rmcp over stdio)", a);
    let (b50, b99) = report("through lacre (signed, HTTP)", b);
    println!(
        "lacre adds: median {:.1} µs, p99 {:.1} µs",
        (b50.as_secs_f64() - a50.as_secs_f64()) * 1e6,
        (b99.as_secs_f64() - a99.as_secs_f64()) * 1e6
    );
    gateway.shutdown().await;
    Ok(())
}
