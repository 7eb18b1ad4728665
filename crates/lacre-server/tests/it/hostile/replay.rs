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
    t.accept("replay/same nonce, other client: accepted", &other);
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
    t.accept("replay/Ed25519 client first use", &e);
    t.add("replay/Ed25519 client replay", e.to_json(), replayed(&e));

    // Refusals before the nonce step do not burn the nonce.
    let genuine = sum();
    let mut forged = genuine.clone();
    forged.args = parse_args(r#"{"numbers":[666]}"#);
    forged.request_id = unique("rid");
    t.refuse(
        "replay/forged use of a nonce",
        &forged,
        401,
        ErrorCode::BadSignature,
    );
    t.accept("replay/genuine use after the forged one", &genuine);
    let genuine = sum();
    let mut stale = genuine.clone();
    stale.ts_ms = NOW - WINDOW - 1;
    stale.request_id = unique("rid");
    stale.sign(&key_of("client-001"));
    t.refuse(
        "replay/stale use of a nonce",
        &stale,
        401,
        ErrorCode::StaleTimestamp,
    );
    t.accept("replay/genuine use after the stale one", &genuine);
    let genuine = sum();
    let mut wrong = genuine.clone();
    wrong.server_id = "elsewhere".into();
    wrong.request_id = unique("rid");
    wrong.sign(&key_of("client-001"));
    t.refuse(
        "replay/wrong-server use of a nonce",
        &wrong,
        401,
        ErrorCode::WrongServer,
    );
    t.accept("replay/genuine use after the wrong-server one", &genuine);

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
