//! autoglm against a real Kubernetes control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, kwok for the nodes), built and
//! started by `scripts/k8s.sh`: the CRD `autoglm crd` prints is served and
//! refuses invalid specs in words, and what `autoglm render` prints is
//! accepted by the API server and really rolls out.
#![allow(clippy::unwrap_used)]

mod cluster;

use std::path::Path;
use std::time::Duration;

use cluster::{ControlPlane, Operator, autoglm, model_service};
use serde_json::Value;

fn spec_path(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../autoglm-render/tests/specs")
        .join(name)
        .display()
        .to_string()
}

fn plane() -> &'static ControlPlane {
    ControlPlane::with_crd()
}

#[test]
fn the_crd_is_served_and_refuses_invalid_specs_in_words() {
    let plane = plane();
    let ns = plane.namespace("crd-rules");
    let valid = model_service(
        &ns,
        "chat",
        r#"{model: smollm2, versions: [{version: "3", weight: 90}, {version: "4", weight: 10}], replicas: 2}"#,
    );
    let output = plane.kubectl_with(&["apply", "-f", "-"], &valid);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed = plane.kubectl(&["get", "ms", "-n", &ns]);
    assert!(
        listed.starts_with("NAME   MODEL     READY   DESIRED   STATUS   AGE"),
        "{listed}"
    );
    assert!(listed.contains("chat   smollm2"), "{listed}");
    // The scale subresource: `kubectl scale` sets spec.replicas.
    plane.kubectl(&["scale", "ms/chat", "-n", &ns, "--replicas=3"]);
    assert_eq!(
        plane.get_json(&["ms", "chat", "-n", &ns])["spec"]["replicas"],
        3
    );

    let refused = [
        (
            r#"{model: m, versions: [{version: "1", weight: 60}, {version: "2", weight: 30}]}"#,
            "the weights of spec.versions must sum to exactly 100",
        ),
        (
            r#"{model: m, versions: [{version: "1", weight: 100}], autoscaling: {minReplicas: 5, maxReplicas: 2, targetInFlight: 1}}"#,
            "spec.autoscaling.minReplicas: Invalid value: minReplicas must not be above maxReplicas",
        ),
        (
            r#"{model: m, versions: [{version: "1", weight: 100}], replicas: -1}"#,
            "spec.replicas in body should be greater than or equal to 0",
        ),
        (
            r#"{model: m, versions: [{version: "1", weight: 100}], replicas: 2, autoscaling: {maxReplicas: 2, targetInFlight: 1}}"#,
            "replicas and autoscaling are mutually exclusive",
        ),
        (
            r#"{model: m, versions: [{version: "1", weight: 100}, {version: "1", weight: 0}]}"#,
            "each version may be listed only once",
        ),
        (
            r#"{model: m, versions: [{version: "1", weight: 100}], runtime: {command: {command: [srv, "{port}"]}}}"#,
            "runtime.command runs a program on the local platform only",
        ),
        (
            r#"{model: m, versions: []}"#,
            "spec.versions: Invalid value: 0: spec.versions in body should have at least 1 items",
        ),
    ];
    for (i, (spec, message)) in refused.iter().enumerate() {
        let output = plane.kubectl_with(
            &["apply", "-f", "-"],
            &model_service(&ns, &format!("bad-{i}"), spec),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{spec} was accepted");
        assert!(
            stderr.contains(message),
            "{spec}: expected {message:?} in {stderr}"
        );
    }
    let names = plane.kubectl(&["get", "ms", "-n", &ns, "-o", "name"]);
    assert_eq!(
        names.trim(),
        "modelservice.autoglm.io/chat",
        "a refused spec must change nothing"
    );
}

#[test]
fn every_rendered_child_passes_server_side_dry_run() {
    let plane = plane();
    let ns = plane.namespace("render-dry-run");
    for spec in ["chat.yaml", "vector-store.yaml", "triton.yaml"] {
        let rendered = autoglm(&["render", "-f", &spec_path(spec), "-n", &ns]);
        // The chat example names its own namespace; the test keeps to its own.
        let output = plane.kubectl_with(
            &["apply", "--dry-run=server", "-n", &ns, "-f", "-"],
            &rendered.replace("namespace: team-a", &format!("namespace: {ns}")),
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{spec}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let documents =
            rendered.matches("\nkind: ").count() + usize::from(rendered.starts_with("kind: "));
        assert_eq!(
            stdout.matches("(server dry run)").count(),
            documents,
            "{spec}: {stdout}"
        );
    }
    // Nothing was created by the dry runs.
    assert_eq!(
        plane
            .kubectl(&["get", "all", "-n", &ns, "-o", "name"])
            .trim(),
        ""
    );
}

fn ready_pods(plane: &ControlPlane, ns: &str, selector: &str) -> Vec<Value> {
    let pods = plane.get_json(&["pods", "-n", ns, "-l", selector]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pod| {
            pod["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .cloned()
        .collect()
}

#[test]
fn rendered_children_roll_out_pods_turn_ready_and_gpus_land_on_gpu_nodes() {
    let plane = plane();
    let ns = plane.namespace("render-rollout");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("gpu.yaml");
    std::fs::write(
        &spec,
        model_service(&ns, "chat", r#"{model: smollm2, versions: [{version: "3", weight: 50}, {version: "4", weight: 50}], replicas: 1, resources: {cpu: "1", memory: 1Gi, gpu: 1}}"#),
    )
    .unwrap();
    let rendered = autoglm(&["render", "-f", spec.to_str().unwrap()]);
    let output = plane.kubectl_with(&["apply", "-f", "-"], &rendered);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    plane.wait_until("both versions' pods Ready", Duration::from_secs(60), || {
        ready_pods(plane, &ns, "autoglm.io/model-service=chat").len() == 2
    });
    // Two GPU nodes with one GPU each: one replica on each, none elsewhere.
    let mut nodes: Vec<String> = ready_pods(plane, &ns, "autoglm.io/model-service=chat")
        .iter()
        .map(|pod| pod["spec"]["nodeName"].as_str().unwrap().to_owned())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["kwok-gpu-0", "kwok-gpu-1"]);
    for version in ["3", "4"] {
        let deployment = plane.get_json(&["deployment", &format!("chat-{version}"), "-n", &ns]);
        assert_eq!(deployment["status"]["readyReplicas"], 1, "{deployment}");
        // Each version's Service has its own endpoints: what the gateway splits on.
        let slices = plane.get_json(&[
            "endpointslices",
            "-n",
            &ns,
            "-l",
            &format!("kubernetes.io/service-name=chat-{version}"),
        ]);
        let endpoints: usize = slices["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["endpoints"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(endpoints, 1, "chat-{version}: {slices}");
    }

    // The cluster's default StorageClass (kwok's) binds the claims.
    std::fs::write(
        &spec,
        model_service(&ns, "vectors", r#"{model: minilm, versions: [{version: "1", weight: 100}], replicas: 2, stateful: {storage: 10Gi}}"#),
    )
    .unwrap();
    let stateful = autoglm(&["render", "-f", spec.to_str().unwrap()]);
    let output = plane.kubectl_with(&["apply", "-f", "-"], &stateful);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    plane.wait_until(
        "the StatefulSet's pods Ready",
        Duration::from_secs(60),
        || ready_pods(plane, &ns, "autoglm.io/model-service=vectors").len() == 2,
    );
    let claims = plane.get_json(&["pvc", "-n", &ns, "-l", "autoglm.io/model-service=vectors"]);
    let bound: Vec<&str> = claims["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"]["phase"] == "Bound")
        .filter_map(|c| c["metadata"]["name"].as_str())
        .collect();
    assert_eq!(bound.len(), 2, "{claims}");
    assert!(bound.contains(&"model-vectors-1-0"), "{bound:?}");
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

#[test]
fn the_operator_keeps_children_as_rendered_and_reports_status() {
    let plane = plane();
    let ns = plane.namespace("operator");
    let operator = Operator::start(plane, &ns, &[]);
    let apply = |spec: &str| plane.apply(&model_service(&ns, "chat", spec));
    let object = || plane.get_json(&["ms", "chat", "-n", &ns]);
    apply(r#"{model: smollm2, versions: [{version: "1", weight: 100}], replicas: 2}"#);
    plane.wait_until("status Ready with 2 of 2", Duration::from_secs(60), || {
        let s = &object()["status"];
        s["readyReplicas"] == 2 && condition(s, "Ready")["status"] == "True"
    });
    let ms = object();
    let status = &ms["status"];
    assert_eq!(condition(status, "Ready")["reason"], "AllReplicasReady");
    assert_eq!(
        condition(status, "Progressing")["reason"],
        "RolloutComplete"
    );
    assert_eq!(condition(status, "Degraded")["status"], "False");
    assert!(condition(status, "Ready")["lastTransitionTime"].is_string());
    assert_eq!(status["observedGeneration"], ms["metadata"]["generation"]);
    assert_eq!(status["versions"][0]["weight"], 100);
    assert_eq!(ms["metadata"]["finalizers"][0], "autoglm.io/cleanup");

    let deployment = plane.get_json(&["deployment", "chat-1", "-n", &ns, "--show-managed-fields"]);
    assert_eq!(
        deployment["metadata"]["ownerReferences"][0]["kind"],
        "ModelService"
    );
    let appliers: Vec<&str> = deployment["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["operation"] == "Apply")
        .filter_map(|f| f["manager"].as_str())
        .collect();
    assert_eq!(appliers, ["autoglm-operator"], "{deployment}");

    // What it did is in the ModelService's events.
    let events = plane.kubectl(&[
        "get",
        "events",
        "-n",
        &ns,
        "--field-selector",
        "involvedObject.kind=ModelService",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    for reason in ["Applied", "AllReplicasReady"] {
        assert!(events.contains(reason), "no {reason} event in {events:?}");
    }

    // It leads, says so, and answers its probes.
    assert_eq!(operator.http_get("/healthz").unwrap().0, 200);
    assert_eq!(operator.http_get("/readyz").unwrap().0, 200);
    assert_eq!(operator.metric("autoglm_operator_leader", ""), 1.0);
    let lease = plane.get_json(&["lease", "autoglm-operator", "-n", &ns]);
    assert!(
        lease["spec"]["holderIdentity"]
            .as_str()
            .is_some_and(|h| !h.is_empty()),
        "{lease}"
    );

    // A reconcile with nothing changed writes nothing: a label triggers one.
    let writes = || operator.metric("autoglm_operator_api_writes_total", "");
    let reconciles = || operator.metric("autoglm_operator_reconciles_total", "success");
    let (writes_before, reconciles_before) = (writes(), reconciles());
    plane.kubectl(&["label", "ms", "chat", "-n", &ns, "team=search"]);
    plane.wait_until(
        "a reconcile after the label",
        Duration::from_secs(30),
        || reconciles() > reconciles_before,
    );
    assert_eq!(
        writes(),
        writes_before,
        "a reconcile with nothing to do wrote"
    );

    // Hand edits and deletions are put back.
    plane.kubectl(&["delete", "service", "chat-1", "-n", &ns]);
    plane.kubectl(&["scale", "deployment", "chat-1", "-n", &ns, "--replicas=5"]);
    plane.wait_until(
        "the Service restored and the replicas back at 2",
        Duration::from_secs(60),
        || {
            plane
                .kubectl_with(&["get", "service", "chat-1", "-n", &ns], "")
                .status
                .success()
                && plane.get_json(&["deployment", "chat-1", "-n", &ns])["spec"]["replicas"] == 2
        },
    );

    // A new version rolls out beside the old; a version taken out is pruned.
    apply(
        r#"{model: smollm2, versions: [{version: "1", weight: 50}, {version: "2", weight: 50}], replicas: 1}"#,
    );
    plane.wait_until(
        "both versions ready in the status of generation 2",
        Duration::from_secs(60),
        || {
            let ms = object();
            let s = &ms["status"];
            s["versions"].as_array().is_some_and(|v| v.len() == 2)
                && s["readyReplicas"] == 2
                && s["observedGeneration"] == 2
                && condition(s, "Progressing")["reason"] == "RolloutComplete"
        },
    );
    apply(r#"{model: smollm2, versions: [{version: "2", weight: 100}], replicas: 1}"#);
    plane.wait_until("version 1's children gone", Duration::from_secs(60), || {
        !plane
            .kubectl_with(&["get", "deployment", "chat-1", "-n", &ns], "")
            .status
            .success()
            && !plane
                .kubectl_with(&["get", "service", "chat-1", "-n", &ns], "")
                .status
                .success()
    });

    // A service the API server accepts but that cannot be rendered (its
    // children's names would pass 63 characters) is reported, not applied.
    let long = "a".repeat(62);
    plane.apply(&model_service(
        &ns,
        &long,
        r#"{model: smollm2, versions: [{version: "1", weight: 100}], replicas: 1}"#,
    ));
    plane.wait_until(
        "the long name reported as InvalidSpec",
        Duration::from_secs(30),
        || {
            let s = &plane.get_json(&["ms", &long, "-n", &ns])["status"];
            condition(s, "Ready")["reason"] == "InvalidSpec"
                && condition(s, "Degraded")["status"] == "True"
                && condition(s, "Ready")["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("shorten metadata.name"))
        },
    );
    assert!(
        plane
            .kubectl(&["get", "deployments", "-n", &ns, "-o", "name"])
            .contains("deployment.apps/chat-2"),
        "only chat's children exist"
    );
    assert_eq!(
        plane
            .kubectl(&["get", "deployments", "-n", &ns, "-o", "name"])
            .lines()
            .count(),
        1
    );
    plane.kubectl(&["delete", "ms", &long, "-n", &ns]);

    // Deleting the ModelService removes its children; the finalizer holds it until then.
    plane.kubectl(&["delete", "ms", "chat", "-n", &ns, "--wait=false"]);
    plane.wait_until(
        "every child and the ModelService gone",
        Duration::from_secs(60),
        || {
            plane
                .kubectl(&[
                    "get",
                    "deployments,services,configmaps,pdb",
                    "-n",
                    &ns,
                    "-l",
                    "autoglm.io/model-service=chat",
                    "-o",
                    "name",
                ])
                .trim()
                .is_empty()
                && plane
                    .kubectl(&["get", "ms", "-n", &ns, "-o", "name"])
                    .trim()
                    .is_empty()
        },
    );
}

#[test]
fn the_operator_keeps_to_the_namespaces_it_is_given() {
    let plane = plane();
    let listed = [plane.namespace("listed-a"), plane.namespace("listed-b")];
    let other = plane.namespace("unlisted");
    let spec = r#"{model: smollm2, versions: [{version: "1", weight: 100}], replicas: 1}"#;
    for ns in listed.iter().chain([&other]) {
        plane.apply(&model_service(ns, "chat", spec));
    }
    let _operator = Operator::start(plane, &listed.join(","), &[]);
    for ns in &listed {
        plane.wait_until(
            &format!("chat Ready in {ns}"),
            Duration::from_secs(60),
            || {
                condition(
                    &plane.get_json(&["ms", "chat", "-n", ns])["status"],
                    "Ready",
                )["status"]
                    == "True"
            },
        );
    }
    assert!(
        plane.get_json(&["ms", "chat", "-n", &other])["status"].is_null(),
        "a ModelService outside the listed namespaces was reconciled"
    );
    assert!(
        plane
            .kubectl(&["get", "deployments", "-n", &other, "-o", "name"])
            .trim()
            .is_empty()
    );
}

#[test]
fn the_operator_gives_autoscaled_services_an_hpa_and_stateful_ones_a_statefulset() {
    let plane = plane();
    let ns = plane.namespace("operator-kinds");
    let _operator = Operator::start(plane, &ns, &[]);
    plane.apply(&model_service(
        &ns,
        "auto",
        r#"{model: smollm2, versions: [{version: "1", weight: 100}], resources: {cpu: "1", memory: 1Gi}, autoscaling: {minReplicas: 1, maxReplicas: 4, targetInFlight: 4, hpa: {cpu: 70}}}"#,
    ));
    plane.apply(&model_service(
        &ns,
        "vectors",
        r#"{model: minilm, versions: [{version: "1", weight: 100}], replicas: 2, stateful: {storage: 10Gi}}"#,
    ));
    for name in ["auto", "vectors"] {
        plane.wait_until(&format!("{name} Ready"), Duration::from_secs(60), || {
            condition(&plane.get_json(&["ms", name, "-n", &ns])["status"], "Ready")["status"]
                == "True"
        });
    }

    // The HPA owns the replica count: it targets the version's Deployment
    // with the spec's bounds and metrics, and the Deployment leaves replicas to it.
    let hpa = plane.get_json(&["hpa", "auto-1", "-n", &ns]);
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "auto-1");
    assert_eq!(
        (
            hpa["spec"]["minReplicas"].clone(),
            hpa["spec"]["maxReplicas"].clone()
        ),
        (1.into(), 4.into())
    );
    let metrics = hpa["spec"]["metrics"].as_array().unwrap();
    assert!(
        metrics.iter().any(|m| m["resource"]["name"] == "cpu"
            && m["resource"]["target"]["averageUtilization"] == 70),
        "{hpa}"
    );
    assert_eq!(
        hpa["metadata"]["ownerReferences"][0]["kind"],
        "ModelService"
    );
    let deployment = plane.get_json(&["deployment", "auto-1", "-n", &ns, "--show-managed-fields"]);
    let owns_replicas = deployment["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["manager"] == "autoglm-operator")
        .any(|f| f["fieldsV1"]["f:spec"].get("f:replicas").is_some());
    assert!(
        !owns_replicas,
        "the operator must not fight the HPA over replicas"
    );

    // Stateful: a StatefulSet with a claim template per replica, whose status the ModelService reports.
    let set = plane.get_json(&["statefulset", "vectors-1", "-n", &ns]);
    assert_eq!(
        set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "model"
    );
    assert_eq!(set["spec"]["serviceName"], "vectors-1-headless");
    assert_eq!(set["status"]["readyReplicas"], 2);
    let status = &plane.get_json(&["ms", "vectors", "-n", &ns])["status"];
    assert_eq!(status["readyReplicas"], 2);
    assert_eq!(
        condition(status, "Progressing")["reason"],
        "RolloutComplete"
    );
    assert!(
        plane
            .kubectl_with(&["get", "deployment", "vectors-1", "-n", &ns], "")
            .status
            .code()
            != Some(0),
        "a stateful service gets no Deployment"
    );
}

/// The API server refuses the operator's apply of a child (here a quota that
/// allows no Deployment): the ModelService gets a Warning event carrying the
/// server's own words and is not Ready; once the quota is lifted, the
/// operator's own retry creates the Deployment and the service turns Ready,
/// with no new apply by the user.
#[test]
fn an_apply_the_api_server_refuses_is_reported_and_retried() {
    let plane = plane();
    let ns = plane.namespace("operator-refused");
    plane.apply(&format!(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {{name: no-deployments, namespace: {ns}}}\n\
         spec: {{hard: {{count/deployments.apps: \"0\"}}}}\n"
    ));
    // The quota controller must have counted before admission can refuse by
    // the count rather than by an unknown status.
    plane.wait_until("the quota counted", Duration::from_secs(30), || {
        plane.get_json(&["resourcequota", "no-deployments", "-n", &ns])["status"]["used"]
            ["count/deployments.apps"]
            == "0"
    });
    let _operator = Operator::start(plane, &ns, &[]);
    plane.apply(&model_service(
        &ns,
        "chat",
        r#"{model: smollm2, versions: [{version: "1", weight: 100}], replicas: 1}"#,
    ));
    let refusals = || {
        plane.kubectl(&[
            "get",
            "events",
            "-n",
            &ns,
            "--field-selector",
            "involvedObject.kind=ModelService,involvedObject.name=chat,reason=ReconcileFailed,type=Warning",
            "-o",
            "jsonpath={.items[*].message}",
        ])
    };
    plane.wait_until("a ReconcileFailed warning", Duration::from_secs(60), || {
        !refusals().is_empty()
    });
    let words = refusals();
    assert!(
        words.contains("exceeded quota: no-deployments"),
        "the event does not carry the API server's words: {words:?}"
    );
    assert!(
        plane
            .kubectl(&["get", "deployments", "-n", &ns, "-o", "name"])
            .trim()
            .is_empty(),
        "a Deployment exists despite the quota"
    );
    let ready = || {
        condition(
            &plane.get_json(&["ms", "chat", "-n", &ns])["status"],
            "Ready",
        )["status"]
            == "True"
    };
    assert!(!ready(), "Ready while its Deployment was refused");

    plane.kubectl(&["delete", "resourcequota", "no-deployments", "-n", &ns]);
    plane.wait_until(
        "chat Ready after the quota is lifted",
        Duration::from_secs(60),
        ready,
    );
    assert_eq!(
        plane
            .kubectl(&["get", "deployments", "-n", &ns, "-o", "name"])
            .trim(),
        "deployment.apps/chat-1"
    );
}
