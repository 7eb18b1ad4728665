//! Hostile input over real HTTP: data-driven tables of malformed, oversized,
//! forged, stale and replayed requests. Every case checks the exact HTTP
//! status, the exact error code (`ErrorCode::split_error_text`), `ok:false` /
//! `status:"error"`, the echoed `request_id`, and that the reply is signed by
//! the server key. A runner sends every case and reports all failing case
//! names at once. Special cases (streamed 100 MiB bodies, slowloris, restart
//! with a durable nonce store, memory) have their own functions.

use crate::support::*;
use lacre_proto::{
    Envelope, ErrorCode, FixedClock, Map, ParseLimits, Response, SigningKey, Status, Value,
};
use lacre_server::{store, ToolFilter};
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The fixed "now" of the table servers (so that window edges are exact).
const NOW: i64 = 1_700_000_000_000;
/// The default timestamp window.
const WINDOW: i64 = 300_000;
/// The test server's body limit.
const BODY_LIMIT: usize = 64 * 1024;
/// An Ed25519 client, added to the table servers.
const ED_CLIENT: &str = "client-ed";
const ED_SEED: [u8; 32] = [7u8; 32];

// ---------------------------------------------------------------------------
// Cases and the runner.

#[derive(Clone, Debug)]
enum Expect {
    /// A signed error reply.
    Error {
        http: u16,
        code: ErrorCode,
        request_id: String,
    },
    /// A signed success reply (controls next to the hostile cases: the
    /// accepted side of every boundary).
    Success {
        http: u16,
        status: Status,
        request_id: String,
    },
}

struct Case {
    name: String,
    body: Vec<u8>,
    expect: Expect,
}

#[derive(Default)]
struct Table {
    cases: Vec<Case>,
    names: HashSet<String>,
}

impl Table {
    fn add(&mut self, name: impl Into<String>, body: impl Into<Vec<u8>>, expect: Expect) {
        let name = name.into();
        assert!(
            self.names.insert(name.clone()),
            "duplicate case name {name}"
        );
        self.cases.push(Case {
            name,
            body: body.into(),
            expect,
        });
    }

    fn len(&self) -> usize {
        self.cases.len()
    }
}

fn err(http: u16, code: ErrorCode, request_id: &str) -> Expect {
    Expect::Error {
        http,
        code,
        request_id: request_id.to_owned(),
    }
}

fn bad(request_id: &str) -> Expect {
    err(400, ErrorCode::BadEnvelope, request_id)
}

fn invalid_args(request_id: &str) -> Expect {
    err(422, ErrorCode::InvalidArgs, request_id)
}

fn ok(request_id: &str) -> Expect {
    Expect::Success {
        http: 200,
        status: Status::Ok,
        request_id: request_id.to_owned(),
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        "panic".to_owned()
    }
}

/// Runs `f`, turning a failed assertion into an `Err` so that the runner can
/// collect every failure instead of stopping at the first one.
fn attempt<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(panic_text)
}

/// Checks one HTTP reply against an expectation (signature included).
fn check_reply(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    expect: &Expect,
) -> Result<(), String> {
    if content_type != Some("application/json") {
        return Err(format!(
            "content-type {content_type:?}, HTTP {status}, body {:?}",
            String::from_utf8_lossy(body)
        ));
    }
    let resp: Response = attempt(|| check_signed(body))?;
    match expect {
        Expect::Error {
            http,
            code,
            request_id,
        } => attempt(|| assert_error(&(status, resp.clone()), *http, code.clone(), request_id))
            .map_err(|e| format!("{e} (reply: HTTP {status} {:?})", resp.error)),
        Expect::Success {
            http,
            status: want,
            request_id,
        } => {
            if status != *http
                || !resp.ok
                || resp.status != *want
                || resp.error.is_some()
                || &resp.request_id != request_id
            {
                return Err(format!(
                    "expected HTTP {http} {want:?} for {request_id:?}, got HTTP {status} {resp:?}"
                ));
            }
            Ok(())
        }
    }
}

async fn run_case(s: &TestServer, case: &Case) -> Result<(), String> {
    if case.body.len() > BODY_LIMIT {
        // A server may answer an oversized body before reading it all and
        // close the connection; reqwest, still writing, would then report a
        // transport error. Write and read concurrently instead.
        let (status, ct, body) = post_concurrently(&addr_of(s), case.body.clone()).await?;
        return check_reply(status, Some(&ct), &body, &case.expect);
    }
    let send = s.http.post(&s.url).body(case.body.clone()).send();
    let resp = tokio::time::timeout(Duration::from_secs(20), send)
        .await
        .map_err(|_| "no reply within 20 s".to_owned())?
        .map_err(|e| format!("transport error: {e}"))?;
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = tokio::time::timeout(Duration::from_secs(20), resp.bytes())
        .await
        .map_err(|_| "body not read within 20 s".to_owned())?
        .map_err(|e| format!("body read error: {e}"))?;
    check_reply(status, ct.as_deref(), &body, &case.expect)
}

/// Sends every case in order (order matters for replays) and returns the
/// failures, one line per failing case.
async fn run_table(s: &TestServer, table: &Table) -> Vec<String> {
    let mut failures = Vec::new();
    for case in &table.cases {
        if let Err(e) = run_case(s, case).await {
            // Replies can be huge: keep each line readable.
            let e: String = e.chars().take(1500).collect();
            failures.push(format!("{}: {e}", case.name));
        }
    }
    failures
}

