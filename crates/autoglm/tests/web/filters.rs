//! Gateway filters from the browser, as an admin of `autoglm up` (whose
//! gateway runs in its process): the example header injector and PII
//! redactor, built from source, are uploaded from the form and listed with
//! their ABI, size and digest; a text file is refused with the console's
//! reason beside the form; the injector is attached to the tenant with a
//! configuration (after a configuration that is not JSON is refused), a
//! request through the gateway carries its header and shows in its
//! counters; the redactor goes in front of it and is moved down; a filter
//! still attached cannot be deleted; the injector is attached to a
//! service, shown there and on the service's page, and detached; both are
//! detached and deleted.

use std::time::{Duration, Instant};

use autoglm_testfilters as examples;
use fantoccini::{Client, Locator};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::browser::{
    arrive, browser, driver, log_in, replace_text, shoot, submit, text, type_into, wait_text,
};
use crate::common::{Console, UPSTREAM, Up, register_model};

const WAIT: Duration = Duration::from_secs(10);

/// The names of the rows of table `css`, in order.
async fn rows(client: &Client, css: &str) -> Vec<String> {
    let mut names = Vec::new();
    for row in client
        .find_all(Locator::Css(&format!("{css} tbody tr th")))
        .await
        .unwrap()
    {
        names.push(row.text().await.unwrap());
    }
    names
}

/// The value of form field `id`.
async fn value(client: &Client, id: &str) -> String {
    let field = client.find(Locator::Id(id)).await.unwrap();
    field.prop("value").await.unwrap().unwrap_or_default()
}

/// Chooses option `value` of select `id`.
async fn choose(client: &Client, id: &str, value: &str) {
    let select = client.find(Locator::Id(id)).await.unwrap();
    select.select_by_value(value).await.unwrap();
}

