//! `lacre webhook sign` and `lacre webhook verify`: the Standard Webhooks
//! signatures of SPEC §9.5, for debugging a sender or a receiver.

use crate::debug::read_input;
use crate::ExitCode;
use anyhow::{Context, Result};
use lacre_proto::webhook::{self, WebhookHeaders, WebhookKey};
use std::io::Write;
use std::path::PathBuf;

/// `lacre webhook …`.
#[derive(Debug, clap::Subcommand)]
pub enum WebhookCommand {
    /// Sign a body (FILE or stdin); print the three headers to send with it.
    Sign {
        /// The body; stdin when absent or `-`.
        file: Option<PathBuf>,
        /// `webhook-id`: the same for every attempt of one notification.
        #[arg(long)]
        id: String,
        /// `webhook-timestamp`, seconds since the epoch (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
        /// A `whsec_` secret: adds a `v1` (HMAC-SHA256) signature.
        #[arg(long, value_name = "WHSEC")]
        secret: Vec<String>,
        /// A file with an Ed25519 private key (64 hex digits): adds a `v1a`
        /// signature.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// Print a new random `whsec_` secret (24 bytes) for a client's
    /// `webhook_secret`.
    Secret,
    /// Check a received request (FILE or stdin: headers, a blank line, the
    /// body; a request line first is skipped).
    Verify {
        /// The request; stdin when absent or `-`.
        file: Option<PathBuf>,
        /// A `whsec_` secret that may have signed it (`v1`).
        #[arg(long, value_name = "WHSEC")]
        secret: Vec<String>,
        /// A `whpk_` public key that may have signed it (`v1a`).
        #[arg(long, value_name = "WHPK")]
        public_key: Vec<String>,
        /// Largest distance of `webhook-timestamp` from now, in seconds.
        #[arg(long, default_value_t = webhook::DEFAULT_TOLERANCE_S)]
        tolerance: i64,
    },
}

fn now_s() -> i64 {
    crate::debug::now_ms() / 1000
}

/// Runs a `lacre webhook` command.
pub fn run(command: &WebhookCommand) -> Result<ExitCode> {
    match command {
        WebhookCommand::Sign {
            file,
            id,
            timestamp,
            secret,
            key_file,
        } => sign(
            file.as_ref(),
            id,
            timestamp.unwrap_or_else(now_s),
            secret,
            key_file.as_ref(),
        ),
        WebhookCommand::Verify {
            file,
            secret,
            public_key,
            tolerance,
        } => verify(file.as_ref(), secret, public_key, *tolerance),
        WebhookCommand::Secret => {
            let mut raw = [0u8; 24];
            getrandom::getrandom(&mut raw).context("no randomness available")?;
            println!("{}", webhook::secret_text(&raw));
            Ok(ExitCode::Ok)
        }
    }
}

fn sign(
    file: Option<&PathBuf>,
    id: &str,
    timestamp: i64,
    secrets: &[String],
    key_file: Option<&PathBuf>,
) -> Result<ExitCode> {
    let body = read_input(file)?;
    let mut signatures = Vec::new();
    for text in secrets {
        let WebhookKey::Secret(secret) = WebhookKey::parse(text)? else {
            anyhow::bail!("--secret takes a whsec_ secret; a whpk_ key only verifies");
        };
        signatures.extend(webhook::sign_v1(&secret, id, timestamp, &body));
    }
    if let Some(path) = key_file {
        let key: lacre_proto::SigningKey = lacre_server::keys::load_key(
            lacre_proto::Algorithm::Ed25519,
            &lacre_server::keys::KeySource::File(path.clone()),
            std::path::Path::new("."),
        )
        .with_context(|| format!("cannot load the Ed25519 key in {}", path.display()))?;
        signatures.extend(webhook::sign_v1a(&key, id, timestamp, &body));
    }
    if signatures.is_empty() {
        eprintln!("lacre: give --secret or --key-file");
        return Ok(ExitCode::Usage);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "webhook-id: {id}")?;
    writeln!(out, "webhook-timestamp: {timestamp}")?;
    writeln!(out, "webhook-signature: {}", signatures.join(" "))?;
    Ok(ExitCode::Ok)
}

/// The headers (lowercased names) and the body of a request as text.
fn split_request(raw: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let split = |sep: &[u8]| {
        let at = find(raw, sep)?;
        Some((raw.get(..at)?, raw.get(at + sep.len()..)?))
    };
    // The first empty line ends the headers, whichever line ends they use
    // (the body may hold either).
    let crlf = find(raw, b"\r\n\r\n");
    let lf = find(raw, b"\n\n");
    let sep: &[u8] = match (crlf, lf) {
        (Some(c), Some(l)) if l < c => b"\n\n",
        (Some(_), _) => b"\r\n\r\n",
        _ => b"\n\n",
    };
    let (head, body): (&[u8], &[u8]) = split(sep).unwrap_or((raw, &[]));
    let headers = String::from_utf8_lossy(head)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            // A request line ("POST /hook HTTP/1.1") has no header name.
            (!name.contains(' ') && !name.is_empty())
                .then(|| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect();
    (headers, body)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn verify(
    file: Option<&PathBuf>,
    secrets: &[String],
    public_keys: &[String],
    tolerance: i64,
) -> Result<ExitCode> {
    let mut keys = Vec::new();
    for text in secrets.iter().chain(public_keys) {
        keys.push(WebhookKey::parse(text)?);
    }
    if keys.is_empty() {
        eprintln!("lacre: give --secret or --public-key");
        return Ok(ExitCode::Usage);
    }
    let raw = read_input(file)?;
    let (headers, body) = split_request(&raw);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let received = WebhookHeaders {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
    };
    match webhook::verify(received, body, &keys, now_s(), tolerance) {
        Ok(()) => {
            println!("valid");
            Ok(ExitCode::Ok)
        }
        Err(e) => {
            println!("invalid: {e}");
            Ok(ExitCode::Verification)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_split_with_or_without_a_request_line_and_crlf() {
        let (h, body) =
            split_request(b"POST /hook HTTP/1.1\r\nWebhook-Id: a\r\nX: b:c\r\n\r\n{\"x\":\r\n1}");
        assert_eq!(
            h,
            vec![
                ("webhook-id".into(), "a".into()),
                ("x".into(), "b:c".into())
            ]
        );
        assert_eq!(body, b"{\"x\":\r\n1}");
        let (h, body) = split_request(b"webhook-id: a\n\nbody\r\n\r\nmore");
        assert_eq!(h, vec![("webhook-id".into(), "a".into())]);
        assert_eq!(body, b"body\r\n\r\nmore");
    }
}
