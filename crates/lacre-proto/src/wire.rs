//! The two wire messages, `Envelope` (request) and `Response`, exactly as the
//! seed's pydantic models define them, with strict parsing and the bytes that
//! get signed.

use crate::error::EnvelopeError;
use crate::json::{self, canonical_map_into, write_string, Map, Number, ParseLimits, Top, Value};
use crate::keys::SigningKey;

/// The only protocol version: the seed's `"mcp/0.1"`.
pub const VERSION: &str = "mcp/0.1";

/// How many fields each message has (`Envelope` and `Response` alike).
pub(crate) const MESSAGE_FIELDS: usize = 9;

/// Longest identifier (`request_id`, `client_id`, `server_id`, `tool`,
/// `nonce`), in characters.
pub const MAX_ID_CHARS: usize = 128;

/// A request: the seed's `MCPEnvelope`.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Unique per logical request; retries reuse it (idempotency).
    pub request_id: String,
    /// Sender's clock, milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// Who sends.
    pub client_id: String,
    /// Who must receive.
    pub server_id: String,
    /// The tool to call.
    pub tool: String,
    /// The tool's arguments.
    pub args: Map,
    /// Unique per message; a second use is a replay.
    pub nonce: String,
    /// Lowercase hex signature over [`Envelope::signing_bytes`].
    pub signature: String,
}

/// A reply's status (the seed's `Literal["ok", "accepted", "running", "done", "error"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// An immediate tool succeeded.
    Ok,
    /// A long-running tool accepted the call; `result` holds the job id.
    Accepted,
    /// The polled job is queued or running.
    Running,
    /// The polled job finished; `result` holds its output.
    Done,
    /// The request failed; `error` says why.
    Error,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Accepted => "accepted",
            Status::Running => "running",
            Status::Done => "done",
            Status::Error => "error",
        }
    }

    fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "ok" => Status::Ok,
            "accepted" => Status::Accepted,
            "running" => Status::Running,
            "done" => Status::Done,
            "error" => Status::Error,
            _ => return None,
        })
    }
}

/// A reply: the seed's `MCPResponse`.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The `request_id` of the request answered (empty when it was unreadable).
    pub request_id: String,
    /// Server's clock, milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// `false` exactly when `status` is `error`.
    pub ok: bool,
    /// Who answers.
    pub server_id: String,
    /// What happened.
    pub status: Status,
    /// The result object, if any.
    pub result: Option<Map>,
    /// `"<code>: <message>"` for errors.
    pub error: Option<String>,
    /// Lowercase hex signature over [`Response::signing_bytes`].
    pub signature: String,
}

/// The wire form from the signed bytes: `signature` goes at `split`, where
/// key order puts it (`server_id` < `signature` < `status` / `tool`).
fn insert_signature(signed: &[u8], split: usize, signature: &str, out: &mut Vec<u8>) {
    let (head, tail) = signed.split_at(split.min(signed.len()));
    out.extend_from_slice(head);
    out.extend_from_slice(b",\"signature\":");
    write_string(signature, out);
    out.extend_from_slice(tail);
}

/// Writes `{"k":v,...}` with keys given in sorted order.
struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        ObjectWriter { out, first: true }
    }
    /// Starts the member `k`: one of the messages' own field names, plain
    /// ASCII that the canonical form writes as it is.
    fn key(&mut self, k: &'static str) -> &mut Vec<u8> {
        debug_assert!(k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }
    fn str(&mut self, k: &'static str, v: &str) {
        write_string(v, self.key(k));
    }
    fn int(&mut self, k: &'static str, v: i64) {
        json::canonical_into(&Value::Number(Number::Int(v)), self.key(k));
    }
    /// The members every message ends with, `ts_ms` and `v`, and the `}`.
    fn finish_message(mut self, ts_ms: i64) {
        self.int("ts_ms", ts_ms);
        self.str("v", VERSION);
        self.out.push(b'}');
    }
}

