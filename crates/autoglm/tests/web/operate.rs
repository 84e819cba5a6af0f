//! Deploying a service from the form, moving its split and seeing the
//! gateway honour it, keys, usage, logs and the audit; a viewer changes
//! nothing and a stale form is refused.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::json;

use crate::browser::{
    arrive, browser, click, driver, href, log_in, replace_text, shoot, submit, text, type_into,
    wait_text,
};
use crate::common::Up;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_deploys_and_splits_traffic_from_the_browser_and_a_viewer_cannot() {
    let home = tempfile::tempdir().unwrap();
    let up = Up::start(
        &home.path().join("home"),
        &["--grafana-url", "https://grafana.example.com/"],
    );
    let base = up.console.url.clone();
    let http = up.console.client();
    for (username, role) in [("olga", "operator"), ("vic", "viewer")] {
        let (created, answer) = up
            .console
            .call(
                &http,
                reqwest::Method::POST,
                "/api/v1/users",
                Some(json!({"username": username, "password": "a-long-password-1", "role": role})),
            )
            .await;
        assert_eq!(created, reqwest::StatusCode::CREATED, "{answer}");
    }
    // The runtime settings the service will read from the config center.
    let (published, answer) = up
        .console
        .call(
            &http,
            reqwest::Method::PUT,
            "/api/v1/config/environments/dev/keys/DEFAULT_GROUP/iris.yaml",
            Some(json!({"content": "batching: {max_batch: 8}\n"})),
        )
        .await;
    assert_eq!(published, reqwest::StatusCode::CREATED, "{answer}");
    let iris = autoglm_testmodels::file(autoglm_testmodels::IRIS, "onnx");
    let driver = driver();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    log_in(
        &client,
        &base,
        &[("username", "olga"), ("password", "a-long-password-1")],
    )
    .await;
    arrive(&client, "/ui").await;

    // A model is registered from the form; a bad name is refused beside the field.
    client.goto(&format!("{base}/ui/models")).await.unwrap();
    click(&client, Locator::Css("details.new-model summary")).await;
    type_into(&client, Locator::Id("model-name"), "Iris Flowers").await;
    click(&client, Locator::Css("#new-model button")).await;
    let refused = text(&client, "#error-model-name").await;
    assert!(refused.contains("Iris Flowers"), "{refused}");
    replace_text(&client, "model-name", "iris").await;
    type_into(&client, Locator::Id("model-description"), "iris classifier").await;
    submit(
        &client,
        Locator::Css("#new-model button"),
        "/ui/models/iris",
    )
    .await;

    // Two versions are uploaded from the browser, the second derived from the first.
    for (version, parent) in [(1, ""), (2, "1")] {
        assert!(
            client.find(Locator::Id("upload-progress")).await.is_ok(),
            "the form has a progress bar"
        );
        type_into(&client, Locator::Id("artifact"), iris.to_str().unwrap()).await;
        type_into(&client, Locator::Id("task"), "classification").await;
        type_into(&client, Locator::Id("framework"), "onnx").await;
        if !parent.is_empty() {
            type_into(&client, Locator::Id("parent"), parent).await;
        }
        click(&client, Locator::Css("#upload button[type=submit]")).await;
        let row = text(&client, &format!("#version-{version}")).await;
        assert!(
            row.contains("onnx") && row.contains("670 B") && row.contains("classification"),
            "{row}"
        );
        if !parent.is_empty() {
            assert!(row.contains("v1"), "lineage shown: {row}");
        }
    }
    // A parent that is not a version number is refused in the API's words,
    // on the model's page, and no version is made.
    type_into(&client, Locator::Id("artifact"), iris.to_str().unwrap()).await;
    type_into(&client, Locator::Id("parent"), "first").await;
    click(&client, Locator::Css("#upload button[type=submit]")).await;
    let refused = text(&client, "#upload-error").await;
    assert!(refused.contains("metadata"), "{refused}");
    arrive(&client, "/ui/models/iris").await;
    assert!(client.find(Locator::Id("version-3")).await.is_err());
    // Version 1 moves to staging.
    let stage = client
        .find(Locator::Css("#stage-1 option[value=staging]"))
        .await
        .unwrap();
    stage.click().await.unwrap();
    click(&client, Locator::Css("#version-1 button")).await;
    wait_text(
        &client,
        "#version-1 td.stage",
        Duration::from_secs(10),
        |t| t == "staging",
    )
    .await;
    shoot(&client, "model.png").await;

    // A service is deployed from the form: a bad name is refused beside its
    // field, the YAML view follows the fields, and the fixed form deploys.
    client.goto(&format!("{base}/ui")).await.unwrap();
    submit(&client, Locator::Id("new-service"), "/ui/services/new").await;
    type_into(&client, Locator::Id("name"), "iris_svc").await;
    type_into(&client, Locator::Id("model"), "iris").await;
    type_into(&client, Locator::Id("version_1"), "2").await;
    type_into(&client, Locator::Id("weight_1"), "0").await;
    replace_text(&client, "weight_0", "100").await;
    click(&client, Locator::Css("#balancing option[value=prefixHash]")).await;
    type_into(&client, Locator::Id("mean_load_factor"), "150").await;
    type_into(&client, Locator::Id("config_key"), "iris.yaml").await;
    let yaml = wait_text(&client, "#yaml", Duration::from_secs(10), |t| {
        t.contains("model: iris")
            && t.contains("version: '2'")
            && t.contains("strategy: prefixHash")
            && t.contains("meanLoadFactor: 150")
            && t.contains("key: iris.yaml")
    })
    .await;
    assert!(yaml.contains("kind: ModelService"), "{yaml}");
    click(&client, Locator::Id("deploy")).await;
    let refused = text(&client, "#error-name").await;
    assert!(refused.contains("iris_svc"), "{refused}");
    assert_eq!(
        client
            .find(Locator::Id("model"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("iris"),
        "what was typed is kept"
    );
    shoot(&client, "service-new.png").await;
    replace_text(&client, "name", "iris").await;
    submit(&client, Locator::Id("deploy"), "/ui/services/iris").await;
    // The strategy chosen in the form is the service's, with its knobs.
    assert_eq!(text(&client, "#balancing").await, "prefixHash");
    let summary = text(&client, "main p.muted").await;
    assert!(
        summary.contains("within 150% of the mean load"),
        "{summary}"
    );
    // The page follows the replicas as they start, without a reload, and
    // the deploy task that brought them up, to its end.
    wait_text(&client, "#replica-count", Duration::from_secs(90), |t| {
        t == "2 of 2 ready"
    })
    .await;
    // It names the config key its replicas read, at its live version.
    let config = text(&client, "#config-ref").await;
    assert!(
        config.contains("dev/DEFAULT_GROUP/iris.yaml") && config.contains("now version 1"),
        "{config}"
    );
    assert_eq!(
        href(&client, "#config-ref a").await.as_deref(),
        Some("/ui/config/dev/keys/DEFAULT_GROUP/iris.yaml")
    );
    wait_text(&client, "#service-tasks", Duration::from_secs(30), |t| {
        t.contains("deploy") && t.contains("succeeded") && t.contains("100%")
    })
    .await;

    // A key is made with a scope and a limit; the gateway takes it at once.
    client.goto(&format!("{base}/ui/keys")).await.unwrap();
    type_into(&client, Locator::Id("name"), "flow").await;
    type_into(&client, Locator::Id("requests_per_second"), "1000").await;
    click(
        &client,
        Locator::Css("input[name=scope][value='services:invoke']"),
    )
    .await;
    click(&client, Locator::Css("#new-key button")).await;
    let secret = text(&client, "#secret").await;
    let row = text(&client, "#keys tbody").await;
    assert!(
        row.contains("services:invoke") && row.contains("1000 req/s"),
        "{row}"
    );

    // The split moves to 50/50; a split that does not sum to 100 is refused in words.
    client
        .goto(&format!("{base}/ui/services/iris"))
        .await
        .unwrap();
    replace_text(&client, "weight-1", "60").await;
    replace_text(&client, "weight-2", "50").await;
    click(&client, Locator::Css("#split button")).await;
    let refused = text(&client, "#split-error").await;
    assert!(refused.contains("sum to 110"), "{refused}");
    // The page links to the service's dashboards in the configured Grafana,
    // refused form or not.
    assert_eq!(
        href(&client, "#dashboards a").await.as_deref(),
        Some("https://grafana.example.com/d/autoglm-service?var-tenant=default&var-service=iris")
    );
    let typed = client.find(Locator::Id("weight-1")).await.unwrap();
    assert_eq!(
        typed.prop("value").await.unwrap().as_deref(),
        Some("60"),
        "the refused split keeps what was typed"
    );
    replace_text(&client, "weight-1", "50").await;
    replace_text(&client, "weight-2", "50").await;
    submit(&client, Locator::Css("#split button"), "/ui/services/iris").await;
    let (_, service) = up
        .console
        .call(&http, reqwest::Method::GET, "/api/v1/services/iris", None)
        .await;
    assert_eq!(
        service["spec"]["versions"],
        json!([{"version": "1", "weight": 50}, {"version": "2", "weight": 50}])
    );

    // Every change ran as a task: the tasks page lists them, filters them by
    // kind, and cancels one that cannot finish (a replica that never gets
    // ready), which takes its service away again.
    let stuck = json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService",
        "metadata": {"name": "stuck"},
        "spec": {"model": "iris", "versions": [{"version": "1", "weight": 100}], "replicas": 1,
                 "runtime": {"command": {"command": ["python3", "-c", "import time; time.sleep(600)", "{port}"]}}}});
    let (accepted, task) = up
        .console
        .call(
            &http,
            reqwest::Method::POST,
            "/api/v1/services",
            Some(stuck),
        )
        .await;
    assert_eq!(accepted, reqwest::StatusCode::ACCEPTED, "{task}");
    client.goto(&format!("{base}/ui/tasks")).await.unwrap();
    let row = format!("#task-{}", task["id"]);
    wait_text(&client, &row, Duration::from_secs(30), |t| {
        t.contains("running")
    })
    .await;
    let listed = text(&client, "#tasks").await;
    assert!(
        listed.contains("trafficSplit")
            && listed.contains("deploy")
            && listed.contains("services/iris"),
        "{listed}"
    );
    shoot(&client, "tasks.png").await;
    click(&client, Locator::Css("#kind option[value=trafficSplit]")).await;
    click(&client, Locator::Css("form.search button")).await;
    wait_text(&client, "#tasks", Duration::from_secs(10), |t| {
        t.contains("trafficSplit") && !t.contains("deploy")
    })
    .await;
    client.goto(&format!("{base}/ui/tasks")).await.unwrap();
    submit(
        &client,
        Locator::Id(&format!("cancel-{}", task["id"])),
        "/ui/tasks",
    )
    .await;
    wait_text(&client, &row, Duration::from_secs(30), |t| {
        t.contains("cancelled")
    })
    .await;
    let (gone, _) = up
        .console
        .call(&http, reqwest::Method::GET, "/api/v1/services/stuck", None)
        .await;
    assert_eq!(gone, reqwest::StatusCode::NOT_FOUND);
    client
        .goto(&format!("{base}/ui/services/iris"))
        .await
        .unwrap();

    // The gateway honours it: 400 requests, each version within 40 to 60 %
    // (±4 standard deviations of a fair coin).
    let gateway = reqwest::Client::new();
    let meta: serde_json::Value = gateway
        .get(format!("{}/v2/models/iris", up.gateway))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let input = meta["inputs"][0]["name"].as_str().unwrap().to_owned();
    let body = json!({"inputs": [{"name": input, "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]});
    let infer = || {
        gateway
            .post(format!("{}/v2/models/iris/infer", up.gateway))
            .bearer_auth(&secret)
            .json(&body)
            .send()
    };
    let mut first = 0;
    for _ in 0..400 {
        let answer = infer().await.unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::OK);
        // Counted by the runtime's own report of the version it served.
        let claimed = answer.headers()["x-autoglm-version"].clone();
        let served: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(
            served["model_version"],
            claimed.to_str().unwrap(),
            "{served}"
        );
        if served["model_version"] == "1" {
            first += 1;
        }
    }
    assert!(
        (160..=240).contains(&first),
        "version 1 took {first} of 400"
    );

    // The charts draw both versions from the gateway's history (an interval closes every 10 s).
    wait_text(&client, "#chart-rate", Duration::from_secs(30), |t| {
        t.contains("v1 ") && t.contains("v2 ")
    })
    .await;
    let rate = client
        .find(Locator::Css("#chart-rate svg"))
        .await
        .unwrap()
        .html(false)
        .await
        .unwrap();
    assert!(
        rate.contains("v1 ") && rate.contains("v2 "),
        "each line is named: {rate}"
    );
    client.set_window_size(1280, 1500).await.unwrap();
    shoot(&client, "service.png").await;
    client.set_window_size(1280, 800).await.unwrap();

    // A replica's log is readable, and followed.
    let logs = client
        .find(Locator::Css("#replicas tbody tr:first-child a"))
        .await
        .unwrap();
    logs.click().await.unwrap();
    let log = wait_text(&client, "#log", Duration::from_secs(10), |t| {
        !t.trim().is_empty()
    })
    .await;
    assert!(!log.contains("no replica"), "{log}");
    assert!(
        log.contains("ready") && !log.contains('\u{1b}'),
        "the replica's own lines, without terminal codes: {log}"
    );
    shoot(&client, "logs.png").await;
    assert!(
        client
            .find(Locator::Id("follow"))
            .await
            .unwrap()
            .is_selected()
            .await
            .unwrap()
    );

    // The overview shows the service's health, replicas and last minute of
    // traffic (a few more requests, so that the last minute has some).
    for _ in 0..20 {
        assert_eq!(infer().await.unwrap().status(), reqwest::StatusCode::OK);
    }
    client.goto(&format!("{base}/ui")).await.unwrap();
    let overview = text(&client, "#services tbody").await;
    assert!(
        overview.contains("iris") && overview.contains("Ready") && overview.contains("2 / 2"),
        "{overview}"
    );
    assert!(
        !overview.contains('–'),
        "rate, errors and p95 are known: {overview}"
    );
    let events = text(&client, "#events").await;
    assert!(
        events.contains("services.update") && events.contains("user:olga"),
        "the latest changes are on the overview: {events}"
    );
    shoot(&client, "overview.png").await;

    // Usage counts the key's 421 calls, the metadata read and 420
    // inferences (the gateway flushes usage every 2 s).
    let usage = async || {
        client
            .goto(&format!("{base}/ui/usage?window=1h"))
            .await
            .unwrap();
        client
            .find(Locator::Css("#usage-totals"))
            .await
            .ok()?
            .text()
            .await
            .ok()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let totals = loop {
        if let Some(totals) = usage().await
            && totals.contains(" 421 ")
        {
            break totals;
        }
        assert!(
            Instant::now() < deadline,
            "usage did not show 421 requests: {}",
            text(&client, "main").await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        totals.contains("iris") && totals.contains("flow"),
        "the model, and the key by its name: {totals}"
    );
    shoot(&client, "usage.png").await;

    // Revoked in the browser, the key stops working at the gateway.
    client.goto(&format!("{base}/ui/keys")).await.unwrap();
    click(
        &client,
        Locator::XPath("//tr[td[contains(., 'flow')]]//button[contains(@class, 'revoke')]"),
    )
    .await;
    wait_text(&client, "#keys tbody", Duration::from_secs(10), |t| {
        t.contains("revoked")
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = infer().await.unwrap().status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revoked key still works at the gateway"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every action is in the audit, under the operator's name.
    client
        .goto(&format!("{base}/ui/audit?actor=user:olga"))
        .await
        .unwrap();
    let log = text(&client, "#audit").await;
    for action in [
        "models.create",
        "versions.create",
        "versions.set_stage",
        "services.create",
        "services.update",
        "keys.create",
        "keys.revoke",
    ] {
        assert!(log.contains(action), "{action} missing from {log}");
    }

    // A viewer sees the same pages without a single control, and the API refuses it.
    submit(&client, Locator::Id("logout"), "/login").await;
    log_in(
        &client,
        &base,
        &[("username", "vic"), ("password", "a-long-password-1")],
    )
    .await;
    arrive(&client, "/ui").await;
    assert!(client.find(Locator::Id("new-service")).await.is_err());
    assert!(
        client.find(Locator::Id("events")).await.is_err(),
        "a viewer does not read the audit"
    );
    client
        .goto(&format!("{base}/ui/services/iris"))
        .await
        .unwrap();
    assert!(text(&client, "#split-now").await.contains("50%"));
    for control in ["split", "scale", "restart"] {
        assert!(
            client.find(Locator::Id(control)).await.is_err(),
            "a viewer sees #{control}"
        );
    }
    client.goto(&format!("{base}/ui/tasks")).await.unwrap();
    assert!(text(&client, "#tasks").await.contains("trafficSplit"));
    assert!(
        client.find(Locator::Css("button.danger")).await.is_err(),
        "a viewer sees a cancel button"
    );
    client
        .goto(&format!("{base}/ui/models/iris"))
        .await
        .unwrap();
    assert!(text(&client, "#versions").await.contains("staging"));
    assert!(client.find(Locator::Id("upload")).await.is_err());
    assert!(client.find(Locator::Id("stage-1")).await.is_err());
    client
        .goto(&format!("{base}/ui/services/new"))
        .await
        .unwrap();
    assert!(text(&client, "main").await.contains("cannot deploy"));
    // Posting the scale form anyway (with the viewer's own, valid CSRF
    // token) reaches the API, which refuses it: the page shows its words.
    let answer = client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               const csrf = document.querySelector("input[name=csrf]").value;
               fetch("/ui/services/iris/scale", {method: "POST", body: new URLSearchParams({csrf, replicas: "3"})})
                 .then(async r => done([r.status, await r.text()]));"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(answer[0], json!(403));
    let page = answer[1].as_str().unwrap();
    assert!(
        page.contains(r#"id="scale-error""#) && page.contains("services:write"),
        "the API's refusal, not a stale form: {page}"
    );
    let (_, service) = up
        .console
        .call(&http, reqwest::Method::GET, "/api/v1/services/iris", None)
        .await;
    assert_eq!(service["spec"]["replicas"], 1, "nothing changed");
    client.close().await.unwrap();
}
