//! Credentials and tenancy as a user meets them: login failures that do not
//! tell user names apart, the API key lifecycle (shown once, stored hashed,
//! usage recorded, revocation immediate), scoped keys, what developers may do
//! with keys, role changes that reach existing sessions at once, isolation
//! between tenants, and the unauthenticated operations surface (OpenAPI
//! document, health, readiness, metrics).
#![allow(clippy::unwrap_used)]

mod common;

use autoglm_console::routes::table;
use autoglm_core::audit::AuditEvent;
use autoglm_core::rbac::Role;
use autoglm_store::{Mutation, StoredResponse, Transaction, tenancy};
use axum::http::Method;
use common::*;
use serde_json::{Value, json};

/// The permissions a `whoami` answer lists.
fn permissions(me: &Value) -> Vec<&str> {
    me["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn login_failures_do_not_tell_user_names_apart() {
    let c = console();
    create_user(&c.app, &c.admin, "dev", Role::Developer).await;
    let attempt = |body: Value| try_login(&c.app, body);

    let wrong_password = attempt(json!({"username": "dev", "password": "not the password"})).await;
    let unknown_user = attempt(json!({"username": "nobody", "password": PASSWORD})).await;
    let other_tenant =
        attempt(json!({"username": "dev", "password": PASSWORD, "tenant": "elsewhere"})).await;
    for resp in [&wrong_password, &unknown_user, &other_tenant] {
        assert_problem(resp, 401, "invalid_credentials");
        assert!(!resp.text().contains("token"), "{}", resp.describe());
    }
    assert_eq!(
        wrong_password.json()["detail"],
        unknown_user.json()["detail"]
    );
    assert_eq!(
        wrong_password.json()["detail"],
        other_tenant.json()["detail"]
    );

    // The right password works, and the session says who and where.
    let ok = attempt(json!({"username": "dev", "password": PASSWORD}))
        .await
        .expect(200)
        .json();
    assert_eq!(ok["tenant"], "default");
    assert_eq!(ok["role"], "developer");
    let token = ok["token"].as_str().unwrap();
    let me = get_json(&c.app, "/api/v1/auth/whoami", token).await;
    assert_eq!(me["username"], "dev");
    assert_eq!(me["credential"], "session");
    assert_eq!(me["role"], "developer");
    let permissions = permissions(&me);
    assert!(permissions.contains(&"models:write"));
    assert!(!permissions.contains(&"models:promote"));

    // Failed logins are audited, anonymously, with their code.
    let failed = audit(
        &c.app,
        &c.admin,
        "action=auth.login&outcome=invalid_credentials",
    )
    .await;
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(failed.iter().all(|r| r["actor"] == "anonymous"));
    let ok = audit(&c.app, &c.admin, "action=auth.login&outcome=success").await;
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["actor"], "user:dev");
}

