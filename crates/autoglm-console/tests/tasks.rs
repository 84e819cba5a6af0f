//! Tasks over the router and a real SQLite file: every service write starts
//! one (202, `Location`), the scheduler runs it to the end, `?wait=` holds
//! until it is final, a repeated `Idempotency-Key` returns the same task,
//! cancel puts the service back as it was (or leaves it to a later change),
//! and bad filters, waits and bodies are refused with what was wrong.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use autoglm_core::rbac::Role;
use axum::Router;
use axum::http::header;
use common::*;
use serde_json::{Value, json};

const SERVICES: &str = "/api/v1/services";
const TASKS: &str = "/api/v1/tasks";

fn manifest(name: &str, weights: [u32; 2]) -> Value {
    json!({
        "apiVersion": "autoglm.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": name},
        "spec": {
            "model": "m",
            "versions": [
                {"version": "1", "weight": weights[0]},
                {"version": "2", "weight": weights[1]},
            ],
            "replicas": 1,
        },
    })
}

/// A console whose tenant has model `m` with versions 1 and 2.
async fn with_model() -> Console {
    let c = console();
    create_model(&c.app, &c.admin, "m").await;
    for i in 0..2 {
        upload_file(
            &c.app,
            &c.admin,
            "m",
            "m.safetensors",
            &safetensors([i as f32, 1.0]),
        )
        .await;
    }
    c
}

async fn task_of(resp: Resp) -> Value {
    let resp = resp.expect(202);
    let task = resp.json();
    assert_eq!(
        resp.headers[header::LOCATION],
        format!("{TASKS}/{}", task["id"])
    );
    task
}

async fn wait_for(app: &Router, token: &str, task: &Value) -> Value {
    get_json(app, &format!("{TASKS}/{}?wait=30s", task["id"]), token).await
}

#[tokio::test]
async fn a_service_write_is_a_task_that_runs_to_the_end() {
    let c = with_model().await;
    let app = &c.app;
    let _scheduler = start_tasks(&c).await;
    let task = task_of(post(app, SERVICES, &c.admin, manifest("chat", [90, 10])).await).await;
    assert_eq!(task["kind"], "deploy");
    assert_eq!(task["target"], "services/chat");
    assert_eq!(task["maxAttempts"], 5);
    assert!(
        task["createdBy"].as_str().unwrap().starts_with("key:"),
        "{task}"
    );
    assert_eq!(task["change"]["generation"], 1);
    assert!(task["change"].get("before").is_none(), "{task}");

    let done = wait_for(app, &c.admin, &task).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["progress"]["percent"], 100);
    assert_eq!(done["attempt"], 1);
    assert_eq!(
        done["result"]["message"],
        "no platform runs services here: the change is stored"
    );
    assert!(done["finishedAt"].is_string());

    // A split is its own kind, and carries what the service was before.
    let split = task_of(
        call(
            app,
            axum::http::Method::PUT,
            &format!("{SERVICES}/chat"),
            Some(&c.admin),
            Some(manifest("chat", [50, 50])),
        )
        .await,
    )
    .await;
    assert_eq!(split["kind"], "trafficSplit");
    assert_eq!(
        split["change"]["before"]["spec"]["versions"][0]["weight"],
        90
    );
    assert_eq!(wait_for(app, &c.admin, &split).await["state"], "succeeded");

    // Listed newest first, filtered by state and kind.
    let all = get_items(app, TASKS, &c.admin).await;
    assert_eq!(str_fields(&json!(all), "kind"), ["trafficSplit", "deploy"]);
    let deploys = get_items(
        app,
        &format!("{TASKS}?kind=deploy&state=succeeded"),
        &c.admin,
    )
    .await;
    assert_eq!(deploys.len(), 1);
    assert!(
        get_items(app, &format!("{TASKS}?state=pending"), &c.admin)
            .await
            .is_empty()
    );
    let page = get_json(app, &format!("{TASKS}?limit=1"), &c.admin).await;
    assert_eq!(page["items"][0]["id"], split["id"]);
    let next = page["next_page_token"].as_str().unwrap();
    let rest = get_json(app, &format!("{TASKS}?limit=1&page_token={next}"), &c.admin).await;
    assert_eq!(rest["items"][0]["id"], task["id"]);

    // Every state change is in the audit, by the system, on the task.
    let records = get_items(
        app,
        &format!("/api/v1/audit?target=tasks/{}", task["id"]),
        &c.admin,
    )
    .await;
    let mut actions: Vec<(String, String)> = records
        .iter()
        .filter(|r| r["target"] == format!("tasks/{}", task["id"]))
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    actions.reverse();
    assert_eq!(
        actions,
        [
            ("tasks.start".to_owned(), "system:tasks".to_owned()),
            ("tasks.succeed".to_owned(), "system:tasks".to_owned()),
        ]
    );
}

