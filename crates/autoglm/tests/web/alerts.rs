//! Alerts and incidents from the browser: a rule made with the form shows
//! as inactive, a rule whose condition does not parse is refused in the
//! API's words with nothing stored, a silence is made and expired, an
//! incident fed through the Alertmanager receiver is followed from the
//! incidents page to its own, acknowledged and resolved there, its
//! timeline and the mean time to resolve say so; a viewer reads the same
//! pages without a form or a button.

use std::time::Duration;

use fantoccini::{Client, Locator};
use serde_json::json;

use crate::browser::{
    arrive, browser, click, driver, log_in, replace_text, shoot, submit, text, type_into, wait_text,
};
use crate::common::{self, Up};

const UPSTREAM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openai_upstream.py"
);

/// Alertmanager's webhook payload with one firing alert of rule `name` on
/// version 1 of service `chat`.
fn firing(name: &str) -> serde_json::Value {
    json!({"version": "4", "groupKey": "g", "status": "firing", "receiver": "am",
           "alerts": [{"status": "firing",
                       "labels": {"alertname": name, "service": "chat", "version": "1", "severity": "critical"},
                       "annotations": {"summary": "too many errors"},
                       "startsAt": chrono::Utc::now().to_rfc3339(), "endsAt": "0001-01-01T00:00:00Z"}]})
}

