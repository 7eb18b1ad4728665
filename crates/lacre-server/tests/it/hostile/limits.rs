//! With a large body limit, the JSON parsing limits themselves answer.

use super::*;

/// With a 8 MiB body limit, the JSON limits themselves answer.
pub(super) fn large_limit_table() -> Table {
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
    t.accept("json limits/100000 numbers: summed", &e);
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
