//! The model registry end to end, with real bytes: models listed by name in
//! pages and filtered by name, label and stage; metadata updates; uploads of
//! safetensors files whose digest, size and bytes round-trip; lineage; the
//! multi-file manifest digest; stage changes as replay-protected commands;
//! and deletion, refused while a version is in use and removing the files
//! from disk once allowed.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::HeaderValue;
use common::*;
use serde_json::json;

#[tokio::test]
async fn models_page_in_name_order_and_filter() {
    let c = console();
    let app = &c.app;
    // Created out of order; listed by name.
    for (name, team) in [
        ("echo", "cv"),
        ("alpha", "nlp"),
        ("delta", "nlp"),
        ("charlie", "cv"),
        ("bravo", "nlp"),
    ] {
        post(
            app,
            "/api/v1/models",
            &c.admin,
            json!({"name": name, "description": format!("model {name}"), "labels": {"team": team}}),
        )
        .await
        .expect(201);
    }

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let uri = match &token {
            None => "/api/v1/models?limit=2".to_owned(),
            Some(t) => format!("/api/v1/models?limit=2&page_token={t}"),
        };
        let page = get_json(app, &uri, &c.admin).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        seen.extend(items.iter().map(|m| m["name"].as_str().unwrap().to_owned()));
        pages += 1;
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(seen, ["alpha", "bravo", "charlie", "delta", "echo"]);
    assert_eq!(pages, 3);

    let q = get(app, "/api/v1/models?q=a", &c.admin).await.expect(200);
    assert_eq!(
        item_names(&q.json()),
        ["alpha", "bravo", "charlie", "delta"]
    );
    let q = get(app, "/api/v1/models?q=lt", &c.admin).await.expect(200);
    assert_eq!(item_names(&q.json()), ["delta"]);
    let nlp = get(app, "/api/v1/models?label=team=nlp", &c.admin)
        .await
        .expect(200);
    assert_eq!(item_names(&nlp.json()), ["alpha", "bravo", "delta"]);
    let both = get(app, "/api/v1/models?label=team%3Dnlp&q=ta", &c.admin)
        .await
        .expect(200);
    assert_eq!(item_names(&both.json()), ["delta"]);
    let none = get(app, "/api/v1/models?label=team=ops", &c.admin)
        .await
        .expect(200);
    assert_eq!(item_names(&none.json()), Vec::<String>::new());

    // Stage filter: only models with a version in that stage.
    let file = safetensors([1.0, 2.0]);
    for name in ["bravo", "delta"] {
        upload_file(app, &c.admin, name, "m.safetensors", &file).await;
    }
    set_stage(app, &c.admin, "delta", 1, "production")
        .await
        .expect(200);
    set_stage(app, &c.admin, "bravo", 1, "staging")
        .await
        .expect(200);
    let prod = get(app, "/api/v1/models?stage=production", &c.admin)
        .await
        .expect(200);
    assert_eq!(item_names(&prod.json()), ["delta"]);
    let staging = get(app, "/api/v1/models?stage=staging", &c.admin)
        .await
        .expect(200);
    assert_eq!(item_names(&staging.json()), ["bravo"]);

    let delta = get(app, "/api/v1/models/delta", &c.admin).await.expect(200);
    let delta = delta.json();
    assert_eq!(delta["version_count"], 1);
    assert_eq!(delta["latest_version"], 1);
    assert_eq!(delta["tenant"], "default");
}

