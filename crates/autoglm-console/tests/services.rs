//! Model services end to end over the router and a real SQLite file:
//! create, get, list, update (the generation moves only when the spec does),
//! scale, restart and delete; manifests refused with every field named;
//! references to the registry checked both ways (a service needs its model
//! and versions, and they cannot be deleted or archived while it serves
//! them); idempotent creation; tenants kept apart; and the traffic history
//! read from a gateway in the same process, or refused without one.
#![allow(clippy::unwrap_used)]

mod common;

use autoglm_core::rbac::Role;
use autoglm_core::traffic::{IntervalCounts, ServiceTraffic, VersionTraffic};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, header};
use common::*;
use serde_json::{Value, json};

const SERVICES: &str = "/api/v1/services";

fn manifest(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "autoglm.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": name, "labels": {"team": "nlp"}},
        "spec": spec,
    })
}

/// A canary split of `model`'s versions 1 and 2, two replicas each.
fn canary(model: &str) -> Value {
    json!({
        "model": model,
        "versions": [{"version": "1", "weight": 90}, {"version": "2", "weight": 10}],
        "replicas": 2,
    })
}

/// A model with `versions` uploaded versions.
async fn model_with_versions(app: &Router, token: &str, name: &str, versions: usize) {
    create_model(app, token, name).await;
    for i in 0..versions {
        upload_file(
            app,
            token,
            name,
            "m.safetensors",
            &safetensors([i as f32, 1.0]),
        )
        .await;
    }
}

async fn put(app: &Router, uri: &str, token: &str, body: Value) -> Resp {
    call(app, Method::PUT, uri, Some(token), Some(body)).await
}

fn service_uri(name: &str) -> String {
    format!("{SERVICES}/{name}")
}

/// The `errors` extension of a problem, as `path: message` lines.
fn field_errors(resp: &Resp) -> Vec<String> {
    resp.json()["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array: {}", resp.describe()))
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["path"].as_str().unwrap(),
                e["message"].as_str().unwrap()
            )
        })
        .collect()
}

/// Checks a 202 that started a task of `kind` on service `name` (with its
/// `Location`), and returns the service as stored now.
async fn accepted(app: &Router, resp: Resp, token: &str, kind: &str, name: &str) -> Value {
    let resp = resp.expect(202);
    let task = resp.json();
    assert_eq!(task["kind"], kind, "{task}");
    assert_eq!(task["target"], format!("services/{name}"), "{task}");
    assert_eq!(task["state"], "pending", "{task}");
    assert_eq!(
        resp.headers[header::LOCATION],
        format!("/api/v1/tasks/{}", task["id"]),
    );
    get_json(app, &service_uri(name), token).await
}

