//! Rendering, offline: the example specs in `tests/specs` against reviewed
//! snapshots, the properties every child must have, and the specs that
//! cannot run on Kubernetes. That the API server accepts the output is
//! tested in `crates/autoglm/tests/kubernetes.rs`.

use std::path::Path;

use autoglm_core::service::ModelServiceManifest;
use autoglm_render::{Child, RenderError, RenderOptions, render, to_yaml};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{Value, json};

fn options() -> RenderOptions {
    RenderOptions {
        image: "ghcr.io/open-autoglm/autoglm:test".to_owned(),
        ..RenderOptions::default()
    }
}

fn manifest(value: Value) -> ModelServiceManifest {
    ModelServiceManifest::from_value(value).expect("a valid manifest")
}

fn spec_file(name: &str) -> ModelServiceManifest {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/specs")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("spec file");
    manifest(serde_yaml_ng::from_str(&text).expect("yaml"))
}

fn minimal(spec: Value) -> Value {
    json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService", "metadata": {"name": "chat"}, "spec": spec})
}

fn kinds(children: &[Value]) -> Vec<String> {
    children
        .iter()
        .map(|c| {
            format!(
                "{}/{}",
                c["kind"].as_str().unwrap_or(""),
                c["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn example_specs_render_as_reviewed() {
    for name in ["chat.yaml", "vector-store.yaml", "triton.yaml"] {
        let children = render(&spec_file(name), &options()).expect("renders");
        insta::assert_snapshot!(name, to_yaml(&children));
    }
}

#[test]
fn a_config_ref_mounts_its_key_and_a_new_md5_rolls_the_pods() {
    let with = |md5: &str| {
        let mut m = spec_file("triton.yaml");
        m.metadata
            .annotations
            .insert("autoglm.io/config-md5".into(), md5.into());
        let children = render(&m, &options()).expect("renders");
        let deployment = children
            .iter()
            .map(|c| serde_json::to_value(c).unwrap())
            .find(|c| c["kind"] == "Deployment")
            .expect("a Deployment");
        deployment["spec"]["template"].clone()
    };
    let template = with("5d41402abc4b2a76b9719d911017c592");
    let server = &template["spec"]["containers"][0];
    let env: Vec<(String, String)> = server["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(env.contains(&(
        "AUTOGLM_CONFIG_FILE".into(),
        "/etc/autoglm/config/triton:settings.yaml".into()
    )));
    let volume = template["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "config")
        .expect("the config volume");
    // The environment's ConfigMap, its GROUP.KEY item (`:` as `_`) at the key's name.
    assert_eq!(volume["configMap"]["name"], "autoglm-config-prod");
    assert_eq!(
        volume["configMap"]["items"],
        json!([{"key": "models.triton_settings.yaml", "path": "triton:settings.yaml"}])
    );
    assert!(
        server["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "config"
                && m["mountPath"] == "/etc/autoglm/config"
                && m["readOnly"] == true)
    );
    let rolled = with("7d793037a0760186574b0282f2f435e7");
    assert_ne!(
        template["metadata"]["annotations"], rolled["metadata"]["annotations"],
        "a new md5 must change the pod template"
    );
    assert_eq!(
        rolled["metadata"]["annotations"]["autoglm.io/config-md5"],
        "7d793037a0760186574b0282f2f435e7"
    );
}

#[test]
fn a_split_service_gets_per_version_workloads_and_service_wide_objects() {
    let children = render(&spec_file("chat.yaml"), &options())
        .expect("renders")
        .iter()
        .map(Child::to_value)
        .collect::<Vec<_>>();
    assert_eq!(
        kinds(&children),
        [
            "ConfigMap/chat-runtime",
            "Service/chat",
            "Service/chat-3",
            "Deployment/chat-3",
            "PodDisruptionBudget/chat-3",
            "HorizontalPodAutoscaler/chat-3",
            "Service/chat-4",
            "Deployment/chat-4",
            "PodDisruptionBudget/chat-4",
            "HorizontalPodAutoscaler/chat-4",
            "Ingress/chat",
        ]
    );
    for child in &children {
        let labels = &child["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "autoglm", "{child}");
        assert_eq!(labels["autoglm.io/model-service"], "chat", "{child}");
        assert_eq!(child["metadata"]["namespace"], "team-a", "{child}");
    }
    let deployment = &children[3];
    // The HPA owns the replica count of an autoscaled workload.
    assert!(deployment["spec"].get("replicas").is_none());
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["nvidia.com/gpu.present"], "true");
    assert_eq!(
        pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
        "1"
    );
    assert_eq!(
        pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"],
        true
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["initContainers"][0]["args"],
        json!([
            "model",
            "pull",
            "smollm2",
            "--version",
            "3",
            "--to",
            "/models/smollm2/3"
        ])
    );
    let hpa = &children[5]["spec"];
    assert_eq!(
        hpa["minReplicas"], 1,
        "an HPA cannot go below 1; the gateway scales from zero"
    );
    assert_eq!(
        hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        120
    );
    let metric_types: Vec<&str> = hpa["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["type"].as_str())
        .collect();
    assert_eq!(metric_types, ["Resource", "Resource", "Pods", "External"]);
}

#[test]
fn a_fixed_count_is_set_on_the_workload_and_no_hpa_is_made() {
    let children = render(
        &manifest(minimal(
            json!({"model": "m", "versions": [{"version": "1", "weight": 100}], "replicas": 3}),
        )),
        &options(),
    )
    .expect("renders")
    .iter()
    .map(Child::to_value)
    .collect::<Vec<_>>();
    assert_eq!(
        kinds(&children),
        [
            "ConfigMap/chat-runtime",
            "Service/chat",
            "Service/chat-1",
            "Deployment/chat-1",
            "PodDisruptionBudget/chat-1"
        ]
    );
    assert_eq!(children[3]["spec"]["replicas"], 3);
    assert_eq!(children[0]["metadata"]["namespace"], "default");
}

#[test]
fn a_changed_environment_rolls_the_pods() {
    let hash = |value: &str| {
        let children = render(
            &manifest(minimal(json!({"model": "m", "versions": [{"version": "1", "weight": 100}], "env": [{"name": "MODE", "value": value}]}))),
            &options(),
        )
        .expect("renders").iter().map(Child::to_value).collect::<Vec<_>>();
        children[3]["spec"]["template"]["metadata"]["annotations"]["autoglm.io/config-hash"].clone()
    };
    assert_eq!(hash("a"), hash("a"));
    assert_ne!(hash("a"), hash("b"));
}

#[test]
fn the_owner_is_set_on_every_child() {
    let owner = OwnerReference {
        api_version: "autoglm.io/v1alpha1".to_owned(),
        kind: "ModelService".to_owned(),
        name: "chat".to_owned(),
        uid: "6c5e3f4e-0000-4000-8000-000000000001".to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let children = render(
        &spec_file("vector-store.yaml"),
        &RenderOptions {
            owner: Some(owner),
            ..options()
        },
    )
    .expect("renders")
    .iter()
    .map(Child::to_value)
    .collect::<Vec<_>>();
    for child in &children {
        assert_eq!(
            child["metadata"]["ownerReferences"][0]["uid"], "6c5e3f4e-0000-4000-8000-000000000001",
            "{child}"
        );
    }
}

#[test]
fn what_cannot_run_on_kubernetes_is_refused_with_the_reason() {
    let command = minimal(json!({
        "model": "m", "versions": [{"version": "1", "weight": 100}],
        "runtime": {"command": {"command": ["server", "--port", "{port}"]}}
    }));
    assert_eq!(
        render(&manifest(command), &options()),
        Err(RenderError::CommandRuntime)
    );

    let long_name = "a".repeat(55);
    let long = json!({
        "apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService", "metadata": {"name": long_name},
        "spec": {"model": "m", "versions": [{"version": "1", "weight": 100}], "stateful": {"storage": "1Gi"}}
    });
    let error = render(&manifest(long), &options())
        .expect_err("too long")
        .to_string();
    assert!(
        error.contains("would be 66 characters; shorten metadata.name to at most 52"),
        "{error}"
    );

    let digit = json!({
        "apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService", "metadata": {"name": "1chat"},
        "spec": {"model": "m", "versions": [{"version": "1", "weight": 100}]}
    });
    let error = render(&manifest(digit), &options())
        .expect_err("digit")
        .to_string();
    assert!(error.contains("must start with a letter"), "{error}");
}
