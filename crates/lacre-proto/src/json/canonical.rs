//! The canonical writer: CPython's
//! `json.dumps(value, separators=(",", ":"), sort_keys=True)`, byte for byte.

use super::{Map, Number, Value};

/// The canonical bytes of `value`.
pub fn canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    canonical_into(value, &mut out);
    out
}

/// Appends the canonical bytes of `value` to `out`.
pub fn canonical_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(Number::Int(n)) => write_int(*n, out),
        Value::Number(Number::BigInt(s)) => out.extend_from_slice(s.as_bytes()),
        Value::Number(Number::Float(f)) => write_float(*f, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_into(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => canonical_map_into(map, out),
    }
}

/// Appends the canonical bytes of an object.
pub fn canonical_map_into(map: &Map, out: &mut Vec<u8>) {
    out.push(b'{');
    // BTreeMap<String, _> iterates in byte order of the UTF-8 keys, which is
    // Unicode code point order, which is what Python's `sorted()` on `str`
    // keys gives.
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(k, out);
        out.push(b':');
        canonical_into(v, out);
    }
    out.push(b'}');
}

fn write_int(n: i64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let negative = n < 0;
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (m % 10) as u8;
        }
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_u_escape(unit: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(*HEX.get(((unit >> shift) & 0xF) as usize).unwrap_or(&b'0'));
    }
}

/// How many leading bytes of `bytes` are written as they are (printable
/// ASCII but `"` and `\`), counted eight at a time: a word is plain when
/// none of its bytes is below 0x20, at or above 0x7F, `"` or `\`. In a word
/// that is not, the lowest flagged byte is the first one that is not plain
/// (a borrow or carry only starts at a byte that already matched, and only
/// flags bytes above it), so the count is exact; the last few bytes are
/// tested one by one.
pub(super) fn plain_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut n = 0;
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let high = (w.wrapping_add(ONES) | w) & HIGH;
        let quote = has_zero(w ^ (ONES * u64::from(b'"')));
        let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
        let flagged = control | high | quote | backslash;
        if flagged != 0 {
            return n + (flagged.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    let plain = |&b: &u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
    n + words.remainder().iter().take_while(|b| plain(b)).count()
}

/// Appends `s` as a JSON string the way CPython's `ensure_ascii=True` writes
/// it: printable ASCII as is (but `"` and `\`), the five short escapes, every
/// other character as lowercase `\uXXXX`, astral characters as a surrogate pair.
pub fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run_start = 0;
    let mut i = plain_prefix(bytes);
    while let Some(&b) = bytes.get(i) {
        // Printable ASCII other than `"` and `\` is copied as a run.
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            i += 1;
            continue;
        }
        let Some(c) = s.get(i..).and_then(|t| t.chars().next()) else {
            break;
        };
        out.extend_from_slice(bytes.get(run_start..i).unwrap_or_default());
        i += c.len_utf8();
        run_start = i;
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write_u_escape(u32::from(*unit), out);
                }
            }
        }
    }
    out.extend_from_slice(bytes.get(run_start..).unwrap_or_default());
    out.push(b'"');
}

