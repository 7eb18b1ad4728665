//! The parser's scanners for strings and numbers: where CPython's
//! decoder is most particular (escapes, surrogates, number forms).

use super::{JsonError, JsonErrorKind, Parser};
use crate::json::{Number, Value};
use std::borrow::Cow;

impl<'a> Parser<'a> {
    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.err(JsonErrorKind::InvalidEscape))?;
        let mut n = 0u32;
        for &d in digits {
            let v = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.err(JsonErrorKind::InvalidEscape))?;
            n = n * 16 + v;
        }
        self.pos += 4;
        Ok(n)
    }

    /// A string, borrowed from the input when it has no escape.
    pub(super) fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            // Copy the run of plain characters in one go: printable ASCII
            // eight bytes at a time, then byte by byte.
            let start = self.pos;
            self.pos +=
                crate::json::canonical::plain_prefix(self.bytes.get(start..).unwrap_or_default());
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                // The canonical form escapes DEL and everything beyond ASCII.
                if b >= 0x7f {
                    self.canonical = false;
                }
                self.pos += 1;
            }
            // `start..pos` ends before an ASCII byte or at the end, so it is
            // on a char boundary of the (already validated) text.
            let run = self.text.get(start..self.pos).unwrap_or_default();
            match self.peek() {
                None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
                Some(b'"') => {
                    if out.len() + run.len() > self.limits.max_string_bytes {
                        return Err(
                            self.err(JsonErrorKind::StringTooLong(self.limits.max_string_bytes))
                        );
                    }
                    self.pos += 1;
                    if out.is_empty() {
                        // The common case, a string without escapes.
                        return Ok(Cow::Borrowed(run));
                    }
                    out.push_str(run);
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    if out.len() + run.len() > self.limits.max_string_bytes {
                        return Err(
                            self.err(JsonErrorKind::StringTooLong(self.limits.max_string_bytes))
                        );
                    }
                    out.push_str(run);
                    self.canonical = false;
                    self.pos += 1;
                    let esc = self
                        .peek()
                        .ok_or_else(|| self.err(JsonErrorKind::UnexpectedEnd))?;
                    self.pos += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let at = self.pos - 2;
                            let lone = JsonError {
                                kind: JsonErrorKind::LoneSurrogate,
                                offset: at,
                            };
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return Err(lone);
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(lone);
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(lone);
                            } else {
                                hi
                            };
                            out.push(char::from_u32(code).ok_or(lone)?);
                        }
                        _ => {
                            self.pos -= 2;
                            return Err(self.err(JsonErrorKind::InvalidEscape));
                        }
                    }
                }
                Some(_) => return Err(self.err(JsonErrorKind::ControlCharacter)),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    pub(super) fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err(JsonErrorKind::InvalidNumber)),
        }
        let int_digits = self.pos - int_start;
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err(JsonErrorKind::InvalidNumber));
            }
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err(JsonErrorKind::InvalidNumber));
            }
            is_float = true;
        }
        let literal = self.text.get(start..self.pos).unwrap_or_default();
        // Floats are written again by `repr`; `-0` is written `0`.
        if is_float || literal == "-0" {
            self.canonical = false;
        }
        if is_float {
            // Rust's float parsing is correctly rounded, as CPython's is.
            let f: f64 = literal.parse().map_err(|_| JsonError {
                kind: JsonErrorKind::InvalidNumber,
                offset: start,
            })?;
            if !f.is_finite() {
                return Err(JsonError {
                    kind: JsonErrorKind::NumberOutOfRange,
                    offset: start,
                });
            }
            return Ok(Value::Number(Number::Float(f)));
        }
        if int_digits > self.limits.max_int_digits {
            return Err(JsonError {
                kind: JsonErrorKind::IntegerTooLong,
                offset: start,
            });
        }
        if let Ok(n) = literal.parse::<i64>() {
            // `-0` parses to 0, as in CPython.
            return Ok(Value::Number(Number::Int(n)));
        }
        Ok(Value::Number(Number::BigInt(literal.into())))
    }
}