#[track_caller]
fn assert_no_failures(what: &str, total: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{what}: {} of {total} cases failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

// ---------------------------------------------------------------------------
// Building envelopes.

fn key_of(client_id: &str) -> SigningKey {
    match client_id {
        "client-002" => SigningKey::hmac(OTHER_SECRET).unwrap(),
        ED_CLIENT => SigningKey::ed25519_from_seed(&ED_SEED).unwrap(),
        _ => SigningKey::hmac(CLIENT_SECRET).unwrap(),
    }
}

/// Parses an `args` text with the protocol's own parser (so integers of
/// any size stay exact).
fn parse_args(text: &str) -> Map {
    let limits = ParseLimits {
        max_depth: 10_000,
        ..ParseLimits::default()
    };
    match lacre_proto::parse(text.as_bytes(), limits) {
        Ok(Value::Object(m)) => m,
        other => panic!("args must be an object: {other:?}"),
    }
}

/// A signed envelope from client-001 stamped `NOW`, with a fresh
/// request_id and nonce, after `tweak` (then signed with the key of the
/// client it names).
fn make(tool: &str, args: &str, tweak: impl FnOnce(&mut Envelope)) -> Envelope {
    let mut env = Envelope {
        request_id: unique("rid"),
        ts_ms: NOW,
        client_id: "client-001".into(),
        server_id: SERVER_ID.into(),
        tool: tool.into(),
        args: parse_args(args),
        nonce: unique("nonce"),
        signature: String::new(),
    };
    tweak(&mut env);
    env.sign(&key_of(&env.client_id));
    env
}

/// A valid `batch_sum` call.
fn sum() -> Envelope {
    make("batch_sum", r#"{"numbers":[1,2]}"#, |_| {})
}

/// JSON string literal (canonical form) of `s`.
fn q(s: &str) -> Vec<u8> {
    Value::String(s.to_owned()).to_canonical()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// An envelope as a list of raw members, to damage one member at a time.
#[derive(Clone)]
struct Raw(Vec<(Vec<u8>, Vec<u8>)>);

impl Raw {
    fn of(env: &Envelope) -> Raw {
        Raw(vec![
            (q("args"), Value::Object(env.args.clone()).to_canonical()),
            (q("client_id"), q(&env.client_id)),
            (q("nonce"), q(&env.nonce)),
            (q("request_id"), q(&env.request_id)),
            (q("server_id"), q(&env.server_id)),
            (q("signature"), q(&env.signature)),
            (q("tool"), q(&env.tool)),
            (q("ts_ms"), env.ts_ms.to_string().into_bytes()),
            (q("v"), q("mcp/0.1")),
        ])
    }

    /// Replaces the value of member `name` (appends it if absent).
    fn set(mut self, name: &str, value: impl AsRef<[u8]>) -> Raw {
        let k = q(name);
        match self.0.iter_mut().find(|(key, _)| *key == k) {
            Some(m) => m.1 = value.as_ref().to_vec(),
            None => self.0.push((k, value.as_ref().to_vec())),
        }
        self
    }

    fn without(mut self, name: &str) -> Raw {
        let k = q(name);
        self.0.retain(|(key, _)| *key != k);
        self
    }

    /// Appends a member with a raw (already quoted) name; duplicates allowed.
    fn push(mut self, raw_key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Raw {
        self.0
            .push((raw_key.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// Renames member `name` to a raw (already quoted) name.
    fn rekey(mut self, name: &str, raw_key: impl AsRef<[u8]>) -> Raw {
        let k = q(name);
        if let Some(m) = self.0.iter_mut().find(|(key, _)| *key == k) {
            m.0 = raw_key.as_ref().to_vec();
        }
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = vec![b'{'];
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(k);
            out.push(b':');
            out.extend_from_slice(v);
        }
        out.push(b'}');
        out
    }
}

/// A unique identifier of exactly `chars` characters, starting with `prefix`.
fn padded(prefix: &str, chars: usize) -> String {
    let mut id = format!("{prefix}{}", unique("id"));
    while id.chars().count() < chars {
        id.push('x');
    }
    assert_eq!(id.chars().count(), chars);
    id
}

fn nest_arrays(k: usize) -> String {
    format!("{}1{}", "[".repeat(k), "]".repeat(k))
}

fn nest_objects(k: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(k), "}".repeat(k))
}

/// `s + l` for 32-byte little-endian integers (a malleated Ed25519 `S`).
fn add_le(s: &[u8], l: &[u8; 32]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(s[i]) + u16::from(l[i]) + carry;
        out[i] = (v & 0xff) as u8;
        carry = v >> 8;
    }
    out
}

// ---------------------------------------------------------------------------
// The main table (test server: 64 KiB body limit, FixedClock(NOW)).

/// Not JSON at all, bad encodings, truncations, non-objects.
fn encoding_cases(t: &mut Table) {
    // Controls: a valid envelope, and one wrapped in allowed whitespace.
    let e = sum();
    t.add(
        "control/valid canonical envelope",
        e.to_json(),
        ok(&e.request_id),
    );
    let e = sum();
    t.add(
        "control/envelope in space, tab, CR, LF",
        cat(&[b" \t\r\n", &e.to_json(), b"\r\n\t "]),
        ok(&e.request_id),
    );

    for (name, body) in [
        ("empty body", b"".to_vec()),
        ("one space", b" ".to_vec()),
        ("whitespace only", b" \t\r\n \t\r\n".to_vec()),
        ("a thousand newlines", vec![b'\n'; 1000]),
        ("NUL byte", vec![0u8]),
        ("form feed then {}", b"\x0c{}".to_vec()),
        ("vertical tab then {}", b"\x0b{}".to_vec()),
        ("NBSP then {}", b"\xc2\xa0{}".to_vec()),
        ("BOM alone", b"\xef\xbb\xbf".to_vec()),
        ("BOM then {}", b"\xef\xbb\xbf{}".to_vec()),
        ("UTF-16LE with BOM", b"\xff\xfe{\x00}\x00".to_vec()),
        ("UTF-16BE with BOM", b"\xfe\xff\x00{\x00}".to_vec()),
        ("UTF-16LE without BOM", b"{\x00}\x00".to_vec()),
        ("UTF-32LE", b"{\x00\x00\x00}\x00\x00\x00".to_vec()),
        ("single-quoted object", b"{'a':1}".to_vec()),
        ("not json", b"{not json".to_vec()),
        ("HTML", b"<html></html>".to_vec()),
        ("form-encoded", b"request_id=1&tool=batch_sum".to_vec()),
        ("closing brace only", b"}".to_vec()),
        ("two objects", b"{}{}".to_vec()),
    ] {
        t.add(format!("encoding/{name}"), body, bad(""));
    }

    // A valid envelope behind a BOM, or with a BOM (U+FEFF) between tokens.
    let e = sum();
    t.add(
        "encoding/BOM before a valid envelope",
        cat(&[b"\xef\xbb\xbf", &e.to_json()]),
        bad(""),
    );
    let e = sum();
    let text = e.to_json();
    t.add(
        "encoding/U+FEFF as whitespace after the envelope",
        cat(&[&text, b"\xef\xbb\xbf"]),
        bad(""),
    );
    let e = sum();
    t.add(
        "encoding/trailing garbage after a valid envelope",
        cat(&[&e.to_json(), b"x"]),
        bad(""),
    );
    let e = sum();
    t.add(
        "encoding/valid envelope twice in one body",
        cat(&[&e.to_json(), &e.to_json()]),
        bad(""),
    );
    let e = sum();
    t.add(
        "encoding/valid envelope then NUL",
        cat(&[&e.to_json(), b"\x00"]),
        bad(""),
    );

    // Invalid UTF-8 sequences, in five places of an otherwise valid,
    // signed envelope: a member name, a string value, an args member name,
    // a string inside args, between tokens.
    let sequences: [(&str, &[u8]); 15] = [
        ("lone continuation 80", b"\x80"),
        ("lone continuation BF", b"\xbf"),
        ("byte FF", b"\xff"),
        ("byte FE", b"\xfe"),
        ("overlong C0 AF", b"\xc0\xaf"),
        ("overlong C1 BF", b"\xc1\xbf"),
        ("overlong E0 80 AF", b"\xe0\x80\xaf"),
        ("overlong F0 80 80 AF", b"\xf0\x80\x80\xaf"),
        ("CESU-8 surrogate pair", b"\xed\xa0\xbd\xed\xb8\x80"),
        ("encoded high surrogate ED A0 80", b"\xed\xa0\x80"),
        ("encoded low surrogate ED BF BF", b"\xed\xbf\xbf"),
        ("above U+10FFFF F4 90 80 80", b"\xf4\x90\x80\x80"),
        ("five-byte form F8 88 80 80 80", b"\xf8\x88\x80\x80\x80"),
        ("truncated E2 82", b"\xe2\x82"),
        ("lead byte C3 then ASCII", b"\xc3A"),
    ];
    for (seq_name, seq) in sequences {
        let e = sum();
        let body = Raw::of(&e)
            .rekey("nonce", cat(&[b"\"non", seq, b"ce\""]))
            .bytes();
        t.add(format!("utf8/{seq_name} in a member name"), body, bad(""));
        let e = sum();
        let body = Raw::of(&e).set("nonce", cat(&[b"\"n", seq, b"\""])).bytes();
        t.add(format!("utf8/{seq_name} in a string value"), body, bad(""));
        let e = sum();
        let body = Raw::of(&e)
            .set("args", cat(&[b"{\"num", seq, b"bers\":[1]}"]))
            .bytes();
        t.add(
            format!("utf8/{seq_name} in an args member name"),
            body,
            bad(""),
        );
        let e = sum();
        let body = Raw::of(&e)
            .set("args", cat(&[b"{\"numbers\":[[\"", seq, b"\"]]}"]))
            .bytes();
        t.add(format!("utf8/{seq_name} nested in args"), body, bad(""));
        let e = sum();
        let body = Raw::of(&e)
            .set("ts_ms", cat(&[NOW.to_string().as_bytes(), b" ", seq]))
            .bytes();
        t.add(format!("utf8/{seq_name} between tokens"), body, bad(""));
    }

    // The accepted side: raw UTF-8 at every length boundary in a nonce is
    // fine (signatures cover the parsed value, sent here unescaped).
    for (name, raw) in [
        ("U+0080", &b"\xc2\x80"[..]),
        ("U+07FF", b"\xdf\xbf"),
        ("U+0800", b"\xe0\xa0\x80"),
        ("U+D7FF", b"\xed\x9f\xbf"),
        ("U+E000", b"\xee\x80\x80"),
        ("U+FEFF inside a string", b"\xef\xbb\xbf"),
        ("U+FFFF", b"\xef\xbf\xbf"),
        ("U+10000", b"\xf0\x90\x80\x80"),
        ("U+10FFFF", b"\xf4\x8f\xbf\xbf"),
        ("DEL 7F", b"\x7f"),
    ] {
        let text = String::from_utf8(raw.to_vec()).unwrap();
        let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
            e.nonce = format!("{}{text}", e.nonce);
        });
        let body = Raw::of(&e)
            .set("nonce", cat(&[b"\"", e.nonce.as_bytes(), b"\""]))
            .bytes();
        t.add(
            format!("utf8/raw {name} accepted in a nonce"),
            body,
            ok(&e.request_id),
        );
    }

    // Control characters and escapes inside strings.
    for (name, value) in [
        ("raw NUL", &b"\"a\x00b\""[..]),
        ("raw tab", b"\"a\tb\""),
        ("raw LF", b"\"a\nb\""),
        ("raw 1F", b"\"a\x1fb\""),
        ("escape \\x41", b"\"\\x41\""),
        ("escape \\'", b"\"\\'\""),
        ("escape \\U0041", b"\"\\U0041\""),
        ("short escape \\u12", b"\"\\u12\""),
        ("unterminated string", b"\"abc"),
    ] {
        let e = sum();
        let body = Raw::of(&e).set("nonce", value).bytes();
        t.add(format!("string/{name} in nonce"), body, bad(""));
    }

    // Truncations of a valid signed envelope, every 6 bytes (and one byte
    // short of the end).
    let e = sum();
    let full = e.to_json();
    let mut cuts: Vec<usize> = (1..full.len()).step_by(6).collect();
    cuts.push(full.len() - 1);
    for cut in cuts {
        t.add(
            format!("truncated/first {cut} of {} bytes", full.len()),
            full[..cut].to_vec(),
            bad(""),
        );
    }

    // Valid JSON that is not an object.
    let e = sum();
    for (name, body) in [
        ("empty array", b"[]".to_vec()),
        (
            "array holding an envelope",
            cat(&[b"[", &e.to_json(), b"]"]),
        ),
        ("string", b"\"x\"".to_vec()),
        (
            "string of an envelope",
            q(&String::from_utf8(e.to_json()).unwrap()),
        ),
        ("zero", b"0".to_vec()),
        ("negative float", b"-1.5e3".to_vec()),
        ("true", b"true".to_vec()),
        ("false", b"false".to_vec()),
        ("null", b"null".to_vec()),
        ("null in whitespace", b"  null\n".to_vec()),
    ] {
        t.add(format!("not an object/{name}"), body, bad(""));
    }
    t.add("not an object/empty object", b"{}".to_vec(), bad(""));
}

/// Nesting: just under, at and over the depth limit, and 10 000 deep.
fn nesting_cases(t: &mut Table) {
    // args {"numbers": <k arrays>}: the envelope is depth 1, args 2, the
    // outer array of numbers 3, so the total depth is 2 + k.
    for (total, accepted) in [(61, true), (63, true), (64, true), (65, false), (66, false)] {
        let k = total - 2;
        let args = format!(r#"{{"numbers":{}}}"#, nest_arrays(k));
        if accepted {
            let e = make("batch_sum", &args, |_| {});
            t.add(
                format!("depth/arrays, total depth {total}: parsed, then invalid_args"),
                e.to_json(),
                invalid_args(&e.request_id),
            );
        } else {
            let e = sum();
            let body = Raw::of(&e).set("args", &args).bytes();
            t.add(format!("depth/arrays, total depth {total}"), body, bad(""));
        }
    }
    // args {"numbers": [<k objects>]}: total depth 3 + k.
    for (total, accepted) in [(60, true), (64, true), (65, false)] {
        let k = total - 3;
        let args = format!(r#"{{"numbers":[{}]}}"#, nest_objects(k));
        if accepted {
            let e = make("batch_sum", &args, |_| {});
            t.add(
                format!("depth/objects, total depth {total}: parsed, then invalid_args"),
                e.to_json(),
                invalid_args(&e.request_id),
            );
        } else {
            let e = sum();
            let body = Raw::of(&e).set("args", &args).bytes();
            t.add(format!("depth/objects, total depth {total}"), body, bad(""));
        }
    }
    // Depth relative to args (args itself is depth 1): 60 passes, 65 fails.
    let e = make(
        "start_long_task",
        &format!(r#"{{"seconds":1,"payload":{}}}"#, nest_objects(59)),
        |_| {},
    );
    // payload depth: args(1) payload(2).. 59 objects -> args-relative depth 60.
    t.add(
        "depth/args-relative depth 60 in a long task payload: accepted",
        e.to_json(),
        Expect::Success {
            http: 202,
            status: Status::Accepted,
            request_id: e.request_id.clone(),
        },
    );
    let e = sum();
    let body = Raw::of(&e)
        .set(
            "args",
            format!(r#"{{"numbers":[1],"payload":{}}}"#, nest_objects(64)),
        )
        .bytes();
    t.add("depth/args-relative depth 65", body, bad(""));

    // 10 000 deep.
    let e = sum();
    let body = Raw::of(&e)
        .set("args", format!(r#"{{"numbers":{}}}"#, nest_arrays(10_000)))
        .bytes();
    t.add("depth/10000 arrays in args", body, bad(""));
    let e = sum();
    let body = Raw::of(&e)
        .set("args", format!(r#"{{"numbers":{}}}"#, nest_objects(10_000)))
        .bytes();
    t.add("depth/10000 objects in args", body, bad(""));
    let e = sum();
    let body = Raw::of(&e)
        .set("args", format!(r#"{{"numbers":{}"#, "[".repeat(10_000)))
        .bytes();
    t.add("depth/10000 unclosed arrays in args", body, bad(""));
    let e = sum();
    let body = Raw::of(&e)
        .set(
            "args",
            format!(
                r#"{{"x":{}1{}}}"#,
                r#"[{"a":"#.repeat(5_000),
                "}]".repeat(5_000)
            ),
        )
        .bytes();
    t.add(
        "depth/10000 alternating arrays and objects in args",
        body,
        bad(""),
    );
    let e = sum();
    let body = Raw::of(&e).set("request_id", nest_arrays(10_000)).bytes();
    t.add("depth/10000 arrays as request_id", body, bad(""));
    t.add(
        "depth/10000 arrays at top level",
        nest_arrays(10_000),
        bad(""),
    );
    t.add(
        "depth/10000 objects at top level",
        nest_objects(10_000),
        bad(""),
    );
    t.add(
        "depth/64 arrays at top level (not an object)",
        nest_arrays(64),
        bad(""),
    );
    t.add("depth/65 arrays at top level", nest_arrays(65), bad(""));
    t.add("depth/30000 open brackets", "[".repeat(30_000), bad(""));
}

/// Bodies at and over the 64 KiB limit.
fn size_cases(t: &mut Table) {
    // A valid envelope padded with trailing spaces to exactly the limit: accepted.
    let e = sum();
    let mut body = e.to_json();
    body.resize(BODY_LIMIT, b' ');
    t.add(
        "size/valid envelope padded to exactly 64 KiB",
        body,
        ok(&e.request_id),
    );
    let e = sum();
    let mut body = e.to_json();
    body.resize(BODY_LIMIT + 1, b' ');
    t.add(
        "size/valid envelope padded to 64 KiB + 1",
        body,
        err(413, ErrorCode::TooLarge, ""),
    );
    let e = sum();
    let body = Raw::of(&e).set("nonce", q(&"x".repeat(1 << 20))).bytes();
    t.add(
        "size/1 MiB string field",
        body,
        err(413, ErrorCode::TooLarge, ""),
    );
    t.add(
        "size/4 MiB of garbage",
        vec![0xffu8; 4 << 20],
        err(413, ErrorCode::TooLarge, ""),
    );
    t.add(
        "size/100000 open brackets",
        "[".repeat(100_000),
        err(413, ErrorCode::TooLarge, ""),
    );
}

/// Numbers in args and in ts_ms.
fn number_cases(t: &mut Table) {
    for lit in [
        "1e400",
        "-1e400",
        "1.7976931348623159e308",
        "NaN",
        "Infinity",
        "-Infinity",
        "+1",
        "01",
        ".5",
        "1.",
        "1e+",
        "0x10",
        "--1",
    ] {
        let e = sum();
        let body = Raw::of(&e)
            .set("args", format!(r#"{{"numbers":[{lit}]}}"#))
            .bytes();
        t.add(format!("number/{lit} in args"), body, bad(""));
    }
    let e = sum();
    let body = Raw::of(&e).set("ts_ms", "NaN").bytes();
    t.add("number/NaN as ts_ms", body, bad(""));
    let e = sum();
    let body = Raw::of(&e).set("ts_ms", "1e400").bytes();
    t.add("number/1e400 as ts_ms", body, bad(""));
    let e = sum();
    let body = Raw::of(&e).set("ts_ms", format!("0{NOW}")).bytes();
    t.add("number/ts_ms with a leading zero", body, bad(""));

    // Big integers are accepted by the parser; the tool decides.
    let d300 = format!("1{}", "0".repeat(299));
    let d400 = format!("1{}", "0".repeat(399));
    let d4300 = format!("1{}", "0".repeat(4299));
    let d4301 = format!("1{}", "0".repeat(4300));
    let e = make("batch_sum", &format!(r#"{{"numbers":[{d300}]}}"#), |_| {});
    t.add(
        "number/300-digit integer in batch_sum: a finite float",
        e.to_json(),
        ok(&e.request_id),
    );
    let e = make("batch_sum", &format!(r#"{{"numbers":[{d400}]}}"#), |_| {});
    t.add(
        "number/400-digit integer in batch_sum",
        e.to_json(),
        invalid_args(&e.request_id),
    );
    let e = make("batch_sum", &format!(r#"{{"numbers":[-{d400}]}}"#), |_| {});
    t.add(
        "number/negative 400-digit integer in batch_sum",
        e.to_json(),
        invalid_args(&e.request_id),
    );
    let e = make("batch_sum", &format!(r#"{{"numbers":[{d4300}]}}"#), |_| {});
    t.add(
        "number/4300-digit integer in batch_sum",
        e.to_json(),
        invalid_args(&e.request_id),
    );
    let e = make("batch_sum", &format!(r#"{{"numbers":[-{d4300}]}}"#), |_| {});
    t.add(
        "number/negative 4300-digit integer (sign not counted)",
        e.to_json(),
        invalid_args(&e.request_id),
    );
    let e = make(
        "batch_sum",
        r#"{"numbers":[18446744073709551616, -9223372036854775809]}"#,
        |_| {},
    );
    t.add(
        "number/integers just beyond 64 bits in batch_sum",
        e.to_json(),
        ok(&e.request_id),
    );
    let e = make("batch_sum", r#"{"numbers":[1e-400, -1e-400]}"#, |_| {});
    t.add(
        "number/underflowing floats in batch_sum",
        e.to_json(),
        ok(&e.request_id),
    );
    let e = sum();
    let body = Raw::of(&e)
        .set("args", format!(r#"{{"numbers":[{d4301}]}}"#))
        .bytes();
    t.add("number/4301-digit integer in args", body, bad(""));
    let e = sum();
    let body = Raw::of(&e)
        .set("args", format!(r#"{{"numbers":[-{d4301}]}}"#))
        .bytes();
    t.add("number/negative 4301-digit integer in args", body, bad(""));

    // ts_ms: parsed, but not a 64-bit integer -> bad_envelope, request_id echoed.
    for (name, lit) in [
        ("400-digit integer", d400.clone()),
        ("2^63", "9223372036854775808".to_owned()),
        ("-2^63 - 1", "-9223372036854775809".to_owned()),
        ("1.0", "1.0".to_owned()),
        ("NOW as a float", format!("{NOW}.0")),
        ("NOW with an exponent", "1.7e12".to_owned()),
        ("NOW as e0", format!("{NOW}e0")),
        ("a string", format!("\"{NOW}\"")),
    ] {
        let e = sum();
        let body = Raw::of(&e).set("ts_ms", lit).bytes();
        t.add(format!("ts_ms/{name}"), body, bad(&e.request_id));
    }
    // Properly signed, but far from the clock -> stale_timestamp.
    for (name, ts) in [
        ("i64::MAX", i64::MAX),
        ("i64::MIN", i64::MIN),
        ("zero", 0),
        ("negative", -1),
        ("negative NOW", -NOW),
    ] {
        let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| e.ts_ms = ts);
        t.add(
            format!("ts_ms/{name}, signed: stale"),
            e.to_json(),
            err(401, ErrorCode::StaleTimestamp, &e.request_id),
        );
    }
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| e.ts_ms = 0);
    let body = Raw::of(&e).set("ts_ms", "-0").bytes();
    t.add(
        "ts_ms/-0 (the integer 0), signed: stale",
        body,
        err(401, ErrorCode::StaleTimestamp, &e.request_id),
    );
}

/// A change to an envelope's raw members.
type Damage = Box<dyn Fn(Raw) -> Raw>;

/// Duplicate member names, at every level.
fn duplicate_cases(t: &mut Table) {
    let cases: Vec<(&str, Damage)> = vec![
        (
            "request_id twice, same value",
            Box::new(|r: Raw| {
                let v =
                    r.0.iter()
                        .find(|(k, _)| *k == q("request_id"))
                        .unwrap()
                        .1
                        .clone();
                r.push(q("request_id"), v)
            }),
        ),
        (
            "tool twice",
            Box::new(|r: Raw| r.push(q("tool"), q("server_identity"))),
        ),
        (
            "signature twice",
            Box::new(|r: Raw| r.push(q("signature"), q("00"))),
        ),
        ("v twice", Box::new(|r: Raw| r.push(q("v"), q("mcp/0.1")))),
        ("args twice", Box::new(|r: Raw| r.push(q("args"), "{}"))),
        (
            "ts_ms twice",
            Box::new(|r: Raw| r.push(q("ts_ms"), NOW.to_string())),
        ),
        (
            "tool and escaped \\u0074ool",
            Box::new(|r: Raw| r.push(r#""\u0074ool""#, q("batch_sum"))),
        ),
        (
            "nonce and escaped no\\u006Ece",
            Box::new(|r: Raw| r.push(r#""no\u006Ece""#, q("x"))),
        ),
        (
            "numbers twice in args",
            Box::new(|r: Raw| r.set("args", r#"{"numbers":[1],"numbers":[1]}"#)),
        ),
        (
            "numbers and \\u006eumbers in args",
            Box::new(|r: Raw| r.set("args", r#"{"numbers":[1],"\u006eumbers":[2]}"#)),
        ),
        (
            "nested in args",
            Box::new(|r: Raw| r.set("args", r#"{"numbers":[{"a":1,"a":2}]}"#)),
        ),
        (
            "five levels deep in args",
            Box::new(|r: Raw| r.set("args", r#"{"x":{"y":{"z":{"w":{"a":1,"a":1}}}}}"#)),
        ),
        (
            "in a long task payload",
            Box::new(|r: Raw| r.set("args", r#"{"seconds":1,"payload":{"k":1,"k":1}}"#)),
        ),
        (
            "empty name twice in args",
            Box::new(|r: Raw| r.set("args", r#"{"":1,"":2}"#)),
        ),
        (
            "raw astral and its escaped pair",
            Box::new(|r: Raw| r.set("args", "{\"\u{1F600}\":1,\"\\ud83d\\ude00\":2}")),
        ),
        (
            "raw e-acute and \\u00e9",
            Box::new(|r: Raw| r.set("args", "{\"\u{e9}\":1,\"\\u00e9\":2}")),
        ),
        (
            "after a thousand other members",
            Box::new(|r: Raw| {
                let many: Vec<String> = (0..1000).map(|i| format!("\"k{i}\":{i}")).collect();
                r.set("args", format!("{{{},\"k7\":0}}", many.join(",")))
            }),
        ),
    ];
    for (name, damage) in cases {
        let e = sum();
        t.add(
            format!("duplicate/{name}"),
            damage(Raw::of(&e)).bytes(),
            bad(""),
        );
    }
    // A 60 000-character member name is quoted back in the error, still readable.
    let name = "\u{7f}".repeat(60_000);
    let args = format!(r#"{{"{name}":1}}"#);
    let e = make("server_identity", &args, |_| {});
    let body = Raw::of(&e).set("args", &args).bytes();
    t.add(
        "duplicate/none, but a 60000-character member name",
        body,
        invalid_args(&e.request_id),
    );
    // Look-alikes that are not duplicates: parsed, then refused by the tool.
    let e = make("server_identity", "{\"\u{e9}\":1,\"e\u{301}\":2}", |_| {});
    t.add(
        "duplicate/NFC and NFD names are distinct",
        e.to_json(),
        invalid_args(&e.request_id),
    );
}

/// Lone surrogate escapes in every string field and in args.
fn surrogate_cases(t: &mut Table) {
    let patterns = [
        ("lone high", r"\ud800"),
        ("lone low", r"\udc00"),
        ("reversed pair", r"\ude00\ud83d"),
        ("high then escaped A", r"\ud800\u0041"),
        ("high then raw char", r"\udbffx"),
    ];
    for (pname, p) in patterns {
        for field in [
            "request_id",
            "client_id",
            "server_id",
            "tool",
            "nonce",
            "signature",
            "v",
        ] {
            let e = sum();
            let body = Raw::of(&e).set(field, format!("\"a{p}b\"")).bytes();
            t.add(format!("surrogate/{pname} in {field}"), body, bad(""));
        }
        let e = sum();
        let body = Raw::of(&e)
            .set("args", format!(r#"{{"num{p}":[1]}}"#))
            .bytes();
        t.add(
            format!("surrogate/{pname} in an args member name"),
            body,
            bad(""),
        );
        let e = sum();
        let body = Raw::of(&e)
            .set("args", format!(r#"{{"numbers":[{{"k":"{p}"}}]}}"#))
            .bytes();
        t.add(format!("surrogate/{pname} nested in args"), body, bad(""));
    }
    // A well-formed pair, either case: accepted.
    for (name, esc) in [
        ("lowercase", r"\ud83d\ude00"),
        ("uppercase", r"\uD83D\uDE00"),
    ] {
        let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
            e.nonce.push('\u{1F600}')
        });
        let stem = e.nonce.trim_end_matches('\u{1F600}').to_owned();
        let body = Raw::of(&e).set("nonce", format!("\"{stem}{esc}\"")).bytes();
        t.add(
            format!("surrogate/valid pair ({name}) accepted"),
            body,
            ok(&e.request_id),
        );
    }
}

/// Every envelope field missing, of the wrong type, empty, too long.
fn field_cases(t: &mut Table) {
    let long129 = "a".repeat(129);
    let wrong_types: [(&str, &str); 7] = [
        ("null", "null"),
        ("number", "1"),
        ("float", "1.5"),
        ("array", "[]"),
        ("array of a string", r#"["x"]"#),
        ("object", "{}"),
        ("bool", "true"),
    ];
    for field in [
        "request_id",
        "client_id",
        "server_id",
        "tool",
        "nonce",
        "signature",
    ] {
        // request_id is echoed only when it is itself a valid identifier.
        let echo = |e: &Envelope| {
            if field == "request_id" {
                String::new()
            } else {
                e.request_id.clone()
            }
        };
        let e = sum();
        t.add(
            format!("field/{field} missing"),
            Raw::of(&e).without(field).bytes(),
            bad(&echo(&e)),
        );
        for (tname, lit) in wrong_types {
            let e = sum();
            t.add(
                format!("field/{field} is {tname}"),
                Raw::of(&e).set(field, lit).bytes(),
                bad(&echo(&e)),
            );
        }
        let e = sum();
        let empty = Raw::of(&e).set(field, q("")).bytes();
        let e129 = sum();
        let long = Raw::of(&e129).set(field, q(&long129)).bytes();
        if field == "signature" {
            // The signature is checked during verification (§4.1, §5.2).
            t.add(
                "field/signature empty",
                empty,
                err(401, ErrorCode::BadSignature, &e.request_id),
            );
            t.add(
                "field/signature 129 characters",
                long,
                err(401, ErrorCode::BadSignature, &e129.request_id),
            );
        } else {
            t.add(format!("field/{field} empty"), empty, bad(&echo(&e)));
            t.add(
                format!("field/{field} 129 characters"),
                long,
                bad(&echo(&e129)),
            );
        }
    }
    // 128 characters is accepted by the parser; what follows depends on the field.
    let l128 = "a".repeat(128);
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.request_id = padded("", 128)
    });
    t.add(
        "field/request_id 128 characters",
        e.to_json(),
        ok(&e.request_id),
    );
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.nonce = padded("", 128)
    });
    t.add("field/nonce 128 characters", e.to_json(), ok(&e.request_id));
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.client_id = l128.clone()
    });
    t.add(
        "field/client_id 128 characters: unknown client",
        e.to_json(),
        err(401, ErrorCode::UnknownClient, &e.request_id),
    );
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.server_id = l128.clone()
    });
    t.add(
        "field/server_id 128 characters: wrong server",
        e.to_json(),
        err(401, ErrorCode::WrongServer, &e.request_id),
    );
    let e = make("batch_sum", "{}", |e| e.tool = l128.clone());
    t.add(
        "field/tool 128 characters: unknown tool",
        e.to_json(),
        err(404, ErrorCode::UnknownTool, &e.request_id),
    );
    let e = sum();
    let body = Raw::of(&e).set("signature", q(&"ab".repeat(64))).bytes();
    t.add(
        "field/signature 128 hex characters: bad signature",
        body,
        err(401, ErrorCode::BadSignature, &e.request_id),
    );
    // Characters, not bytes.
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.nonce = "\u{e9}".repeat(128)
    });
    t.add(
        "field/nonce of 128 e-acute (256 bytes)",
        e.to_json(),
        ok(&e.request_id),
    );
    let e = sum();
    let body = Raw::of(&e).set("nonce", q(&"\u{e9}".repeat(129))).bytes();
    t.add("field/nonce of 129 e-acute", body, bad(&e.request_id));
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.request_id = padded(&"\u{1F600}".repeat(100), 128)
    });
    t.add(
        "field/request_id of 128 characters incl. 100 astral",
        e.to_json(),
        ok(&e.request_id),
    );
    let e = sum();
    let body = Raw::of(&e)
        .set("request_id", q(&"\u{1F600}".repeat(129)))
        .bytes();
    t.add("field/request_id of 129 astral characters", body, bad(""));
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.nonce = format!("{}\u{0}\n\"\\", e.nonce)
    });
    t.add(
        "field/nonce with NUL, LF, quote, backslash (escaped)",
        e.to_json(),
        ok(&e.request_id),
    );

    // ts_ms.
    for (tname, lit) in [
        ("missing", None),
        ("null", Some("null")),
        ("array", Some("[1700000000000]")),
        ("object", Some("{}")),
        ("bool", Some("false")),
        ("empty string", Some("\"\"")),
    ] {
        let e = sum();
        let raw = match lit {
            None => Raw::of(&e).without("ts_ms"),
            Some(l) => Raw::of(&e).set("ts_ms", l),
        };
        t.add(
            format!("field/ts_ms {tname}"),
            raw.bytes(),
            bad(&e.request_id),
        );
    }

    // args.
    for (tname, lit) in [
        ("null", "null"),
        ("number", "1"),
        ("string", "\"{}\""),
        ("array", "[]"),
        ("array of an object", r#"[{"numbers":[1]}]"#),
        ("bool", "true"),
    ] {
        let e = sum();
        t.add(
            format!("field/args {tname}"),
            Raw::of(&e).set("args", lit).bytes(),
            bad(&e.request_id),
        );
    }
    let e = make("server_identity", "{}", |_| {});
    t.add(
        "field/args missing (default {}, signed): ok",
        Raw::of(&e).without("args").bytes(),
        ok(&e.request_id),
    );
    let e = make("batch_sum", "{}", |_| {});
    t.add(
        "field/args missing for batch_sum",
        Raw::of(&e).without("args").bytes(),
        invalid_args(&e.request_id),
    );

    // v.
    let e = sum();
    t.add(
        "version/v missing (default, signed): ok",
        Raw::of(&e).without("v").bytes(),
        ok(&e.request_id),
    );
    for (name, lit) in [
        ("escaped slash", r#""mcp\/0.1""#),
        ("escaped m", r#""\u006dcp/0.1""#),
    ] {
        let e = sum();
        t.add(
            format!("version/v with an {name}: the same string, ok"),
            Raw::of(&e).set("v", lit).bytes(),
            ok(&e.request_id),
        );
    }
    for v in [
        "",
        "mcp/0.2",
        "MCP/0.1",
        "mcp/0.1 ",
        " mcp/0.1",
        "mcp/0.10",
        "mcp/0.1\u{0}",
        "mcp/1",
        "0.1",
    ] {
        let e = sum();
        t.add(
            format!("version/v {v:?}"),
            Raw::of(&e).set("v", q(v)).bytes(),
            err(400, ErrorCode::UnsupportedVersion, &e.request_id),
        );
    }
    for (name, v) in [
        ("128 characters", "v".repeat(128)),
        ("129 characters", "v".repeat(129)),
        (
            "mcp/0.1 and 122 spaces",
            format!("mcp/0.1{}", " ".repeat(122)),
        ),
    ] {
        let e = sum();
        t.add(
            format!("version/v of {name}"),
            Raw::of(&e).set("v", q(&v)).bytes(),
            err(400, ErrorCode::UnsupportedVersion, &e.request_id),
        );
    }
    // The version comes first: whatever else is wrong.
    t.add(
        "version/only a wrong v",
        br#"{"v":"mcp/0.2"}"#.to_vec(),
        err(400, ErrorCode::UnsupportedVersion, ""),
    );
    t.add(
        "version/wrong v, unknown members, missing fields",
        br#"{"v":"mcp/9","request_id":"r-1","zzz":1,"ts_ms":"x"}"#.to_vec(),
        err(400, ErrorCode::UnsupportedVersion, "r-1"),
    );

    // Extra top-level members.
    for name in [
        "extra",
        "Signature",
        "V",
        "Request_id",
        "signature ",
        " tool",
        "",
        "\u{0}",
        "sig",
        "__proto__",
        "constructor",
        "args\u{200b}",
        "result",
        "error",
        "ok",
    ] {
        let e = sum();
        t.add(
            format!("extra member/{name:?}"),
            Raw::of(&e).push(q(name), "1").bytes(),
            bad(&e.request_id),
        );
    }
    let e = sum();
    let body = Raw::of(&e).push(q("Signature"), q(&e.signature)).bytes();
    t.add(
        "extra member/Signature with a copy of the signature",
        body,
        bad(&e.request_id),
    );
    let e = sum();
    let body = Raw::of(&e).rekey("signature", q("Signature")).bytes();
    t.add(
        "extra member/signature renamed Signature",
        body,
        bad(&e.request_id),
    );
    let e = sum();
    let body = Raw::of(&e)
        .set("v", q("mcp/0.2"))
        .push(q("extra"), "1")
        .bytes();
    t.add(
        "extra member/with a wrong v: version first",
        body,
        err(400, ErrorCode::UnsupportedVersion, &e.request_id),
    );
}

/// A change to a signature's text.
type SigEdit = fn(&str) -> String;

/// Signatures: length, case, alphabet, algorithm, key, message.
fn signature_cases(t: &mut Table) {
    let bad_sig = |e: &Envelope| err(401, ErrorCode::BadSignature, &e.request_id);
    for n in [0usize, 1, 63, 65, 127, 128, 129, 256] {
        let e = sum();
        let sig: String = e.signature.chars().cycle().take(n).collect();
        t.add(
            format!("signature/{n} hex digits"),
            Raw::of(&e).set("signature", q(&sig)).bytes(),
            bad_sig(&e),
        );
    }
    let e = sum();
    let upper = e.signature.to_uppercase();
    assert_ne!(upper, e.signature);
    t.add(
        "signature/valid but uppercase",
        Raw::of(&e).set("signature", q(&upper)).bytes(),
        bad_sig(&e),
    );
    let e = sum();
    let mixed: String = e
        .signature
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    t.add(
        "signature/valid but mixed case",
        Raw::of(&e).set("signature", q(&mixed)).bytes(),
        bad_sig(&e),
    );
    let damaged: [(&str, SigEdit); 6] = [
        ("g in the last place", |s: &str| format!("{}g", &s[..63])),
        ("space in the middle", |s: &str| {
            format!("{} {}", &s[..31], &s[32..])
        }),
        ("0x prefix", |s: &str| format!("0x{}", &s[2..])),
        ("trailing newline", |s: &str| format!("{}\n", &s[..63])),
        ("64 e-acute", |_: &str| "\u{e9}".repeat(64)),
        ("base64 of the MAC", |s: &str| format!("{}==", &s[..42])),
    ];
    for (name, sig) in damaged {
        let e = sum();
        let s = sig(&e.signature);
        t.add(
            format!("signature/non-hex: {name}"),
            Raw::of(&e).set("signature", q(&s)).bytes(),
            bad_sig(&e),
        );
    }
    let e = sum();
    let with_ws = Raw::of(&e)
        .set("signature", q(&format!(" {}", e.signature)))
        .bytes();
    t.add("signature/valid with a leading space", with_ws, bad_sig(&e));

    // Right length and alphabet, wrong key or message.
    let mut e = sum();
    e.signature = SigningKey::ed25519_from_seed(&ED_SEED)
        .unwrap()
        .sign_hex(&e.signing_bytes());
    t.add(
        "signature/valid Ed25519 signature for an HMAC client",
        e.to_json(),
        bad_sig(&e),
    );
    let mut e = sum();
    e.sign(&SigningKey::hmac(OTHER_SECRET).unwrap());
    t.add(
        "signature/valid HMAC by another client's key",
        e.to_json(),
        bad_sig(&e),
    );
    let mut e = sum();
    e.sign(&SigningKey::hmac(SERVER_SECRET).unwrap());
    t.add(
        "signature/valid HMAC by the server's key",
        e.to_json(),
        bad_sig(&e),
    );
    let mut e = sum();
    e.signature = sum().signature;
    t.add(
        "signature/valid signature of another envelope",
        e.to_json(),
        bad_sig(&e),
    );
    let mut e = sum();
    e.args = parse_args(r#"{"numbers":[1000]}"#);
    t.add(
        "signature/args changed after signing",
        e.to_json(),
        bad_sig(&e),
    );
    let mut e = sum();
    e.ts_ms += 1;
    t.add(
        "signature/ts_ms changed after signing",
        e.to_json(),
        bad_sig(&e),
    );
    let e = sum();
    let signed_over_key = SigningKey::hmac(CLIENT_SECRET)
        .unwrap()
        .sign_hex(&e.to_json());
    let body = Raw::of(&e).set("signature", q(&signed_over_key)).bytes();
    t.add(
        "signature/MAC over the wire text incl. signature",
        body,
        bad_sig(&e),
    );
    let e = sum();
    let mut without_v = e.signing_bytes();
    without_v = String::from_utf8(without_v)
        .unwrap()
        .replace(r#","v":"mcp/0.1""#, "")
        .into_bytes();
    let sig = SigningKey::hmac(CLIENT_SECRET)
        .unwrap()
        .sign_hex(&without_v);
    let body = Raw::of(&e).without("v").set("signature", q(&sig)).bytes();
    t.add(
        "signature/MAC that leaves out the default v",
        body,
        bad_sig(&e),
    );
    let e = sum();
    t.add(
        "signature/all zeros",
        Raw::of(&e).set("signature", q(&"0".repeat(64))).bytes(),
        bad_sig(&e),
    );

    // The Ed25519 client.
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.client_id = ED_CLIENT.into()
    });
    t.add(
        "signature/Ed25519 client, valid",
        e.to_json(),
        ok(&e.request_id),
    );
    let mut e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.client_id = ED_CLIENT.into()
    });
    e.sign(&SigningKey::hmac(CLIENT_SECRET).unwrap());
    t.add(
        "signature/HMAC-length signature for an Ed25519 client",
        e.to_json(),
        bad_sig(&e),
    );
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.client_id = ED_CLIENT.into()
    });
    let upper = e.signature.to_uppercase();
    t.add(
        "signature/Ed25519 uppercase",
        Raw::of(&e).set("signature", q(&upper)).bytes(),
        bad_sig(&e),
    );
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.client_id = ED_CLIENT.into()
    });
    t.add(
        "signature/Ed25519 all zeros",
        Raw::of(&e).set("signature", q(&"0".repeat(128))).bytes(),
        bad_sig(&e),
    );
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.client_id = ED_CLIENT.into()
    });
    let raw = lacre_proto::from_hex(&e.signature).unwrap();
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let malleated = [&raw[..32], &add_le(&raw[32..], &L)[..]].concat();
    let body = Raw::of(&e)
        .set("signature", q(&lacre_proto::to_hex(&malleated)))
        .bytes();
    t.add(
        "signature/Ed25519 malleated S + L (non-canonical)",
        body,
        bad_sig(&e),
    );
    let mut e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.client_id = ED_CLIENT.into()
    });
    e.signature = SigningKey::ed25519_from_seed(&[8u8; 32])
        .unwrap()
        .sign_hex(&e.signing_bytes());
    t.add("signature/Ed25519 by another key", e.to_json(), bad_sig(&e));

    // Who: unknown client, another server, and the order of the checks.
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.client_id = "client-999".into()
    });
    t.add(
        "who/unknown client",
        e.to_json(),
        err(401, ErrorCode::UnknownClient, &e.request_id),
    );
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.client_id = "CLIENT-001".into()
    });
    t.add(
        "who/client id in another case",
        e.to_json(),
        err(401, ErrorCode::UnknownClient, &e.request_id),
    );
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.client_id = "client-001 ".into()
    });
    t.add(
        "who/client id with a trailing space",
        e.to_json(),
        err(401, ErrorCode::UnknownClient, &e.request_id),
    );
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.server_id = "mcp-server-002".into()
    });
    t.add(
        "who/valid signature for another server_id",
        e.to_json(),
        err(401, ErrorCode::WrongServer, &e.request_id),
    );
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.server_id = "MCP-SERVER-001".into()
    });
    t.add(
        "who/server id in another case",
        e.to_json(),
        err(401, ErrorCode::WrongServer, &e.request_id),
    );
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.server_id = "elsewhere".into();
        e.client_id = "client-999".into();
        e.ts_ms = 0;
    });
    t.add(
        "order/wrong server before unknown client",
        e.to_json(),
        err(401, ErrorCode::WrongServer, &e.request_id),
    );
    let e = sum();
    let body = Raw::of(&e)
        .set("client_id", q("client-999"))
        .set("ts_ms", "0")
        .bytes();
    t.add(
        "order/unknown client before bad signature",
        body,
        err(401, ErrorCode::UnknownClient, &e.request_id),
    );
    let e = sum();
    let body = Raw::of(&e).set("ts_ms", "0").bytes();
    t.add(
        "order/bad signature before stale timestamp",
        body,
        bad_sig(&e),
    );
    let e = make("no_such_tool", "{}", |e| e.ts_ms = 0);
    t.add(
        "order/stale timestamp before unknown tool",
        e.to_json(),
        err(401, ErrorCode::StaleTimestamp, &e.request_id),
    );
}

/// The timestamp window's edges (the server's clock is fixed at NOW).
fn window_cases(t: &mut Table) {
    for (name, ts, accepted) in [
        ("now - 300000", NOW - WINDOW, true),
        ("now + 300000", NOW + WINDOW, true),
        ("now - 300001", NOW - WINDOW - 1, false),
        ("now + 300001", NOW + WINDOW + 1, false),
        ("now - 1", NOW - 1, true),
        ("now + 1", NOW + 1, true),
    ] {
        let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| e.ts_ms = ts);
        let expect = if accepted {
            ok(&e.request_id)
        } else {
            err(401, ErrorCode::StaleTimestamp, &e.request_id)
        };
        t.add(format!("window/{name}"), e.to_json(), expect);
    }
}

/// Replays, in order: every pair of rows is "first use, then reuse".
fn replay_cases(t: &mut Table) {
    let replayed = |e: &Envelope| err(401, ErrorCode::ReplayedNonce, &e.request_id);
    let first = sum();
    t.add("replay/first use", first.to_json(), ok(&first.request_id));
    t.add(
        "replay/same envelope again",
        first.to_json(),
        replayed(&first),
    );
    let mut again = first.clone();
    again.ts_ms += 1;
    again.sign(&key_of("client-001"));
    t.add(
        "replay/same nonce, new ts_ms, fresh signature",
        again.to_json(),
        replayed(&first),
    );
    let mut again = first.clone();
    again.request_id = unique("rid");
    again.sign(&key_of("client-001"));
    t.add(
        "replay/same nonce, new request_id",
        again.to_json(),
        replayed(&again),
    );
    let e = Raw::of(&first).set("ts_ms", format!("{NOW} ")).bytes();
    t.add(
        "replay/same envelope, other whitespace",
        e,
        replayed(&first),
    );
    let mut other = first.clone();
    other.client_id = "client-002".into();
    other.request_id = unique("rid");
    other.sign(&key_of("client-002"));
    t.add(
        "replay/same nonce, other client: accepted",
        other.to_json(),
        ok(&other.request_id),
    );
    let mut other2 = other.clone();
    other2.request_id = unique("rid");
    other2.sign(&key_of("client-002"));
    t.add(
        "replay/same nonce, other client, again",
        other2.to_json(),
        replayed(&other2),
    );
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.client_id = ED_CLIENT.into()
    });
    t.add(
        "replay/Ed25519 client first use",
        e.to_json(),
        ok(&e.request_id),
    );
    t.add("replay/Ed25519 client replay", e.to_json(), replayed(&e));

    // Refusals before the nonce step do not burn the nonce.
    let genuine = sum();
    let mut forged = genuine.clone();
    forged.args = parse_args(r#"{"numbers":[666]}"#);
    forged.request_id = unique("rid");
    t.add(
        "replay/forged use of a nonce",
        forged.to_json(),
        err(401, ErrorCode::BadSignature, &forged.request_id),
    );
    t.add(
        "replay/genuine use after the forged one",
        genuine.to_json(),
        ok(&genuine.request_id),
    );
    let genuine = sum();
    let mut stale = genuine.clone();
    stale.ts_ms = NOW - WINDOW - 1;
    stale.request_id = unique("rid");
    stale.sign(&key_of("client-001"));
    t.add(
        "replay/stale use of a nonce",
        stale.to_json(),
        err(401, ErrorCode::StaleTimestamp, &stale.request_id),
    );
    t.add(
        "replay/genuine use after the stale one",
        genuine.to_json(),
        ok(&genuine.request_id),
    );
    let genuine = sum();
    let mut wrong = genuine.clone();
    wrong.server_id = "elsewhere".into();
    wrong.request_id = unique("rid");
    wrong.sign(&key_of("client-001"));
    t.add(
        "replay/wrong-server use of a nonce",
        wrong.to_json(),
        err(401, ErrorCode::WrongServer, &wrong.request_id),
    );
    t.add(
        "replay/genuine use after the wrong-server one",
        genuine.to_json(),
        ok(&genuine.request_id),
    );

    // Refusals after the nonce step burn it.
    let bad_args = make("batch_sum", r#"{"numbers":[]}"#, |_| {});
    t.add(
        "replay/invalid_args use of a nonce",
        bad_args.to_json(),
        invalid_args(&bad_args.request_id),
    );
    let mut fixed = bad_args.clone();
    fixed.args = parse_args(r#"{"numbers":[1]}"#);
    fixed.request_id = unique("rid");
    fixed.sign(&key_of("client-001"));
    t.add(
        "replay/valid call reusing the invalid_args nonce",
        fixed.to_json(),
        replayed(&fixed),
    );
    let unknown = make("no_such_tool", "{}", |_| {});
    t.add(
        "replay/unknown_tool use of a nonce",
        unknown.to_json(),
        err(404, ErrorCode::UnknownTool, &unknown.request_id),
    );
    let mut fixed = unknown.clone();
    fixed.tool = "batch_sum".into();
    fixed.args = parse_args(r#"{"numbers":[1]}"#);
    fixed.sign(&key_of("client-001"));
    t.add(
        "replay/valid call reusing the unknown_tool nonce",
        fixed.to_json(),
        replayed(&fixed),
    );

    // Immediate tools are not idempotent: same request_id, fresh nonce, runs again.
    let first = sum();
    let mut retry = first.clone();
    retry.nonce = unique("nonce");
    retry.sign(&key_of("client-001"));
    t.add(
        "replay/immediate call",
        first.to_json(),
        ok(&first.request_id),
    );
    t.add(
        "replay/immediate retry with a fresh nonce",
        retry.to_json(),
        ok(&first.request_id),
    );
}

/// Arguments that violate each built-in tool's schema, and jobs of others.
fn args_cases(t: &mut Table, others_job: &str) {
    let cases: [(&str, &str); 56] = [
        ("batch_sum", "{}"),
        ("batch_sum", r#"{"numbers":[]}"#),
        ("batch_sum", r#"{"numbers":["1"]}"#),
        ("batch_sum", r#"{"numbers":[1,"2"]}"#),
        ("batch_sum", r#"{"numbers":[true]}"#),
        ("batch_sum", r#"{"numbers":[[1]]}"#),
        ("batch_sum", r#"{"numbers":[null]}"#),
        ("batch_sum", r#"{"numbers":[{}]}"#),
        ("batch_sum", r#"{"numbers":null}"#),
        ("batch_sum", r#"{"numbers":5}"#),
        ("batch_sum", r#"{"numbers":"1,2"}"#),
        ("batch_sum", r#"{"numbers":{"a":1}}"#),
        ("batch_sum", r#"{"numbers":[1],"extra":1}"#),
        ("batch_sum", r#"{"Numbers":[1]}"#),
        ("batch_sum", r#"{"numbers":[1e308,1e308]}"#),
        ("batch_sum", r#"{"numbers":[-1e308,-1e308]}"#),
        ("batch_sum", r#"{"numbers":[1.7976931348623157e308,1e292]}"#),
        ("start_long_task", "{}"),
        ("start_long_task", r#"{"seconds":0}"#),
        ("start_long_task", r#"{"seconds":21}"#),
        ("start_long_task", r#"{"seconds":-1}"#),
        ("start_long_task", r#"{"seconds":1.5}"#),
        ("start_long_task", r#"{"seconds":2.0}"#),
        ("start_long_task", r#"{"seconds":"1"}"#),
        ("start_long_task", r#"{"seconds":true}"#),
        ("start_long_task", r#"{"seconds":null}"#),
        ("start_long_task", r#"{"seconds":18446744073709551617}"#),
        ("start_long_task", r#"{"seconds":1,"payload":[1]}"#),
        ("start_long_task", r#"{"seconds":1,"payload":"x"}"#),
        ("start_long_task", r#"{"seconds":1,"payload":1}"#),
        ("start_long_task", r#"{"seconds":1,"extra":1}"#),
        ("poll_job", "{}"),
        ("poll_job", r#"{"job_id":5}"#),
        ("poll_job", r#"{"job_id":null}"#),
        ("poll_job", r#"{"job_id":["x"]}"#),
        ("poll_job", r#"{"job_id":"x","wait_ms":30001}"#),
        ("poll_job", r#"{"job_id":"x","wait_ms":-1}"#),
        ("poll_job", r#"{"job_id":"x","wait_ms":"10"}"#),
        ("poll_job", r#"{"job_id":"x","wait_ms":1.5}"#),
        ("poll_job", r#"{"job_id":"x","extra":1}"#),
        ("cancel_job", "{}"),
        ("cancel_job", r#"{"job_id":5}"#),
        ("cancel_job", r#"{"job_id":null}"#),
        ("cancel_job", r#"{"job_id":"x","wait_ms":1}"#),
        ("list_jobs", r#"{"state":"sleeping"}"#),
        ("list_jobs", r#"{"state":"DONE"}"#),
        ("list_jobs", r#"{"state":""}"#),
        ("list_jobs", r#"{"state":1}"#),
        ("list_jobs", r#"{"limit":0}"#),
        ("list_jobs", r#"{"limit":1001}"#),
        ("list_jobs", r#"{"limit":-1}"#),
        ("list_jobs", r#"{"limit":"10"}"#),
        ("list_jobs", r#"{"limit":1.5}"#),
        ("list_jobs", r#"{"extra":1}"#),
        ("server_identity", r#"{"x":1}"#),
        ("server_identity", r#"{"verbose":null}"#),
    ];
    for (tool, args) in cases {
        let e = make(tool, args, |_| {});
        t.add(
            format!("args/{tool} {args}"),
            e.to_json(),
            invalid_args(&e.request_id),
        );
    }
    // The accepted side of the ranges.
    for (tool, args) in [
        ("list_jobs", r#"{"limit":1}"#),
        ("list_jobs", r#"{"limit":1000}"#),
        ("list_jobs", r#"{"limit":null,"state":null}"#),
        ("list_jobs", r#"{"state":"cancelled"}"#),
        ("batch_sum", r#"{"numbers":[1.7976931348623157e308]}"#),
    ] {
        let e = make(tool, args, |_| {});
        t.add(
            format!("args accepted/{tool} {args}"),
            e.to_json(),
            ok(&e.request_id),
        );
    }
    for (tool, args) in [
        ("start_long_task", r#"{"seconds":1}"#),
        ("start_long_task", r#"{"seconds":20,"payload":{}}"#),
    ] {
        let e = make(tool, args, |_| {});
        let expect = Expect::Success {
            http: 202,
            status: Status::Accepted,
            request_id: e.request_id.clone(),
        };
        t.add(format!("args accepted/{tool} {args}"), e.to_json(), expect);
    }

    // Tools that do not exist or are not allowed.
    let e = make("no_such_tool", "{}", |_| {});
    t.add(
        "tool/unknown tool",
        e.to_json(),
        err(404, ErrorCode::UnknownTool, &e.request_id),
    );
    let e = make("Batch_Sum", r#"{"numbers":[1]}"#, |_| {});
    t.add(
        "tool/tool name in another case",
        e.to_json(),
        err(404, ErrorCode::UnknownTool, &e.request_id),
    );
    let e = make("start_long_task", r#"{"seconds":1}"#, |e| {
        e.client_id = "client-002".into()
    });
    t.add(
        "tool/forbidden tool",
        e.to_json(),
        err(403, ErrorCode::ForbiddenTool, &e.request_id),
    );
    let e = make("no_such_tool", "{}", |e| e.client_id = "client-002".into());
    t.add(
        "tool/restricted client, missing tool: forbidden",
        e.to_json(),
        err(403, ErrorCode::ForbiddenTool, &e.request_id),
    );
    let e = make("start_long_task", r#"{"seconds":"bad"}"#, |e| {
        e.client_id = "client-002".into()
    });
    t.add(
        "tool/forbidden before invalid args",
        e.to_json(),
        err(403, ErrorCode::ForbiddenTool, &e.request_id),
    );

    // Jobs: another client's job is unknown to it.
    let args = format!(
        r#"{{"job_id":{}}}"#,
        String::from_utf8(q(others_job)).unwrap()
    );
    for tool in ["poll_job", "cancel_job"] {
        let e = make(tool, &args, |e| e.client_id = "client-002".into());
        t.add(
            format!("jobs/{tool} of another client's job"),
            e.to_json(),
            err(404, ErrorCode::UnknownJob, &e.request_id),
        );
        let e = make(tool, r#"{"job_id":"no-such-job"}"#, |_| {});
        t.add(
            format!("jobs/{tool} of a job that does not exist"),
            e.to_json(),
            err(404, ErrorCode::UnknownJob, &e.request_id),
        );
    }
    let e = make(
        "poll_job",
        r#"{"job_id":"no-such-job","wait_ms":null}"#,
        |_| {},
    );
    t.add(
        "jobs/poll_job with wait_ms null",
        e.to_json(),
        err(404, ErrorCode::UnknownJob, &e.request_id),
    );
    let e = make(
        "poll_job",
        &format!(r#"{{"job_id":"{}"}}"#, others_job.to_uppercase()),
        |_| {},
    );
    t.add(
        "jobs/poll_job of the job id in uppercase",
        e.to_json(),
        err(404, ErrorCode::UnknownJob, &e.request_id),
    );
    // Its owner still sees it, cancels it, and then polls a cancelled job.
    let e = make("poll_job", &args, |_| {});
    let expect = Expect::Success {
        http: 200,
        status: Status::Running,
        request_id: e.request_id.clone(),
    };
    t.add("jobs/owner polls its job", e.to_json(), expect);
    let e = make("cancel_job", &args, |_| {});
    t.add("jobs/owner cancels its job", e.to_json(), ok(&e.request_id));
    let e = make("poll_job", &args, |_| {});
    t.add(
        "jobs/owner polls its cancelled job",
        e.to_json(),
        err(200, ErrorCode::JobCancelled, &e.request_id),
    );
}

fn main_table(others_job: &str) -> Table {
    let mut t = Table::default();
    encoding_cases(&mut t);
    nesting_cases(&mut t);
    size_cases(&mut t);
    number_cases(&mut t);
    duplicate_cases(&mut t);
    surrogate_cases(&mut t);
    field_cases(&mut t);
    signature_cases(&mut t);
    window_cases(&mut t);
    replay_cases(&mut t);
    args_cases(&mut t, others_job);
    t
}

/// With a 8 MiB body limit, the JSON limits themselves answer.
fn large_limit_table() -> Table {
    let mut t = Table::default();
    let e = sum();
    let body = Raw::of(&e).set("nonce", q(&"x".repeat(1 << 20))).bytes();
    t.add("json limits/1 MiB string field", body, bad(""));
    let max = 256 * 1024;
    let e = make(
        "start_long_task",
        &format!(r#"{{"seconds":1,"payload":{{"s":"{}"}}}}"#, "x".repeat(max)),
        |_| {},
    );
    let expect = Expect::Success {
        http: 202,
        status: Status::Accepted,
        request_id: e.request_id.clone(),
    };
    t.add(
        "json limits/string of exactly 256 KiB in a payload: accepted",
        e.to_json(),
        expect,
    );
    let e = sum();
    let body = Raw::of(&e)
        .set(
            "args",
            format!(r#"{{"numbers":["{}"]}}"#, "x".repeat(max + 1)),
        )
        .bytes();
    t.add("json limits/string of 256 KiB + 1", body, bad(""));
    let e = sum();
    let body = Raw::of(&e)
        .set(
            "args",
            format!(r#"{{"numbers":["{}"]}}"#, "\\u0041".repeat(max + 1)),
        )
        .bytes();
    t.add(
        "json limits/escaped string decoding to over 256 KiB",
        body,
        bad(""),
    );
    let e = sum();
    let body = Raw::of(&e)
        .set("args", format!(r#"{{"{}":1}}"#, "k".repeat(max + 1)))
        .bytes();
    t.add("json limits/member name of 256 KiB + 1", body, bad(""));
    let zeros = |n: usize| vec!["0"; n].join(",");
    let e = make(
        "batch_sum",
        &format!(r#"{{"numbers":[{}]}}"#, zeros(100_000)),
        |_| {},
    );
    t.add(
        "json limits/100000 numbers: summed",
        e.to_json(),
        ok(&e.request_id),
    );
    let e = sum();
    let body = Raw::of(&e)
        .set("args", format!(r#"{{"numbers":[{}]}}"#, zeros(100_001)))
        .bytes();
    t.add("json limits/100001 numbers", body, bad(""));
    let members: Vec<String> = (0..100_001).map(|i| format!("\"k{i}\":0")).collect();
    let e = sum();
    let body = Raw::of(&e)
        .set("args", format!("{{{}}}", members.join(",")))
        .bytes();
    t.add("json limits/100001 members in args", body, bad(""));
    t.add(
        "json limits/100000 nested arrays",
        nest_arrays(100_000),
        bad(""),
    );
    t.add(
        "json limits/1000000 nested arrays",
        nest_arrays(1_000_000),
        bad(""),
    );
    t.add(
        "json limits/1000000 open brackets",
        "[".repeat(1_000_000),
        bad(""),
    );
    t.add(
        "json limits/500000 nested objects",
        nest_objects(500_000),
        bad(""),
    );
    let e = sum();
    let body = Raw::of(&e)
        .set("request_id", q(&"r".repeat(max + 1)))
        .bytes();
    t.add("json limits/request_id of 256 KiB + 1", body, bad(""));
    let e = sum();
    let body = Raw::of(&e).set("request_id", q(&"r".repeat(max))).bytes();
    t.add(
        "json limits/request_id of 256 KiB: too long, not echoed",
        body,
        bad(""),
    );
    let e = sum();
    let mut body = e.to_json();
    body.resize(4 << 20, b' ');
    t.add(
        "json limits/valid envelope in 4 MiB of whitespace",
        body,
        ok(&e.request_id),
    );
    t
}

async fn table_server(body_limit: Option<usize>) -> TestServer {
    TestServer::start_with_http(
        |b| {
            b.clock(Arc::new(FixedClock(NOW)))
                .client(
                    ED_CLIENT,
                    vec![key_of(ED_CLIENT).verifying_key()],
                    ToolFilter::All,
                )
                .unwrap()
        },
        |c| {
            if let Some(limit) = body_limit {
                c.body_limit = limit;
            }
        },
    )
    .await
}

// ---------------------------------------------------------------------------
// Raw HTTP, for what reqwest will not send.

fn addr_of(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one HTTP/1.1 response with a Content-Length.
async fn read_response(r: &mut (impl AsyncRead + Unpin)) -> Result<(u16, String, Vec<u8>), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad status line: {head}"))?;
            let header = |name: &str| {
                head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| v.trim().to_owned())
                })
            };
            let ct = header("content-type").unwrap_or_default();
            let len: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no content-length: {head}"))?;
            let mut body = buf[end + 4..].to_vec();
            while body.len() < len {
                let n = r.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err("connection closed inside the body".into());
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
            return Ok((status, ct, body));
        }
        let n = r.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("connection closed after {} bytes", buf.len()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// POSTs `body` (with its Content-Length) from one task while reading the
/// reply in another, so that an early reply is read even if the server
/// stops reading the body.
async fn post_concurrently(addr: &str, body: Vec<u8>) -> Result<(u16, String, Vec<u8>), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let writer = tokio::spawn(async move {
        if wr.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for chunk in body.chunks(64 * 1024) {
            if wr.write_all(chunk).await.is_err() {
                return;
            }
        }
        // Keep the connection open until the reply has been read.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(wr);
    });
    let reply = tokio::time::timeout(Duration::from_secs(20), read_response(&mut rd)).await;
    writer.abort();
    reply.map_err(|_| "no reply within 20 s".to_owned())?
}

/// Announces a 100 MiB body (by Content-Length, or chunked without end)
/// and streams at most 8 MiB of it, lazily, while reading the reply.
/// Returns the reply and how many body bytes were written.
async fn stream_huge(
    s: &TestServer,
    chunked: bool,
) -> Result<(u16, String, Vec<u8>, usize), String> {
    let stream = TcpStream::connect(addr_of(s))
        .await
        .map_err(|e| e.to_string())?;
    let (mut rd, mut wr) = stream.into_split();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", 100u64 << 20)
    };
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    );
    wr.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sent2 = Arc::clone(&sent);
    let writer = tokio::spawn(async move {
        let block = vec![b' '; 64 * 1024];
        let size_line = format!("{:x}\r\n", block.len());
        while sent2.load(std::sync::atomic::Ordering::Relaxed) < 8 << 20 {
            let r = if chunked {
                async {
                    wr.write_all(size_line.as_bytes()).await?;
                    wr.write_all(&block).await?;
                    wr.write_all(b"\r\n").await
                }
                .await
            } else {
                wr.write_all(&block).await
            };
            if r.is_err() {
                break;
            }
            sent2.fetch_add(block.len(), std::sync::atomic::Ordering::Relaxed);
        }
        // Keep the connection half open: never finish the body.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(wr);
    });
    let reply = tokio::time::timeout(Duration::from_secs(15), read_response(&mut rd)).await;
    writer.abort();
    let (status, ct, body) = reply.map_err(|_| "no reply within 15 s".to_owned())??;
    Ok((
        status,
        ct,
        body,
        sent.load(std::sync::atomic::Ordering::Relaxed),
    ))
}

/// Serializes the tests that send many megabytes, so that the memory
/// measurement of one is not the allocation of another.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `tasks` concurrent clients each send `per_task` near-limit hostile
/// bodies (a 60 KB truncated envelope, 10 000 nested objects, a valid
/// envelope padded to 64 KiB) and check each reply. Returns the bytes sent.
async fn soak(s: &TestServer, tasks: usize, per_task: usize) -> Result<u64, String> {
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let http = s.http.clone();
        let url = s.url.clone();
        set.spawn(async move {
            let mut sent = 0u64;
            for i in 0..per_task {
                let (body, expect) = match (task + i) % 3 {
                    0 => {
                        let e = sum();
                        let mut b = Raw::of(&e).set("nonce", q(&"n".repeat(60_000))).bytes();
                        b.truncate(b.len() - 2);
                        (b, bad(""))
                    }
                    1 => {
                        let e = sum();
                        let body = Raw::of(&e)
                            .set("args", format!(r#"{{"numbers":{}}}"#, nest_objects(10_000)))
                            .bytes();
                        (body, bad(""))
                    }
                    _ => {
                        let e = sum();
                        let mut b = e.to_json();
                        b.resize(BODY_LIMIT, b'\n');
                        (b, ok(&e.request_id))
                    }
                };
                sent += body.len() as u64;
                let resp = http
                    .post(&url)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("request {task}/{i}: {e}"))?;
                let status = resp.status().as_u16();
                let ct = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let bytes = resp
                    .bytes()
                    .await
                    .map_err(|e| format!("reply {task}/{i}: {e}"))?;
                check_reply(status, ct.as_deref(), &bytes, &expect)
                    .map_err(|e| format!("request {task}/{i}: {e}"))?;
            }
            Ok::<u64, String>(sent)
        });
    }
    let mut total = 0;
    while let Some(joined) = set.join_next().await {
        total += joined.map_err(|e| e.to_string())??;
    }
    Ok(total)
}

fn rss_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

// ---------------------------------------------------------------------------
// The tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_table() {
    // The memory check below is only meaningful while no other hostile test
    // allocates large bodies in this process.
    let _heavy = HEAVY.lock().await;
    let started = Instant::now();
    let rss_before = rss_kib("VmRSS");
    let s = table_server(None).await;

    // A job of client-001, for the ownership cases.
    let job = make("start_long_task", r#"{"seconds":20}"#, |_| {});
    let (http, resp) = s.send(&job).await;
    assert_eq!(http, 202, "{resp:?}");
    let job_id = result_json(&resp)["job_id"].as_str().unwrap().to_owned();

    let table = main_table(&job_id);
    let count = table.len();
    assert!(count >= 200, "the hostile table shrank to {count} cases");
    let mut failures = run_table(&s, &table).await;

    // Streamed 100 MiB bodies: refused after the limit, without reading it all.
    for chunked in [false, true] {
        let what = if chunked { "chunked" } else { "Content-Length" };
        match stream_huge(&s, chunked).await {
            Ok((status, ct, body, sent)) => {
                let expect = err(413, ErrorCode::TooLarge, "");
                if let Err(e) = check_reply(status, Some(&ct), &body, &expect) {
                    failures.push(format!("stream/100 MiB {what}: {e}"));
                }
                if sent >= 8 << 20 {
                    failures.push(format!(
                        "stream/100 MiB {what}: the server read all {sent} bytes sent"
                    ));
                }
            }
            Err(e) => failures.push(format!("stream/100 MiB {what}: {e}")),
        }
    }
    // Other paths and methods are the framework's, unsigned.
    let get = s.http.get(&s.url).send().await.unwrap();
    if get.status().as_u16() != 405 {
        failures.push(format!("method/GET /mcp: HTTP {}", get.status()));
    }
    let other = s
        .http
        .post(format!("{}/other", s.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    if other.status().as_u16() != 404 {
        failures.push(format!("path/POST /other: HTTP {}", other.status()));
    }

    // A soak: many near-limit hostile bodies, far more bytes in total than
    // the memory slack allowed below, so a per-request leak would show.
    let soak_started = Instant::now();
    let soaked = match soak(&s, 4, 600).await {
        Ok(bytes) => bytes,
        Err(e) => {
            failures.push(format!("soak: {e}"));
            0
        }
    };
    let soak_time = soak_started.elapsed();

    // After all that, a valid call still works, promptly.
    let t = Instant::now();
    let e = sum();
    let (http, resp) = s.send(&e).await;
    assert_eq!((http, resp.status), (200, Status::Ok), "{resp:?}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "valid call took {:?}",
        t.elapsed()
    );
    assert_no_failures("hostile table", count + 4, &failures);

    s.stop().await;
    drop(table);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_after = rss_kib("VmRSS");
    let peak = rss_kib("VmHWM");
    eprintln!(
        "hostile table: {count} cases (+4 transport checks), soak of {} MiB in {soak_time:?}, all in {:?}; VmRSS before {rss_before:?} KiB, after {rss_after:?} KiB, peak {peak:?} KiB",
        soaked >> 20,
        started.elapsed()
    );
    assert!(soaked > (64 << 20) * 2, "the soak sent only {soaked} bytes");
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        assert!(
            after <= before + 64 * 1024,
            "resident memory grew from {before} KiB to {after} KiB"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_with_a_large_body_limit() {
    let _heavy = HEAVY.lock().await;
    let s = table_server(Some(8 << 20)).await;
    let table = large_limit_table();
    let failures = run_table(&s, &table).await;
    let e = sum();
    assert_eq!(s.send(&e).await.0, 200);
    assert_no_failures("large-limit table", table.len(), &failures);
    s.stop().await;
}

#[test]
fn hostile_case_count() {
    let main = main_table("job").len();
    let large = large_limit_table().len();
    eprintln!("hostile cases: main table {main}, large-limit table {large}");
    assert!(main >= 200, "main table has only {main} cases");
    assert!(main + large >= 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_slowloris_does_not_starve_valid_calls() {
    let s = TestServer::start().await;
    let addr = addr_of(&s);
    // Eight connections trickling header bytes, never finishing, plus one
    // that connects and says nothing.
    let mut slow = Vec::new();
    for i in 0..9 {
        let addr = addr.clone();
        slow.push(tokio::spawn(async move {
            let mut c = TcpStream::connect(&addr).await.unwrap();
            let opened = Instant::now();
            if i > 0 {
                c.write_all(b"POST /mcp HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .await
                    .unwrap();
            }
            let mut buf = [0u8; 256];
            loop {
                if opened.elapsed() > Duration::from_secs(10) {
                    return None;
                }
                match tokio::time::timeout(Duration::from_millis(50), c.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return Some(opened.elapsed()),
                    Ok(Ok(_)) => return Some(opened.elapsed()),
                    Err(_) => {}
                }
                if i > 0 && c.write_all(b"a").await.is_err() {
                    return Some(opened.elapsed());
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Valid calls meanwhile are answered quickly.
    for _ in 0..5 {
        let t = Instant::now();
        let e = envelope(
            "client-001",
            CLIENT_SECRET,
            "batch_sum",
            serde_json::json!({"numbers": [1]}),
        );
        let reply = s.send(&e).await;
        assert_eq!(reply.0, 200);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "valid call took {:?}",
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every slow connection is cut after about the header timeout (600 ms).
    for (i, h) in slow.into_iter().enumerate() {
        let closed = h.await.unwrap();
        let closed = closed.unwrap_or_else(|| panic!("slow connection {i} still open after 10 s"));
        assert!(
            closed >= Duration::from_millis(500) && closed < Duration::from_secs(5),
            "slow connection {i} closed after {closed:?}"
        );
    }
    let e = envelope(
        "client-001",
        CLIENT_SECRET,
        "batch_sum",
        serde_json::json!({"numbers": [1]}),
    );
    assert_eq!(s.send(&e).await.0, 200);
    s.stop().await;
}

/// Sends headers announcing `announced` body bytes, then `sent` bytes, then
/// (when `close`) shuts the write half; returns the reply.
async fn short_body(
    s: &TestServer,
    announced: usize,
    sent: &[u8],
    close: bool,
) -> Result<(u16, String, Vec<u8>), String> {
    let mut c = TcpStream::connect(addr_of(s))
        .await
        .map_err(|e| e.to_string())?;
    let head = format!("POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: {announced}\r\n\r\n");
    c.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    c.write_all(sent).await.map_err(|e| e.to_string())?;
    if close {
        c.shutdown().await.map_err(|e| e.to_string())?;
    }
    tokio::time::timeout(Duration::from_secs(5), read_response(&mut c))
        .await
        .map_err(|_| "no reply within 5 s".to_owned())?
}

#[tokio::test]
async fn hostile_slow_and_short_bodies_get_signed_replies() {
    // The body timeout (600 ms) and a body cut short both end in a signed
    // error with request_id "" (the exact code: see the ignored test below).
    let s = TestServer::start().await;
    for (name, close) in [("slow body", false), ("short body", true)] {
        let t = Instant::now();
        let (status, ct, body) = short_body(&s, 1000, b"{\"request_id\":", close)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ct, "application/json", "{name}");
        let resp = check_signed(&body);
        assert!(!resp.ok && resp.status == Status::Error, "{name}: {resp:?}");
        assert_eq!(resp.request_id, "", "{name}");
        assert!(status >= 400, "{name}: HTTP {status}");
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{name}: took {:?}",
            t.elapsed()
        );
    }
    let e = envelope(
        "client-001",
        CLIENT_SECRET,
        "batch_sum",
        serde_json::json!({"numbers": [1]}),
    );
    assert_eq!(s.send(&e).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn hostile_replay_after_restart_with_sqlite_store() {
    let (url, dir) = crate::store_contract::sqlite_url("hostile-restart");
    let stores = store::open(&url).await.unwrap();
    let s = TestServer::start_with(|b| {
        b.job_store(stores.jobs.clone())
            .nonce_store(stores.nonces.clone())
    })
    .await;
    let env = envelope(
        "client-001",
        CLIENT_SECRET,
        "batch_sum",
        serde_json::json!({"numbers": [1]}),
    );
    assert_eq!(s.send(&env).await.0, 200);
    s.stop().await;
    drop(stores);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A new server on the same file: the replay is refused.
    let stores = store::open(&url).await.unwrap();
    let s = TestServer::start_with(|b| {
        b.job_store(stores.jobs.clone())
            .nonce_store(stores.nonces.clone())
    })
    .await;
    assert_error(
        &s.send(&env).await,
        401,
        ErrorCode::ReplayedNonce,
        &env.request_id,
    );
    let mut again = env.clone();
    again.ts_ms = now_ms();
    again.sign(&SigningKey::hmac(CLIENT_SECRET).unwrap());
    assert_error(
        &s.send(&again).await,
        401,
        ErrorCode::ReplayedNonce,
        &env.request_id,
    );
    let mut other = env.clone();
    other.client_id = "client-002".into();
    other.sign(&SigningKey::hmac(OTHER_SECRET).unwrap());
    assert_eq!(s.send(&other).await.0, 200, "same nonce, other client");
    let fresh = envelope(
        "client-001",
        CLIENT_SECRET,
        "batch_sum",
        serde_json::json!({"numbers": [1]}),
    );
    assert_eq!(s.send(&fresh).await.0, 200);
    s.stop().await;
    drop(stores);
    let _ = std::fs::remove_dir_all(dir);
}

/// Cases where this implementation disagrees with docs/SPEC.md (or with
/// its own client): each row expects the behaviour SPEC.md describes.
fn spec_disagreement_cases(t: &mut Table) {
    // §4.1/§4.3/§6.1/§8: "`v`, if present, is a string equal to "mcp/0.1"
    // (else unsupported_version)". A non-string `v` gets bad_envelope.
    for lit in ["0.1", "null", "true", "[]", "{}", "1"] {
        let e = sum();
        t.add(
            format!("version/v is {lit}"),
            Raw::of(&e).set("v", lit).bytes(),
            err(400, ErrorCode::UnsupportedVersion, &e.request_id),
        );
    }
    // §9: "`payload`, if present, must be an object" (null means absent only
    // for wait_ms, state and limit). `"payload": null` is accepted (202).
    let e = make("start_long_task", r#"{"seconds":1,"payload":null}"#, |_| {});
    t.add(
        "args/start_long_task payload null",
        e.to_json(),
        invalid_args(&e.request_id),
    );
    // invalid_args messages quote the offending value with Rust's Debug
    // escaping: one raw DEL byte (U+007F) becomes the 6 characters
    // `\u{7f}`. A 60 000-character string in a 60 KB request gives a
    // 360 000-byte error string, over the 256 KiB string limit with which
    // lacre's own Response::parse / verify_response read replies: the
    // signed reply cannot be read by lacre's client.
    let args = format!(r#"{{"numbers":["{}"]}}"#, "\u{7f}".repeat(60_000));
    let e = make("batch_sum", &args, |_| {});
    // Sent raw (DEL needs no escape), so the body stays under 64 KiB.
    let body = Raw::of(&e).set("args", &args).bytes();
    assert!(body.len() < BODY_LIMIT);
    t.add(
        "reply size/60000 DEL characters in batch_sum numbers",
        body,
        invalid_args(&e.request_id),
    );
}

#[tokio::test]
async fn hostile_review_findings_stay_fixed() {
    let _heavy = HEAVY.lock().await;
    let s = table_server(None).await;
    let mut failures = Vec::new();
    // §7.1: a body that cannot be read (too slow, or cut short) is
    // answered bad_envelope, HTTP 400, request_id "".
    for (name, close) in [("slow body", false), ("short body", true)] {
        match short_body(&s, 1000, b"{\"request_id\":", close).await {
            Ok((status, ct, body)) => {
                let expect = err(400, ErrorCode::BadEnvelope, "");
                if let Err(e) = check_reply(status, Some(&ct), &body, &expect) {
                    failures.push(format!("body/{name}: {e}"));
                }
            }
            Err(e) => failures.push(format!("body/{name}: {e}")),
        }
    }
    let mut t = Table::default();
    spec_disagreement_cases(&mut t);
    failures.extend(run_table(&s, &t).await);
    s.stop().await;

    // With a larger body limit (the default is 1 MiB), a 256 KiB string
    // (within the parser's limit) is quoted back whole in the error.
    let s = table_server(Some(1 << 20)).await;
    let mut t2 = Table::default();
    let e = make(
        "batch_sum",
        &format!(r#"{{"numbers":["{}"]}}"#, "x".repeat(256 * 1024)),
        |_| {},
    );
    t2.add(
        "reply size/256 KiB string in batch_sum numbers",
        e.to_json(),
        invalid_args(&e.request_id),
    );
    failures.extend(run_table(&s, &t2).await);
    s.stop().await;
    for f in &failures {
        eprintln!("FAILED FINDING {}", f.chars().take(600).collect::<String>());
    }
    assert_no_failures("SPEC disagreements", t.len() + t2.len() + 2, &failures);
}
