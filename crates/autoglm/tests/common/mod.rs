//! Starting the real `autoglm` binary on a free loopback port in a temp home.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub mod jaeger;

pub const BIN: &str = env!("CARGO_BIN_EXE_autoglm");

/// A running console process.
pub struct Console {
    pub child: Child,
    pub url: String,
    /// The Nacos-compatible API's base URL (`http://HOST:PORT`), when it listens.
    pub nacos: Option<String>,
    pub home: PathBuf,
    pub token: String,
}

impl Console {
    /// Starts `autoglm console` with `extra` flags, waits for its banner.
    pub fn start(home: &Path, extra: &[&str]) -> Console {
        let mut child = Command::new(BIN)
            .args(["console", "--home"])
            .arg(home)
            .args(["--addr", "127.0.0.1:0", "--nacos-addr", "127.0.0.1:0"])
            .args(extra)
            .env_remove("AUTOGLM_ADDR")
            .env_remove("AUTOGLM_HOME")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(home.with_extension("stderr")).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let banner = lines.next().and_then(Result::ok).unwrap_or_else(|| {
            panic!(
                "the console exited before its banner: {}",
                std::fs::read_to_string(home.with_extension("stderr")).unwrap_or_default()
            )
        });
        let url = banner.rsplit(' ').next().unwrap().to_owned();
        assert!(url.starts_with("http"), "unexpected banner {banner:?}");
        // The Nacos-compatible API's line comes before the admin token's.
        let mut nacos = None;
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("nacos-compatible config API listening on ") {
                nacos = rest.split(' ').next().map(str::to_owned);
            }
            if line.starts_with("admin token") {
                break;
            }
        }
        // Keep draining stdout so the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let token = std::fs::read_to_string(home.join("admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        Console {
            child,
            url,
            nacos,
            home: home.to_owned(),
            token,
        }
    }

    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Sends a signal by name (TERM, KILL) with the system's `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Peak resident memory of the process in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Console {
    /// Calls the API as the admin: the status and the JSON answer (the text
    /// as a JSON string when it is not JSON).
    pub async fn call(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut req = http
            .request(method, self.api(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }
}

/// Registers model `name` with `versions` versions through the console's
/// API, each a folder under `files` with a small params.json (any files do
/// for command and Kubernetes runtimes).
pub async fn register_model(
    console: &Console,
    http: &reqwest::Client,
    name: &str,
    versions: usize,
    files: &Path,
) {
    let post = reqwest::Method::POST;
    let (status, body) = console
        .call(
            http,
            post.clone(),
            "/api/v1/models",
            Some(serde_json::json!({"name": name})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    for v in 1..=versions {
        let dir = files.join(format!("{name}-v{v}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("params.json"), format!("{{\"v\": {v}}}")).unwrap();
        let (status, body) = console
            .call(
                http,
                post.clone(),
                &format!("/api/v1/models/{name}/versions"),
                Some(serde_json::json!({"path": dir.to_str().unwrap()})),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    }
}

impl Drop for Console {
    /// SIGTERM first, so that `up` stops its replicas (command runtimes too),
    /// then SIGKILL if it has not exited within ten seconds.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `autoglm up`: console, gateway and local platform.
pub struct Up {
    pub console: Console,
    pub gateway: String,
    /// Lines it printed after its banners.
    pub lines: std::sync::mpsc::Receiver<String>,
}

/// A base port for the replicas of the `autoglm up` in `home`: the same for
/// the same home (an `up` started again takes its replicas back), and its own
/// range for each home in a test process and for each test process, so that
/// tests running side by side never pick the same free port at the same time
/// (the replica that loses the race cannot bind, yet answers its ready check
/// through the winner). Below 32768, where the kernel's ephemeral ports start.
pub fn replica_base_port(home: &Path) -> u16 {
    static HOMES: parking_lot::Mutex<Vec<PathBuf>> = parking_lot::Mutex::new(Vec::new());
    const PORTS_PER_HOME: u16 = 8;
    const HOMES_PER_PROCESS: u16 = 16;
    let mut homes = HOMES.lock();
    let slot = match homes.iter().position(|h| h == home) {
        Some(slot) => slot,
        None => {
            homes.push(home.to_owned());
            homes.len() - 1
        }
    } as u16
        % HOMES_PER_PROCESS;
    let process = (std::process::id() % 96) as u16;
    20000 + (process * HOMES_PER_PROCESS + slot) * PORTS_PER_HOME
}

impl Up {
    /// Starts `autoglm up --no-demo` with `extra` flags; waits for both banners.
    pub fn start(home: &Path, extra: &[&str]) -> Up {
        let mut args = vec!["--no-demo"];
        args.extend_from_slice(extra);
        Up::start_with(home, &args)
    }

    /// Starts `autoglm up` with `extra` flags; waits for both banners.
    pub fn start_with(home: &Path, extra: &[&str]) -> Up {
        Up::start_command(Command::new(BIN), home, extra)
    }

    /// Starts `up` with `extra` flags through `command`: an autoglm binary
    /// with the caller's working folder and environment.
    pub fn start_command(mut command: Command, home: &Path, extra: &[&str]) -> Up {
        let base = replica_base_port(home).to_string();
        let mut child = command
            .args(["up", "--home"])
            .arg(home)
            .args(["--addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0"])
            .args(["--nacos-addr", "127.0.0.1:0"])
            .args(["--replica-base-port", &base])
            .args(extra)
            .env_remove("AUTOGLM_ADDR")
            .env_remove("AUTOGLM_HOME")
            .stdout(Stdio::piped())
            // Its log stays beside the home, in the test's temporary folder.
            .stderr(std::fs::File::create(home.with_extension("log")).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut next_url = |what: &str| {
            let line = lines.next().unwrap().unwrap();
            assert!(
                line.contains(what),
                "expected the {what} banner, got {line:?}"
            );
            line.rsplit(' ').next().unwrap().to_owned()
        };
        let url = next_url("console listening");
        let gateway = next_url("gateway listening");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let token = std::fs::read_to_string(home.join("admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        Up {
            console: Console {
                child,
                url,
                nacos: None,
                home: home.to_owned(),
                token,
            },
            gateway,
            lines: rx,
        }
    }

    /// The next printed line containing `what`, within `timeout`.
    pub fn wait_for_line(&self, what: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => {}
                Err(e) => panic!("no line with {what:?} within {timeout:?}: {e}"),
            }
        }
    }
}

/// Whether process `pid` has exited (gone, or a zombie awaiting its reaper).
pub fn exited(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    })
}

/// The processes whose parent is `pid`.
pub fn children(pid: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|stat| {
                // Fields after the command's closing parenthesis: state, then the parent's pid.
                stat.rsplit(')')
                    .next()
                    .and_then(|rest| rest.split_whitespace().nth(1))
                    == Some(pid)
            })
        })
        .collect()
}

/// Runs the curl line `autoglm up` printed, with `sh` as a user would paste
/// it, in `dir`; asserts the chat answers with some text.
pub fn assert_printed_curl_answers(printed: &str, dir: &Path) {
    let answer = Command::new("sh")
        .args(["-c", printed.trim()])
        .current_dir(dir)
        .output()
        .unwrap();
    let body: serde_json::Value =
        serde_json::from_slice(&answer.stdout).unwrap_or(serde_json::Value::Null);
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{printed}\n{}",
        String::from_utf8_lossy(&answer.stdout)
    );
}

/// The ids of a service status's replicas, sorted.
pub fn replica_ids(status: &Value) -> Vec<String> {
    let mut ids: Vec<String> = status["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// The OpenAI fixture the tests run as a command runtime.
pub const UPSTREAM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openai_upstream.py"
);

/// `autoglm up` in `home`, an HTTP client, and a folder for version files.
pub struct Local {
    pub up: Up,
    pub http: reqwest::Client,
    pub files: tempfile::TempDir,
}

impl Local {
    pub fn start(home: &Path) -> Local {
        Local {
            up: Up::start(home, &[]),
            http: reqwest::Client::new(),
            files: tempfile::tempdir().unwrap(),
        }
    }

    /// Registers model `echo` with `versions` versions.
    pub async fn echo_model(&self, versions: usize) {
        register_model(
            &self.up.console,
            &self.http,
            "echo",
            versions,
            self.files.path(),
        )
        .await;
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        self.up.console.call(&self.http, method, path, body).await
    }

    /// Sends a write that starts a task; the task.
    pub async fn start_task(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, task) = self.call(method, path, body).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{task}");
        task
    }

    /// Task `id` once `done` holds of it, within `within`.
    pub async fn task_when(
        &self,
        id: &Value,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (s, t) = self
                .call(Method::GET, &format!("/api/v1/tasks/{id}?wait=1s"), None)
                .await;
            assert_eq!(s, StatusCode::OK, "{t}");
            if done(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} within {within:?}: {t}"
            );
        }
    }

    pub async fn final_task(&self, id: &Value) -> Value {
        self.task_when(id, Duration::from_secs(60), |t| {
            ["succeeded", "failed", "cancelled"].contains(&t["state"].as_str().unwrap())
        })
        .await
    }

    /// `autoglm ARGS` against this console; its stdout (it must succeed).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(BIN)
            .args(args)
            .args([
                "--server",
                &self.up.console.url,
                "--token",
                &self.up.console.token,
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// `/api/v1/services/echo/rollout` once `done` holds of it.
    pub async fn rollout_when(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (s, r) = self
                .call(Method::GET, "/api/v1/services/echo/rollout", None)
                .await;
            if s == StatusCode::OK && done(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{what} within {within:?}: {s} {r}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends chat requests to `echo` every 50 ms until the flag drops; the
    /// versions that answered and their statuses, with when.
    pub fn traffic(
        &self,
        running: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<Vec<(Instant, String, u16)>> {
        chat_traffic(
            self.up.gateway.clone(),
            self.up.console.token.clone(),
            "echo",
            running,
        )
    }
}

/// Sends chat requests for `model` to the gateway at `gateway` every 50 ms
/// until the flag drops; the versions that answered and their statuses,
/// with when.
pub fn chat_traffic(
    gateway: String,
    token: String,
    model: &'static str,
    running: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(Instant, String, u16)>> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let url = format!("{gateway}/v1/chat/completions");
        let mut seen = Vec::new();
        while running.load(Ordering::Relaxed) {
            let r = http
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await;
            if let Ok(r) = r {
                let version = r
                    .headers()
                    .get("x-autoglm-version")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                seen.push((Instant::now(), version, r.status().as_u16()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen
    })
}

/// The python of the pinned client environment (`scripts/python-env.sh`:
/// the official `openai` client, the Grafana Foundation SDK), made on first
/// use under a lock shared by every test process.
pub fn client_python() -> String {
    const PYTHON_ENV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/python-env.sh");
    let lock = std::env::temp_dir().join("autoglm-python-env.lock");
    let out = Command::new("flock")
        .arg(&lock)
        .arg(PYTHON_ENV)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/python-env.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A program a test started, listening on 127.0.0.1; killed when dropped.
pub struct Listening(Child);

impl Listening {
    /// Starts `command` (quietly) and waits until it listens on `port`.
    pub fn start(mut command: Command, port: u16, what: &str) -> Listening {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} did not start ({e}); cargo xtask deps installs it"));
        let started = Listening(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{what} did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        started
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Debian's Prometheus with a generated configuration, listening on
/// 127.0.0.1:`port`, its data in `dir`; killed when dropped.
pub struct Prometheus(Listening);

impl Prometheus {
    /// Starts it with `config` (YAML) and waits until it listens.
    pub fn start(port: u16, config: &str, dir: &Path) -> Prometheus {
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        Prometheus(Listening::start(command, port, "Debian's prometheus"))
    }
}

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `promtool check metrics` (Debian's `prometheus` package) over a
/// `/metrics` page: whether it passed, and what it said.
pub fn promtool_check(page: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the metrics tests need promtool (apt-get install -y prometheus; cargo xtask test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}
