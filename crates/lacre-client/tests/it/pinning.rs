//! Trust by fingerprint, end to end: the client fetches the key a real
//! Ed25519 server publishes at /.well-known/lacre.json and checks it
//! against a pin of at least 128 bits.

use crate::support::*;
use lacre_client::{Client, ClientError, ServerTrust};
use lacre_proto::SigningKey;

async fn ed25519_server() -> (String, SigningKey, RealServer) {
    let key = SigningKey::ed25519_from_seed(&[42u8; 32]).unwrap();
    let real = real_server_with_key(key.clone()).await;
    (format!("http://{}/mcp", real.addr), key, real)
}

fn pinned(url: &str, pin: &str) -> Result<Client, ClientError> {
    Client::builder(url, "client-001", SERVER_ID)
        .key(SigningKey::hmac(CLIENT_SECRET).unwrap())
        .trust(ServerTrust::Fingerprint(pin.to_owned()))
        .build()
}

#[tokio::test]
async fn a_full_pin_trusts_the_published_key() {
    let (url, key, _real) = ed25519_server().await;
    let full = key.verifying_key().fingerprint_sha256();
    for pin in [full.as_str(), &full[..32]] {
        let reply = pinned(&url, pin)
            .unwrap()
            .call("batch_sum", serde_json::json!({"numbers": [1, 2]}))
            .await
            .unwrap();
        assert_eq!(reply.result_json()["total"], 3.0);
    }
}

#[tokio::test]
async fn a_64_bit_pin_is_refused_before_any_request() {
    // pin_strength: the 16-hex display fingerprint used to be accepted.
    let (url, key, _real) = ed25519_server().await;
    let err = pinned(&url, &key.fingerprint()).err().unwrap();
    assert!(matches!(err, ClientError::Usage(_)), "{err:?}");
}

#[tokio::test]
async fn another_key_does_not_match_the_pin() {
    let (url, _, _real) = ed25519_server().await;
    let other = SigningKey::ed25519_from_seed(&[7u8; 32]).unwrap();
    let err = pinned(&url, &other.verifying_key().fingerprint_sha256())
        .unwrap()
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Trust(_)), "{err:?}");
}
