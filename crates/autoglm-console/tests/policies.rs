//! Policies as code through the console API: saved only when they compile,
//! versioned, and judging every ModelService write (refused with the
//! violations, warned in `Warning` headers, dry-run only audited), with
//! `policies/evaluate` explaining a decision without writing.
#![allow(clippy::unwrap_used)]

mod common;

use autoglm_core::rbac::Role;
use axum::http::Method;
use common::*;
use serde_json::{Value, json};

const MODEL: &str = "chat";

fn service(name: &str, labels: Value, spec: Value) -> Value {
    let mut spec = spec;
    spec["model"] = json!(MODEL);
    spec["versions"] = json!([{"version": "1", "weight": 100}]);
    json!({
        "apiVersion": "autoglm.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    })
}

async fn put_policy(c: &Console, token: &str, name: &str, body: Value) -> Resp {
    call(
        &c.app,
        Method::PUT,
        &format!("/api/v1/policies/{name}"),
        Some(token),
        Some(body),
    )
    .await
}

/// The library policy `name` with `parameters`, as a tenant adds it.
async fn add_default(c: &Console, name: &str, parameters: Value, mode: &str) {
    let library = get_json(&c.app, "/api/v1/policies/library", &c.admin).await;
    let entry = library
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not in the library: {library}"))
        .clone();
    let body = json!({"rego": entry["rego"], "parameters": parameters, "mode": mode});
    put_policy(c, &c.admin, name, body).await.expect(201);
}

/// A session of olga, admin of the tenant `other` (made here).
async fn admin_of_another_tenant(c: &Console) -> String {
    post(
        &c.app,
        "/api/v1/tenants",
        &c.admin,
        json!({"name": "other"}),
    )
    .await
    .expect(201);
    create_user(&c.app, &c.admin, "olga", Role::Viewer).await;
    let role = json!({"role": "admin", "tenant": "other"});
    call(
        &c.app,
        Method::PUT,
        "/api/v1/users/olga/role",
        Some(&c.admin),
        Some(role),
    )
    .await
    .expect(200);
    login(&c.app, "olga", Some("other")).await
}

/// A console with model `chat` whose version 1 is in production.
async fn console_with_model() -> Console {
    let c = console();
    create_model(&c.app, &c.admin, MODEL).await;
    upload_file(
        &c.app,
        &c.admin,
        MODEL,
        "model.safetensors",
        &safetensors([1.0, 2.0]),
    )
    .await;
    set_stage(&c.app, &c.admin, MODEL, 1, "production")
        .await
        .expect(200);
    c
}

#[tokio::test]
async fn an_enforced_policy_refuses_a_violating_service_and_lets_a_compliant_one_through() {
    let c = console_with_model().await;
    add_default(
        &c,
        "required-labels",
        json!({"labels": ["team", "cost-center"]}),
        "enforce",
    )
    .await;
    add_default(&c, "resource-limits", json!({}), "enforce").await;

    let refused = post(
        &c.app,
        "/api/v1/services",
        &c.admin,
        service("bad", json!({"team": "nlp"}), json!({})),
    )
    .await;
    assert_problem(&refused, 422, "policy_violation");
    let problem = refused.json();
    let mut violations: Vec<(String, String, String)> = problem["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["policy"].as_str().unwrap().into(),
                v["rule"].as_str().unwrap().into(),
                v["message"].as_str().unwrap().into(),
            )
        })
        .collect();
    violations.sort();
    assert_eq!(
        violations,
        [
            (
                "required-labels".into(),
                "deny".into(),
                "service bad must have the label cost-center".into()
            ),
            (
                "resource-limits".into(),
                "deny".into(),
                "service bad must set spec.resources.cpu".into()
            ),
            (
                "resource-limits".into(),
                "deny".into(),
                "service bad must set spec.resources.memory".into()
            ),
        ]
    );
    get(&c.app, "/api/v1/services/bad", &c.admin)
        .await
        .expect(404);

    let labels = json!({"team": "nlp", "cost-center": "cc-1"});
    let good = service(
        "good",
        labels.clone(),
        json!({"resources": {"cpu": "1", "memory": "1Gi"}}),
    );
    post(&c.app, "/api/v1/services", &c.admin, good.clone())
        .await
        .expect(202);

    // An update is judged too: dropping the memory limit is refused and
    // leaves the service as it was.
    let mut worse = good.clone();
    worse["spec"]["resources"] = json!({"cpu": "1"});
    let refused = call(
        &c.app,
        Method::PUT,
        "/api/v1/services/good",
        Some(&c.admin),
        Some(worse),
    )
    .await;
    assert_problem(&refused, 422, "policy_violation");
    let kept = get_json(&c.app, "/api/v1/services/good", &c.admin).await;
    assert_eq!(kept["spec"]["resources"]["memory"], "1Gi");

    // The decisions are in the audit: the refusals as policy_violation,
    // the allowed write beside its change.
    let records = audit(&c.app, &c.admin, "").await;
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "services.create" && r["outcome"] == "policy_violation"),
        "{records:?}"
    );
    // The refusing decision is recorded with what each policy found.
    assert!(
        records.iter().any(|r| r["action"] == "policies.decide"
            && r["target"] == "/api/v1/services"
            && r["outcome"].as_str().unwrap().starts_with("refused: ")
            && r["outcome"].as_str().unwrap().contains(
                "policy required-labels (deny): service bad must have the label cost-center"
            )),
        "{records:?}"
    );
    assert!(
        records.iter().any(|r| r["action"] == "policies.decide"
            && r["target"] == "services/good"
            && r["outcome"]
                .as_str()
                .unwrap()
                .starts_with("allowed by 2 policies")),
        "{records:?}"
    );
    assert_audit_valid(&c.app, &c.admin).await;
}

