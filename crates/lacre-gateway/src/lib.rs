//! # lacre-gateway
//!
//! Tools from elsewhere behind a lacre server: MCP servers (child
//! processes speaking MCP on stdio, or Streamable HTTP endpoints, through
//! the official SDK `rmcp`) and
//! plain commands (one process per call, JSON in and out). Each becomes a
//! lacre tool like any other: signed requests and replies, replay refusal,
//! per-client allow-lists, arguments checked against the tool's schema
//! before anything is forwarded, and durable jobs for long-running tools.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use lacre_server::config::Settings;
//! let settings = Settings::load(std::path::Path::new("lacre.toml"))?;
//! let stores = lacre_server::store::open(&settings.store).await?;
//! let gateway = lacre_gateway::Gateway::start(&settings).await;
//! let mut taken = Ok(());
//! let server = settings.server_with(&stores, |reg| taken = gateway.register(reg))?;
//! taken?;
//! // ... serve `server`, then:
//! gateway.shutdown().await;
//! # Ok(()) }
//! ```

pub mod bridge;
pub mod command;
pub mod mcp;
pub mod process;
mod tls;

use lacre_server::config::upstreams::CommandTool;
use lacre_server::config::Settings;
use lacre_server::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub use mcp::{Upstream, UpstreamState, UpstreamTool};

/// What can stop the gateway's tools from being offered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// A configured tool's name is already a tool of this server.
    #[error("tool {0:?} is already defined (built-in tools and [[tools]] names must differ)")]
    NameTaken(String),
    /// A configured tool's schema does not compile.
    #[error("tool {0:?}: {1}")]
    Schema(String, #[source] lacre_server::SchemaError),
}

/// The upstreams and command tools of one server.
pub struct Gateway {
    upstreams: Vec<Arc<Upstream>>,
    commands: Vec<CommandTool>,
    stop: watch::Sender<bool>,
}

impl Gateway {
    /// Starts every MCP upstream of `settings` (at once) and waits until
    /// each has listed its tools or failed; a failed upstream is logged and
    /// retried in the background, and its tools are offered once it is up
    /// (after [`Gateway::attach`]).
    pub async fn start(settings: &Settings) -> Gateway {
        let stop = watch::Sender::new(false);
        let starts = settings
            .mcp_servers
            .iter()
            .map(|m| Upstream::start(m.clone(), stop.subscribe()));
        let mut upstreams = Vec::new();
        for (up, first) in join_all(starts).await {
            match first {
                Ok(()) => {
                    tracing::info!(upstream = %up.name(), tools = up.tools().len(), "upstream ready")
                }
                Err(e) => {
                    tracing::error!(upstream = %up.name(), error = %e, "upstream failed to start; serving the others (it is retried in the background, its tools appear once it is up)")
                }
            }
            upstreams.push(up);
        }
        Gateway {
            upstreams,
            commands: settings.command_tools.clone(),
            stop,
        }
    }

    /// Registers the command tools (an error if a name is taken) and the
    /// upstreams' tools (a taken name is logged and left out).
    pub fn register(&self, reg: &mut Registry) -> Result<(), GatewayError> {
        command::register(reg, &self.commands)?;
        for up in &self.upstreams {
            up.register(reg);
        }
        Ok(())
    }

    /// Publishes later changes of the upstreams' tools to `server` (the
    /// one built with [`Gateway::register`]'s registry): an upstream that
    /// was down at start offers its tools once it comes up, and one that
    /// announces `notifications/tools/list_changed` offers the new list.
    pub fn attach(&self, server: &lacre_server::Server) {
        for up in &self.upstreams {
            up.attach(server);
        }
    }

    /// The MCP upstreams.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// The upstreams' lines for `/metrics` (`Server::set_metrics_source`):
    /// `lacre_upstream_up`, `lacre_upstream_connects_total` and
    /// `lacre_upstream_calls_total` by outcome.
    pub fn metrics_source(&self) -> lacre_server::MetricsSource {
        let upstreams = self.upstreams.clone();
        Arc::new(move || {
            if upstreams.is_empty() {
                return String::new();
            }
            let mut out = String::from(
                "# HELP lacre_upstream_up Whether an MCP upstream is connected.\n\
                 # TYPE lacre_upstream_up gauge\n\
                 # HELP lacre_upstream_connects_total Connections made to an MCP upstream (restarts included).\n\
                 # TYPE lacre_upstream_connects_total counter\n\
                 # HELP lacre_upstream_calls_total Calls forwarded to an MCP upstream, by outcome.\n\
                 # TYPE lacre_upstream_calls_total counter\n",
            );
            for up in &upstreams {
                out.push_str(&up.metrics_text());
            }
            out
        })
    }

    /// Stops every upstream (their process groups are killed) and waits
    /// for them, at most 5 s.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let all = self.upstreams.iter().map(|up| {
            let mut state = up.watch_state();
            async move {
                let _ = state.wait_for(|s| *s == UpstreamState::Stopped).await;
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(5), join_all(all)).await;
    }
}

/// Runs futures concurrently and collects their outputs in order.
async fn join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}
