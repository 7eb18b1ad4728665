//! Replies that must never be returned as results.

use crate::support::*;
use lacre_client::ClientError;
/// Asserts that a call failed in the way `pattern` describes.
macro_rules! assert_fails {
    ($result:expr, $pattern:pat) => {
        let err = $result.await.unwrap_err();
        assert!(matches!(err, $pattern), "{err:?}");
    };
}

use lacre_proto::{
    Envelope, Map, ParseLimits, ResponseError, ResponseSigner, SigningKey, Status, Value,
};

fn honest_reply(body: &[u8], key: &SigningKey) -> lacre_proto::Response {
    let env = Envelope::parse(body, ParseLimits::default()).unwrap();
    let mut result = Map::new();
    result.insert("count".into(), Value::from(1));
    ResponseSigner::new(SERVER_ID, key.clone()).success(
        &env.request_id,
        env.ts_ms,
        Status::Ok,
        Some(result),
    )
}

/// Calls `batch_sum` on a fake server that answers with `reply(request)`.
async fn sum_against(
    reply: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static,
) -> Result<lacre_client::Reply, ClientError> {
    let url = fake_server(reply).await;
    client(&url)
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
}

#[tokio::test]
async fn an_honest_fake_reply_is_accepted() {
    // Control: the fake server itself is correct, so the rejections below are real.
    let key = SigningKey::hmac(SERVER_SECRET).unwrap();
    let reply = sum_against(move |body| honest_reply(body, &key).to_json())
        .await
        .unwrap();
    assert_eq!(reply.result_json()["count"], 1);
}

#[tokio::test]
async fn a_flipped_byte_is_rejected() {
    let key = SigningKey::hmac(SERVER_SECRET).unwrap();
    assert_fails!(
        sum_against(move |body| {
            let mut bytes = honest_reply(body, &key).to_json();
            let text = String::from_utf8(bytes.clone()).unwrap();
            let at = text.find("\"count\":1").unwrap() + "\"count\":".len();
            bytes[at] = b'2';
            bytes
        }),
        ClientError::Verification(ResponseError::BadSignature(_))
    );
}

#[tokio::test]
async fn a_reply_for_another_request_is_rejected() {
    let key = SigningKey::hmac(SERVER_SECRET).unwrap();
    assert_fails!(
        sum_against(move |body| {
            let mut r = honest_reply(body, &key);
            r.request_id = "some-other-request".into();
            r.sign(&key);
            r.to_json()
        }),
        ClientError::Verification(ResponseError::RequestIdMismatch { .. })
    );
}

#[tokio::test]
async fn a_reply_signed_with_another_key_is_rejected() {
    let other = SigningKey::hmac(b"attacker").unwrap();
    assert_fails!(
        sum_against(move |body| honest_reply(body, &other).to_json()),
        ClientError::Verification(ResponseError::BadSignature(_))
    );
}

#[tokio::test]
async fn a_reply_from_another_server_is_rejected() {
    let key = SigningKey::hmac(SERVER_SECRET).unwrap();
    assert_fails!(
        sum_against(move |body| {
            let env = Envelope::parse(body, ParseLimits::default()).unwrap();
            ResponseSigner::new("impostor", key.clone())
                .success(&env.request_id, 0, Status::Ok, None)
                .to_json()
        }),
        ClientError::Verification(ResponseError::ServerIdMismatch { .. })
    );
}

#[tokio::test]
async fn an_unsigned_error_is_rejected() {
    // The seed's server answers bad signatures with an unsigned dict.
    assert_fails!(
        sum_against(|_| br#"{"error":"bad signature"}"#.to_vec()),
        ClientError::Verification(ResponseError::Malformed(_))
    );
}

#[tokio::test]
async fn a_signed_refusal_before_reading_the_request_is_a_server_error() {
    let key = SigningKey::hmac(SERVER_SECRET).unwrap();
    assert_fails!(
        sum_against(move |_| {
            ResponseSigner::new(SERVER_ID, key.clone())
                .error(
                    "",
                    0,
                    &lacre_proto::ErrorCode::Overloaded,
                    "server overloaded, retry later",
                )
                .to_json()
        }),
        ClientError::Server {
            code: lacre_proto::ErrorCode::Overloaded,
            ..
        }
    );
}

#[tokio::test]
async fn an_unaddressed_reply_of_another_kind_is_still_rejected() {
    // Only refusals the server sends before it can read a request may carry
    // an empty request_id; anything else must answer the request sent.
    let key = SigningKey::hmac(SERVER_SECRET).unwrap();
    assert_fails!(
        sum_against(move |_| {
            ResponseSigner::new(SERVER_ID, key.clone())
                .error("", 0, &lacre_proto::ErrorCode::UnknownJob, "no")
                .to_json()
        }),
        ClientError::Verification(ResponseError::RequestIdMismatch { .. })
    );
}
