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
    Envelope, ErrorCode, Map, ParseLimits, ResponseError, ResponseSigner, SigningKey, Status, Value,
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

/// Calls `batch_sum` on a fake server that answers with `reply(request,
/// the real server's key)`.
async fn sum_against(
    reply: impl Fn(&[u8], &SigningKey) -> Vec<u8> + Send + Sync + 'static,
) -> Result<lacre_client::Reply, ClientError> {
    let key = SigningKey::hmac(SERVER_SECRET).unwrap();
    let url = fake_server(move |body| reply(body, &key)).await;
    client(&url)
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
}

#[tokio::test]
async fn an_honest_fake_reply_is_accepted() {
    // Control: the fake server itself is correct, so the rejections below are real.
    let reply = sum_against(|body, key| honest_reply(body, key).to_json())
        .await
        .unwrap();
    assert_eq!(reply.result_json()["count"], 1);
}

#[tokio::test]
async fn a_flipped_byte_is_rejected() {
    assert_fails!(
        sum_against(|body, key| {
            let mut bytes = honest_reply(body, key).to_json();
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
    assert_fails!(
        sum_against(|body, key| {
            let mut r = honest_reply(body, key);
            r.request_id = "some-other-request".into();
            r.sign(key);
            r.to_json()
        }),
        ClientError::Verification(ResponseError::RequestIdMismatch { .. })
    );
}

#[tokio::test]
async fn a_reply_signed_with_another_key_is_rejected() {
    let other = SigningKey::hmac(b"attacker").unwrap();
    assert_fails!(
        sum_against(move |body, _| honest_reply(body, &other).to_json()),
        ClientError::Verification(ResponseError::BadSignature(_))
    );
}

#[tokio::test]
async fn a_reply_from_another_server_is_rejected() {
    assert_fails!(
        sum_against(|body, key| {
            let env = Envelope::parse(body, ParseLimits::default()).unwrap();
            ResponseSigner::new("impostor", key.clone())
                .success(&env.request_id, env.ts_ms, Status::Ok, None)
                .to_json()
        }),
        ClientError::Verification(ResponseError::ServerIdMismatch { .. })
    );
}

#[tokio::test]
async fn an_unsigned_error_is_rejected() {
    // The seed's server answers bad signatures with an unsigned dict.
    assert_fails!(
        sum_against(|_, _| br#"{"error":"bad signature"}"#.to_vec()),
        ClientError::Verification(ResponseError::Malformed(_))
    );
}

/// A signed error, stamped now, from the trusted server.
fn signed_error(request_id: &str, code: ErrorCode, bound_to: Option<&[u8]>) -> Vec<u8> {
    let key = SigningKey::hmac(SERVER_SECRET).unwrap();
    ResponseSigner::new(SERVER_ID, key)
        .error_json(request_id, now_ms(), &code, "refused", bound_to)
        .1
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn request_id_of(body: &[u8]) -> String {
    Envelope::parse(body, ParseLimits::default())
        .unwrap()
        .request_id
}

#[tokio::test]
async fn an_unaddressed_refusal_is_never_the_outcome_of_a_request() {
    // forged_refusals: anyone gets a signed refusal with request_id "" by
    // posting `{`; handed back for another request it used to be taken as
    // that request's answer. It says nothing about whether the request ran.
    for code in [
        ErrorCode::Overloaded,
        ErrorCode::BadEnvelope,
        ErrorCode::UnknownJob,
    ] {
        assert_fails!(
            sum_against(move |_, _| signed_error("", code.clone(), None)),
            ClientError::OutcomeUnknown(_)
        );
    }
}

#[tokio::test]
async fn a_refusal_bound_to_other_bytes_is_rejected() {
    // forged_refusals: a copy of the victim's request with a zeroed
    // signature gets a signed bad_signature with the victim's request_id;
    // its binding names the copy, not the victim's bytes.
    assert_fails!(
        sum_against(|body, _| {
            let mut copy = body.to_vec();
            copy.push(b' ');
            signed_error(&request_id_of(body), ErrorCode::BadSignature, Some(&copy))
        }),
        ClientError::Verification(ResponseError::BindingMismatch { .. })
    );
}

#[tokio::test]
async fn an_unbound_refusal_with_the_request_id_does_not_tell_the_outcome() {
    assert_fails!(
        sum_against(|body, _| signed_error(&request_id_of(body), ErrorCode::InvalidArgs, None)),
        ClientError::OutcomeUnknown(_)
    );
}

#[tokio::test]
async fn a_bound_refusal_tells_the_outcome_unless_a_copy_could_have_caused_it() {
    assert_fails!(
        sum_against(|body, _| {
            signed_error(&request_id_of(body), ErrorCode::InvalidArgs, Some(body))
        }),
        ClientError::Server {
            code: ErrorCode::InvalidArgs,
            ..
        }
    );
    // An attacker who sent the victim's bytes first gets replayed_nonce,
    // or stale_timestamp by waiting: the request may well have run.
    for code in [
        ErrorCode::ReplayedNonce,
        ErrorCode::StaleTimestamp,
        ErrorCode::Overloaded,
    ] {
        assert_fails!(
            sum_against(move |body, _| signed_error(
                &request_id_of(body),
                code.clone(),
                Some(body)
            )),
            ClientError::OutcomeUnknown(_)
        );
    }
}

#[tokio::test]
async fn a_stored_reply_from_long_ago_is_rejected() {
    // forged_refusals: reply timestamps were never checked, so a stored
    // reply could be handed back forever.
    assert_fails!(
        sum_against(|body, key| {
            let env = Envelope::parse(body, ParseLimits::default()).unwrap();
            ResponseSigner::new(SERVER_ID, key.clone())
                .success(&env.request_id, now_ms() - 3_600_000, Status::Ok, None)
                .to_json()
        }),
        ClientError::Verification(ResponseError::StaleReply { .. })
    );
}

/// A man in the middle before a real server: it forwards the client's
/// request (which runs), then sends `tamper(request)` itself and hands the
/// client the server's signed answer to that instead.
async fn mitm(upstream: std::net::SocketAddr, tamper: fn(&[u8]) -> Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                while let Some((_, body)) = read_request(&mut client).await {
                    let http = reqwest::Client::new();
                    let url = format!("http://{upstream}/mcp");
                    let real = http.post(&url).body(body.clone()).send().await.unwrap();
                    assert!(real.status().is_success(), "the real request ran");
                    let forged = http.post(&url).body(tamper(&body)).send().await.unwrap();
                    let status = forged.status().as_u16();
                    let bytes = forged.bytes().await.unwrap();
                    write_response(&mut client, status, &bytes).await;
                }
            });
        }
    });
    format!("http://{addr}/mcp")
}

fn zero_signature(body: &[u8]) -> Vec<u8> {
    let mut env = Envelope::parse(body, ParseLimits::default()).unwrap();
    env.signature = "0".repeat(64);
    env.to_json()
}

#[tokio::test]
async fn a_refusal_of_a_tampered_copy_is_not_the_answer_to_the_request_that_ran() {
    // forged_refusals, over real HTTP against a real server: the copy's
    // bad_signature carries the victim's request_id but the copy's binding.
    let real = real_server().await;
    let url = mitm(real.addr, zero_signature).await;
    let err = client(&url)
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Verification(ResponseError::BindingMismatch { .. })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_replay_of_the_exact_bytes_says_the_outcome_is_unknown() {
    // The same bytes again are genuinely bound, but replayed_nonce only
    // says that they were received before: the call may have run.
    let real = real_server().await;
    let url = mitm(real.addr, <[u8]>::to_vec).await;
    let err = client(&url)
        .call("batch_sum", serde_json::json!({"numbers": [1]}))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::OutcomeUnknown(_)), "{err:?}");
}
