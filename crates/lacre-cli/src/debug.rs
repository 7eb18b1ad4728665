//! `lacre canonical`, `lacre sign`, `lacre verify`: the tools one needs
//! when a signature does not match.

use crate::keyfile::KeyArgs;
use crate::ExitCode;
use anyhow::{Context, Result};
use lacre_proto::{json, Envelope, Map, ParseLimits, Response, Value};
use std::io::{Read, Write};
use std::path::PathBuf;

/// Reads FILE, or stdin when it is absent or `-`.
pub fn read_input(file: Option<&PathBuf>) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    match file {
        Some(p) if p.as_os_str() != "-" => {
            buf = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read stdin")?;
        }
    }
    Ok(buf)
}

/// `lacre canonical [FILE]`: the canonical bytes, nothing appended.
pub fn canonical(file: Option<&PathBuf>) -> Result<ExitCode> {
    let input = read_input(file)?;
    match json::parse(&input, ParseLimits::default()) {
        Ok(value) => {
            let mut out = std::io::stdout().lock();
            out.write_all(&json::canonical(&value))?;
            out.flush()?;
            Ok(ExitCode::Ok)
        }
        Err(e) => {
            eprintln!("lacre: input rejected: {e}");
            Ok(ExitCode::Rejected)
        }
    }
}

fn random_uuid() -> Result<String> {
    Ok(lacre_proto::uuid_v4(lacre_server::keys::random_bytes()?))
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `lacre sign [FILE]`: fills in `v`, `request_id`, `ts_ms`, `nonce` (and
/// `args`) when missing, as the seed's client does, and prints the envelope signed.
pub fn sign(file: Option<&PathBuf>, key: &KeyArgs) -> Result<ExitCode> {
    let key = key.signing_key()?;
    let input = read_input(file)?;
    let mut map = match json::parse(&input, ParseLimits::default()) {
        Ok(Value::Object(m)) => m,
        Ok(other) => {
            eprintln!(
                "lacre: an envelope must be a json object, got {}",
                other.type_name()
            );
            return Ok(ExitCode::Rejected);
        }
        Err(e) => {
            eprintln!("lacre: input rejected: {e}");
            return Ok(ExitCode::Rejected);
        }
    };
    fill_defaults(&mut map)?;
    let mut env = match Envelope::from_value(Value::Object(map)) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("lacre: not a valid envelope: {e}");
            return Ok(ExitCode::Rejected);
        }
    };
    env.sign(&key);
    let mut out = std::io::stdout().lock();
    out.write_all(&env.to_json())?;
    out.write_all(b"\n")?;
    Ok(ExitCode::Ok)
}

fn fill_defaults(map: &mut Map) -> Result<()> {
    map.entry("v".into())
        .or_insert_with(|| Value::from(lacre_proto::VERSION));
    if !map.contains_key("request_id") {
        map.insert("request_id".into(), Value::from(random_uuid()?));
    }
    if !map.contains_key("nonce") {
        map.insert("nonce".into(), Value::from(random_uuid()?));
    }
    map.entry("ts_ms".into())
        .or_insert_with(|| Value::from(now_ms()));
    map.entry("args".into())
        .or_insert_with(|| Value::Object(Map::new()));
    map.insert("signature".into(), Value::from(""));
    Ok(())
}

/// `lacre verify [FILE]`: checks the signature of an envelope or a response.
pub fn verify(file: Option<&PathBuf>, key: &KeyArgs, public_key: Option<&str>) -> Result<ExitCode> {
    let vk = key.verifying_key(public_key)?;
    let input = read_input(file)?;
    let value = match json::parse(&input, ParseLimits::default()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("invalid: input rejected: {e}");
            return Ok(ExitCode::Rejected);
        }
    };
    let is_response = value.as_object().is_some_and(|m| m.contains_key("status"));
    let parsed = if is_response {
        Response::from_value(value).map(|r| (r.signing_bytes(), r.signature))
    } else {
        Envelope::from_value(value).map(|e| (e.signing_bytes(), e.signature))
    };
    let (signed, signature) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("invalid: {e}");
            return Ok(ExitCode::Rejected);
        }
    };
    match vk.verify_hex(&signed, &signature) {
        Ok(()) => {
            println!("valid");
            Ok(ExitCode::Ok)
        }
        Err(e) => {
            println!("invalid: {e}");
            eprintln!("signed bytes were: {}", String::from_utf8_lossy(&signed));
            Ok(ExitCode::Verification)
        }
    }
}
