//! Logging in with a password or an API key, reading and searching the
//! registry, creating a model and uploading its versions, moving a stage,
//! logging out.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::json;

use crate::browser::{
    arrive, browser, click, driver, log_in, replace_text, screenshots, submit, text, type_into,
};
use crate::common::{self, Console};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_logs_in_reads_the_registry_and_logs_out() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(&home.path().join("home"), &[]);
    let base = console.url.clone();
    let http = console.client();
    common::register_model(&console, &http, "smollm2", 2, home.path()).await;
    common::register_model(&console, &http, "minilm", 1, home.path()).await;
    let (created, viewer) = console
        .call(
            &http,
            reqwest::Method::POST,
            "/api/v1/users",
            Some(json!({"username": "vera", "password": "a-long-password-1", "role": "viewer"})),
        )
        .await;
    assert_eq!(created, reqwest::StatusCode::CREATED, "{viewer}");

    let driver = driver();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    let shots = screenshots();

    // A page without a session leads to the login form.
    client.goto(&format!("{base}/ui/models")).await.unwrap();
    let url = client.current_url().await.unwrap();
    assert_eq!(url.path(), "/login", "{url}");
    std::fs::write(shots.join("login.png"), client.screenshot().await.unwrap()).unwrap();

    // A wrong key is refused in words beside the form.
    log_in(&client, &base, &[("api_key", "agk_not-a-key")]).await;
    let error = text(&client, "#login-error").await;
    assert!(error.contains("API key"), "{error}");

    // The admin's key logs in and lands on the overview.
    log_in(&client, &base, &[("api_key", &console.token)]).await;
    arrive(&client, "/ui").await;
    let who = text(&client, "#who").await;
    assert!(who.contains("admin") && who.contains("default"), "{who}");
    assert!(text(&client, "main").await.contains("No services yet"));

    // The registry lists both models with their version counts, and searches by name.
    submit(&client, Locator::LinkText("Models"), "/ui/models").await;
    let table = text(&client, "#models").await;
    assert!(
        table.contains("smollm2") && table.contains("minilm"),
        "{table}"
    );
    let row = text(&client, "#models tbody tr:first-child").await;
    assert!(row.starts_with("minilm") && row.contains('1'), "{row}");
    std::fs::write(shots.join("models.png"), client.screenshot().await.unwrap()).unwrap();
    type_into(&client, Locator::Id("q"), "smol").await;
    click(&client, Locator::Css("form[role=search] button")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = text(&client, "#models tbody").await;
        if found.contains("smollm2") && !found.contains("minilm") {
            break;
        }
        assert!(Instant::now() < deadline, "the search kept showing {found}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client
        .goto(&format!("{base}/ui/models?q=nothing-like-this"))
        .await
        .unwrap();
    assert!(
        text(&client, "main")
            .await
            .contains("No model name contains")
    );

    // A key made in the browser works at once, its secret shown once; revoked, it stops.
    submit(&client, Locator::LinkText("API keys"), "/ui/keys").await;
    type_into(&client, Locator::Id("expires_days"), "zero").await;
    click(&client, Locator::Css("#new-key button")).await;
    let refused = text(&client, "#key-error").await;
    assert!(
        refused.contains("Expires after") && refused.contains("whole number"),
        "{refused}"
    );
    // The refused form keeps what was typed; the days are corrected.
    let days = client.find(Locator::Id("expires_days")).await.unwrap();
    assert_eq!(days.prop("value").await.unwrap().as_deref(), Some("zero"));
    replace_text(&client, "expires_days", "30").await;
    type_into(&client, Locator::Id("name"), "from-the-browser").await;
    click(&client, Locator::Css("#new-key button")).await;
    let secret = text(&client, "#secret").await;
    assert!(secret.starts_with("agk_"), "{secret}");
    let id = secret
        .trim_start_matches("agk_")
        .split('_')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        text(&client, ".notice").await.contains(&id),
        "the notice names the new key"
    );
    std::fs::write(shots.join("keys.png"), client.screenshot().await.unwrap()).unwrap();
    let whoami = |key: String| {
        let http = http.clone();
        let url = console.api("/api/v1/auth/whoami");
        async move {
            http.get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(whoami(secret.clone()).await, reqwest::StatusCode::OK);
    client.goto(&format!("{base}/ui/keys")).await.unwrap();
    assert!(
        !text(&client, "main").await.contains(&secret),
        "the secret is shown only once"
    );
    let row = text(&client, "#keys").await;
    assert!(row.contains("from-the-browser"), "{row}");
    let revoke = "//tr[td[contains(., 'from-the-browser')]]//button[contains(@class, 'revoke')]";
    submit(&client, Locator::XPath(revoke), "/ui/keys").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while whoami(secret.clone()).await != reqwest::StatusCode::UNAUTHORIZED {
        assert!(Instant::now() < deadline, "the revoked key still works");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The audit page shows what was done, filters it, and (for the system
    // admin) the hash chain's state.
    submit(&client, Locator::LinkText("Audit"), "/ui/audit").await;
    assert!(text(&client, "#chain").await.contains("Chain intact"));
    let log = text(&client, "#audit").await;
    assert!(
        [
            "models.create",
            "users.create",
            "keys.create",
            "keys.revoke"
        ]
        .iter()
        .all(|action| log.contains(action)),
        "{log}"
    );
    std::fs::write(shots.join("audit.png"), client.screenshot().await.unwrap()).unwrap();
    client
        .goto(&format!("{base}/ui/audit?action=models.create"))
        .await
        .unwrap();
    let actions = client
        .find_all(Locator::Css("#audit td.action"))
        .await
        .unwrap();
    assert_eq!(actions.len(), 2, "two models were created");
    for action in actions {
        assert_eq!(action.text().await.unwrap(), "models.create");
    }

    // Logging out forgets the session: the pages ask for a login again.
    submit(&client, Locator::Id("logout"), "/login").await;
    client.goto(&format!("{base}/ui")).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/login");

    // A viewer logs in with a password and sees its role.
    log_in(
        &client,
        &base,
        &[("username", "vera"), ("password", "a-long-password-1")],
    )
    .await;
    arrive(&client, "/ui").await;
    assert!(text(&client, "#who").await.contains("viewer"));
    // A viewer may not manage keys: no form to do it with.
    client.goto(&format!("{base}/ui/keys")).await.unwrap();
    assert!(
        text(&client, "#keys-forbidden")
            .await
            .contains("cannot manage API keys")
    );
    assert!(client.find(Locator::Id("new-key")).await.is_err());
    // A viewer's role does not read the audit log, and the page says so.
    client.goto(&format!("{base}/ui/audit")).await.unwrap();
    assert!(
        text(&client, "main")
            .await
            .contains("cannot read the audit log")
    );
    client.close().await.unwrap();

    // A form posted without its CSRF token (as another site would) is refused.
    let logout = reqwest::Client::new()
        .post(format!("{base}/logout"))
        .header("cookie", format!("autoglm_session={}", console.token))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), reqwest::StatusCode::FORBIDDEN);
}
