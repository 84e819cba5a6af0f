//! Rollouts on the local platform with real replicas and real traffic
//! through the gateway: a new version that fails its requests (the fixture
//! answers 500 for a version in $FAIL_VERSIONS) is rolled back by its
//! analysis by itself, and no request reaches it after the abort; a healthy
//! one goes 10 → 50, waits at an open pause, is promoted and becomes the
//! stable version; one three times slower than the stable version is caught
//! by a latency analysis against that baseline; bad rollout specs are refused with their field paths.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Local, UPSTREAM};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Service `echo` at `version` alone; version 2 fails every request when `bad`.
/// `autoglm up` in `home` with model `echo`'s versions 1 and 2.
async fn started(home: &std::path::Path) -> Local {
    let env = Local::start(home);
    env.echo_model(2).await;
    env
}

fn manifest(version: &str, steps: Value, bad: bool) -> Value {
    let fail = if bad { "2" } else { "" };
    json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService", "metadata": {"name": "echo"},
    "spec": {
        "model": "echo",
        "versions": [{"version": version, "weight": 100}],
        "replicas": 1,
        "runtime": {"command": {"command": ["python3", UPSTREAM, "{port}", "{version}", "{name}"]}},
        "env": [{"name": "FAIL_VERSIONS", "value": fail}],
        "rollout": {"steps": steps, "promoteToProduction": true},
    }})
}

