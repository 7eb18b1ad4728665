//! Replays: the same nonce again, across clients, after the window.

use super::*;

/// Replays, in order: every pair of rows is "first use, then reuse".
pub(super) fn replay_cases(t: &mut Table) {
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