/// The texts of every element `css` names, in page order.
async fn texts(client: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for element in client.find_all(Locator::Css(css)).await.unwrap() {
        out.push(element.text().await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_silences_and_incidents_are_handled_from_the_browser_and_a_viewer_only_reads() {
    let home = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let up = Up::start(&home.path().join("home"), &[]);
    let base = up.console.url.clone();
    let http = up.console.client();
    let call = |method: reqwest::Method, path: &'static str, body: Option<serde_json::Value>| {
        let (console, http) = (&up.console, &http);
        async move { console.call(http, method, path, body).await }
    };
    common::register_model(&up.console, &http, "echo", 1, files.path()).await;
    let (s, b) = call(
        reqwest::Method::POST,
        "/api/v1/users",
        Some(json!({"username": "vic", "password": "a-long-password-1", "role": "viewer"})),
    )
    .await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{b}");
    let (s, task) = call(
        reqwest::Method::POST,
        "/api/v1/services",
        Some(json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService", "metadata": {"name": "chat"},
                    "spec": {"model": "echo", "versions": [{"version": "1", "weight": 100}], "replicas": 1,
                             "runtime": {"command": {"command": ["python3", UPSTREAM, "{port}", "{version}", "{name}"]}}}})),
    )
    .await;
    assert_eq!(s, reqwest::StatusCode::ACCEPTED, "{task}");

    let driver = driver();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    log_in(&client, &base, &[("api_key", &up.console.token)]).await;
    arrive(&client, "/ui").await;
    submit(&client, Locator::LinkText("Alerts"), "/ui/alerts").await;
    assert_eq!(text(&client, "#live-rules").await, "No alert rules yet.");

    // A rule made with the form is listed, inactive (no traffic is no data).
    type_into(&client, Locator::Id("rule-name"), "high-errors").await;
    click(&client, Locator::Css("#rule-service option[value=chat]")).await;
    click(
        &client,
        Locator::Css("#rule-metric option[value=errorRatio]"),
    )
    .await;
    type_into(&client, Locator::Id("rule-condition"), "result > 0.1").await;
    type_into(&client, Locator::Id("rule-for"), "1m").await;
    click(
        &client,
        Locator::Css("#rule-severity option[value=critical]"),
    )
    .await;
    click(&client, Locator::Css("#rule-step option[value=scaleOut]")).await;
    submit(&client, Locator::Id("create-rule"), "/ui/alerts").await;
    let row = text(&client, "#rule-high-errors").await;
    assert!(
        row.contains("chat")
            && row.contains("errorRatio")
            && row.contains("result > 0.1")
            && row.contains("critical")
            && row.contains("scale out by 1 up to 4"),
        "{row}"
    );
    assert_eq!(text(&client, "#rule-high-errors .state").await, "inactive");

    // A condition that does not parse is refused beside its field, in the
    // API's words, with what was typed kept and nothing stored.
    type_into(&client, Locator::Id("rule-name"), "broken").await;
    type_into(&client, Locator::Id("rule-condition"), "result >").await;
    click(&client, Locator::Id("create-rule")).await;
    let refused = text(&client, "#error-rule-condition").await;
    assert!(refused.contains("does not parse"), "{refused}");
    let kept = client.find(Locator::Id("rule-name")).await.unwrap();
    assert_eq!(kept.prop("value").await.unwrap().as_deref(), Some("broken"));
    let (_, rules) = call(reqwest::Method::GET, "/api/v1/alerts/rules", None).await;
    let names: Vec<&str> = rules["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["high-errors"]);

    // A silence of the service for half an hour is active, then expired.
    client.goto(&format!("{base}/ui/alerts")).await.unwrap();
    type_into(&client, Locator::Id("silence-value-0"), "chat").await;
    replace_text(&client, "silence-minutes", "30").await;
    type_into(&client, Locator::Id("silence-comment"), "deploying").await;
    submit(&client, Locator::Id("create-silence"), "/ui/alerts").await;
    let (_, silences) = call(reqwest::Method::GET, "/api/v1/alerts/silences", None).await;
    let silence = silences["items"][0]["id"].as_i64().unwrap();
    let row = text(&client, &format!("#silence-{silence}")).await;
    assert!(
        row.contains("service = chat") && row.contains("active") && row.contains("deploying"),
        "{row}"
    );
    assert!(
        text(&client, "#live-dead-letters")
            .await
            .starts_with("No dead letters")
    );
    client.set_window_size(1280, 1600).await.unwrap();
    shoot(&client, "alerts.png").await;
    client.set_window_size(1280, 800).await.unwrap();
    click(&client, Locator::Id(&format!("expire-{silence}"))).await;
    wait_text(
        &client,
        &format!("#silence-{silence} .state"),
        Duration::from_secs(10),
        |t| t == "expired",
    )
    .await;

    // An Alertmanager's alert opens an incident, followed from the list to
    // its page, acknowledged and resolved there.
    let (s, received) = call(
        reqwest::Method::POST,
        "/api/v1/alerts/receiver",
        Some(firing("HighErrors")),
    )
    .await;
    assert_eq!(s, reqwest::StatusCode::OK, "{received}");
    let incident = received["incidents"][0].as_i64().unwrap();
    submit(&client, Locator::LinkText("Incidents"), "/ui/incidents").await;
    let row = text(&client, &format!("#incident-{incident}")).await;
    assert!(row.contains("HighErrors") && row.contains("open"), "{row}");
    submit(
        &client,
        Locator::Css(&format!("#incident-{incident} th a")),
        &format!("/ui/incidents/{incident}"),
    )
    .await;
    assert_eq!(text(&client, "#incident-state").await, "open");
    click(&client, Locator::Id("acknowledge")).await;
    wait_text(&client, "#incident-state", Duration::from_secs(10), |t| {
        t == "acknowledged"
    })
    .await;
    assert!(
        client.find(Locator::Id("acknowledge")).await.is_err(),
        "an acknowledged incident is not acknowledged again"
    );
    click(&client, Locator::Id("resolve")).await;
    wait_text(&client, "#incident-state", Duration::from_secs(10), |t| {
        t == "resolved"
    })
    .await;
    assert!(client.find(Locator::Id("incident-actions")).await.is_err());
    assert_eq!(
        texts(&client, "#timeline td.kind").await,
        ["fired", "acknowledged", "resolved"]
    );
    shoot(&client, "incident.png").await;

    // The mean time to resolve counts it; the filters find it by service, not among the open.
    client.goto(&format!("{base}/ui/incidents")).await.unwrap();
    assert_eq!(
        text(&client, "#mttr tr[data-rule=HighErrors] .resolved").await,
        "1"
    );
    client
        .goto(&format!("{base}/ui/incidents?state=open"))
        .await
        .unwrap();
    assert_eq!(
        text(&client, "#live-incidents").await,
        "No incident matches."
    );

    // The service's page shows its alerts, small, and links to its incidents.
    client
        .goto(&format!("{base}/ui/services/chat"))
        .await
        .unwrap();
    assert_eq!(
        text(&client, "#service-alerts").await,
        "Nothing pending or firing."
    );
    submit(&client, Locator::Id("service-incidents"), "/ui/incidents").await;
    assert!(
        text(&client, &format!("#incident-{incident}"))
            .await
            .contains("chat")
    );

    // A viewer reads the rules, a firing one with its series, the
    // silences and an open incident, and is offered nothing.
    let (_, received) = call(
        reqwest::Method::POST,
        "/api/v1/alerts/receiver",
        Some(firing("HighLatency")),
    )
    .await;
    let open = received["incidents"][0].as_i64().unwrap();
    let (s, b) = call(
        reqwest::Method::POST,
        "/api/v1/alerts/rules",
        Some(json!({"name": "always", "service": "chat", "metric": "replicasUnavailable", "condition": "result >= 0"})),
    )
    .await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{b}");
    submit(&client, Locator::Id("logout"), "/login").await;
    log_in(
        &client,
        &base,
        &[("username", "vic"), ("password", "a-long-password-1")],
    )
    .await;
    arrive(&client, "/ui").await;
    submit(&client, Locator::LinkText("Alerts"), "/ui/alerts").await;
    assert_eq!(text(&client, "#rule-high-errors .state").await, "inactive");
    // The page follows the rule to firing without a reload.
    let row = wait_text(&client, "#rule-always", Duration::from_secs(30), |t| {
        t.contains("firing")
    })
    .await;
    assert!(row.contains("chat v1 firing 0.0000"), "{row}");
    assert!(text(&client, "#silences").await.contains("expired"));
    for control in ["new-rule", "new-silence", "delete-high-errors"] {
        assert!(
            client.find(Locator::Id(control)).await.is_err(),
            "a viewer sees #{control}"
        );
    }
    client
        .goto(&format!("{base}/ui/incidents/{open}"))
        .await
        .unwrap();
    assert_eq!(text(&client, "#incident-state").await, "open");
    assert!(client.find(Locator::Id("incident-actions")).await.is_err());
    client
        .goto(&format!("{base}/ui/services/chat"))
        .await
        .unwrap();
    let series = text(&client, "#service-alerts").await;
    assert!(series.contains("always v1 firing"), "{series}");
    client.close().await.unwrap();
}
