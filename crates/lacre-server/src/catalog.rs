//! The tools a running server offers, and what `server_identity` tells
//! each client about them: one immutable snapshot, swapped whole when the
//! tools change (an MCP upstream that comes up late or announces new
//! tools). Requests and workers read the snapshot of the moment without a
//! lock (`arc-swap`); a change builds a new one aside and publishes it.

use crate::access::ToolFilter;
use crate::tool::{Registry, ToolKind};
use crate::ClientMap;
use arc_swap::ArcSwap;
use lacre_proto::builtin::{Capabilities, ServerIdentity, ToolInfo};
use lacre_proto::{ResponseSigner, VerifyConfig};
use std::sync::{Arc, Mutex};

/// One snapshot: the registry and each client's identity document.
pub struct Catalog {
    /// The tools.
    pub registry: Arc<Registry>,
    /// `server_identity`'s answer, per client (built once per snapshot).
    pub(crate) identities: ClientMap<Arc<ServerIdentity>>,
}

impl Catalog {
    /// A snapshot of `registry` alone (no client identities): for worker
    /// pools run without a server.
    pub fn fixed(registry: Arc<Registry>) -> Arc<ArcSwap<Catalog>> {
        Arc::new(ArcSwap::from_pointee(Catalog {
            registry,
            identities: ClientMap::default(),
        }))
    }
}

/// The live catalog and what rebuilding it needs.
pub(crate) struct Live {
    pub(crate) current: Arc<ArcSwap<Catalog>>,
    /// Serialises changes (two upstreams changing at once lose nothing).
    change: Mutex<()>,
}

impl Live {
    pub(crate) fn new(
        registry: Registry,
        signer: &ResponseSigner,
        verify: &VerifyConfig,
        permissions: &ClientMap<ToolFilter>,
    ) -> Live {
        let catalog = build(registry, signer, verify, permissions);
        Live {
            current: Arc::new(ArcSwap::from_pointee(catalog)),
            change: Mutex::new(()),
        }
    }

    /// The snapshot of the moment.
    pub(crate) fn load(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    /// Applies `f` to a copy of the registry and publishes the result.
    pub(crate) fn update(
        &self,
        f: impl FnOnce(&mut Registry),
        signer: &ResponseSigner,
        verify: &VerifyConfig,
        permissions: &ClientMap<ToolFilter>,
    ) {
        let _one_at_a_time = self.change.lock().unwrap_or_else(|p| p.into_inner());
        let mut registry = (*self.current.load().registry).clone();
        f(&mut registry);
        self.current
            .store(Arc::new(build(registry, signer, verify, permissions)));
    }
}

fn build(
    registry: Registry,
    signer: &ResponseSigner,
    verify: &VerifyConfig,
    permissions: &ClientMap<ToolFilter>,
) -> Catalog {
    // What `server_identity` tells a client changes only with the tools:
    // build it once per client and snapshot, not once per call.
    let identities = permissions
        .iter()
        .map(|(id, filter)| {
            (
                id.clone(),
                Arc::new(identity(signer, verify, &registry, filter)),
            )
        })
        .collect();
    Catalog {
        registry: Arc::new(registry),
        identities,
    }
}

/// The server as a client with this allow-list sees it.
fn identity(
    signer: &ResponseSigner,
    verify: &VerifyConfig,
    registry: &Registry,
    filter: &ToolFilter,
) -> ServerIdentity {
    let tools = registry
        .iter()
        .filter(|t| t.is_system() || filter.allows(t.name()))
        .map(|t| ToolInfo {
            name: t.name().to_owned(),
            description: t.description().to_owned(),
            args_schema: t.schema().clone(),
            long_running: t.kind() == ToolKind::LongRunning,
        })
        .collect();
    ServerIdentity {
        server_id: signer.server_id().to_owned(),
        fingerprint: signer.key().fingerprint(),
        capabilities: Capabilities {
            version: Some(lacre_proto::VERSION.to_owned()),
            algorithms: vec!["hmac-sha256".to_owned(), "ed25519".to_owned()],
            server_algorithm: Some(signer.key().algorithm().as_str().to_owned()),
            max_skew_ms: Some(i64::try_from(verify.max_skew_ms).unwrap_or(i64::MAX)),
            long_poll: Some(true),
            tools,
        },
    }
}