/// The byte forms every message has, from its `write_unsigned`.
macro_rules! message_bytes {
    ($signed_doc:expr) => {
        #[doc = $signed_doc]
        pub fn signing_bytes_into(&self, out: &mut Vec<u8>) {
            self.write_unsigned(out);
        }

        /// The signed bytes (see `signing_bytes_into`).
        pub fn signing_bytes(&self) -> Vec<u8> {
            let mut out = Vec::with_capacity(256);
            self.write_unsigned(&mut out);
            out
        }

        /// Parses and checks the message from JSON bytes (see `from_value`).
        pub fn parse(bytes: &[u8], limits: ParseLimits) -> Result<Self, EnvelopeError> {
            let (top, _) = json::parse_members(bytes, limits, &Self::FIELDS, None)
                .map_err(EnvelopeError::Json)?;
            Self::from_top(top)
        }

        /// `from_value` for a document read by [`json::parse_members`] with
        /// this message's field names.
        pub(crate) fn from_top(top: Top<MESSAGE_FIELDS>) -> Result<Self, EnvelopeError> {
            Self::from_fields(Fields::of_top(top, Self::FIELDS)?)
        }

        /// Signs the message in place with `key`.
        pub fn sign(&mut self, key: &SigningKey) {
            self.signature = key.sign_hex(&self.signing_bytes());
        }

        /// The whole message as canonical JSON, signature included.
        pub fn to_json(&self) -> Vec<u8> {
            let mut signed = Vec::with_capacity(256);
            let split = self.write_unsigned(&mut signed);
            let mut out = Vec::with_capacity(signed.len() + self.signature.len() + 16);
            insert_signature(&signed, split, &self.signature, &mut out);
            out
        }
    };
}

impl Envelope {
    message_bytes!(
        "Appends the signed bytes: the canonical JSON of every field but \
         `signature` (what the seed's `model_dump()` minus `signature` gives)."
    );

    /// Writes the signed bytes; returns the offset where the `signature`
    /// member goes in the wire form (after `server_id`, in key order).
    fn write_unsigned(&self, out: &mut Vec<u8>) -> usize {
        let mut w = ObjectWriter::new(out);
        canonical_map_into(&self.args, w.key("args"));
        w.str("client_id", &self.client_id);
        w.str("nonce", &self.nonce);
        w.str("request_id", &self.request_id);
        w.str("server_id", &self.server_id);
        let split = w.out.len();
        w.str("tool", &self.tool);
        w.finish_message(self.ts_ms);
        split
    }

    /// Checks an already parsed JSON value: exactly the seed's fields, of the
    /// right types, identifiers non-empty and at most [`MAX_ID_CHARS`] long.
    /// Missing `v` and `args` take the seed's defaults. The version is
    /// checked first (once `v` is known to be a string), so a message of
    /// another version, whatever its fields, gets
    /// [`EnvelopeError::UnsupportedVersion`].
    pub fn from_value(value: Value) -> Result<Envelope, EnvelopeError> {
        Envelope::from_fields(Fields::of_message(value, Envelope::FIELDS)?)
    }

    /// The field names, in code point order.
    pub(crate) const FIELDS: [&'static str; MESSAGE_FIELDS] = [
        "args",
        "client_id",
        "nonce",
        "request_id",
        "server_id",
        "signature",
        "tool",
        "ts_ms",
        "v",
    ];

    /// The `request_id` of a document read as an envelope, if it is a
    /// string (whatever is wrong with the rest).
    pub(crate) fn request_id_in(top: &Top<MESSAGE_FIELDS>) -> Option<&str> {
        let Top::Object(members) = top else {
            return None;
        };
        let i = Envelope::FIELDS.iter().position(|n| *n == "request_id")?;
        members.values.get(i)?.as_ref()?.as_str()
    }

    fn from_fields(mut map: Fields) -> Result<Envelope, EnvelopeError> {
        let envelope = Envelope {
            request_id: identifier(&mut map, "request_id")?,
            ts_ms: integer(&mut map, "ts_ms")?,
            client_id: identifier(&mut map, "client_id")?,
            server_id: identifier(&mut map, "server_id")?,
            tool: identifier(&mut map, "tool")?,
            args: optional_object(&mut map, "args")?.unwrap_or_default(),
            nonce: identifier(&mut map, "nonce")?,
            signature: required_string(&mut map, "signature")?,
        };
        Ok(envelope)
    }
}

impl Response {
    message_bytes!(
        "Appends the signed bytes: canonical JSON of every field but \
         `signature`; `result` and `error` are always present (`null` when absent)."
    );

