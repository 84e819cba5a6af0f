//! What a policy may be and how it is judged: syntax errors with their
//! place, Gatekeeper's Rego as it is, modes, bounds and explanations.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use autoglm_policy::{
    EVALUATION_LIMIT, Kind, MAX_REGO_BYTES, Mode, PolicyError, PolicySpec, Syntax, compile, decide,
    explain,
};
use common::{K8S_REQUIRED_LABELS, manifest, review};
use serde_json::json;

fn spec(rego: &str) -> PolicySpec {
    PolicySpec {
        rego: rego.to_owned(),
        mode: Mode::Enforce,
        syntax: Syntax::V1,
        parameters: json!({}),
        kinds: vec![Kind::ModelService],
        description: String::new(),
    }
}

#[test]
fn a_syntax_error_is_refused_with_its_line_and_column() {
    let rego = "package p\n\ndeny contains msg if {\n  input.a == 1\n  msg := sprintf(\"%v\", [input.a]\n}\n";
    let e = compile("broken", &spec(rego)).unwrap_err();
    let PolicyError::Syntax {
        line,
        column,
        message,
    } = &e
    else {
        panic!("not a syntax error: {e:?}");
    };
    assert_eq!((*line, *column), (Some(6), Some(1)), "{message}");
    assert!(message.contains("expecting `)`"), "{message}");
    assert!(e.to_string().starts_with("line 6, column 1: "), "{e}");

    let v0 = "package p\n\ndeny[msg] { msg := \"x\" }\n";
    assert!(
        matches!(
            compile("v0-as-v1", &spec(v0)),
            Err(PolicyError::Syntax { .. })
        ),
        "Rego v0 is refused unless the policy says syntax v0"
    );
}

#[test]
fn a_policy_that_could_find_nothing_or_is_too_large_is_refused() {
    assert_eq!(
        compile("empty", &spec("package p\n\nallow if true\n")).unwrap_err(),
        PolicyError::NoRules
    );
    let huge = format!(
        "package p\n\ndeny contains \"x\" if {{ true }}\n#{}\n",
        "x".repeat(MAX_REGO_BYTES)
    );
    assert!(matches!(
        compile("huge", &spec(&huge)).unwrap_err(),
        PolicyError::TooLarge { .. }
    ));
    let mut not_object = spec("package p\n\ndeny contains \"x\" if { true }\n");
    not_object.parameters = json!([1]);
    assert_eq!(
        compile("params", &not_object).unwrap_err(),
        PolicyError::Parameters
    );
}

#[test]
fn a_gatekeeper_constraint_template_runs_as_it_is() {
    let mut gatekeeper = spec(K8S_REQUIRED_LABELS);
    gatekeeper.syntax = Syntax::V0;
    gatekeeper.parameters = json!({"labels": [{"key": "owner", "allowedRegex": "^[a-z]+$"}]});
    let policy = compile("must-have-owner", &gatekeeper).unwrap();
    let spec_body = json!({"model": "m", "versions": [{"version": "1", "weight": 100}]});

    let missing = decide(
        [&policy],
        &review(
            manifest(json!({"team": "nlp"}), spec_body.clone()),
            json!({}),
        ),
    );
    assert_eq!(missing.denials.len(), 1);
    assert_eq!(missing.denials[0].rule, "violation");
    assert_eq!(
        missing.denials[0].message,
        "you must provide labels: {\"owner\"}"
    );
    assert_eq!(
        missing.denials[0].details,
        Some(json!({"missing_labels": ["owner"]}))
    );

    let wrong = decide(
        [&policy],
        &review(
            manifest(json!({"owner": "Alice1"}), spec_body.clone()),
            json!({}),
        ),
    );
    assert_eq!(
        wrong
            .denials
            .iter()
            .map(|f| f.message.as_str())
            .collect::<Vec<_>>(),
        ["Label <owner: Alice1> does not satisfy allowed regex: ^[a-z]+$"]
    );
    let fine = decide(
        [&policy],
        &review(manifest(json!({"owner": "alice"}), spec_body), json!({})),
    );
    assert!(fine.allowed(), "{fine:?}");
}

#[test]
fn warn_and_dry_run_policies_never_refuse() {
    let rego =
        "package p\n\ndeny contains \"no\" if { true }\n\nwarn contains \"careful\" if { true }\n";
    let m = manifest(json!({}), json!({"model": "m"}));
    let mut s = spec(rego);
    let enforced = compile("e", &s).unwrap();
    s.mode = Mode::Warn;
    let warned = compile("w", &s).unwrap();
    s.mode = Mode::DryRun;
    let dry = compile("d", &s).unwrap();

    let d = decide([&enforced], &review(m.clone(), json!({})));
    assert_eq!(
        (d.denials.len(), d.warnings.len()),
        (1, 1),
        "an enforced warn rule warns"
    );
    let d = decide([&warned], &review(m.clone(), json!({})));
    assert!(d.allowed());
    assert_eq!(d.warnings.len(), 2);
    let d = decide([&dry], &review(m, json!({})));
    assert!(d.allowed());
    assert!(d.warnings.is_empty());
    assert_eq!(d.dry_run.len(), 2, "recorded, nothing else");
}

#[test]
fn a_policy_that_loops_is_stopped_by_its_time_limit_and_fails_closed() {
    // 25 million iterations: minutes without the limit.
    let rego = "package p\n\ndeny contains \"never\" if {\n  some x in numbers.range(1, 5000)\n  some y in numbers.range(1, 5000)\n  x + y < 0\n}\n";
    let policy = compile("loops", &spec(rego)).unwrap();
    let started = Instant::now();
    let d = decide(
        [&policy],
        &review(manifest(json!({}), json!({"model": "m"})), json!({})),
    );
    let took = started.elapsed();
    assert!(
        took < EVALUATION_LIMIT + Duration::from_secs(2),
        "took {took:?}"
    );
    assert_eq!(d.denials.len(), 1, "{d:?}");
    assert_eq!(d.denials[0].rule, "error");
    assert!(
        d.denials[0].message.contains("time limit"),
        "{}",
        d.denials[0].message
    );
}

#[test]
fn an_explanation_names_the_rules_that_fired_and_the_input_they_read() {
    let rego = "package p\n\ndeny contains msg if {\n  input.resource.spec.replicas > 3\n  msg := \"too many\"\n}\n\nwarn contains msg if {\n  not input.resource.metadata.labels.team\n  msg := \"no team\"\n}\n";
    let policy = compile("explained", &spec(rego)).unwrap();
    let e = explain(
        &policy,
        &review(
            manifest(json!({"team": "nlp"}), json!({"model": "m", "replicas": 5})),
            json!({}),
        ),
    );
    assert_eq!(e.error, None);
    let deny = e.rules.iter().find(|r| r.rule == "deny").unwrap();
    assert!(deny.fired);
    assert_eq!(deny.findings, [json!("too many")]);
    assert_eq!(deny.input_paths, ["input.resource.spec.replicas"]);
    let warn = e.rules.iter().find(|r| r.rule == "warn").unwrap();
    assert!(!warn.fired);
    assert_eq!(warn.input_paths, ["input.resource.metadata.labels.team"]);
}
