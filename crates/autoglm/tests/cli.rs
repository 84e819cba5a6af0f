//! `autoglm model ...` against a real console: what a user types and sees.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use common::{BIN, Console};

fn cli(console: &Console, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("model")
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
