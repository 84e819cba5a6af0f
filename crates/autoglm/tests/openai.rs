//! `autoglm up` as a user meets it: the demo models are registered and
//! deployed on the built-in engine, and the official `openai` Python package
//! (pinned, installed by `scripts/python-env.sh` into a cache) does chat,
//! streamed chat and embeddings through the gateway with an API key.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::Up;
use serde_json::Value;

const CLIENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openai_client.py"
);
#[test]
fn the_official_openai_client_chats_streams_and_embeds_through_the_gateway() {
    let python = common::client_python();
    // The demo finds the models in the cache; fetch them first under the tests' lock.
    autoglm_testmodels::path(autoglm_testmodels::SMOLLM2);
    autoglm_testmodels::path(autoglm_testmodels::MINILM);
    let home = tempfile::tempdir().unwrap();
    let up = Up::start_with(&home.path().join("home"), &[]);
    let banner = up.wait_for_line("demo services deployed", Duration::from_secs(120));
    assert!(banner.contains("chat"), "{banner}");
    let curl = up.wait_for_line("curl -s", Duration::from_secs(5));
    assert!(
        curl.contains(&format!("{}/v1/chat/completions", up.gateway)),
        "{curl}"
    );

    // A key made for the purpose, as a user would.
    let http = reqwest::blocking::Client::new();
    let key: Value = http
        .post(up.console.api("/api/v1/keys"))
        .bearer_auth(&up.console.token)
        .json(&serde_json::json!({"name": "openai-client", "scopes": ["services:invoke"]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let secret = key["secret"].as_str().unwrap();

    let out = Command::new(&python)
        .args([CLIENT, &up.gateway, secret])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("OK"),
        "the openai client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same printed curl line works as printed.
    common::assert_printed_curl_answers(&curl, home.path());

    // Usage of the client's key, per service, as the runtime counted it.
    std::thread::sleep(Duration::from_millis(2500));
    let usage: Vec<Value> = http
        .get(up.console.api(&format!(
            "/api/v1/usage?key={}",
            key["id"].as_str().unwrap()
        )))
        .bearer_auth(&up.console.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let of = |service: &str, field: &str| -> u64 {
        usage
            .iter()
            .filter(|r| r["service"] == service)
            .map(|r| r[field].as_u64().unwrap())
            .sum()
    };
    assert_eq!(of("chat", "requests"), 4, "{usage:?}");
    assert!(of("chat", "completion_tokens") > 0, "{usage:?}");
    assert_eq!(of("embeddings", "requests"), 1, "{usage:?}");
    assert!(of("embeddings", "prompt_tokens") > 0, "{usage:?}");
}
