//! `lacre webhooks list|retry|enable --store URL`: the operator's view of
//! the webhook outbox, read and changed in the store itself (like
//! `lacre jobs --store`), so it works whether or not a server runs.

use crate::ExitCode;
use anyhow::{bail, Result};
use lacre_server::webhooks::{rfc3339, DeliveryState, RetrySelector};
use lacre_server::Listing;

/// `lacre webhooks …`.
#[derive(Debug, clap::Subcommand)]
pub enum WebhooksCommand {
    /// Deliveries, newest first, and the endpoints disabled by a 410.
    List {
        /// Only this client's.
        #[arg(long)]
        client: Option<String>,
        /// Only those in this state: pending, sending, delivered, failed.
        #[arg(long, value_parser = parse_state)]
        state: Option<DeliveryState>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Send deliveries again, from the start of the schedule: one by its
    /// webhook-id, or every failed one (of a client).
    Retry {
        /// The `webhook-id` (`<job_id>.<state>`), failed or pending.
        id: Option<String>,
        /// Every failed delivery of this client.
        #[arg(long, conflicts_with = "id")]
        client: Option<String>,
        /// Every failed delivery.
        #[arg(long, conflicts_with_all = ["id", "client"])]
        all_failed: bool,
    },
    /// Enable a client's endpoint that answered 410 Gone; its waiting
    /// events are then sent.
    Enable {
        /// The client.
        client: String,
    },
}

fn parse_state(s: &str) -> Result<DeliveryState, String> {
    DeliveryState::parse(s)
        .ok_or_else(|| format!("{s:?} is not one of pending, sending, delivered, failed"))
}

/// Runs a `lacre webhooks` command against the store at `store`.
pub async fn run(store: Option<&str>, command: &WebhooksCommand) -> Result<ExitCode> {
    let Some(url) = store else {
        bail!("give the store: lacre webhooks --store sqlite://lacre.db ...");
    };
    let stores = crate::serve::open_store(url).await?;
    let outbox = &stores.jobs;
    let now = crate::debug::now_ms();
    match command {
        WebhooksCommand::List {
            client,
            state,
            limit,
        } => {
            let which = Listing {
                client_id: client.as_deref(),
                state: *state,
                limit: *limit,
            };
            let list = outbox.deliveries(which).await?;
            println!(
                "{:<48} {:<16} {:<14} {:<10} {:>8} {:>6}  {:<24}  ERROR",
                "WEBHOOK-ID", "CLIENT", "EVENT", "STATE", "ATTEMPTS", "LAST", "NEXT/DELIVERED"
            );
            for d in list {
                let last = d.last_status.map_or("-".to_owned(), |s| s.to_string());
                let when = match (d.state, d.delivered_ms) {
                    (DeliveryState::Delivered, Some(at)) => rfc3339(at),
                    (DeliveryState::Pending | DeliveryState::Sending, _) => {
                        rfc3339(d.next_attempt_ms)
                    }
                    _ => "-".to_owned(),
                };
                println!(
                    "{:<48} {:<16} {:<14} {:<10} {:>8} {:>6}  {:<24}  {}",
                    d.id,
                    d.client_id,
                    d.event.as_str(),
                    d.state.as_str(),
                    d.attempts,
                    last,
                    when,
                    d.last_error.unwrap_or_default()
                );
            }
            for e in outbox.disabled_endpoints().await? {
                println!(
                    "endpoint of {:?} disabled since {}: {} (lacre webhooks enable {})",
                    e.client_id,
                    rfc3339(e.disabled_ms),
                    e.reason,
                    e.client_id
                );
            }
            Ok(ExitCode::Ok)
        }
        WebhooksCommand::Retry {
            id,
            client,
            all_failed,
        } => {
            let which = match (id, client, all_failed) {
                (Some(id), None, false) => RetrySelector::Id(id),
                (None, Some(c), false) => RetrySelector::FailedOf(c),
                (None, None, true) => RetrySelector::AllFailed,
                _ => {
                    eprintln!("lacre: give a webhook-id, --client CLIENT or --all-failed");
                    return Ok(ExitCode::Usage);
                }
            };
            let n = outbox.retry_deliveries(which, now).await?;
            println!("{n} deliveries will be sent again");
            Ok(if n == 0 && id.is_some() {
                ExitCode::Rejected
            } else {
                ExitCode::Ok
            })
        }
        WebhooksCommand::Enable { client } => {
            if outbox.enable_endpoint(client).await? {
                println!("endpoint of {client:?} enabled: its waiting events will be sent");
                Ok(ExitCode::Ok)
            } else {
                println!("endpoint of {client:?} was not disabled");
                Ok(ExitCode::Rejected)
            }
        }
    }
}
