//! The config center from the browser. As an admin: an environment is
//! added (a bad name refused in the API's words), a key published with the
//! form is listed at version 1, edited in the editor to version 2 after the
//! inline check named the line and column of a JSON error before anything
//! was sent (and the publish of that text was refused beside the field), a
//! stale edit is refused with the text kept, the history leads to a
//! side-by-side diff, a rollback makes a new version of an old content, a
//! snapshot is taken and restored (a key made since, in a second group the
//! list can be narrowed to, is deleted again), and dev is previewed and
//! promoted into staging. As a developer: prod's publish is refused by the
//! API in its words, a change request and a promotion request are filed; an
//! operator approves the first (the key appears in prod) and is told the
//! second's key moved since, then rejects it.

use std::time::Duration;

use fantoccini::{Client, Locator};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::browser::{
    arrive, browser, click, driver, log_in, replace_text, shoot, submit, text, type_into, wait_text,
};
use crate::common::Console;

const APP: &str = "DEFAULT_GROUP/app.json";
const EDITOR: &str = "/ui/config/dev/keys/DEFAULT_GROUP/app.json";
const WAIT: Duration = Duration::from_secs(10);

/// The row of key `group/key` in an environment's key list.
fn row(key: &str) -> String {
    format!("#keys tr[data-key=\"{key}\"]")
}

/// A JSON document of `replicas`, over several lines so diffs have context.
fn app(replicas: u32) -> String {
    format!("{{\n  \"replicas\": {replicas},\n  \"model\": \"glm\"\n}}")
}

/// The value of form field `id`.
async fn value(client: &Client, id: &str) -> String {
    let field = client.find(Locator::Id(id)).await.unwrap();
    field.prop("value").await.unwrap().unwrap_or_default()
}

