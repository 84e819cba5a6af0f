//! `autoglm policy test` and `autoglm policy eval` as a user runs them, the
//! second beside `opa eval` (OPA v1.22.4 from `scripts/opa.sh`) on OPA's own
//! RBAC example.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::BIN;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn autoglm(args: &[&str]) -> Output {
    Command::new(BIN).arg("policy").args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn policy_test_runs_the_default_policies_tests() {
    let policies = repo().join("policies");
    let out = autoglm(&["test", policies.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let declared: usize = std::fs::read_dir(&policies)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .map(|s| s.lines().filter(|l| l.starts_with("test_")).count())
        .sum();
    assert!(
        stdout.ends_with(&format!("PASS: {declared}/{declared}\n")),
        "{stdout}"
    );
}

#[test]
fn policy_test_names_each_failing_test_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t_test.rego"),
        "package t\n\ntest_passes if { 1 == 1 }\n\ntest_fails if { 1 == 2 }\n\ntest_errs if { to_number(\"x\") == 1 }\n",
    )
    .unwrap();
    let out = autoglm(&["test", dir.path().to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("data.t.test_fails: FAIL"), "{stdout}");
    assert!(
        !stdout.contains("test_passes"),
        "passing tests only with -v: {stdout}"
    );
    assert!(stdout.contains("PASS: 1/3\n"), "{stdout}");

    std::fs::write(dir.path().join("broken.rego"), "package b\n\ntest_x if {\n").unwrap();
    let out = autoglm(&["test", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("broken.rego: line "), "{stderr}");
}

fn opa() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo().join("scripts/opa.sh"))
        .arg("build")
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/opa.sh build failed; run it by hand to see why"
    );
    PathBuf::from(text(&out.stdout).trim())
}

/// The values and bindings of an `opa eval --format=json` answer.
fn values(answer: &[u8]) -> Value {
    let answer: Value = serde_json::from_slice(answer).unwrap();
    let results = answer["result"].as_array().cloned().unwrap_or_default();
    results
        .iter()
        .map(|r| {
            serde_json::json!({
                "values": r["expressions"].as_array().unwrap().iter().map(|e| e["value"].clone()).collect::<Vec<_>>(),
                "bindings": r.get("bindings").cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// Runs `autoglm policy eval ARGS QUERY` and `opa eval --format=json ARGS
/// QUERY` and asserts the same values and bindings.
fn assert_eval_as_opa(args: &[&str], query: &str, case: &str) {
    let ours = Command::new(BIN)
        .args(["policy", "eval"])
        .args(args)
        .arg(query)
        .output()
        .unwrap();
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    let theirs = Command::new(opa())
        .args(["eval", "--format=json"])
        .args(args)
        .arg(query)
        .output()
        .unwrap();
    assert!(theirs.status.success(), "{}", text(&theirs.stderr));
    assert_eq!(
        values(&ours.stdout),
        values(&theirs.stdout),
        "{query} {case}"
    );
}

#[test]
fn policy_eval_answers_as_opa_eval_does() {
    let example = repo().join("crates/autoglm/tests/fixtures/opa-rbac");
    let rego = example.join("rbac.rego");
    let data = example.join("data.json");
    let dir = tempfile::tempdir().unwrap();
    let inputs = [
        r#"{"user": "alice", "action": "delete", "type": "dog"}"#,
        r#"{"user": "bob", "action": "update", "type": "finance"}"#,
        r#"{"user": "eve", "action": "update", "type": "dog"}"#,
        r#"{"user": "nobody", "action": "read", "type": "dog"}"#,
    ];
    let queries = [
        "data.app.rbac.allow",
        "data.app.rbac",
        "x := data.app.rbac.user_is_granted[_]; x.action == \"read\"",
    ];
    let mut compared = 0;
    for (i, input) in inputs.iter().enumerate() {
        let input_file = dir.path().join(format!("input-{i}.json"));
        std::fs::write(&input_file, input).unwrap();
        for query in queries {
            let args = [
                "-d",
                rego.to_str().unwrap(),
                "-d",
                data.to_str().unwrap(),
                "-i",
                input_file.to_str().unwrap(),
            ];
            assert_eval_as_opa(&args, query, &format!("with {input}"));
            compared += 1;
        }
    }
    assert_eq!(compared, 12);
}

#[test]
fn policy_eval_loads_a_folder_as_opa_eval_does() {
    let dir = tempfile::tempdir().unwrap();
    let root = &dir.path().join("data");
    std::fs::create_dir_all(root.join("teams/nlp")).unwrap();
    std::fs::create_dir_all(root.join("rules")).unwrap();
    std::fs::write(
        root.join("teams/nlp/members.json"),
        r#"{"members": ["alice", "bob"]}"#,
    )
    .unwrap();
    std::fs::write(root.join("teams/data.yaml"), "owners:\n  nlp: alice\n").unwrap();
    std::fs::write(root.join("limits.yml"), "max_replicas: 4\n").unwrap();
    std::fs::write(
        root.join("rules/authz.rego"),
        "package authz\n\nis_member(user, team) if user in data.teams[team].members\n\nallowed contains user if {\n\tsome user in data.teams.nlp.members\n\tdata.teams.owners.nlp == user\n}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("input.yaml"), "user: bob\n").unwrap();
    let rbac = repo().join("crates/autoglm/tests/fixtures/opa-rbac");
    let input = dir.path().join("input.yaml");
    let cases: [(&Path, &str); 4] = [
        (root, "data"),
        (root, "data.authz.allowed"),
        (root, "data.authz.is_member(input.user, \"nlp\")"),
        (&rbac, "data.app.rbac.user_is_granted"),
    ];
    for (folder, query) in cases {
        let args = [
            "-d",
            folder.to_str().unwrap(),
            "-i",
            input.to_str().unwrap(),
        ];
        assert_eval_as_opa(&args, query, &format!("over {}", folder.display()));
    }
    // The value alone, as OPA's raw and pretty formats print it.
    let raw = Command::new(BIN)
        .args([
            "policy",
            "eval",
            "-f",
            "raw",
            "-d",
            root.to_str().unwrap(),
            "data.teams.owners.nlp",
        ])
        .output()
        .unwrap();
    assert_eq!(text(&raw.stdout), "alice\n");
}

#[test]
fn bounded_ranges_answer_as_opa_does_within_their_bound() {
    let dir = tempfile::tempdir().unwrap();
    let rego = dir.path().join("p.rego");
    std::fs::write(&rego, "package p\n").unwrap();
    for query in [
        "numbers.range(1, 4)",
        "numbers.range(2, -1)",
        "numbers.range(3, 3)",
        "numbers.range_step(0, 10, 4)",
        "numbers.range_step(10, 0, 5)",
        "count(numbers.range(1, 100000))",
        "x := numbers.range(1.5, 3)",
    ] {
        assert_eval_as_opa(&["-d", rego.to_str().unwrap()], query, "ranges");
    }
    // Past the bound autoglm refuses where OPA would build the array.
    let ours = autoglm(&[
        "eval",
        "-d",
        rego.to_str().unwrap(),
        "numbers.range(1, 100000000)",
    ]);
    assert!(!ours.status.success());
    assert!(
        text(&ours.stderr).contains("would make 100000000 numbers; autoglm allows at most 100000"),
        "{}",
        text(&ours.stderr)
    );
}