#[tokio::test]
async fn patch_replaces_only_the_fields_sent() {
    let c = console();
    let app = &c.app;
    post(
        app,
        "/api/v1/models",
        &c.admin,
        json!({"name": "m", "description": "first", "labels": {"a": "1", "b": "2"}}),
    )
    .await
    .expect(201);
    let created = get_json(app, "/api/v1/models/m", &c.admin).await;

    let updated = patch(
        app,
        "/api/v1/models/m",
        &c.admin,
        json!({"description": "second"}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(updated["description"], "second");
    assert_eq!(updated["labels"], json!({"a": "1", "b": "2"}));
    assert!(updated["updated_at"].as_str() >= created["updated_at"].as_str());
    assert_eq!(updated["created_at"], created["created_at"]);

    let updated = patch(
        app,
        "/api/v1/models/m",
        &c.admin,
        json!({"labels": {"c": "3"}}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(updated["description"], "second");
    assert_eq!(
        updated["labels"],
        json!({"c": "3"}),
        "labels are replaced whole"
    );

    let stored = get_json(app, "/api/v1/models/m", &c.admin).await;
    assert_eq!(stored["description"], "second");
    assert_eq!(stored["labels"], json!({"c": "3"}));

    assert_problem(
        &patch(
            app,
            "/api/v1/models/missing",
            &c.admin,
            json!({"description": "x"}),
        )
        .await,
        404,
        "not_found",
    );
    let updates = audit(app, &c.admin, "action=models.update&outcome=success").await;
    assert_eq!(updates.len(), 2);
    assert!(updates.iter().all(|r| r["target"] == "models/m"));
}

#[tokio::test]
async fn uploads_round_trip_with_digest_size_and_lineage() {
    let c = console();
    let app = &c.app;
    create_model(app, &c.admin, "llm").await;
    let file = safetensors([0.5, -1.25]);
    assert_eq!(file.len(), 8 + 54 + 8);

    let v1 = upload_file(app, &c.admin, "llm", "model.safetensors", &file).await;
    assert_eq!(v1["model"], "llm");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["format"], "safetensors");
    assert_eq!(v1["digest"], format!("sha256:{}", sha256_hex(&file)));
    assert_eq!(v1["size"], file.len());
    assert_eq!(v1["stage"], "none");
    assert_eq!(v1["source"], "upload");
    assert_eq!(
        v1["created_by"].as_str().unwrap().split(':').next(),
        Some("key")
    );
    let files = v1["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["path"], "model.safetensors");
    assert_eq!(files[0]["sha256"], sha256_hex(&file));
    assert_eq!(files[0]["details"]["tensors"], 1);
    assert_eq!(files[0]["details"]["parameters"], 2);

    // The stored version reads back the same, and the bytes are identical.
    let fetched = get_json(app, "/api/v1/models/llm/versions/1", &c.admin).await;
    assert_eq!(fetched, v1);
    let download = get(app, "/api/v1/models/llm/versions/1/artifact", &c.admin)
        .await
        .expect(200);
    assert_eq!(&download.body[..], &file[..]);
    assert_eq!(download.content_type(), "application/octet-stream");
    assert_eq!(
        download.headers["etag"],
        format!("\"sha256:{}\"", sha256_hex(&file))
    );

    // Lineage: the metadata part first, naming the parent.
    let tuned = safetensors([0.75, -1.0]);
    let v2 = upload(
        app,
        &c.admin,
        "llm",
        &[
            Part::metadata(
                &json!({"parent": 1, "framework": "pytorch", "task": "text-generation",
                "params": {"lr": 0.001}, "description": "fine-tuned"}),
            ),
            Part::artifact("model.safetensors", &tuned),
        ],
    )
    .await
    .expect(201)
    .json();
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["parent"], 1);
    assert_eq!(v2["framework"], "pytorch");
    assert_eq!(v2["task"], "text-generation");
    assert_eq!(v2["params"]["lr"], 0.001);
    assert_eq!(v2["digest"], format!("sha256:{}", sha256_hex(&tuned)));
    let stored = get_json(app, "/api/v1/models/llm/versions/2", &c.admin).await;
    assert_eq!(stored["parent"], 1);

    // A parent that does not exist is refused and creates nothing.
    let resp = upload(
        app,
        &c.admin,
        "llm",
        &[
            Part::metadata(&json!({"parent": 99})),
            Part::artifact("model.safetensors", &tuned),
        ],
    )
    .await;
    assert_problem(&resp, 422, "invalid_body");

    // Two files: the digest is sha256 of the sorted `sha  path` manifest.
    let config = br#"{"architectures":["Tiny"]}"#.to_vec();
    let v3 = upload(
        app,
        &c.admin,
        "llm",
        &[
            Part::artifact("model.safetensors", &file),
            Part::artifact("config.json", &config),
        ],
    )
    .await
    .expect(201)
    .json();
    let manifest = format!(
        "{}  config.json\n{}  model.safetensors\n",
        sha256_hex(&config),
        sha256_hex(&file)
    );
    assert_eq!(v3["version"], 3, "the refused upload used no number");
    assert_eq!(
        v3["digest"],
        format!("sha256:{}", sha256_hex(manifest.as_bytes()))
    );
    assert_eq!(v3["size"], config.len() + file.len());
    assert_eq!(
        v3["format"], "safetensors",
        "the main format is the model's"
    );
    let paths = str_fields(&v3["files"], "path");
    assert_eq!(paths, ["config.json", "model.safetensors"]);
    // Each file downloads by its path; the single-file route refuses.
    let got = get(
        app,
        "/api/v1/models/llm/versions/3/files/config.json",
        &c.admin,
    )
    .await
    .expect(200);
    assert_eq!(&got.body[..], &config[..]);
    assert_problem(
        &get(app, "/api/v1/models/llm/versions/3/artifact", &c.admin).await,
        404,
        "not_found",
    );

    // Newest first; the model counts them.
    let numbers: Vec<i64> = get_items(app, "/api/v1/models/llm/versions", &c.admin)
        .await
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2, 1]);
    let page = get_json(app, "/api/v1/models/llm/versions?limit=2", &c.admin).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let next = page["next_page_token"].as_str().unwrap().to_owned();
    let rest = get_json(
        app,
        &format!("/api/v1/models/llm/versions?limit=2&page_token={next}"),
        &c.admin,
    )
    .await;
    assert_eq!(rest["items"][0]["version"], 1);
    assert!(rest["next_page_token"].is_null());
    let model = get_json(app, "/api/v1/models/llm", &c.admin).await;
    assert_eq!(model["version_count"], 3);
    assert_eq!(model["latest_version"], 3);

    // Three committed folders, nothing staged.
    let (committed, staged) = artifact_dirs(&c);
    assert_eq!(committed.len(), 3, "{committed:?}");
    assert!(staged.is_empty(), "{staged:?}");
    assert_audit_valid(app, &c.admin).await;
}

/// A console with model `m` holding one version, 1, in no stage yet.
async fn console_with_m1() -> Console {
    let c = console();
    create_model(&c.app, &c.admin, "m").await;
    upload_file(
        &c.app,
        &c.admin,
        "m",
        "m.safetensors",
        &safetensors([1.0, 2.0]),
    )
    .await;
    c
}

/// Asks for version 1 of model `m` to move to `stage`, as the admin, with
/// explicit command headers (`None` leaves one out).
async fn move_m1_with(
    c: &Console,
    stage: &str,
    timestamp: Option<HeaderValue>,
    nonce: Option<&str>,
) -> Resp {
    set_stage_with(
        &c.app,
        &c.admin,
        "m",
        1,
        json!({"stage": stage}),
        timestamp,
        nonce,
    )
    .await
}

#[tokio::test]
async fn stage_changes_are_replay_protected_commands() {
    let c = console_with_m1().await;
    let app = &c.app;

    let staged = set_stage(app, &c.admin, "m", 1, "staging")
        .await
        .expect(200)
        .json();
    assert_eq!(staged["stage"], "staging");
    // Nothing returns to `none`.
    assert_problem(
        &set_stage(app, &c.admin, "m", 1, "none").await,
        409,
        "invalid_transition",
    );
    // Nor to the stage it is in.
    assert_problem(
        &set_stage(app, &c.admin, "m", 1, "staging").await,
        409,
        "invalid_transition",
    );

    // A nonce, once used, is spent, whatever the command.
    let used = nonce();
    move_m1_with(&c, "production", Some(now_header()), Some(&used))
        .await
        .expect(200);
    let replay = move_m1_with(&c, "archived", Some(now_header()), Some(&used)).await;
    assert_problem(&replay, 409, "nonce_reused");

    let stale = (chrono::Utc::now().timestamp() - 1000).into();
    let resp = move_m1_with(&c, "archived", Some(stale), Some(&nonce())).await;
    assert_problem(&resp, 409, "stale_command");
    let future = (chrono::Utc::now().timestamp() + 1000).into();
    let resp = move_m1_with(&c, "archived", Some(future), Some(&nonce())).await;
    assert_problem(&resp, 409, "stale_command");

    for (what, ts, n) in [
        ("no timestamp", None, Some(nonce())),
        ("no nonce", Some(now_header()), None),
        ("neither", None, None),
        ("short nonce", Some(now_header()), Some("short".to_owned())),
        (
            "nonce with a slash",
            Some(now_header()),
            Some("0123456789abcdef/xyz".to_owned()),
        ),
        (
            "timestamp in words",
            Some("yesterday".parse().unwrap()),
            Some(nonce()),
        ),
    ] {
        let resp = move_m1_with(&c, "archived", ts, n.as_deref()).await;
        assert_eq!(resp.status.as_u16(), 400, "{what}: {}", resp.describe());
        assert_problem(&resp, 400, "invalid_header");
    }

    // None of the refused commands moved the version.
    let v = get_json(app, "/api/v1/models/m/versions/1", &c.admin).await;
    assert_eq!(v["stage"], "production");
    let moves = audit(app, &c.admin, "action=versions.set_stage&outcome=success").await;
    assert_eq!(moves.len(), 2, "{moves:?}");
    assert!(moves.iter().all(|r| r["target"] == "models/m/versions/1"));

    // Production with archive_others archives the previous production version.
    upload_file(
        app,
        &c.admin,
        "m",
        "m.safetensors",
        &safetensors([3.0, 4.0]),
    )
    .await;
    set_stage_with(
        app,
        &c.admin,
        "m",
        2,
        json!({"stage": "production", "archive_others": true}),
        Some(now_header()),
        Some(&nonce()),
    )
    .await
    .expect(200);
    let v1 = get_json(app, "/api/v1/models/m/versions/1", &c.admin).await;
    assert_eq!(v1["stage"], "archived");
    // An archived version goes back through staging, not straight to production.
    assert_problem(
        &set_stage(app, &c.admin, "m", 1, "production").await,
        409,
        "invalid_transition",
    );
    set_stage(app, &c.admin, "m", 1, "staging")
        .await
        .expect(200);
}

#[tokio::test]
async fn versions_in_use_are_kept_and_deleted_ones_leave_no_files() {
    let c = console();
    let app = &c.app;
    create_model(app, &c.admin, "m").await;
    for values in [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]] {
        upload_file(app, &c.admin, "m", "m.safetensors", &safetensors(values)).await;
    }
    let folders = |c: &Console| {
        let (mut committed, staged) = artifact_dirs(c);
        assert!(staged.is_empty(), "{staged:?}");
        committed.sort();
        committed
    };
    assert_eq!(folders(&c).len(), 3);

    set_stage(app, &c.admin, "m", 1, "production")
        .await
        .expect(200);
    set_stage(app, &c.admin, "m", 2, "staging")
        .await
        .expect(200);

    // In-use versions and their model stay.
    for uri in [
        "/api/v1/models/m/versions/1",
        "/api/v1/models/m/versions/2",
        "/api/v1/models/m",
    ] {
        assert_problem(&delete(app, uri, &c.admin).await, 409, "in_use");
    }
    assert_eq!(folders(&c).len(), 3);

    // A version not in use goes, with its folder.
    let before = folders(&c);
    delete(app, "/api/v1/models/m/versions/3", &c.admin)
        .await
        .expect(204);
    assert_problem(
        &get(app, "/api/v1/models/m/versions/3", &c.admin).await,
        404,
        "not_found",
    );
    let after = folders(&c);
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|f| before.contains(f)));

    // The production one is still refused once staging is archived.
    set_stage(app, &c.admin, "m", 2, "archived")
        .await
        .expect(200);
    assert_problem(
        &delete(app, "/api/v1/models/m", &c.admin).await,
        409,
        "in_use",
    );
    set_stage(app, &c.admin, "m", 1, "archived")
        .await
        .expect(200);

    // Everything archived: the model goes, with every file.
    delete(app, "/api/v1/models/m", &c.admin).await.expect(204);
    assert_problem(
        &get(app, "/api/v1/models/m", &c.admin).await,
        404,
        "not_found",
    );
    assert!(folders(&c).is_empty(), "artifact folders left behind");
    assert_eq!(model_count(app, &c.admin).await, 0);

    // A model recreated under the same name shows nothing of the old one.
    create_model(app, &c.admin, "m").await;
    let again = get_json(app, "/api/v1/models/m/versions", &c.admin).await;
    assert_eq!(again["items"], json!([]));

    let deletes = audit(app, &c.admin, "action=models.delete").await;
    let outcomes: Vec<&str> = deletes
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["success", "in_use", "in_use"]);
    assert_audit_valid(app, &c.admin).await;
}

/// A captured command must never be accepted later: one that was refused
/// (here, a no-op move) still spends its nonce, or whoever captured it can
/// send it again inside the window once the state lets it through.
#[tokio::test]
async fn a_refused_command_still_spends_its_nonce() {
    let c = console_with_m1().await;
    let app = &c.app;
    set_stage(app, &c.admin, "m", 1, "staging")
        .await
        .expect(200);
    let captured = nonce();
    let ts = now_header();
    let first = move_m1_with(&c, "staging", Some(ts.clone()), Some(&captured)).await;
    assert_problem(&first, 409, "invalid_transition");
    // The state changes; the captured request is sent again.
    set_stage(app, &c.admin, "m", 1, "archived")
        .await
        .expect(200);
    let replayed = move_m1_with(&c, "staging", Some(ts), Some(&captured)).await;
    let v = get_json(app, "/api/v1/models/m/versions/1", &c.admin).await;
    assert_eq!(
        v["stage"], "archived",
        "a replayed command moved the version"
    );
    assert_problem(&replayed, 409, "nonce_reused");
}
