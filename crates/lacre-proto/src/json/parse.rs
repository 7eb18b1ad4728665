//! The strict JSON parser.
//!
//! It accepts what CPython's `json.loads` accepts, minus the inputs whose
//! canonical form would be ambiguous or not JSON at all (see [`JsonErrorKind`]
//! for each rejected class and the reason).

use super::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::ops::Range;

mod scan;

/// Limits that bound the work a hostile document can cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Deepest nesting of arrays and objects (the top-level value is depth 1).
    pub max_depth: usize,
    /// Most digits in an integer literal. CPython refuses to convert more
    /// than 4300 digits (`sys.get_int_max_str_digits()`), so the default
    /// matches it.
    pub max_int_digits: usize,
    /// Longest string (key or value), in bytes of UTF-8.
    pub max_string_bytes: usize,
    /// Most elements in one array or members in one object.
    pub max_items: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_depth: 64,
            max_int_digits: 4300,
            max_string_bytes: 256 * 1024,
            max_items: 100_000,
        }
    }
}

/// What was wrong with a JSON text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonErrorKind {
    /// The bytes are not UTF-8.
    #[error("invalid utf-8")]
    InvalidUtf8,
    /// A UTF-8 byte order mark at the start (CPython's `json.loads` on a
    /// `str` refuses it too).
    #[error("unexpected byte order mark")]
    ByteOrderMark,
    /// The text ended inside a value.
    #[error("unexpected end of input")]
    UnexpectedEnd,
    /// A character that cannot start or continue a value here.
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    /// Something other than whitespace follows the value.
    #[error("trailing characters after the value")]
    TrailingCharacters,
    /// A control character (below U+0020) inside a string.
    #[error("unescaped control character in string")]
    ControlCharacter,
    /// An escape other than `\" \\ \/ \b \f \n \r \t \uXXXX`.
    #[error("invalid escape in string")]
    InvalidEscape,
    /// A `\uD800`-`\uDFFF` escape that is not half of a valid pair. CPython
    /// keeps such a string, but it has no UTF-8 form and other languages
    /// cannot represent it.
    #[error("lone surrogate in string")]
    LoneSurrogate,
    /// The same key twice in one object. CPython keeps the last one, other
    /// parsers the first: the signed meaning would be ambiguous.
    #[error("duplicate key {0:?}")]
    DuplicateKey(String),
    /// A number literal that is not valid JSON.
    #[error("invalid number")]
    InvalidNumber,
    /// `NaN`, `Infinity` or `-Infinity` (CPython accepts them; they are not JSON).
    #[error("non-finite number {0}")]
    NonFinite(&'static str),
    /// A float literal beyond the binary64 range, such as `1e400` (CPython
    /// reads it as `inf` and writes `Infinity`, which is not JSON).
    #[error("number out of range")]
    NumberOutOfRange,
    /// An integer with more digits than [`ParseLimits::max_int_digits`].
    #[error("integer has too many digits")]
    IntegerTooLong,
    /// Nesting deeper than [`ParseLimits::max_depth`].
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    /// A string longer than [`ParseLimits::max_string_bytes`].
    #[error("string longer than {0} bytes")]
    StringTooLong(usize),
    /// An array or object with more than [`ParseLimits::max_items`] entries.
    #[error("more than {0} items in one array or object")]
    TooManyItems(usize),
}

/// A JSON syntax error and the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct JsonError {
    /// What was wrong.
    pub kind: JsonErrorKind,
    /// Byte offset into the input.
    pub offset: usize,
}

/// Parses one JSON value from `input`, surrounded by optional whitespace.
pub fn parse(input: &[u8], limits: ParseLimits) -> Result<Value, JsonError> {
    parse_with_layout(input, limits, None).map(|(value, _)| value)
}

/// What [`parse_with_layout`] noticed about the bytes it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The input is byte for byte what [`super::canonical`] writes for the
    /// value. The check is conservative: a float, `-0`, an escape, a
    /// character outside printable ASCII or white space make it `false`
    /// even where the canonical form might happen to be the same.
    pub canonical: bool,
    /// The bytes of the top-level member that was asked for (its key, value
    /// and one comma beside it, when it has a neighbour), if the value is an
    /// object that has it.
    pub member: Option<Range<usize>>,
}

impl Layout {
    /// The canonical bytes of the top-level object without the member, as
    /// the two slices of `input` around it, when the input is canonical and
    /// has the member. Removing a member of a canonical object leaves the
    /// canonical form of the rest: keys stay sorted and nothing else moves.
    pub fn canonical_without_member<'i>(&self, input: &'i [u8]) -> Option<[&'i [u8]; 2]> {
        let cut = self.member.as_ref().filter(|_| self.canonical)?;
        Some([input.get(..cut.start)?, input.get(cut.end..)?])
    }
}

