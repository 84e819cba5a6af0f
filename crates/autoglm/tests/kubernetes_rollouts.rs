//! Rollouts the operator drives on the real control plane of `scripts/k8s.sh`,
//! judged from a real Prometheus (Debian's `prometheus`, started here with a
//! generated config) that scrapes a real `autoglm gateway`.
//!
//! kwok's pods have no network, so Prometheus cannot scrape them and the
//! gateway cannot reach them: the services run no pods (`replicas: 0`), each
//! version's traffic goes to a real upstream process behind a hand-made
//! EndpointSlice of that version's Service, and Prometheus scrapes the
//! gateway the test runs, whose `autoglm_gateway_*` families the analyses
//! query. A canary that fails its requests is rolled back by the default
//! guard and the gateway sends it nothing more; a healthy one passes its
//! analysis and becomes the stable version. A service written through the
//! console (`--platform kubernetes --prometheus-url`) is rolled out by the
//! console's own task, measured from the same Prometheus, and the operator
//! leaves its split alone. A user pauses and promotes a rollout with the
//! `autoglm.io/rollout-command` annotation; a bad command is refused. The
//! same Prometheus scrapes the operator: it leads, its reconciles succeed,
//! and its page passes `promtool check metrics`.
#![allow(clippy::unwrap_used)]

mod cluster;
mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster::{ControlPlane, Operator, Process, free_port, host_ip, wait_for_port};
use common::Console;
use reqwest::StatusCode;
use serde_json::Value;

/// The admin's tenant, and so the namespace of its services.
const TENANT: &str = "default";

/// The ModelService `name` wanting `version`, rolled out by `steps` (flow YAML).
fn service(name: &str, version: &str, steps: &str) -> String {
    cluster::model_service(
        TENANT,
        name,
        &format!(
            "{{model: {name}, versions: [{{version: \"{version}\", weight: 100}}], replicas: 0, rollout: {{steps: {steps}}}}}"
        ),
    )
}

fn status(plane: &ControlPlane, name: &str) -> Value {
    plane.get_json(&["modelservice", name, "-n", TENANT])["status"].clone()
}

