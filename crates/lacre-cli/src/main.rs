//! The `lacre` command line: serve, call tools, wait for jobs, run the
//! demo, and debug signatures.

mod audit;
mod bench;
mod call;
mod debug;
mod demo;
mod keyfile;
mod keygen;
mod logline;
mod logsink;
mod output;
mod profile;
mod serve;
mod webhook;
mod webhooks;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Exit codes, one per class of failure, so scripts can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// The input was rejected (not valid JSON, not a valid envelope) or
    /// another local error happened.
    Rejected = 1,
    /// Usage error (bad flags or arguments; clap uses 2 as well).
    Usage = 2,
    /// The server could not be reached or the connection failed.
    Transport = 3,
    /// The server answered with a (verified) error.
    Server = 4,
    /// A signature or response check failed.
    Verification = 5,
    /// The request may have reached the server; whether it ran is unknown.
    OutcomeUnknown = 6,
    /// Interrupted by Ctrl-C.
    Interrupted = 130,
}

#[derive(Debug, Parser)]
#[command(
    name = "lacre",
    version,
    about = "Stateless, signed, asynchronous tool calls"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level on stderr: error, warn, info (one line per request), debug.
    /// Default: info for `serve`, warn for the other commands.
    #[arg(long, global = true, value_enum)]
    log_level: Option<LogLevel>,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// The most detailed log level shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// One line per request.
    Info,
    /// Why requests were refused.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    fn level(self) -> tracing::Level {
        match self {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Trace => tracing::Level::TRACE,
        }
    }
}