#[tokio::test]
async fn a_service_lives_from_create_to_delete() {
    let c = console();
    let app = &c.app;
    model_with_versions(app, &c.admin, "smollm2", 2).await;

    let resp = post(app, SERVICES, &c.admin, manifest("chat", canary("smollm2"))).await;
    let created = accepted(app, resp, &c.admin, "deploy", "chat").await;
    assert_eq!(created["apiVersion"], "autoglm.io/v1alpha1");
    assert_eq!(created["kind"], "ModelService");
    assert_eq!(created["metadata"]["name"], "chat");
    assert_eq!(created["metadata"]["namespace"], "default");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["metadata"]["labels"], json!({"team": "nlp"}));
    assert!(
        created["metadata"]["creationTimestamp"].is_string(),
        "{created}"
    );
    let mut with_defaults = canary("smollm2");
    with_defaults["runtime"] = json!({"builtin": {}});
    assert_eq!(created["spec"], with_defaults);
    // No platform runs it: pending, asking for two replicas of each version.
    let status = &created["status"];
    assert_eq!(status["conditions"][0]["type"], "Ready");
    assert_eq!(status["conditions"][0]["status"], "Unknown");
    assert_eq!(status["conditions"][0]["reason"], "Pending");
    assert_eq!(status["desiredReplicas"], 4);
    assert_eq!(status["readyReplicas"], 0);

    let got = get_json(app, &service_uri("chat"), &c.admin).await;
    assert_eq!(got, created);

    // The same manifest again: nothing changes, not even the generation,
    // and no task starts: 200 with the service.
    let same = put(
        app,
        &service_uri("chat"),
        &c.admin,
        manifest("chat", canary("smollm2")),
    )
    .await
    .expect(200);
    assert!(same.headers.get(header::LOCATION).is_none());
    let same = same.json();
    assert_eq!(same["metadata"]["generation"], 1);
    // Labels alone are not the spec: no new generation either.
    let mut relabelled = manifest("chat", canary("smollm2"));
    relabelled["metadata"]["labels"] = json!({"team": "chat"});
    let resp = put(app, &service_uri("chat"), &c.admin, relabelled).await;
    let relabelled = accepted(app, resp, &c.admin, "update", "chat").await;
    assert_eq!(relabelled["metadata"]["generation"], 1);
    assert_eq!(relabelled["metadata"]["labels"], json!({"team": "chat"}));
    // A new split is a new generation.
    let mut promoted = canary("smollm2");
    promoted["versions"] = json!([{"version": "1", "weight": 50}, {"version": "2", "weight": 50}]);
    let resp = put(
        app,
        &service_uri("chat"),
        &c.admin,
        manifest("chat", promoted.clone()),
    )
    .await;
    let updated = accepted(app, resp, &c.admin, "trafficSplit", "chat").await;
    assert_eq!(updated["metadata"]["generation"], 2);
    assert_eq!(updated["spec"]["versions"][1]["weight"], 50);
    assert_eq!(
        updated["metadata"]["creationTimestamp"],
        created["metadata"]["creationTimestamp"]
    );

    // An update naming a stale generation is refused; the current one applies.
    let mut stale = manifest("chat", canary("smollm2"));
    stale["metadata"]["generation"] = json!(1);
    let resp = put(app, &service_uri("chat"), &c.admin, stale.clone()).await;
    assert_problem(&resp, 409, "generation_mismatch");
    assert!(
        resp.json()["detail"]
            .as_str()
            .unwrap()
            .contains("generation 2, not 1"),
        "{}",
        resp.describe()
    );
    stale["metadata"]["generation"] = json!(2);
    let resp = put(app, &service_uri("chat"), &c.admin, stale).await;
    let current = accepted(app, resp, &c.admin, "trafficSplit", "chat").await;
    assert_eq!(current["metadata"]["generation"], 3);

    // Scale sets spec.replicas: a spec change.
    let resp = post(
        app,
        &format!("{}/scale", service_uri("chat")),
        &c.admin,
        json!({"replicas": 5}),
    )
    .await;
    let scaled = accepted(app, resp, &c.admin, "scale", "chat").await;
    assert_eq!(scaled["spec"]["replicas"], 5);
    assert_eq!(scaled["metadata"]["generation"], 4);
    assert_eq!(scaled["status"]["desiredReplicas"], 10);
    let resp = post(
        app,
        &format!("{}/scale", service_uri("chat")),
        &c.admin,
        json!({"replicas": 101}),
    )
    .await;
    assert_problem(&resp, 422, "invalid_body");
    assert_eq!(
        field_errors(&resp),
        ["replicas: replicas 101 is above the limit of 100"]
    );
    let resp = post(
        app,
        &format!("{}/scale", service_uri("chat")),
        &c.admin,
        json!({"replicas": -1}),
    )
    .await;
    assert_problem(&resp, 422, "invalid_body");

    // Restart: the spec and its generation stay; the restart is recorded.
    let resp = post(
        app,
        &format!("{}/restart", service_uri("chat")),
        &c.admin,
        json!(null),
    )
    .await;
    let restarted = accepted(app, resp, &c.admin, "restart", "chat").await;
    assert_eq!(restarted["metadata"]["generation"], 4);
    assert!(
        restarted["metadata"]["annotations"]["autoglm.io/restartedAt"].is_string(),
        "{restarted}"
    );
    let stored = c.state.store.service("default", "chat").unwrap();
    assert_eq!(stored.restarts, 1);

    // Listed with the label filter and the model filter.
    let mut batch = manifest(
        "batch",
        json!({"model": "smollm2", "versions": [{"version": "2", "weight": 100}]}),
    );
    batch["metadata"]["labels"] = json!({"team": "batch"});
    post(app, SERVICES, &c.admin, batch).await.expect(202);
    let names = |items: Vec<Value>| -> Vec<String> {
        items
            .iter()
            .map(|s| s["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(get_items(app, SERVICES, &c.admin).await),
        ["batch", "chat"]
    );
    assert_eq!(
        names(get_items(app, &format!("{SERVICES}?label=team=nlp"), &c.admin).await),
        ["chat"]
    );
    assert_eq!(
        names(get_items(app, &format!("{SERVICES}?model=smollm2&limit=1"), &c.admin).await),
        ["batch"]
    );
    let page = get_json(
        app,
        &format!("{SERVICES}?limit=1&page_token=batch"),
        &c.admin,
    )
    .await;
    assert_eq!(names(page["items"].as_array().unwrap().clone()), ["chat"]);
    assert!(page["next_page_token"].is_null());
    assert!(
        get_items(app, &format!("{SERVICES}?model=other"), &c.admin)
            .await
            .is_empty()
    );
    assert_problem(
        &get(app, &format!("{SERVICES}?label=nokey"), &c.admin).await,
        400,
        "invalid_query",
    );

    // Delete, then it is gone.
    let task = delete(app, &service_uri("chat"), &c.admin)
        .await
        .expect(202)
        .json();
    assert_eq!(task["kind"], "delete");
    assert_problem(
        &get(app, &service_uri("chat"), &c.admin).await,
        404,
        "not_found",
    );
    assert_problem(
        &delete(app, &service_uri("chat"), &c.admin).await,
        404,
        "not_found",
    );
    assert_problem(
        &put(
            app,
            &service_uri("chat"),
            &c.admin,
            manifest("chat", canary("smollm2")),
        )
        .await,
        404,
        "not_found",
    );

    let actions: Vec<String> = audit(app, &c.admin, "target=services/&outcome=success")
        .await
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    for action in [
        "services.create",
        "services.update",
        "services.scale",
        "services.restart",
        "services.delete",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} not audited: {actions:?}"
        );
    }
    assert_audit_valid(app, &c.admin).await;
}