#[tokio::test]
async fn api_keys_are_shown_once_used_and_revoked() {
    let c = console();
    let dev = user_session(&c.app, &c.admin, "dev", Role::Developer).await;
    let created = post(
        &c.app,
        "/api/v1/keys",
        &dev,
        json!({"name": "ci", "expires_in_seconds": 3600}),
    )
    .await
    .expect(201)
    .json();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("agk_"), "{secret}");
    assert!(secret.len() >= 40);
    assert_eq!(created["username"], "dev");
    assert_eq!(created["tenant"], "default");
    assert!(created["expires_at"].is_string());
    assert!(created["last_used_at"].is_null());

    // Never shown again: not in the list, not in the audit log.
    let listed = get(&c.app, "/api/v1/keys", &dev).await.expect(200);
    assert!(!listed.text().contains(&secret));
    assert!(!listed.text().contains("\"secret\""));
    let all = get(&c.app, "/api/v1/keys?all=true", &c.admin)
        .await
        .expect(200);
    assert!(!all.text().contains(&secret));
    let log = get(&c.app, "/api/v1/audit?limit=1000", &c.admin)
        .await
        .expect(200);
    assert!(!log.text().contains(&secret));
    // Nor in the database file.
    let db = std::fs::read(c.dir.path().join("autoglm.db")).unwrap();
    assert!(
        !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret is stored in clear"
    );

    // It authenticates, as an API key of its owner, and its use is recorded.
    let me = get_json(&c.app, "/api/v1/auth/whoami", &secret).await;
    assert_eq!(me["username"], "dev");
    assert_eq!(me["credential"], "api_key");
    let listed = get_json(&c.app, "/api/v1/keys", &dev).await;
    let key = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(key["last_used_at"].is_string(), "{key}");
    assert!(key["revoked_at"].is_null());

    // Revoked: refused at once.
    let revoked = delete(&c.app, &format!("/api/v1/keys/{id}"), &dev)
        .await
        .expect(200)
        .json();
    assert!(revoked["revoked_at"].is_string());
    let resp = get(&c.app, "/api/v1/auth/whoami", &secret).await;
    assert_problem(&resp, 401, "invalid_credentials");
    let resp = post(&c.app, "/api/v1/models", &secret, json!({"name": "after"})).await;
    assert_problem(&resp, 401, "invalid_credentials");
    assert_eq!(model_count(&c.app, &c.admin).await, 0);
    // Revoking twice finds nothing to revoke.
    assert_problem(
        &delete(&c.app, &format!("/api/v1/keys/{id}"), &dev).await,
        404,
        "not_found",
    );
    // A secret with one character changed is no key at all.
    let mut tampered = secret.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'a' { 'b' } else { 'a' });
    assert_problem(
        &get(&c.app, "/api/v1/auth/whoami", &tampered).await,
        401,
        "invalid_credentials",
    );
}

#[tokio::test]
async fn an_expired_api_key_is_refused_as_expired() {
    let c = console();
    // Keys live at least 60 s, so the expired one is written straight to the store.
    let (secret, row) = autoglm_auth::new_api_key(
        "admin",
        "default",
        Some("expired".into()),
        None,
        Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
    );
    let target = format!("keys/{}", row.id);
    write_in_store(&c, "default", "keys.create", &target, 201, move |tx| {
        tenancy::insert_key(tx, &row)
    });
    assert_problem(
        &get(&c.app, "/api/v1/auth/whoami", &secret).await,
        401,
        "token_expired",
    );
    assert_problem(
        &post(&c.app, "/api/v1/models", &secret, json!({"name": "late"})).await,
        401,
        "token_expired",
    );
    assert_eq!(model_count(&c.app, &c.admin).await, 0);
}

/// RFC 9110 §11.1: the authentication scheme is a case-insensitive token,
/// and some HTTP clients send `bearer`.
#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let c = console();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let req = request(Method::GET, "/api/v1/auth/whoami", None)
            .header("authorization", format!("{scheme} {}", c.admin))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = send(&c.app, req).await;
        assert_eq!(resp.status.as_u16(), 200, "{scheme}: {}", resp.describe());
    }
}

#[tokio::test]
async fn scoped_keys_do_only_what_their_scopes_say() {
    let c = console();
    create_model(&c.app, &c.admin, "m").await;
    let (read_only, _) = create_key(&c.app, &c.admin, json!({"scopes": ["models:read"]})).await;
    let page = get_json(&c.app, "/api/v1/models", &read_only).await;
    assert_eq!(page["items"][0]["name"], "m");
    get(&c.app, "/api/v1/models/m", &read_only)
        .await
        .expect(200);
    let me = get_json(&c.app, "/api/v1/auth/whoami", &read_only).await;
    assert_eq!(me["role"], "admin");
    assert_eq!(me["permissions"], json!(["models:read"]));

    for resp in [
        post(&c.app, "/api/v1/models", &read_only, json!({"name": "n"})).await,
        delete(&c.app, "/api/v1/models/m", &read_only).await,
        get(&c.app, "/api/v1/audit", &read_only).await,
        get(&c.app, "/api/v1/tenants", &read_only).await,
        post(&c.app, "/api/v1/keys", &read_only, json!({})).await,
    ] {
        assert_problem(&resp, 403, "forbidden");
    }
    assert_eq!(model_names(&c.app, &c.admin).await, ["m"]);

    // A key made by a scoped key cannot hold more than it.
    let (writer, _) = create_key(
        &c.app,
        &c.admin,
        json!({"scopes": ["models:read", "models:write", "keys:write"]}),
    )
    .await;
    let resp = post(
        &c.app,
        "/api/v1/keys",
        &writer,
        json!({"scopes": ["models:delete"]}),
    )
    .await;
    assert_problem(&resp, 403, "forbidden");
    let (child, _) = create_key(&c.app, &writer, json!({})).await;
    let me = get_json(&c.app, "/api/v1/auth/whoami", &child).await;
    let mut permissions = permissions(&me);
    permissions.sort_unstable();
    assert_eq!(permissions, ["keys:write", "models:read", "models:write"]);
    assert_problem(
        &delete(&c.app, "/api/v1/models/m", &child).await,
        403,
        "forbidden",
    );
}

