//! Golden vectors computed by CPython (`python3 testdata/gen_vectors.py`):
//! canonical JSON, parser rejections and signatures must match the seed's
//! Python implementation byte for byte.

use lacre_proto::{
    canonical, from_hex, parse, Envelope, ParseLimits, Response, SigningKey, Value, VerifyingKey,
};
use serde::Deserialize;

/// The path of a file in `testdata/vectors`.
macro_rules! vectors {
    ($file:literal) => {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/vectors/",
            $file
        )
    };
}

const CANONICAL: &str = vectors!("canonical.json");
const REJECTS: &str = vectors!("rejects.json");
const SIGNATURES: &str = vectors!("signatures.json");
const ED25519: &str = vectors!("ed25519.json");

fn load<T: serde::de::DeserializeOwned>(path: &str) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("cannot read {path}: {e} (regenerate with `python3 testdata/gen_vectors.py`)")
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not a vector file: {e}"))
}

/// Shortens long values (4300-digit integers, 10000-deep nesting) in reports.
fn short(s: &str) -> String {
    const MAX: usize = 160;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}... ({} bytes)", s.len())
    }
}

/// Both texts, cut to a window around their first difference when long.
fn diff(expected: &str, got: &str) -> String {
    const CONTEXT: usize = 60;
    let (e, g): (Vec<char>, Vec<char>) = (expected.chars().collect(), got.chars().collect());
    if e.len().max(g.len()) <= 2 * CONTEXT {
        return format!("expected {expected}\n    got      {got}");
    }
    let at = e.iter().zip(&g).take_while(|(a, b)| a == b).count();
    let window = |v: &[char]| -> String {
        let start = at.saturating_sub(CONTEXT);
        let end = (at + CONTEXT).min(v.len());
        let text: String = v.get(start..end).unwrap_or_default().iter().collect();
        format!("...{text}... ({} chars)", v.len())
    };
    format!(
        "first difference at char {at}:\n    expected {}\n    got      {}",
        window(&e),
        window(&g)
    )
}

/// Checks each of the `count` cases of the `what` vectors in the file at
/// `path`, which holds only cases: `check` says what is wrong with a case,
/// if anything. A vanished case fails too.
fn check_each<T: serde::de::DeserializeOwned>(
    what: &str,
    path: &str,
    count: usize,
    check: impl Fn(&T) -> Option<String>,
) {
    let file: Cases<T> = load(path);
    assert_eq!(
        file.cases.len(),
        count,
        "the {what} vectors changed in number"
    );
    let failures: Vec<String> = file.cases.iter().filter_map(check).collect();
    report(what, count, &failures);
}