#[tokio::test]
async fn warn_policies_answer_warnings_and_dry_run_policies_only_record() {
    let c = console_with_model().await;
    add_default(&c, "dev-replicas", json!({"maxReplicas": 2}), "warn").await;
    add_default(&c, "resource-limits", json!({}), "dryrun").await;

    let dev = service(
        "dev-chat",
        json!({"environment": "dev"}),
        json!({"replicas": 3}),
    );
    let answer = post(&c.app, "/api/v1/services", &c.admin, dev)
        .await
        .expect(202);
    let warnings: Vec<&str> = answer
        .headers
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        warnings,
        [
            "299 - \"policy dev-replicas: service dev-chat is in dev, where a version may have at most 2 replicas; it asks for 3\""
        ]
    );
    let records = audit(&c.app, &c.admin, "").await;
    let decision = records
        .iter()
        .find(|r| r["action"] == "policies.decide")
        .unwrap();
    let outcome = decision["outcome"].as_str().unwrap();
    assert!(outcome.contains("warn dev-replicas/deny"), "{outcome}");
    assert!(
        outcome
            .contains("dryrun resource-limits/deny: service dev-chat must set spec.resources.cpu"),
        "{outcome}"
    );
}

#[tokio::test]
async fn a_policy_is_compiled_before_it_is_saved_and_kept_in_versions() {
    let c = console();
    let broken = put_policy(
        &c,
        &c.admin,
        "broken",
        json!({"rego": "package p\n\ndeny contains msg if {\n  msg := sprintf(\"%v\", [1]\n}\n"}),
    )
    .await;
    assert_problem(&broken, 422, "invalid_body");
    let error = &broken.json()["errors"][0];
    assert_eq!(error["path"], "rego");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("line 4, column 7: "),
        "{error}"
    );
    get(&c.app, "/api/v1/policies/broken", &c.admin)
        .await
        .expect(404);
    // Names the web console's pages use are refused; the API's own routes
    // (library, evaluate) are other endpoints, which take no PUT.
    let rego = json!({"rego": "package p\n\ndeny contains 1 if { false }\n"});
    for reserved in ["new", "test"] {
        let refused = put_policy(&c, &c.admin, reserved, rego.clone()).await;
        assert_problem(&refused, 422, "invalid_name");
    }
    assert_problem(
        &put_policy(&c, &c.admin, "library", rego).await,
        405,
        "method_not_allowed",
    );

    let rego = "package p\n\ndeny contains \"no\" if { input.resource.spec.replicas > 9 }\n";
    put_policy(&c, &c.admin, "limit", json!({"rego": rego}))
        .await
        .expect(201);
    let same = put_policy(&c, &c.admin, "limit", json!({"rego": rego}))
        .await
        .expect(200);
    assert_eq!(
        same.json()["version"],
        1,
        "an unchanged policy keeps its version"
    );
    let second = put_policy(&c, &c.admin, "limit", json!({"rego": rego, "mode": "warn"}))
        .await
        .expect(200);
    assert_eq!(second.json()["version"], 2);
    call(
        &c.app,
        Method::DELETE,
        "/api/v1/policies/limit",
        Some(&c.admin),
        None,
    )
    .await
    .expect(204);
    get(&c.app, "/api/v1/policies/limit", &c.admin)
        .await
        .expect(404);
    let versions = get_json(&c.app, "/api/v1/policies/limit/versions", &c.admin).await;
    let numbers: Vec<i64> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert_eq!(
        versions[0]["spec"],
        Value::Null,
        "the deletion is a version of its own"
    );

    // Only admins write policies; a viewer may read and explain.
    let viewer = user_session(&c.app, &c.admin, "vera", Role::Viewer).await;
    let refused = put_policy(&c, &viewer, "mine", json!({"rego": rego})).await;
    assert_problem(&refused, 403, "forbidden");
    get(&c.app, "/api/v1/policies", &viewer).await.expect(200);
}

