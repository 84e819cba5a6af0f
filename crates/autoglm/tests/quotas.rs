//! Tenant quotas on the local platform, with real replicas (the OpenAI
//! fixture as a command runtime): a replica starts only while its tenant's
//! replica, CPU and memory quotas have room; the refused one is reported in
//! the service's status with the quota and what is left; the quota API
//! shows what the tenant holds; raising the quota lets the replica start
//! and the deploy's task succeed.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Local, UPSTREAM, replica_ids};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn echo(replicas: u32) -> Value {
    json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService",
           "metadata": {"name": "echo"}, "spec": {
        "model": "echo",
        "versions": [{"version": "1", "weight": 100}],
        "replicas": replicas,
        "resources": {"cpu": "1", "memory": "1Gi"},
        "runtime": {"command": {"command": ["python3", UPSTREAM, "{port}", "{version}", "{name}"]}},
    }})
}

async fn set_quota(local: &Local, quota: Value) {
    let (s, b) = local
        .call(Method::PUT, "/api/v1/tenants/default/quota", Some(quota))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

/// The service's status once `done` holds of it (within a minute).
async fn status_when(local: &Local, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, service) = local.call(Method::GET, "/api/v1/services/echo", None).await;
        assert_eq!(s, StatusCode::OK, "{service}");
        if done(&service["status"]) {
            return service["status"].clone();
        }
        assert!(Instant::now() < deadline, "{what}: {service}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn quota_refusal(status: &Value) -> Option<String> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "ReplicaFailure" && c["reason"] == "QuotaExceeded")
        .map(|c| c["message"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_replica_starts_only_within_its_tenants_quota() {
    let home = tempfile::tempdir().unwrap();
    let local = Local::start(home.path());
    local.echo_model(1).await;

    // Bad quotas are refused field by field and change nothing.
    let (s, problem) = local
        .call(
            Method::PUT,
            "/api/v1/tenants/default/quota",
            Some(json!({"cpu": "lots", "replicas": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["path"], "cpu");
    let (_, quota) = local.call(Method::GET, "/api/v1/quota", None).await;
    assert_eq!(quota["quota"], json!({}));

    set_quota(
        &local,
        json!({"replicas": 1, "cpu": "1500m", "memory": "4Gi"}),
    )
    .await;
    let task = local
        .start_task(Method::POST, "/api/v1/services", Some(echo(2)))
        .await;

    let status = status_when(&local, "one replica ready, one refused", |s| {
        s["readyReplicas"] == 1 && quota_refusal(s).is_some()
    })
    .await;
    assert_eq!(
        quota_refusal(&status).unwrap(),
        "a replica of version 1 was not started: over the tenant's replicas quota: \
         the replica needs 1, and 0 of 1 is left (1 in use)"
    );
    let (_, quota) = local.call(Method::GET, "/api/v1/quota", None).await;
    assert_eq!(quota["tenant"], "default");
    assert_eq!(
        quota["used"],
        json!({"cpu": "1", "memory": "1Gi", "gpus": 0, "replicas": 1,
               "tokens_today": 0, "tokens_this_month": 0})
    );

    // Room for another replica, but not for its CPU.
    set_quota(
        &local,
        json!({"replicas": 3, "cpu": "1500m", "memory": "4Gi"}),
    )
    .await;
    let status = status_when(&local, "refused by the CPU quota", |s| {
        quota_refusal(s).is_some_and(|m| m.contains("cpu quota"))
    })
    .await;
    assert_eq!(
        quota_refusal(&status).unwrap(),
        "a replica of version 1 was not started: over the tenant's cpu quota: \
         the replica needs 1, and 500m of 1500m is left (1 in use)"
    );

    // Enough of everything: the second replica starts, the task ends well.
    set_quota(&local, json!({"replicas": 3, "cpu": "2", "memory": "4Gi"})).await;
    let status = status_when(&local, "both replicas ready", |s| {
        s["readyReplicas"] == 2 && quota_refusal(s).is_none()
    })
    .await;
    assert_eq!(status["replicas"].as_array().unwrap().len(), 2);
    let done = local.final_task(&task["id"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let (_, quota) = local.call(Method::GET, "/api/v1/quota", None).await;
    assert_eq!(quota["used"]["cpu"], "2");
    assert_eq!(quota["used"]["replicas"], 2);

    // At full quota a restart still goes through: an old replica makes room.
    set_quota(&local, json!({"replicas": 2, "cpu": "2", "memory": "4Gi"})).await;
    let before = replica_ids(&status);
    let restart = local
        .start_task(Method::POST, "/api/v1/services/echo/restart", None)
        .await;
    let done = local.final_task(&restart["id"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let after = replica_ids(&done["result"]["status"]);
    assert_eq!(after.len(), 2, "{done}");
    assert!(
        after.iter().all(|id| !before.contains(id)),
        "{before:?} -> {after:?}"
    );

    // A lowered quota stops nothing that runs: a scale-up is refused with
    // both replicas still counted and ready.
    set_quota(&local, json!({"replicas": 1})).await;
    let (s, b) = local
        .call(
            Method::POST,
            "/api/v1/services/echo/scale",
            Some(json!({"replicas": 3})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let status = status_when(&local, "the scale-up refused", |s| {
        quota_refusal(s).is_some_and(|m| m.contains("replicas quota"))
    })
    .await;
    assert_eq!(
        quota_refusal(&status).unwrap(),
        "a replica of version 1 was not started: over the tenant's replicas quota: \
         the replica needs 1, and 0 of 1 is left (2 in use)"
    );
    assert_eq!(status["readyReplicas"], 2);
    // Deleting gives the room back.
    let task = local
        .start_task(Method::DELETE, "/api/v1/services/echo", None)
        .await;
    assert_eq!(local.final_task(&task["id"]).await["state"], "succeeded");
    let (_, quota) = local.call(Method::GET, "/api/v1/quota", None).await;
    assert_eq!(quota["used"]["replicas"], 0);
    assert_eq!(quota["used"]["cpu"], "0");
}
