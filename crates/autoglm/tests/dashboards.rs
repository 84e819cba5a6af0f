//! The Grafana dashboards under `deploy/grafana/`, checked as far as can be
//! without Grafana: their structure against Grafana's own dashboard model
//! (the Grafana Foundation SDK, pinned in `scripts/python-env.sh`, run by
//! `fixtures/dashboards_check.py`), and every panel's query against a real
//! Prometheus (Debian's) scraping a real `autoglm up` (its console, gateway
//! and the demo's two runtimes, SmolLM2 and MiniLM) after real traffic: each
//! query must parse and return series. That Prometheus also loads
//! `deploy/prometheus/rules.yml`, and every recording rule must give series
//! from the same traffic. Its numbers are the traffic's: requests per
//! version, tokens generated (the answers' usage), ready replicas, nothing
//! in flight, no errors, a p95 within the slowest chat's bucket; and every
//! page it scraped passes `promtool check metrics`.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Up;
use serde_json::{Value, json};

const CHECK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/dashboards_check.py"
);
const DASHBOARDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/grafana");
const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/prometheus/rules.yml"
);

/// `host:port` of an `http://host:port` URL.
fn authority(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

/// Every panel query of the dashboards, once they pass the model check.
fn queries(python: &str) -> Vec<Value> {
    let out = Command::new(python)
        .args([CHECK, DASHBOARDS])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the dashboards do not fit Grafana's model:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_field_the_dashboard_model_does_not_know_is_refused() {
    let python = common::client_python();
    let dir = tempfile::tempdir().unwrap();
    let mut dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{DASHBOARDS}/service.json")).unwrap(),
    )
    .unwrap();
    dashboard["panels"][0]["gridpos"] = json!({"x": 0});
    dashboard["panels"][1]["targets"][0]["expr"] = json!("rate(x{a=\"$nope\"}[1m])");
    std::fs::write(dir.path().join("service.json"), dashboard.to_string()).unwrap();
    let out = Command::new(&python)
        .args([CHECK, dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("service.json.panels[0].gridpos: not a field of the dashboard model"),
        "{said}"
    );
    assert!(said.contains("$nope is not a variable"), "{said}");
}

#[test]
fn every_panel_query_returns_series_from_a_real_prometheus() {
    let python = common::client_python();
    let mut queries = queries(&python);
    assert!(queries.len() >= 20, "{queries:?}");
    let rules: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(RULES).unwrap()).unwrap();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            if let Some(record) = rule["record"].as_str() {
                queries.push(json!({"dashboard": "rules.yml", "panel": record, "expr": record}));
            }
        }
    }
    // The demo finds its models in the cache; fetch them first under the tests' lock.
    autoglm_testmodels::path(autoglm_testmodels::SMOLLM2);
    autoglm_testmodels::path(autoglm_testmodels::MINILM);
    let home = tempfile::tempdir().unwrap();
    let up = Up::start_with(&home.path().join("home"), &[]);
    up.wait_for_line("demo services deployed", Duration::from_secs(180));
    let http = reqwest::blocking::Client::new();
    // The demo's banner comes once its services are written: wait for
    // their replicas to be ready, where each one's port is known.
    let ready_port = |name: &str| -> Option<u64> {
        let service: Value = http
            .get(up.console.api(&format!("/api/v1/services/{name}")))
            .bearer_auth(&up.console.token)
            .send()
            .ok()?
            .json()
            .ok()?;
        match service["status"]["replicas"].as_array()?.as_slice() {
            [one] if one["state"] == "ready" => one["port"].as_u64(),
            _ => None,
        }
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    let replica_ports: Vec<u64> = ["chat", "embeddings"]
        .iter()
        .map(|name| {
            loop {
                if let Some(port) = ready_port(name) {
                    break port;
                }
                assert!(Instant::now() < deadline, "{name} never became ready");
                std::thread::sleep(Duration::from_millis(200));
            }
        })
        .collect();

    let prometheus_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let runtimes: Vec<String> = replica_ports
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    let _prometheus = common::Prometheus::start(
        prometheus_port,
        &format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [\"{RULES}\"]\nscrape_configs:\n  - job_name: console\n    static_configs: [{{targets: [\"{}\"]}}]\n  - job_name: gateway\n    static_configs: [{{targets: [\"{}\"]}}]\n  - job_name: runtimes\n    static_configs: [{{targets: [{}]}}]\n",
            authority(&up.console.url),
            authority(&up.gateway),
            runtimes.join(", ")
        ),
        home.path(),
    );

    // Real traffic: chats (time to first token, tokens) and embeddings
    // (batches), through the gateway with the admin's key.
    // What the test sent, to hold Prometheus' numbers to: chats, tokens
    // generated (as the answers' usage says), embeddings, slowest chat.
    let sent = std::cell::Cell::new((0u64, 0u64, 0u64, 0f64));
    let send = |path: &str, body: Value| {
        let started = Instant::now();
        let r = http
            .post(format!("{}{path}", up.gateway))
            .bearer_auth(&up.console.token)
            .json(&body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let answer: Value = r.json().unwrap();
        let (mut chats, mut tokens, mut embeddings, mut slowest) = sent.get();
        if path == "/v1/chat/completions" {
            chats += 1;
            tokens += answer["usage"]["completion_tokens"].as_u64().unwrap();
            slowest = slowest.max(started.elapsed().as_secs_f64());
        } else {
            embeddings += 1;
        }
        sent.set((chats, tokens, embeddings, slowest));
    };
    let traffic = || {
        for i in 0..3 {
            send(
                "/v1/chat/completions",
                json!({"model": "chat", "max_tokens": 4, "messages": [{"role": "user", "content": format!("Say {i}")}]}),
            );
            send(
                "/v1/embeddings",
                json!({"model": "embeddings", "input": [format!("text {i}"), "another"]}),
            );
        }
    };
    traffic();

    // Each query, with the dashboards' variables at "all", until it
    // returns a series: a rate needs two scrapes after the traffic.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut pending: Vec<Value> = queries;
    while !pending.is_empty() {
        let mut still = Vec::new();
        for q in pending {
            let expr = q["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$tenant", ".+")
                .replace("$service", ".+")
                .replace("$instance", ".+");
            let answer: Result<Value, _> = http
                .get(format!("http://127.0.0.1:{prometheus_port}/api/v1/query"))
                .query(&[("query", expr.as_str())])
                .send()
                .and_then(|r| r.json());
            match answer {
                Ok(a) if a["status"] == "success" => {
                    if a["data"]["result"].as_array().unwrap().is_empty() {
                        still.push(q);
                    }
                }
                // Prometheus answers 400 with the parse error.
                Ok(a) => panic!("{} / {}: {expr}: {a}", q["dashboard"], q["panel"]),
                // Not listening yet.
                Err(_) => still.push(q),
            }
        }
        pending = still;
        if !pending.is_empty() {
            assert!(
                Instant::now() < deadline,
                "queries with no series: {pending:#?}"
            );
            traffic();
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    // The numbers are the traffic's: once Prometheus has scraped after the
    // last request, its counts are what was sent.
    let (chats, tokens, embeddings, slowest) = sent.get();
    let chat_port = replica_ports[0];
    let value = |expr: &str| -> Option<f64> {
        let a: Value = http
            .get(format!("http://127.0.0.1:{prometheus_port}/api/v1/query"))
            .query(&[("query", expr)])
            .send()
            .ok()?
            .json()
            .ok()?;
        a["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let expected = [
        (
            r#"sum(autoglm_gateway_requests_total{model="chat",version="1",code="200"})"#
                .to_owned(),
            chats as f64,
        ),
        (
            r#"sum(autoglm_gateway_requests_total{model="embeddings",version="1",code="200"})"#
                .to_owned(),
            embeddings as f64,
        ),
        (
            format!(
                r#"autoglm_runtime_generated_tokens_total{{instance="127.0.0.1:{chat_port}"}}"#
            ),
            tokens as f64,
        ),
        (
            r#"autoglm_gateway_replicas_ready{model="chat",version="1"}"#.to_owned(),
            1.0,
        ),
        (
            r#"sum(autoglm_gateway_in_flight_requests{model="chat"})"#.to_owned(),
            0.0,
        ),
        (
            r#"autoglm:gateway_errors:ratio_rate1m{model="chat",version="1"}"#.to_owned(),
            0.0,
        ),
    ];
    for (expr, want) in &expected {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = value(expr);
            if got == Some(*want) {
                break;
            }
            assert!(Instant::now() < deadline, "{expr}: {got:?}, sent {want}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    // The p95 from the histogram's buckets: within the bucket that holds
    // the slowest chat the client saw, and above nothing.
    let p95 = value(
        r#"histogram_quantile(0.95, sum by (le) (autoglm_gateway_request_duration_seconds_bucket{model="chat"}))"#,
    )
    .unwrap();
    let bound = autoglm_core::traffic::LATENCY_BOUNDS
        .into_iter()
        .find(|b| *b >= slowest)
        .unwrap();
    assert!(
        p95 > 0.0 && p95 <= bound,
        "p95 {p95}, slowest chat {slowest} s"
    );

    // Every page Prometheus scraped is well-formed to promtool too.
    for target in [
        up.console.url.clone(),
        up.gateway.clone(),
        format!("http://127.0.0.1:{}", replica_ports[0]),
        format!("http://127.0.0.1:{}", replica_ports[1]),
    ] {
        let page = http
            .get(format!("{target}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let (passed, said) = common::promtool_check(&page);
        assert!(passed, "{target}/metrics: {said}");
    }
}