#[tokio::test]
async fn evaluate_explains_a_decision_without_writing() {
    let c = console_with_model().await;
    add_default(&c, "prod-traffic", json!({}), "enforce").await;
    let prod = service("prod-chat", json!({"environment": "prod"}), json!({}));
    let answer = post(
        &c.app,
        "/api/v1/policies/evaluate",
        &c.admin,
        json!({"resource": prod}),
    )
    .await
    .expect(200);
    let body = answer.json();
    assert_eq!(
        body["decision"]["denials"],
        json!([]),
        "version 1 is in production: {body}"
    );
    let rule = &body["explanations"][0]["rules"][0];
    assert_eq!(rule["rule"], "deny");
    assert_eq!(rule["fired"], false);
    assert!(
        rule["inputPaths"]
            .as_array()
            .unwrap()
            .contains(&json!("input.resource.spec.versions")),
        "{rule}"
    );

    // A draft policy is judged alone and not saved.
    let draft = json!({"rego": "package d\n\ndeny contains \"no prod\" if { input.environment == \"prod\" }\n"});
    let answer = post(
        &c.app,
        "/api/v1/policies/evaluate",
        &c.admin,
        json!({"resource": prod, "policy": draft}),
    )
    .await
    .expect(200);
    let body = answer.json();
    assert_eq!(body["decision"]["denials"][0]["message"], "no prod");
    assert_eq!(
        body["explanations"][0]["rules"][0]["inputPaths"],
        json!(["input.environment"])
    );
    get(&c.app, "/api/v1/services/prod-chat", &c.admin)
        .await
        .expect(404);
    let names: Vec<Value> = get_json(&c.app, "/api/v1/policies", &c.admin)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, [json!("prod-traffic")]);
}

#[tokio::test]
async fn a_tenant_sees_and_changes_only_its_own_policies() {
    let c = console();
    let rego = "package p\n\ndeny contains \"no\" if { input.resource.spec.replicas > 9 }\n";
    put_policy(&c, &c.admin, "limit", json!({"rego": rego}))
        .await
        .expect(201);
    let olga = admin_of_another_tenant(&c).await;

    assert_eq!(get_json(&c.app, "/api/v1/policies", &olga).await, json!([]));
    get(&c.app, "/api/v1/policies/limit", &olga)
        .await
        .expect(404);
    get(&c.app, "/api/v1/policies/limit/versions", &olga)
        .await
        .expect(404);
    call(
        &c.app,
        Method::DELETE,
        "/api/v1/policies/limit",
        Some(&olga),
        None,
    )
    .await
    .expect(404);
    put_policy(&c, &olga, "limit", json!({"rego": rego, "mode": "warn"}))
        .await
        .expect(201);
    let ours = get_json(&c.app, "/api/v1/policies/limit", &c.admin).await;
    assert_eq!(
        (ours["version"].clone(), ours["spec"]["mode"].clone()),
        (json!(1), json!("enforce"))
    );
}

