//! Tasks on the local platform, with real replicas (the OpenAI fixture as a
//! command runtime): a deploy, restart, scale and delete each end when the
//! platform has done the change (every new replica ready, every old one
//! gone); a deploy that never gets ready is cancelled and leaves nothing
//! behind; a service the platform refuses fails its task with the reason;
//! and a task cut short by `kill -9` of `autoglm up` resumes when it starts
//! again, and succeeds once.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Local, UPSTREAM, Up, exited, replica_ids};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn manifest(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService",
           "metadata": {"name": name}, "spec": spec})
}

/// `echo` on the fixture, `replicas` replicas, each ready `delay_ms` after it starts.
fn echo(replicas: u32, delay_ms: u32) -> Value {
    json!({
        "model": "echo",
        "versions": [{"version": "1", "weight": 100}],
        "replicas": replicas,
        "runtime": {"command": {"command": ["python3", UPSTREAM, "{port}", "{version}", "{name}"]}},
        "env": [{"name": "START_DELAY_MS", "value": delay_ms.to_string()}],
    })
}

fn pids(status: &Value) -> Vec<String> {
    status["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["pid"].as_u64())
        .map(|p| p.to_string())
        .collect()
}

#[tokio::test]
async fn each_change_is_a_task_that_ends_when_the_platform_has_done_it() {
    let home = tempfile::tempdir().unwrap();
    let env = Local::start(&home.path().join("home"));
    env.echo_model(1).await;

    // A deploy runs while the replicas start, and ends when both are ready.
    let deploy = env
        .start_task(
            Method::POST,
            "/api/v1/services",
            Some(manifest("echo", echo(2, 1500))),
        )
        .await;
    assert_eq!(deploy["kind"], "deploy");
    let running = env
        .task_when(&deploy["id"], Duration::from_secs(20), |t| {
            t["state"] != "pending"
        })
        .await;
    assert_eq!(running["state"], "running", "{running}");
    let done = env.final_task(&deploy["id"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let status = &done["result"]["status"];
    assert_eq!(status["readyReplicas"], 2, "{done}");
    assert_eq!(status["observedGeneration"], 1, "{done}");
    let (_, service) = env.call(Method::GET, "/api/v1/services/echo", None).await;
    assert_eq!(service["status"]["readyReplicas"], 2);
    let first = replica_ids(status);
    let first_pids = pids(status);

    // A restart ends only once every replica was replaced.
    let restart = env
        .start_task(Method::POST, "/api/v1/services/echo/restart", None)
        .await;
    let done = env.final_task(&restart["id"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let status = &done["result"]["status"];
    let second = replica_ids(status);
    assert_eq!(second.len(), 2, "{done}");
    assert!(
        second.iter().all(|id| !first.contains(id)),
        "{first:?} {second:?}"
    );
    for pid in &first_pids {
        assert!(
            exited(pid),
            "replica {pid} of before the restart still runs"
        );
    }

    // A scale down ends with the surplus replica stopped.
    let scale = env
        .start_task(
            Method::POST,
            "/api/v1/services/echo/scale",
            Some(json!({"replicas": 1})),
        )
        .await;
    assert_eq!(scale["kind"], "scale");
    let done = env.final_task(&scale["id"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["status"]["desiredReplicas"], 1, "{done}");
    assert_eq!(replica_ids(&done["result"]["status"]).len(), 1, "{done}");

    // A delete ends when its replicas are gone.
    let (_, service) = env.call(Method::GET, "/api/v1/services/echo", None).await;
    let last_pids = pids(&service["status"]);
    let delete = env
        .start_task(Method::DELETE, "/api/v1/services/echo", None)
        .await;
    let done = env.final_task(&delete["id"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    for pid in &last_pids {
        assert!(
            exited(pid),
            "replica {pid} still runs after its delete task ended"
        );
    }
}

#[tokio::test]
async fn a_deploy_that_never_gets_ready_is_cancelled_and_a_refused_one_fails() {
    let home = tempfile::tempdir().unwrap();
    let env = Local::start(&home.path().join("home"));
    env.echo_model(1).await;

    // Its replica runs but never listens.
    let mut never = echo(1, 0);
    never["runtime"] = json!({"command": {"command": ["python3", "-c", "import time; time.sleep(600)", "{port}"]}});
    let deploy = env
        .start_task(
            Method::POST,
            "/api/v1/services",
            Some(manifest("stuck", never)),
        )
        .await;
    let running = env
        .task_when(&deploy["id"], Duration::from_secs(20), |t| {
            t["state"] == "running" && t["progress"]["message"].as_str().unwrap().contains("ready")
        })
        .await;
    assert_eq!(running["progress"]["percent"], 0, "{running}");
    let (_, service) = env.call(Method::GET, "/api/v1/services/stuck", None).await;
    let stuck_pids = pids(&service["status"]);
    assert_eq!(stuck_pids.len(), 1, "{service}");

    let (s, cancelling) = env
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{}/cancel", deploy["id"]),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{cancelling}");
    let done = env.final_task(&deploy["id"]).await;
    assert_eq!(done["state"], "cancelled", "{done}");
    assert_eq!(
        done["progress"]["message"],
        "cancelled: the service is back as it was before this task"
    );
    let (s, _) = env.call(Method::GET, "/api/v1/services/stuck", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stuck_pids.iter().all(|p| exited(p)) {
        assert!(
            Instant::now() < deadline,
            "the cancelled deploy's replica still runs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An image runtime cannot run here: its task fails with the platform's reason.
    let image = json!({"model": "echo", "versions": [{"version": "1", "weight": 100}],
                       "runtime": {"image": {"image": "vllm/vllm-openai:v0.6.0", "port": 8000}}});
    let refused = env
        .start_task(
            Method::POST,
            "/api/v1/services",
            Some(manifest("gpu", image)),
        )
        .await;
    let done = env.final_task(&refused["id"]).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "refused", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("NeedsKubernetes: "),
        "{done}"
    );
    assert_eq!(done["attempt"], 1, "a refusal is not retried: {done}");
}

#[tokio::test]
async fn a_task_cut_short_by_kill_9_resumes_and_succeeds_once() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let env = Local::start(&home);
    env.echo_model(1).await;
    let deploy = env
        .start_task(
            Method::POST,
            "/api/v1/services",
            Some(manifest("echo", echo(1, 3000))),
        )
        .await;
    env.task_when(&deploy["id"], Duration::from_secs(20), |t| {
        t["state"] == "running"
    })
    .await;
    env.up.console.signal("KILL");
    let Local { up, http, files } = env;
    drop(up);

    let env = Local {
        up: Up::start(&home, &[]),
        http,
        files,
    };
    let done = env.final_task(&deploy["id"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempt"], 2, "{done}");
    assert_eq!(done["result"]["status"]["readyReplicas"], 1, "{done}");
    let (_, audit) = env
        .call(
            Method::GET,
            &format!("/api/v1/audit?target=tasks/{}", deploy["id"]),
            None,
        )
        .await;
    let mut actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["target"] == format!("tasks/{}", deploy["id"]))
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    actions.reverse();
    assert_eq!(
        actions,
        [
            "tasks.start",
            "tasks.resume",
            "tasks.start",
            "tasks.succeed"
        ]
    );
    // One replica, not one per run.
    let (_, service) = env.call(Method::GET, "/api/v1/services/echo", None).await;
    assert_eq!(
        service["status"]["replicas"].as_array().unwrap().len(),
        1,
        "{service}"
    );
}