#[tokio::test]
async fn manifests_are_refused_with_every_field_named() {
    let c = console();
    let app = &c.app;
    model_with_versions(app, &c.admin, "smollm2", 2).await;
    let before = assert_audit_valid(app, &c.admin).await;

    // A version the model does not have: the field path and what exists.
    let mut spec = canary("smollm2");
    spec["versions"][1]["version"] = json!("7");
    let resp = post(app, SERVICES, &c.admin, manifest("chat", spec)).await;
    assert_problem(&resp, 422, "invalid_body");
    assert_eq!(
        field_errors(&resp),
        ["spec.versions[1].version: model \"smollm2\" has no version \"7\"; its versions are 1, 2"]
    );
    assert!(
        resp.json()["detail"]
            .as_str()
            .unwrap()
            .contains("spec.versions[1].version")
    );

    // A model that does not exist.
    let resp = post(app, SERVICES, &c.admin, manifest("chat", canary("nope"))).await;
    assert_problem(&resp, 422, "invalid_body");
    assert_eq!(
        field_errors(&resp),
        ["spec.model: model \"nope\" does not exist in the registry; register it first"]
    );

    // Weights that do not sum to 100, and a second mistake: both listed.
    let mut spec = canary("smollm2");
    spec["versions"][1]["weight"] = json!(20);
    spec["replicas"] = json!(500);
    let resp = post(app, SERVICES, &c.admin, manifest("chat", spec)).await;
    assert_problem(&resp, 422, "invalid_body");
    let errors = field_errors(&resp);
    assert!(
        errors.contains(
            &"spec.versions: weights sum to 110; they must sum to exactly 100".to_owned()
        ),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("spec.replicas: replicas 500")),
        "{errors:?}"
    );

    // An unknown field, in the spec and at the top.
    let mut spec = canary("smollm2");
    spec["replica"] = json!(2);
    let resp = post(app, SERVICES, &c.admin, manifest("chat", spec)).await;
    assert_problem(&resp, 422, "invalid_body");
    let errors = field_errors(&resp);
    assert!(
        errors[0].starts_with("spec: unknown field `replica`"),
        "{errors:?}"
    );
    let mut doc = manifest("chat", canary("smollm2"));
    doc["spce"] = json!({});
    let resp = post(app, SERVICES, &c.admin, doc).await;
    assert_problem(&resp, 422, "invalid_body");
    assert!(
        field_errors(&resp)[0].starts_with("spce: unknown field \"spce\""),
        "{}",
        resp.describe()
    );

    // The wrong kind, and a name the path does not match.
    let mut doc = manifest("chat", canary("smollm2"));
    doc["kind"] = json!("Deployment");
    let resp = post(app, SERVICES, &c.admin, doc).await;
    assert_problem(&resp, 422, "invalid_body");
    assert!(field_errors(&resp)[0].starts_with("kind: kind \"Deployment\" is not supported"));
    post(app, SERVICES, &c.admin, manifest("chat", canary("smollm2")))
        .await
        .expect(202);
    let resp = put(
        app,
        &service_uri("chat"),
        &c.admin,
        manifest("other", canary("smollm2")),
    )
    .await;
    assert_problem(&resp, 422, "invalid_body");
    assert!(
        field_errors(&resp)[0].starts_with("metadata.name: name \"other\" does not match \"chat\"")
    );
    // An update is checked against the registry too.
    let mut spec = canary("smollm2");
    spec["versions"][0]["version"] = json!("9");
    let resp = put(app, &service_uri("chat"), &c.admin, manifest("chat", spec)).await;
    assert_eq!(
        field_errors(&resp)[0],
        "spec.versions[0].version: model \"smollm2\" has no version \"9\"; its versions are 1, 2"
    );
    // Creating it twice.
    let resp = post(app, SERVICES, &c.admin, manifest("chat", canary("smollm2"))).await;
    assert_problem(&resp, 409, "already_exists");

    // Broken JSON is not a manifest at all.
    let req = request(Method::POST, SERVICES, Some(&c.admin))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"kind\": "))
        .unwrap();
    assert_problem(&send(app, req).await, 400, "malformed_body");

    // Nothing but the one good create changed the service list.
    let items = get_items(app, SERVICES, &c.admin).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata"]["generation"], 1);
    assert!(assert_audit_valid(app, &c.admin).await > before);
}