#[tokio::test]
async fn a_huge_or_looping_policy_is_bounded_and_the_console_stays_responsive() {
    let c = console_with_model().await;
    let huge = format!(
        "package p\n\ndeny contains \"x\" if {{ false }}\n#{}\n",
        "x".repeat(autoglm_policy::MAX_REGO_BYTES)
    );
    let refused = put_policy(&c, &c.admin, "huge", json!({"rego": huge})).await;
    assert_problem(&refused, 422, "invalid_body");
    assert!(
        refused.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 65536")
    );

    // 25 million iterations: it compiles, and every deploy it judges is
    // stopped at the evaluation limit and refused (it fails closed).
    let looping = "package p\n\ndeny contains \"never\" if {\n  some x in numbers.range(1, 5000)\n  some y in numbers.range(1, 5000)\n  x + y < 0\n}\n";
    put_policy(&c, &c.admin, "loops", json!({"rego": looping}))
        .await
        .expect(201);
    let started = std::time::Instant::now();
    let deploy = post(
        &c.app,
        "/api/v1/services",
        &c.admin,
        service("chat", json!({}), json!({})),
    );
    let read = async {
        // Reads are answered while the deploy is being judged.
        let models = get(&c.app, "/api/v1/models", &c.admin).await.expect(200);
        (models, started.elapsed())
    };
    let (refused, (_, read_after)) = tokio::join!(deploy, read);
    let took = started.elapsed();
    assert_problem(&refused, 422, "policy_violation");
    let message = refused.json()["violations"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("time limit"), "{message}");
    assert!(
        took < std::time::Duration::from_secs(5),
        "the deploy took {took:?}"
    );
    assert!(
        read_after < took,
        "a read waited for the deploy: {read_after:?} of {took:?}"
    );
}

#[tokio::test]
async fn a_global_policy_judges_every_tenant_and_only_system_admins_write_it() {
    let c = console_with_model().await;
    let rego = "package global\n\ndeny contains \"every service needs a team label\" if { not input.resource.metadata.labels.team }\n";
    call(
        &c.app,
        Method::PUT,
        "/api/v1/global-policies/team-label",
        Some(&c.admin),
        Some(json!({"rego": rego})),
    )
    .await
    .expect(201);

    // It judges a tenant with no policies of its own, under its own name.
    let refused = post(
        &c.app,
        "/api/v1/services",
        &c.admin,
        service("chat", json!({}), json!({})),
    )
    .await;
    assert_problem(&refused, 422, "policy_violation");
    assert_eq!(
        refused.json()["violations"][0]["policy"],
        "global/team-label"
    );
    post(
        &c.app,
        "/api/v1/services",
        &c.admin,
        service("chat", json!({"team": "nlp"}), json!({})),
    )
    .await
    .expect(202);

    // The admin of another tenant sees it among the policies that judge
    // them, and may neither change nor delete it.
    let olga = admin_of_another_tenant(&c).await;
    let listed = get_json(&c.app, "/api/v1/policies", &olga).await;
    assert_eq!(listed[0]["name"], "team-label");
    assert_eq!(listed[0]["scope"], "global");
    let put = call(
        &c.app,
        Method::PUT,
        "/api/v1/global-policies/team-label",
        Some(&olga),
        Some(json!({"rego": rego})),
    )
    .await;
    assert_problem(&put, 403, "forbidden");
    let deleted = call(
        &c.app,
        Method::DELETE,
        "/api/v1/global-policies/team-label",
        Some(&olga),
        None,
    )
    .await;
    assert_problem(&deleted, 403, "forbidden");
    // Her tenant's own policy of the same name is another policy.
    put_policy(
        &c,
        &olga,
        "team-label",
        json!({"rego": rego, "mode": "warn"}),
    )
    .await
    .expect(201);
    let global = get_json(&c.app, "/api/v1/global-policies/team-label", &c.admin).await;
    assert_eq!(
        (global["version"].clone(), global["spec"]["mode"].clone()),
        (json!(1), json!("enforce"))
    );
}

