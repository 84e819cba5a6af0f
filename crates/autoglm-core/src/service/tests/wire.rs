//! The wire shape: design.md's example parses, round-trips, and typos fail.

use serde_json::json;

use crate::service::*;

/// design.md's sketch, with the fields this crate has (no `hpa`, `stateful`,
/// `ingress` yet) and `autoscaling` instead of `replicas` (they exclude each other).
fn design_example() -> serde_json::Value {
    json!({
        "apiVersion": "autoglm.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": "chat", "namespace": "team-a"},
        "spec": {
            "model": "smollm2",
            "versions": [{"version": "3", "weight": 90}, {"version": "4", "weight": 10}],
            "runtime": {"builtin": {}},
            "autoscaling": {
                "minReplicas": 0,
                "maxReplicas": 10,
                "targetInFlight": 4,
                "scaleToZeroAfter": "300s"
            },
            "resources": {"cpu": "2", "memory": "4Gi", "gpu": 1}
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "AllReplicasReady"}],
            "versions": [
                {"version": "3", "weight": 90, "replicas": 2, "readyReplicas": 2},
                {"version": "4", "weight": 10, "replicas": 1, "readyReplicas": 1}
            ],
            "url": "http://gateway/v1"
        }
    })
}

fn error_text<T: std::fmt::Debug>(result: Result<T, serde_json::Error>) -> String {
    result.err().map(|e| e.to_string()).unwrap_or_default()
}

#[test]
fn design_example_parses_and_round_trips() {
    let parsed: ModelServiceManifest =
        serde_json::from_value(design_example()).expect("design example");
    assert_eq!(parsed.metadata.namespace.as_deref(), Some("team-a"));
    assert_eq!(parsed.spec.versions[1].weight, 10);
    assert_eq!(
        parsed.spec.runtime,
        RuntimeSpec::Builtin(BuiltinRuntime::default())
    );
    let status = parsed.status.as_ref().expect("status");
    assert_eq!(status.conditions[0].status, ConditionStatus::True);
    assert_eq!(parsed.validate(), Ok(()));

    let back = serde_json::to_value(&parsed).expect("serialise");
    assert_eq!(back["spec"], design_example()["spec"]);
    assert_eq!(back["spec"]["runtime"], json!({"builtin": {}}));
    let again: ModelServiceManifest = serde_json::from_value(back).expect("reparse");
    assert_eq!(again, parsed);
}

#[test]
fn from_value_checks_type_then_spec_and_drops_status() {
    let manifest = ModelServiceManifest::from_value(design_example()).expect("valid");
    assert_eq!(manifest.status, None);
    let service = manifest.into_service();
    assert_eq!(service.name, "chat");
    assert_eq!(service.validate(), Ok(()));

    let mut deployment = design_example();
    deployment["apiVersion"] = json!("apps/v1");
    deployment["kind"] = json!("Deployment");
    deployment["spec"] = json!({"template": {}});
    assert_eq!(
        ModelServiceManifest::from_value(deployment),
        Err(vec![
            FieldError::new(
                "apiVersion",
                "apiVersion \"apps/v1\" is not supported; use \"autoglm.io/v1alpha1\""
            ),
            FieldError::new(
                "kind",
                "kind \"Deployment\" is not supported; autoglm applies only kind \"ModelService\""
            ),
        ])
    );
}

#[test]
fn type_meta_messages() {
    assert_eq!(check_type_meta(Some(API_VERSION), Some(KIND)), Ok(()));
    assert_eq!(
        check_type_meta(None, Some("modelservice")),
        Err(vec![
            FieldError::new(
                "apiVersion",
                "apiVersion is required; use \"autoglm.io/v1alpha1\""
            ),
            FieldError::new(
                "kind",
                "kind \"modelservice\" must be spelled \"ModelService\""
            ),
        ])
    );
    assert_eq!(
        check_type_meta(Some("autoglm.io/v1"), None),
        Err(vec![
            FieldError::new(
                "apiVersion",
                "apiVersion \"autoglm.io/v1\" is not supported; use \"autoglm.io/v1alpha1\""
            ),
            FieldError::new("kind", "kind is required; use \"ModelService\""),
        ])
    );
}

#[test]
fn manifest_sections_report_where() {
    let mut doc = design_example();
    doc["spec"]["autoscaling"]["minReplica"] = json!(1);
    doc["specs"] = json!({});
    doc["metadata"] = json!({"name": "Chat"});
    let errors = ModelServiceManifest::from_value(doc)
        .err()
        .unwrap_or_default();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].path, "specs");
    assert_eq!(errors[1].path, "spec");
    assert!(
        errors[1].message.contains("unknown field `minReplica`"),
        "{errors:?}"
    );

    // Sections parse; then the rules run, with manifest paths.
    let mut doc = design_example();
    doc["metadata"] = json!({"name": "Chat", "namespace": "a_b", "labels": {"bad key": "v"}});
    let errors = ModelServiceManifest::from_value(doc)
        .err()
        .unwrap_or_default();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["metadata.name", "metadata.namespace", "metadata.labels"]
    );

    let missing =
        ModelServiceManifest::from_value(json!({"apiVersion": API_VERSION, "kind": KIND}));
    assert_eq!(
        missing,
        Err(vec![
            FieldError::new("metadata", "metadata is required"),
            FieldError::new("spec", "spec is required"),
        ])
    );
    assert!(ModelServiceManifest::from_value(json!([1])).is_err());
}