/// Deploys `echo` at version 1 and waits for its task.
async fn stable_v1(env: &Local, steps: Value, bad: bool) {
    let (s, task) = env
        .call(
            Method::POST,
            "/api/v1/services",
            Some(manifest("1", steps, bad)),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{task}");
    let (_, done) = env
        .call(
            Method::GET,
            &format!("/api/v1/tasks/{}?wait=60s", task["id"]),
            None,
        )
        .await;
    assert_eq!(done["state"], "succeeded", "{done}");
}

#[tokio::test]
async fn a_failing_canary_is_rolled_back_by_its_analysis_and_gets_no_more_requests() {
    let home = tempfile::tempdir().unwrap();
    let env = started(&home.path().join("home")).await;
    // No analysis named: the default guard (error ratio above 5% over 10 s) runs.
    let steps = json!([{"setWeight": 50}, {"pause": {"duration": "60s"}}, {"setWeight": 100}]);
    stable_v1(&env, steps.clone(), true).await;
    let running = Arc::new(AtomicBool::new(true));
    let traffic = env.traffic(running.clone());

    let (s, task) = env
        .call(
            Method::PUT,
            "/api/v1/services/echo",
            Some(manifest("2", steps, true)),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{task}");
    assert_eq!(task["kind"], "rolloutStep");
    env.rollout_when("the canary at 50%", Duration::from_secs(60), |r| {
        r["weight"] == 50
    })
    .await;
    let aborted = env
        .rollout_when("the abort", Duration::from_secs(40), |r| {
            r["phase"] == "Degraded"
        })
        .await;
    let aborted_at = Instant::now();
    assert_eq!(aborted["weight"], 0);
    assert!(
        aborted["message"]
            .as_str()
            .unwrap()
            .starts_with("metric error-ratio failed at step 1: 1"),
        "{aborted}"
    );
    let (_, service) = env.call(Method::GET, "/api/v1/services/echo", None).await;
    assert_eq!(
        service["spec"]["versions"],
        json!([{"version": "1", "weight": 100}])
    );
    let summary = &service["status"]["rollout"];
    assert_eq!(summary["phase"], "Degraded", "{service}");
    assert!(
        summary["lastAnalysis"]
            .as_str()
            .unwrap()
            .starts_with("error-ratio = 1 (stable "),
        "{service}"
    );
    // Let traffic run on, then look at who answered after the abort.
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.store(false, Ordering::Relaxed);
    let seen = traffic.await.unwrap();
    let canary_before = seen.iter().filter(|(_, v, _)| v == "2").count();
    assert!(
        canary_before > 0,
        "the canary took part of the traffic first"
    );
    // A request in flight at the abort may still end at the canary; none sent a second later.
    let late: Vec<_> = seen
        .iter()
        .filter(|(at, v, _)| *at > aborted_at + Duration::from_secs(1) && v == "2")
        .collect();
    assert!(
        late.is_empty(),
        "requests reached the canary after the abort: {late:?}"
    );
    let after: Vec<_> = seen
        .iter()
        .filter(|(at, ..)| *at > aborted_at + Duration::from_secs(1))
        .collect();
    assert!(
        !after.is_empty() && after.iter().all(|(_, v, s)| v == "1" && *s == 200),
        "{after:?}"
    );
    let (_, task) = env
        .call(
            Method::GET,
            &format!("/api/v1/tasks/{}?wait=30s", task["id"]),
            None,
        )
        .await;
    assert_eq!(task["state"], "succeeded", "{task}");
}

#[tokio::test]
async fn a_healthy_canary_goes_10_then_50_waits_to_be_promoted_and_becomes_stable() {
    let home = tempfile::tempdir().unwrap();
    let env = started(&home.path().join("home")).await;
    let guard = json!({"analysis": {"metrics": [{
        "name": "errors", "interval": "10s",
        "successCondition": "result <= 0.05",
        "provider": {"gateway": {"metric": "errorRatio"}},
    }]}});
    let steps =
        json!([{"setWeight": 10}, guard, {"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]);
    stable_v1(&env, steps.clone(), false).await;
    let healthy = manifest("2", steps, false);
    let running = Arc::new(AtomicBool::new(true));
    let traffic = env.traffic(running.clone());
    let (s, task) = env
        .call(Method::PUT, "/api/v1/services/echo", Some(healthy.clone()))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{task}");
    env.rollout_when("the canary at 10%", Duration::from_secs(60), |r| {
        r["weight"] == 10
    })
    .await;
    let paused = env
        .rollout_when("the open pause at 50%", Duration::from_secs(60), |r| {
            r["weight"] == 50 && r["phase"] == "Paused"
        })
        .await;
    assert_eq!(paused["step"], 3, "{paused}");
    let measured = &paused["analysis"][0]["measurements"][0];
    assert_eq!(measured["phase"], "Successful", "{paused}");
    assert_eq!(measured["value"], 0.0, "{paused}");
    // The versions may not change while it runs; the canary alone again is no change.
    let mut other = healthy.clone();
    other["spec"]["versions"] = json!([{"version": "1", "weight": 100}]);
    let (s, refused) = env
        .call(Method::PUT, "/api/v1/services/echo", Some(other))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("promote or abort"),
        "{refused}"
    );
    // The first rollout task ended, waiting for a user; promote starts another.
    let (_, first) = env
        .call(
            Method::GET,
            &format!("/api/v1/tasks/{}?wait=10s", task["id"]),
            None,
        )
        .await;
    assert_eq!(first["state"], "succeeded", "{first}");
    // The CLI shows it as the Argo Rollouts plugin would, and promotes it.
    let status = env.cli(&["rollout", "status", "echo"]);
    assert!(status.contains("Status:   Paused\n"), "{status}");
    assert!(status.contains("Canary:   2 at 50%\n"), "{status}");
    assert!(
        status.contains("  now  3: pause until promoted\n"),
        "{status}"
    );
    assert!(
        status.contains("Analysis: step 1 errors = 0 (stable 0): Successful"),
        "{status}"
    );
    let promoted = env.cli(&["rollout", "promote", "echo"]);
    assert!(promoted.contains("Status:   Healthy\n"), "{promoted}");
    let (_, service) = env.call(Method::GET, "/api/v1/services/echo", None).await;
    assert_eq!(
        service["spec"]["versions"],
        json!([{"version": "2", "weight": 100}])
    );
    // promoteToProduction: the registry says so too.
    let (_, version) = env
        .call(Method::GET, "/api/v1/models/echo/versions/2", None)
        .await;
    assert_eq!(version["stage"], "production", "{version}");
    let (s, again) = env
        .call(Method::POST, "/api/v1/services/echo/rollout/abort", None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{again}");
    // Every request was answered; once only version 2 is listed, only it answers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.store(false, Ordering::Relaxed);
    let seen = traffic.await.unwrap();
    assert!(seen.iter().all(|(_, _, s)| *s == 200), "{seen:?}");
    assert!(seen.iter().any(|(_, v, _)| v == "2"));
    let (_, tasks) = env
        .call(Method::GET, "/api/v1/tasks?kind=rolloutStep", None)
        .await;
    assert_eq!(tasks["items"].as_array().unwrap().len(), 2, "{tasks}");
}

#[tokio::test]
async fn a_canary_three_times_slower_than_the_stable_version_is_caught_by_its_latency_analysis() {
    let home = tempfile::tempdir().unwrap();
    let env = started(&home.path().join("home")).await;
    // Judged against the stable version as baseline, not a fixed number.
    let latency = json!({"analysis": {"metrics": [{"name": "latency", "interval": "10s",
        "successCondition": "result <= baseline * 2",
        "provider": {"gateway": {"metric": "latencyP95"}}}]}});
    let steps = json!([{"setWeight": 50}, latency, {"setWeight": 100}]);
    // Version 1 answers in 40 ms and more, version 2 in 120 ms and more.
    let slow = |version: &str| {
        let mut m = manifest(version, steps.clone(), false);
        m["spec"]["env"] = json!([{"name": "DELAY_MS", "value": "1:40,2:120"}]);
        m
    };
    let task = env
        .start_task(Method::POST, "/api/v1/services", Some(slow("1")))
        .await;
    assert_eq!(env.final_task(&task["id"]).await["state"], "succeeded");
    let running = Arc::new(AtomicBool::new(true));
    let traffic = env.traffic(running.clone());
    let task = env
        .start_task(Method::PUT, "/api/v1/services/echo", Some(slow("2")))
        .await;
    assert_eq!(task["kind"], "rolloutStep");
    let aborted = env
        .rollout_when("the abort", Duration::from_secs(60), |r| {
            r["phase"] == "Degraded" || r["phase"] == "Healthy"
        })
        .await;
    running.store(false, Ordering::Relaxed);
    traffic.await.unwrap();
    assert_eq!(aborted["phase"], "Degraded", "{aborted}");
    assert!(
        aborted["message"]
            .as_str()
            .unwrap()
            .starts_with("metric latency failed at step 1"),
        "{aborted}"
    );
    let measured = &aborted["analysis"][0]["measurements"][0];
    let (canary, stable) = (
        measured["value"].as_f64().unwrap(),
        measured["baseline"].as_f64().unwrap(),
    );
    assert!(
        stable >= 0.04 && canary >= 0.12 && canary > 2.0 * stable,
        "{aborted}"
    );
    let (_, service) = env.call(Method::GET, "/api/v1/services/echo", None).await;
    assert_eq!(
        service["spec"]["versions"],
        json!([{"version": "1", "weight": 100}])
    );
}

#[tokio::test]
async fn bad_rollouts_are_refused_with_their_paths_and_store_nothing() {
    let home = tempfile::tempdir().unwrap();
    let env = started(&home.path().join("home")).await;
    let steps = json!([
        {"setWeight": 50}, {"setWeight": 10}, {"setWeight": 101},
        {"pause": {"duration": "-1s"}},
        {"analysis": {"metrics": [
            {"name": "p95", "interval": "-10s", "failureCondition": "result >> 1", "provider": {"gateway": {"metric": "latencyP95"}}},
            {"name": "gpu", "successCondition": "result < 1", "provider": {"gateway": {"metric": "gpuUtilisation"}}},
        ]}},
    ]);
    let (s, refused) = env
        .call(
            Method::POST,
            "/api/v1/services",
            Some(manifest("1", steps, false)),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let paths: Vec<&str> = refused["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "spec.rollout.steps[1].setWeight",
            "spec.rollout.steps[2].setWeight",
            "spec.rollout.steps[3].pause.duration",
            "spec.rollout.steps[4].analysis.metrics[0].interval",
            "spec.rollout.steps[4].analysis.metrics[0].failureCondition",
            "spec.rollout.steps[4].analysis.metrics[1].provider.gateway.metric",
        ]
    );
    let (s, _) = env.call(Method::GET, "/api/v1/services/echo", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, none) = env
        .call(Method::POST, "/api/v1/services/echo/rollout/pause", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{none}");
}

#[tokio::test]
async fn a_manual_pause_holds_across_a_restart_of_autoglm_up() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let env = started(&home).await;
    let guard = json!({"analysis": {"metrics": [{"name": "errors", "successCondition": "result < 0.05",
                                                 "provider": {"gateway": {"metric": "errorRatio"}}}]}});
    let steps =
        json!([{"setWeight": 30}, {"pause": {"duration": "1h"}}, guard, {"setWeight": 100}]);
    stable_v1(&env, steps.clone(), false).await;
    let (s, task) = env
        .call(
            Method::PUT,
            "/api/v1/services/echo",
            Some(manifest("2", steps, false)),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{task}");
    env.rollout_when("the timed pause at 30%", Duration::from_secs(60), |r| {
        r["weight"] == 30 && r["phase"] == "Paused"
    })
    .await;
    let (s, paused) = env
        .call(Method::POST, "/api/v1/services/echo/rollout/pause", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{paused}");
    assert_eq!(paused["pausedByUser"], true);

    // autoglm up stops and starts again on the same home.
    let Local { up, http, files } = env;
    drop(up);
    let env = Local {
        up: common::Up::start(&home, &[]),
        http,
        files,
    };
    let after = env
        .rollout_when("the rollout read back", Duration::from_secs(30), |r| {
            r["phase"] == "Paused"
        })
        .await;
    assert_eq!(after["pausedByUser"], true, "{after}");
    assert_eq!(after["weight"], 30, "{after}");
    let (_, service) = env.call(Method::GET, "/api/v1/services/echo", None).await;
    assert_eq!(
        service["spec"]["versions"],
        json!([{"version": "1", "weight": 70}, {"version": "2", "weight": 30}])
    );
    // Resumed, the timed pause goes on; promoted mid-pause, the canary takes over.
    let (s, resumed) = env
        .call(Method::POST, "/api/v1/services/echo/rollout/resume", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["pausedByUser"], false);
    assert_eq!(resumed["step"], 1, "{resumed}");
    let (s, promoted) = env
        .call(Method::POST, "/api/v1/services/echo/rollout/promote", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{promoted}");
    assert_eq!(promoted["phase"], "Healthy");
    let (_, service) = env.call(Method::GET, "/api/v1/services/echo", None).await;
    assert_eq!(
        service["spec"]["versions"],
        json!([{"version": "2", "weight": 100}])
    );
}
