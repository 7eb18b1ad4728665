//! Signatures (forged, malformed, malleated, wrong key or algorithm) and the timestamp window's edges.

use super::*;

/// A change to a signature's text.
type SigEdit = fn(&str) -> String;

/// Signatures: length, case, alphabet, algorithm, key, message.
pub(super) fn signature_cases(t: &mut Table) {
    let bad_sig = |e: &Envelope| err(401, ErrorCode::BadSignature, &e.request_id);
    for n in [0usize, 1, 63, 65, 127, 128, 129, 256] {
        let e = sum();
        let sig: String = e.signature.chars().cycle().take(n).collect();
        t.add(
            format!("signature/{n} hex digits"),
            with_signature(&e, &sig),
            bad_sig(&e),
        );
    }
    let e = sum();
    let upper = e.signature.to_uppercase();
    assert_ne!(upper, e.signature);
    t.add(
        "signature/valid but uppercase",
        with_signature(&e, &upper),
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
        with_signature(&e, &mixed),
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
            with_signature(&e, &s),
            bad_sig(&e),
        );
    }
    let e = sum();
    let with_ws = with_signature(&e, &format!(" {}", e.signature));
    t.add("signature/valid with a leading space", with_ws, bad_sig(&e));

    // Right length and alphabet, wrong key or message.
    type Tweak = fn(&mut Envelope);
    let wrong: [(&str, Tweak); 6] = [
        ("valid Ed25519 signature for an HMAC client", |e| {
            e.signature = SigningKey::ed25519_from_seed(&ED_SEED)
                .unwrap()
                .sign_hex(&e.signing_bytes())
        }),
        ("valid HMAC by another client's key", |e| {
            e.sign(&SigningKey::hmac(OTHER_SECRET).unwrap())
        }),
        ("valid HMAC by the server's key", |e| {
            e.sign(&SigningKey::hmac(SERVER_SECRET).unwrap())
        }),
        ("valid signature of another envelope", |e| {
            e.signature = sum().signature
        }),
        ("args changed after signing", |e| {
            e.args = parse_args(r#"{"numbers":[1000]}"#)
        }),
        ("ts_ms changed after signing", |e| e.ts_ms += 1),
    ];
    for (name, tweak) in wrong {
        let mut e = sum();
        tweak(&mut e);
        t.add(format!("signature/{name}"), e.to_json(), bad_sig(&e));
    }
    let e = sum();
    let signed_over_key = SigningKey::hmac(CLIENT_SECRET)
        .unwrap()
        .sign_hex(&e.to_json());
    let body = with_signature(&e, &signed_over_key);
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

    // The Ed25519 client.
    let e = ed_sum();
    t.accept("signature/Ed25519 client, valid", &e);
    let mut e = ed_sum();
    e.sign(&SigningKey::hmac(CLIENT_SECRET).unwrap());
    t.add(
        "signature/HMAC-length signature for an Ed25519 client",
        e.to_json(),
        bad_sig(&e),
    );
    // Of the right length and alphabet, but not the signature.
    type Replace = fn(&Envelope) -> String;
    let replaced: [(&str, Envelope, Replace); 3] = [
        ("all zeros", sum(), |_| "0".repeat(64)),
        ("Ed25519 uppercase", ed_sum(), |e| {
            e.signature.to_uppercase()
        }),
        ("Ed25519 all zeros", ed_sum(), |_| "0".repeat(128)),
    ];
    for (name, e, replace) in replaced {
        let body = with_signature(&e, &replace(&e));
        t.add(format!("signature/{name}"), body, bad_sig(&e));
    }
    let e = ed_sum();
    let raw = lacre_proto::from_hex(&e.signature).unwrap();
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let malleated = [&raw[..32], &add_le(&raw[32..], &L)[..]].concat();
    let body = with_signature(&e, &lacre_proto::to_hex(&malleated));
    t.add(
        "signature/Ed25519 malleated S + L (non-canonical)",
        body,
        bad_sig(&e),
    );
    let mut e = ed_sum();
    e.signature = SigningKey::ed25519_from_seed(&[8u8; 32])
        .unwrap()
        .sign_hex(&e.signing_bytes());
    t.add("signature/Ed25519 by another key", e.to_json(), bad_sig(&e));

    // Who: unknown client, another server, and the order of the checks.
    use ErrorCode::{UnknownClient, WrongServer};
    let who = [
        ("client-999", "client id unknown", UnknownClient),
        ("CLIENT-001", "client id in another case", UnknownClient),
        (
            "client-001 ",
            "client id with a trailing space",
            UnknownClient,
        ),
        ("mcp-server-002", "server id another", WrongServer),
        ("MCP-SERVER-001", "server id in another case", WrongServer),
    ];
    for (id, why, code) in who {
        // The code names the field that is wrong.
        let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| match code {
            WrongServer => e.server_id = id.into(),
            _ => e.client_id = id.into(),
        });
        t.refuse(format!("who/{why}"), &e, 401, code);
    }
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.server_id = "elsewhere".into();
        e.client_id = "client-999".into();
        e.ts_ms = 0;
    });
    t.refuse(
        "order/wrong server before unknown client",
        &e,
        401,
        ErrorCode::WrongServer,
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
    t.refuse(
        "order/stale timestamp before unknown tool",
        &e,
        401,
        ErrorCode::StaleTimestamp,
    );
}

/// The timestamp window's edges (the server's clock is fixed at NOW).
pub(super) fn window_cases(t: &mut Table) {
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