fn report(what: &str, total: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of {total} {what} vectors failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A vector file that holds only its cases.
#[derive(Deserialize)]
struct Cases<T> {
    cases: Vec<T>,
}

#[derive(Deserialize)]
struct CanonicalCase {
    name: String,
    input: String,
    canonical: String,
}

#[test]
fn canonical_matches_cpython() {
    // The counts SPEC §12.1 publishes: a vanished case fails here.
    check_each(
        "canonical",
        CANONICAL,
        651,
        |case: &CanonicalCase| match parse(case.input.as_bytes(), ParseLimits::default()) {
            Ok(value) => {
                let got = canonical(&value);
                (got != case.canonical.as_bytes()).then(|| {
                    let got = String::from_utf8_lossy(&got);
                    format!("{}: {}", case.name, diff(&case.canonical, &got))
                })
            }
            Err(e) => Some(format!(
                "{}: rejected ({e}); input {}",
                case.name,
                short(&case.input)
            )),
        },
    );
}

#[derive(Deserialize)]
struct RejectCase {
    name: String,
    input_hex: String,
    kind: String,
    cpython: String,
}

#[test]
fn rejects_match_expected_kind() {
    check_each("reject", REJECTS, 111, |case: &RejectCase| {
        assert!(
            case.cpython == "accepts" || case.cpython == "rejects",
            "{}: bad cpython field {:?}",
            case.name,
            case.cpython
        );
        let input = from_hex(&case.input_hex)
            .unwrap_or_else(|e| panic!("{}: bad input_hex: {e}", case.name));
        match parse(&input, ParseLimits::default()) {
            Ok(value) => Some(format!(
                "{}: accepted as {}, expected {}",
                case.name,
                short(&String::from_utf8_lossy(&canonical(&value))),
                case.kind
            )),
            Err(e) => {
                let debug = format!("{:?}", e.kind);
                let variant = debug.split('(').next().unwrap_or_default();
                (variant != case.kind).then(|| {
                    format!(
                        "{}: expected {}, got {} ({e}); input {}",
                        case.name,
                        case.kind,
                        short(&debug),
                        short(&String::from_utf8_lossy(&input))
                    )
                })
            }
        }
    });
}

#[derive(Deserialize)]
struct SignaturesFile {
    keys: Keys,
    cases: Vec<SignatureCase>,
}

#[derive(Deserialize)]
struct Keys {
    hmac_client_secret: String,
    hmac_server_secret: String,
    ed25519_seed_hex: String,
    ed25519_public_hex: String,
}

#[derive(Deserialize)]
struct SignatureCase {
    name: String,
    kind: String,
    message: String,
    signed_bytes: String,
    hmac_key: String,
    hmac_sha256: String,
    ed25519: String,
}

/// Parses the wire message as the server would, with an empty signature
/// inserted, and returns the bytes it signs.
fn signing_bytes(case: &SignatureCase) -> Result<Vec<u8>, String> {
    let value = parse(case.message.as_bytes(), ParseLimits::default())
        .map_err(|e| format!("message rejected: {e}"))?;
    let Value::Object(mut map) = value else {
        return Err("message is not an object".into());
    };
    if map
        .insert("signature".into(), Value::String(String::new()))
        .is_some()
    {
        return Err("message already has a signature field".into());
    }
    match case.kind.as_str() {
        "envelope" => Envelope::from_value(Value::Object(map))
            .map(|e| e.signing_bytes())
            .map_err(|e| format!("envelope rejected: {e}")),
        "response" => Response::from_value(Value::Object(map))
            .map(|r| r.signing_bytes())
            .map_err(|e| format!("response rejected: {e}")),
        other => Err(format!("unknown kind {other:?}")),
    }
}

#[test]
fn signatures_match_cpython() {
    let file: SignaturesFile = load(SIGNATURES);
    assert_eq!(file.cases.len(), 60, "signatures.json changed size");
    let client = SigningKey::hmac(file.keys.hmac_client_secret.as_bytes()).unwrap();
    let server = SigningKey::hmac(file.keys.hmac_server_secret.as_bytes()).unwrap();
    let ed =
        SigningKey::ed25519_from_seed(&from_hex(&file.keys.ed25519_seed_hex).unwrap()).unwrap();
    let ed_public = from_hex(&file.keys.ed25519_public_hex).unwrap();
    assert_eq!(
        ed.verifying_key().ed25519_public_bytes().map(Vec::from),
        Some(ed_public.clone()),
        "Ed25519 public key derived from the seed differs from the file's"
    );
    let ed_verifier = VerifyingKey::ed25519(&ed_public).unwrap();

    let mut failures = Vec::new();
    for case in &file.cases {
        let hmac = match case.hmac_key.as_str() {
            "client" => &client,
            "server" => &server,
            other => panic!("{}: unknown hmac_key {other:?}", case.name),
        };
        let mut problems = Vec::new();
        match signing_bytes(case) {
            Ok(bytes) if bytes != case.signed_bytes.as_bytes() => problems.push(format!(
                "signed bytes differ, {}",
                diff(&case.signed_bytes, &String::from_utf8_lossy(&bytes))
            )),
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
        // The signatures themselves, over CPython's bytes.
        let msg = case.signed_bytes.as_bytes();
        let hmac_sig = hmac.sign_hex(msg);
        if hmac_sig != case.hmac_sha256 {
            problems.push(format!("hmac {hmac_sig} != {}", case.hmac_sha256));
        }
        let ed_sig = ed.sign_hex(msg);
        if ed_sig != case.ed25519 {
            problems.push(format!("ed25519 {ed_sig} != {}", case.ed25519));
        }
        if let Err(e) = hmac.verifying_key().verify_hex(msg, &case.hmac_sha256) {
            problems.push(format!("hmac verification failed: {e}"));
        }
        if let Err(e) = ed_verifier.verify_hex(msg, &case.ed25519) {
            problems.push(format!("ed25519 verification failed: {e}"));
        }
        // The other HMAC key must not verify it.
        let other = if std::ptr::eq(hmac, &client) {
            &server
        } else {
            &client
        };
        if other
            .verifying_key()
            .verify_hex(msg, &case.hmac_sha256)
            .is_ok()
        {
            problems.push("hmac verified with the wrong key".into());
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", case.name, problems.join("; ")));
        }
    }
    report("signature", file.cases.len(), &failures);
}

#[derive(Deserialize)]
struct Ed25519File {
    keys: Vec<Ed25519KeyCase>,
    cases: Vec<Ed25519SigCase>,
}

#[derive(Deserialize)]
struct Ed25519KeyCase {
    name: String,
    public_hex: String,
    accept: bool,
    why: String,
    small_order: bool,
}

#[derive(Deserialize)]
struct Ed25519SigCase {
    name: String,
    public_hex: String,
    message_hex: String,
    signature_hex: String,
    accept: bool,
    why: String,
}

/// SPEC §5.2: small-order and non-canonically spelled public keys are
/// refused when configured; signatures with a small-order `R` or `A`, or
/// `S ≥ L`, are refused although RFC 8032's equation holds for every one.
#[test]
fn strict_ed25519_refuses_weak_keys_and_signatures() {
    use lacre_proto::KeyError;
    let file: Ed25519File = load(ED25519);
    assert_eq!(
        (file.keys.len(), file.cases.len()),
        (25, 6),
        "ed25519.json changed size"
    );
    let mut failures = Vec::new();
    for case in &file.keys {
        let got = VerifyingKey::ed25519(&from_hex(&case.public_hex).unwrap()).err();
        let expected = match (case.why.as_str(), case.small_order) {
            ("ok", _) => None,
            ("not_a_point", _) => Some(KeyError::InvalidPublicKey),
            (_, true) => Some(KeyError::SmallOrderPublicKey),
            ("non_canonical", false) => Some(KeyError::NonCanonicalPublicKey),
            (why, _) => panic!("{}: unknown why {why:?}", case.name),
        };
        if got != expected || case.accept != expected.is_none() {
            failures.push(format!("{}: expected {expected:?}, got {got:?}", case.name));
        }
    }
    for case in &file.cases {
        let public = from_hex(&case.public_hex).unwrap();
        let msg = from_hex(&case.message_hex).unwrap();
        let verdict = VerifyingKey::ed25519(&public)
            .map_err(|e| format!("key refused: {e}"))
            .and_then(|k| {
                k.verify_hex(&msg, &case.signature_hex)
                    .map_err(|e| format!("signature refused: {e}"))
            });
        // A small-order A is refused before any signature is looked at.
        let refused_where = if case.why == "small_order_a" {
            "key refused"
        } else {
            "signature refused"
        };
        let right = match &verdict {
            Ok(()) => case.accept,
            Err(e) => !case.accept && e.starts_with(refused_where),
        };
        if !right {
            failures.push(format!(
                "{} ({}): accept {} but {verdict:?}",
                case.name, case.why, case.accept
            ));
        }
    }
    report("ed25519", file.keys.len() + file.cases.len(), &failures);
}