#[tokio::test]
async fn a_policy_that_asks_for_models_judges_their_creates_and_updates() {
    let c = console();
    let rego = "package models\n\ndeny contains msg if {\n  input.kind == \"Model\"\n  not input.resource.metadata.labels.team\n  msg := sprintf(\"model %s needs a team label\", [input.name])\n}\n";
    put_policy(
        &c,
        &c.admin,
        "model-team",
        json!({"rego": rego, "kinds": ["Model"]}),
    )
    .await
    .expect(201);
    // A ModelService-only policy never judges a model.
    let services_only = "package svc\n\ndeny contains \"no services today\" if { true }\n";
    put_policy(
        &c,
        &c.admin,
        "services-only",
        json!({"rego": services_only}),
    )
    .await
    .expect(201);

    let refused = post(&c.app, "/api/v1/models", &c.admin, json!({"name": "glm"})).await;
    assert_problem(&refused, 422, "policy_violation");
    assert_eq!(
        refused.json()["violations"][0]["message"],
        "model glm needs a team label"
    );
    get(&c.app, "/api/v1/models/glm", &c.admin)
        .await
        .expect(404);

    post(
        &c.app,
        "/api/v1/models",
        &c.admin,
        json!({"name": "glm", "labels": {"team": "nlp"}}),
    )
    .await
    .expect(201);
    let dropped = call(
        &c.app,
        Method::PATCH,
        "/api/v1/models/glm",
        Some(&c.admin),
        Some(json!({"labels": {}})),
    )
    .await;
    assert_problem(&dropped, 422, "policy_violation");
    let kept = get_json(&c.app, "/api/v1/models/glm", &c.admin).await;
    assert_eq!(kept["labels"]["team"], "nlp");
    let records = audit(&c.app, &c.admin, "").await;
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "policies.decide" && r["target"] == "models/glm"),
        "{records:?}"
    );
}

