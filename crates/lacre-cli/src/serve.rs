//! `lacre serve`: HTTP (default) or stdio.

use crate::keygen::write_private;
use crate::profile::DEFAULT_PROFILE;
use crate::ExitCode;
use anyhow::{Context, Result};
use lacre_server::config::{generate_default, Settings, DEFAULT_LISTEN};
use lacre_server::Server;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The config file used when none is given.
pub const DEFAULT_CONFIG: &str = "lacre.toml";

/// Options of `lacre serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Default: ./lacre.toml, written with fresh
    /// keys if it does not exist.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (overrides `listen` in the config).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Serve one envelope per line on stdin/stdout instead of HTTP.
    #[arg(long)]
    pub stdio: bool,
    /// Also offer `noop_job`, a job that completes at once (for benchmarks).
    #[arg(long)]
    pub bench_tools: bool,
    /// Also offer `test_fault` and `test_fault_job`, which fail, panic or
    /// sleep on request (for testing clients; never in production).
    #[arg(long)]
    pub test_tools: bool,
    /// Store URL (overrides `store` in the config): memory,
    /// sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

fn load_or_create(args: &ServeArgs) -> Result<Settings> {
    if let Some(path) = &args.config {
        return Settings::load(path).map_err(|e| anyhow::anyhow!("{e}"));
    }
    let path = Path::new(DEFAULT_CONFIG);
    if path.exists() {
        return Settings::load(path).map_err(|e| anyhow::anyhow!("{e}"));
    }
    let listen = args
        .listen
        .map_or_else(|| DEFAULT_LISTEN.to_owned(), |a| a.to_string());
    let files = generate_default(&listen).map_err(anyhow::Error::msg)?;
    write_private(path, &files.server_toml)?;
    let profile = Path::new(DEFAULT_PROFILE);
    let wrote_profile = !profile.exists() && write_private(profile, &files.client_toml).is_ok();
    eprintln!("lacre: no configuration found; wrote {DEFAULT_CONFIG} with fresh random keys");
    eprintln!("  server_id: {}", files.server_id);
    eprintln!(
        "  client:    {} (hmac-sha256, 32-byte secret in {DEFAULT_CONFIG})",
        files.client_id
    );
    if wrote_profile {
        eprintln!("  the client's credentials are in {DEFAULT_PROFILE}; from this directory, try:");
        eprintln!("    lacre call batch_sum '{{\"numbers\":[10,20,30]}}'");
        eprintln!("    lacre call start_long_task '{{\"seconds\":3}}' --wait");
    }
    Settings::parse(path, &files.server_toml).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Opens (and migrates) the store, saying which one is used.
pub async fn open_store(url: &str) -> Result<lacre_server::store::Stores> {
    open_store_with(url, lacre_proto::ParseLimits::default()).await
}

/// As [`open_store`], reading stored JSON with these limits.
pub async fn open_store_with(
    url: &str,
    limits: lacre_proto::ParseLimits,
) -> Result<lacre_server::store::Stores> {
    let shown = lacre_server::store::redact(url);
    let stores = lacre_server::store::open_with_limits(url, limits)
        .await
        .with_context(|| format!("cannot open store {shown}"))?;
    tracing::info!(store = %shown, "store ready (schema up to date)");
    Ok(stores)
}

/// Opens the store `lacre serve` runs on: with a SQLite file, its nonces
/// in the journal beside it unless `[nonces] journal = false`.
async fn open_serving_store(settings: &Settings) -> Result<lacre_server::store::Stores> {
    let url = &settings.store;
    if settings.nonces.journal == Some(true) && settings.nonces.journal_for(url).is_none() {
        anyhow::bail!(
            "[nonces] journal = true needs a SQLite database file, and the store is {}",
            lacre_server::store::redact(url)
        );
    }
    let Some(fsync) = settings.nonces.journal_for(url) else {
        return open_store_with(url, settings.parse_limits).await;
    };
    let shown = lacre_server::store::redact(url);
    let stores = lacre_server::store::open_journaled(
        url,
        settings.parse_limits,
        fsync,
        std::sync::Arc::new(lacre_server::SystemClock),
    )
    .await
    .with_context(|| format!("cannot open store {shown}"))?;
    tracing::info!(
        store = %shown,
        journal = %lacre_server::store::journal_dir(url).unwrap_or_default().display(),
        fsync,
        remembered = stores.nonces.len(),
        "store ready (schema up to date), nonces in the journal"
    );
    Ok(stores)
}

/// `lacre migrate --store URL`: brings a store's schema up to date.
pub async fn migrate(url: &str) -> Result<ExitCode> {
    open_store(url).await?;
    eprintln!("lacre: {} is up to date", lacre_server::store::redact(url));
    Ok(ExitCode::Ok)
}

/// Runs the server until SIGINT/SIGTERM (HTTP) or the end of stdin (stdio).
pub async fn serve(args: &ServeArgs) -> Result<ExitCode> {
    let mut settings = load_or_create(args)?;
    if let Some(store) = &args.store {
        settings.store = store.clone();
    }
    let stores = open_serving_store(&settings).await?;
    let (bench_tools, test_tools) = (args.bench_tools, args.test_tools);
    // MCP upstreams are started (and list their tools) before the server
    // is built: their tools are registered like any other.
    let gateway = lacre_gateway::Gateway::start(&settings).await;
    let mut registered = Ok(());
    let server: Server = settings
        .server_with(&stores, |reg| {
            if bench_tools {
                lacre_server::builtin::register_bench_tools(reg);
            }
            if test_tools {
                lacre_server::builtin::register_test_tools(reg);
            }
            registered = gateway.register(reg);
        })
        .context("invalid client keys")?;
    if let Err(e) = registered {
        gateway.shutdown().await;
        return Err(anyhow::Error::new(e).context("cannot offer the configured tools"));
    }
    // A fresh server has no source yet: this cannot fail.
    let _ = server.set_metrics_source(gateway.metrics_source());
    gateway.attach(&server);
    let workers = server.start_workers(settings.worker_config());
    let deliveries = server
        .start_deliveries(settings.webhooks.clone())
        .map_err(|e| anyhow::anyhow!(e))?;
    if deliveries.is_some() {
        tracing::info!("delivering webhooks");
    }
    let audit = match settings.audit {
        Some(a) => {
            let writer = server
                .start_audit(stores.audit.clone(), a)
                .map_err(|e| anyhow::anyhow!(e))?;
            tracing::info!(chain = %writer.chain, retention_days = a.retention_days, "audit log on");
            Some(writer)
        }
        None => None,
    };
    let finish_audit = |audit: Option<lacre_server::audit::AuditWriter>| async move {
        if let Some(a) = audit {
            a.finish(Duration::from_secs(10)).await;
        }
    };
    let stop_deliveries = |deliveries: Option<lacre_server::webhooks::Deliveries>| async move {
        if let Some(d) = deliveries {
            d.shutdown(Duration::from_secs(5)).await;
        }
    };
    if args.stdio {
        tracing::info!(server_id = %server.server_id(), "serving stdio");
        let stdin = tokio::io::BufReader::new(tokio::io::stdin());
        let served =
            lacre_server::stdio::serve(server, stdin, tokio::io::stdout(), settings.body_limit)
                .await;
        workers.shutdown(Duration::from_secs(5)).await;
        stop_deliveries(deliveries).await;
        finish_audit(audit).await;
        gateway.shutdown().await;
        served?;
        return Ok(ExitCode::Ok);
    }
    let addr = args.listen.unwrap_or(settings.listen);
    let (listener, local) = lacre_server::http::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!(
        "lacre: listening on http://{local}/mcp (server_id {}, key fingerprint {}, store {})",
        server.server_id(),
        server.fingerprint(),
        lacre_server::store::redact(&settings.store)
    );
    if settings.signing.algorithm() == lacre_proto::Algorithm::Ed25519 {
        eprintln!(
            "lacre: clients may pin this server with --server-fingerprint {}",
            settings.signing.verifying_key().fingerprint_sha256()
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(addr) = settings.metrics_listen {
        let (metrics_listener, local) = lacre_server::http::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for metrics"))?;
        eprintln!("lacre: metrics on http://{local}/metrics");
        let mut rx = stop_rx.clone();
        tokio::spawn(lacre_server::http::serve_metrics(
            metrics_listener,
            server.clone(),
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            },
        ));
    }
    let http = settings.http.clone();
    let served = lacre_server::http::serve_with(listener, server, http, shutdown_signal()).await;
    stop_tx.send_replace(true);
    eprintln!("lacre: shutting down");
    workers.shutdown(Duration::from_secs(10)).await;
    stop_deliveries(deliveries).await;
    finish_audit(audit).await;
    // After the workers: a job still running may need its upstream.
    gateway.shutdown().await;
    served?;
    Ok(ExitCode::Ok)
}

/// `lacre upstreams --config FILE`: every upstream, whether it came up,
/// and the tools it adds; then the command tools.
pub async fn upstreams(config: &Path) -> Result<ExitCode> {
    let settings = Settings::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let gateway = lacre_gateway::Gateway::start(&settings).await;
    let mut all_up = true;
    for up in gateway.upstreams() {
        let state = up.state();
        let shown = match &state {
            lacre_gateway::UpstreamState::Up => "up".to_owned(),
            lacre_gateway::UpstreamState::Down(e) => format!("DOWN: {e}"),
            other => format!("{other:?}").to_lowercase(),
        };
        all_up &= state == lacre_gateway::UpstreamState::Up;
        println!("mcp server {:?}: {shown}", up.name());
        for t in up.tools() {
            let kind = if t.long_running { "job " } else { "call" };
            let retry = if t.idempotent { "idempotent" } else { "" };
            println!("  {:<40} {kind}  {retry}", t.name);
        }
    }
    for t in &settings.command_tools {
        let kind = if t.long_running { "job " } else { "call" };
        println!(
            "command tool {:<32} {kind}  {}",
            t.name,
            t.command.program.display()
        );
    }
    gateway.shutdown().await;
    Ok(if all_up {
        ExitCode::Ok
    } else {
        ExitCode::Transport
    })
}
