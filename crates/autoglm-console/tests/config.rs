//! The config center through the console's router: versions, history, diffs
//! and rollback; snapshots; promotions all or nothing; protected environments
//! with change requests; long-poll and event-stream watchers in the
//! thousands; and every bad input refused with nothing stored.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use autoglm_core::rbac::Role;
use axum::body::Body;
use axum::http::{Method, header};
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const KEY: &str = "/api/v1/config/environments/dev/keys/DEFAULT_GROUP/model-manager.json";
const MODULE: &str = r#"{"module": "model-manager", "sync_interval": "30s", "enable_hot_reload": true, "metrics_exporter": "prometheus"}"#;

fn key_url(env: &str, key: &str) -> String {
    format!("/api/v1/config/environments/{env}/keys/DEFAULT_GROUP/{key}")
}

async fn put(app: &axum::Router, uri: &str, token: &str, body: Value) -> Resp {
    call(app, Method::PUT, uri, Some(token), Some(body)).await
}

async fn history_len(app: &axum::Router, uri: &str, token: &str) -> usize {
    let resp = get(app, &format!("{uri}/versions"), token).await;
    if resp.status == 404 {
        return 0;
    }
    resp.expect(200).json()["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn publishes_keep_every_version_and_rollback_brings_back_the_exact_bytes() {
    let c = console();
    let (app, admin) = (&c.app, c.admin.as_str());
    let v1 = put(
        app,
        KEY,
        admin,
        json!({"content": MODULE, "message": "first"}),
    )
    .await
    .expect(201)
    .json();
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["format"], "json", "the format comes from the extension");
    assert_eq!(v1["md5"], autoglm_core::config::md5_hex(MODULE));
    assert!(
        v1["author"].as_str().unwrap().starts_with("key:"),
        "the admin's API key: {v1}"
    );
    let changed = MODULE.replace("30s", "10s");
    let v2 = put(
        app,
        KEY,
        admin,
        json!({"content": changed, "baseMd5": v1["md5"]}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(v2["version"], 2);
    // The same content again makes no version.
    let same = put(app, KEY, admin, json!({"content": changed}))
        .await
        .expect(200)
        .json();
    assert_eq!(same["version"], 2);
    assert_eq!(get_json(app, KEY, admin).await["content"], changed);
    let history = get_items(app, &format!("{KEY}/versions"), admin).await;
    assert_eq!(
        history
            .iter()
            .map(|v| v["version"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(
        get_json(app, &format!("{KEY}/versions/1"), admin).await["content"],
        MODULE
    );
    let diff = get_json(app, &format!("{KEY}/diff"), admin).await;
    assert_eq!(
        (diff["from"].as_u64(), diff["to"].as_u64()),
        (Some(1), Some(2))
    );
    let unified = diff["unified"].as_str().unwrap();
    assert!(unified.starts_with("--- dev/DEFAULT_GROUP/model-manager.json@1\n+++ dev/DEFAULT_GROUP/model-manager.json@2\n"), "{unified}");
    assert!(
        unified.contains(&format!("-{MODULE}")) && unified.contains(&format!("+{changed}")),
        "{unified}"
    );
    let back = post(
        app,
        &format!("{KEY}/rollback"),
        admin,
        json!({"version": 1}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(
        (back["version"].as_u64(), back["message"].as_str()),
        (Some(3), Some("rollback to version 1"))
    );
    assert_eq!(get_json(app, KEY, admin).await["content"], MODULE);
    assert_eq!(back["md5"], v1["md5"]);
    // A delete is a version; the history stays and reads go 404.
    delete(app, KEY, admin).await.expect(204);
    assert_problem(&get(app, KEY, admin).await, 404, "not_found");
    assert_eq!(history_len(app, KEY, admin).await, 4);
    let records = audit(app, admin, "action=config.keys.publish").await;
    assert_eq!(
        records.len(),
        3,
        "every publish is audited, the unchanged one too: {records:?}"
    );
}

#[tokio::test]
async fn bad_input_is_refused_clearly_and_stores_nothing() {
    let c = console();
    let (app, admin) = (&c.app, c.admin.as_str());
    let base = put(
        app,
        &key_url("dev", "app.yaml"),
        admin,
        json!({"content": "a: 1\n"}),
    )
    .await
    .expect(201)
    .json();
    let writes = c.state.store.write_count();
    let bad: Vec<(&str, String, Value, u16, &str, &str)> = vec![
        (
            "invalid json",
            key_url("dev", "x.json"),
            json!({"content": "{\"a\": 1,}"}),
            422,
            "invalid_body",
            "line 1",
        ),
        (
            "invalid yaml",
            key_url("dev", "x.yaml"),
            json!({"content": "a: [1, 2\n"}),
            422,
            "invalid_body",
            "not valid yaml",
        ),
        (
            "invalid toml",
            key_url("dev", "x.toml"),
            json!({"content": "a = \n"}),
            422,
            "invalid_body",
            "not valid toml at line 1",
        ),
        (
            "invalid properties",
            key_url("dev", "x.properties"),
            json!({"content": "a=\\uZZZZ"}),
            422,
            "invalid_body",
            "\\\\uxxxx",
        ),
        (
            "format named wrong",
            key_url("dev", "x.txt"),
            json!({"content": "{", "format": "json"}),
            422,
            "invalid_body",
            "not valid json",
        ),
        (
            "unknown format",
            key_url("dev", "x.txt"),
            json!({"content": "", "format": "xml"}),
            422,
            "invalid_body",
            "xml",
        ),
        (
            "key with ..",
            key_url("dev", "a..b"),
            json!({"content": "x"}),
            400,
            "invalid_path",
            "..",
        ),
        (
            "key with /",
            key_url("dev", "a%2Fb"),
            json!({"content": "x"}),
            400,
            "invalid_path",
            "'/'",
        ),
        (
            "over 1 MiB",
            key_url("dev", "big.txt"),
            json!({"content": "x".repeat(1024 * 1024 + 1)}),
            422,
            "invalid_body",
            "limit",
        ),
        (
            "10 MB",
            key_url("dev", "huge.txt"),
            json!({"content": "x".repeat(10_000_000)}),
            413,
            "payload_too_large",
            "larger",
        ),
        (
            "unknown environment",
            key_url("qa", "x.txt"),
            json!({"content": "x"}),
            404,
            "not_found",
            "dev, prod, staging, test",
        ),
        (
            "stale base md5",
            key_url("dev", "app.yaml"),
            json!({"content": "a: 2\n", "baseMd5": "0".repeat(32)}),
            409,
            "generation_mismatch",
            "is at version 1",
        ),
        (
            "stale base version",
            key_url("dev", "app.yaml"),
            json!({"content": "a: 2\n", "baseVersion": 7}),
            409,
            "generation_mismatch",
            "is at version 1",
        ),
        (
            "base md5 not hex",
            key_url("dev", "app.yaml"),
            json!({"content": "a: 2\n", "baseMd5": "nothex"}),
            422,
            "invalid_body",
            "hex",
        ),
    ];
    for (what, uri, body, status, code, detail) in bad {
        let resp = put(app, &uri, admin, body).await;
        assert_problem(&resp, status, code);
        let text = resp.text();
        assert!(text.contains(detail), "{what}: {detail:?} not in {text}");
    }
    assert_eq!(
        c.state.store.write_count(),
        writes,
        "a refused publish wrote"
    );
    assert_eq!(
        get_json(app, &key_url("dev", "app.yaml"), admin).await["md5"],
        base["md5"]
    );
    for key in [
        "x.json",
        "x.yaml",
        "x.toml",
        "x.properties",
        "x.txt",
        "big.txt",
        "huge.txt",
    ] {
        assert_eq!(
            history_len(app, &key_url("dev", key), admin).await,
            0,
            "{key} was stored"
        );
    }
    // Refusals of writes are in the audit with their code.
    let refused = audit(
        app,
        admin,
        "action=config.keys.publish&outcome=generation_mismatch",
    )
    .await;
    assert_eq!(refused.len(), 2);
}

#[tokio::test]
async fn a_snapshot_restores_exactly_the_bytes_it_held() {
    let c = console();
    let (app, admin) = (&c.app, c.admin.as_str());
    let files = [
        ("a.yaml", "a: 1\n"),
        ("b.txt", "no newline at the end"),
        ("c.json", "{\"ü\": \"€\"}"),
    ];
    for (key, content) in files {
        put(
            app,
            &key_url("staging", key),
            admin,
            json!({"content": content}),
        )
        .await
        .expect(201);
    }
    post(
        app,
        "/api/v1/config/environments/staging/snapshots",
        admin,
        json!({"name": "release-1"}),
    )
    .await
    .expect(201);
    put(
        app,
        &key_url("staging", "a.yaml"),
        admin,
        json!({"content": "a: 2\n"}),
    )
    .await
    .expect(200);
    delete(app, &key_url("staging", "b.txt"), admin)
        .await
        .expect(204);
    put(
        app,
        &key_url("staging", "new.txt"),
        admin,
        json!({"content": "made later"}),
    )
    .await
    .expect(201);
    let restored = post(
        app,
        "/api/v1/config/environments/staging/snapshots/release-1/restore",
        admin,
        json!({}),
    )
    .await
    .expect(200)
    .json();
    let actions: Vec<_> = restored["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["key"].as_str().unwrap(), c["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("a.yaml", "update"),
            ("b.txt", "create"),
            ("new.txt", "delete")
        ]
    );
    let live = get_items(app, "/api/v1/config/environments/staging/keys", admin).await;
    let now: Vec<_> = live
        .iter()
        .map(|v| (v["key"].as_str().unwrap(), v["content"].as_str().unwrap()))
        .collect();
    assert_eq!(now, files);
    assert_problem(
        &post(
            app,
            "/api/v1/config/environments/staging/snapshots",
            admin,
            json!({"name": "release-1"}),
        )
        .await,
        409,
        "already_exists",
    );
}

#[tokio::test]
async fn a_promotion_shows_its_plan_and_lands_all_or_nothing() {
    let c = console();
    let (app, admin) = (&c.app, c.admin.as_str());
    put(
        app,
        &key_url("dev", "a.yaml"),
        admin,
        json!({"content": "a: 2\n"}),
    )
    .await
    .expect(201);
    put(
        app,
        &key_url("dev", "b.json"),
        admin,
        json!({"content": "{}"}),
    )
    .await
    .expect(201);
    put(
        app,
        &key_url("staging", "a.yaml"),
        admin,
        json!({"content": "a: 1\n"}),
    )
    .await
    .expect(201);
    let plan = post(
        app,
        "/api/v1/config/promotions/preview",
        admin,
        json!({"from": "dev", "to": "staging"}),
    )
    .await
    .expect(200)
    .json();
    let keys: Vec<_> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["key"].as_str().unwrap(), c["action"].as_str().unwrap()))
        .collect();
    assert_eq!(keys, [("a.yaml", "update"), ("b.json", "create")]);
    assert!(
        plan["changes"][0]["diff"]
            .as_str()
            .unwrap()
            .contains("-a: 1\n+a: 2\n")
    );
    // A key stored before its format was checked (written here straight to
    // SQLite) must keep the whole promotion out.
    c.state.store.bookkeeping(|tx| {
        tx.execute(
            "UPDATE config_versions SET content = '{broken' WHERE environment = 'dev' AND key = 'b.json'",
            [],
        )?;
        Ok(())
    }).unwrap();
    let refused = post(
        app,
        "/api/v1/config/promotions",
        admin,
        json!({"from": "dev", "to": "staging"}),
    )
    .await;
    assert_problem(&refused, 422, "invalid_body");
    assert!(refused.text().contains("b.json"), "{}", refused.describe());
    let staging = get_items(app, "/api/v1/config/environments/staging/keys", admin).await;
    assert_eq!(staging.len(), 1);
    assert_eq!(
        staging[0]["content"], "a: 1\n",
        "a.yaml changed though the promotion was refused"
    );
    put(
        app,
        &key_url("dev", "b.json"),
        admin,
        json!({"content": "{\"ok\": true}"}),
    )
    .await
    .expect(200);
    let applied = post(
        app,
        "/api/v1/config/promotions",
        admin,
        json!({"from": "dev", "to": "staging"}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(applied["versions"].as_array().unwrap().len(), 2);
    let again = post(
        app,
        "/api/v1/config/promotions/preview",
        admin,
        json!({"from": "dev", "to": "staging"}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(
        (
            again["changes"].as_array().unwrap().len(),
            again["unchanged"].as_u64()
        ),
        (0, Some(2))
    );
}

#[tokio::test]
async fn prod_takes_a_developer_write_only_through_an_approved_request() {
    let c = console();
    let (app, admin) = (&c.app, c.admin.as_str());
    let dev = user_session(app, admin, "dan", Role::Developer).await;
    let ops = user_session(app, admin, "olga", Role::Operator).await;
    put(
        app,
        &key_url("staging", "limits.toml"),
        &dev,
        json!({"content": "rps = 5\n"}),
    )
    .await
    .expect(201);
    let refused = put(
        app,
        &key_url("prod", "limits.toml"),
        &dev,
        json!({"content": "rps = 5\n"}),
    )
    .await;
    assert_problem(&refused, 403, "forbidden");
    assert!(
        refused.text().contains("protected"),
        "{}",
        refused.describe()
    );
    let audited = audit(app, admin, "action=config.keys.publish&outcome=forbidden").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["actor"], "user:dan");
    assert_problem(
        &post(
            app,
            "/api/v1/config/promotions",
            &dev,
            json!({"from": "staging", "to": "prod"}),
        )
        .await,
        403,
        "forbidden",
    );

    let request = post(
        app,
        "/api/v1/config/environments/prod/requests",
        &dev,
        json!({"from": "staging", "message": "raise limits"}),
    )
    .await
    .expect(201)
    .json();
    assert_eq!(request["state"], "pending");
    assert_eq!(
        request["changes"][0]["diff"],
        "--- prod/DEFAULT_GROUP/limits.toml\n+++ staging/DEFAULT_GROUP/limits.toml\n@@ -0,0 +1 @@\n+rps = 5\n"
    );
    let id = request["id"].as_u64().unwrap();
    // Staging moves after the request: the frozen plan still says rps = 5.
    put(
        app,
        &key_url("staging", "limits.toml"),
        &dev,
        json!({"content": "rps = 500\n"}),
    )
    .await
    .expect(200);
    assert_problem(
        &post(
            app,
            &format!("/api/v1/config/requests/{id}/approve"),
            &dev,
            json!({}),
        )
        .await,
        403,
        "forbidden",
    );
    let approved = post(
        app,
        &format!("/api/v1/config/requests/{id}/approve"),
        &ops,
        json!({"reason": "ok"}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(
        (approved["state"].as_str(), approved["decidedBy"].as_str()),
        (Some("approved"), Some("user:olga"))
    );
    let prod = get_json(app, &key_url("prod", "limits.toml"), admin).await;
    assert_eq!(
        (prod["content"].as_str(), prod["author"].as_str()),
        (Some("rps = 5\n"), Some("user:dan"))
    );

    // An operator may not approve their own request; a request whose key
    // moved since is refused with 409 and stays pending.
    let own = post(app, "/api/v1/config/environments/prod/requests", &ops, json!({"publish": [{"group": "DEFAULT_GROUP", "key": "limits.toml", "content": "rps = 6\n"}]})).await.expect(201).json();
    let own_id = own["id"].as_u64().unwrap();
    assert_problem(
        &post(
            app,
            &format!("/api/v1/config/requests/{own_id}/approve"),
            &ops,
            json!({}),
        )
        .await,
        403,
        "forbidden",
    );
    put(
        app,
        &key_url("prod", "limits.toml"),
        &ops,
        json!({"content": "rps = 7\n"}),
    )
    .await
    .expect(200);
    assert_problem(
        &post(
            app,
            &format!("/api/v1/config/requests/{own_id}/approve"),
            admin,
            json!({}),
        )
        .await,
        409,
        "generation_mismatch",
    );
    assert_eq!(
        get_json(app, &format!("/api/v1/config/requests/{own_id}"), admin).await["state"],
        "pending"
    );
    post(
        app,
        &format!("/api/v1/config/requests/{own_id}/reject"),
        admin,
        json!({"reason": "stale"}),
    )
    .await
    .expect(200);
    assert_problem(
        &post(
            app,
            &format!("/api/v1/config/requests/{own_id}/approve"),
            admin,
            json!({}),
        )
        .await,
        409,
        "invalid_transition",
    );
    let steps: Vec<String> = audit(app, admin, "")
        .await
        .iter()
        .filter_map(|r| {
            r["action"]
                .as_str()
                .filter(|a| a.starts_with("config.requests"))
                .map(|a| format!("{a}:{}", r["outcome"].as_str().unwrap()))
        })
        .collect();
    for step in [
        "config.requests.create:success",
        "config.requests.approve:success",
        "config.requests.approve:forbidden",
        "config.requests.approve:generation_mismatch",
        "config.requests.reject:success",
    ] {
        assert!(
            steps.iter().any(|s| s == step),
            "{step} not audited: {steps:?}"
        );
    }
}

/// Reads server-sent events off a body until one `change` arrives.
async fn next_change(body: &mut Body) -> (u64, Value) {
    let mut buffer = String::new();
    loop {
        let frame = body.frame().await.unwrap().unwrap();
        if let Some(data) = frame.data_ref() {
            buffer.push_str(std::str::from_utf8(data).unwrap());
        }
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                event
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            };
            if field("event:").as_deref() == Some("change") {
                let id = field("id:").unwrap().parse().unwrap();
                return (id, serde_json::from_str(&field("data:").unwrap()).unwrap());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publish_reaches_a_thousand_long_polls_and_a_thousand_streams() {
    let c = console();
    let (app, admin) = (&c.app, c.admin.as_str());
    let first = put(app, KEY, admin, json!({"content": MODULE}))
        .await
        .expect(201)
        .json();
    let md5 = first["md5"].as_str().unwrap().to_owned();
    let watch = json!({"keys": [{"environment": "dev", "key": "model-manager.json", "md5": md5}], "timeoutMs": 30000});
    let mut polls = Vec::new();
    for _ in 0..1000 {
        let (app, admin, watch) = (app.clone(), admin.to_owned(), watch.clone());
        polls.push(tokio::spawn(async move {
            post(&app, "/api/v1/config/watch", &admin, watch).await
        }));
    }
    let mut streams = Vec::new();
    for _ in 0..1000 {
        let req = request(
            Method::GET,
            "/api/v1/config/environments/dev/events?key=model-manager.json",
            Some(admin),
        )
        .body(Body::empty())
        .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
        let mut body = resp.into_body();
        streams.push(tokio::spawn(async move { next_change(&mut body).await }));
    }
    // Every long-poll is parked (none answered before the publish).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        polls.iter().all(|p| !p.is_finished()),
        "a watcher answered before any change"
    );
    let second = put(
        app,
        KEY,
        admin,
        json!({"content": MODULE.replace("30s", "5s")}),
    )
    .await
    .expect(200)
    .json();
    let deadline = Duration::from_secs(20);
    for poll in polls {
        let answer = tokio::time::timeout(deadline, poll)
            .await
            .unwrap()
            .unwrap()
            .expect(200)
            .json();
        assert_eq!(answer["changed"].as_array().unwrap().len(), 1);
        assert_eq!(answer["changed"][0]["md5"], second["md5"]);
        assert_eq!(answer["changed"][0]["version"], 2);
    }
    for stream in streams {
        let (id, change) = tokio::time::timeout(deadline, stream)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id, second["revision"].as_u64().unwrap());
        assert_eq!(
            (change["version"].as_u64(), change["md5"].as_str()),
            (Some(2), second["md5"].as_str())
        );
    }
}

#[tokio::test]
async fn a_stream_resumes_after_its_last_event_id_and_a_watch_answers_at_once_when_behind() {
    let c = console();
    let (app, admin) = (&c.app, c.admin.as_str());
    let v1 = put(app, KEY, admin, json!({"content": "{}"}))
        .await
        .expect(201)
        .json();
    let v2 = put(app, KEY, admin, json!({"content": "[]"}))
        .await
        .expect(200)
        .json();
    let v3 = put(
        app,
        &key_url("dev", "other.txt"),
        admin,
        json!({"content": "x"}),
    )
    .await
    .expect(201)
    .json();
    // Reconnecting after v1: v2 and v3 come, in order.
    let req = request(
        Method::GET,
        "/api/v1/config/environments/dev/events",
        Some(admin),
    )
    .header("last-event-id", v1["revision"].to_string())
    .body(Body::empty())
    .unwrap();
    let mut body = app.clone().oneshot(req).await.unwrap().into_body();
    assert_eq!(
        next_change(&mut body).await.0,
        v2["revision"].as_u64().unwrap()
    );
    assert_eq!(
        next_change(&mut body).await.0,
        v3["revision"].as_u64().unwrap()
    );
    // A watcher holding v1's md5 is told of v2 at once.
    let answer = post(
        app,
        "/api/v1/config/watch",
        admin,
        json!({"keys": [{"environment": "dev", "key": "model-manager.json", "md5": v1["md5"]}]}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(answer["changed"][0]["version"], 2);
    // One holding nothing for a key that does not exist waits, and times out empty.
    let answer = post(
        app,
        "/api/v1/config/watch",
        admin,
        json!({"keys": [{"environment": "dev", "key": "absent.txt", "md5": ""}], "timeoutMs": 200}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(answer["changed"], json!([]));
}

#[tokio::test]
async fn bad_watches_are_refused_by_field() {
    let c = console();
    let (app, admin) = (&c.app, c.admin.as_str());
    let cases = [
        (json!({"keys": []}), 422, "invalid_body", "keys"),
        (
            json!({"keys": [{"environment": "dev", "key": "k", "md5": "zz"}]}),
            422,
            "invalid_body",
            "keys[0].md5",
        ),
        (
            json!({"keys": [{"environment": "dev", "key": "../k"}]}),
            422,
            "invalid_body",
            "keys[0].key",
        ),
        (
            json!({"keys": [{"environment": "dev", "key": "k"}], "timeoutMs": 60000}),
            422,
            "invalid_body",
            "timeoutMs",
        ),
        (
            json!({"keys": [{"environment": "qa", "key": "k"}]}),
            404,
            "not_found",
            "qa",
        ),
    ];
    for (body, status, code, detail) in cases {
        let resp = post(app, "/api/v1/config/watch", admin, body).await;
        assert_problem(&resp, status, code);
        assert!(
            resp.text().contains(detail),
            "{detail:?}: {}",
            resp.describe()
        );
    }
    let req = request(
        Method::GET,
        "/api/v1/config/environments/dev/events",
        Some(admin),
    )
    .header("last-event-id", "x")
    .body(Body::empty())
    .unwrap();
    assert_problem(&send(app, req).await, 400, "invalid_header");
}

#[tokio::test]
async fn a_publish_without_a_format_keeps_the_keys_own() {
    let c = console();
    let (app, admin) = (&c.app, c.admin.as_str());
    let url = key_url("dev", "settings");
    put(
        app,
        &url,
        admin,
        json!({"content": "a: 1\n", "format": "yaml"}),
    )
    .await
    .expect(201);
    let v2 = put(app, &url, admin, json!({"content": "a: 2\n"}))
        .await
        .expect(200)
        .json();
    assert_eq!(
        v2["format"], "yaml",
        "the key's own format, not text from its name"
    );
    let refused = put(app, &url, admin, json!({"content": "a: [2\n"})).await;
    assert_problem(&refused, 422, "invalid_body");
    assert!(
        refused.text().contains("not valid yaml"),
        "{}",
        refused.describe()
    );
    assert_eq!(history_len(app, &url, admin).await, 2);
}
