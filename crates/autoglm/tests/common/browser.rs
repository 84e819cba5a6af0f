//! The browser harness of the web tests: Debian's `chromium` driven through
//! `chromedriver` over WebDriver (fantoccini), and the waits a page needs
//! (a click may return before the page it leads to has loaded).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free port, killed when dropped.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn driver() -> Driver {
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

pub async fn browser(driver: &Driver, profile: &Path) -> Client {
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

pub fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The text of the element `css` names, waiting for it to appear (a click
/// may return before the page it leads to has loaded).
/// The `href` of the first element `css` finds, which must be there.
pub async fn href(client: &Client, css: &str) -> Option<String> {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
}

pub async fn text(client: &Client, css: &str) -> String {
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
pub async fn arrive(client: &Client, path: &str) {
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

/// Clicks what leaves the page (a form's button, a link) and waits for the
/// page at `path`. The page clicked on must be gone first: a form often
/// answers with the very page it was on, whose path alone says nothing.
pub async fn submit(client: &Client, target: Locator<'_>, path: &str) {
    let page = client.find(Locator::Css("html")).await.unwrap();
    click(client, target).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    // A detached element answers no question: the new page has replaced it.
    while page.tag_name().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the click left the page as it was"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    arrive(client, path).await;
}

pub async fn click(client: &Client, target: Locator<'_>) {
    client.find(target).await.unwrap().click().await.unwrap();
}

pub async fn type_into(client: &Client, target: Locator<'_>, keys: &str) {
    client
        .find(target)
        .await
        .unwrap()
        .send_keys(keys)
        .await
        .unwrap();
}

pub async fn log_in(client: &Client, base: &str, fields: &[(&str, &str)]) {
    client.goto(&format!("{base}/login")).await.unwrap();
    for (id, value) in fields {
        type_into(client, Locator::Id(id), value).await;
    }
    click(client, Locator::Css("main.login button[type=submit]")).await;
}

/// Waits until the text of `css` satisfies `done` (pages refresh their live
/// parts, and reloads take a moment).
pub async fn wait_text(
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

pub async fn replace_text(client: &Client, id: &str, keys: &str) {
    let field = client.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(keys).await.unwrap();
}

pub async fn shoot(client: &Client, name: &str) {
    std::fs::write(screenshots().join(name), client.screenshot().await.unwrap()).unwrap();
}
