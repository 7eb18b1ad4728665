//! Typed deserialization straight from a [`Value`] (no intermediate
//! `serde_json::Value` tree), for tool arguments.

use super::convert::BigIntForm;
use super::{Map, Number, Value};
use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, IntoDeserializer, Visitor};
use std::fmt;

/// Why a value does not fit a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError(String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

/// Deserializes a `T` from the members of an object.
pub fn from_map<'de, T: de::Deserialize<'de>>(map: &'de Map) -> Result<T, DeError> {
    T::deserialize(MapDeserializer::new(
        map.iter().map(|(k, v)| (k.as_str(), v)),
    ))
}

/// Deserializes a `T` from a value.
pub fn from_value<'de, T: de::Deserialize<'de>>(value: &'de Value) -> Result<T, DeError> {
    T::deserialize(value)
}

impl<'de> IntoDeserializer<'de, DeError> for &'de Value {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for &'de Value {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(Number::Int(n)) => visitor.visit_i64(*n),
            Value::Number(Number::BigInt(t)) => match BigIntForm::of(t) {
                BigIntForm::U64(u) => visitor.visit_u64(u),
                BigIntForm::F64(f) => visitor.visit_f64(f),
                BigIntForm::Text(t) => visitor.visit_borrowed_str(t),
            },
            Value::Number(Number::Float(f)) => visitor.visit_f64(*f),
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(SeqDeserializer::new(items.iter())),
            Value::Object(map) => visitor.visit_map(MapDeserializer::new(
                map.iter().map(|(k, v)| (k.as_str(), v)),
            )),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self {
            // A unit variant is written as its name.
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            // Other variants as `{"Name": content}`.
            Value::Object(map) if map.len() == 1 => match map.iter().next() {
                Some((variant, value)) => visitor.visit_enum(EnumDe { variant, value }),
                None => Err(de::Error::custom("empty enum object")),
            },
            other => Err(de::Error::invalid_type(unexpected(other), &"an enum")),
        }
    }

    // A string field takes a JSON string only. (Through `deserialize_any`
    // an integer too large for a float arrives as its text, which a
    // `String` field would otherwise accept.)
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Value::String(s) => visitor.visit_borrowed_str(s),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

/// `{"Variant": content}`.
struct EnumDe<'de> {
    variant: &'de str,
    value: &'de Value,
}

impl<'de> de::EnumAccess<'de> for EnumDe<'de> {
    type Error = DeError;
    type Variant = Self;
    fn variant_seed<S: de::DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self), DeError> {
        let v = seed.deserialize(self.variant.into_deserializer())?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for EnumDe<'de> {
    type Error = DeError;
    fn unit_variant(self) -> Result<(), DeError> {
        match self.value {
            Value::Null => Ok(()),
            other => Err(de::Error::invalid_type(
                unexpected(other),
                &"a unit variant",
            )),
        }
    }
    fn newtype_variant_seed<S: de::DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, DeError> {
        seed.deserialize(self.value)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self.value, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(self.value, visitor)
    }
}

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(Number::Int(n)) => de::Unexpected::Signed(*n),
        Value::Number(Number::Float(f)) => de::Unexpected::Float(*f),
        Value::Number(Number::BigInt(_)) => de::Unexpected::Other("a big integer"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_fields_refuse_numbers_of_any_size() {
        // lax_integers: a 401-digit integer used to arrive as its text.
        let big = Value::Number(Number::BigInt("9".repeat(401).into()));
        assert!(from_value::<String>(&big).is_err());
        assert!(from_value::<String>(&Value::from(5)).is_err());
        assert_eq!(from_value::<String>(&Value::from("x")), Ok("x".to_owned()));
        // Where any value is wanted, big integers still come through.
        assert!(from_value::<serde_json::Value>(&big).is_ok());
    }
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Args {
        numbers: Vec<f64>,
        label: Option<String>,
        #[serde(default)]
        mode: Mode,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        #[default]
        Fast,
        Slow,
    }

    fn obj(text: &str) -> Map {
        match crate::json::parse(text.as_bytes(), Default::default()) {
            Ok(Value::Object(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn typed_args_from_the_protocol_value() {
        let m = obj(r#"{"numbers":[1,2.5,18446744073709551615],"label":null,"mode":"slow"}"#);
        let a: Args = from_map(&m).unwrap();
        assert_eq!(a.numbers, vec![1.0, 2.5, 18446744073709551615.0]);
        assert_eq!(a.label, None);
        assert_eq!(a.mode, Mode::Slow);
        let e = from_map::<Args>(&obj(r#"{"numbers":[1],"extra":1}"#)).unwrap_err();
        assert!(e.to_string().contains("unknown field `extra`"), "{e}");
        let e = from_map::<Args>(&obj(r#"{"numbers":["1"]}"#)).unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");
        let e = from_map::<Args>(&obj(r#"{}"#)).unwrap_err();
        assert!(e.to_string().contains("missing field `numbers`"), "{e}");
    }
}
