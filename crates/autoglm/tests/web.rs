//! The web console in real headless Chromium (Debian's `chromium`, driven
//! through `chromedriver` over WebDriver with fantoccini) against a real
//! `autoglm console`: log in with a password or an API key, read the
//! overview and the model registry, search it, read and filter the audit log
//! with its chain's state, log out; a stale form is refused. Screenshots of each page go to docs/screenshots/.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Console;
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
        match client.find(Locator::Css(css)).await {
            Ok(element) => return element.text().await.unwrap(),
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
    std::fs::write(
        shots.join("overview.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();

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
    click(&client, Locator::Css("form.search button")).await;
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
    assert!(refused.contains("whole number of days"), "{refused}");
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
