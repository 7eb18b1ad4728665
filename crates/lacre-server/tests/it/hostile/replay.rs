//! Replays: the same nonce again, across clients, after the window.

use super::*;

/// Replays, in order: every pair of rows is "first use, then reuse".
pub(super) fn replay_cases(t: &mut Table) {
    let replayed = |e: &Envelope| err(401, ErrorCode::ReplayedNonce, &e.request_id);
    let first = sum();
    t.accept("replay/first use", &first);
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
    let again = anew(&first);
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
    t.accept("replay/same nonce, other client: accepted", &other);
    let other2 = anew(&other);
    t.add(
        "replay/same nonce, other client, again",
        other2.to_json(),
        replayed(&other2),
    );
    let e = ed_sum();
    t.accept("replay/Ed25519 client first use", &e);
    t.add("replay/Ed25519 client replay", e.to_json(), replayed(&e));

    // Refusals before the nonce step do not burn the nonce.
    type Tweak = fn(&mut Envelope);
    let before: [(&str, Tweak, ErrorCode); 3] = [
        (
            "forged",
            |e| e.args = parse_args(r#"{"numbers":[666]}"#),
            ErrorCode::BadSignature,
        ),
        (
            "stale",
            |e| {
                e.ts_ms = NOW - WINDOW - 1;
                e.sign(&key_of("client-001"));
            },
            ErrorCode::StaleTimestamp,
        ),
        (
            "wrong-server",
            |e| {
                e.server_id = "elsewhere".into();
                e.sign(&key_of("client-001"));
            },
            ErrorCode::WrongServer,
        ),
    ];
    for (what, tweak, code) in before {
        let genuine = sum();
        let mut other = genuine.clone();
        other.request_id = unique("rid");
        tweak(&mut other);
        t.refuse(format!("replay/{what} use of a nonce"), &other, 401, code);
        t.accept(format!("replay/genuine use after the {what} one"), &genuine);
    }

    // Refusals after the nonce step burn it.
    let bad_args = make("batch_sum", r#"{"numbers":[]}"#, |_| {});
    t.refuse(
        "replay/invalid_args use of a nonce",
        &bad_args,
        422,
        ErrorCode::InvalidArgs,
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
    t.refuse(
        "replay/unknown_tool use of a nonce",
        &unknown,
        404,
        ErrorCode::UnknownTool,
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
    t.accept("replay/immediate call", &first);
    t.add(
        "replay/immediate retry with a fresh nonce",
        retry.to_json(),
        ok(&first.request_id),
    );
}