    /// Writes the signed bytes; returns the offset where the `signature`
    /// member goes in the wire form (after `server_id`, in key order).
    fn write_unsigned(&self, out: &mut Vec<u8>) -> usize {
        let mut w = ObjectWriter::new(out);
        match &self.error {
            Some(e) => w.str("error", e),
            None => w.key("error").extend_from_slice(b"null"),
        }
        w.key("ok")
            .extend_from_slice(if self.ok { b"true" } else { b"false" });
        w.str("request_id", &self.request_id);
        match &self.result {
            Some(r) => canonical_map_into(r, w.key("result")),
            None => w.key("result").extend_from_slice(b"null"),
        }
        w.str("server_id", &self.server_id);
        let split = w.out.len();
        w.str("status", self.status.as_str());
        w.finish_message(self.ts_ms);
        split
    }

    /// Signs the response in place and returns its wire form, serializing
    /// it once (what [`Response::sign`] then [`Response::to_json`] give).
    pub fn sign_to_json(&mut self, key: &SigningKey) -> Vec<u8> {
        let mut out = Vec::with_capacity(384);
        let split = self.write_unsigned(&mut out);
        self.signature = key.sign_hex(&out);
        // Hex needs no escaping: the member goes in as it is, in place (the
        // tail moves up by the member's length).
        let member = [b",\"signature\":\"", self.signature.as_bytes(), b"\""];
        let (end, grow) = (out.len(), member.iter().map(|m| m.len()).sum::<usize>());
        let split = split.min(end);
        out.resize(end + grow, 0);
        out.copy_within(split..end, split + grow);
        let mut at = split;
        for part in member {
            if let Some(place) = out.get_mut(at..at + part.len()) {
                place.copy_from_slice(part);
            }
            at += part.len();
        }
        out
    }

    /// Checks an already parsed JSON value (the seed's `MCPResponse` rules).
    pub fn from_value(value: Value) -> Result<Response, EnvelopeError> {
        Response::from_fields(Fields::of_message(value, Response::FIELDS)?)
    }

    /// The field names, in code point order.
    pub(crate) const FIELDS: [&'static str; MESSAGE_FIELDS] = [
        "error",
        "ok",
        "request_id",
        "result",
        "server_id",
        "signature",
        "status",
        "ts_ms",
        "v",
    ];

    fn from_fields(mut map: Fields) -> Result<Response, EnvelopeError> {
        let request_id = required_string(&mut map, "request_id")?;
        check_length("request_id", &request_id)?;
        let ts_ms = integer(&mut map, "ts_ms")?;
        let ok = match map.remove("ok") {
            Some(Value::Bool(b)) => b,
            Some(_) => {
                return Err(EnvelopeError::WrongType {
                    field: "ok",
                    expected: "boolean",
                })
            }
            None => return Err(EnvelopeError::MissingField("ok")),
        };
        let server_id = identifier(&mut map, "server_id")?;
        let status_text = required_string(&mut map, "status")?;
        let status =
            Status::parse(&status_text).ok_or(EnvelopeError::InvalidStatus(status_text))?;
        let result = optional_object(&mut map, "result")?;
        let error = match map.remove("error") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                return Err(EnvelopeError::WrongType {
                    field: "error",
                    expected: "string or null",
                })
            }
        };
        let signature = required_string(&mut map, "signature")?;
        Ok(Response {
            request_id,
            ts_ms,
            ok,
            server_id,
            status,
            result,
            error,
            signature,
        })
    }
}

