//! Conversions between [`Value`] and `serde_json::Value`, so that typed tool
//! arguments and results can use serde while the signed bytes stay ours.

use super::{Map, Number, Value};

impl Value {
    /// A float value, or `None` for NaN and infinities (not JSON).
    pub fn float(f: f64) -> Option<Value> {
        f.is_finite().then_some(Value::Number(Number::Float(f)))
    }

    /// Converts to a `serde_json::Value` for typed deserialization. An
    /// integer beyond 64 bits becomes the nearest float when it has one (as
    /// a Python `float` field would read it), and otherwise stays text, so a
    /// typed numeric field rejects it.
    pub fn to_serde(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(Number::Int(n)) => serde_json::Value::from(*n),
            Value::Number(Number::BigInt(s)) => {
                if let Ok(u) = s.parse::<u64>() {
                    return serde_json::Value::from(u);
                }
                match s.parse::<f64>() {
                    Ok(f) if f.is_finite() => serde_json::Value::from(f),
                    _ => serde_json::Value::String(s.to_string()),
                }
            }
            Value::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_serde).collect())
            }
            Value::Object(map) => serde_json::Value::Object(
                map.iter().map(|(k, v)| (k.clone(), v.to_serde())).collect(),
            ),
        }
    }

    /// Converts from a `serde_json::Value` (as produced by
    /// `serde_json::to_value` on a tool's typed output).
    pub fn from_serde(v: serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Number(Number::Int(i))
                } else if let Some(u) = n.as_u64() {
                    Value::Number(Number::BigInt(u.to_string().into()))
                } else {
                    // serde_json never holds a non-finite float.
                    Value::Number(Number::Float(n.as_f64().unwrap_or(0.0)))
                }
            }
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => {
                Value::Array(items.into_iter().map(Value::from_serde).collect())
            }
            serde_json::Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, Value::from_serde(v)))
                    .collect::<Map>(),
            ),
        }
    }

    /// Serializes any serde value into a [`Value`] (see [`super::ser::to_value`]).
    pub fn from_serialize<T: serde::Serialize + ?Sized>(
        value: &T,
    ) -> Result<Value, super::de::DeError> {
        super::ser::to_value(value)
    }
}

/// What an integer beyond 64 bits becomes through serde, which has no such
/// number: a `u64` when it fits, else the nearest float (what a Python
/// `float` field would read), else its decimal text.
pub(crate) enum BigIntForm<'a> {
    U64(u64),
    F64(f64),
    Text(&'a str),
}

impl<'a> BigIntForm<'a> {
    pub(crate) fn of(text: &'a str) -> BigIntForm<'a> {
        match (text.parse::<u64>(), text.parse::<f64>()) {
            (Ok(u), _) => BigIntForm::U64(u),
            (_, Ok(f)) if f.is_finite() => BigIntForm::F64(f),
            _ => BigIntForm::Text(text),
        }
    }
}

/// Serializes as the equivalent serde data. An integer beyond 64 bits has
/// no serde form: it becomes the nearest float when it has one, else its
/// decimal text (use [`crate::canonical`] for exact bytes).
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(Number::Int(n)) => s.serialize_i64(*n),
            Value::Number(Number::BigInt(t)) => match BigIntForm::of(t) {
                BigIntForm::U64(u) => s.serialize_u64(u),
                BigIntForm::F64(f) => s.serialize_f64(f),
                BigIntForm::Text(t) => s.serialize_str(t),
            },
            Value::Number(Number::Float(f)) => s.serialize_f64(*f),
            Value::String(t) => s.serialize_str(t),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Object(map) => {
                let mut m = s.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_serde() {
        let v = crate::json::parse(
            br#"{"a":[1,2.5,"x",null,true],"b":{"c":18446744073709551615}}"#,
            Default::default(),
        )
        .unwrap();
        assert_eq!(Value::from_serde(v.to_serde()), v);
    }
}
