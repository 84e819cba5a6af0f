//! Policies from the browser, as an admin: a default policy is opened from
//! the library into the editor and saved; a Rego syntax error is refused on
//! save with its line and column, the text kept; a test run of the policy as
//! typed against a pasted manifest shows it refused, which rules fired and
//! on which input paths; the mode is switched to warn; a deploy through the
//! API is then let through with a warning, and the decisions list shows it;
//! a global policy judging services and models is added, and listed as
//! judging every tenant.

use std::time::Duration;

use fantoccini::{Client, Locator};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::browser::{arrive, browser, click, driver, log_in, shoot, submit, text, wait_text};
use crate::common::{Console, register_model};

const WAIT: Duration = Duration::from_secs(10);

/// Sets a textarea's text as a paste would: typed, its tabs would move the
/// focus (Rego is indented with tabs).
async fn paste(client: &Client, id: &str, text: &str) {
    client
        .execute(
            "document.getElementById(arguments[0]).value = arguments[1];",
            vec![json!(id), json!(text)],
        )
        .await
        .unwrap();
}

/// The value of form field `id`.
async fn value(client: &Client, id: &str) -> String {
    let field = client.find(Locator::Id(id)).await.unwrap();
    field.prop("value").await.unwrap().unwrap_or_default()
}

fn manifest(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "autoglm.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": name},
        "spec": {
            "model": "glm",
            "versions": [{"version": "1", "weight": 100}],
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_is_added_from_the_library_checked_tested_and_switched_to_warn() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(&home.path().join("home"), &[]);
    let base = console.url.clone();
    let driver = driver();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    log_in(&client, &base, &[("api_key", &console.token)]).await;
    arrive(&client, "/ui").await;

    submit(&client, Locator::LinkText("Policies"), "/ui/policies").await;
    assert!(text(&client, "#no-policies").await.contains("no policies"));
    assert!(text(&client, "#library").await.contains("gpu-quota"));

    // From the library into the editor, saved as this tenant's own.
    submit(
        &client,
        Locator::Css("#library-resource-limits a"),
        "/ui/policies/new",
    )
    .await;
    assert_eq!(value(&client, "name").await, "resource-limits");
    let rego = value(&client, "rego").await;
    assert!(rego.contains("package autoglm.resource_limits"), "{rego}");
    submit(
        &client,
        Locator::Id("save-policy"),
        "/ui/policies/resource-limits",
    )
    .await;
    assert!(text(&client, "#policy-versions").await.contains("v1"));
    shoot(&client, "policy-editor.png").await;

    // A syntax error is refused on save, with its line and column, the text kept.
    let broken = "package autoglm.resource_limits\n\ndeny contains msg if {\n  msg := \"x\"\n";
    paste(&client, "rego", broken).await;
    click(&client, Locator::Id("save-policy")).await;
    let refused = wait_text(&client, "#policy-error", WAIT, |t| !t.is_empty()).await;
    assert!(
        refused.contains("line ") && refused.contains("column "),
        "{refused}"
    );
    assert_eq!(value(&client, "rego").await, broken);

    // A test run of the policy as typed, against a pasted manifest.
    paste(&client, "rego", &rego).await;
    paste(&client, "resource", &manifest("chat").to_string()).await;
    click(&client, Locator::Id("test-policy")).await;
    let verdict = wait_text(&client, "#test-verdict", WAIT, |t| !t.is_empty()).await;
    assert_eq!(verdict, "refused");
    let findings = text(&client, "#test-findings").await;
    assert!(
        findings.contains("service chat must set spec.resources.cpu"),
        "{findings}"
    );
    let explained = text(&client, "#test-result").await;
    assert!(
        explained.contains("input.resource.spec.resources.cpu"),
        "{explained}"
    );
    shoot(&client, "policy-test.png").await;

    // The mode switched to warn: a deploy without limits goes through with a warning.
    client
        .goto(&format!("{base}/ui/policies/resource-limits"))
        .await
        .unwrap();
    let mode = client.find(Locator::Id("mode")).await.unwrap();
    mode.select_by_value("warn").await.unwrap();
    submit(
        &client,
        Locator::Id("save-policy"),
        "/ui/policies/resource-limits",
    )
    .await;
    submit(&client, Locator::LinkText("Policies"), "/ui/policies").await;
    assert!(
        text(&client, "#policy-resource-limits")
            .await
            .contains("warn")
    );

    let http = console.client();
    register_model(&console, &http, "glm", 1, home.path()).await;
    let deployed = http
        .post(console.api("/api/v1/services"))
        .bearer_auth(&console.token)
        .json(&manifest("chat"))
        .send()
        .await
        .unwrap();
    assert_eq!(deployed.status(), StatusCode::ACCEPTED);
    let warning = deployed
        .headers()
        .get("warning")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        warning.contains("policy resource-limits: service chat must set spec.resources.cpu"),
        "{warning}"
    );
    let (status, _) = console
        .call(&http, Method::GET, "/api/v1/services/chat", None)
        .await;
    assert_eq!(status, StatusCode::OK);

    client.goto(&format!("{base}/ui/policies")).await.unwrap();
    let decisions = text(&client, "#decisions").await;
    assert!(decisions.contains("services/chat"), "{decisions}");
    assert!(
        decisions.contains("warn resource-limits/deny"),
        "{decisions}"
    );

    // A system admin adds a global policy, which every tenant's list shows.
    submit(
        &client,
        Locator::Id("new-global-policy"),
        "/ui/global-policies/new",
    )
    .await;
    paste(&client, "name", "team-label").await;
    paste(&client, "rego", "package global\n\nwarn contains \"no team\" if { not input.resource.metadata.labels.team }\n").await;
    click(&client, Locator::Id("kind-model")).await;
    submit(
        &client,
        Locator::Id("save-policy"),
        "/ui/global-policies/team-label",
    )
    .await;
    client.goto(&format!("{base}/ui/policies")).await.unwrap();
    assert!(
        text(&client, "#global-team-label")
            .await
            .contains("every tenant")
    );
    let (status, global) = console
        .call(
            &http,
            Method::GET,
            "/api/v1/global-policies/team-label",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{global}");
    assert_eq!(
        global["spec"]["kinds"],
        json!(["ModelService", "Model"]),
        "{global}"
    );
    shoot(&client, "policies.png").await;
}