#[tokio::test]
async fn wait_holds_until_the_task_is_final() {
    let c = with_model().await;
    let task = task_of(post(&c.app, SERVICES, &c.admin, manifest("chat", [90, 10])).await).await;
    // No scheduler yet: a short wait answers the task still pending.
    let started = Instant::now();
    let pending = get_json(
        &c.app,
        &format!("{TASKS}/{}?wait=300ms", task["id"]),
        &c.admin,
    )
    .await;
    assert_eq!(pending["state"], "pending");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let metrics = get(&c.app, "/metrics", &c.admin).await.text();
    assert!(metrics.contains("\nautoglm_tasks_pending 1\n"), "{metrics}");
    assert!(metrics.contains("\nautoglm_tasks_running 0\n"), "{metrics}");
    // A long wait answers as soon as the scheduler, started meanwhile, ends it.
    let app = c.app.clone();
    let (token, id) = (c.admin.clone(), task["id"].clone());
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        let t = get_json(&app, &format!("{TASKS}/{id}?wait=30s"), &token).await;
        (t, started.elapsed())
    });
    let _scheduler = start_tasks(&c).await;
    let (done, took) = waiter.await.unwrap();
    assert_eq!(done["state"], "succeeded");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_same_task() {
    let c = with_model().await;
    let body = manifest("chat", [90, 10]);
    let first = post_with_key(&c.app, &c.admin, SERVICES, "create-chat", body.clone())
        .await
        .expect(202);
    let again = post_with_key(&c.app, &c.admin, SERVICES, "create-chat", body)
        .await
        .expect(202);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(
        again.headers[header::LOCATION],
        first.headers[header::LOCATION]
    );
    assert_eq!(get_items(&c.app, TASKS, &c.admin).await.len(), 1);
}