#[tokio::test]
async fn the_registry_keeps_what_a_service_serves() {
    let c = console();
    let app = &c.app;
    model_with_versions(app, &c.admin, "smollm2", 3).await;
    post(app, SERVICES, &c.admin, manifest("chat", canary("smollm2")))
        .await
        .expect(202);

    // The model cannot go while a service names it.
    let resp = delete(app, "/api/v1/models/smollm2", &c.admin).await;
    assert_problem(&resp, 409, "in_use");
    assert!(
        resp.json()["detail"]
            .as_str()
            .unwrap()
            .contains("served by service \"chat\""),
        "{}",
        resp.describe()
    );
    // Nor a version it routes to, even one kept warm at weight 0.
    let resp = delete(app, "/api/v1/models/smollm2/versions/2", &c.admin).await;
    assert_problem(&resp, 409, "in_use");
    assert!(
        resp.json()["detail"]
            .as_str()
            .unwrap()
            .contains("version 2 of \"smollm2\" is served by service \"chat\" (weight 10)"),
        "{}",
        resp.describe()
    );
    let resp = set_stage(app, &c.admin, "smollm2", 1, "archived").await;
    assert_problem(&resp, 409, "in_use");
    // Promoting another version while archiving the others would archive a served one.
    set_stage(app, &c.admin, "smollm2", 1, "production")
        .await
        .expect(200);
    let resp = set_stage_with(
        app,
        &c.admin,
        "smollm2",
        3,
        json!({"stage": "production", "archive_others": true}),
        Some(now_header()),
        Some(&nonce()),
    )
    .await;
    assert_problem(&resp, 409, "in_use");
    assert_eq!(
        get_json(app, "/api/v1/models/smollm2/versions/1", &c.admin).await["stage"],
        "production"
    );
    // A version no service lists goes as before.
    delete(app, "/api/v1/models/smollm2/versions/3", &c.admin)
        .await
        .expect(204);

    // An archived version cannot be put into a split.
    model_with_versions(app, &c.admin, "other", 1).await;
    set_stage(app, &c.admin, "other", 1, "staging")
        .await
        .expect(200);
    set_stage(app, &c.admin, "other", 1, "archived")
        .await
        .expect(200);
    let resp = post(
        app,
        SERVICES,
        &c.admin,
        manifest(
            "old",
            json!({"model": "other", "versions": [{"version": "1", "weight": 100}]}),
        ),
    )
    .await;
    assert_problem(&resp, 422, "invalid_body");
    assert_eq!(
        field_errors(&resp),
        [
            "spec.versions[0].version: version 1 of model \"other\" is archived; archived versions are not served"
        ]
    );

    // Once the service moves off version 2 and then goes, the registry may.
    let only_one = json!({"model": "smollm2", "versions": [{"version": "1", "weight": 100}]});
    put(
        app,
        &service_uri("chat"),
        &c.admin,
        manifest("chat", only_one),
    )
    .await
    .expect(202);
    delete(app, "/api/v1/models/smollm2/versions/2", &c.admin)
        .await
        .expect(204);
    delete(app, &service_uri("chat"), &c.admin)
        .await
        .expect(202);
    set_stage(app, &c.admin, "smollm2", 1, "archived")
        .await
        .expect(200);
    delete(app, "/api/v1/models/smollm2", &c.admin)
        .await
        .expect(204);
}