/// [`parse`], noting whether the input is already canonical and where the
/// top-level member `member` stands (what lets a verifier check a signature
/// over the received bytes instead of writing them again).
pub fn parse_with_layout(
    input: &[u8],
    limits: ParseLimits,
    member: Option<&str>,
) -> Result<(Value, Layout), JsonError> {
    let mut p = Parser::new(input, limits, member)?;
    let value = p.value(1)?;
    let layout = p.finish()?;
    Ok((value, layout))
}

/// A top-level value read by [`parse_members`].
#[derive(Debug, Clone, PartialEq)]
pub enum Top<const N: usize> {
    /// An object, its members sorted by name.
    Object(Members<N>),
    /// Any other value.
    Other(Value),
}

/// The members of a top-level object: those with a name that was asked
/// for in their slots, and the first other name (in code point order).
#[derive(Debug, Clone, PartialEq)]
pub struct Members<const N: usize> {
    /// The value of each name asked for, in the order of the names.
    pub values: [Option<Value>; N],
    /// The first name that was not asked for, if any.
    pub first_unknown: Option<String>,
}

/// [`parse_with_layout`] for a document whose top-level object has a known
/// set of member `names` (a message): its members go straight into their
/// slots, without a map or a copy of their names. The same input gets the
/// same errors as from [`parse`].
pub fn parse_members<const N: usize>(
    input: &[u8],
    limits: ParseLimits,
    names: &[&str; N],
    member: Option<&str>,
) -> Result<(Top<N>, Layout), JsonError> {
    let mut p = Parser::new(input, limits, member)?;
    let top = if p.peek() == Some(b'{') {
        let mut slots = Slots {
            names,
            values: std::array::from_fn(|_| None),
            unknown: BTreeSet::new(),
            count: 0,
            next: 0,
        };
        p.members(1, &mut slots)?;
        Top::Object(Members {
            values: slots.values,
            first_unknown: slots.unknown.pop_first(),
        })
    } else {
        Top::Other(p.value(1)?)
    };
    let layout = p.finish()?;
    Ok((top, layout))
}

/// Where the members of an object go as they are read.
trait Sink<'a> {
    /// How many members so far.
    fn len(&self) -> usize;
    /// Adds a member; a name seen before is given back as the error.
    fn add(&mut self, key: Cow<'a, str>, value: Value) -> Result<(), String>;
}

impl<'a> Sink<'a> for Map {
    fn len(&self) -> usize {
        Map::len(self)
    }

    fn add(&mut self, key: Cow<'a, str>, value: Value) -> Result<(), String> {
        match self.entry(key.into_owned()) {
            std::collections::btree_map::Entry::Occupied(e) => Err(e.key().clone()),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(value);
                Ok(())
            }
        }
    }
}

struct Slots<'n, const N: usize> {
    names: &'n [&'n str; N],
    values: [Option<Value>; N],
    unknown: BTreeSet<String>,
    count: usize,
    /// The slot after the last one filled: where the next name is when
    /// they come in order, as in a canonical message.
    next: usize,
}

impl<'a, const N: usize> Sink<'a> for Slots<'_, N> {
    fn len(&self) -> usize {
        self.count
    }

    fn add(&mut self, key: Cow<'a, str>, value: Value) -> Result<(), String> {
        let at = match self.names.get(self.next) {
            Some(n) if *n == key => Some(self.next),
            _ => self.names.iter().position(|n| *n == key),
        };
        if let Some(i) = at {
            self.next = i + 1;
        }
        let slot = at.and_then(|i| self.values.get_mut(i));
        match slot {
            Some(Some(_)) => return Err(key.into_owned()),
            Some(slot) => *slot = Some(value),
            None => {
                let key = key.into_owned();
                if self.unknown.contains(&key) {
                    return Err(key);
                }
                self.unknown.insert(key);
            }
        }
        self.count += 1;
        Ok(())
    }
}