/// Parses a job state name for clap.
fn parse_state(s: &str) -> Result<lacre_proto::JobState, String> {
    lacre_proto::JobState::parse(s)
        .ok_or_else(|| "must be queued, running, done, failed or cancelled".to_owned())
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the seed article's demo against a fresh local server, over HTTP.
    Demo,
    /// Serve the protocol over HTTP (or stdio with --stdio).
    Serve(serve::ServeArgs),
    /// Load-test a server: pre-signed requests over keep-alive connections.
    Bench(bench::BenchArgs),
    /// Create or update a store's schema (`lacre serve` also does this on start).
    Migrate {
        /// Store URL: sqlite://PATH or postgres://USER@HOST/DB.
        #[arg(long, value_name = "URL")]
        store: String,
    },
    /// Call a tool and print its verified result.
    Call {
        /// The tool.
        tool: String,
        /// Its arguments, a JSON object.
        args: Option<String>,
        /// For a long-running tool: wait for the job and print its result.
        #[arg(long)]
        wait: bool,
        /// Print the whole signed response instead of the result.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        client: profile::ClientArgs,
    },
    /// Inspect, wait for or cancel one job.
    Job {
        /// What to do.
        #[arg(value_enum)]
        action: call::JobAction,
        /// The job id.
        job_id: String,
        #[command(flatten)]
        client: profile::ClientArgs,
    },
    /// List your jobs.
    Jobs {
        /// Only jobs in this state: queued, running, done, failed, cancelled.
        #[arg(long, value_parser = parse_state)]
        state: Option<lacre_proto::JobState>,
        /// At most this many.
        #[arg(long)]
        limit: Option<u64>,
        /// Operators: list every client's jobs straight from a store
        /// (sqlite://PATH or postgres://...) instead of asking a server.
        #[arg(long, value_name = "URL")]
        store: Option<String>,
        #[command(flatten)]
        client: profile::ClientArgs,
    },
    /// Operators: start the configured MCP upstreams and command tools
    /// of a config file, show whether each is up and the tools it adds,
    /// then stop them (exit 0 when every upstream came up, 3 otherwise).
    Upstreams {
        /// Configuration file (default ./lacre.toml).
        #[arg(long, value_name = "FILE", default_value = serve::DEFAULT_CONFIG)]
        config: std::path::PathBuf,
    },
    /// Serve MCP on stdin/stdout in front of a lacre server, for MCP hosts
    /// (Claude Desktop and Code, Cursor, VS Code, ...): every call is signed
    /// with your key, every reply verified. Logs go to stderr.
    Mcp {
        /// How long a call of a long-running tool waits for its job before
        /// answering with the job id (hosts often time requests out at 60 s).
        #[arg(long, value_name = "SECONDS", default_value_t = 50)]
        max_wait: u64,
        #[command(flatten)]
        client: profile::ClientArgs,
    },
    /// List the tools the server lets you call.
    Tools {
        /// Print the raw descriptions with their JSON Schemas.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: profile::ClientArgs,
    },
    /// Generate a key.
    Keygen {
        /// hmac-sha256 or ed25519.
        #[arg(long, default_value = "hmac-sha256", value_parser = keyfile::parse_alg)]
        alg: lacre_proto::Algorithm,
        /// Where to write it (must not exist).
        #[arg(long, default_value = "lacre.key")]
        out: PathBuf,
        /// Client id to use in the printed config snippet.
        #[arg(long, default_value = "client-001")]
        client_id: String,
    },
    /// Print the canonical JSON bytes of one JSON value (from FILE or stdin).
    Canonical {
        /// Input file; stdin when absent or `-`.
        file: Option<PathBuf>,
    },
    /// Sign an envelope (from FILE or stdin), filling in missing v, request_id, ts_ms, nonce.
    Sign {
        /// Input file; stdin when absent or `-`.
        file: Option<PathBuf>,
        #[command(flatten)]
        key: keyfile::KeyArgs,
    },
    /// Sign or check Standard Webhooks notifications (SPEC §9.5).
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Operators: the webhook deliveries in a store (SPEC §9.6): list them,
    /// send failed ones again, enable an endpoint disabled by a 410.
    Webhooks {
        /// Store URL: sqlite://PATH or postgres://USER@HOST/DB.
        #[arg(long, value_name = "URL", global = true)]
        store: Option<String>,
        #[command(subcommand)]
        command: webhooks::WebhooksCommand,
    },
    /// Operators: the audit log in a store (SPEC §10.7): re-verify it with
    /// a configuration's keys, or export it as JSON lines.
    Audit {
        /// Store URL: sqlite://PATH or postgres://USER@HOST/DB.
        #[arg(long, value_name = "URL", global = true)]
        store: Option<String>,
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Check the signature of an envelope or response (from FILE or stdin).
    Verify {
        /// Input file; stdin when absent or `-`.
        file: Option<PathBuf>,
        #[command(flatten)]
        key: keyfile::KeyArgs,
        /// An Ed25519 public key (64 hex digits) to verify with.
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
    },
}

fn init_logging(format: LogFormat, level: tracing::Level) {
    use std::io::IsTerminal;
    use tracing_subscriber::prelude::*;
    // The MCP SDK logs every connection at info, with the upstream's whole
    // `instructions` text: heard from only at debug and below.
    let sdk = if level >= tracing::Level::DEBUG {
        level
    } else {
        level.min(tracing::Level::WARN)
    };
    let targets = tracing_subscriber::filter::Targets::new()
        .with_default(level)
        .with_target("rmcp", sdk);
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_ansi(terminal)
        .with_max_level(level);
    // A terminal shows each line at once; a file or a pipe gets them in
    // batches (one write a request would cost ~5% of a busy server).
    let _ = match (format == LogFormat::Json, terminal) {
        (true, true) => builder.json().finish().with(targets).try_init(),
        (false, true) => builder.finish().with(targets).try_init(),
        (true, false) => {
            let b = builder.with_writer(logsink::Buffered).json();
            b.finish().with(targets).try_init()
        }
        (false, false) => {
            // Without colours the per-request line has a fast path.
            let b = builder
                .with_writer(logsink::Buffered)
                .event_format(logline::Lines::default());
            b.finish().with(targets).try_init()
        }
    };
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo => demo::demo().await,
        Command::Serve(args) => serve::serve(&args).await,
        Command::Migrate { store } => serve::migrate(&store).await,
        Command::Bench(args) => bench::bench(&args).await,
        Command::Call {
            tool,
            args,
            wait,
            raw,
            client,
        } => call::call(&client, &tool, args.as_deref(), wait, raw).await,
        Command::Job {
            action,
            job_id,
            client,
        } => call::job(&client, action, &job_id).await,
        Command::Jobs {
            state,
            limit,
            store: Some(url),
            ..
        } => call::jobs_in_store(&url, state, limit).await,
        Command::Jobs {
            state,
            limit,
            client,
            ..
        } => call::jobs(&client, state, limit).await,
        Command::Tools { json, client } => call::tools(&client, json).await,
        Command::Upstreams { config } => serve::upstreams(&config).await,
        Command::Mcp { max_wait, client } => {
            let bridge = lacre_gateway::bridge::Bridge::new(
                client.client()?,
                lacre_gateway::bridge::BridgeConfig {
                    max_wait: std::time::Duration::from_secs(max_wait),
                },
            );
            bridge.serve_stdio().await?;
            Ok(ExitCode::Ok)
        }
        Command::Keygen {
            alg,
            out,
            client_id,
        } => keygen::keygen(alg, &out, &client_id),
        Command::Canonical { file } => debug::canonical(file.as_ref()),
        Command::Sign { file, key } => debug::sign(file.as_ref(), &key),
        Command::Webhook(command) => webhook::run(&command),
        Command::Webhooks { store, command } => webhooks::run(store.as_deref(), &command).await,
        Command::Audit { store, command } => audit::run(store.as_deref(), &command).await,
        Command::Verify {
            file,
            key,
            public_key,
        } => debug::verify(file.as_ref(), &key, public_key.as_deref()),
    }
}

/// mimalloc instead of the system allocator: a request allocates and frees
/// a few dozen small blocks, and glibc's malloc cost ~8% of a busy server
/// (BENCHMARKS.md §1).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        LogLevel::Info
    } else {
        LogLevel::Warn
    };
    let level = cli.log_level.unwrap_or(default_level).level();
    init_logging(cli.log_format, level);
    let report_panic = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        logsink::flush();
        report_panic(info);
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lacre: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(ExitCode::Rejected as u8);
        }
    };
    let outcome = runtime.block_on(run(cli));
    drop(runtime);
    logsink::flush();
    match outcome {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("lacre: {e:#}");
            let code = match e.downcast_ref::<lacre_client::ClientError>() {
                Some(ce) => output::report_code(ce),
                None => ExitCode::Rejected,
            };
            std::process::ExitCode::from(code as u8)
        }
    }
}
