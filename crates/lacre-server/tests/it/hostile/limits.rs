//! With a large body limit, the JSON parsing limits themselves answer.

use super::*;

/// With a 8 MiB body limit, the JSON limits themselves answer.
pub(super) fn large_limit_table() -> Table {
    let mut t = Table::default();
    let max = 256 * 1024;
    // A valid call with one member's value replaced.
    let with = |member: &str, value: Vec<u8>| Raw::of(&sum()).set(member, value).bytes();
    let args = |text: String| with("args", text.into_bytes());
    let numbers = |items: String| args(format!(r#"{{"numbers":[{items}]}}"#));
    let zeros = |n: usize| vec!["0"; n].join(",");
    let members: Vec<String> = (0..100_001).map(|i| format!("\"k{i}\":0")).collect();
    let refused = [
        ("1 MiB string field", with("nonce", q(&"x".repeat(1 << 20)))),
        (
            "string of 256 KiB + 1",
            numbers(format!(r#""{}""#, "x".repeat(max + 1))),
        ),
        (
            "escaped string decoding to over 256 KiB",
            numbers(format!(r#""{}""#, "\\u0041".repeat(max + 1))),
        ),
        (
            "member name of 256 KiB + 1",
            args(format!(r#"{{"{}":1}}"#, "k".repeat(max + 1))),
        ),
        ("100001 numbers", numbers(zeros(100_001))),
        (
            "100001 members in args",
            args(format!("{{{}}}", members.join(","))),
        ),
        ("100000 nested arrays", nest_arrays(100_000).into_bytes()),
        ("1000000 nested arrays", nest_arrays(1_000_000).into_bytes()),
        ("1000000 open brackets", "[".repeat(1_000_000).into_bytes()),
        ("500000 nested objects", nest_objects(500_000).into_bytes()),
        (
            "request_id of 256 KiB + 1",
            with("request_id", q(&"r".repeat(max + 1))),
        ),
        (
            "request_id of 256 KiB: too long, not echoed",
            with("request_id", q(&"r".repeat(max))),
        ),
    ];
    for (name, body) in refused {
        t.add(format!("json limits/{name}"), body, bad(""));
    }
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
    let e = make(
        "batch_sum",
        &format!(r#"{{"numbers":[{}]}}"#, zeros(100_000)),
        |_| {},
    );
    t.accept("json limits/100000 numbers: summed", &e);
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