#[tokio::test]
async fn developers_manage_only_their_own_narrower_keys() {
    let c = console();
    let dev = user_session(&c.app, &c.admin, "dev", Role::Developer).await;
    let viewer = user_session(&c.app, &c.admin, "viewer", Role::Viewer).await;

    let resp = post(
        &c.app,
        "/api/v1/keys",
        &dev,
        json!({"scopes": ["audit:read"]}),
    )
    .await;
    assert_problem(&resp, 403, "forbidden");
    let resp = post(
        &c.app,
        "/api/v1/keys",
        &dev,
        json!({"scopes": ["models:read", "users:write"]}),
    )
    .await;
    assert_problem(&resp, 403, "forbidden");
    // Viewers hold no key permission at all.
    assert_problem(
        &post(&c.app, "/api/v1/keys", &viewer, json!({})).await,
        403,
        "forbidden",
    );

    // Someone else's key is invisible to a developer: not listed, not revocable.
    let (admin_key, admin_key_id) = create_key(&c.app, &c.admin, json!({"name": "admin's"})).await;
    let (_, dev_key_id) = create_key(&c.app, &dev, json!({"name": "dev's"})).await;
    let listed = get_json(&c.app, "/api/v1/keys", &dev).await;
    let ids = str_fields(&listed, "id");
    assert_eq!(ids, [dev_key_id.as_str()]);
    assert_problem(
        &get(&c.app, "/api/v1/keys?all=true", &dev).await,
        403,
        "forbidden",
    );
    assert_problem(
        &delete(&c.app, &format!("/api/v1/keys/{admin_key_id}"), &dev).await,
        404,
        "not_found",
    );
    get(&c.app, "/api/v1/auth/whoami", &admin_key)
        .await
        .expect(200);

    // Lifetimes out of range are refused.
    for seconds in [0, 59, 10 * 365 * 24 * 3600 + 1] {
        let resp = post(
            &c.app,
            "/api/v1/keys",
            &dev,
            json!({"expires_in_seconds": seconds}),
        )
        .await;
        assert_problem(&resp, 422, "invalid_body");
    }
    // An admin may revoke any key of the tenant.
    delete(&c.app, &format!("/api/v1/keys/{dev_key_id}"), &c.admin)
        .await
        .expect(200);
}

#[tokio::test]
async fn a_role_change_reaches_existing_credentials_at_once() {
    let c = console();
    let carol = user_session(&c.app, &c.admin, "carol", Role::Developer).await;
    let (carol_key, _) = create_key(&c.app, &carol, json!({})).await;
    post(&c.app, "/api/v1/models", &carol, json!({"name": "a"}))
        .await
        .expect(201);

    let user = set_role(&c.app, &c.admin, "carol", "viewer")
        .await
        .expect(200)
        .json();
    assert_eq!(
        user["roles"],
        json!([{"tenant": "default", "role": "viewer"}])
    );
    for token in [&carol, &carol_key] {
        let resp = post(&c.app, "/api/v1/models", token, json!({"name": "b"})).await;
        assert_problem(&resp, 403, "forbidden");
        get(&c.app, "/api/v1/models", token).await.expect(200);
        let me = get_json(&c.app, "/api/v1/auth/whoami", token).await;
        assert_eq!(me["role"], "viewer");
    }

    set_role(&c.app, &c.admin, "carol", "operator")
        .await
        .expect(200);
    get(&c.app, "/api/v1/audit", &carol).await.expect(200);
    // Operators may promote: the model has no version 1, so not found, not forbidden.
    assert_problem(
        &set_stage(&c.app, &carol, "a", 1, "staging").await,
        404,
        "not_found",
    );
    assert_eq!(
        get(&c.app, "/api/v1/users", &carol).await.status.as_u16(),
        403
    );

    // Nobody changes their own role, not even an admin.
    let admin_session = login(&c.app, "admin", None).await;
    let resp = set_role(&c.app, &admin_session, "admin", "viewer").await;
    assert_problem(&resp, 403, "forbidden");
    let resp = set_role(&c.app, &c.admin, "ghost", "viewer").await;
    assert_problem(&resp, 404, "not_found");
}

