//! Serializing typed results straight into a [`Value`] (no intermediate
//! `serde_json::Value` tree).

use super::de::DeError;
use super::{Map, Number, Value};
use serde::ser::{self, Serialize};

/// Serializes any serde value into a [`Value`]. Non-finite floats, which
/// JSON cannot carry, are an error.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, DeError> {
    value.serialize(ValueSerializer)
}

impl ser::Error for DeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        <DeError as serde::de::Error>::custom(msg)
    }
}

fn float(f: f64) -> Result<Value, DeError> {
    Value::float(f)
        .ok_or_else(|| <DeError as ser::Error>::custom("NaN and infinities are not JSON"))
}

fn int_u64(u: u64) -> Value {
    match i64::try_from(u) {
        Ok(i) => Value::Number(Number::Int(i)),
        Err(_) => Value::Number(Number::BigInt(u.to_string().into())),
    }
}

fn key_of(v: Value) -> Result<String, DeError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Number(Number::Int(i)) => Ok(i.to_string()),
        Value::Number(Number::BigInt(t)) => Ok(t.into()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(<DeError as ser::Error>::custom(
            "object keys must be strings",
        )),
    }
}

/// The serializer.
struct ValueSerializer;

/// A sequence being built.
struct Seq(Vec<Value>);

/// An object being built, with the key waiting for its value.
struct Obj {
    map: Map,
    key: Option<String>,
}

impl Obj {
    fn new() -> Obj {
        Obj {
            map: Map::new(),
            key: None,
        }
    }
}

/// `{"Variant": [...]}` or `{"Variant": {...}}`.
struct Variant<T> {
    name: &'static str,
    inner: T,
}

impl<T> Variant<T> {
    fn of(name: &'static str, inner: T) -> Result<Variant<T>, DeError> {
        Ok(Variant { name, inner })
    }
}

/// Integers of 32 bits or fewer: every one fits the protocol's `Int`.
macro_rules! small_ints {
    ($($name:ident: $t:ty),*) => {
        $(fn $name(self, v: $t) -> Result<Value, DeError> {
            Ok(Value::from(i64::from(v)))
        })*
    };
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = DeError;
    type SerializeSeq = Seq;
    type SerializeTuple = Seq;
    type SerializeTupleStruct = Seq;
    type SerializeTupleVariant = Variant<Seq>;
    type SerializeMap = Obj;
    type SerializeStruct = Obj;
    type SerializeStructVariant = Variant<Obj>;

    small_ints!(
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32
    );

    fn serialize_bool(self, v: bool) -> Result<Value, DeError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, DeError> {
        Ok(Value::from(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, DeError> {
        Ok(match i64::try_from(v) {
            Ok(i) => Value::from(i),
            Err(_) => Value::Number(Number::BigInt(v.to_string().into())),
        })
    }
    fn serialize_u64(self, v: u64) -> Result<Value, DeError> {
        Ok(int_u64(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, DeError> {
        Ok(match i64::try_from(v) {
            Ok(i) => Value::from(i),
            Err(_) => Value::Number(Number::BigInt(v.to_string().into())),
        })
    }
    fn serialize_f32(self, v: f32) -> Result<Value, DeError> {
        float(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, DeError> {
        float(v)
    }
    fn serialize_char(self, v: char) -> Result<Value, DeError> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, DeError> {
        Ok(Value::String(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, DeError> {
        Ok(Value::Array(
            v.iter().map(|b| Value::from(i64::from(*b))).collect(),
        ))
    }
    fn serialize_none(self) -> Result<Value, DeError> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, DeError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, DeError> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, DeError> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, DeError> {
        Ok(Value::from(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value, DeError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, DeError> {
        let mut map = Map::new();
        map.insert(variant.to_owned(), value.serialize(self)?);
        Ok(Value::Object(map))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq, DeError> {
        Ok(Seq(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq, DeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Seq, DeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Variant<Seq>, DeError> {
        Variant::of(variant, Seq(Vec::with_capacity(len)))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Obj, DeError> {
        Ok(Obj::new())
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Obj, DeError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Variant<Obj>, DeError> {
        Variant::of(variant, Obj::new())
    }
}

impl ser::SerializeSeq for Seq {
    type Ok = Value;
    type Error = DeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), DeError> {
        self.0.push(value.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, DeError> {
        Ok(Value::Array(self.0))
    }
}

/// Tuples and tuple structs are sequences.
macro_rules! seq_like {
    ($($trait:ident :: $method:ident),*) => {
        $(impl ser::$trait for Seq {
            type Ok = Value;
            type Error = DeError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), DeError> {
                ser::SerializeSeq::serialize_element(self, value)
            }
            fn end(self) -> Result<Value, DeError> {
                ser::SerializeSeq::end(self)
            }
        })*
    };
}

seq_like!(
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field
);

impl ser::SerializeTupleVariant for Variant<Seq> {
    type Ok = Value;
    type Error = DeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), DeError> {
        ser::SerializeSeq::serialize_element(&mut self.inner, value)
    }
    fn end(self) -> Result<Value, DeError> {
        let mut map = Map::new();
        map.insert(self.name.to_owned(), Value::Array(self.inner.0));
        Ok(Value::Object(map))
    }
}

impl ser::SerializeMap for Obj {
    type Ok = Value;
    type Error = DeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), DeError> {
        self.key = Some(key_of(key.serialize(ValueSerializer)?)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), DeError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| <DeError as ser::Error>::custom("value without a key"))?;
        self.map.insert(key, value.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, DeError> {
        Ok(Value::Object(self.map))
    }
}

impl ser::SerializeStruct for Obj {
    type Ok = Value;
    type Error = DeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), DeError> {
        self.map
            .insert(key.to_owned(), value.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, DeError> {
        Ok(Value::Object(self.map))
    }
}

impl ser::SerializeStructVariant for Variant<Obj> {
    type Ok = Value;
    type Error = DeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), DeError> {
        ser::SerializeStruct::serialize_field(&mut self.inner, key, value)
    }
    fn end(self) -> Result<Value, DeError> {
        let mut map = Map::new();
        map.insert(self.name.to_owned(), Value::Object(self.inner.map));
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Serialize)]
    struct Out {
        count: u64,
        total: f64,
        tags: Vec<&'static str>,
        big: u64,
        none: Option<i32>,
        mode: Mode,
    }

    #[derive(Serialize)]
    enum Mode {
        Fast,
    }

    #[test]
    fn typed_results_become_protocol_values() {
        let v = to_value(&Out {
            count: 3,
            total: 60.0,
            tags: vec!["a"],
            big: u64::MAX,
            none: None,
            mode: Mode::Fast,
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(v.to_canonical()).unwrap(),
            r#"{"big":18446744073709551615,"count":3,"mode":"Fast","none":null,"tags":["a"],"total":60.0}"#
        );
        assert!(to_value(&f64::NAN).is_err());
    }
}
