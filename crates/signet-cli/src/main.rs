//! The `signet` command line.

mod debug;
mod keyfile;

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
    /// Usage error (bad flags; clap uses 2 as well).
    Usage = 2,
    /// The server could not be reached or the connection failed.
    Transport = 3,
    /// The server answered with a (verified) error.
    Server = 4,
    /// A signature or response check failed.
    Verification = 5,
}

#[derive(Debug, Parser)]
#[command(
    name = "signet",
    version,
    about = "Stateless, signed, asynchronous tool calls"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Canonical { file } => debug::canonical(file.as_ref()),
        Command::Sign { file, key } => debug::sign(file.as_ref(), &key),
        Command::Verify {
            file,
            key,
            public_key,
        } => debug::verify(file.as_ref(), &key, public_key.as_deref()),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("signet: {e:#}");
            std::process::ExitCode::from(ExitCode::Rejected as u8)
        }
    }
}