/// Runs `change` as one audited store write, bypassing the API: the audit
/// record has the actor `test`, and the response stored for it `status`.
fn write_in_store<T>(
    c: &Console,
    tenant: &str,
    action: &str,
    target: &str,
    status: u16,
    change: impl FnOnce(&Transaction<'_>) -> autoglm_store::Result<T>,
) {
    let audit = AuditEvent {
        time: autoglm_store::timestamp(chrono::Utc::now()),
        actor: "test".into(),
        tenant: tenant.into(),
        action: action.into(),
        target: target.into(),
        request_id: String::new(),
        outcome: String::new(),
    };
    c.state
        .store
        .write(
            Mutation {
                audit,
                idempotency: None,
            },
            move |tx, _| change(tx),
            |_| StoredResponse {
                status,
                body: Vec::new(),
            },
        )
        .unwrap();
}

#[tokio::test]
async fn tenants_do_not_see_or_touch_each_other() {
    let c = console();
    let app = &c.app;
    post(app, "/api/v1/tenants", &c.admin, json!({"name": "team-a"}))
        .await
        .expect(201);
    assert_problem(
        &post(app, "/api/v1/tenants", &c.admin, json!({"name": "team-a"})).await,
        409,
        "already_exists",
    );
    create_user(app, &c.admin, "alice", Role::Viewer).await;
    // Before she has a role in team-a she cannot log in there.
    assert_problem(
        &try_login(
            app,
            json!({"username": "alice", "password": PASSWORD, "tenant": "team-a"}),
        )
        .await,
        401,
        "invalid_credentials",
    );
    // Only a system admin may give a role in another tenant: a tenant's first admin.
    let in_team_a = json!({"role": "admin", "tenant": "team-a"});
    let second_admin = {
        create_user(app, &c.admin, "second-admin", Role::Admin).await;
        login(app, "second-admin", None).await
    };
    let put_role = |token: String| {
        let body = in_team_a.clone();
        async move {
            call(
                app,
                Method::PUT,
                "/api/v1/users/alice/role",
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    assert_eq!(
        put_role(second_admin).await.status,
        200,
        "an admin of the system tenant"
    );
    let nowhere = json!({"role": "admin", "tenant": "no-such-tenant"});
    assert_problem(
        &call(
            app,
            Method::PUT,
            "/api/v1/users/alice/role",
            Some(&c.admin),
            Some(nowhere),
        )
        .await,
        404,
        "not_found",
    );
    let alice = login(app, "alice", Some("team-a")).await;
    let me = get_json(app, "/api/v1/auth/whoami", &alice).await;
    assert_eq!(me["tenant"], "team-a");
    assert_eq!(me["role"], "admin");
    // A tenant's admin cannot reach into another tenant.
    let into_default = json!({"role": "admin", "tenant": "default"});
    assert_problem(
        &call(
            app,
            Method::PUT,
            "/api/v1/users/second-admin/role",
            Some(&alice),
            Some(into_default),
        )
        .await,
        403,
        "forbidden",
    );
    // Her session in default is still a viewer's.
    let alice_default = login(app, "alice", None).await;
    assert_problem(
        &post(app, "/api/v1/models", &alice_default, json!({"name": "x"})).await,
        403,
        "forbidden",
    );

    create_model(app, &c.admin, "public-d").await;
    create_model(app, &alice, "secret-a").await;
    // One name in two tenants is two models.
    create_model(app, &c.admin, "shared").await;
    create_model(app, &alice, "shared").await;
    upload_file(
        app,
        &c.admin,
        "shared",
        "m.safetensors",
        &safetensors([1.0, 2.0]),
    )
    .await;

    assert_eq!(model_names(app, &c.admin).await, ["public-d", "shared"]);
    assert_eq!(model_names(app, &alice).await, ["secret-a", "shared"]);
    let theirs = get_json(app, "/api/v1/models/shared", &alice).await;
    assert_eq!(theirs["tenant"], "team-a");
    assert_eq!(theirs["version_count"], 0);
    assert_problem(
        &get(app, "/api/v1/models/secret-a", &c.admin).await,
        404,
        "not_found",
    );
    assert_problem(
        &get(app, "/api/v1/models/public-d", &alice).await,
        404,
        "not_found",
    );
    assert_problem(
        &get(app, "/api/v1/models/shared/versions/1", &alice).await,
        404,
        "not_found",
    );
    assert_problem(
        &get(app, "/api/v1/models/shared/versions/1/artifact", &alice).await,
        404,
        "not_found",
    );

    // Nor can she change them.
    assert_problem(
        &delete(app, "/api/v1/models/public-d", &alice).await,
        404,
        "not_found",
    );
    assert_problem(
        &patch(
            app,
            "/api/v1/models/public-d",
            &alice,
            json!({"description": "mine now"}),
        )
        .await,
        404,
        "not_found",
    );
    assert_problem(
        &upload(
            app,
            &alice,
            "public-d",
            &[Part::artifact("m.safetensors", &safetensors([0.0, 0.0]))],
        )
        .await,
        404,
        "not_found",
    );
    let kept = get_json(app, "/api/v1/models/public-d", &c.admin).await;
    assert!(kept["description"].is_null());
    assert_eq!(kept["version_count"], 0);

    // A tenant admin is not a system admin.
    assert_problem(&get(app, "/api/v1/tenants", &alice).await, 403, "forbidden");
    assert_problem(
        &post(app, "/api/v1/tenants", &alice, json!({"name": "team-b"})).await,
        403,
        "forbidden",
    );
    assert_problem(
        &get(app, "/api/v1/audit?tenant=default", &alice).await,
        403,
        "forbidden",
    );
    let own_log = get_items(app, "/api/v1/audit?limit=1000", &alice).await;
    assert!(!own_log.is_empty());
    assert!(
        own_log.iter().all(|r| r["tenant"] == "team-a"),
        "{own_log:?}"
    );

    // Users she creates live in her tenant only.
    post(
        app,
        "/api/v1/users",
        &alice,
        json!({"username": "bob", "password": PASSWORD, "role": "developer"}),
    )
    .await
    .expect(201);
    assert_problem(
        &try_login(app, json!({"username": "bob", "password": PASSWORD})).await,
        401,
        "invalid_credentials",
    );
    let bob = login(app, "bob", Some("team-a")).await;
    assert_eq!(model_names(app, &bob).await, ["secret-a", "shared"]);
    let users_a = get_json(app, "/api/v1/users", &alice).await;
    let names_a = str_fields(&users_a, "username");
    assert_eq!(names_a, ["alice", "bob"]);
    let users_d = get_json(app, "/api/v1/users", &c.admin).await;
    assert!(
        users_d
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["username"] != "bob")
    );

    // Her role changes act in her tenant only.
    set_role(app, &alice, "admin", "viewer").await.expect(200);
    let admin_session = login(app, "admin", None).await;
    let me = get_json(app, "/api/v1/auth/whoami", &admin_session).await;
    assert_eq!(
        me["role"], "admin",
        "a team-a admin demoted the system admin"
    );
    get(app, "/api/v1/tenants", &c.admin).await.expect(200);

    // Keys are per tenant too.
    let (alice_key, alice_key_id) = create_key(app, &alice, json!({})).await;
    let me = get_json(app, "/api/v1/auth/whoami", &alice_key).await;
    assert_eq!(me["tenant"], "team-a");
    let all_d = get(app, "/api/v1/keys?all=true", &c.admin)
        .await
        .expect(200);
    assert!(!all_d.text().contains(&alice_key_id));
    assert_problem(
        &delete(app, &format!("/api/v1/keys/{alice_key_id}"), &c.admin).await,
        404,
        "not_found",
    );
    get(app, "/api/v1/auth/whoami", &alice_key)
        .await
        .expect(200);
    assert_audit_valid(app, &c.admin).await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let c = console();
    let resp = call(&c.app, Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200);
    let doc = resp.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let routes = table();
    let mut operations = 0;
    for op in paths.values() {
        operations += op.as_object().unwrap().len();
    }
    assert_eq!(operations, routes.len(), "one operation per route, no more");
    for route in &routes {
        let spec = &route.spec;
        let path = spec.path.replace("{*", "{");
        let method = spec.method.as_str().to_lowercase();
        let op = &doc["paths"][&path][&method];
        assert!(
            op.is_object(),
            "{method} {path} is missing from the document"
        );
        assert_eq!(op["operationId"], spec.action, "{method} {path}");
        let problem = &op["responses"]["default"]["content"]["application/problem+json"]["schema"];
        assert!(
            problem.is_object(),
            "{method} {path} has no problem response: {op}"
        );
        // The problem schema resolves to one with the stable `code`.
        let schema = match problem["$ref"].as_str() {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap();
                doc["components"]["schemas"][name].clone()
            }
            None => problem.clone(),
        };
        assert!(
            schema["properties"]["code"].is_object(),
            "{method} {path}: {schema}"
        );
        // Every path parameter is declared.
        for name in path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        {
            let declared = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true);
            assert!(declared, "{method} {path} does not declare {{{name}}}");
        }
        if spec.command {
            let headers: Vec<String> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "header")
                .map(|p| p["name"].as_str().unwrap().to_lowercase())
                .collect();
            assert!(
                headers.contains(&"x-autoglm-timestamp".to_owned()),
                "{method} {path}"
            );
            assert!(
                headers.contains(&"x-autoglm-nonce".to_owned()),
                "{method} {path}"
            );
        }
    }
    // Every error code is published with its status.
    let codes = doc["x-autoglm-error-codes"].as_array().unwrap();
    assert!(
        codes
            .iter()
            .any(|c| c["code"] == "nonce_reused" && c["status"] == 409)
    );
    assert_eq!(codes.len(), autoglm_core::error::ErrorCode::ALL.len());
}