#[tokio::test]
async fn a_policy_that_asks_for_versions_judges_their_registration_and_stage_changes() {
    let c = console();
    create_model(&c.app, &c.admin, MODEL).await;
    let rego = "package versions\n\n\
        deny contains msg if {\n  input.operation == \"CREATE\"\n  object.get(input.resource.spec, \"framework\", null) == null\n  \
        msg := sprintf(\"version %s must name its framework\", [input.name])\n}\n\n\
        deny contains msg if {\n  input.resource.spec.stage == \"production\"\n  \
        input.oldResource.spec.stage != \"staging\"\n  \
        msg := sprintf(\"version %s goes to production from %s, not from staging\", [input.name, input.oldResource.spec.stage])\n}\n";
    put_policy(
        &c,
        &c.admin,
        "version-rules",
        json!({"rego": rego, "kinds": ["ModelVersion"]}),
    )
    .await
    .expect(201);

    let weights = safetensors([1.0, 2.0]);
    let refused = upload(
        &c.app,
        &c.admin,
        MODEL,
        &[Part::artifact("model.safetensors", &weights)],
    )
    .await;
    assert_problem(&refused, 422, "policy_violation");
    assert_eq!(
        refused.json()["detail"],
        format!("policy version-rules (deny): version {MODEL}/1 must name its framework")
    );
    let listed = get_json(
        &c.app,
        &format!("/api/v1/models/{MODEL}/versions"),
        &c.admin,
    )
    .await;
    assert_eq!(listed["items"], json!([]), "a refused version is not kept");

    let with_framework = || async {
        upload(
            &c.app,
            &c.admin,
            MODEL,
            &[
                Part::metadata(&json!({"framework": "safetensors"})),
                Part::artifact("model.safetensors", &weights),
            ],
        )
        .await
        .expect(201);
    };
    with_framework().await;
    // Straight to production is refused and leaves the stage; through staging it goes.
    let skipped = set_stage(&c.app, &c.admin, MODEL, 1, "production").await;
    assert_problem(&skipped, 422, "policy_violation");
    let kept = get_json(
        &c.app,
        &format!("/api/v1/models/{MODEL}/versions/1"),
        &c.admin,
    )
    .await;
    assert_eq!(kept["stage"], "none");
    set_stage(&c.app, &c.admin, MODEL, 1, "staging")
        .await
        .expect(200);
    set_stage(&c.app, &c.admin, MODEL, 1, "production")
        .await
        .expect(200);
    let records = audit(&c.app, &c.admin, "").await;
    assert!(
        records.iter().any(|r| r["action"] == "policies.decide"
            && r["target"] == format!("models/{MODEL}/versions/1")),
        "{records:?}"
    );

    // A rollout that will promote its canary asks for that stage change
    // now: toward a version not in staging it is refused with the
    // version policy's words; once the version is in staging it starts.
    post(
        &c.app,
        "/api/v1/services",
        &c.admin,
        service("chat-svc", json!({}), json!({})),
    )
    .await
    .expect(202);
    with_framework().await;
    let mut canary = service("chat-svc", json!({}), json!({}));
    canary["spec"]["versions"] = json!([{"version": "2", "weight": 100}]);
    canary["spec"]["rollout"] = json!({"steps": [{"setWeight": 50}], "promoteToProduction": true});
    let refused = call(
        &c.app,
        Method::PUT,
        "/api/v1/services/chat-svc",
        Some(&c.admin),
        Some(canary.clone()),
    )
    .await;
    assert_problem(&refused, 422, "policy_violation");
    assert_eq!(
        refused.json()["detail"],
        format!(
            "policy version-rules (deny): version {MODEL}/2 goes to production from none, not from staging"
        )
    );
    set_stage(&c.app, &c.admin, MODEL, 2, "staging")
        .await
        .expect(200);
    call(
        &c.app,
        Method::PUT,
        "/api/v1/services/chat-svc",
        Some(&c.admin),
        Some(canary),
    )
    .await
    .expect(202);
}

#[tokio::test]
async fn a_policy_that_asks_for_configs_judges_each_published_version() {
    let c = console();
    let rego = "package configs\n\n\
        deny contains msg if {\n  input.resource.spec.environment == \"dev\"\n  \
        contains(input.resource.spec.content, \"debug: true\")\n  \
        msg := sprintf(\"config %s turns debug on in %s\", [input.name, input.environment])\n}\n";
    put_policy(
        &c,
        &c.admin,
        "no-debug",
        json!({"rego": rego, "kinds": ["Config"]}),
    )
    .await
    .expect(201);
    let key = "/api/v1/config/environments/dev/keys/DEFAULT_GROUP/app.yaml";
    let refused = call(
        &c.app,
        Method::PUT,
        key,
        Some(&c.admin),
        Some(json!({"content": "debug: true\n"})),
    )
    .await;
    assert_problem(&refused, 422, "policy_violation");
    assert_eq!(
        refused.json()["detail"],
        "policy no-debug (deny): config DEFAULT_GROUP/app.yaml turns debug on in dev"
    );
    get(&c.app, key, &c.admin).await.expect(404);

    call(
        &c.app,
        Method::PUT,
        key,
        Some(&c.admin),
        Some(json!({"content": "debug: false\n"})),
    )
    .await
    .expect(201);
    // Every new version is judged: turning it on later is refused, the key kept.
    let refused = call(
        &c.app,
        Method::PUT,
        key,
        Some(&c.admin),
        Some(json!({"content": "debug: true # again\n"})),
    )
    .await;
    assert_problem(&refused, 422, "policy_violation");
    let kept = get_json(&c.app, key, &c.admin).await;
    assert_eq!(kept["content"], "debug: false\n");
    let records = audit(&c.app, &c.admin, "").await;
    assert!(
        records.iter().any(|r| r["action"] == "policies.decide"
            && r["target"] == "config/dev/DEFAULT_GROUP/app.yaml"),
        "{records:?}"
    );
}