impl<'a> Parser<'a> {
    /// A parser at the first value of `input` (its leading white space read).
    fn new(
        input: &'a [u8],
        limits: ParseLimits,
        member: Option<&'a str>,
    ) -> Result<Parser<'a>, JsonError> {
        let text = std::str::from_utf8(input).map_err(|e| JsonError {
            kind: JsonErrorKind::InvalidUtf8,
            offset: e.valid_up_to(),
        })?;
        if text.starts_with('\u{feff}') {
            return Err(JsonError {
                kind: JsonErrorKind::ByteOrderMark,
                offset: 0,
            });
        }
        let mut p = Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            limits,
            canonical: true,
            member_key: member,
            member: None,
        };
        p.skip_ws();
        Ok(p)
    }

    /// After the top-level value: only white space may follow.
    fn finish(mut self) -> Result<Layout, JsonError> {
        self.skip_ws();
        if self.pos != self.bytes.len() {
            return Err(self.err(JsonErrorKind::TrailingCharacters));
        }
        // The member and one comma: the one before it, or else the one after.
        let bytes = self.bytes;
        let member = self.member.map(|r| {
            if r.start > 0 && bytes.get(r.start - 1) == Some(&b',') {
                r.start - 1..r.end
            } else if bytes.get(r.end) == Some(&b',') {
                r.start..r.end + 1
            } else {
                r
            }
        });
        Ok(Layout {
            canonical: self.canonical,
            member,
        })
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    limits: ParseLimits,
    /// Nothing read so far differs from the canonical form.
    canonical: bool,
    /// The top-level member whose span is wanted, and its span once found.
    member_key: Option<&'a str>,
    member: Option<Range<usize>>,
}

