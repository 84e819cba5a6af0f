//! Under load: a replica killed, a rolling update, a scale from zero, and
//! `autoglm up` killed outright.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

use crate::common;
use crate::env::{Env, one_version};

/// Runs `workers` clients in a loop until `stop`; counts (ok, failed) and the versions seen.
fn load(
    env: &Env,
    key: &str,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, u64, HashMap<String, u64>)> {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (http, gw, key) = (env.http.clone(), env.up.gateway.clone(), key.to_owned());
        let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let mut seen = HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                let r = http
                    .post(format!("{gw}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .header("x-test-delay-ms", "20")
                    .json(&json!({"model": "echo", "messages": []}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == StatusCode::OK => {
                        *seen
                            .entry(
                                r.headers()["x-autoglm-version"]
                                    .to_str()
                                    .unwrap()
                                    .to_owned(),
                            )
                            .or_insert(0) += 1;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        eprintln!(
                            "failed: {} {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        );
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            seen
        }));
    }
    tokio::spawn(async move {
        let mut seen = HashMap::new();
        for h in handles {
            for (v, n) in h.await.unwrap() {
                *seen.entry(v).or_insert(0) += n;
            }
        }
        (
            ok.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            seen,
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_replica_stops_when_autoglm_up_is_killed_outright() {
    let mut env = Env::with_echo(&[], 1, one_version(1), 1).await;
    // The platform runs the command under `autoglm supervise`: the replica's
    // pid is the supervisor's, the upstream program its child. (Read again
    // while a replica that failed to start on a loaded machine is replaced:
    // its program has exited, and until it is reaped its cmdline reads empty.)
    let cmdline =
        |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (supervisor, programs) = loop {
        let status = env.wait_ready(1).await;
        let ready = status["replicas"].as_array().unwrap().iter();
        let ready = ready.filter(|r| r["state"] == "ready").collect::<Vec<_>>();
        let supervisor = ready[0]["pid"].as_u64().unwrap().to_string();
        let programs = common::children(&supervisor);
        let settled = programs.len() == 1 && cmdline(&programs[0]).contains("openai_upstream.py");
        if settled || Instant::now() > deadline {
            break (supervisor, programs);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        programs.len(),
        1,
        "one program under the supervisor: {programs:?}"
    );
    let program = programs[0].clone();
    assert!(
        cmdline(&program).contains("openai_upstream.py"),
        "the supervisor's child runs the command: {:?}",
        cmdline(&program)
    );
    // SIGKILL: `up` cannot stop anything itself.
    env.up.console.child.kill().unwrap();
    env.up.console.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(common::exited(&program) && common::exited(&supervisor)) {
        assert!(
            Instant::now() < deadline,
            "the command replica (supervisor {supervisor}, program {program}) outlived its platform"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_replica_under_load_fails_almost_nothing_and_it_comes_back() {
    let env = Env::with_echo(&[], 1, one_version(2), 2).await;
    let status = env.wait_ready(2).await;
    let victim = status["replicas"][0]["pid"].as_u64().unwrap();
    let victim_id = status["replicas"][0]["id"].as_str().unwrap().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(&env, &env.up.console.token, 4, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The whole replica: its supervisor leads a process group with the
    // program in it. Killing the supervisor alone would leave the program
    // running, orphaned, still answering on the replica's port.
    let killed = std::process::Command::new("kill")
        .args(["-9", "--", &format!("-{victim}")])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed, _) = running.await.unwrap();
    let total = ok + failed;
    assert!(total > 300, "only {total} requests");
    assert!(
        (failed as f64) < 0.005 * total as f64,
        "{failed} of {total} failed"
    );
    // The platform restarts it.
    let status = env.wait_ready(2).await;
    let restarted = status["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == victim_id.as_str())
        .unwrap();
    assert!(restarted["restarts"].as_u64().unwrap() >= 1, "{status}");

    // Its log, through the API, shows both starts.
    let logs = |replica: &str, query: &str| {
        env.http
            .get(env.up.console.api(&format!(
                "/api/v1/services/echo/replicas/{replica}/logs{query}"
            )))
            .bearer_auth(&env.up.console.token)
            .send()
    };
    let r = logs(&victim_id, "").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert!(text.matches("--- autoglm: starting").count() >= 2, "{text}");
    let tail = logs(&victim_id, "?bytes=10")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(tail.len(), 10, "{tail:?}");
    assert_eq!(
        logs("default.other-1-1", "").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        logs("default.echo-..%2F..%2Fetc", "")
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        logs(&victim_id, "?bytes=0").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_version_update_under_load_fails_no_request() {
    let env = Env::with_echo(&[], 2, one_version(2), 2).await;
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(&env, &env.up.console.token, 4, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, current) = env
        .console(reqwest::Method::GET, "/api/v1/services/echo", None)
        .await;
    let mut manifest = current.clone();
    manifest.as_object_mut().unwrap().remove("status");
    manifest["spec"]["versions"] = json!([{"version": "2", "weight": 100}]);
    let (s, b) = env
        .console(
            reqwest::Method::PUT,
            "/api/v1/services/echo",
            Some(manifest),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    // Until only version 2 runs, then a little longer.
    env.wait_for("only version 2", Duration::from_secs(30), |b| {
        b["status"]["replicas"].as_array().is_some_and(|r| {
            !r.is_empty()
                && r.iter()
                    .all(|r| r["version"] == "2" && r["state"] == "ready")
        })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed, seen) = running.await.unwrap();
    assert_eq!(failed, 0, "{failed} of {} failed", ok + failed);
    assert!(
        seen.get("1").copied().unwrap_or(0) > 0 && seen.get("2").copied().unwrap_or(0) > 0,
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_scaled_to_zero_serves_its_first_request_and_bounds_the_queue() {
    let env = Env::with_echo(
        &["--max-waiting", "3", "--hold-timeout", "30"],
        1,
        json!({"versions": [{"version": "1", "weight": 100}],
               "autoscaling": {"minReplicas": 0, "maxReplicas": 3, "targetInFlight": 1,
                               "scaleToZeroAfter": "2s", "scaleDownStabilization": "1s"}}),
        1,
    )
    .await;
    // Idle: down to zero.
    env.wait_for("scale to zero", Duration::from_secs(20), |b| {
        b["status"]["desiredReplicas"] == 0
            && b["status"]["replicas"]
                .as_array()
                .is_none_or(|r| r.iter().all(|r| r["state"] == "stopped"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let token = env.up.console.token.clone();
    // Six at once against a queue of three: three wait and are served, three are refused.
    let started = Instant::now();
    let answers: Vec<(StatusCode, Option<String>)> = futures_util::stream::iter(0..6)
        .map(|_| {
            let req = env.chat(&token, "echo");
            async move {
                let r = req.send().await.unwrap();
                (
                    r.status(),
                    r.headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_owned()),
                )
            }
        })
        .buffer_unordered(6)
        .collect()
        .await;
    let first = started.elapsed();
    let served = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let refused: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert_eq!(served, 3, "{answers:?}");
    assert_eq!(refused.len(), 3, "{answers:?}");
    assert!(refused.iter().all(|(_, retry)| retry.is_some()));
    assert!(
        first < Duration::from_secs(10),
        "first answer from zero took {first:?}"
    );
    eprintln!("time to first response from zero: {first:?}");

    // Back down, then a load step: 3 requests in flight at a target of 1
    // ask for 3 replicas within 2 s.
    env.wait_for("scale down", Duration::from_secs(20), |b| {
        b["status"]["desiredReplicas"]
            .as_u64()
            .is_some_and(|d| d <= 1)
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let step = Instant::now();
    let running = load(&env, &token, 3, stop.clone());
    let decided = loop {
        let (_, b) = env
            .console(reqwest::Method::GET, "/api/v1/services/echo", None)
            .await;
        if b["status"]["desiredReplicas"].as_u64() == Some(3) {
            break step.elapsed();
        }
        assert!(
            step.elapsed() < Duration::from_secs(5),
            "no scale-up decision: {b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, Ordering::Relaxed);
    let (_, failed, _) = running.await.unwrap();
    assert_eq!(failed, 0);
    assert!(
        decided < Duration::from_secs(2),
        "scale-up decided after {decided:?}"
    );
    eprintln!("scale-up decision after a load step: {decided:?}");
}
