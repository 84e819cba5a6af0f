//! The default policies: their own Rego tests pass under autoglm's
//! evaluation, and each lets a compliant service through and refuses a
//! violating one.
#![allow(clippy::unwrap_used)]

mod common;

use autoglm_policy::{Mode, PolicySpec, Syntax, TestOutcome, compile, decide, library, run_tests};
use common::{manifest, policy_files, review};
use serde_json::{Value, json};

#[test]
fn the_default_policies_pass_their_own_tests() {
    let files = policy_files();
    let report = run_tests(&files, Syntax::V1, None).unwrap();
    let failed: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.outcome != TestOutcome::Pass)
        .map(|r| format!("{}: {:?}", r.name, r.outcome))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let declared: usize = files
        .iter()
        .map(|(_, s)| s.lines().filter(|l| l.starts_with("test_")).count())
        .sum();
    assert_eq!(report.results.len(), declared, "every test_ rule ran once");
    assert!(report.passed());
}

/// The library policy `name` with `parameters`, enforced.
fn enforced(name: &str, parameters: Value) -> autoglm_policy::CompiledPolicy {
    let entry = library().into_iter().find(|p| p.name == name).unwrap();
    let spec = PolicySpec {
        rego: entry.rego.to_owned(),
        mode: Mode::Enforce,
        syntax: Syntax::V1,
        parameters,
        kinds: vec![autoglm_policy::Kind::ModelService],
        description: entry.description.to_owned(),
    };
    compile(name, &spec).unwrap()
}

/// The denial messages of `policy` for a create of `manifest`.
fn denials(
    policy: &autoglm_policy::CompiledPolicy,
    manifest: Value,
    context: Value,
) -> Vec<String> {
    let decision = decide([policy], &review(manifest, context));
    assert_eq!(decision.evaluated, 1);
    decision.denials.into_iter().map(|f| f.message).collect()
}

fn one_version() -> Value {
    json!([{"version": "1", "weight": 100}])
}

#[test]
fn each_default_policy_lets_a_compliant_service_through_and_refuses_a_violating_one() {
    let none = json!({});
    let labels = json!({"team": "nlp", "cost-center": "cc-1001"});

    let p = enforced("resource-limits", json!({}));
    let good = manifest(
        labels.clone(),
        json!({"model": "m", "versions": one_version(), "resources": {"cpu": "2", "memory": "4Gi"}}),
    );
    let bad = manifest(
        labels.clone(),
        json!({"model": "m", "versions": one_version(), "resources": {"cpu": "2"}}),
    );
    assert_eq!(denials(&p, good, none.clone()), Vec::<String>::new());
    assert_eq!(
        denials(&p, bad, none.clone()),
        ["service chat must set spec.resources.memory"]
    );

    let p = enforced(
        "required-labels",
        json!({"patterns": {"cost-center": "^cc-[0-9]{4}$"}}),
    );
    let spec = json!({"model": "m", "versions": one_version()});
    assert_eq!(
        denials(&p, manifest(labels.clone(), spec.clone()), none.clone()),
        Vec::<String>::new()
    );
    assert_eq!(
        denials(
            &p,
            manifest(
                json!({"team": "nlp", "cost-center": "finance"}),
                spec.clone()
            ),
            none.clone()
        ),
        ["label cost-center of service chat is \"finance\", which does not match ^cc-[0-9]{4}$"]
    );
    assert_eq!(
        denials(&p, manifest(json!({}), spec.clone()), none.clone()).len(),
        2,
        "both labels are missing"
    );

    let p = enforced("image-registries", json!({"registries": ["ghcr.io/acme"]}));
    let image = |reference: &str| {
        manifest(
            labels.clone(),
            json!({"model": "m", "versions": one_version(), "runtime": {"image": {"image": reference, "port": 8000}}}),
        )
    };
    assert_eq!(
        denials(&p, image("ghcr.io/acme/vllm:0.6"), none.clone()),
        Vec::<String>::new()
    );
    assert_eq!(
        denials(&p, image("docker.io/library/vllm:0.6"), none.clone()),
        [
            "image docker.io/library/vllm:0.6 of service chat is not from an allowed registry (ghcr.io/acme)"
        ]
    );

    let p = enforced("gpu-quota", json!({"maxGpus": 8}));
    let gpus = manifest(
        labels.clone(),
        json!({"model": "m", "versions": one_version(), "replicas": 2, "resources": {"gpu": 2}}),
    );
    assert_eq!(
        denials(&p, gpus.clone(), json!({"tenantGpus": 4})),
        Vec::<String>::new()
    );
    assert_eq!(
        denials(&p, gpus, json!({"tenantGpus": 6})),
        [
            "service chat may hold 4 GPUs and the tenant's other services 6: over the tenant's quota of 8 (2 left)"
        ]
    );

    let p = enforced("dev-replicas", json!({"maxReplicas": 2}));
    let dev = |replicas: u32| {
        manifest(
            json!({"environment": "dev"}),
            json!({"model": "m", "versions": one_version(), "replicas": replicas}),
        )
    };
    assert_eq!(denials(&p, dev(2), none.clone()), Vec::<String>::new());
    assert_eq!(
        denials(&p, dev(3), none.clone()),
        ["service chat is in dev, where a version may have at most 2 replicas; it asks for 3"]
    );

    let p = enforced("prod-traffic", json!({}));
    let stages = json!({"versionStages": {"1": "production", "2": "staging"}});
    let prod = |weights: [u32; 2]| {
        manifest(
            json!({"environment": "prod"}),
            json!({"model": "m", "versions": [{"version": "1", "weight": weights[0]}, {"version": "2", "weight": weights[1]}]}),
        )
    };
    assert_eq!(
        denials(&p, prod([50, 50]), stages.clone()),
        Vec::<String>::new()
    );
    assert_eq!(
        denials(&p, prod([40, 60]), stages),
        [
            "version 2 of prod service chat is in stage staging and may take at most 50% of the traffic, not 60%"
        ]
    );
}