/// Publishes `content` at `path` (under the config API) as the admin.
async fn publish(console: &Console, path: &str, content: &str) {
    let http = console.client();
    let path = format!("/api/v1/config/environments/{path}");
    let (s, b) = console
        .call(&http, Method::PUT, &path, Some(json!({"content": content})))
        .await;
    assert!(s.is_success(), "{s} {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_published_edited_diffed_rolled_back_snapshotted_and_promoted() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(&home.path().join("home"), &[]);
    let base = console.url.clone();
    let driver = driver();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    log_in(&client, &base, &[("api_key", &console.token)]).await;
    arrive(&client, "/ui").await;

    // The environments every tenant starts with, prod protected.
    submit(&client, Locator::LinkText("Config"), "/ui/config").await;
    assert!(text(&client, "#env-prod").await.contains("protected"));
    assert_eq!(text(&client, "#env-dev .keys").await, "0");
    shoot(&client, "config.png").await;

    // An environment is added with the form; a name the API refuses is
    // refused in its words, the form kept.
    type_into(&client, Locator::Id("env-name"), "Perf Tests").await;
    click(&client, Locator::Id("create-environment")).await;
    let refused = text(&client, "#env-error").await;
    assert!(refused.contains("Perf Tests"), "{refused}");
    replace_text(&client, "env-name", "perf").await;
    type_into(&client, Locator::Id("env-description"), "load tests").await;
    click(
        &client,
        Locator::Css("#new-environment input[name=protected]"),
    )
    .await;
    click(&client, Locator::Id("create-environment")).await;
    let added = wait_text(&client, "#environments", WAIT, |t| t.contains("perf")).await;
    assert!(added.contains("load tests"), "{added}");
    assert!(text(&client, "#env-perf").await.contains("protected"));
    submit(&client, Locator::Css("#env-dev th a"), "/ui/config/dev").await;
    assert_eq!(text(&client, "#no-keys").await, "No keys yet.");

    // A new key, its format from its extension, is listed at version 1.
    type_into(&client, Locator::Id("config-key"), "app.json").await;
    replace_text(&client, "config-content", &app(1)).await;
    type_into(&client, Locator::Id("config-message"), "first").await;
    submit(&client, Locator::Id("key-submit"), "/ui/config/dev").await;
    assert_eq!(text(&client, &format!("{} .version", row(APP))).await, "1");
    assert!(text(&client, &row(APP)).await.contains("json"));

    // The editor checks the content as it is typed: a trailing comma is
    // named with its line and column before anything is sent.
    submit(&client, Locator::Css(&format!("{} th a", row(APP))), EDITOR).await;
    assert_eq!(text(&client, "#current-version").await, "1");
    assert_eq!(value(&client, "config-content").await, app(1));
    replace_text(&client, "config-content", "{\n  \"replicas\": 2,\n}").await;
    let said = wait_text(&client, "#config-content-validation", WAIT, |t| {
        t.starts_with("not valid json at line 3, column")
    })
    .await;
    assert!(said.contains("trailing comma"), "{said}");
    let field = client.find(Locator::Id("config-content")).await.unwrap();
    assert_eq!(
        field.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    // Sent anyway, it is refused beside the field, the text kept.
    click(&client, Locator::Id("key-submit")).await;
    let refused = text(&client, "#error-config-content").await;
    assert!(refused.contains("line 3"), "{refused}");
    assert_eq!(
        value(&client, "config-content").await,
        "{\n  \"replicas\": 2,\n}"
    );

    // Fixed, it is valid and publishes version 2.
    client.goto(&format!("{base}{EDITOR}")).await.unwrap();
    replace_text(&client, "config-content", &app(2)).await;
    wait_text(&client, "#config-content-validation", WAIT, |t| {
        t == "Valid json."
    })
    .await;
    type_into(&client, Locator::Id("config-message"), "two replicas").await;
    click(&client, Locator::Id("key-submit")).await;
    wait_text(&client, "#current-version", WAIT, |t| t == "2").await;

    // An edit of version 2 after someone published version 3 is refused,
    // saying so, with the text kept.
    publish(&console, "dev/keys/DEFAULT_GROUP/app.json", &app(3)).await;
    replace_text(&client, "config-content", &app(4)).await;
    click(&client, Locator::Id("key-submit")).await;
    let stale = text(&client, "#key-stale").await;
    assert!(stale.contains("newer version"), "{stale}");
    assert!(
        text(&client, "#key-error")
            .await
            .contains("is at version 3")
    );
    assert_eq!(value(&client, "config-content").await, app(4));

    // The history leads to version 3 beside version 2.
    client.goto(&format!("{base}{EDITOR}")).await.unwrap();
    assert_eq!(text(&client, "#current-version").await, "3");
    let history = text(&client, "#history").await;
    assert!(
        history.contains("two replicas") && history.contains("first"),
        "{history}"
    );
    submit(&client, Locator::Id("diff-3"), &format!("{EDITOR}/diff")).await;
    let removed = text(&client, "#diff td.removed").await;
    assert_eq!(removed.trim(), "\"replicas\": 2,");
    let added = text(&client, "#diff td.added").await;
    assert_eq!(added.trim(), "\"replicas\": 3,");
    shoot(&client, "config-diff.png").await;

    // A rollback to version 1 is version 4 with version 1's content.
    submit(&client, Locator::Id("editor-link"), EDITOR).await;
    click(&client, Locator::Id("rollback-1")).await;
    wait_text(&client, "#current-version", WAIT, |t| t == "4").await;
    assert_eq!(value(&client, "config-content").await, app(1));
    assert!(
        text(&client, "#version-4")
            .await
            .contains("rollback to version 1")
    );
    client.set_window_size(1280, 1400).await.unwrap();
    shoot(&client, "config-editor.png").await;
    client.set_window_size(1280, 800).await.unwrap();

    // A snapshot, a key made after it, and the restore (asked first) that
    // deletes that key again.
    client.goto(&format!("{base}/ui/config/dev")).await.unwrap();
    type_into(&client, Locator::Id("snapshot-name"), "before-extra").await;
    click(&client, Locator::Id("take-snapshot")).await;
    let taken = text(&client, "#snapshot-before-extra").await;
    assert!(taken.contains("1 key"), "{taken}");
    replace_text(&client, "config-group", "extras").await;
    type_into(&client, Locator::Id("config-key"), "extra.yaml").await;
    replace_text(&client, "config-content", "extra: true\n").await;
    click(&client, Locator::Id("key-submit")).await;
    wait_text(&client, "#keys", WAIT, |t| t.contains("extra.yaml")).await;
    client.set_window_size(1280, 1200).await.unwrap();
    shoot(&client, "config-environment.png").await;
    client.set_window_size(1280, 800).await.unwrap();
    // Two groups now: the list narrows to one.
    click(&client, Locator::LinkText("extras")).await;
    wait_text(&client, "#keys", WAIT, |t| !t.contains("app.json")).await;
    assert!(text(&client, "#keys").await.contains("extra.yaml"));
    client.goto(&format!("{base}/ui/config/dev")).await.unwrap();
    click(&client, Locator::Id("restore-before-extra")).await;
    client.accept_alert().await.unwrap();
    wait_text(&client, "#keys", WAIT, |t| !t.contains("extra.yaml")).await;
    assert_eq!(text(&client, &format!("{} .version", row(APP))).await, "4");

    // dev into staging: the preview's plan, then the promotion.
    client.goto(&format!("{base}/ui/config")).await.unwrap();
    submit(&client, Locator::Id("promote-link"), "/ui/config/promote").await;
    click(&client, Locator::Css("#from option[value=dev]")).await;
    click(&client, Locator::Css("#to option[value=staging]")).await;
    click(&client, Locator::Id("preview")).await;
    let summary = text(&client, "#plan-summary").await;
    assert_eq!(summary, "1 key to change, 0 already equal.");
    let change = text(&client, &format!("section[data-key=\"{APP}\"]")).await;
    assert!(change.contains("create"), "{change}");
    assert!(
        text(&client, "#change-0-diff")
            .await
            .contains("\"replicas\": 1,")
    );
    assert_eq!(text(&client, "#apply").await, "Promote");
    shoot(&client, "config-promote.png").await;
    submit(&client, Locator::Id("apply"), "/ui/config/staging").await;
    assert_eq!(text(&client, &format!("{} .version", row(APP))).await, "1");
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_requests_changes_of_prod_and_an_operator_decides_them() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(&home.path().join("home"), &[]);
    let base = console.url.clone();
    let http = console.client();
    for (name, role) in [("dora", "developer"), ("otto", "operator")] {
        let user = json!({"username": name, "password": "a-long-password-1", "role": role});
        let (s, b) = console
            .call(&http, Method::POST, "/api/v1/users", Some(user))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    publish(&console, "dev/keys/DEFAULT_GROUP/app.json", &app(1)).await;
    let driver = driver();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    let password = "a-long-password-1";
    log_in(
        &client,
        &base,
        &[("username", "dora"), ("password", password)],
    )
    .await;
    arrive(&client, "/ui").await;

    // prod says what protection means to her and offers a request, not a publish.
    client
        .goto(&format!("{base}/ui/config/prod"))
        .await
        .unwrap();
    let note = text(&client, "#protected-note").await;
    assert!(note.contains("config:protected") && note.contains("change requests"));
    assert_eq!(text(&client, "#key-submit").await, "Request change");

    // A publish all the same (a forged form) is refused in the API's words.
    type_into(&client, Locator::Id("config-key"), "limits.yaml").await;
    replace_text(&client, "config-content", "rps: 10\n").await;
    let forge = "document.getElementById('key-submit').value = 'publish'";
    client.execute(forge, vec![]).await.unwrap();
    click(&client, Locator::Id("key-submit")).await;
    let refused = text(&client, "#key-error").await;
    assert!(
        refused.contains("environment prod is protected: writing it needs config:protected"),
        "{refused}"
    );
    assert_eq!(value(&client, "config-key").await, "limits.yaml");

    // The request, filed from the same form, waits with its diff; she may not decide it.
    type_into(&client, Locator::Id("config-message"), "raise limits").await;
    submit(&client, Locator::Id("key-submit"), "/ui/config/requests").await;
    let filed = text(&client, "#request-1").await;
    assert!(
        filed.contains("pending")
            && filed.contains("limits.yaml")
            && filed.contains("raise limits"),
        "{filed}"
    );
    assert_eq!(text(&client, "#request-1 td.added").await, "rps: 10");
    assert!(client.find(Locator::Id("approve-1")).await.is_err());

    // A promotion of dev into prod is offered as a request too.
    client
        .goto(&format!("{base}/ui/config/promote?from=dev&to=prod"))
        .await
        .unwrap();
    assert_eq!(text(&client, "#apply").await, "Request approval");
    submit(&client, Locator::Id("apply"), "/ui/config/requests").await;
    assert!(text(&client, "#request-2").await.contains("from dev"));

    // Someone writes prod's app.json before the promotion is approved.
    publish(&console, "prod/keys/DEFAULT_GROUP/app.json", &app(5)).await;

    // The operator approves the first, and is told the second's key moved.
    submit(&client, Locator::Id("logout"), "/login").await;
    log_in(
        &client,
        &base,
        &[("username", "otto"), ("password", password)],
    )
    .await;
    arrive(&client, "/ui").await;
    client
        .goto(&format!("{base}/ui/config/requests"))
        .await
        .unwrap();
    type_into(&client, Locator::Id("reason-1"), "looks right").await;
    click(&client, Locator::Id("approve-1")).await;
    wait_text(&client, "#request-1 .state", WAIT, |t| t == "approved").await;
    assert!(
        text(&client, "#request-1 .decided")
            .await
            .contains("looks right")
    );
    click(&client, Locator::Id("approve-2")).await;
    let moved = text(&client, "#request-stale").await;
    assert!(moved.contains("A key moved since request #2"), "{moved}");
    assert!(
        text(&client, "#request-error")
            .await
            .contains("is at version 1")
    );
    assert_eq!(text(&client, "#request-2 .state").await, "pending");
    client.set_window_size(1280, 1400).await.unwrap();
    shoot(&client, "config-requests.png").await;
    client.set_window_size(1280, 800).await.unwrap();
    type_into(&client, Locator::Id("reason-2"), "stale").await;
    click(&client, Locator::Id("reject-2")).await;
    wait_text(&client, "#request-2 .state", WAIT, |t| t == "rejected").await;

    // The approved key is in prod, by the developer who asked for it.
    client
        .goto(&format!("{base}/ui/config/prod"))
        .await
        .unwrap();
    let approved = text(&client, &row("DEFAULT_GROUP/limits.yaml")).await;
    assert!(approved.contains("user:dora"), "{approved}");
    assert_eq!(
        text(
            &client,
            &format!("{} .version", row("DEFAULT_GROUP/limits.yaml"))
        )
        .await,
        "1"
    );
    client.close().await.unwrap();
}