impl<'a> Parser<'a> {
    fn err(&self, kind: JsonErrorKind) -> JsonError {
        JsonError {
            kind,
            offset: self.pos,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn unexpected(&self) -> JsonError {
        match self.text.get(self.pos..).and_then(|s| s.chars().next()) {
            Some(c) => self.err(JsonErrorKind::UnexpectedChar(c)),
            None => self.err(JsonErrorKind::UnexpectedEnd),
        }
    }

    fn skip_ws(&mut self) {
        let start = self.pos;
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
        if self.pos != start {
            self.canonical = false;
        }
    }

    fn expect_literal(&mut self, lit: &str) -> Result<(), JsonError> {
        if self
            .text
            .get(self.pos..)
            .is_some_and(|s| s.starts_with(lit))
        {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        match self.peek() {
            None => Err(self.err(JsonErrorKind::UnexpectedEnd)),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Value::String(self.string()?.into_owned())),
            Some(b't') => self.expect_literal("true").map(|_| Value::Bool(true)),
            Some(b'f') => self.expect_literal("false").map(|_| Value::Bool(false)),
            Some(b'n') => self.expect_literal("null").map(|_| Value::Null),
            Some(b'N') => self.non_finite("NaN"),
            Some(b'I') => self.non_finite("Infinity"),
            Some(b'-')
                if self
                    .text
                    .get(self.pos..)
                    .is_some_and(|s| s.starts_with("-Infinity")) =>
            {
                self.non_finite("-Infinity")
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.unexpected()),
        }
    }

    fn non_finite(&mut self, lit: &'static str) -> Result<Value, JsonError> {
        self.expect_literal(lit)?;
        Err(self.err(JsonErrorKind::NonFinite(lit)))
    }

    fn enter(&self, depth: usize) -> Result<(), JsonError> {
        if depth > self.limits.max_depth {
            Err(self.err(JsonErrorKind::TooDeep(self.limits.max_depth)))
        } else {
            Ok(())
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        let mut map = Map::new();
        self.members(depth, &mut map)?;
        Ok(Value::Object(map))
    }

    /// Reads the members of the object that starts here into `sink`.
    fn members<S: Sink<'a>>(&mut self, depth: usize, sink: &mut S) -> Result<(), JsonError> {
        if self.opened_empty(depth, b'}')? {
            return Ok(());
        }
        let mut previous: Option<Cow<'a, str>> = None;
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.unexpected());
            }
            let key_at = self.pos;
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.unexpected());
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value(depth + 1)?;
            if sink.len() >= self.limits.max_items {
                return Err(self.err(JsonErrorKind::TooManyItems(self.limits.max_items)));
            }
            if depth == 1 && self.member_key == Some(&*key) {
                self.member = Some(key_at..self.pos);
            }
            // Canonical keys come in strictly increasing byte order (that of
            // code points). A key is only kept while the bytes are canonical,
            // so it is borrowed (an escaped one made them not canonical).
            if self.canonical {
                if previous.as_ref().is_some_and(|p| *p > key) {
                    self.canonical = false;
                }
                previous = Some(key.clone());
            }
            sink.add(key, value).map_err(|key| JsonError {
                kind: JsonErrorKind::DuplicateKey(key),
                offset: key_at,
            })?;
            if self.closed_after_item(b'}')? {
                return Ok(());
            }
        }
    }

    /// Enters an object or array at `depth` (its opening byte is the
    /// current one); `true` when it is empty (its `close` byte consumed).
    fn opened_empty(&mut self, depth: usize, close: u8) -> Result<bool, JsonError> {
        self.enter(depth)?;
        self.pos += 1;
        self.skip_ws();
        let empty = self.peek() == Some(close);
        if empty {
            self.pos += 1;
        }
        Ok(empty)
    }

    /// After an item of an object or array: `,` (more to come; `false`) or
    /// the `close` byte (`true`), with the white space around them.
    fn closed_after_item(&mut self, close: u8) -> Result<bool, JsonError> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.skip_ws();
                Ok(false)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        let mut items = Vec::new();
        if self.opened_empty(depth, b']')? {
            return Ok(Value::Array(items));
        }
        loop {
            if items.len() >= self.limits.max_items {
                return Err(self.err(JsonErrorKind::TooManyItems(self.limits.max_items)));
            }
            items.push(self.value(depth + 1)?);
            if self.closed_after_item(b']')? {
                return Ok(Value::Array(items));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Number;

    fn p(s: &str) -> Result<Value, JsonErrorKind> {
        parse(s.as_bytes(), ParseLimits::default()).map_err(|e| e.kind)
    }

    #[test]
    fn integers_keep_their_size() {
        assert_eq!(p("-0"), Ok(Value::Number(Number::Int(0))));
        assert_eq!(
            p("123456789012345678901234567890"),
            Ok(Value::Number(Number::BigInt(
                "123456789012345678901234567890".into()
            )))
        );
        assert_eq!(p("1E2"), Ok(Value::Number(Number::Float(100.0))));
    }

    #[test]
    fn rejects_what_the_core_refuses() {
        assert_eq!(
            p("{\"a\":1,\"a\":2}"),
            Err(JsonErrorKind::DuplicateKey("a".into()))
        );
        assert_eq!(p("\"\\ud800\""), Err(JsonErrorKind::LoneSurrogate));
        assert_eq!(p("\"\\udc00\\ud800\""), Err(JsonErrorKind::LoneSurrogate));
        assert_eq!(p("\"\\ud800\\u0041\""), Err(JsonErrorKind::LoneSurrogate));
        assert_eq!(p("NaN"), Err(JsonErrorKind::NonFinite("NaN")));
        assert_eq!(p("-Infinity"), Err(JsonErrorKind::NonFinite("-Infinity")));
        assert_eq!(p("1e400"), Err(JsonErrorKind::NumberOutOfRange));
        assert_eq!(p("01"), Err(JsonErrorKind::TrailingCharacters));
        assert_eq!(p("1."), Err(JsonErrorKind::InvalidNumber));
        assert_eq!(p("\"a\u{1}\""), Err(JsonErrorKind::ControlCharacter));
        assert_eq!(p("\"\\x\""), Err(JsonErrorKind::InvalidEscape));
        assert_eq!(p("[1,]"), Err(JsonErrorKind::UnexpectedChar(']')));
        assert_eq!(p("{\"a\":1"), Err(JsonErrorKind::UnexpectedEnd));
        assert_eq!(p("\u{feff}1"), Err(JsonErrorKind::ByteOrderMark));
        assert_eq!(
            parse(b"\"\xff\"", ParseLimits::default()).map_err(|e| e.kind),
            Err(JsonErrorKind::InvalidUtf8)
        );
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(p(&deep), Err(JsonErrorKind::TooDeep(64)));
        let long = "9".repeat(4301);
        assert_eq!(p(&long), Err(JsonErrorKind::IntegerTooLong));
    }

    #[test]
    fn size_limits() {
        let limits = ParseLimits {
            max_string_bytes: 8,
            max_items: 3,
            ..ParseLimits::default()
        };
        let q = |s: &str| parse(s.as_bytes(), limits).map_err(|e| e.kind);
        assert!(q(r#""12345678""#).is_ok());
        assert_eq!(q(r#""123456789""#), Err(JsonErrorKind::StringTooLong(8)));
        assert_eq!(q(r#""1234\n56789""#), Err(JsonErrorKind::StringTooLong(8)));
        assert_eq!(
            q(r#"{"123456789":1}"#),
            Err(JsonErrorKind::StringTooLong(8))
        );
        assert!(q("[1,2,3]").is_ok());
        assert_eq!(q("[1,2,3,4]"), Err(JsonErrorKind::TooManyItems(3)));
        assert_eq!(
            q(r#"{"a":1,"b":2,"c":3,"d":4}"#),
            Err(JsonErrorKind::TooManyItems(3))
        );
    }

    fn layout(s: &str) -> Layout {
        parse_with_layout(s.as_bytes(), ParseLimits::default(), Some("sig"))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .1
    }

    #[test]
    fn only_canonical_bytes_are_called_canonical() {
        for s in [
            r#"{"a":[1,-2,"x y/z"],"b":{"c":null,"d":true},"e":false}"#,
            r#"{}"#,
            r#"[]"#,
            r#"-123456789012345678901234567890"#,
            r#""~""#,
        ] {
            assert!(layout(s).canonical, "{s}");
            let v = p(s).unwrap();
            assert_eq!(super::super::canonical(&v), s.as_bytes(), "{s}");
        }
        for s in [
            r#" {}"#,
            r#"{} "#,
            r#"{"a": 1}"#,
            r#"{"a":1 ,"b":2}"#,
            r#"[1, 2]"#,
            r#"{"b":1,"a":2}"#,
            r#"{"a":{"d":1,"c":2}}"#,
            r#"1.0"#,
            r#"1e2"#,
            r#"-0"#,
            r#""\u0041""#,
            r#""\/""#,
            r#""\n""#,
            "\"\u{7f}\"",
            "\"\u{e9}\"",
            "{\"\u{e9}\":1}",
        ] {
            assert!(!layout(s).canonical, "{s}");
        }
    }

    #[test]
    fn the_member_is_cut_with_one_comma() {
        let cut = |s: &str| {
            let l = layout(s);
            l.canonical_without_member(s.as_bytes())
                .map(|[a, b]| String::from_utf8([a, b].concat()).unwrap())
        };
        assert_eq!(
            cut(r#"{"a":1,"sig":"x","z":2}"#).as_deref(),
            Some(r#"{"a":1,"z":2}"#)
        );
        assert_eq!(cut(r#"{"a":1,"sig":"x"}"#).as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(cut(r#"{"sig":[1,2],"z":2}"#).as_deref(), Some(r#"{"z":2}"#));
        assert_eq!(cut(r#"{"sig":{"sig":1}}"#).as_deref(), Some(r#"{}"#));
        // Only a top-level member counts, and only in canonical bytes.
        assert_eq!(cut(r#"{"a":{"sig":1}}"#), None);
        assert_eq!(cut(r#"[{"sig":1}]"#), None);
        assert_eq!(cut(r#"{"a":1, "sig":"x"}"#), None);
        assert_eq!(layout(r#"{"a":1, "sig":"x"}"#).member, Some(8..17));
    }

    /// `parse_members` reads what `parse` reads, refuses what it refuses
    /// with the same error, and sorts the members into their slots.
    #[test]
    fn members_in_slots_are_the_object_parse_reads() {
        let names = ["b", "d"];
        let limits = ParseLimits {
            max_items: 3,
            ..ParseLimits::default()
        };
        for s in [
            r#"{"b":1,"d":[2]}"#,
            r#"{"d":{"b":1},"z":1,"c":2}"#,
            r#"{}"#,
            r#"[1]"#,
            r#""b""#,
            r#"{"b":1,"b":2}"#,
            r#"{"x":1,"x":2}"#,
            r#"{"x":1,"b":2,"y":3,"d":4}"#,
            r#"{"b":1,}"#,
            r#"{"b":{"c":1,"c":2}}"#,
            r#"{"b":1} x"#,
            r#" {"d" : 1 , "b":"\u0041"} "#,
        ] {
            let whole = parse_with_layout(s.as_bytes(), limits, Some("d"));
            let slots = parse_members(s.as_bytes(), limits, &names, Some("d"));
            match (whole, slots) {
                (Ok((Value::Object(mut map), l1)), Ok((Top::Object(m), l2))) => {
                    assert_eq!(l1, l2, "{s}");
                    for (name, value) in names.iter().zip(m.values) {
                        assert_eq!(map.remove(*name), value, "{s}: {name}");
                    }
                    assert_eq!(map.into_keys().next(), m.first_unknown, "{s}");
                }
                (Ok((v, l1)), Ok((Top::Other(w), l2))) => assert_eq!((v, l1), (w, l2), "{s}"),
                (Err(e1), Err(e2)) => assert_eq!(e1, e2, "{s}"),
                (a, b) => panic!("{s}: {a:?} against {b:?}"),
            }
        }
    }

    #[test]
    fn surrogate_pairs_combine() {
        assert_eq!(
            p("\"\\ud83d\\ude00\""),
            Ok(Value::String("\u{1F600}".into()))
        );
    }
}