#[tokio::test]
async fn a_built_in_runtime_reads_its_config_key_as_settings_and_nothing_breaks_it() {
    let c = console();
    let app = &c.app;
    model_with_versions(app, &c.admin, "smollm2", 2).await;
    let key = "/api/v1/config/environments/dev/keys/DEFAULT_GROUP/chat.yaml";
    put(
        app,
        key,
        &c.admin,
        json!({"content": "sampling: {temprature: 0.2}\n"}),
    )
    .await
    .expect(201);
    let mut spec = canary("smollm2");
    spec["configRef"] = json!({"key": "chat.yaml"});

    // Not runtime settings (a misspelt field): the service is refused, named.
    let resp = post(app, SERVICES, &c.admin, manifest("chat", spec.clone())).await;
    assert_problem(&resp, 422, "invalid_body");
    let errors = field_errors(&resp);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "spec.configRef: config key dev/DEFAULT_GROUP/chat.yaml is not runtime settings"
        ) && errors[0].contains("unknown field `temprature`"),
        "{errors:?}"
    );
    get(app, &service_uri("chat"), &c.admin).await.expect(404);

    // Fixed, the service is made; a command runtime may read anything.
    put(
        app,
        key,
        &c.admin,
        json!({"content": "sampling: {temperature: 0.2}\n"}),
    )
    .await
    .expect(200);
    post(app, SERVICES, &c.admin, manifest("chat", spec))
        .await
        .expect(202);

    // Now content the runtime could not take is refused at publish, and
    // the key keeps the version the replicas read.
    let resp = put(
        app,
        key,
        &c.admin,
        json!({"content": "sampling: {temperature: 7}\n"}),
    )
    .await;
    assert_problem(&resp, 422, "invalid_body");
    assert_eq!(
        field_errors(&resp),
        [
            "content.sampling.temperature: must be 0 to 2 (service \"chat\" reads this key as its built-in runtime's settings)"
        ]
    );
    let now = get_json(app, key, &c.admin).await;
    assert_eq!(now["version"], 2, "{now}");
    assert_eq!(now["content"], "sampling: {temperature: 0.2}\n");
}

