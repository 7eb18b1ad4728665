//! Benchmarks of the protocol core: canonicalization, signing, and the full
//! verification of a typical `batch_sum` envelope.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use lacre_proto::{
    canonical, parse, verify_request, Envelope, FixedClock, Keyring, Map, NonceError, NonceStore,
    ParseLimits, SigningKey, Value, VerifyConfig,
};

const NOW: i64 = 1_700_000_000_000;

struct AcceptAll;
impl NonceStore for AcceptAll {
    fn check_and_record(&self, _: &lacre_proto::NonceUse<'_>) -> Result<(), NonceError> {
        Ok(())
    }
}

fn batch_sum_envelope(key: &SigningKey) -> Envelope {
    let text = r#"{"numbers":[10,20,30,40.5,50,60.25,70,80]}"#;
    let Ok(Value::Object(args)) = parse(text.as_bytes(), ParseLimits::default()) else {
        unreachable!("constant args parse")
    };
    let mut env = Envelope {
        request_id: "2f1d8a7c-3b5e-4f60-9a1b-7c8d9e0f1a2b".into(),
        ts_ms: NOW,
        client_id: "client-001".into(),
        server_id: "mcp-server-001".into(),
        tool: "batch_sum".into(),
        args,
        nonce: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d".into(),
        signature: String::new(),
    };
    env.sign(key);
    env
}

/// A ~4 KiB object of mixed values: strings with escapes, floats, integers.
fn four_kib_args() -> Vec<u8> {
    let mut map = Map::new();
    let mut i = 0;
    loop {
        let mut inner = Map::new();
        inner.insert(
            "name".into(),
            Value::from(format!("item-{i} \"quoted\" caf\u{e9}")),
        );
        inner.insert(
            "price".into(),
            Value::float(i as f64 * 1.25 + 0.1).unwrap_or(Value::Null),
        );
        inner.insert("count".into(), Value::from(i as i64 * 1000));
        inner.insert(
            "tags".into(),
            Value::Array(vec![Value::from("a"), Value::from("b/c")]),
        );
        map.insert(format!("key_{i:03}"), Value::Object(inner));
        i += 1;
        if canonical(&Value::Object(map.clone())).len() >= 4096 {
            break;
        }
    }
    canonical(&Value::Object(map))
}

fn benches(c: &mut Criterion) {
    let key = SigningKey::hmac(b"client_secret_key_456").unwrap_or_else(|_| unreachable!());
    let env = batch_sum_envelope(&key);
    let wire = env.to_json();
    let mut ring = Keyring::new();
    let _ = ring.insert("client-001", vec![key.verifying_key()]);
    let config = VerifyConfig::new("mcp-server-001");

    let doc = four_kib_args();
    let value = parse(&doc, ParseLimits::default()).unwrap_or(Value::Null);
    let mut g = c.benchmark_group("canonical");
    g.throughput(Throughput::Bytes(doc.len() as u64));
    g.bench_function("write_4k_object", |b| {
        b.iter(|| canonical(black_box(&value)))
    });
    g.bench_function("parse_and_write_4k_object", |b| {
        b.iter(|| canonical(&parse(black_box(&doc), ParseLimits::default()).unwrap_or(Value::Null)))
    });
    g.finish();

    let signing = env.signing_bytes();
    c.bench_function("sign/hmac_batch_sum", |b| {
        b.iter(|| key.sign_hex(black_box(&signing)))
    });
    let ed = SigningKey::ed25519_from_seed(&[7u8; 32]).unwrap_or_else(|_| unreachable!());
    c.bench_function("sign/ed25519_batch_sum", |b| {
        b.iter(|| ed.sign_hex(black_box(&signing)))
    });

    c.bench_function("verify/hmac_batch_sum_full", |b| {
        b.iter(|| {
            verify_request(
                black_box(&wire),
                &config,
                &ring,
                &FixedClock(NOW),
                &AcceptAll,
            )
            .is_ok()
        })
    });
}

criterion_group!(proto, benches);
criterion_main!(proto);
