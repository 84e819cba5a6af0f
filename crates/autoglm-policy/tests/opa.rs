//! OPA itself as the oracle: the same Rego and the same input documents,
//! evaluated by `opa` (v1.22.4, built by `scripts/opa.sh`) and by autoglm
//! (regorus), must give the same tests' outcomes and the same findings.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use autoglm_policy::{
    Kind, Mode, PolicySpec, Syntax, TestOutcome, compile, explain, library, run_tests,
};
use common::{K8S_REQUIRED_LABELS, manifest, opa, policies_dir, policy_files, review};
use serde_json::{Value, json};

#[test]
fn opa_test_and_autoglm_agree_on_every_default_policy_test() {
    let out = Command::new(opa())
        .args(["test", "--format=json"])
        .arg(policies_dir())
        .output()
        .unwrap();
    let theirs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "opa test said {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let theirs: BTreeMap<String, &str> = theirs
        .iter()
        .map(|t| {
            let outcome = if t.get("error").is_some() {
                "error"
            } else if t["fail"] == json!(true) {
                "fail"
            } else {
                "pass"
            };
            (
                format!(
                    "{}.{}",
                    t["package"].as_str().unwrap(),
                    t["name"].as_str().unwrap()
                ),
                outcome,
            )
        })
        .collect();
    let ours: BTreeMap<String, &str> = run_tests(&policy_files(), Syntax::V1, None)
        .unwrap()
        .results
        .into_iter()
        .map(|r| {
            let outcome = match r.outcome {
                TestOutcome::Pass => "pass",
                TestOutcome::Fail => "fail",
                TestOutcome::Error(_) => "error",
            };
            (r.name, outcome)
        })
        .collect();
    assert!(theirs.len() >= 20, "{theirs:?}");
    assert_eq!(ours, theirs);
}

/// What `opa eval` gives for `query` over `rego` and `input`, sorted.
fn opa_eval(rego: &str, syntax: Syntax, query: &str, input: &Value) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.rego");
    std::fs::write(&file, rego).unwrap();
    let mut command = Command::new(opa());
    command
        .args(["eval", "--format=json", "--stdin-input", "-d"])
        .arg(&file);
    if syntax == Syntax::V0 {
        command.arg("--v0-compatible");
    }
    let mut child = command
        .arg(query)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "opa eval: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let value = &answer["result"][0]["expressions"][0]["value"];
    let mut items = value.as_array().cloned().unwrap_or_default();
    items.sort_by_key(Value::to_string);
    items
}

/// One policy and the documents to judge with it.
struct Case {
    name: &'static str,
    rego: String,
    syntax: Syntax,
    parameters: Value,
    inputs: Vec<(Value, Value)>,
}

fn cases() -> Vec<Case> {
    let versions = json!([{"version": "1", "weight": 30}, {"version": "2", "weight": 70}]);
    let specs = [
        json!({"model": "m", "versions": versions, "replicas": 3, "resources": {"cpu": "2", "memory": "4Gi", "gpu": 2}}),
        json!({"model": "m", "versions": versions, "autoscaling": {"maxReplicas": 5, "targetInFlight": 4}, "resources": {"cpu": "1"}}),
        json!({"model": "m", "versions": [{"version": "1", "weight": 100}], "runtime": {"image": {"image": "docker.io/x/y:1", "port": 80}}}),
        json!({"model": "m", "runtime": {"image": {"image": "ghcr.io/acme/y:1", "port": 80}}}),
    ];
    let labels = [
        json!({"team": "nlp", "cost-center": "cc-1001", "environment": "prod"}),
        json!({"environment": "dev", "owner": "Bob"}),
        json!({"team": "", "environment": "staging"}),
    ];
    let contexts = [
        json!({"versionStages": {"1": "production", "2": "staging"}, "tenantGpus": 3}),
        json!({"versionStages": {"1": "production", "2": "production"}, "tenantGpus": 0}),
    ];
    let mut inputs = Vec::new();
    for spec in &specs {
        for label in &labels {
            for context in &contexts {
                inputs.push((manifest(label.clone(), spec.clone()), context.clone()));
            }
        }
    }
    let parameters = json!({
        "labels": ["team", "cost-center"], "patterns": {"cost-center": "^cc-[0-9]{4}$"},
        "registries": ["ghcr.io/acme"], "maxGpus": 8, "maxReplicas": 2,
    });
    let mut cases: Vec<Case> = library()
        .into_iter()
        .map(|p| Case {
            name: p.name,
            rego: p.rego.to_owned(),
            syntax: Syntax::V1,
            parameters: parameters.clone(),
            inputs: inputs.clone(),
        })
        .collect();
    cases.push(Case {
        name: "k8srequiredlabels",
        rego: K8S_REQUIRED_LABELS.to_owned(),
        syntax: Syntax::V0,
        parameters: json!({"labels": [{"key": "owner", "allowedRegex": "^[a-z]+$"}, {"key": "team", "allowedRegex": ""}]}),
        inputs,
    });
    cases
}

#[test]
fn opa_eval_and_autoglm_find_the_same_things() {
    let mut compared = 0;
    for case in cases() {
        let spec = PolicySpec {
            rego: case.rego.clone(),
            mode: Mode::Enforce,
            syntax: case.syntax,
            parameters: case.parameters.clone(),
            kinds: vec![Kind::ModelService],
            description: String::new(),
        };
        let policy = compile(case.name, &spec).unwrap();
        for (resource, context) in &case.inputs {
            let review = review(resource.clone(), context.clone());
            let input = review.input(&case.parameters);
            for rule in explain(&policy, &review).rules {
                let mut ours = rule.findings.clone();
                ours.sort_by_key(Value::to_string);
                let query = format!("{}.{}", policy.package, rule.rule);
                let theirs = opa_eval(&case.rego, case.syntax, &query, &input);
                assert_eq!(ours, theirs, "{query} on {input}");
                compared += 1;
            }
        }
    }
    assert!(compared >= 100, "{compared} comparisons");
}