#[test]
fn unknown_fields_are_named() {
    let spec = json!({"model": "m", "versions": [{"version": "1", "weight": 100}], "replica": 2});
    let text = error_text(serde_json::from_value::<ModelServiceSpec>(spec));
    assert!(text.contains("unknown field `replica`"), "{text}");

    let spec = json!({"model": "m", "versions": [{"version": "1", "wieght": 100}]});
    let text = error_text(serde_json::from_value::<ModelServiceSpec>(spec));
    assert!(text.contains("unknown field `wieght`"), "{text}");

    let spec = json!({"model": "m", "resources": {"cpus": "1"}});
    let text = error_text(serde_json::from_value::<ModelServiceSpec>(spec));
    assert!(text.contains("unknown field `cpus`"), "{text}");

    let service = json!({"name": "chat", "spec": {"model": "m"}, "status": {}});
    let text = error_text(serde_json::from_value::<ModelService>(service));
    assert!(text.contains("unknown field `status`"), "{text}");
}

#[test]
fn minimal_spec_takes_defaults() {
    let spec: ModelServiceSpec = serde_json::from_value(json!({
        "model": "smollm2",
        "versions": [{"version": "1", "weight": 100}]
    }))
    .expect("minimal");
    assert_eq!(spec.runtime, RuntimeSpec::default());
    assert_eq!(spec.validate(), Ok(()));
    assert_eq!(
        serde_json::to_value(&spec).expect("serialise"),
        json!({"model": "smollm2", "versions": [{"version": "1", "weight": 100}], "runtime": {"builtin": {}}})
    );
}

#[test]
fn command_runtime_and_env_round_trip() {
    let spec = json!({
        "model": "smollm2",
        "versions": [{"version": "1", "weight": 100}],
        "runtime": {"command": {
            "command": ["llama-server", "--port", "{port}", "-m", "{model}"],
            "protocol": "openai",
            "readyPath": "/health"
        }},
        "replicas": 2,
        "env": [{"name": "OMP_NUM_THREADS", "value": "4"}]
    });
    let parsed: ModelServiceSpec = serde_json::from_value(spec.clone()).expect("command spec");
    assert_eq!(parsed.validate(), Ok(()));
    assert_eq!(serde_json::to_value(&parsed).expect("serialise"), spec);
}

#[test]
fn quantities_may_be_bare_numbers() {
    let r: Resources = serde_json::from_value(json!({"cpu": 2, "memory": "4Gi"})).expect("int cpu");
    assert_eq!(r.cpu.as_deref(), Some("2"));
    let r: Resources = serde_json::from_value(json!({"cpu": 0.5})).expect("float cpu");
    assert_eq!(r.cpu.as_deref(), Some("0.5"));
    let r: Resources = serde_json::from_value(json!({"cpu": null})).expect("null cpu");
    assert_eq!(r.cpu, None);
    let text = error_text(serde_json::from_value::<Resources>(json!({"cpu": [1]})));
    assert!(text.contains("a quantity"), "{text}");
}

#[test]
fn replica_bounds() {
    let mut spec: ModelServiceSpec = serde_json::from_value(json!({"model": "m"})).expect("spec");
    let bounds = |s: &ModelServiceSpec| {
        let b = s.replica_bounds();
        (b.min, b.max, b.initial)
    };
    assert_eq!(bounds(&spec), (1, 1, 1));
    spec.replicas = Some(3);
    assert_eq!(bounds(&spec), (3, 3, 3));
    spec.replicas = None;
    let mut auto = Autoscaling {
        min_replicas: 0,
        max_replicas: 10,
        target_in_flight: 4,
        scale_to_zero_after: None,
        scale_down_stabilization: Some("1m".into()),
        hpa: None,
    };
    spec.autoscaling = Some(auto.clone());
    assert_eq!(bounds(&spec), (0, 10, 1));
    auto.min_replicas = 2;
    spec.autoscaling = Some(auto.clone());
    assert_eq!(bounds(&spec), (2, 10, 2));
    assert_eq!(auto.scale_to_zero_after(), Ok(DEFAULT_SCALE_TO_ZERO_AFTER));
    assert_eq!(
        auto.scale_down_stabilization(),
        Ok(std::time::Duration::from_secs(60))
    );
    let mut bad = auto.clone();
    bad.scale_to_zero_after = Some("5".into());
    bad.scale_down_stabilization = Some("1.5h".into());
    assert_eq!(
        bad.scale_to_zero_after().map_err(|e| e.to_string()),
        Err("duration \"5\" needs a unit (ms, s, m or h), like \"5s\"".to_owned())
    );
    assert!(matches!(
        bad.scale_down_stabilization(),
        Err(DurationError::Fraction { input }) if input == "1.5h"
    ));
    let min_default: Autoscaling =
        serde_json::from_value(json!({"maxReplicas": 3, "targetInFlight": 1})).expect("auto");
    assert_eq!(min_default.min_replicas, 1);
}

#[test]
fn problem_lists_every_error() {
    let p = to_problem(&[
        FieldError::new("spec.model", "bad"),
        FieldError::new("spec.versions", "worse"),
    ]);
    assert_eq!(p.code, "invalid_body");
    assert_eq!(p.status, 422);
    assert_eq!(
        p.detail.as_deref(),
        Some("spec.model: bad; spec.versions: worse")
    );
}

#[test]
fn schema_marks_quantities_int_or_string() {
    let schema = serde_json::to_value(schemars::schema_for!(ModelServiceManifest)).expect("schema");
    let cpu = &schema["$defs"]["Resources"]["properties"]["cpu"];
    assert_eq!(cpu["x-kubernetes-int-or-string"], true, "{cpu}");
}