#[tokio::test]
async fn a_retried_create_replays_and_creates_once() {
    let c = console();
    let app = &c.app;
    model_with_versions(app, &c.admin, "smollm2", 2).await;
    let body = manifest("chat", canary("smollm2"));
    let first = post_with_key(app, &c.admin, SERVICES, "svc-1", body.clone())
        .await
        .expect(202);
    let again = post_with_key(app, &c.admin, SERVICES, "svc-1", body.clone())
        .await
        .expect(202);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    // Without the key, the same request is a second create: refused.
    assert_problem(
        &post(app, SERVICES, &c.admin, body).await,
        409,
        "already_exists",
    );
    let created = audit(app, &c.admin, "action=services.create&outcome=success").await;
    assert_eq!(created.len(), 1, "{created:?}");
}

#[tokio::test]
async fn tenants_see_only_their_own_services() {
    let c = console();
    let app = &c.app;
    model_with_versions(app, &c.admin, "smollm2", 2).await;
    post(app, SERVICES, &c.admin, manifest("chat", canary("smollm2")))
        .await
        .expect(202);

    post(app, "/api/v1/tenants", &c.admin, json!({"name": "team-a"}))
        .await
        .expect(201);
    create_user(app, &c.admin, "alice", Role::Viewer).await;
    call(
        app,
        Method::PUT,
        "/api/v1/users/alice/role",
        Some(&c.admin),
        Some(json!({"role": "developer", "tenant": "team-a"})),
    )
    .await
    .expect(200);
    let alice = login(app, "alice", Some("team-a")).await;

    assert!(get_items(app, SERVICES, &alice).await.is_empty());
    assert_problem(
        &get(app, &service_uri("chat"), &alice).await,
        404,
        "not_found",
    );
    assert_problem(
        &delete(app, &service_uri("chat"), &alice).await,
        404,
        "not_found",
    );
    assert_problem(
        &post(
            app,
            &format!("{}/scale", service_uri("chat")),
            &alice,
            json!({"replicas": 0}),
        )
        .await,
        404,
        "not_found",
    );
    // Nor can her service name the other tenant's model.
    let resp = post(app, SERVICES, &alice, manifest("chat", canary("smollm2"))).await;
    assert_problem(&resp, 422, "invalid_body");
    assert_eq!(
        field_errors(&resp)[0],
        "spec.model: model \"smollm2\" does not exist in the registry; register it first"
    );
    // With her own model, one name in two tenants is two services.
    model_with_versions(app, &alice, "smollm2", 2).await;
    let resp = post(app, SERVICES, &alice, manifest("chat", canary("smollm2"))).await;
    let hers = accepted(app, resp, &alice, "deploy", "chat").await;
    assert_eq!(hers["metadata"]["namespace"], "team-a");
    delete(app, &service_uri("chat"), &alice).await.expect(202);
    assert_eq!(
        get_json(app, &service_uri("chat"), &c.admin).await["metadata"]["namespace"],
        "default"
    );

    // A viewer reads services but does not change them.
    let viewer = user_session(app, &c.admin, "vic", Role::Viewer).await;
    assert_eq!(get_items(app, SERVICES, &viewer).await.len(), 1);
    assert_problem(
        &post(
            app,
            &format!("{}/restart", service_uri("chat")),
            &viewer,
            json!(null),
        )
        .await,
        403,
        "forbidden",
    );
}

