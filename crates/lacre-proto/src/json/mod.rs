//! A JSON value model that keeps exactly what CPython's `json.loads` keeps,
//! a strict parser for it, and the canonical writer that reproduces
//! `json.dumps(value, separators=(",", ":"), sort_keys=True)` byte for byte.
//!
//! Why not `serde_json::Value`: the signed bytes depend on details that a
//! general-purpose JSON library is free to change or lose — integers larger
//! than 64 bits, the float/integer distinction (`1E2` is the float `100.0`),
//! duplicate keys (silently merged) and lone surrogates. Owning the model
//! makes each of these an explicit, tested decision.

mod canonical;
mod convert;
pub mod de;
mod parse;
pub mod ser;

use std::collections::BTreeMap;

pub use canonical::{canonical, canonical_into, canonical_map_into, write_float, write_string};
pub use parse::{
    parse, parse_members, parse_with_layout, JsonError, JsonErrorKind, Layout, Members,
    ParseLimits, Top,
};

/// Why a text is not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    /// Not valid JSON (within the limits).
    #[error("{0}")]
    Json(#[from] JsonError),
    /// Valid JSON of another type (its name).
    #[error("must be a json object, got {0}")]
    NotAnObject(&'static str),
}

/// Parses a JSON text that must be an object (tool arguments, results).
pub fn parse_object(input: &[u8], limits: ParseLimits) -> Result<Map, ObjectError> {
    match parse(input, limits)? {
        Value::Object(m) => Ok(m),
        other => Err(ObjectError::NotAnObject(other.type_name())),
    }
}

/// A JSON object. Keys are kept sorted by Unicode code point (the byte order
/// of UTF-8), which is the order `sort_keys=True` writes them in.
pub type Map = BTreeMap<String, Value>;

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number; see [`Number`].
    Number(Number),
    /// A string (never contains a lone surrogate: Rust strings cannot).
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object.
    Object(Map),
}

/// A JSON number as CPython reads it: a literal without fraction or exponent
/// is an integer of any size, anything else is a binary64 float.
#[derive(Debug, Clone, PartialEq)]
pub enum Number {
    /// An integer that fits in `i64`.
    Int(i64),
    /// An integer outside the `i64` range, kept as its canonical decimal
    /// text (optional `-`, no leading zeros).
    BigInt(Box<str>),
    /// A finite float. NaN and infinities are never stored.
    Float(f64),
}

impl Value {
    /// The object inside, if this is one.
    pub fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The string inside, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of this value's JSON type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(Number::Float(_)) => "float",
            Value::Number(_) => "integer",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// The canonical bytes of this value (see [`canonical`]).
    pub fn to_canonical(&self) -> Vec<u8> {
        canonical(self)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Number(Number::Int(n))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Value::Object(m)
    }
}
