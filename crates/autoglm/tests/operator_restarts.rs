//! `autoglm operator` survives what clusters do to controllers, against a
//! real control plane of its own (this binary restarts its API server, so it
//! shares it with no other test): the operator killed in the middle of a
//! rollout is replaced by another that waits out the dead one's lease and
//! converges; the API server killed and restarted under a running operator
//! is ridden out, and the next change still rolls out within a minute
//! (kube-runtime's shared trigger backoff once stalled it for many).
#![allow(clippy::unwrap_used)]

mod cluster;

use std::time::{Duration, Instant};

use cluster::{ControlPlane, Operator, model_service};
use serde_json::Value;

fn ready(status: &Value) -> bool {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .is_some_and(|c| c["status"] == "True")
}

#[test]
fn a_killed_operator_is_replaced_and_an_api_server_restart_is_ridden_out() {
    let plane = ControlPlane::with_crd();
    let ns = plane.namespace("restarts");
    let lease = || plane.get_json(&["lease", "autoglm-operator", "-n", &ns])["spec"].clone();
    let object = || plane.get_json(&["ms", "chat", "-n", &ns]);

    // The first operator takes the lease, starts the rollout, and is killed.
    let mut first = Operator::start(plane, &ns, &["--lease-duration", "6"]);
    plane.wait_until("the first operator leads", Duration::from_secs(30), || {
        plane
            .kubectl_with(&["get", "lease", "autoglm-operator", "-n", &ns], "")
            .status
            .success()
    });
    let first_holder = lease()["holderIdentity"].clone();
    plane.apply(&model_service(
        &ns,
        "chat",
        r#"{model: smollm2, versions: [{version: "1", weight: 50}, {version: "2", weight: 50}], replicas: 2}"#,
    ));
    plane.wait_until("the rollout has begun", Duration::from_secs(30), || {
        plane
            .kubectl_with(&["get", "deployment", "chat-1", "-n", &ns], "")
            .status
            .success()
    });
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    // Its successor waits for the lease a dead leader cannot renew, then converges.
    let killed = Instant::now();
    // (Its own lease lasts longer, to outlast the API server restart below.)
    let second = Operator::start(plane, &ns, &["--lease-duration", "20"]);
    plane.wait_until(
        "the second operator takes the lease",
        Duration::from_secs(30),
        || lease()["holderIdentity"] != first_holder,
    );
    let waited = killed.elapsed();
    assert!(
        waited >= Duration::from_secs(5),
        "the lease changed hands after {waited:?}, before the dead leader's lease ran out"
    );
    assert_eq!(lease()["leaseTransitions"], 1);
    plane.wait_until(
        "chat Ready with 4 replicas",
        Duration::from_secs(60),
        || {
            let s = &object()["status"];
            ready(s) && s["readyReplicas"] == 4
        },
    );

    // The API server dies and comes back; the operator keeps its lease and
    // its watches, and a change made afterwards still rolls out.
    plane.restart_apiserver();
    plane.apply(&model_service(
        &ns,
        "chat",
        r#"{model: smollm2, versions: [{version: "3", weight: 100}], replicas: 2}"#,
    ));
    // (Readiness is not waited for here: kwok's fake nodes miss heartbeats
    // across the restart, and the node controller may mark their pods not
    // ready, which the status then rightly reports.)
    plane.wait_until(
        "version 3 rolled out and versions 1 and 2 pruned after the restart",
        Duration::from_secs(60),
        || {
            let ms = object();
            let s = &ms["status"];
            s["observedGeneration"] == ms["metadata"]["generation"]
                && s["desiredReplicas"] == 2
                && s["versions"][0]["version"] == "3"
                && s["versions"].as_array().is_some_and(|v| v.len() == 1)
                && plane
                    .kubectl(&["get", "deployments", "-n", &ns, "-o", "name"])
                    .trim()
                    == "deployment.apps/chat-3"
        },
    );
    let mut second = second;
    assert!(
        second.child.try_wait().unwrap().is_none(),
        "the operator exited across the API server restart"
    );
    assert_eq!(second.metric("autoglm_operator_leader", ""), 1.0);
}
