//! The Nacos-compatible config API against real Nacos clients: the Python
//! client 2.0.9 over HTTP v1 (login, get, publish, remove, the listener
//! long-poll seeing a change made through autoglm's own API), raw v1 and v2
//! requests for every refusal Nacos clients can meet, and the audit trail.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const LISTENER: &str = "/nacos/v1/cs/configs/listener";

fn nacos_http_path(python: &str) -> String {
    // python-env.sh unpacks the 2.0.9 wheel beside the environment.
    let env = std::path::Path::new(python)
        .parent()
        .unwrap()
        .parent()
        .unwrap();
    env.join("nacos-2.0.9").to_str().unwrap().to_owned()
}

async fn publish_via_api(console: &Console, env: &str, key: &str, content: &str) -> Value {
    let r = console
        .client()
        .put(console.api(&format!(
            "/api/v1/config/environments/{env}/keys/DEFAULT_GROUP/{key}"
        )))
        .bearer_auth(&console.token)
        .json(&json!({"content": content}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

/// A Nacos client process in its own process group, with whatever it forks
/// (the 2.0.x client long-polls from a multiprocessing child that outlives
/// its parent): the whole group is killed on drop, panic or not.
struct ClientGroup(std::process::Child);

impl Drop for ClientGroup {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_nacos_2_client_reads_writes_and_watches_over_http() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(&home.path().join("home"), &[]);
    let nacos = console.nacos.clone().expect("the Nacos API listens");
    let addr = nacos.trim_start_matches("http://").to_owned();
    let password = std::fs::read_to_string(home.path().join("home/admin-password")).unwrap();
    let python = client_python();
    let work = home.path().join("client");
    std::fs::create_dir_all(&work).unwrap();
    let mut child = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/nacos_v1_client.py"
        ))
        .args([&addr, "admin", password.trim(), work.to_str().unwrap()])
        .env("PYTHONPATH", nacos_http_path(&python))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(home.path().join("client.log")).unwrap())
        .process_group(0)
        .spawn()
        .map(ClientGroup)
        .unwrap();
    let mut out = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let first = out.next().unwrap().unwrap_or_default();
    let log = || std::fs::read_to_string(home.path().join("client.log")).unwrap_or_default();
    assert_eq!(first, "watching", "the client failed: {}", log());
    // The watcher's long-poll is parked on app.json; a publish through the
    // console's own API must reach it.
    publish_via_api(&console, "dev", "app.json", "{\"a\": 2}").await;
    child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let seen: Value = serde_json::from_str(&out.next().unwrap().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {}", log()));
    let _ = child.0.wait();
    assert_eq!(seen["absent"], Value::Null, "{seen}");
    assert_eq!(seen["published"], true, "{seen}");
    assert_eq!(seen["read"], "{\"a\": 1}", "{seen}");
    assert!(
        seen["invalid"].as_str().unwrap().contains("400"),
        "broken JSON must be refused: {seen}"
    );
    assert!(
        seen["events"]
            .as_array()
            .unwrap()
            .contains(&json!("{\"a\": 2}")),
        "the watcher missed the change: {seen}"
    );
    assert_eq!(seen["staging_published"], true, "{seen}");
    assert_eq!(seen["staging_read"], "rps: 5\n", "{seen}");
    assert_eq!(seen["removed"], true, "{seen}");
    assert_eq!(seen["after_remove"], Value::Null, "{seen}");

    // What the client wrote is a version like any other, by its user, audited.
    let history: Value = console
        .client()
        .get(console.api("/api/v1/config/environments/dev/keys/DEFAULT_GROUP/app.json/versions"))
        .bearer_auth(&console.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let authors: Vec<_> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["author"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(authors.len(), 2);
    assert_eq!(authors[1], "user:admin", "the Nacos publish is version 1");
    let staged: Value = console
        .client()
        .get(console.api("/api/v1/config/environments/staging/keys/models/limits.yaml/versions"))
        .bearer_auth(&console.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<_> = staged["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["format"].as_str().unwrap(),
                v["deleted"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("yaml", true), ("yaml", false)],
        "yaml from the extension, then the remove"
    );
    let audit: Value = console
        .client()
        .get(console.api("/api/v1/audit?action=config.keys.publish"))
        .bearer_auth(&console.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let outcomes: Vec<_> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        outcomes.iter().any(|o| o == "invalid_body"),
        "the refused publish is audited: {outcomes:?}"
    );
}

#[tokio::test]
async fn the_nacos_3_client_reads_writes_and_hears_pushes_over_grpc() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(&home.path().join("home"), &[]);
    let addr = console
        .nacos
        .clone()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();
    let password = std::fs::read_to_string(home.path().join("home/admin-password")).unwrap();
    let work = home.path().join("client");
    std::fs::create_dir_all(&work).unwrap();
    let mut child = Command::new(client_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/nacos_grpc_client.py"
        ))
        .args([&addr, "admin", password.trim(), work.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(home.path().join("client.log")).unwrap())
        .process_group(0)
        .spawn()
        .map(ClientGroup)
        .unwrap();
    let mut out = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let log = || std::fs::read_to_string(home.path().join("client.log")).unwrap_or_default();
    let first = out.next().unwrap().unwrap_or_default();
    assert_eq!(first, "watching", "the client failed: {}", log());
    publish_via_api(&console, "dev", "app.yaml", "a: 2\n").await;
    child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let line = out.next().unwrap().unwrap_or_default();
    let _ = child.0.wait();
    let seen: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?} {}", log()));
    assert_eq!(seen["absent"], "", "{seen}");
    assert_eq!(seen["published"], true, "{seen}");
    assert_eq!(
        seen["heard_own"], true,
        "the listener missed its own publish: {seen}"
    );
    assert_eq!(
        seen["heard_console"], true,
        "the push of a console publish never came: {seen}"
    );
    assert_eq!(seen["read"], "a: 2\n", "{seen}");
    assert_eq!(seen["removed"], true, "{seen}");
    assert_eq!(seen["heard_remove"], true, "{seen}");
    assert!(
        seen["invalid"].as_str().unwrap().contains("not valid yaml"),
        "{seen}"
    );
}

/// What a refusal case sends and expects: a name, the method, the URL, form
/// fields, headers, the status and a word of the body.
type Case = (
    &'static str,
    reqwest::Method,
    String,
    Vec<(String, String)>,
    Vec<(&'static str, &'static str)>,
    u16,
    &'static str,
);

async fn nacos_call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut request = http.request(method, url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let r = request.form(form).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn raw_nacos_requests_get_nacos_answers_and_refusals_change_nothing() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(&home.path().join("home"), &[]);
    let nacos = console.nacos.clone().unwrap();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{nacos}{path}");
    use reqwest::Method;

    // Login: any name with an API key as the password; wrong ones are 403.
    let (status, body) = nacos_call(
        &http,
        Method::POST,
        &url(&format!(
            "/nacos/v1/auth/users/login?username=anyone&password={}",
            console.token
        )),
        &[],
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let login: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(login["accessToken"], console.token.as_str());
    assert!(login["tokenTtl"].as_u64().unwrap() > 60);
    let (status, _) = nacos_call(
        &http,
        Method::POST,
        &url("/nacos/v1/auth/login?username=admin&password=wrong-password"),
        &[],
        &[],
    )
    .await;
    assert_eq!(status, 403);
    let token = console.token.clone();
    let q = |rest: &str| url(&format!("/nacos/v1/cs/configs?accessToken={token}&{rest}"));

    // Publish, read with Nacos' headers, v2's envelope.
    let (status, body) = nacos_call(
        &http,
        Method::POST,
        &url(&format!("/nacos/v1/cs/configs?accessToken={token}")),
        &[
            ("dataId", "svc.json"),
            ("group", "DEFAULT_GROUP"),
            ("content", "{\"x\": 1}"),
            ("type", "json"),
        ],
        &[],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "true"));
    let r = http
        .get(q("dataId=svc.json&group=DEFAULT_GROUP"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["config-type"], "json");
    assert_eq!(
        r.headers()["content-md5"],
        autoglm_core::config::md5_hex("{\"x\": 1}").as_str()
    );
    assert_eq!(r.text().await.unwrap(), "{\"x\": 1}");
    let v2: Value = http.get(url(&format!("/nacos/v2/cs/config?dataId=svc.json&group=DEFAULT_GROUP&namespaceId=public&accessToken={token}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        v2,
        json!({"code": 0, "message": "success", "data": "{\"x\": 1}"})
    );
    let (status, body) = nacos_call(
        &http,
        Method::GET,
        &url(&format!(
            "/nacos/v2/cs/config?dataId=nope&group=DEFAULT_GROUP&accessToken={token}"
        )),
        &[],
        &[],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["code"], 20004);

    // Refusals, each with nothing stored.
    let md5 = autoglm_core::config::md5_hex("{\"x\": 1}");
    let listen = |line: String| vec![("Listening-Configs".to_owned(), line)];
    let cases: Vec<Case> = vec![
        (
            "no token",
            Method::GET,
            url("/nacos/v1/cs/configs?dataId=svc.json&group=DEFAULT_GROUP"),
            vec![],
            vec![],
            403,
            "accessToken",
        ),
        (
            "bad token",
            Method::GET,
            url("/nacos/v1/cs/configs?dataId=svc.json&group=DEFAULT_GROUP&accessToken=agk_nope"),
            vec![],
            vec![],
            403,
            "not valid",
        ),
        (
            "missing dataId",
            Method::GET,
            q("group=DEFAULT_GROUP"),
            vec![],
            vec![],
            400,
            "dataId",
        ),
        (
            "dataId with ..",
            Method::POST,
            q(""),
            vec![
                ("dataId".into(), "a..b".into()),
                ("content".into(), "x".into()),
            ],
            vec![],
            400,
            "invalid dataId",
        ),
        (
            "dataId with /",
            Method::POST,
            q(""),
            vec![
                ("dataId".into(), "a/b".into()),
                ("content".into(), "x".into()),
            ],
            vec![],
            400,
            "invalid dataId",
        ),
        (
            "content invalid for its type",
            Method::POST,
            q(""),
            vec![
                ("dataId".into(), "c.yaml".into()),
                ("content".into(), "a: [1".into()),
            ],
            vec![],
            400,
            "not valid yaml",
        ),
        (
            "blank content",
            Method::POST,
            q(""),
            vec![
                ("dataId".into(), "c.txt".into()),
                ("content".into(), "  ".into()),
            ],
            vec![],
            400,
            "blank",
        ),
        (
            "unknown namespace",
            Method::POST,
            q("tenant=qa"),
            vec![
                ("dataId".into(), "c.txt".into()),
                ("content".into(), "x".into()),
            ],
            vec![],
            400,
            "qa",
        ),
        (
            "stale casMd5",
            Method::POST,
            q(""),
            vec![
                ("dataId".into(), "svc.json".into()),
                ("content".into(), "{}".into()),
            ],
            vec![("casMd5", "00000000000000000000000000000000")],
            409,
            "is at version 1",
        ),
        (
            "listener md5 not hex",
            Method::POST,
            url(&format!("{LISTENER}?accessToken={token}")),
            listen("svc.json\u{2}DEFAULT_GROUP\u{2}zz\u{2}\u{1}".into()),
            vec![],
            400,
            "invalid probeModify",
        ),
        (
            "listener missing separator",
            Method::POST,
            url(&format!("{LISTENER}?accessToken={token}")),
            listen("svc.json\u{2}DEFAULT_GROUP\u{1}".into()),
            vec![],
            400,
            "invalid probeModify",
        ),
        (
            "listener empty",
            Method::POST,
            url(&format!("{LISTENER}?accessToken={token}")),
            vec![],
            vec![],
            400,
            "invalid probeModify",
        ),
        (
            "listener unknown namespace",
            Method::POST,
            url(&format!("{LISTENER}?accessToken={token}")),
            listen(format!("svc.json\u{2}DEFAULT_GROUP\u{2}{md5}\u{2}qa\u{1}")),
            vec![],
            400,
            "qa",
        ),
    ];
    let writes_before = console_writes(&console).await;
    for (what, method, target, form, headers, status, needle) in cases {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (got, body) = nacos_call(&http, method, &target, &form, &headers).await;
        assert_eq!(got, status, "{what}: {body}");
        assert!(body.contains(needle), "{what}: {needle:?} not in {body:?}");
    }
    assert_eq!(
        console_writes(&console).await,
        writes_before,
        "a refused Nacos call changed a key"
    );
    let r = http
        .get(q("dataId=svc.json&group=DEFAULT_GROUP"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "{\"x\": 1}");

    // The listener: the md5 held answers nothing (No-Hangup), a stale one
    // names the key with the tenant echoed as sent, URL-encoded.
    let (status, body) = nacos_call(
        &http,
        Method::POST,
        &url(&format!("{LISTENER}?accessToken={token}")),
        &[(
            "Listening-Configs",
            &format!("svc.json\u{2}DEFAULT_GROUP\u{2}{md5}\u{2}\u{1}"),
        )],
        &[
            ("Long-Pulling-Timeout", "30000"),
            ("Long-Pulling-Timeout-No-Hangup", "true"),
        ],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, body) = nacos_call(
        &http,
        Method::POST,
        &url(&format!("{LISTENER}?accessToken={token}")),
        &[(
            "Listening-Configs",
            "svc.json\u{2}DEFAULT_GROUP\u{2}\u{2}public\u{1}",
        )],
        &[("Long-Pulling-Timeout", "30000")],
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, "svc.json%02DEFAULT_GROUP%02public%01\n")
    );
    // A held poll is answered by a publish through the console's API.
    let held = {
        let (http, url, md5) = (
            http.clone(),
            url(&format!("{LISTENER}?accessToken={token}")),
            md5.clone(),
        );
        tokio::spawn(async move {
            nacos_call(
                &http,
                Method::POST,
                &url,
                &[(
                    "Listening-Configs",
                    &format!("svc.json\u{2}DEFAULT_GROUP\u{2}{md5}\u{1}"),
                )],
                &[("Long-Pulling-Timeout", "30000")],
            )
            .await
        })
    };
    // Parked or not yet arrived, the poll must end naming the key: a poll
    // that comes after the publish holds a stale md5 and is answered at once.
    publish_via_api(&console, "dev", "svc.json", "{\"x\": 2}").await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "svc.json%02DEFAULT_GROUP%01\n")
    );
}

/// How many changes the audit has recorded as successful config writes.
async fn console_writes(console: &Console) -> usize {
    let audit: Value = console
        .client()
        .get(console.api("/api/v1/audit?outcome=success&limit=1000"))
        .bearer_auth(&console.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"].as_str().unwrap().starts_with("config."))
        .count()
}

#[tokio::test]
async fn a_config_policy_refuses_a_nacos_publish_in_the_consoles_words() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(&home.path().join("home"), &[]);
    let nacos = console.nacos.clone().unwrap();
    let http = reqwest::Client::new();
    let rego = "package configs\n\ndeny contains msg if {\n  \
        contains(input.resource.spec.content, \"debug: true\")\n  \
        msg := sprintf(\"config %s turns debug on in %s\", [input.name, input.environment])\n}\n";
    let (status, body) = console
        .call(
            &http,
            reqwest::Method::PUT,
            "/api/v1/policies/no-debug",
            Some(json!({"rego": rego, "kinds": ["Config"]})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");

    let publish = |content: &'static str| {
        let (http, nacos, token) = (http.clone(), nacos.clone(), console.token.clone());
        async move {
            nacos_call(
                &http,
                reqwest::Method::POST,
                &format!("{nacos}/nacos/v1/cs/configs?accessToken={token}"),
                &[
                    ("dataId", "app.yaml"),
                    ("group", "DEFAULT_GROUP"),
                    ("content", content),
                    ("type", "yaml"),
                ],
                &[],
            )
            .await
        }
    };
    let (status, body) = publish("debug: true\n").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains(
            "policy no-debug (deny): config DEFAULT_GROUP/app.yaml turns debug on in dev"
        ),
        "{body}"
    );
    let (status, _) = console
        .call(
            &http,
            reqwest::Method::GET,
            "/api/v1/config/environments/dev/keys/DEFAULT_GROUP/app.yaml",
            None,
        )
        .await;
    assert_eq!(
        status,
        reqwest::StatusCode::NOT_FOUND,
        "a refused publish is not kept"
    );
    let (status, body) = publish("debug: false\n").await;
    assert_eq!((status, body.as_str()), (200, "true"));
}
