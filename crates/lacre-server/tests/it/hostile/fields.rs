//! Every envelope field: missing, of the wrong type, empty, too long, extra.

use super::*;

pub(super) fn field_cases(t: &mut Table) {
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
    type Tweak = fn(&mut Envelope);
    type Refusal = Option<(u16, ErrorCode)>;
    let at_128: [(&str, Tweak, Refusal); 5] = [
        ("request_id", |e| e.request_id = padded("", 128), None),
        ("nonce", |e| e.nonce = padded("", 128), None),
        (
            "client_id",
            |e| e.client_id = "a".repeat(128),
            Some((401, ErrorCode::UnknownClient)),
        ),
        (
            "server_id",
            |e| e.server_id = "a".repeat(128),
            Some((401, ErrorCode::WrongServer)),
        ),
        (
            "tool",
            |e| e.tool = "a".repeat(128),
            Some((404, ErrorCode::UnknownTool)),
        ),
    ];
    for (field, tweak, refusal) in at_128 {
        let e = make("batch_sum", r#"{"numbers":[1]}"#, tweak);
        let name = format!("field/{field} 128 characters");
        match refusal {
            None => t.accept(name, &e),
            Some((http, code)) => t.refuse(format!("{name}: {code}"), &e, http, code),
        }
    }
    let e = sum();
    let body = with_signature(&e, &"ab".repeat(64));
    t.add(
        "field/signature 128 hex characters: bad signature",
        body,
        err(401, ErrorCode::BadSignature, &e.request_id),
    );
    // Characters, not bytes.
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.nonce = "\u{e9}".repeat(128)
    });
    t.accept("field/nonce of 128 e-acute (256 bytes)", &e);
    let e = sum();
    let body = Raw::of(&e).set("nonce", q(&"\u{e9}".repeat(129))).bytes();
    t.add("field/nonce of 129 e-acute", body, bad(&e.request_id));
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.request_id = padded(&"\u{1F600}".repeat(100), 128)
    });
    t.accept("field/request_id of 128 characters incl. 100 astral", &e);
    let e = sum();
    let body = Raw::of(&e)
        .set("request_id", q(&"\u{1F600}".repeat(129)))
        .bytes();
    t.add("field/request_id of 129 astral characters", body, bad(""));
    let e = make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.nonce = format!("{}\u{0}\n\"\\", e.nonce)
    });
    t.accept("field/nonce with NUL, LF, quote, backslash (escaped)", &e);

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
