//! A real Jaeger v2, the OTLP trace collector of `scripts/jaeger.sh`, on free
//! loopback ports with in-memory storage: tests export spans to it and read
//! them back through its query API. One per test (several run at once); it
//! is killed when dropped, and by a watchdog if the test process is killed.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Listening, free_port};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/jaeger.sh");

/// Runs the script with `args`, its stderr shown as it goes (the first build
/// takes minutes); its stdout. A failure panics with what it said and how to
/// run it by hand: the tests never skip.
fn run_script(args: &[&str]) -> String {
    let mut child = Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not run scripts/jaeger.sh: {e}"));
    let mut said = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap_or_default();
        // Straight to stderr, past the test harness's capture: progress.
        let _ = writeln!(std::io::stderr(), "{line}");
        said.push_str(&line);
        said.push('\n');
    }
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "scripts/jaeger.sh {} failed ({status}):\n{said}\nrun `scripts/jaeger.sh {}` by hand to see why \
         (it needs Go and the Go module proxy; the binary is cached under ~/.cache/autoglm/jaeger)",
        args.join(" "),
        args.join(" "),
    );
    stdout.trim().to_owned()
}

/// The `jaeger` binary, built (or found in the cache) once per process.
fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| PathBuf::from(run_script(&["build"])))
}

/// A running Jaeger.
pub struct Jaeger {
    process: Listening,
    /// OTLP/HTTP, e.g. `http://127.0.0.1:PORT`; spans go to `{otlp_http}/v1/traces`.
    pub otlp_http: String,
    /// OTLP/gRPC, e.g. `http://127.0.0.1:PORT`.
    pub otlp_grpc: String,
    /// The query API (and UI), e.g. `http://127.0.0.1:PORT`.
    pub query: String,
    /// Its log (stdout and stderr).
    pub log: PathBuf,
    http: reqwest::Client,
}

impl Jaeger {
    /// Starts one with its configuration and log in `dir`; returns once the
    /// query API answers and the OTLP receivers listen.
    pub fn start(dir: &Path) -> Jaeger {
        let binary = binary();
        // A port picked free may be taken before Jaeger binds it (other tests
        // pick ports too): then it exits, and gets fresh ones.
        for _ in 0..5 {
            if let Some(jaeger) = Jaeger::try_start(binary, dir) {
                return jaeger;
            }
        }
        panic!(
            "Jaeger could not bind its ports five times; see {}",
            dir.join("jaeger.log").display()
        );
    }

    fn try_start(binary: &Path, dir: &Path) -> Option<Jaeger> {
        let [otlp_grpc, otlp_http, query, query_grpc] = [(); 4].map(|()| free_port());
        let config = dir.join("jaeger.yaml");
        let ports = [otlp_grpc, otlp_http, query, query_grpc].map(|p| p.to_string());
        let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
        let mut args = vec!["config"];
        args.extend(ports);
        std::fs::write(&config, run_script(&args) + "\n").unwrap();
        let log = dir.join("jaeger.log");
        // This try's part of the log, after any earlier try's.
        let from = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
        let said = || {
            let all = std::fs::read(&log).unwrap_or_default();
            String::from_utf8_lossy(all.get(from..).unwrap_or_default()).into_owned()
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", binary.display()));
        watchdog(child.id());
        let mut process = Listening(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = process.0.try_wait() {
                let said = said();
                assert!(
                    said.contains("address already in use"),
                    "Jaeger exited ({status}) before it was ready; its log, {}:\n{said}",
                    log.display()
                );
                return None;
            }
            let listening = [otlp_grpc, otlp_http]
                .iter()
                .all(|&p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok());
            // The Collector says so once every receiver has bound its port.
            if listening && query_answers(query) && said().contains("Everything is ready") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Jaeger was not ready within 30 s; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Jaeger {
            process,
            otlp_http: format!("http://127.0.0.1:{otlp_http}"),
            otlp_grpc: format!("http://127.0.0.1:{otlp_grpc}"),
            query: format!("http://127.0.0.1:{query}"),
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        })
    }

    /// Trace `trace_id` (32 hex digits) as the query API gives it
    /// (`GET /api/traces/{id}`, its `data[0]`): `traceID`, `spans` (each with
    /// `spanID`, `operationName`, `references` [{`refType`: "CHILD_OF",
    /// `spanID`}], `startTime` and `duration` in µs, `tags` [{`key`, `type`,
    /// `value`}], `processID`) and `processes` (`{processID: {serviceName,
    /// tags}}`); None while Jaeger has no such trace.
    pub async fn trace(&self, trace_id: &str) -> Option<Value> {
        let url = format!("{}/api/traces/{trace_id}", self.query);
        let resp = self.http.get(&url).send().await.unwrap();
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "GET {url}: {status} {body}");
        body["data"].get(0).cloned()
    }

    /// Trace `trace_id` (as [`Jaeger::trace`] gives it) once it has at least
    /// `count` spans, within `within` (a span reaches the query API about
    /// 100 ms after it is exported).
    pub async fn trace_with(&self, trace_id: &str, count: usize, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let trace = self.trace(trace_id).await;
            let spans = trace
                .as_ref()
                .map_or(0, |t| t["spans"].as_array().map_or(0, Vec::len));
            if spans >= count
                && let Some(trace) = trace
            {
                return trace;
            }
            assert!(
                Instant::now() < deadline,
                "trace {trace_id} had {spans} spans, not {count}, within {within:?}; Jaeger's log is {}: {}",
                self.log.display(),
                trace.map_or_else(|| "no trace".to_owned(), |t| t.to_string())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The spans of trace `trace_id` once it has at least `count`, within
    /// `within`; each also carries `serviceName`, its process's.
    pub async fn spans_when(&self, trace_id: &str, count: usize, within: Duration) -> Vec<Value> {
        let trace = self.trace_with(trace_id, count, within).await;
        trace["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|span| {
                let mut span = span.clone();
                let process = span["processID"].as_str().unwrap_or_default();
                span["serviceName"] = trace["processes"][process]["serviceName"].clone();
                span
            })
            .collect()
    }

    /// The PID of the Jaeger process.
    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }
}

/// The value of tag `key` of a span of the query API.
pub fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| &t["value"])
}

/// Whether Jaeger's query API answers on `port` (`GET /api/services`), by
/// hand over HTTP/1.0, as this may run inside an async test.
fn query_answers(port: u16) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /api/services HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer
            .lines()
            .next()
            .is_some_and(|status| status.starts_with("HTTP/1.") && status.contains(" 200"))
        && answer.contains("\"data\"")
}

/// Kills Jaeger (`pid`) once this test process is gone, even when it is
/// killed and never drops it; ends by itself when Jaeger exits first.
fn watchdog(pid: u32) {
    let owner = std::process::id();
    let watchdog = Command::new("setsid")
        .args([
            "sh",
            "-c",
            "while kill -0 \"$2\" 2>/dev/null; do kill -0 \"$1\" 2>/dev/null || { kill -9 \"$2\"; exit; }; sleep 1; done",
            "jaeger-watchdog",
            &owner.to_string(),
            &pid.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    // Reaped when it ends, so it leaves no zombie behind.
    if let Ok(mut watchdog) = watchdog {
        std::thread::spawn(move || watchdog.wait());
    }
}