/// The fields of a message, taken out of its object in one pass (cheaper
/// than a lookup and removal per field), with the first unknown name.
struct Fields {
    names: [&'static str; MESSAGE_FIELDS],
    values: [Option<Value>; MESSAGE_FIELDS],
}

impl Fields {
    /// The members of a message object with these `names`: the version
    /// checked first (whatever the other members, a message of another
    /// version is refused as such), then the first unknown name refused.
    fn of_message(
        value: Value,
        names: [&'static str; MESSAGE_FIELDS],
    ) -> Result<Fields, EnvelopeError> {
        let Value::Object(map) = value else {
            return Err(EnvelopeError::NotAnObject(value.type_name()));
        };
        let (fields, unknown) = Fields::collect(map, names);
        fields.checked(unknown)
    }

    /// [`Fields::of_message`] for a document read by [`json::parse_members`].
    fn of_top(
        top: Top<MESSAGE_FIELDS>,
        names: [&'static str; MESSAGE_FIELDS],
    ) -> Result<Fields, EnvelopeError> {
        match top {
            Top::Other(value) => Err(EnvelopeError::NotAnObject(value.type_name())),
            Top::Object(members) => Fields {
                names,
                values: members.values,
            }
            .checked(members.first_unknown),
        }
    }

    /// The version first, then the first unknown name.
    fn checked(mut self, unknown: Option<String>) -> Result<Fields, EnvelopeError> {
        check_version(self.remove("v"))?;
        match unknown {
            Some(unknown) => Err(EnvelopeError::UnknownField(unknown)),
            None => Ok(self),
        }
    }

    fn collect(map: Map, names: [&'static str; MESSAGE_FIELDS]) -> (Fields, Option<String>) {
        let mut values: [Option<Value>; MESSAGE_FIELDS] = Default::default();
        let mut unknown = None;
        // BTreeMap iterates in key order, so `unknown` is the first unknown
        // name in code point order.
        for (k, v) in map {
            match names
                .iter()
                .position(|n| *n == k)
                .and_then(|i| values.get_mut(i))
            {
                Some(slot) => *slot = Some(v),
                None => {
                    if unknown.is_none() {
                        unknown = Some(k);
                    }
                }
            }
        }
        (Fields { names, values }, unknown)
    }

    fn remove(&mut self, name: &str) -> Option<Value> {
        let i = self.names.iter().position(|n| *n == name)?;
        self.values.get_mut(i)?.take()
    }
}

/// `v` absent takes the default; anything but the string `"mcp/0.1"`
/// (another string, a number, `null`...) is a version this core does not
/// speak.
fn check_version(version: Option<Value>) -> Result<(), EnvelopeError> {
    match version {
        None => Ok(()),
        Some(Value::String(v)) if v == VERSION => Ok(()),
        Some(Value::String(v)) => Err(EnvelopeError::UnsupportedVersion(v)),
        Some(other) => Err(EnvelopeError::UnsupportedVersion(
            String::from_utf8_lossy(&json::canonical(&other)).into_owned(),
        )),
    }
}

fn optional_string(map: &mut Fields, field: &'static str) -> Result<Option<String>, EnvelopeError> {
    match map.remove(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(EnvelopeError::WrongType {
            field,
            expected: "string",
        }),
    }
}

fn required_string(map: &mut Fields, field: &'static str) -> Result<String, EnvelopeError> {
    optional_string(map, field)?.ok_or(EnvelopeError::MissingField(field))
}

fn check_length(field: &'static str, s: &str) -> Result<(), EnvelopeError> {
    // Byte length bounds the character count from above; count only when needed.
    if s.len() > MAX_ID_CHARS && s.chars().count() > MAX_ID_CHARS {
        return Err(EnvelopeError::TooLong {
            field,
            max: MAX_ID_CHARS,
        });
    }
    Ok(())
}

fn identifier(map: &mut Fields, field: &'static str) -> Result<String, EnvelopeError> {
    let s = required_string(map, field)?;
    if s.is_empty() {
        return Err(EnvelopeError::Empty(field));
    }
    check_length(field, &s)?;
    Ok(s)
}

fn integer(map: &mut Fields, field: &'static str) -> Result<i64, EnvelopeError> {
    match map.remove(field) {
        Some(Value::Number(Number::Int(n))) => Ok(n),
        Some(_) => Err(EnvelopeError::WrongType {
            field,
            expected: "integer (64-bit)",
        }),
        None => Err(EnvelopeError::MissingField(field)),
    }
}

fn optional_object(map: &mut Fields, field: &'static str) -> Result<Option<Map>, EnvelopeError> {
    match map.remove(field) {
        None | Some(Value::Null) if field == "result" => Ok(None),
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(EnvelopeError::WrongType {
            field,
            expected: "object",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEEDLIKE: &str = r#"{"v":"mcp/0.1","request_id":"r1","ts_ms":1700000000000,"client_id":"client-001","server_id":"mcp-server-001","tool":"batch_sum","args":{"numbers":[10,20,30]},"nonce":"n1","signature":""}"#;

    #[test]
    fn signing_bytes_are_sorted_and_compact() {
        let env = Envelope::parse(SEEDLIKE.as_bytes(), ParseLimits::default()).unwrap();
        assert_eq!(
            String::from_utf8(env.signing_bytes()).unwrap(),
            r#"{"args":{"numbers":[10,20,30]},"client_id":"client-001","nonce":"n1","request_id":"r1","server_id":"mcp-server-001","tool":"batch_sum","ts_ms":1700000000000,"v":"mcp/0.1"}"#
        );
    }

    #[test]
    fn defaults_are_filled_in() {
        let text = r#"{"request_id":"r1","ts_ms":1,"client_id":"c","server_id":"s","tool":"t","nonce":"n","signature":"x"}"#;
        let env = Envelope::parse(text.as_bytes(), ParseLimits::default()).unwrap();
        assert!(env.args.is_empty());
        assert!(String::from_utf8(env.signing_bytes())
            .unwrap()
            .contains(r#""args":{}"#));
    }

    #[test]
    fn strictness() {
        let parse = |t: &str| Envelope::parse(t.as_bytes(), ParseLimits::default());
        let extra = SEEDLIKE.replace(r#""nonce":"n1""#, r#""nonce":"n1","extra":1"#);
        assert_eq!(
            parse(&extra),
            Err(EnvelopeError::UnknownField("extra".into()))
        );
        let v2 = SEEDLIKE.replace("mcp/0.1", "mcp/0.2");
        assert_eq!(
            parse(&v2),
            Err(EnvelopeError::UnsupportedVersion("mcp/0.2".into()))
        );
        let float_ts = SEEDLIKE.replace("1700000000000", "1700000000000.0");
        assert!(matches!(
            parse(&float_ts),
            Err(EnvelopeError::WrongType { field: "ts_ms", .. })
        ));
        let empty = SEEDLIKE.replace(r#""tool":"batch_sum""#, r#""tool":"""#);
        assert_eq!(parse(&empty), Err(EnvelopeError::Empty("tool")));
        let long = SEEDLIKE.replace(
            r#""nonce":"n1""#,
            &format!(r#""nonce":"{}""#, "é".repeat(129)),
        );
        assert!(matches!(
            parse(&long),
            Err(EnvelopeError::TooLong { field: "nonce", .. })
        ));
        let ok_long = SEEDLIKE.replace(
            r#""nonce":"n1""#,
            &format!(r#""nonce":"{}""#, "é".repeat(128)),
        );
        assert!(parse(&ok_long).is_ok());
        let args_list = SEEDLIKE.replace(r#"{"numbers":[10,20,30]}"#, "[1]");
        assert!(matches!(
            parse(&args_list),
            Err(EnvelopeError::WrongType { field: "args", .. })
        ));
        let null_args = SEEDLIKE.replace(r#"{"numbers":[10,20,30]}"#, "null");
        assert!(matches!(
            parse(&null_args),
            Err(EnvelopeError::WrongType { field: "args", .. })
        ));
        assert_eq!(parse("[]"), Err(EnvelopeError::NotAnObject("array")));
    }

    #[test]
    fn sign_to_json_equals_sign_then_to_json() {
        let key = SigningKey::hmac(b"k").unwrap();
        let mut a = Response {
            request_id: "r1".into(),
            ts_ms: 5,
            ok: true,
            server_id: "s".into(),
            status: Status::Done,
            result: Some(Map::new()),
            error: None,
            signature: String::new(),
        };
        let mut b = a.clone();
        let wire = a.sign_to_json(&key);
        b.sign(&key);
        assert_eq!(wire, b.to_json());
        assert_eq!(a, b);
        assert_eq!(Response::parse(&wire, ParseLimits::default()).unwrap(), b);
    }

    #[test]
    fn response_round_trip() {
        let mut r = Response {
            request_id: "r1".into(),
            ts_ms: 5,
            ok: true,
            server_id: "s".into(),
            status: Status::Ok,
            result: None,
            error: None,
            signature: String::new(),
        };
        r.sign(&SigningKey::hmac(b"k").unwrap());
        assert_eq!(
            String::from_utf8(r.signing_bytes()).unwrap(),
            r#"{"error":null,"ok":true,"request_id":"r1","result":null,"server_id":"s","status":"ok","ts_ms":5,"v":"mcp/0.1"}"#
        );
        let back = Response::parse(&r.to_json(), ParseLimits::default()).unwrap();
        assert_eq!(back, r);
    }
}