#[tokio::test]
async fn autoscaled_services_are_not_scaled_by_hand() {
    let c = console();
    let app = &c.app;
    model_with_versions(app, &c.admin, "smollm2", 1).await;
    let spec = json!({
        "model": "smollm2",
        "versions": [{"version": "1", "weight": 100}],
        "autoscaling": {"minReplicas": 0, "maxReplicas": 10, "targetInFlight": 4},
    });
    let resp = post(app, SERVICES, &c.admin, manifest("auto", spec)).await;
    let created = accepted(app, resp, &c.admin, "deploy", "auto").await;
    // Autoscaling starts one replica even when it may scale to zero.
    assert_eq!(created["status"]["desiredReplicas"], 1);
    let resp = post(
        app,
        &format!("{}/scale", service_uri("auto")),
        &c.admin,
        json!({"replicas": 3}),
    )
    .await;
    assert_problem(&resp, 409, "invalid_transition");
    assert!(
        resp.json()["detail"]
            .as_str()
            .unwrap()
            .contains("autoscaled (0 to 10 replicas)"),
        "{}",
        resp.describe()
    );
    assert_eq!(
        get_json(app, &service_uri("auto"), &c.admin).await["metadata"]["generation"],
        1
    );
}

/// A gateway's history as the console sees it: one version with one
/// interval of traffic for `default/chat`, and nothing else.
#[derive(Debug)]
struct OneInterval;

impl autoglm_contract::TrafficHistory for OneInterval {
    fn traffic(&self, tenant: &str, service: &str, _: usize) -> Option<ServiceTraffic> {
        let mut counts = IntervalCounts::default();
        counts.record(200, 0.01);
        counts.record(503, 0.02);
        let versions = if (tenant, service) == ("default", "chat") {
            vec![VersionTraffic {
                version: "1".into(),
                points: vec![counts.point(chrono::Utc::now())],
            }]
        } else {
            vec![]
        };
        Some(ServiceTraffic {
            interval_seconds: 10,
            versions,
        })
    }
}

#[tokio::test]
async fn traffic_is_read_from_a_gateway_in_the_process_and_refused_without_one() {
    let c = console();
    model_with_versions(&c.app, &c.admin, "smollm2", 2).await;
    post(
        &c.app,
        SERVICES,
        &c.admin,
        manifest("chat", canary("smollm2")),
    )
    .await
    .expect(202);
    let traffic = format!("{}/traffic", service_uri("chat"));
    // `autoglm console` alone keeps no history: it says so, and where to look.
    let refused = get(&c.app, &traffic, &c.admin).await;
    assert_problem(&refused, 503, "unavailable");
    assert!(refused.text().contains("Prometheus"), "{}", refused.text());

    let app = autoglm_console::router(
        c.state
            .clone()
            .with_traffic(std::sync::Arc::new(OneInterval)),
    );
    let answer = get(&app, &traffic, &c.admin).await.expect(200).json();
    assert_eq!(answer["interval_seconds"], 10);
    let point = &answer["versions"][0]["points"][0];
    assert_eq!(answer["versions"][0]["version"], "1");
    assert_eq!(
        (point["requests"].as_u64(), point["errors"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(point["error_ratio"], 0.5);
    assert!(point["p99_seconds"].as_f64().unwrap() > 0.01, "{point}");
    // Only a service that exists has traffic; a viewer may read it.
    let missing = get(&app, &format!("{}/traffic", service_uri("nope")), &c.admin).await;
    assert_problem(&missing, 404, "not_found");
    let viewer = user_session(&app, &c.admin, "vee", Role::Viewer).await;
    get(&app, &traffic, &viewer).await.expect(200);
}

#[tokio::test]
async fn the_openapi_document_describes_services() {
    let c = console();
    let doc = get_json(&c.app, "/api/v1/openapi.json", &c.admin).await;
    let create = &doc["paths"]["/api/v1/services"]["post"];
    assert_eq!(create["x-autoglm-permission"], "services:write");
    assert_eq!(create["x-autoglm-least-role"], "developer");
    assert_eq!(
        doc["paths"]["/api/v1/services/{name}"]["get"]["x-autoglm-least-role"],
        "viewer"
    );
    assert!(doc["paths"]["/api/v1/services/{name}/scale"]["post"]["requestBody"].is_object());
    let problem = doc["components"]["schemas"]["Problem"].to_string();
    assert!(problem.contains("errors"), "{problem}");
}