/// Reloads `url` until the text of `css` satisfies `done` (the gateway
/// counts a request as it finishes).
async fn reload_until(
    client: &Client,
    url: &str,
    css: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        client.goto(url).await.unwrap();
        let found = text(client, css).await;
        if done(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{css} read {found:?} after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_is_uploaded_attached_counted_reordered_detached_and_deleted() {
    let home = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let up = Up::start(&home.path().join("home"), &[]);
    let base = up.console.url.clone();
    let http = up.console.client();

    // A service with a running replica, and a key, for requests through the chain.
    register_model(&up.console, &http, "echo", 1, files.path()).await;
    let service = json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService",
    "metadata": {"name": "echo"}, "spec": {
        "model": "echo", "versions": [{"version": "1", "weight": 100}], "replicas": 1,
        "runtime": {"command": {"command": ["python3", UPSTREAM, "{port}", "{version}", "{name}"]}},
    }});
    let (s, b) = up
        .console
        .call(&http, Method::POST, "/api/v1/services", Some(service))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (s, key) = up
        .console
        .call(
            &http,
            Method::POST,
            "/api/v1/keys",
            Some(json!({"name": "chat"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{key}");
    let key = key["secret"].as_str().unwrap().to_owned();

    // The modules, as files a user picks.
    let inject = files.path().join("header_injector.wasm");
    let inject_bytes = examples::module(examples::HEADER_INJECTOR);
    std::fs::write(&inject, &inject_bytes).unwrap();
    let redact = files.path().join("pii_redactor.wasm");
    std::fs::write(&redact, examples::module(examples::PII_REDACTOR)).unwrap();
    let junk = files.path().join("notes.txt");
    std::fs::write(&junk, "these are notes, not WebAssembly\n").unwrap();

    let driver = driver();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    log_in(&client, &base, &[("api_key", &up.console.token)]).await;
    arrive(&client, "/ui").await;
    submit(&client, Locator::LinkText("Filters"), "/ui/filters").await;
    let page = format!("{base}/ui/filters");
    assert_eq!(
        text(&client, "#no-filters").await,
        "No filters uploaded yet."
    );
    assert_eq!(
        text(&client, "#no-chain").await,
        "No filter is attached to the tenant."
    );
    assert_eq!(
        text(&client, "#attach-nothing").await,
        "Upload a filter to attach it."
    );

    // Two filters are uploaded from the form and listed.
    for (name, file) in [("inject", &inject), ("redact", &redact)] {
        type_into(&client, Locator::Id("filter-name"), name).await;
        type_into(&client, Locator::Id("module"), file.to_str().unwrap()).await;
        submit(&client, Locator::Id("upload-filter"), "/ui/filters").await;
        wait_text(&client, &format!("#filter-{name} td.abi"), WAIT, |t| {
            t == "0.2.1"
        })
        .await;
    }
    let (_, listed) = up
        .console
        .call(&http, Method::GET, "/api/v1/filters", None)
        .await;
    let digest = listed[0]["digest"].as_str().unwrap();
    assert_eq!(listed[0]["name"], "inject", "{listed}");
    assert_eq!(
        text(&client, "#filter-inject td.digest").await,
        digest[..12]
    );
    assert_eq!(
        text(&client, "#filter-inject td.size").await,
        autoglm_core::display::human_size(inject_bytes.len() as u64)
    );
    assert_eq!(
        text(&client, "#filter-inject td.attached").await,
        "not attached"
    );
    let updated = text(&client, "#filter-inject td.updated").await;
    assert!(updated.contains(" by "), "when and by whom: {updated}");

    // A text file is refused with the console's reason, the name kept, nothing kept.
    type_into(&client, Locator::Id("filter-name"), "junk").await;
    type_into(&client, Locator::Id("module"), junk.to_str().unwrap()).await;
    submit(&client, Locator::Id("upload-filter"), "/ui/filters/upload").await;
    let refused = text(&client, "#upload-error").await;
    assert!(refused.contains("not valid WebAssembly"), "{refused}");
    assert_eq!(value(&client, "filter-name").await, "junk");
    assert!(client.find(Locator::Id("filter-junk")).await.is_err());
    assert_eq!(rows(&client, "#filters").await, ["inject", "redact"]);

    // Attached to the tenant: a configuration that is not JSON is refused, kept as typed.
    client.goto(&page).await.unwrap();
    choose(&client, "attach-filter", "inject").await;
    replace_text(&client, "attach-config", "{\"response\": {").await;
    submit(
        &client,
        Locator::Id("attach-filter-button"),
        "/ui/filters/attach",
    )
    .await;
    let refused = text(&client, "#attach-error").await;
    assert!(
        refused.starts_with("The configuration is not JSON"),
        "{refused}"
    );
    assert_eq!(value(&client, "attach-config").await, "{\"response\": {");
    replace_text(
        &client,
        "attach-config",
        r#"{"response": {"x-served-by": "autoglm"}}"#,
    )
    .await;
    submit(&client, Locator::Id("attach-filter-button"), "/ui/filters").await;
    assert_eq!(rows(&client, "#chain").await, ["inject"]);
    assert_eq!(text(&client, "#chain-inject td.fail-mode").await, "closed");
    let config = text(&client, "#chain-inject pre.config").await;
    assert!(
        config.contains("\"response\": {") && config.contains("\"x-served-by\": \"autoglm\""),
        "{config}"
    );
    assert_eq!(
        text(&client, "#chain-inject td.counters").await,
        "no request has run it since the gateway started"
    );
    assert_eq!(text(&client, "#filter-inject td.attached").await, "tenant");

    // A request through the gateway runs it, and its counters show it.
    let gateway = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = gateway
            .post(format!("{}/v1/chat/completions", up.gateway))
            .bearer_auth(&key)
            .json(&json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::OK && r.headers().contains_key("x-served-by") {
            assert_eq!(r.headers()["x-served-by"], "autoglm");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the injected header within 60 s: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    reload_until(&client, &page, "#chain-inject .requests", |t| t == "1").await;
    assert_eq!(text(&client, "#chain-inject .local").await, "0");
    assert_eq!(
        text(&client, "#chain-inject .failures").await,
        "no failures"
    );
    assert!(
        client
            .find(Locator::Id("counters-unavailable"))
            .await
            .is_err()
    );

    // The redactor goes in front, failing open, and is moved down.
    choose(&client, "attach-filter", "redact").await;
    choose(&client, "attach-fail-mode", "open").await;
    replace_text(&client, "attach-position", "0").await;
    submit(&client, Locator::Id("attach-filter-button"), "/ui/filters").await;
    assert_eq!(rows(&client, "#chain").await, ["redact", "inject"]);
    assert_eq!(text(&client, "#chain-redact td.fail-mode").await, "open");
    assert_eq!(
        text(&client, "#chain-redact td.configuration").await,
        "none"
    );
    client
        .execute(
            "window.scrollTo(0, document.getElementById('chain').offsetTop - 110)",
            vec![],
        )
        .await
        .unwrap();
    shoot(&client, "filters.png").await;
    submit(&client, Locator::Id("down-redact"), "/ui/filters").await;
    assert_eq!(rows(&client, "#chain").await, ["inject", "redact"]);
    let (_, chain) = up
        .console
        .call(&http, Method::GET, "/api/v1/filters/chain", None)
        .await;
    assert_eq!(chain[0]["name"], "inject", "{chain}");
    assert_eq!(
        chain[0]["config"],
        json!({"response": {"x-served-by": "autoglm"}})
    );
    assert_eq!(chain[1]["failMode"], "open", "{chain}");

    // Attached, it cannot be deleted: the page says why.
    submit(
        &client,
        Locator::Id("delete-inject"),
        "/ui/filters/inject/delete",
    )
    .await;
    let refused = text(&client, "#filters-error").await;
    assert!(
        refused.contains("filter inject is attached to the tenant's chain; detach it first"),
        "{refused}"
    );

    // On a service: the change goes out with a task, and both pages show it.
    client.goto(&page).await.unwrap();
    assert_eq!(
        text(&client, "#no-service-filters").await,
        "No service has filters of its own."
    );
    choose(&client, "attach-filter", "inject").await;
    choose(&client, "attach-target", "echo").await;
    submit(&client, Locator::Id("attach-filter-button"), "/ui/filters").await;
    let notice = text(&client, "#service-task").await;
    assert!(
        notice.starts_with("The change to service echo goes out with task "),
        "{notice}"
    );
    assert_eq!(rows(&client, "#service-echo").await, ["inject"]);
    assert_eq!(
        text(&client, "#filter-inject td.attached").await,
        "tenant service/echo"
    );
    client
        .goto(&format!("{base}/ui/services/echo"))
        .await
        .unwrap();
    assert_eq!(rows(&client, "#own-filters").await, ["inject"]);
    assert!(
        text(&client, "#service-filters")
            .await
            .contains("all filters"),
        "a link to the filters page"
    );
    submit(&client, Locator::LinkText("all filters"), "/ui/filters").await;
    submit(
        &client,
        Locator::Id("detach-inject-from-echo"),
        "/ui/filters",
    )
    .await;
    wait_text(&client, "#no-service-filters", WAIT, |t| !t.is_empty()).await;

    // Detached from the tenant and deleted.
    submit(&client, Locator::Id("detach-inject"), "/ui/filters").await;
    assert_eq!(rows(&client, "#chain").await, ["redact"]);
    submit(&client, Locator::Id("detach-redact"), "/ui/filters").await;
    wait_text(&client, "#no-chain", WAIT, |t| !t.is_empty()).await;
    for name in ["inject", "redact"] {
        submit(
            &client,
            Locator::Id(&format!("delete-{name}")),
            "/ui/filters",
        )
        .await;
    }
    assert_eq!(
        text(&client, "#no-filters").await,
        "No filters uploaded yet."
    );
    let (_, listed) = up
        .console
        .call(&http, Method::GET, "/api/v1/filters", None)
        .await;
    assert_eq!(listed, json!([]));
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_said_to_be_elsewhere_when_the_gateway_runs_in_another_process() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(&home.path().join("home"), &[]);
    let http = console.client();
    let r = http
        .put(console.api("/api/v1/filters/inject"))
        .bearer_auth(&console.token)
        .header("content-type", "application/wasm")
        .body(examples::module(examples::HEADER_INJECTOR))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (s, b) = console
        .call(
            &http,
            Method::POST,
            "/api/v1/filters/inject/attach",
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let driver = driver();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    log_in(&client, &console.url, &[("api_key", &console.token)]).await;
    arrive(&client, "/ui").await;
    client
        .goto(&format!("{}/ui/filters", console.url))
        .await
        .unwrap();
    let why = text(&client, "#counters-unavailable").await;
    assert!(
        why.starts_with("Counters unavailable: ")
            && why.contains("its gateway runs in another process"),
        "{why}"
    );
    assert_eq!(
        text(&client, "#chain-inject td.counters").await,
        "unavailable"
    );
    assert_eq!(
        text(&client, "#chain-inject td.configuration").await,
        "none"
    );
    client.close().await.unwrap();
}
