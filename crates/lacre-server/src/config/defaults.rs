//! The defaults of every setting, written once, and the files `lacre
//! serve` writes on first start.

use crate::keys::{random_bytes, KeyLoadError};
use lacre_proto::{to_hex, SigningKey};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8790";
/// The store `lacre serve` uses when the configuration names none.
pub const DEFAULT_STORE: &str = "sqlite://lacre.db";
/// Jobs run at once.
pub const DEFAULT_WORKERS: usize = 16;
/// Requests handled at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// A worker's claim on a job without a heartbeat, ms.
pub const DEFAULT_LEASE_MS: u64 = 30_000;
/// Allowance between replicas' clocks, ms.
pub const DEFAULT_REPLICA_SKEW_MS: u64 = crate::jobs::DEFAULT_REPLICA_SKEW_MS.unsigned_abs();
/// Time to receive the request headers, ms.
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
/// Time to receive the body, ms.
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 10_000;
/// Time to answer once the body is read, ms (beyond the longest long poll).
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 60_000;
/// Time an immediate tool may run, ms.
pub const DEFAULT_TOOL_TIMEOUT_MS: u64 = 30_000;
/// Most open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// What `lacre serve` writes when there is no configuration: the server
/// config and a matching client profile.
#[derive(Debug, Clone)]
pub struct DefaultFiles {
    /// `lacre.toml`.
    pub server_toml: String,
    /// `lacre-client.toml`, the profile for `lacre call --profile`.
    pub client_toml: String,
    /// The client id.
    pub client_id: String,
    /// The server id.
    pub server_id: String,
}

/// Generates a default configuration with fresh keys: an Ed25519 server key
/// (clients verify replies with its public key and cannot forge them) and
/// one HMAC client with a 32-byte random secret.
pub fn generate_default(listen: &str) -> Result<DefaultFiles, KeyLoadError> {
    let server = crate::keys::generate(lacre_proto::Algorithm::Ed25519)?;
    let client = crate::keys::generate(lacre_proto::Algorithm::HmacSha256)?;
    let suffix: [u8; 4] = random_bytes()?;
    let server_id = format!("lacre-{}", to_hex(&suffix));
    let client_id = "client-001".to_owned();
    let public_hex = public_hex(&server.key);
    let server_toml = format!(
        "# lacre server configuration, written by `lacre serve` with fresh random keys.\n\
         # Keep this file private: it holds the server's private key and the clients' secrets.\n\
         server_id = \"{server_id}\"\n\
         listen = \"{listen}\"\n\
         max_skew_ms = {skew}\n\
         store = \"{DEFAULT_STORE}\"\n\
         \n\
         [signing]\n\
         alg = \"ed25519\"\n\
         private_key_hex = \"{}\"\n\
         \n\
         [[clients]]\n\
         id = \"{client_id}\"\n\
         alg = \"hmac-sha256\"\n\
         secret_hex = \"{}\"\n\
         tools = [\"*\"]\n",
        server.hex,
        client.hex,
        skew = lacre_proto::DEFAULT_MAX_SKEW_MS,
    );
    let client_toml = format!(
        "# lacre client profile for `lacre call --profile lacre-client.toml`, written by `lacre serve`.\n\
         # Keep this file private: it holds the client's secret.\n\
         url = \"http://{listen}/mcp\"\n\
         client_id = \"{client_id}\"\n\
         server_id = \"{server_id}\"\n\
         secret_hex = \"{}\"\n\
         server_public_key = \"{public_hex}\"\n",
        client.hex
    );
    Ok(DefaultFiles {
        server_toml,
        client_toml,
        client_id,
        server_id,
    })
}

fn public_hex(key: &SigningKey) -> String {
    key.verifying_key()
        .ed25519_public_bytes()
        .map(|b| to_hex(&b))
        .unwrap_or_default()
}