/// Appends a finite float as CPython's `repr(float)` writes it.
///
/// The digits are the shortest string that reads back to the same float,
/// with ties broken to even as David Gay's `dtoa` (CPython) does; `ryu`
/// gives exactly those (Rust's own `{:e}` rounds ties up, which changed
/// the signed bytes of floats such as `1997107851181081.25`). Only the
/// layout is ours: positional notation when the decimal exponent `e` of the
/// first digit satisfies `-4 <= e < 16`, keeping a trailing `.0` for whole
/// values, and `d[.ddd]e±XX` otherwise.
pub fn write_float(f: f64, out: &mut Vec<u8>) {
    if !f.is_finite() {
        return;
    }
    let mut buf = ryu::Buffer::new();
    let formatted = buf.format_finite(f).as_bytes();
    let (negative, rest) = match formatted.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, formatted),
    };
    let e_at = rest.iter().position(|&b| b == b'e').unwrap_or(rest.len());
    let (mantissa, exp_part) = rest.split_at(e_at);
    let e10: i32 = std::str::from_utf8(exp_part.get(1..).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // mantissa is `I` or `I.F`: collect its digits and where the point sits.
    let mut digits = [0u8; 40];
    let mut nd = 0usize;
    let mut point: i32 = 0;
    let mut seen_point = false;
    for &b in mantissa {
        if b == b'.' {
            seen_point = true;
            continue;
        }
        if !seen_point {
            point += 1;
        }
        if nd == 0 && b == b'0' {
            // A leading zero moves the point left instead of being a digit.
            point -= 1;
            continue;
        }
        if let Some(slot) = digits.get_mut(nd) {
            *slot = b;
            nd += 1;
        }
    }
    while nd > 0 && digits.get(nd - 1) == Some(&b'0') {
        nd -= 1;
    }
    let digits: &[u8] = if nd == 0 {
        b"0"
    } else {
        digits.get(..nd).unwrap_or(b"0")
    };
    // value = 0.DIGITS x 10^(point + e10); the first digit's exponent is one less.
    let exp = if nd == 0 { 0 } else { point + e10 - 1 };
    if negative {
        out.push(b'-');
    }
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        if point <= 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', point.unsigned_abs() as usize));
            out.extend_from_slice(digits);
        } else {
            let point = point as usize;
            if point >= digits.len() {
                out.extend_from_slice(digits);
                out.extend(std::iter::repeat_n(b'0', point - digits.len()));
                out.extend_from_slice(b".0");
            } else {
                let (int_part, frac) = digits.split_at(point);
                out.extend_from_slice(int_part);
                out.push(b'.');
                out.extend_from_slice(frac);
            }
        }
    } else {
        let (first, frac) = digits.split_first().unwrap_or((&b'0', &[]));
        out.push(*first);
        if !frac.is_empty() {
            out.push(b'.');
            out.extend_from_slice(frac);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let abs = exp.unsigned_abs();
        if abs < 10 {
            out.push(b'0');
        }
        write_int(i64::from(abs), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_prefix_ends_at_the_first_byte_that_is_not_plain() {
        let plain = |b: u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
        let naive = |bytes: &[u8]| bytes.iter().take_while(|&&b| plain(b)).count();
        // Every byte value at every place of inputs up to 20 bytes long, on
        // its own and with a second one after it (a borrow or carry from
        // the first must not move the answer).
        for len in 0..=20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    assert_eq!(plain_prefix(&bytes), naive(&bytes), "{bytes:?}");
                    for next in [0x00, 0x1f, 0x20, 0x21, b'"', b'\\', 0x7e, 0x7f, 0x80, 0xff] {
                        if let Some(after) = bytes.get_mut(at + 1) {
                            *after = next;
                            assert_eq!(plain_prefix(&bytes), naive(&bytes), "{bytes:?}");
                        }
                    }
                }
            }
        }
    }

    fn f(x: f64) -> String {
        let mut out = Vec::new();
        write_float(x, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    // The tie cases are written with their exact binary value on purpose.
    #[allow(clippy::excessive_precision)]
    fn floats_print_as_python_repr() {
        assert_eq!(f(60.0), "60.0");
        assert_eq!(f(-0.0), "-0.0");
        assert_eq!(f(0.0), "0.0");
        assert_eq!(f(1e16), "1e+16");
        assert_eq!(f(9999999999999998.0), "9999999999999998.0");
        assert_eq!(f(1e-5), "1e-05");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(1.5e300), "1.5e+300");
        assert_eq!(f(0.1), "0.1");
        assert_eq!(f(123.456), "123.456");
        assert_eq!(f(5e-324), "5e-324");
        assert_eq!(f(1.7976931348623157e308), "1.7976931348623157e+308");
        assert_eq!(f(1e15), "1000000000000000.0");
        assert_eq!(f(-1.25e-7), "-1.25e-07");
        // Exact ties between two shortest candidates go to even, as in CPython.
        assert_eq!(f(1997107851181081.25), "1997107851181081.2");
        assert_eq!(f(111275153569243.125), "111275153569243.12");
        assert_eq!(f(2.0f64.powi(-25)), "2.9802322387695312e-08");
        assert_eq!(f(123456789012345680.0), "1.2345678901234568e+17");
    }

    #[test]
    fn strings_escape_as_ensure_ascii() {
        let mut out = Vec::new();
        write_string("a\"\\/\u{7f}\u{1}\u{e9}\u{1F600}\n", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\"\\/\u007f\u0001\u00e9\ud83d\ude00\n""#
        );
    }

    /// Every character at the edge of "written as is", at every place in
    /// and around the first two eight-byte words, is escaped as one
    /// character at a time would be.
    #[test]
    fn the_word_at_a_time_scan_misses_nothing() {
        let one_at_a_time = |c: char| match c {
            '"' => "\\\"".to_owned(),
            '\\' => "\\\\".to_owned(),
            '\n' => "\\n".to_owned(),
            c if (' '..='~').contains(&c) => c.to_string(),
            c => c
                .encode_utf16(&mut [0; 2])
                .iter()
                .map(|u| format!("\\u{u:04x}"))
                .collect(),
        };
        let edges = [
            '\u{0}', '\n', '\u{1f}', ' ', '!', '"', '#', '[', '\\', ']', '~',
        ];
        let edges =
            edges
                .into_iter()
                .chain(['\u{7f}', '\u{80}', '\u{e9}', '\u{ffff}', '\u{1F600}']);
        for c in edges {
            for at in 0..20 {
                let text: String = (0..20).map(|i| if i == at { c } else { 'a' }).collect();
                let mut out = Vec::new();
                write_string(&text, &mut out);
                let want: String = text.chars().map(one_at_a_time).collect();
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    format!("\"{want}\""),
                    "{c:?} at {at}"
                );
            }
        }
    }
}
