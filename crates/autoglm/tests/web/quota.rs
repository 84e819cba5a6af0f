//! Quotas from the browser: a system admin sees the tenant's use with no
//! limit, sets a quota in the form and sees each bar filled as far as the
//! running replica holds it; a count that is not a number and a quantity
//! the API refuses are shown beside the form, changing nothing; a viewer
//! sees the same bars and no form.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::browser::{
    arrive, browser, driver, log_in, replace_text, shoot, submit, text, wait_text,
};
use crate::common::{UPSTREAM, Up, register_model};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_admin_sets_a_quota_and_everyone_sees_its_use() {
    let home = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let up = Up::start(&home.path().join("home"), &[]);
    let base = up.console.url.clone();
    let http = up.console.client();
    let (s, b) = up
        .console
        .call(
            &http,
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "vic", "password": "a-long-password-1", "role": "viewer"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    register_model(&up.console, &http, "echo", 1, files.path()).await;
    let service = json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService",
    "metadata": {"name": "echo"}, "spec": {
        "model": "echo", "versions": [{"version": "1", "weight": 100}], "replicas": 1,
        "resources": {"cpu": "1", "memory": "1Gi"},
        "runtime": {"command": {"command": ["python3", UPSTREAM, "{port}", "{version}", "{name}"]}},
    }});
    let (s, b) = up
        .console
        .call(&http, Method::POST, "/api/v1/services", Some(service))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, quota) = up
            .console
            .call(&http, Method::GET, "/api/v1/quota", None)
            .await;
        if quota["used"]["replicas"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica within 60 s: {quota}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let driver = driver();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    log_in(&client, &base, &[("api_key", &up.console.token)]).await;
    arrive(&client, "/ui").await;
    client.goto(&format!("{base}/ui/quota")).await.unwrap();
    assert_eq!(text(&client, "#quota-tenant").await, "default");
    assert_eq!(text(&client, "#quota-replicas td.used").await, "1");
    assert_eq!(text(&client, "#quota-replicas td.limit").await, "no limit");
    assert_eq!(text(&client, "#quota-cpu td.used").await, "1");
    assert_eq!(text(&client, "#quota-memory td.used").await, "1Gi");

    // A count that is not a number is refused by the page, the quota kept.
    replace_text(&client, "gpus", "two").await;
    submit(
        &client,
        Locator::Css("#set-quota button[type=submit]"),
        "/ui/quota",
    )
    .await;
    assert_eq!(
        text(&client, "#quota-error").await,
        "gpus must be a whole number, not \"two\"."
    );
    // A quantity the API refuses is shown with its field.
    replace_text(&client, "gpus", "").await;
    replace_text(&client, "cpu", "lots").await;
    submit(
        &client,
        Locator::Css("#set-quota button[type=submit]"),
        "/ui/quota",
    )
    .await;
    let refused = text(&client, "#quota-error").await;
    assert!(
        refused.contains("cpu: \"lots\" is not a quantity"),
        "{refused}"
    );
    let (_, quota) = up
        .console
        .call(&http, Method::GET, "/api/v1/quota", None)
        .await;
    assert_eq!(quota["quota"], json!({}));

    replace_text(&client, "cpu", "4").await;
    replace_text(&client, "memory", "4Gi").await;
    replace_text(&client, "replicas", "2").await;
    replace_text(&client, "tokens_per_day", "1000").await;
    submit(
        &client,
        Locator::Css("#set-quota button[type=submit]"),
        "/ui/quota",
    )
    .await;
    wait_text(&client, "#quota-replicas td.limit", WAIT, |t| t == "2").await;
    assert_eq!(text(&client, "#quota-replicas .percent").await, "50%");
    assert_eq!(text(&client, "#quota-cpu td.limit").await, "4");
    assert_eq!(text(&client, "#quota-cpu .percent").await, "25%");
    assert_eq!(text(&client, "#quota-memory .percent").await, "25%");
    assert_eq!(
        text(&client, "#quota-tokens_per_day td.limit").await,
        "1000"
    );
    assert_eq!(text(&client, "#quota-gpus td.limit").await, "no limit");
    shoot(&client, "quota.png").await;
    let (_, quota) = up
        .console
        .call(&http, Method::GET, "/api/v1/quota", None)
        .await;
    assert_eq!(
        quota["quota"],
        json!({"cpu": "4", "memory": "4Gi", "replicas": 2, "tokens_per_day": 1000})
    );
    client.close().await.unwrap();

    // A viewer sees the bars, and no form to change them.
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    log_in(
        &client,
        &base,
        &[("username", "vic"), ("password", "a-long-password-1")],
    )
    .await;
    arrive(&client, "/ui").await;
    client.goto(&format!("{base}/ui/quota")).await.unwrap();
    assert_eq!(text(&client, "#quota-replicas .percent").await, "50%");
    assert!(
        client.find(Locator::Id("set-quota")).await.is_err(),
        "a viewer is offered the quota form"
    );
    client.close().await.unwrap();
}
