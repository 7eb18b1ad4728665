//! Building envelopes, whole or damaged one member at a time.

use super::*;

// Building envelopes.

pub(super) fn key_of(client_id: &str) -> SigningKey {
    match client_id {
        "client-002" => SigningKey::hmac(OTHER_SECRET).unwrap(),
        ED_CLIENT => SigningKey::ed25519_from_seed(&ED_SEED).unwrap(),
        _ => SigningKey::hmac(CLIENT_SECRET).unwrap(),
    }
}

/// Parses an `args` text with the protocol's own parser (so integers of
/// any size stay exact).
pub(super) fn parse_args(text: &str) -> Map {
    let limits = ParseLimits {
        max_depth: 10_000,
        ..ParseLimits::default()
    };
    match lacre_proto::parse(text.as_bytes(), limits) {
        Ok(Value::Object(m)) => m,
        other => panic!("args must be an object: {other:?}"),
    }
}

/// A signed envelope from client-001 stamped `NOW`, with a fresh
/// request_id and nonce, after `tweak` (then signed with the key of the
/// client it names).
pub(super) fn make(tool: &str, args: &str, tweak: impl FnOnce(&mut Envelope)) -> Envelope {
    let mut env = Envelope {
        request_id: unique("rid"),
        ts_ms: NOW,
        client_id: "client-001".into(),
        server_id: SERVER_ID.into(),
        tool: tool.into(),
        args: parse_args(args),
        nonce: unique("nonce"),
        signature: String::new(),
    };
    tweak(&mut env);
    env.sign(&key_of(&env.client_id));
    env
}

/// A valid `batch_sum` call.
pub(super) fn sum() -> Envelope {
    make("batch_sum", r#"{"numbers":[1,2]}"#, |_| {})
}

/// `e` as a new request (same nonce), signed again by its client.
pub(super) fn anew(e: &Envelope) -> Envelope {
    let mut again = e.clone();
    again.request_id = unique("rid");
    again.sign(&key_of(&again.client_id));
    again
}

/// The wire bytes of `e` with its signature replaced by `signature`.
pub(super) fn with_signature(e: &Envelope, signature: &str) -> Vec<u8> {
    Raw::of(e).set("signature", q(signature)).bytes()
}

/// A valid `batch_sum` call from the Ed25519 client.
pub(super) fn ed_sum() -> Envelope {
    make("batch_sum", r#"{"numbers":[1]}"#, |e| {
        e.client_id = ED_CLIENT.into()
    })
}

/// JSON string literal (canonical form) of `s`.
pub(super) fn q(s: &str) -> Vec<u8> {
    Value::String(s.to_owned()).to_canonical()
}

/// An envelope as a list of raw members, to damage one member at a time.
#[derive(Clone)]
pub(super) struct Raw(pub(super) Vec<(Vec<u8>, Vec<u8>)>);

impl Raw {
    pub(super) fn of(env: &Envelope) -> Raw {
        Raw(vec![
            (q("args"), Value::Object(env.args.clone()).to_canonical()),
            (q("client_id"), q(&env.client_id)),
            (q("nonce"), q(&env.nonce)),
            (q("request_id"), q(&env.request_id)),
            (q("server_id"), q(&env.server_id)),
            (q("signature"), q(&env.signature)),
            (q("tool"), q(&env.tool)),
            (q("ts_ms"), env.ts_ms.to_string().into_bytes()),
            (q("v"), q("mcp/0.1")),
        ])
    }

    /// Replaces the value of member `name` (appends it if absent).
    pub(super) fn set(mut self, name: &str, value: impl AsRef<[u8]>) -> Raw {
        let k = q(name);
        match self.0.iter_mut().find(|(key, _)| *key == k) {
            Some(m) => m.1 = value.as_ref().to_vec(),
            None => self.0.push((k, value.as_ref().to_vec())),
        }
        self
    }

    pub(super) fn without(mut self, name: &str) -> Raw {
        let k = q(name);
        self.0.retain(|(key, _)| *key != k);
        self
    }

    /// Appends a member with a raw (already quoted) name; duplicates allowed.
    pub(super) fn push(mut self, raw_key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Raw {
        self.0
            .push((raw_key.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// Renames member `name` to a raw (already quoted) name.
    pub(super) fn rekey(mut self, name: &str, raw_key: impl AsRef<[u8]>) -> Raw {
        let k = q(name);
        if let Some(m) = self.0.iter_mut().find(|(key, _)| *key == k) {
            m.0 = raw_key.as_ref().to_vec();
        }
        self
    }

    pub(super) fn bytes(&self) -> Vec<u8> {
        let mut out = vec![b'{'];
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(k);
            out.push(b':');
            out.extend_from_slice(v);
        }
        out.push(b'}');
        out
    }
}

/// A unique identifier of exactly `chars` characters, starting with `prefix`.
pub(super) fn padded(prefix: &str, chars: usize) -> String {
    let mut id = format!("{prefix}{}", unique("id"));
    while id.chars().count() < chars {
        id.push('x');
    }
    assert_eq!(id.chars().count(), chars);
    id
}

pub(super) fn nest_arrays(k: usize) -> String {
    format!("{}1{}", "[".repeat(k), "]".repeat(k))
}

pub(super) fn nest_objects(k: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(k), "}".repeat(k))
}

/// `s + l` for 32-byte little-endian integers (a malleated Ed25519 `S`).
pub(super) fn add_le(s: &[u8], l: &[u8; 32]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(s[i]) + u16::from(l[i]) + carry;
        out[i] = (v & 0xff) as u8;
        carry = v >> 8;
    }
    out
}
