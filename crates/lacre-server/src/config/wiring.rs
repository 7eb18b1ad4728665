//! Wiring checked settings into a running server: the builder calls and
//! the worker pool's timing.

use super::Settings;
use crate::dispatch::Server;
use crate::jobs::WorkerConfig;
use crate::store::Stores;
use crate::tool::Registry;

impl Settings {
    /// A server with these settings, on these stores, with the built-in tools.
    pub fn server(&self, stores: &Stores) -> Result<Server, lacre_proto::KeyringError> {
        self.server_with(stores, |_| {})
    }

    /// As [`Settings::server`], registering more tools.
    pub fn server_with(
        &self,
        stores: &Stores,
        tools: impl FnOnce(&mut Registry),
    ) -> Result<Server, lacre_proto::KeyringError> {
        let mut b = Server::builder(self.server_id.clone(), self.signing.clone())
            .tools(tools)
            .parse_limits(self.parse_limits)
            .tool_timeout(self.tool_timeout)
            .max_skew_ms(self.max_skew_ms)
            .max_in_flight(self.max_in_flight)
            .job_store(stores.jobs.clone())
            .nonce_store(stores.nonces.clone());
        for c in &self.clients {
            b = b
                .client(&c.id, c.keys.clone(), c.tools.clone())?
                .client_limits(&c.id, c.limits);
            if let Some(rate) = c.rate {
                b = b.rate_limit(&c.id, rate);
            }
            if let Some(endpoint) = &c.webhook {
                b = b.webhook(&c.id, endpoint.clone());
            }
        }
        Ok(b.build())
    }

    /// The worker settings these settings imply: heartbeats at a third of
    /// the lease, lease rescue at half of it (at most every 5 s).
    pub fn worker_config(&self) -> WorkerConfig {
        let lease = self.lease_ms;
        WorkerConfig {
            concurrency: self.workers,
            lease_ms: i64::try_from(lease).unwrap_or(30_000),
            heartbeat_ms: (lease / 3).max(10),
            maintenance_interval_ms: (lease / 2).clamp(10, 5_000),
            replica_skew_ms: i64::try_from(self.replica_skew_ms).unwrap_or(i64::MAX),
            ..WorkerConfig::default()
        }
    }
}
