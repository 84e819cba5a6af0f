//! `autoglm model ...` and `autoglm apply/get/scale/delete` against a real
//! console: what a user types and sees.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use common::{BIN, Console};

fn cli(console: &Console, args: &[&str]) -> Output {
    let mut all = vec!["model"];
    all.extend_from_slice(args);
    autoglm(console, &all)
}

/// `autoglm ARGS --server URL` with the console's admin token.
fn autoglm(console: &Console, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--server", &console.url])
        .env("AUTOGLM_TOKEN", &console.token)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn safetensors() -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 8]);
    bytes
}

#[test]
fn create_push_list_get_delete() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(home.path(), &[]);
    let out = cli(
        &console,
        &[
            "create",
            "minilm",
            "--label",
            "team=nlp",
            "--description",
            "embeddings",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("model/minilm created"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.safetensors"), safetensors()).unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    let out = cli(
        &console,
        &[
            "push",
            "minilm",
            dir.path().to_str().unwrap(),
            "--task",
            "embeddings",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("version 1 created"), "{}", text(&out));

    let out = cli(&console, &["list", "-l", "team=nlp", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(items[0]["name"], "minilm");
    assert_eq!(items[0]["latest_version"], 1);
    let out = cli(&console, &["list", "-l", "team=vision", "-o", "json"]);
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        items.as_array().map(Vec::len),
        Some(0),
        "the label filter excludes it"
    );

    let out = cli(&console, &["get", "minilm"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("safetensors"), "{}", text(&out));

    let out = cli(&console, &["delete", "minilm"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = cli(&console, &["get", "minilm"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not_found"), "{}", text(&out));
}

#[test]
fn refusals_are_one_clear_line_with_the_right_exit_code() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(home.path(), &[]);
    let out = cli(&console, &["create", "Bad_Name"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the console refused: {}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid_name"),
        "{}",
        text(&out)
    );

    let out = cli(&console, &["create", "ok", "--label", "novalue"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "bad local input: {}",
        text(&out)
    );

    let out = cli(&console, &["push", "ok", "/nonexistent/file.gguf"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    let out = Command::new(BIN)
        .args(["model", "list", "--server", "http://127.0.0.1:9"])
        .env("AUTOGLM_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the console"),
        "{}",
        text(&out)
    );
}

const SERVICES_YAML: &str = "\
# Two services of one model, as a git repository would keep them.
apiVersion: autoglm.io/v1alpha1
kind: ModelService
metadata:
  name: chat
  labels: {team: nlp}
spec:
  model: smollm2
  versions:
    - {version: \"1\", weight: 90}
    - {version: \"2\", weight: 10}
  replicas: 2
---
apiVersion: autoglm.io/v1alpha1
kind: ModelService
metadata:
  name: batch
spec:
  model: smollm2
  versions:
    - version: \"2\"
      weight: 100
  autoscaling:
    minReplicas: 0
    maxReplicas: 4
    targetInFlight: 2
";

#[test]
fn apply_get_scale_and_delete_services() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(home.path(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("model.safetensors");
    std::fs::write(&weights, safetensors()).unwrap();
    assert!(cli(&console, &["create", "smollm2"]).status.success());
    for _ in 0..2 {
        let out = cli(&console, &["push", "smollm2", weights.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
    }

    let file = dir.path().join("services.yaml");
    std::fs::write(&file, SERVICES_YAML).unwrap();
    let file = file.to_str().unwrap();
    let out = autoglm(&console, &["apply", "-f", file]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "modelservice/chat created\nmodelservice/batch created\n"
    );
    // apply waited for both deploy tasks and said how they went.
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains("modelservice/chat: task 1 deploy services/chat: succeeded"),
        "{stderr}"
    );
    assert!(
        stderr.contains("modelservice/batch: task 2 deploy services/batch: succeeded"),
        "{stderr}"
    );
    let out = autoglm(&console, &["get", "tasks"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with(
            "ID   KIND     TARGET           STATE       PROGRESS   ATTEMPTS   AGE   MESSAGE"
        ),
        "{table}"
    );
    assert!(
        lines[1].starts_with("2    deploy   services/batch   succeeded   100%       1"),
        "{table}"
    );
    let out = autoglm(&console, &["wait", "task", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = autoglm(&console, &["get", "task", "1", "-o", "json"]);
    let task: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(task["state"], "succeeded");
    let out = autoglm(&console, &["wait", "task", "99"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not_found"), "{}", text(&out));
    let out = autoglm(&console, &["wait", "task", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    let out = autoglm(&console, &["get", "services"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("NAME    MODEL     VERSIONS    REPLICAS   READY   AGE"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("batch   smollm2   2:100       0-4        0/1"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("chat    smollm2   1:90,2:10   2          0/4"),
        "{table}"
    );

    let out = autoglm(&console, &["get", "service", "chat", "-o", "yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    let yaml = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        yaml.starts_with("---\napiVersion: autoglm.io/v1alpha1\nkind: ModelService\n"),
        "{yaml}"
    );
    assert!(yaml.contains("generation: 1"), "{yaml}");
    assert!(yaml.contains("reason: Pending"), "{yaml}");
    let out = autoglm(&console, &["get", "svc", "chat", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["spec"]["versions"][1]["weight"], 10);

    // Applying the same file again changes nothing; nor does applying what get printed.
    let out = autoglm(&console, &["apply", "-f", file]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "modelservice/chat unchanged\nmodelservice/batch unchanged\n"
    );
    let printed = dir.path().join("printed.yaml");
    std::fs::write(&printed, &yaml).unwrap();
    let out = autoglm(&console, &["apply", "-f", printed.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "modelservice/chat unchanged\n",
        "{}",
        text(&out)
    );
    // A changed split is configured: a new generation.
    std::fs::write(
        dir.path().join("services.yaml"),
        SERVICES_YAML
            .replace("weight: 90}", "weight: 80}")
            .replace("weight: 10}", "weight: 20}"),
    )
    .unwrap();
    let out = autoglm(&console, &["apply", "-f", file]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "modelservice/chat configured\nmodelservice/batch unchanged\n",
        "{}",
        text(&out)
    );

    let out = autoglm(&console, &["scale", "service", "chat", "--replicas", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "modelservice/chat scaled\n"
    );
    let out = autoglm(&console, &["scale", "service", "batch", "--replicas", "3"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("invalid_transition"), "{}", text(&out));
    let out = autoglm(&console, &["get", "service", "chat", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["spec"]["replicas"], 3);
    assert_eq!(json["metadata"]["generation"], 3);

    // The model is kept while services serve it.
    let out = cli(&console, &["delete", "smollm2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("in_use"), "{}", text(&out));

    let out = autoglm(&console, &["delete", "service", "chat", "batch"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "modelservice/chat deleted\nmodelservice/batch deleted\n"
    );
    let out = autoglm(&console, &["get", "service", "chat"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not_found"), "{}", text(&out));
    let out = autoglm(&console, &["get", "services"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("No services found."), "{}", text(&out));
}

#[test]
fn bad_manifests_apply_nothing_and_say_where() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(home.path(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    let broken = SERVICES_YAML.replace("  replicas: 2\n", "  replicas: 2\n    oops: [\n");
    std::fs::write(&path, broken).unwrap();
    let out = autoglm(&console, &["apply", "-f", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: {}: ", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("line 13"), "{stderr}");

    // Valid YAML, invalid spec: refused locally, with the document and the field.
    std::fs::write(&path, SERVICES_YAML.replace("weight: 100", "weight: 60")).unwrap();
    let out = autoglm(&console, &["apply", "-f", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("(document 2): spec.versions: weights sum to 60"),
        "{}",
        text(&out)
    );
    // A version the registry does not have: the console refuses, naming the field.
    std::fs::write(&path, SERVICES_YAML).unwrap();
    let out = autoglm(&console, &["apply", "-f", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out)
            .contains("(document 1): invalid_body: spec.model: model \"smollm2\" does not exist"),
        "{}",
        text(&out)
    );
    let out = autoglm(&console, &["get", "services", "-o", "json"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[]",
        "{}",
        text(&out)
    );

    let out = autoglm(&console, &["apply", "-f", "/nonexistent/services.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = autoglm(&console, &["get", "pods"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// `model pull` is what every Kubernetes replica's init container runs.
#[test]
fn pull_downloads_a_version_checked_and_only_what_is_missing() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(home.path(), &[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tokenizer")).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), safetensors()).unwrap();
    std::fs::write(dir.path().join("tokenizer/vocab.json"), r#"{"a": 1}"#).unwrap();
    assert!(cli(&console, &["create", "minilm"]).status.success());
    let out = cli(&console, &["push", "minilm", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));

    let into = tempfile::tempdir().unwrap();
    let target = into.path().join("models/minilm/1");
    let pull = || {
        cli(
            &console,
            &[
                "pull",
                "minilm",
                "--version",
                "1",
                "--to",
                target.to_str().unwrap(),
            ],
        )
    };
    let out = pull();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("2 files in"), "{}", text(&out));
    assert!(text(&out).contains("(2 downloaded)"), "{}", text(&out));
    assert_eq!(
        std::fs::read(target.join("model.safetensors")).unwrap(),
        safetensors()
    );
    assert_eq!(
        std::fs::read_to_string(target.join("tokenizer/vocab.json")).unwrap(),
        r#"{"a": 1}"#
    );

    // A second pull keeps what is intact and replaces what is not.
    std::fs::write(target.join("tokenizer/vocab.json"), r#"{"a": 2}"#).unwrap();
    let out = pull();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("(1 downloaded)"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(target.join("tokenizer/vocab.json")).unwrap(),
        r#"{"a": 1}"#
    );
    let leftovers: Vec<_> = std::fs::read_dir(target.join("tokenizer"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["vocab.json"], "no partial files stay behind");

    let out = cli(
        &console,
        &[
            "pull",
            "minilm",
            "--version",
            "7",
            "--to",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not_found"), "{}", text(&out));
    let out = cli(
        &console,
        &[
            "pull",
            "minilm",
            "--version",
            "0",
            "--to",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// `autoglm render` and `autoglm crd` are offline: bad input is one line on
/// stderr, exit code 2, and nothing on stdout.
#[test]
fn render_refuses_what_cannot_run_on_kubernetes_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, spec: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("apiVersion: autoglm.io/v1alpha1\nkind: ModelService\nmetadata: {{name: chat}}\nspec: {spec}\n")).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let render = |args: &[&str]| Command::new(BIN).arg("render").args(args).output().unwrap();
    let cases = [
        (
            write(
                "weights.yaml",
                r#"{model: m, versions: [{version: "1", weight: 60}]}"#,
            ),
            "weights.yaml: spec.versions: weights sum to 60; they must sum to exactly 100",
        ),
        (
            write(
                "command.yaml",
                r#"{model: m, versions: [{version: "1", weight: 100}], runtime: {command: {command: [srv, "{port}"]}}}"#,
            ),
            "command.yaml: spec.runtime.command runs a program on the local platform only",
        ),
        (
            write(
                "hpa.yaml",
                r#"{model: m, versions: [{version: "1", weight: 100}], autoscaling: {maxReplicas: 2, targetInFlight: 1, hpa: {cpu: 70}}}"#,
            ),
            "spec.autoscaling.hpa.cpu: a cpu target is a percentage of spec.resources.cpu, which is not set",
        ),
        (
            dir.path().join("missing.yaml").display().to_string(),
            "missing.yaml",
        ),
    ];
    for (path, message) in &cases {
        let out = render(&["-f", path]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            out.stdout.is_empty(),
            "nothing is printed for a refused file"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("error: ") && stderr.contains(message),
            "{message:?} not in {stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
    // One bad document among good ones renders nothing.
    let good = write(
        "good.yaml",
        r#"{model: m, versions: [{version: "1", weight: 100}]}"#,
    );
    let out = render(&["-f", &good, "-f", &cases[0].0]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let out = render(&["-f", &good, "-n", "team-b"]);
    assert!(out.status.success(), "{}", text(&out));
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert_eq!(yaml.matches("namespace: team-b").count(), 5, "{yaml}");

    let crd = Command::new(BIN).arg("crd").output().unwrap();
    assert!(crd.status.success());
    assert!(String::from_utf8_lossy(&crd.stdout).contains("name: modelservices.autoglm.io"));
}
