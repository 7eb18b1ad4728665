//! `lacre audit verify|export --store URL`: re-checking the audit log with
//! the keys of a configuration, and writing it out as JSON lines.

use crate::ExitCode;
use anyhow::{anyhow, Context, Result};
use lacre_server::audit::verify::{verify_log, AuditKeys};
use lacre_server::audit::AuditQuery;
use lacre_server::config::Settings;
use std::io::Write;
use std::path::PathBuf;

/// `lacre audit …`.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check every entry: its hash and its link to the one before, the
    /// request's signature with its client's keys, the reply's with the
    /// server's key. Prints the chains (and their last hashes), or the
    /// first break (exit 5).
    Verify {
        /// The server's configuration: its key and its clients' keys
        /// (list retired client keys too, to check old entries).
        #[arg(long, value_name = "FILE", default_value = crate::serve::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Write entries as JSON lines, oldest chain first, each with its
    /// request and reply exactly as stored.
    Export {
        /// Only entries at or after this time: RFC 3339
        /// (`2026-12-01T00:00:00Z`) or milliseconds since the epoch.
        #[arg(long, value_parser = parse_time)]
        since: Option<i64>,
        /// Only this client's entries.
        #[arg(long)]
        client: Option<String>,
    },
}

fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{s:?} is neither RFC 3339 nor milliseconds: {e}"))
}

/// Runs a `lacre audit` command against the store at `store`.
pub async fn run(store: Option<&str>, command: &AuditCommand) -> Result<ExitCode> {
    let Some(url) = store else {
        anyhow::bail!("give the store: lacre audit --store sqlite://lacre.db ...");
    };
    match command {
        AuditCommand::Verify { config } => {
            let settings = Settings::load(config).map_err(|e| anyhow!("{e}"))?;
            let keys = AuditKeys {
                server_id: settings.server_id.clone(),
                server: settings.signing.verifying_key(),
                clients: settings
                    .clients
                    .iter()
                    .map(|c| (c.id.clone(), c.keys.clone()))
                    .collect(),
            };
            let stores = crate::serve::open_store(url).await?;
            match verify_log(&*stores.audit, &keys).await? {
                Ok(report) => {
                    for c in &report.chains {
                        let pruned = if c.first_seq > 1 {
                            " (earlier entries pruned)"
                        } else {
                            ""
                        };
                        println!(
                            "chain {}: entries {} to {}{pruned}, head {}",
                            c.chain, c.first_seq, c.last_seq, c.head
                        );
                    }
                    println!(
                        "verified {} entries in {} chains",
                        report.entries,
                        report.chains.len()
                    );
                    Ok(ExitCode::Ok)
                }
                Err(broken) => {
                    println!("BROKEN: {broken}");
                    Ok(ExitCode::Verification)
                }
            }
        }
        AuditCommand::Export { since, client } => {
            let stores = crate::serve::open_store(url).await?;
            let mut out = std::io::stdout().lock();
            let mut after = None;
            loop {
                let page = stores
                    .audit
                    .entries(&AuditQuery {
                        client_id: client.clone(),
                        since_ms: *since,
                        after: after.clone(),
                        limit: 1000,
                        ..AuditQuery::default()
                    })
                    .await?;
                let Some(last) = page.last() else { break };
                after = Some((last.chain.clone(), last.seq));
                for e in &page {
                    let line = serde_json::json!({
                        "chain": e.chain, "seq": e.seq, "at_ms": e.at_ms,
                        "client_id": e.client_id, "tool": e.tool, "request_id": e.request_id,
                        "request": e.request, "reply": e.reply, "prev": e.prev, "hash": e.hash,
                    });
                    writeln!(out, "{line}").context("cannot write the export")?;
                }
            }
            Ok(ExitCode::Ok)
        }
    }
}