#[tokio::test]
async fn cancel_puts_the_service_back_as_it_was_before_the_task() {
    let c = with_model().await;
    let app = &c.app;
    let cancel = |task: &Value| format!("{TASKS}/{}/cancel", task["id"]);
    // No scheduler runs: every task stays pending until cancelled.
    let create = task_of(post(app, SERVICES, &c.admin, manifest("chat", [90, 10])).await).await;
    let cancelled = post(app, &cancel(&create), &c.admin, json!(null))
        .await
        .expect(202)
        .json();
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(
        cancelled["progress"]["message"],
        "cancelled: the service is back as it was before this task"
    );
    assert_problem(
        &get(app, &format!("{SERVICES}/chat"), &c.admin).await,
        404,
        "not_found",
    );

    // An update cancelled: the old spec is back (as a new generation).
    task_of(post(app, SERVICES, &c.admin, manifest("chat", [90, 10])).await).await;
    let update = task_of(
        call(
            app,
            axum::http::Method::PUT,
            &format!("{SERVICES}/chat"),
            Some(&c.admin),
            Some(manifest("chat", [0, 100])),
        )
        .await,
    )
    .await;
    post(app, &cancel(&update), &c.admin, json!(null))
        .await
        .expect(202);
    let service = get_json(app, &format!("{SERVICES}/chat"), &c.admin).await;
    assert_eq!(service["spec"]["versions"][0]["weight"], 90);
    assert_eq!(service["metadata"]["generation"], 3);

    // A delete cancelled: the service is back.
    let gone = task_of(delete(app, &format!("{SERVICES}/chat"), &c.admin).await).await;
    post(app, &cancel(&gone), &c.admin, json!(null))
        .await
        .expect(202);
    let back = get_json(app, &format!("{SERVICES}/chat"), &c.admin).await;
    assert_eq!(back["spec"]["versions"][0]["weight"], 90);

    // A change superseded by a later one is not undone over it.
    let first = task_of(
        post(
            app,
            &format!("{SERVICES}/chat/scale"),
            &c.admin,
            json!({"replicas": 2}),
        )
        .await,
    )
    .await;
    task_of(
        post(
            app,
            &format!("{SERVICES}/chat/scale"),
            &c.admin,
            json!({"replicas": 3}),
        )
        .await,
    )
    .await;
    let superseded = post(app, &cancel(&first), &c.admin, json!(null))
        .await
        .expect(202)
        .json();
    assert!(
        superseded["progress"]["message"]
            .as_str()
            .unwrap()
            .contains("a later change superseded"),
        "{superseded}"
    );
    assert_eq!(
        get_json(app, &format!("{SERVICES}/chat"), &c.admin).await["spec"]["replicas"],
        3
    );

    // A final task cannot be cancelled again; nor can a task that does not exist.
    let again = post(app, &cancel(&first), &c.admin, json!(null)).await;
    assert_problem(&again, 409, "invalid_transition");
    assert!(
        again.text().contains("already cancelled"),
        "{}",
        again.text()
    );
    assert_problem(
        &post(app, &format!("{TASKS}/9999/cancel"), &c.admin, json!(null)).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn a_task_is_started_by_name_too() {
    let c = with_model().await;
    let app = &c.app;
    let _scheduler = start_tasks(&c).await;
    let create = task_of(post(app, SERVICES, &c.admin, manifest("chat", [90, 10])).await).await;
    wait_for(app, &c.admin, &create).await;
    let restart = task_of(
        post(
            app,
            TASKS,
            &c.admin,
            json!({"kind": "restart", "target": "services/chat"}),
        )
        .await,
    )
    .await;
    assert_eq!(restart["kind"], "restart");
    assert_eq!(restart["change"]["restarts"], 1);
    let scale = task_of(
        post(
            app,
            TASKS,
            &c.admin,
            json!({"kind": "scale", "target": "services/chat", "replicas": 2}),
        )
        .await,
    )
    .await;
    assert_eq!(wait_for(app, &c.admin, &scale).await["state"], "succeeded");
    assert_eq!(
        get_json(app, &format!("{SERVICES}/chat"), &c.admin).await["spec"]["replicas"],
        2
    );
}

#[tokio::test]
async fn bad_task_requests_are_refused_and_change_nothing() {
    let c = with_model().await;
    let app = &c.app;
    task_of(post(app, SERVICES, &c.admin, manifest("chat", [90, 10])).await).await;
    let before = assert_audit_valid(app, &c.admin).await;

    for (query, words) in [
        (
            "state=done",
            "state \"done\" is not one of pending, running",
        ),
        ("kind=rollout", "kind \"rollout\" is not one of deploy"),
        ("page_token=abc", "page_token \"abc\""),
        ("limit=0", "limit must be 1 to 1000"),
        ("colour=red", "unknown field"),
    ] {
        let resp = get(app, &format!("{TASKS}?{query}"), &c.admin).await;
        assert_problem(&resp, 400, "invalid_query");
        let detail = resp.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(words), "{query}: {detail}");
    }
    for (wait, words) in [("2m", "longer than the most"), ("soon", "wait \"soon\"")] {
        let resp = get(app, &format!("{TASKS}/1?wait={wait}"), &c.admin).await;
        assert_problem(&resp, 400, "invalid_query");
        let detail = resp.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(words), "{wait}: {detail}");
    }
    assert_problem(
        &get(app, &format!("{TASKS}/77"), &c.admin).await,
        404,
        "not_found",
    );
    assert_problem(
        &get(app, &format!("{TASKS}/x"), &c.admin).await,
        400,
        "invalid_path",
    );

    for (body, path, words) in [
        (
            json!({"kind": "deploy", "target": "services/chat"}),
            "kind",
            "carries a manifest",
        ),
        (
            json!({"kind": "reboot", "target": "services/chat"}),
            "kind",
            "\"reboot\" is not one of",
        ),
        (
            json!({"kind": "restart", "target": "models/m"}),
            "target",
            "services/NAME",
        ),
        (
            json!({"kind": "scale", "target": "services/chat"}),
            "replicas",
            "needs replicas",
        ),
        (
            json!({"kind": "restart", "target": "services/chat", "replicas": 2}),
            "replicas",
            "only a scale task",
        ),
    ] {
        let resp = post(app, TASKS, &c.admin, body.clone()).await;
        assert_problem(&resp, 422, "invalid_body");
        let errors = &resp.json()["errors"];
        assert_eq!(errors[0]["path"], path, "{body}");
        assert!(
            errors[0]["message"].as_str().unwrap().contains(words),
            "{body}: {errors}"
        );
    }
    assert_problem(
        &post(
            app,
            TASKS,
            &c.admin,
            json!({"kind": "restart", "target": "services/none"}),
        )
        .await,
        404,
        "not_found",
    );
    // Only the one task of the setup exists; refusals were audited, nothing else.
    assert_eq!(get_items(app, TASKS, &c.admin).await.len(), 1);
    assert!(assert_audit_valid(app, &c.admin).await > before);

    // A viewer reads tasks but cannot cancel or start them; another tenant sees none.
    let viewer = user_session(app, &c.admin, "vera", Role::Viewer).await;
    assert_eq!(get_items(app, TASKS, &viewer).await.len(), 1);
    assert_problem(
        &post(app, &format!("{TASKS}/1/cancel"), &viewer, json!(null)).await,
        403,
        "forbidden",
    );
    post(app, "/api/v1/tenants", &c.admin, json!({"name": "team-b"}))
        .await
        .expect(201);
    create_user(app, &c.admin, "bob", Role::Viewer).await;
    call(
        app,
        axum::http::Method::PUT,
        "/api/v1/users/bob/role",
        Some(&c.admin),
        Some(json!({"role": "developer", "tenant": "team-b"})),
    )
    .await
    .expect(200);
    let bob = login(app, "bob", Some("team-b")).await;
    assert!(get_items(app, TASKS, &bob).await.is_empty());
    assert_problem(
        &get(app, &format!("{TASKS}/1"), &bob).await,
        404,
        "not_found",
    );
    assert_problem(
        &post(app, &format!("{TASKS}/1/cancel"), &bob, json!(null)).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn a_version_change_under_spec_rollout_is_a_rollout_and_an_abort_a_rollback_that_outranks_all()
 {
    let c = with_model().await;
    let app = &c.app;
    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    let service = |version: &str| {
        let mut m = manifest("chat", [100, 0]);
        m["spec"]["versions"] = json!([{"version": version, "weight": 100}]);
        m["spec"]["rollout"] = json!({"steps": steps});
        m
    };
    task_of(post(app, SERVICES, &c.admin, service("1")).await).await;
    // A queued deploy of another service, which the rollback must overtake.
    let mut other = manifest("other", [100, 0]);
    other["spec"]["versions"] = json!([{"version": "1", "weight": 100}]);
    let deploy = task_of(post(app, SERVICES, &c.admin, other).await).await;
    let rollout = task_of(
        call(
            app,
            axum::http::Method::PUT,
            &format!("{SERVICES}/chat"),
            Some(&c.admin),
            Some(service("2")),
        )
        .await,
    )
    .await;
    assert_eq!(rollout["kind"], "rolloutStep");
    // The canary joins at weight 0; the rollout moves it.
    let stored = get_json(app, &format!("{SERVICES}/chat"), &c.admin).await;
    assert_eq!(
        stored["spec"]["versions"],
        json!([{"version": "1", "weight": 100}, {"version": "2", "weight": 0}])
    );
    let state = get_json(app, &format!("{SERVICES}/chat/rollout"), &c.admin).await;
    assert_eq!(state["phase"], "Progressing");
    assert_eq!(state["stable"], "1");
    assert_eq!(state["canary"], "2");
    // No analysis named: the default guard follows the canary weight.
    assert_eq!(
        state["steps"],
        json!([
            "setWeight 50",
            "analysis error-ratio",
            "pause until promoted"
        ])
    );

    let aborted = post(
        app,
        &format!("{SERVICES}/chat/rollout/abort"),
        &c.admin,
        json!(null),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(aborted["phase"], "Degraded");
    assert_eq!(aborted["message"], "aborted by a user");
    let stored = get_json(app, &format!("{SERVICES}/chat"), &c.admin).await;
    assert_eq!(
        stored["spec"]["versions"],
        json!([{"version": "1", "weight": 100}])
    );
    // The service's status carries the rollout's summary.
    assert_eq!(
        stored["status"]["rollout"],
        json!({"phase": "Degraded", "step": 0, "weight": 0, "stable": "1", "canary": "2",
               "message": "aborted by a user"})
    );
    let rollbacks = get_items(app, &format!("{TASKS}?kind=rollback"), &c.admin).await;
    assert_eq!(rollbacks.len(), 1);
    assert_eq!(rollbacks[0]["priority"], 0);
    // Started now, the scheduler runs the rollback before the queued deploy.
    let _scheduler = start_tasks(&c).await;
    let rollback = wait_for(app, &c.admin, &rollbacks[0]).await;
    let deployed = wait_for(app, &c.admin, &deploy).await;
    assert!(
        rollback["startedAt"].as_str().unwrap() < deployed["startedAt"].as_str().unwrap(),
        "{rollback} {deployed}"
    );
    // A finished rollout takes no more commands; an unknown one is refused.
    assert_problem(
        &post(
            app,
            &format!("{SERVICES}/chat/rollout/promote"),
            &c.admin,
            json!(null),
        )
        .await,
        409,
        "invalid_transition",
    );
    assert_problem(
        &post(
            app,
            &format!("{SERVICES}/chat/rollout/skip"),
            &c.admin,
            json!(null),
        )
        .await,
        400,
        "invalid_path",
    );
    assert_problem(
        &get(app, &format!("{SERVICES}/other/rollout"), &c.admin).await,
        404,
        "not_found",
    );
}
