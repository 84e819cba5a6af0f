//! A rollout from the browser: the service's page shows the rollout panel
//! (phase, the canary's weight, the steps as a timeline), follows it live to
//! the open pause, and promotes it with a click; a viewer sees the panel
//! without a button.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;

use crate::browser::{arrive, browser, driver, log_in, shoot, submit, text, wait_text};
use crate::common::{self, Up};

const UPSTREAM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openai_upstream.py"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_is_followed_and_promoted_from_the_browser() {
    let home = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let up = Up::start(&home.path().join("home"), &[]);
    let base = up.console.url.clone();
    let http = up.console.client();
    common::register_model(&up.console, &http, "echo", 2, files.path()).await;
    let (s, b) = up
        .console
        .call(
            &http,
            reqwest::Method::POST,
            "/api/v1/users",
            Some(json!({"username": "vic", "password": "a-long-password-1", "role": "viewer"})),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{b}");
    // An explicit analysis after the open pause: no default guard before it.
    let service = |version: &str| {
        json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService", "metadata": {"name": "echo"},
               "spec": {"model": "echo", "versions": [{"version": version, "weight": 100}], "replicas": 1,
                        "runtime": {"command": {"command": ["python3", UPSTREAM, "{port}", "{version}", "{name}"]}},
                        "rollout": {"steps": [{"setWeight": 30}, {"pause": {}},
                            {"analysis": {"metrics": [{"name": "errors", "successCondition": "result < 0.05",
                                                       "provider": {"gateway": {"metric": "errorRatio"}}}]}},
                            {"setWeight": 100}]}}})
    };
    let (s, task) = up
        .console
        .call(
            &http,
            reqwest::Method::POST,
            "/api/v1/services",
            Some(service("1")),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::ACCEPTED, "{task}");
    let (s, task) = up
        .console
        .call(
            &http,
            reqwest::Method::PUT,
            "/api/v1/services/echo",
            Some(service("2")),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::ACCEPTED, "{task}");

    let driver = driver();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    log_in(&client, &base, &[("api_key", &up.console.token)]).await;
    arrive(&client, "/ui").await;
    client
        .goto(&format!("{base}/ui/services/echo"))
        .await
        .unwrap();
    // The panel follows the rollout to its open pause without a reload.
    wait_text(&client, "#rollout-phase", Duration::from_secs(60), |t| {
        t == "Paused"
    })
    .await;
    assert_eq!(text(&client, "#rollout-weight").await, "30%");
    let now = text(&client, "#rollout-steps li.now").await;
    assert!(now.starts_with("pause until promoted"), "{now}");
    assert_eq!(
        text(&client, "#rollout-steps li.done").await,
        "setWeight 30"
    );
    shoot(&client, "rollout.png").await;
    submit(&client, Locator::Id("rollout-promote"), "/ui/services/echo").await;
    wait_text(&client, "#rollout-phase", Duration::from_secs(30), |t| {
        t == "Healthy"
    })
    .await;
    assert_eq!(text(&client, "#rollout-weight").await, "100%");
    assert!(
        client.find(Locator::Id("rollout-actions")).await.is_err(),
        "a finished rollout offers no action"
    );
    let (_, echo) = up
        .console
        .call(&http, reqwest::Method::GET, "/api/v1/services/echo", None)
        .await;
    assert_eq!(
        echo["spec"]["versions"],
        json!([{"version": "2", "weight": 100}])
    );

    // A viewer sees the panel, and no button.
    submit(&client, Locator::Id("logout"), "/login").await;
    log_in(
        &client,
        &base,
        &[("username", "vic"), ("password", "a-long-password-1")],
    )
    .await;
    arrive(&client, "/ui").await;
    client
        .goto(&format!("{base}/ui/services/echo"))
        .await
        .unwrap();
    assert_eq!(text(&client, "#rollout-phase").await, "Healthy");
    assert!(
        client
            .find(Locator::Css("#rollout-actions button"))
            .await
            .is_err()
    );
}
