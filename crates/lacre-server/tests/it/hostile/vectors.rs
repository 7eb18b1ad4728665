//! The JSON-level cases of `testdata/vectors/hostile.json`, in the table.

use super::*;

/// The vector file, from this crate's directory.
const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/vectors/hostile.json"
);

/// How many cases the file holds (a floor would let cases vanish).
pub(super) const VECTOR_CASES: usize = 311;

fn part_bytes(part: &serde_json::Value) -> Vec<u8> {
    let one = match (part.get("text"), part.get("hex")) {
        (Some(t), None) => t.as_str().unwrap().as_bytes().to_vec(),
        (None, Some(h)) => lacre_proto::from_hex(h.as_str().unwrap()).unwrap(),
        _ => panic!("a part is text or hex: {part}"),
    };
    let repeat = part.get("repeat").map_or(1, |r| r.as_u64().unwrap());
    one.repeat(usize::try_from(repeat).unwrap())
}

fn expect_of(e: &serde_json::Value) -> Expect {
    let http = u16::try_from(e["http"].as_u64().unwrap()).unwrap();
    let request_id = e["request_id"].as_str().unwrap().to_owned();
    match (e.get("code"), e.get("status")) {
        (Some(code), None) => Expect::Error {
            http,
            code: ErrorCode::parse(code.as_str().unwrap()),
            request_id,
        },
        (None, Some(status)) => Expect::Success {
            http,
            status: match status.as_str().unwrap() {
                "ok" => Status::Ok,
                "accepted" => Status::Accepted,
                other => panic!("unexpected status {other}"),
            },
            request_id,
        },
        _ => panic!("an expectation has a code or a status: {e}"),
    }
}

/// Adds every case of the vector file.
pub(super) fn vector_cases(t: &mut Table) {
    let text = std::fs::read(FILE).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let setup = &doc["setup"];
    assert_eq!(setup["server_id"], SERVER_ID);
    assert_eq!(setup["now_ms"], NOW);
    assert_eq!(setup["max_skew_ms"], WINDOW);
    assert_eq!(setup["body_limit"], BODY_LIMIT);
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), VECTOR_CASES, "{FILE} changed size");
    for c in cases {
        let body = if let Some(parts) = c.get("parts") {
            parts
                .as_array()
                .unwrap()
                .iter()
                .flat_map(part_bytes)
                .collect()
        } else {
            part_bytes(c)
        };
        t.add(c["name"].as_str().unwrap(), body, expect_of(&c["expect"]));
    }
}
