//! `Idempotency-Key` on POSTs: a retried request replays the first answer
//! (marked `idempotent-replayed: true`) and changes nothing twice, the same
//! key with another request is refused, keys belong to one principal, a key
//! still being processed is refused rather than run twice, and key creation,
//! whose answer holds a secret, refuses the header altogether.
#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::time::Duration;

use autoglm_core::rbac::Role;
use axum::body::{Body, Bytes};
use axum::http::{Method, header};
use common::*;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

fn replayed(resp: &Resp) -> bool {
    resp.headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

#[tokio::test]
async fn a_retried_create_replays_the_first_answer() {
    let c = console();
    let body = json!({"name": "once", "labels": {"team": "nlp"}});
    let first = post_with_key(&c.app, &c.admin, "/api/v1/models", "k1", body.clone()).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.describe());
    assert!(!replayed(&first), "a first answer is not a replay");

    let second = post_with_key(&c.app, &c.admin, "/api/v1/models", "k1", body.clone()).await;
    assert_eq!(second.status, first.status);
    assert_eq!(
        second.body, first.body,
        "the replay is the first answer, byte for byte"
    );
    assert_eq!(second.content_type(), "application/json");
    assert!(replayed(&second), "{:?}", second.headers);

    // Even after the model changed, the key replays what was answered then.
    patch(
        &c.app,
        "/api/v1/models/once",
        &c.admin,
        json!({"description": "changed"}),
    )
    .await
    .expect(200);
    let third = post_with_key(&c.app, &c.admin, "/api/v1/models", "k1", body).await;
    assert_eq!(third.body, first.body);
    assert!(replayed(&third));

    assert_eq!(model_names(&c.app, &c.admin).await, ["once"]);
    let created = audit(&c.app, &c.admin, "action=models.create&outcome=success").await;
    assert_eq!(
        created.len(),
        1,
        "one change, one audit record: {created:?}"
    );
    // A replay is not a failure either.
    let refused = audit(&c.app, &c.admin, "action=models.create").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_audit_valid(&c.app, &c.admin).await;
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused() {
    let c = console();
    post_with_key(
        &c.app,
        &c.admin,
        "/api/v1/models",
        "k1",
        json!({"name": "first"}),
    )
    .await
    .expect(201);
    let other_body = post_with_key(
        &c.app,
        &c.admin,
        "/api/v1/models",
        "k1",
        json!({"name": "second"}),
    )
    .await;
    assert_problem(&other_body, 422, "idempotency_key_reused");
    assert!(!replayed(&other_body));
    // Another path is another request too.
    let other_path = post_with_key(
        &c.app,
        &c.admin,
        "/api/v1/tenants",
        "k1",
        json!({"name": "first"}),
    )
    .await;
    assert_problem(&other_path, 422, "idempotency_key_reused");
    assert_eq!(model_names(&c.app, &c.admin).await, ["first"]);
    let tenants = get_json(&c.app, "/api/v1/tenants", &c.admin).await;
    assert_eq!(tenants.as_array().unwrap().len(), 1, "{tenants}");
    // The refusal is audited.
    let refused = audit(&c.app, &c.admin, "outcome=idempotency_key_reused").await;
    assert_eq!(refused.len(), 2, "{refused:?}");
}

#[tokio::test]
async fn keys_belong_to_the_principal_that_sent_them() {
    let c = console();
    let dev = user_session(&c.app, &c.admin, "dev", Role::Developer).await;
    post_with_key(
        &c.app,
        &c.admin,
        "/api/v1/models",
        "k1",
        json!({"name": "shared"}),
    )
    .await
    .expect(201);
    // Another user's request under the same key runs on its own: it is not
    // handed the admin's answer, nor refused as a reuse.
    let theirs = post_with_key(
        &c.app,
        &dev,
        "/api/v1/models",
        "k1",
        json!({"name": "shared"}),
    )
    .await;
    assert_problem(&theirs, 409, "already_exists");
    assert!(!replayed(&theirs));
    // A refused request is not remembered: the key is still free for them.
    let own = post_with_key(
        &c.app,
        &dev,
        "/api/v1/models",
        "k1",
        json!({"name": "devs"}),
    )
    .await;
    assert_eq!(own.status.as_u16(), 201, "{}", own.describe());
    assert!(!replayed(&own));
    let again = post_with_key(
        &c.app,
        &dev,
        "/api/v1/models",
        "k1",
        json!({"name": "devs"}),
    )
    .await;
    assert!(replayed(&again));
    assert_eq!(again.body, own.body);
    assert_eq!(model_names(&c.app, &c.admin).await, ["devs", "shared"]);
}

#[tokio::test]
async fn key_creation_refuses_an_idempotency_key() {
    let c = console();
    let before = get_json(&c.app, "/api/v1/keys", &c.admin).await;
    let resp = post_with_key(
        &c.app,
        &c.admin,
        "/api/v1/keys",
        "k1",
        json!({"name": "ci"}),
    )
    .await;
    assert_problem(&resp, 400, "invalid_header");
    assert!(!resp.text().contains("agk_"), "no secret in a refusal");
    let after = get_json(&c.app, "/api/v1/keys", &c.admin).await;
    assert_eq!(before, after, "no key was created");
}

#[tokio::test]
async fn unusable_idempotency_keys_are_refused() {
    let c = console();
    let long = "k".repeat(256);
    for key in [&b""[..], long.as_bytes(), "clé".as_bytes()] {
        let req = request(Method::POST, "/api/v1/models", Some(&c.admin))
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                "idempotency-key",
                axum::http::HeaderValue::from_bytes(key).unwrap(),
            )
            .body(Body::from(r#"{"name":"m"}"#))
            .unwrap();
        assert_problem(&send(&c.app, req).await, 400, "invalid_header");
    }
    assert_eq!(model_count(&c.app, &c.admin).await, 0);
    // 255 characters is the limit, not less.
    post_with_key(
        &c.app,
        &c.admin,
        "/api/v1/models",
        &"k".repeat(255),
        json!({"name": "m"}),
    )
    .await
    .expect(201);
}

fn upload_with_key(c: &Console, key: &str, parts: &[Part<'_>]) -> axum::http::Request<Body> {
    upload_request("m", &c.admin, parts)
        .header("idempotency-key", key)
        .body(Body::from(multipart(parts)))
        .unwrap()
}

#[tokio::test]
async fn a_retried_upload_creates_one_version() {
    let c = console();
    create_model(&c.app, &c.admin, "m").await;
    let file = safetensors([1.0, 2.0]);
    let parts = [Part::artifact("model.safetensors", &file)];
    let first = send(&c.app, upload_with_key(&c, "up-1", &parts)).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.describe());
    let second = send(&c.app, upload_with_key(&c, "up-1", &parts)).await;
    assert_eq!(second.status.as_u16(), 201);
    assert!(replayed(&second));
    assert_eq!(second.body, first.body);
    assert_eq!(second.json()["version"], 1);

    let versions = get_items(&c.app, "/api/v1/models/m/versions", &c.admin).await;
    assert_eq!(versions.len(), 1);
    let (committed, staged) = artifact_dirs(&c);
    assert_eq!(committed.len(), 1, "the replay stored no second copy");
    assert!(staged.is_empty());

    // A different upload under the same key (its length differs) is refused.
    let other = safetensors([1.0, 2.0]);
    let parts = [
        Part::artifact("model.safetensors", &other),
        Part::artifact("config.json", b"{}"),
    ];
    let resp = send(&c.app, upload_with_key(&c, "up-1", &parts)).await;
    assert_problem(&resp, 422, "idempotency_key_reused");
    let created = audit(&c.app, &c.admin, "action=versions.create&outcome=success").await;
    assert_eq!(created.len(), 1);
}

/// Starts uploading `parts` to model `m` under `key` in a task of its own,
/// with a body that arrives only as the returned sender sends it: sends the
/// first half, waits until the key is in flight, and returns the sender, the
/// task and the second half, not yet sent.
async fn start_half_sent_upload(
    c: &Console,
    key: &str,
    parts: &[Part<'_>],
) -> (mpsc::Sender<Bytes>, JoinHandle<Resp>, Bytes) {
    let body = multipart(parts);
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    });
    let slow = upload_request("m", &c.admin, parts)
        .header("idempotency-key", key)
        .body(Body::from_stream(stream))
        .unwrap();
    let app = c.app.clone();
    let task = tokio::spawn(async move { send(&app, slow).await });
    let half = body.len() / 2;
    tx.send(Bytes::copy_from_slice(&body[..half]))
        .await
        .unwrap();
    wait_until_one_key_in_flight(c).await;
    (tx, task, Bytes::copy_from_slice(&body[half..]))
}

/// Waits (up to 5 s) for a key to be held in flight, and asserts that one is.
async fn wait_until_one_key_in_flight(c: &Console) {
    for _ in 0..500 {
        if !c.state.in_flight_keys.lock().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(c.state.in_flight_keys.lock().len(), 1);
}

#[tokio::test]
async fn a_key_still_in_flight_is_not_run_twice() {
    let c = console();
    create_model(&c.app, &c.admin, "m").await;
    let file = safetensors([1.0, 2.0]);
    let parts = [Part::artifact("model.safetensors", &file)];

    // The first upload's body arrives slowly: half now, half later.
    let (tx, first, rest) = start_half_sent_upload(&c, "slow", &parts).await;

    let retry = send(&c.app, upload_with_key(&c, "slow", &parts)).await;
    assert_problem(&retry, 409, "idempotency_in_progress");

    tx.send(rest).await.unwrap();
    drop(tx);
    let first = first.await.unwrap();
    assert_eq!(first.status.as_u16(), 201, "{}", first.describe());
    assert!(
        c.state.in_flight_keys.lock().is_empty(),
        "the key is released"
    );

    let later = send(&c.app, upload_with_key(&c, "slow", &parts)).await;
    assert!(replayed(&later), "{}", later.describe());
    assert_eq!(later.body, first.body);
    let versions = get_items(&c.app, "/api/v1/models/m/versions", &c.admin).await;
    assert_eq!(versions.len(), 1);
}

/// A client whose connection drops mid-upload retries with the same key;
/// the abandoned request must not keep that key "in progress" forever (nor
/// leave staged files behind).
#[tokio::test]
async fn an_abandoned_request_releases_its_key() {
    let c = console();
    create_model(&c.app, &c.admin, "m").await;
    let file = safetensors([1.0, 2.0]);
    let parts = [Part::artifact("model.safetensors", &file)];

    let (tx, first, _) = start_half_sent_upload(&c, "dropped", &parts).await;
    // The connection goes away: the server drops the request's future.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    drop(tx);

    let (_, staged) = artifact_dirs(&c);
    assert!(staged.is_empty(), "the abandoned upload left {staged:?}");
    let retry = send(&c.app, upload_with_key(&c, "dropped", &parts)).await;
    assert_eq!(
        retry.status.as_u16(),
        201,
        "the retry after a dropped connection: {}",
        retry.describe()
    );
}
