//! Property test against CPython itself: 10 000 random JSON texts, piped
//! through `python3` in one batch, must canonicalize to the same bytes.

use lacre_proto::{canonical, parse, ParseLimits};
use std::io::Write;
use std::process::{Command, Stdio};

/// splitmix64: a small deterministic generator (the test must be repeatable).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn ws(rng: &mut Rng, out: &mut String) {
    for _ in 0..rng.below(3) {
        out.push(if rng.chance(50) { ' ' } else { '\t' });
    }
}

fn random_char(rng: &mut Rng) -> char {
    let c = match rng.below(8) {
        0 => rng.below(0x20) as u32,
        1 => 0x20 + rng.below(0x5f) as u32,
        2 => 0x7f + rng.below(0x81) as u32,
        3 => 0x100 + rng.below(0xd800 - 0x100) as u32,
        4 => 0xe000 + rng.below(0x2000) as u32,
        5 => 0x10000 + rng.below(0x100000) as u32,
        6 => *[0x22u32, 0x5c, 0x2f, 0x2028, 0xfeff, 0xffff]
            .get(rng.below(6) as usize)
            .unwrap_or(&0x41),
        _ => 0x61 + rng.below(26) as u32,
    };
    char::from_u32(c).unwrap_or('x')
}

fn write_escaped_unit(rng: &mut Rng, unit: u16, out: &mut String) {
    let s = format!("{unit:04x}");
    out.push_str("\\u");
    if rng.chance(30) {
        out.push_str(&s.to_uppercase());
    } else {
        out.push_str(&s);
    }
}

fn random_string(rng: &mut Rng, out: &mut String) {
    out.push('"');
    for _ in 0..rng.below(12) {
        let c = random_char(rng);
        let must_escape = (c as u32) < 0x20 || c == '"' || c == '\\';
        if must_escape || rng.chance(25) {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '/' if rng.chance(50) => out.push_str("\\/"),
                '\n' if rng.chance(50) => out.push_str("\\n"),
                '\t' if rng.chance(50) => out.push_str("\\t"),
                _ => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units).iter() {
                        write_escaped_unit(rng, *u, out);
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out.push('"');
}

fn random_number(rng: &mut Rng, out: &mut String) {
    match rng.below(7) {
        0 => out.push_str(&(rng.below(2000) as i64 - 1000).to_string()),
        1 => out.push_str(&(rng.next() as i64).to_string()),
        2 => {
            if rng.chance(50) {
                out.push('-');
            }
            out.push(char::from(b'1' + rng.below(9) as u8));
            for _ in 0..rng.below(60) + 19 {
                out.push(char::from(b'0' + rng.below(10) as u8));
            }
        }
        3 | 4 => {
            let f = loop {
                let f = f64::from_bits(rng.next());
                if f.is_finite() {
                    break f;
                }
            };
            match rng.below(3) {
                0 => out.push_str(&format!("{f:?}")),
                1 => out.push_str(&format!("{f:e}")),
                _ => out.push_str(&format!("{f:E}")),
            }
        }
        5 => {
            // Decimal literals with more digits than a double holds.
            out.push_str(if rng.chance(50) { "0." } else { "-12." });
            for _ in 0..rng.below(30) + 1 {
                out.push(char::from(b'0' + rng.below(10) as u8));
            }
            if rng.chance(50) {
                out.push_str(&format!("e{}", rng.below(40) as i64 - 20));
            }
        }
        _ => {
            let f = (rng.below(1 << 20) as f64) / f64::from(1u32 << rng.below(20));
            out.push_str(&format!("{f:?}"));
        }
    }
}

fn random_value(rng: &mut Rng, depth: u32, out: &mut String) {
    let kind = if depth >= 5 {
        rng.below(5)
    } else {
        rng.below(7)
    };
    match kind {
        0 => out.push_str("null"),
        1 => out.push_str(if rng.chance(50) { "true" } else { "false" }),
        2 | 3 => random_number(rng, out),
        4 => random_string(rng, out),
        5 => {
            out.push('[');
            for i in 0..rng.below(5) {
                if i > 0 {
                    out.push(',');
                }
                ws(rng, out);
                random_value(rng, depth + 1, out);
                ws(rng, out);
            }
            out.push(']');
        }
        _ => {
            out.push('{');
            let mut keys = std::collections::HashSet::new();
            let mut first = true;
            for _ in 0..rng.below(6) {
                let mut key = String::new();
                random_string(rng, &mut key);
                // Unique by decoded value, so no duplicate keys (which we reject).
                let decoded = parse(key.as_bytes(), ParseLimits::default()).ok();
                if !keys.insert(format!("{decoded:?}")) {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                ws(rng, out);
                out.push_str(&key);
                ws(rng, out);
                out.push(':');
                ws(rng, out);
                random_value(rng, depth + 1, out);
            }
            out.push('}');
        }
    }
}

const PY: &str = r#"
import json, sys
out = []
for line in sys.stdin.buffer.read().split(b"\n"):
    if not line:
        continue
    v = json.loads(line.decode("utf-8"))
    out.append(json.dumps(v, separators=(",", ":"), sort_keys=True))
sys.stdout.write("\n".join(out) + "\n")
"#;

/// Whether python3 is available; in CI its absence is a failure, elsewhere a skip.
pub fn python3_or_skip(test: &str) -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none() && std::env::var_os("LACRE_REQUIRE_ALL").is_none(),
            "{test}: python3 is required in CI but was not found"
        );
        eprintln!("SKIPPED {test}: python3 not found (install python3 to run it)");
    }
    ok
}

#[test]
fn ten_thousand_random_values_match_cpython() {
    if !python3_or_skip("ten_thousand_random_values_match_cpython") {
        return;
    }
    const N: usize = 10_000;
    let mut rng = Rng(0x5167_4e37_0000_0001);
    let mut inputs = Vec::with_capacity(N);
    while inputs.len() < N {
        let mut text = String::new();
        ws(&mut rng, &mut text);
        random_value(&mut rng, 0, &mut text);
        ws(&mut rng, &mut text);
        // Keep only values the core accepts (e.g. no float overflowing to inf).
        if parse(text.as_bytes(), ParseLimits::default()).is_ok() {
            inputs.push(text);
        }
    }
    let mut child = Command::new("python3")
        .args(["-c", PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut stdin = child.stdin.take().expect("stdin");
    let batch = inputs.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(batch.as_bytes()));
    let output = child.wait_with_output().expect("python3 output");
    writer
        .join()
        .expect("writer thread")
        .expect("write to python3");
    assert!(output.status.success(), "python3 failed");
    let expected: Vec<&[u8]> = output
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        expected.len(),
        N,
        "python3 returned {} lines",
        expected.len()
    );
    let mut failures = Vec::new();
    for (input, want) in inputs.iter().zip(expected) {
        let got =
            canonical(&parse(input.as_bytes(), ParseLimits::default()).expect("accepted above"));
        if got != want {
            failures.push(format!(
                "input {input}\n  cpython {}\n  lacre  {}",
                String::from_utf8_lossy(want),
                String::from_utf8_lossy(&got)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {N} values differ from CPython:\n{}",
        failures.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
