//! The recording and alert rules under `deploy/prometheus/`, checked by
//! Prometheus' own `promtool` (Debian's `prometheus` package): they parse,
//! every alert has a unit test in which it fires (and others in which it
//! does not) and those tests pass, and the PrometheusRule for the
//! Prometheus Operator carries exactly the rule file's groups.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const PROMTOOL: &str = "/usr/bin/promtool";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus")
}

fn yaml(name: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// `promtool ARGS` in the rules' folder: whether it passed, and what it said.
fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new(PROMTOOL)
        .args(args)
        .current_dir(dir())
        .output()
        .expect("the rule tests need promtool (apt-get install -y prometheus; cargo xtask test installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

fn alerts(rules: &Value) -> Vec<String> {
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_rules_parse_and_every_alert_passes_its_unit_tests() {
    let (ok, said) = promtool(&["check", "rules", "rules.yml"]);
    assert!(ok, "{said}");
    let rules = yaml("rules.yml");
    let count: usize = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();
    assert!(
        said.contains(&format!("SUCCESS: {count} rules found")),
        "{said}"
    );

    let (ok, said) = promtool(&["test", "rules", "tests.yml"]);
    assert!(ok, "{said}");
    assert!(said.contains("SUCCESS"), "{said}");

    // Every alert is tested firing somewhere: a test only of silence would
    // pass for a rule that can never fire.
    let tests = yaml("tests.yml");
    let fired: Vec<String> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["exp_alerts"].as_array().is_some_and(|e| !e.is_empty()))
        .filter_map(|a| a["alertname"].as_str().map(str::to_owned))
        .collect();
    for alert in alerts(&rules) {
        assert!(fired.contains(&alert), "no test sees {alert} fire");
    }
}

#[test]
fn a_rule_that_does_not_parse_or_an_alert_that_does_not_fire_fails_promtool() {
    // The checks above can fail: a broken copy of the rules fails them.
    let broken = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(dir().join("rules.yml")).unwrap();
    std::fs::write(
        broken.path().join("rules.yml"),
        text.replace("> 0.05 and", "> > 0.05 and"),
    )
    .unwrap();
    let out = Command::new(PROMTOOL)
        .args(["check", "rules", "rules.yml"])
        .current_dir(broken.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    std::fs::write(
        broken.path().join("rules.yml"),
        text.replace(
            "autoglm_runtime_queue_depth > 32",
            "autoglm_runtime_queue_depth > 64",
        ),
    )
    .unwrap();
    std::fs::copy(dir().join("tests.yml"), broken.path().join("tests.yml")).unwrap();
    let out = Command::new(PROMTOOL)
        .args(["test", "rules", "tests.yml"])
        .current_dir(broken.path())
        .output()
        .unwrap();
    // promtool names the failing alert on stderr.
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("AutoglmRuntimeQueueBacklog"),
        "{said}"
    );
}

#[test]
fn the_prometheus_rule_carries_the_rule_files_groups() {
    let rule = yaml("prometheusrule.yaml");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["spec"]["groups"], yaml("rules.yml")["groups"]);
}
