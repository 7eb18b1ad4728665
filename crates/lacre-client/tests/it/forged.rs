//! Replies that must never be returned as results.

use crate::support::*;
use lacre_client::ClientError;
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

#[tokio::test]
async fn an_honest_fake_reply_is_accepted() {
    // Control: the fake server itself is correct, so the rejections below are real.
    let key = SigningKey::hmac(SERVER_SECRET).unwrap();
    let url = fake_server(move |body| honest_reply(body, &key).to_json()).await;
    let reply = client(&url)
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
        .unwrap();
    assert_eq!(reply.result_json()["count"], 1);
}

#[tokio::test]
async fn a_flipped_byte_is_rejected() {
    let key = SigningKey::hmac(SERVER_SECRET).unwrap();
    let url = fake_server(move |body| {
        let mut bytes = honest_reply(body, &key).to_json();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let at = text.find("\"count\":1").unwrap() + "\"count\":".len();
        bytes[at] = b'2';
        bytes
    })
    .await;
    let err = client(&url)
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Verification(ResponseError::BadSignature(_))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_reply_for_another_request_is_rejected() {
    let key = SigningKey::hmac(SERVER_SECRET).unwrap();
    let url = fake_server(move |body| {
        let mut r = honest_reply(body, &key);
        r.request_id = "some-other-request".into();
        r.sign(&key);
        r.to_json()
    })
    .await;
    let err = client(&url)
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Verification(ResponseError::RequestIdMismatch { .. })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_reply_signed_with_another_key_is_rejected() {
    let other = SigningKey::hmac(b"attacker").unwrap();
    let url = fake_server(move |body| honest_reply(body, &other).to_json()).await;
    let err = client(&url)
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Verification(ResponseError::BadSignature(_))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_reply_from_another_server_is_rejected() {
    let key = SigningKey::hmac(SERVER_SECRET).unwrap();
    let url = fake_server(move |body| {
        let env = Envelope::parse(body, ParseLimits::default()).unwrap();
        ResponseSigner::new("impostor", key.clone())
            .success(&env.request_id, 0, Status::Ok, None)
            .to_json()
    })
    .await;
    let err = client(&url)
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Verification(ResponseError::ServerIdMismatch { .. })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unsigned_error_is_rejected() {
    // The seed's server answers bad signatures with an unsigned dict.
    let url = fake_server(|_| br#"{"error":"bad signature"}"#.to_vec()).await;
    let err = client(&url)
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Verification(ResponseError::Malformed(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_signed_refusal_before_reading_the_request_is_a_server_error() {
    let key = SigningKey::hmac(SERVER_SECRET).unwrap();
    let url = fake_server(move |_| {
        ResponseSigner::new(SERVER_ID, key.clone())
            .error(
                "",
                0,
                &lacre_proto::ErrorCode::Overloaded,
                "server overloaded, retry later",
            )
            .to_json()
    })
    .await;
    let err = client(&url)
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Server {
                code: lacre_proto::ErrorCode::Overloaded,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unaddressed_reply_of_another_kind_is_still_rejected() {
    // Only refusals the server sends before it can read a request may carry
    // an empty request_id; anything else must answer the request sent.
    let key = SigningKey::hmac(SERVER_SECRET).unwrap();
    let url = fake_server(move |_| {
        ResponseSigner::new(SERVER_ID, key.clone())
            .error("", 0, &lacre_proto::ErrorCode::UnknownJob, "no")
            .to_json()
    })
    .await;
    let err = client(&url)
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Verification(ResponseError::RequestIdMismatch { .. })
        ),
        "{err:?}"
    );
}
