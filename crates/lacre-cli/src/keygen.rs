//! `lacre keygen`: a fresh key, written to a private file.

use crate::ExitCode;
use anyhow::{bail, Context, Result};
use lacre_proto::{to_hex, Algorithm};
use std::io::Write;
use std::path::Path;

/// Writes `contents` to a new file readable only by its owner.
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

/// `lacre keygen --alg ALG [--out FILE] [--client-id ID]`.
pub fn keygen(alg: Algorithm, out: &Path, client_id: &str) -> Result<ExitCode> {
    let generated = lacre_server::keys::generate(alg)?;
    write_private(out, &generated.file_text)?;
    let key = generated.key;
    match alg {
        Algorithm::HmacSha256 => {
            println!("wrote a 32-byte hmac-sha256 secret to {}", out.display());
            println!("fingerprint: {}", key.fingerprint());
            println!("\n# server config (lacre.toml): the server must hold the same secret");
            println!("[[clients]]\nid = \"{client_id}\"\nalg = \"hmac-sha256\"\nsecret_file = \"{}\"\ntools = [\"*\"]", out.display());
        }
        Algorithm::Ed25519 => {
            let Some(public) = key.verifying_key().ed25519_public_bytes() else {
                bail!("internal: an ed25519 key without a public key");
            };
            println!("wrote an ed25519 private key to {}", out.display());
            println!("public key: {}", to_hex(&public));
            println!("fingerprint: {}", key.fingerprint());
            println!(
                "fingerprint_sha256 (pin it with --server-fingerprint): {}",
                key.verifying_key().fingerprint_sha256()
            );
            println!("\n# as a client key, in the server's lacre.toml:");
            println!("[[clients]]\nid = \"{client_id}\"\nalg = \"ed25519\"\npublic_key_hex = \"{}\"\ntools = [\"*\"]", to_hex(&public));
            println!("\n# or as the server's own key:");
            println!(
                "[signing]\nalg = \"ed25519\"\nprivate_key_file = \"{}\"",
                out.display()
            );
        }
    }
    Ok(ExitCode::Ok)
}
