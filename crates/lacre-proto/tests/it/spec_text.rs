//! The constants SPEC §5.5 publishes, read from docs/SPEC.md itself and
//! recomputed: the text an implementer copies must be what lacre does.

use lacre_proto::{Envelope, ParseLimits, Response, SigningKey};

const SPEC: &str = include_str!("../../../../docs/SPEC.md");

/// The body of section `heading` (up to the next heading of its level or
/// higher).
fn section(heading: &str) -> &'static str {
    let start = SPEC
        .find(heading)
        .unwrap_or_else(|| panic!("SPEC has no {heading:?}"));
    let body = &SPEC[start + heading.len()..];
    let end = body
        .find("\n## ")
        .into_iter()
        .chain(body.find("\n### "))
        .min();
    &body[..end.unwrap_or(body.len())]
}

/// The fenced code blocks of `text`, in order.
fn code_blocks(text: &str) -> Vec<&str> {
    text.split("```\n")
        .skip(1)
        .step_by(2)
        .map(|b| b.trim_end_matches('\n'))
        .collect()
}

#[test]
fn the_worked_example_is_what_lacre_computes() {
    let text = section("### 5.5 Worked example");
    let blocks = code_blocks(text);
    assert_eq!(blocks.len(), 8, "{blocks:#?}");
    let client = SigningKey::hmac(b"client_secret_key_456").unwrap();
    let server = SigningKey::hmac(b"server_secret_key_123").unwrap();
    let ed = SigningKey::ed25519_from_seed(
        &lacre_proto::from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
            .unwrap(),
    )
    .unwrap();

    // The seed's batch_sum call: signed bytes, their length, both signatures.
    // The message as written has no signature member yet; the envelope
    // needs one, and its value is not signed.
    let envelope = |msg: &str| {
        let mut text = msg.trim_end_matches('}').to_owned();
        text.push_str(", \"signature\": \"\"}");
        Envelope::parse(text.as_bytes(), ParseLimits::default()).unwrap()
    };
    let first = envelope(blocks[0]);
    let signed = first.signing_bytes();
    assert_eq!(String::from_utf8(signed.clone()).unwrap(), blocks[1]);
    assert!(text.contains(&format!("Signed bytes ({} bytes)", signed.len())));
    assert_eq!(client.sign_hex(&signed), blocks[2]);
    assert_eq!(ed.sign_hex(&signed), blocks[3]);

    // Defaults are signed.
    let second = envelope(blocks[4]);
    let signed = second.signing_bytes();
    assert_eq!(String::from_utf8(signed.clone()).unwrap(), blocks[5]);
    assert!(
        text.contains(&format!(
            "HMAC with the client secret: `{}`",
            client.sign_hex(&signed)
        )),
        "the inline HMAC of env/no_v_no_args"
    );

    // The response: signed bytes, their length, the wire form's signature.
    let wire = Response::parse(blocks[7].as_bytes(), ParseLimits::default()).unwrap();
    let signed = wire.signing_bytes();
    assert_eq!(String::from_utf8(signed.clone()).unwrap(), blocks[6]);
    assert!(text.contains(&format!("signed bytes ({} bytes)", signed.len())));
    assert_eq!(server.sign_hex(&signed), wire.signature);
    assert_eq!(wire.to_json(), blocks[7].as_bytes());
}