#[tokio::test]
async fn health_readiness_and_metrics_answer_without_credentials() {
    let c = console();
    let health = call(&c.app, Method::GET, "/healthz", None, None)
        .await
        .expect(200);
    assert_eq!(health.text().trim(), "ok");
    call(&c.app, Method::GET, "/readyz", None, None)
        .await
        .expect(200);

    get(&c.app, "/api/v1/models", &c.admin).await.expect(200);
    get(&c.app, "/api/v1/models/no-such-model-4711", &c.admin).await;
    call(&c.app, Method::GET, "/api/v1/nothing-here-4711", None, None).await;

    let metrics = call(&c.app, Method::GET, "/metrics", None, None)
        .await
        .expect(200);
    let text = metrics.text();
    let counter = text
        .lines()
        .find(|l| {
            l.starts_with("autoglm_console_http_requests_total{")
                && l.contains("route=\"/api/v1/models\"")
                && l.contains("method=\"GET\"")
                && l.contains("code=\"200\"")
        })
        .unwrap_or_else(|| panic!("no request counter for GET /api/v1/models:\n{text}"));
    let value: f64 = counter.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value >= 1.0, "{counter}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("autoglm_console_http_requests_total{")
                && l.contains("route=\"/api/v1/models/{name}\"")
                && l.contains("code=\"404\"")),
        "{text}"
    );
    // Labelled by template, never by raw path.
    assert!(
        !text.contains("4711"),
        "a raw path reached the metrics:\n{text}"
    );
    let schema = text
        .lines()
        .find(|l| l.starts_with("autoglm_store_schema_version"))
        .unwrap_or_else(|| panic!("no schema version gauge:\n{text}"));
    let version: i64 = schema.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(version >= 1, "{schema}");
}
