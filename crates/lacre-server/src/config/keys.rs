//! Key resolution: a `[signing]` table or a client's key description
//! becomes a [`KeySource`] of a known algorithm, and then a key, through
//! the one loader in [`crate::keys`].

use super::file::KeySpec;
use super::ConfigError;
use super::Ctx;
use crate::keys::{load_key, KeyLoadError, KeySource, LoadKey};
use lacre_proto::Algorithm;

/// Whether the key is the server's own (private) or a client's (verifying).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The server's signing key.
    Server,
    /// A client's key, as the server verifies it.
    Client,
}

fn algorithm(ctx: &Ctx, line: Option<usize>, spec: &KeySpec) -> Result<Algorithm, ConfigError> {
    spec.alg
        .as_deref()
        .unwrap_or("hmac-sha256")
        .parse()
        .map_err(|e: lacre_proto::KeyError| {
            ctx.err(
                line,
                e.to_string(),
                "use alg = \"hmac-sha256\" or alg = \"ed25519\"",
            )
        })
}

/// The one source a description names for `alg` in `role`.
fn source(
    ctx: &Ctx,
    line: Option<usize>,
    spec: &KeySpec,
    alg: Algorithm,
    role: Role,
) -> Result<KeySource, ConfigError> {
    let (candidates, need, fix): ([Option<KeySource>; 4], &str, &str) = match (alg, role) {
        (Algorithm::HmacSha256, _) => (
            [
                spec.secret.clone().map(KeySource::Inline),
                spec.secret_hex.clone().map(KeySource::Hex),
                spec.secret_file.clone().map(KeySource::File),
                spec.secret_env.clone().map(KeySource::Env),
            ],
            "an hmac-sha256 key needs exactly one of secret, secret_hex, secret_file, secret_env",
            "keep one key source, e.g. secret_file = \"server.key\"",
        ),
        (Algorithm::Ed25519, Role::Server) => (
            [
                spec.private_key_hex.clone().map(KeySource::Hex),
                spec.private_key_file.clone().map(KeySource::File),
                None,
                None,
            ],
            "an ed25519 signing key needs exactly one of private_key_hex, private_key_file",
            "generate one with `lacre keygen --alg ed25519`",
        ),
        (Algorithm::Ed25519, Role::Client) => (
            [
                spec.public_key_hex.clone().map(KeySource::Hex),
                None,
                None,
                None,
            ],
            "an ed25519 client key needs public_key_hex",
            "add public_key_hex = \"<64 hex digits>\"",
        ),
    };
    let mut given: Vec<KeySource> = candidates.into_iter().flatten().collect();
    match given.len() {
        1 => Ok(given.remove(0)),
        n => Err(ctx.err(line, format!("{need} (found {n})"), fix)),
    }
}

fn load_error(ctx: &Ctx, line: Option<usize>, e: &KeyLoadError) -> ConfigError {
    let fix = match e {
        KeyLoadError::Read { .. } => {
            "check the path (relative paths are relative to the config file)".to_owned()
        }
        KeyLoadError::EnvMissing(var) => format!("export {var}=... before starting"),
        KeyLoadError::Key {
            source: lacre_proto::KeyError::EmptySecret,
            ..
        } => "use a secret of at least 32 random bytes".to_owned(),
        _ => "write secrets as text or after \"hex:\", ed25519 keys as 64 hex digits".to_owned(),
    };
    ctx.err(line, crate::keys::describe(e), fix)
}

/// The server's signing key (`K` = [`lacre_proto::SigningKey`]) or a
/// client's verifying key (`K` = [`lacre_proto::VerifyingKey`]).
pub(crate) fn key<K: LoadKey>(
    ctx: &Ctx,
    line: Option<usize>,
    spec: &KeySpec,
) -> Result<K, ConfigError> {
    let alg = algorithm(ctx, line, spec)?;
    let role = if K::SIGNS { Role::Server } else { Role::Client };
    let src = source(ctx, line, spec, alg, role)?;
    load_key(alg, &src, &ctx.base_dir()).map_err(|e| load_error(ctx, line, &e))
}
