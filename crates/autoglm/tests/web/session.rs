//! A session that ends while its page is open: the key it logged in with is
//! revoked elsewhere, or expires. The next action on the page leads to the
//! login form, which leads back to the page, and the action changes nothing.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::json;

use crate::browser::{arrive, browser, click, driver, log_in, submit, type_into};
use crate::common::Console;

/// Fills in the new-model form of the models page, without submitting it.
async fn start_a_model(client: &Client, base: &str, name: &str) {
    client.goto(&format!("{base}/ui/models")).await.unwrap();
    click(client, Locator::Css("details.new-model summary")).await;
    type_into(client, Locator::Id("model-name"), name).await;
}

/// Submits the form, which must lead to the login form with the page as `next`.
async fn submit_and_land_on_login(client: &Client) {
    click(client, Locator::Css("#new-model button[type=submit]")).await;
    arrive(client, "/login").await;
    let url = client.current_url().await.unwrap();
    assert_eq!(url.query(), Some("next=%2Fui%2Fmodels"), "{url}");
}

/// Whether the console has a model `name`.
async fn has_model(console: &Console, http: &reqwest::Client, name: &str) -> bool {
    let (status, _) = console
        .call(
            http,
            reqwest::Method::GET,
            &format!("/api/v1/models/{name}"),
            None,
        )
        .await;
    match status {
        reqwest::StatusCode::OK => true,
        reqwest::StatusCode::NOT_FOUND => false,
        other => panic!("reading model {name}: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_ends_mid_use_leads_to_the_login_and_changes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(&home.path().join("home"), &[]);
    let base = console.url.clone();
    let http = console.client();
    // Keys of the admin's to log in with, made just before they are used.
    let new_key = |body: serde_json::Value| {
        let (console, http) = (&console, &http);
        async move {
            let (status, key) = console
                .call(http, reqwest::Method::POST, "/api/v1/keys", Some(body))
                .await;
            assert_eq!(status, reqwest::StatusCode::CREATED, "{key}");
            let secret = key["secret"].as_str().unwrap().to_owned();
            (key["id"].as_str().unwrap().to_owned(), secret)
        }
    };

    let driver = driver();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;

    // Revoked elsewhere while the form is being filled in.
    let (id, revoked) = new_key(json!({"name": "revoked"})).await;
    log_in(&client, &base, &[("api_key", &revoked)]).await;
    arrive(&client, "/ui").await;
    start_a_model(&client, &base, "after-revoke").await;
    let (status, answer) = console
        .call(
            &http,
            reqwest::Method::DELETE,
            &format!("/api/v1/keys/{id}"),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{answer}");
    submit_and_land_on_login(&client).await;
    assert!(!has_model(&console, &http, "after-revoke").await);
    // Logging in again leads back to the page the action came from.
    type_into(&client, Locator::Id("api_key"), &console.token).await;
    submit(
        &client,
        Locator::Css("main.login button[type=submit]"),
        "/ui/models",
    )
    .await;

    // Expired while the form is being filled in (a minute is the shortest
    // lifetime a key may have).
    let (_, expiring) = new_key(json!({"name": "expiring", "expires_in_seconds": 60})).await;
    log_in(&client, &base, &[("api_key", &expiring)]).await;
    arrive(&client, "/ui").await;
    start_a_model(&client, &base, "after-expiry").await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let whoami = http
            .get(console.api("/api/v1/auth/whoami"))
            .bearer_auth(&expiring)
            .send()
            .await
            .unwrap();
        if whoami.status() == reqwest::StatusCode::UNAUTHORIZED {
            let problem: serde_json::Value = whoami.json().await.unwrap();
            assert_eq!(problem["code"], "token_expired", "{problem}");
            break;
        }
        assert!(Instant::now() < deadline, "the key did not expire");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    submit_and_land_on_login(&client).await;
    assert!(!has_model(&console, &http, "after-expiry").await);
    client.close().await.unwrap();
}
