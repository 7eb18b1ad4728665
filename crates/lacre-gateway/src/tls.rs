//! TLS for Streamable HTTP upstreams: rmcp's reqwest client is built with
//! rustls and no crypto provider of its own (`reqwest-tls-no-provider`),
//! so the process gets ring's, which the rest of lacre's TLS (reqwest 0.12
//! in lacre-client) already uses; no second crypto library is built.

/// Installs ring as the process's rustls provider, once; a provider
/// installed earlier (by the embedding program) is kept.
pub(crate) fn install_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