/// The one value Prometheus at `url` has for `expr` now.
async fn prometheus_value(url: &str, expr: &str) -> Option<f64> {
    let answer: Value = reqwest::Client::new()
        .get(format!("{url}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    answer["data"]["result"][0]["value"][1]
        .as_str()?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operator_rolls_back_a_failing_canary_and_promotes_a_healthy_one_from_prometheus() {
    let plane = ControlPlane::with_crd();
    let home = tempfile::tempdir().unwrap();
    let (gateway_port, prometheus_port) = (free_port(), free_port());
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    let prometheus_url = format!("http://127.0.0.1:{prometheus_port}");
    let kubeconfig = plane.kubeconfig.to_str().unwrap().to_owned();
    // The console writes its services to the cluster and drives their
    // rollouts itself, measuring from Prometheus; the gateway checks keys
    // in its store.
    let console = Console::start(
        &home.path().join("home"),
        &[
            "--platform",
            "kubernetes",
            "--kubeconfig",
            &kubeconfig,
            "--prometheus-url",
            &prometheus_url,
        ],
    );
    let ip = host_ip();
    let _upstreams = [
        cluster::upstream(plane, &ip, TENANT, "bad", "1", false),
        cluster::upstream(plane, &ip, TENANT, "bad", "2", true),
        cluster::upstream(plane, &ip, TENANT, "good", "1", false),
        cluster::upstream(plane, &ip, TENANT, "good", "2", false),
        cluster::upstream(plane, &ip, TENANT, "written", "1", false),
        cluster::upstream(plane, &ip, TENANT, "written", "2", false),
    ];
    let _gateway = Process(
        Command::new(cluster::BIN)
            .args(["gateway", "--home"])
            .arg(home.path().join("home"))
            .args(["--addr", &format!("127.0.0.1:{gateway_port}")])
            .args(["--kubeconfig", &kubeconfig])
            // A version without endpoints answers 503 after a second instead of holding long.
            .args(["--hold-timeout", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port("127.0.0.1", gateway_port, "the gateway");

    // Prometheus scrapes the gateway and the operator every second (the
    // operator asks it only once a measurement is due).
    let operator = Operator::start(plane, TENANT, &["--prometheus-url", &prometheus_url]);
    let _prometheus = common::Prometheus::start(
        prometheus_port,
        &format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: gateway\n    static_configs: [{{targets: [\"127.0.0.1:{gateway_port}\"]}}]\n  - job_name: operator\n    static_configs: [{{targets: [\"127.0.0.1:{}\"]}}]\n",
            operator.metrics_port
        ),
        home.path(),
    );

    // Both at version 1: stable once the operator has seen them.
    let guard = "[{setWeight: 50}, {pause: {duration: 60s}}, {setWeight: 100}]";
    let analysed = "[{setWeight: 50}, {analysis: {metrics: [{name: errors, interval: 10s, successCondition: \"result <= baseline * 2 || result < 0.01\", provider: {gateway: {metric: errorRatio}}}]}}, {setWeight: 100}]";
    plane.apply(&service("bad", "1", guard));
    plane.apply(&service("good", "1", analysed));
    // And one through the console's API, as the console's users write them.
    let http = console.client();
    common::register_model(&console, &http, "written", 2, home.path()).await;
    let written = |version: &str| {
        serde_json::json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService", "metadata": {"name": "written"},
            "spec": {"model": "written", "versions": [{"version": version, "weight": 100}], "replicas": 0,
                     "rollout": {"steps": [{"setWeight": 50},
                        {"analysis": {"metrics": [{"name": "errors", "interval": "10s",
                            "successCondition": "result <= baseline * 2 || result < 0.01",
                            "provider": {"gateway": {"metric": "errorRatio"}}}]}},
                        {"setWeight": 100}]}}})
    };
    let (s, task) = console
        .call(
            &http,
            reqwest::Method::POST,
            "/api/v1/services",
            Some(written("1")),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{task}");
    for name in ["bad", "good"] {
        plane.wait_until(
            &format!("{name} at stable version 1"),
            Duration::from_secs(60),
            || status(plane, name)["stableVersion"] == "1",
        );
    }
    // Traffic on both through the gateway, before and through the rollouts.
    let running = Arc::new(AtomicBool::new(true));
    let bad_traffic = common::chat_traffic(
        gateway.clone(),
        console.token.clone(),
        "bad",
        running.clone(),
    );
    let good_traffic = common::chat_traffic(
        gateway.clone(),
        console.token.clone(),
        "good",
        running.clone(),
    );
    let written_traffic = common::chat_traffic(
        gateway.clone(),
        console.token.clone(),
        "written",
        running.clone(),
    );
    plane.apply(&service("bad", "2", guard));
    plane.apply(&service("good", "2", analysed));
    let (s, task) = console
        .call(
            &http,
            reqwest::Method::PUT,
            "/api/v1/services/written",
            Some(written("2")),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{task}");
    assert_eq!(task["kind"], "rolloutStep", "{task}");

    // The failing canary: the default guard (error ratio above 5% over 10 s),
    // measured from Prometheus, aborts it; all traffic back on version 1.
    let mut aborted_at = None;
    plane.wait_until("bad's rollback", Duration::from_secs(90), || {
        let s = status(plane, "bad");
        let done = s["rolloutState"]["phase"] == "Degraded";
        if done {
            aborted_at = Some(Instant::now());
        }
        done
    });
    let aborted_at = aborted_at.unwrap();
    let bad = status(plane, "bad");
    let message = bad["rolloutState"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("metric error-ratio failed at step 1: 1"),
        "{bad}"
    );
    assert_eq!(bad["stableVersion"], "1", "{bad}");
    assert_eq!(bad["rollout"]["phase"], "Degraded", "{bad}");
    let weights: Vec<(String, u64)> = bad["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap().to_owned(),
                v["weight"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(weights, [("1".to_owned(), 100)], "{bad}");
    let events = plane.kubectl(&[
        "get",
        "events",
        "-n",
        TENANT,
        "--field-selector",
        "involvedObject.name=bad",
    ]);
    assert!(events.contains("RolloutDegraded"), "{events}");

    // The healthy canary passes its analysis against the stable baseline.
    plane.wait_until("good's promotion", Duration::from_secs(90), || {
        status(plane, "good")["stableVersion"] == "2"
    });
    let good = status(plane, "good");
    assert_eq!(good["rolloutState"]["phase"], "Healthy", "{good}");
    let measured = &good["rolloutState"]["analysis"][0]["measurements"][0];
    assert_eq!(measured["phase"], "Successful", "{good}");
    assert_eq!(measured["value"], 0.0, "measured from real traffic: {good}");

    // The console's rollout, measured from the same Prometheus, moved the
    // split in the ModelService's spec; the operator left it to the console.
    let deadline = Instant::now() + Duration::from_secs(90);
    let rollout = loop {
        let (_, r) = console
            .call(
                &http,
                reqwest::Method::GET,
                "/api/v1/services/written/rollout",
                None,
            )
            .await;
        if r["phase"] == "Healthy" || r["phase"] == "Degraded" || r["phase"] == "Paused" {
            break r;
        }
        assert!(Instant::now() < deadline, "the console's rollout: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(rollout["phase"], "Healthy", "{rollout}");
    assert_eq!(
        rollout["analysis"][0]["measurements"][0]["value"], 0.0,
        "{rollout}"
    );
    let object = plane.get_json(&["modelservice", "written", "-n", TENANT]);
    assert_eq!(
        object["spec"]["versions"],
        serde_json::json!([{"version": "2", "weight": 100}])
    );
    assert!(object["status"].get("rolloutState").is_none(), "{object}");

    // A user's commands, as annotations (kubectl has no rollout verbs):
    // a pause holds the rollout, a promote ends it, a bad one is refused.
    let command = |value: &str| {
        plane.kubectl(&[
            "annotate",
            "modelservice",
            "held",
            "-n",
            TENANT,
            "--overwrite",
            &format!("autoglm.io/rollout-command={value}"),
        ]);
    };
    let open_pause = "[{setWeight: 30}, {pause: {}}, {setWeight: 100}]";
    plane.apply(&service("held", "1", open_pause));
    plane.wait_until("held at stable version 1", Duration::from_secs(60), || {
        status(plane, "held")["stableVersion"] == "1"
    });
    plane.apply(&service("held", "2", open_pause));
    plane.wait_until("held's rollout at 30%", Duration::from_secs(60), || {
        status(plane, "held")["rolloutState"]["weight"] == 30
    });
    command("pause@1");
    plane.wait_until("held paused by its user", Duration::from_secs(30), || {
        status(plane, "held")["rolloutState"]["pausedByUser"] == true
    });
    let paused = status(plane, "held");
    assert_eq!(paused["rolloutState"]["phase"], "Paused", "{paused}");
    assert_eq!(paused["rolloutCommand"], "pause@1", "{paused}");
    command("dance@2");
    plane.wait_until("the bad command refused", Duration::from_secs(30), || {
        plane
            .kubectl(&[
                "get",
                "events",
                "-n",
                TENANT,
                "--field-selector",
                "involvedObject.name=held",
            ])
            .contains("is not a rollout command")
    });
    assert_eq!(status(plane, "held")["rolloutState"]["phase"], "Paused");
    command("promote@3");
    plane.wait_until("held promoted", Duration::from_secs(30), || {
        status(plane, "held")["stableVersion"] == "2"
    });
    let promoted = status(plane, "held");
    assert_eq!(promoted["rolloutState"]["phase"], "Healthy", "{promoted}");
    assert_eq!(promoted["versions"][0]["version"], "2", "{promoted}");
    assert_eq!(promoted["versions"][0]["weight"], 100, "{promoted}");

    // Traffic runs on a little; then who answered after the abort.
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.store(false, Ordering::Relaxed);
    let bad_seen = bad_traffic.await.unwrap();
    let good_seen = good_traffic.await.unwrap();
    let written_seen = written_traffic.await.unwrap();
    assert!(
        written_seen.iter().any(|(_, v, _)| v == "1")
            && written_seen.iter().any(|(_, v, _)| v == "2"),
        "the console's split reached the gateway"
    );
    assert!(
        bad_seen.iter().any(|(_, v, s)| v == "2" && *s == 500),
        "the bad canary took part of the traffic first"
    );
    // The gateway follows the status within its watch's delay.
    let late: Vec<_> = bad_seen
        .iter()
        .filter(|(at, v, _)| *at > aborted_at + Duration::from_secs(2) && v == "2")
        .collect();
    assert!(
        late.is_empty(),
        "requests reached the bad canary after the rollback: {late:?}"
    );
    // The operator, scraped as well: it leads, its reconciles succeed, and
    // its page is well-formed to promtool.
    assert_eq!(
        prometheus_value(&prometheus_url, "max(autoglm_operator_leader)").await,
        Some(1.0)
    );
    assert!(
        prometheus_value(
            &prometheus_url,
            r#"sum(autoglm_operator_reconciles_total{result="success"})"#
        )
        .await
        .is_some_and(|n| n > 0.0)
    );
    let (_, page) = operator.http_get("/metrics").unwrap();
    let (passed, said) = common::promtool_check(&page);
    assert!(passed, "operator /metrics: {said}");
    let last = good_seen.iter().rev().take(10).collect::<Vec<_>>();
    assert!(
        last.iter()
            .all(|(_, v, s)| v == "2" && *s == StatusCode::OK.as_u16()),
        "after the promotion the good version takes all traffic: {last:?}"
    );
}
