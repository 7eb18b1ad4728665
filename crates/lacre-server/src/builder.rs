//! Building a [`Server`]: its key, clients, tools, stores and limits.

use crate::access::ToolFilter;
use crate::dispatch::{Inner, Server};
use crate::ids::{IdSource, OsRandomIds};
use crate::jobs::{JobStore, MemoryJobStore};
use crate::limits::{ClientLimits, ClientSlots, Rate, RateLimiter};
use crate::nonce::{MemoryNonceStore, NonceBackend};
use crate::tool::Registry;
use crate::ClientMap;
use lacre_proto::SystemClock;
use lacre_proto::{
    Clock, Keyring, KeyringError, ResponseSigner, SigningKey, VerifyConfig, VerifyingKey,
};
use std::sync::Arc;
use std::time::Duration;

/// Builds a [`Server`].
pub struct ServerBuilder {
    server_id: String,
    key: SigningKey,
    max_skew_ms: u64,
    limits: lacre_proto::ParseLimits,
    keyring: Keyring,
    permissions: ClientMap<ToolFilter>,
    registry: Registry,
    jobs: Arc<dyn JobStore>,
    nonces: Arc<dyn NonceBackend>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    idempotency_ttl_ms: i64,
    rates: ClientMap<Rate>,
    client_limits: ClientMap<ClientLimits>,
    default_client_limits: ClientLimits,
    max_in_flight: usize,
    tool_timeout: Duration,
    webhooks: ClientMap<crate::webhooks::Endpoint>,
}

impl ServerBuilder {
    /// A builder with the built-in tools registered and stores in memory.
    pub(crate) fn new(server_id: String, key: SigningKey) -> ServerBuilder {
        let mut registry = Registry::new();
        crate::builtin::register(&mut registry);
        ServerBuilder {
            server_id,
            key,
            max_skew_ms: lacre_proto::DEFAULT_MAX_SKEW_MS,
            limits: lacre_proto::ParseLimits::default(),
            keyring: Keyring::new(),
            permissions: ClientMap::default(),
            registry,
            jobs: Arc::new(MemoryJobStore::new()),
            nonces: Arc::new(MemoryNonceStore::new()),
            clock: Arc::new(SystemClock),
            ids: Arc::new(OsRandomIds),
            idempotency_ttl_ms: 24 * 3600 * 1000,
            rates: ClientMap::default(),
            client_limits: ClientMap::default(),
            default_client_limits: ClientLimits::default(),
            max_in_flight: 1024,
            tool_timeout: Duration::from_secs(30),
            webhooks: ClientMap::default(),
        }
    }

    /// Tells a client's endpoint when its jobs end (the events its
    /// `endpoint` names), once [`Server::start_deliveries`] runs.
    pub fn webhook(mut self, client_id: &str, endpoint: crate::webhooks::Endpoint) -> Self {
        self.webhooks.insert(client_id.to_owned(), endpoint);
        self
    }

    /// How long an immediate tool may run before the call fails with
    /// `internal` (default 30 s). Long-running tools are not limited.
    pub fn tool_timeout(mut self, t: Duration) -> Self {
        self.tool_timeout = t;
        self
    }

    /// The limits of one client (see [`ClientLimits`]); others get the
    /// defaults.
    pub fn client_limits(mut self, client_id: &str, limits: ClientLimits) -> Self {
        self.client_limits.insert(client_id.to_owned(), limits);
        self
    }

    /// The limits of every client without its own (default
    /// [`ClientLimits::default`]).
    pub fn default_client_limits(mut self, limits: ClientLimits) -> Self {
        self.default_client_limits = limits;
        self
    }

    /// Limits a client to a sustained rate with a burst (token bucket).
    pub fn rate_limit(mut self, client_id: &str, rate: Rate) -> Self {
        self.rates.insert(client_id.to_owned(), rate);
        self
    }

    /// Most requests handled at once; more are refused with `overloaded`
    /// rather than queued without bound (default 1024).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Adds a client with its active keys (1 to 3) and allowed tools.
    pub fn client(
        mut self,
        id: &str,
        keys: impl IntoIterator<Item = VerifyingKey>,
        tools: ToolFilter,
    ) -> Result<Self, KeyringError> {
        self.keyring.insert(id, keys.into_iter().collect())?;
        self.permissions.insert(id.to_owned(), tools);
        Ok(self)
    }

    /// Sets the timestamp window (± ms).
    pub fn max_skew_ms(mut self, ms: u64) -> Self {
        self.max_skew_ms = ms;
        self
    }

    /// Sets JSON parsing limits.
    pub fn parse_limits(mut self, limits: lacre_proto::ParseLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Registers more tools.
    pub fn tools(mut self, f: impl FnOnce(&mut Registry)) -> Self {
        f(&mut self.registry);
        self
    }

    /// Uses another job store (default: in memory).
    pub fn job_store(mut self, store: Arc<dyn JobStore>) -> Self {
        self.jobs = store;
        self
    }

    /// Uses another nonce store (default: in memory).
    pub fn nonce_store(mut self, store: Arc<dyn NonceBackend>) -> Self {
        self.nonces = store;
        self
    }

    /// Uses another clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses another id source (default: OS randomness).
    pub fn ids(mut self, ids: Arc<dyn IdSource>) -> Self {
        self.ids = ids;
        self
    }

    /// How long idempotency records are kept (default 24 h).
    pub fn idempotency_ttl_ms(mut self, ms: i64) -> Self {
        self.idempotency_ttl_ms = ms;
        self
    }

    /// The server.
    pub fn build(self) -> Server {
        let mut verify = VerifyConfig::new(self.server_id.clone());
        verify.max_skew_ms = self.max_skew_ms;
        verify.limits = self.limits;
        let signer = ResponseSigner::new(self.server_id, self.key);
        let catalog = crate::catalog::Live::new(self.registry, &signer, &verify, &self.permissions);
        let client_slots = self
            .permissions
            .keys()
            .map(|id| {
                let limits = self
                    .client_limits
                    .get(id)
                    .copied()
                    .unwrap_or(self.default_client_limits);
                (id.clone(), ClientSlots::new(limits))
            })
            .collect();
        Server {
            inner: Arc::new(Inner {
                verify,
                signer,
                keyring: self.keyring,
                permissions: self.permissions,
                catalog,
                jobs: self.jobs,
                nonces: self.nonces,
                clock: self.clock,
                ids: self.ids,
                idempotency_ttl_ms: self.idempotency_ttl_ms,
                rates: RateLimiter::new(self.rates),
                client_slots,
                in_flight: Arc::new(tokio::sync::Semaphore::new(self.max_in_flight)),
                max_in_flight: self.max_in_flight,
                metrics: crate::metrics::Metrics::default(),
                job_counts: std::sync::Mutex::new(None),
                extra_metrics: std::sync::OnceLock::new(),
                tool_timeout: self.tool_timeout,
                webhooks: self.webhooks,
                audit: std::sync::OnceLock::new(),
            }),
        }
    }
}
