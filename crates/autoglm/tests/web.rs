//! The web console in real headless Chromium (Debian's `chromium`, driven
//! through `chromedriver` over WebDriver with fantoccini) against a real
//! `autoglm console` and a real `autoglm up`: log in with a password or an
//! API key, read and search the registry, create a model and upload its
//! versions, change a stage, deploy a service from the form, watch it become
//! ready, move its traffic split and see the gateway honour it, make and
//! revoke a key, read usage, logs and the audit; a viewer can change nothing;
//! a stale form is refused. Screenshots of each page go to docs/screenshots/.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Console, Up};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver() -> Driver {
    assert!(
        Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
        "the browser tests need Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver; .ci/run installs them)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    // fantoccini's client speaks through rustls, which needs a provider chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,800", format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap()
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The text of the element `css` names, waiting for it to appear (a click
/// may return before the page it leads to has loaded).
async fn text(client: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The element may also go stale between finding and reading it, as a page loads.
        let read = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await,
            Err(e) => Err(e),
        };
        match read {
            Ok(text) => return text,
            Err(e) if Instant::now() >= deadline => panic!("no {css} within 10 s: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Waits for the browser to arrive at `path` (a click may return before its navigation ends).
async fn arrive(client: &Client, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = client.current_url().await.unwrap();
        if url.path() == path {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the browser stayed at {url}, not {path}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(client: &Client, target: Locator<'_>) {
    client.find(target).await.unwrap().click().await.unwrap();
}

async fn type_into(client: &Client, target: Locator<'_>, keys: &str) {
    client
        .find(target)
        .await
        .unwrap()
        .send_keys(keys)
        .await
        .unwrap();
}

async fn log_in(client: &Client, base: &str, fields: &[(&str, &str)]) {
    client.goto(&format!("{base}/login")).await.unwrap();
    for (id, value) in fields {
        type_into(client, Locator::Id(id), value).await;
    }
    click(client, Locator::Css("main.login button[type=submit]")).await;
}

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
    click(&client, Locator::LinkText("Models")).await;
    arrive(&client, "/ui/models").await;
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
    click(&client, Locator::LinkText("API keys")).await;
    arrive(&client, "/ui/keys").await;
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
    click(&client, Locator::XPath(revoke)).await;
    arrive(&client, "/ui/keys").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while whoami(secret.clone()).await != reqwest::StatusCode::UNAUTHORIZED {
        assert!(Instant::now() < deadline, "the revoked key still works");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The audit page shows what was done, filters it, and (for the system
    // admin) the hash chain's state.
    click(&client, Locator::LinkText("Audit")).await;
    arrive(&client, "/ui/audit").await;
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
    click(&client, Locator::Id("logout")).await;
    arrive(&client, "/login").await;
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

/// Waits until the text of `css` satisfies `done` (pages refresh their live
/// parts, and reloads take a moment).
async fn wait_text(
    client: &Client,
    css: &str,
    within: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && let Ok(found) = element.text().await
            && done(&found)
        {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{css} did not read as expected within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn replace_text(client: &Client, id: &str, keys: &str) {
    let field = client.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(keys).await.unwrap();
}

async fn shoot(client: &Client, name: &str) {
    std::fs::write(screenshots().join(name), client.screenshot().await.unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_deploys_and_splits_traffic_from_the_browser_and_a_viewer_cannot() {
    let home = tempfile::tempdir().unwrap();
    let up = Up::start(&home.path().join("home"), &[]);
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
    click(&client, Locator::Css("#new-model button")).await;
    arrive(&client, "/ui/models/iris").await;

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
    click(&client, Locator::Id("new-service")).await;
    arrive(&client, "/ui/services/new").await;
    type_into(&client, Locator::Id("name"), "iris_svc").await;
    type_into(&client, Locator::Id("model"), "iris").await;
    type_into(&client, Locator::Id("version_1"), "2").await;
    type_into(&client, Locator::Id("weight_1"), "0").await;
    replace_text(&client, "weight_0", "100").await;
    let yaml = wait_text(&client, "#yaml", Duration::from_secs(10), |t| {
        t.contains("model: iris") && t.contains("version: '2'")
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
    click(&client, Locator::Id("deploy")).await;
    arrive(&client, "/ui/services/iris").await;
    // The page follows the replicas as they start, without a reload.
    wait_text(&client, "#replica-count", Duration::from_secs(90), |t| {
        t == "2 of 2 ready"
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
    let typed = client.find(Locator::Id("weight-1")).await.unwrap();
    assert_eq!(
        typed.prop("value").await.unwrap().as_deref(),
        Some("60"),
        "the refused split keeps what was typed"
    );
    replace_text(&client, "weight-1", "50").await;
    replace_text(&client, "weight-2", "50").await;
    click(&client, Locator::Css("#split button")).await;
    arrive(&client, "/ui/services/iris").await;
    let (_, service) = up
        .console
        .call(&http, reqwest::Method::GET, "/api/v1/services/iris", None)
        .await;
    assert_eq!(
        service["spec"]["versions"],
        json!([{"version": "1", "weight": 50}, {"version": "2", "weight": 50}])
    );

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
        if answer.headers()["x-autoglm-version"] == "1" {
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
    click(&client, Locator::Id("logout")).await;
    arrive(&client, "/login").await;
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
