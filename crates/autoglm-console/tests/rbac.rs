//! Authentication and authorisation of every route in `routes::table()`.
//!
//! Who may call what is written out below as a spec ([`SPEC`]: each route's
//! least role), not read from the route table the guard enforces, so a wrong
//! entry in the table (or in a permission's least role) fails here. The walk
//! goes over every route of the table, which must be exactly the spec's: a
//! route added later fails until its line is added. Each non-public route
//! must refuse a missing, malformed, unknown, forged or expired credential
//! with 401 and a stable code, and each role must be let through exactly
//! when the spec says so (403 `forbidden` otherwise). Refusals are problem
//! documents, and a refused mutation is in the audit log with the caller as
//! actor.
#![allow(clippy::unwrap_used)]

mod common;

use autoglm_auth::Sessions;
use autoglm_console::routes::{RequestBody, RouteSpec, table};
use autoglm_core::rbac::Role;
use axum::body::Body;
use axum::http::{Request, header};
use common::*;
use serde_json::{Value, json};

/// What the walk fills path parameters and bodies with.
struct Fixture {
    key_id: String,
    file: Vec<u8>,
}

const FIXTURE_MODEL: &str = "fixture";
const FIXTURE_FILE: &str = "model.safetensors";
const BYSTANDER: &str = "bystander";

fn path_for(spec: &RouteSpec, fx: &Fixture) -> String {
    spec.path
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                None => segment.to_owned(),
                Some("name") => FIXTURE_MODEL.to_owned(),
                Some("version") => "1".to_owned(),
                Some("*path") => FIXTURE_FILE.to_owned(),
                Some("username") => BYSTANDER.to_owned(),
                // The fixture service's deploy task.
                Some("id") if spec.path.starts_with("/api/v1/tasks/") => "1".to_owned(),
                Some("id") => fx.key_id.clone(),
                Some("action") => "pause".to_owned(),
                Some("replica") => format!("default.{FIXTURE_MODEL}-1-1"),
                // An environment that does not exist for the event stream,
                // which would otherwise answer 200 and never end.
                Some("env") if spec.path.ends_with("/events") => "no-such-env".to_owned(),
                Some("env") => "dev".to_owned(),
                Some("group") => "DEFAULT_GROUP".to_owned(),
                Some("key") => "rbac.txt".to_owned(),
                Some(other) => panic!(
                    "route {} {} has a path parameter {{{other}}} the RBAC walk has no fixture \
                     value for; add one to path_for",
                    spec.method, spec.path
                ),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// A JSON body the route's handler would accept with the fixture, so that a
/// request let through the guard is not refused for its shape. Unknown
/// routes get `{}`: whatever the handler says, it must not be 401 or 403.
fn json_body(spec: &RouteSpec) -> Value {
    match spec.action {
        "auth.login" => json!({"username": "admin", "password": PASSWORD}),
        "tenants.create" => json!({"name": "rbac-tenant"}),
        "users.create" => {
            json!({"username": "rbac-new-user", "password": PASSWORD, "role": "viewer"})
        }
        "users.set_role" => json!({"role": "viewer"}),
        "keys.create" => json!({"name": "rbac walk"}),
        "models.create" => json!({"name": "rbac-model"}),
        "models.update" => json!({"description": "touched by the RBAC walk"}),
        // The fixture version is in production already: a no-op move, refused
        // by the handler with 409 once the guard has let it through.
        "versions.set_stage" => json!({"stage": "production"}),
        "services.create" => service_manifest("rbac-service"),
        "services.update" => service_manifest(FIXTURE_MODEL),
        "services.scale" => json!({"replicas": 2}),
        "tasks.create" => json!({"kind": "restart", "target": format!("services/{FIXTURE_MODEL}")}),
        "tenants.set_rate_limit" => json!({"requests_per_second": 100}),
        "config.keys.publish" => json!({"content": "written by the RBAC walk"}),
        "policies.put" | "global_policies.put" => {
            json!({"rego": "package rbac\n\nwarn contains \"walked\" if { true }\n"})
        }
        "policies.evaluate" => json!({"resource": service_manifest("rbac-evaluated")}),
        _ => json!({}),
    }
}

/// A service named `name` serving the fixture model's version 1.
fn service_manifest(name: &str) -> Value {
    json!({
        "apiVersion": "autoglm.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": name},
        "spec": {"model": FIXTURE_MODEL, "versions": [{"version": "1", "weight": 100}]},
    })
}

/// The request the walk sends for `spec`, with `authorization` as the raw header.
fn build(spec: &RouteSpec, fx: &Fixture, authorization: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(spec.method.clone())
        .uri(path_for(spec, fx));
    if let Some(value) = authorization {
        builder = builder.header(header::AUTHORIZATION, value);
    }
    if spec.command {
        builder = builder
            .header("x-autoglm-timestamp", now_header())
            .header("x-autoglm-nonce", nonce());
    }
    match spec.request {
        RequestBody::None => builder.body(Body::empty()),
        RequestBody::Json(_) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&json_body(spec)).unwrap())),
        // The smallest WebAssembly module: refused as no filter (422), by
        // a handler the guard let through.
        RequestBody::Binary(media) => builder
            .header(header::CONTENT_TYPE, media)
            .body(Body::from(&b"\0asm\x01\0\0\0"[..])),
        // An upload: the JSON form registers server paths, which needs
        // another permission than the route's, checked in the handler.
        RequestBody::UploadOrJson(_) => {
            let parts = [Part::artifact(FIXTURE_FILE, &fx.file)];
            builder
                .header(header::CONTENT_TYPE, multipart_content_type())
                .body(Body::from(multipart(&parts)))
        }
    }
    .unwrap()
}

fn label(spec: &RouteSpec) -> String {
    format!("{} {}", spec.method, spec.path)
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum May {
    /// Anyone, without a credential.
    Public,
    /// Any valid credential.
    Anyone,
    /// This role and every stronger one.
    Least(Role),
    /// An admin of the system tenant.
    SystemAdmin,
}

use May::{Anyone, Least, Public, SystemAdmin};
use Role::{Admin, Developer, Operator, Viewer};

/// The spec: every route of the console API and the least role that may call it.
const SPEC: &[(&str, &str, May)] = &[
    ("POST", "/api/v1/auth/login", Public),
    ("GET", "/api/v1/auth/whoami", Anyone),
    ("GET", "/api/v1/tenants", SystemAdmin),
    ("POST", "/api/v1/tenants", SystemAdmin),
    ("GET", "/api/v1/tenants/{name}/rate-limit", SystemAdmin),
    ("PUT", "/api/v1/tenants/{name}/rate-limit", SystemAdmin),
    ("GET", "/api/v1/tenants/{name}/quota", SystemAdmin),
    ("PUT", "/api/v1/tenants/{name}/quota", SystemAdmin),
    ("GET", "/api/v1/users", Least(Admin)),
    ("POST", "/api/v1/users", Least(Admin)),
    ("PUT", "/api/v1/users/{username}/role", Least(Admin)),
    ("GET", "/api/v1/keys", Least(Developer)),
    ("POST", "/api/v1/keys", Least(Developer)),
    ("DELETE", "/api/v1/keys/{id}", Least(Developer)),
    ("GET", "/api/v1/models", Least(Viewer)),
    ("POST", "/api/v1/models", Least(Developer)),
    ("GET", "/api/v1/models/{name}", Least(Viewer)),
    ("PATCH", "/api/v1/models/{name}", Least(Developer)),
    ("DELETE", "/api/v1/models/{name}", Least(Operator)),
    ("GET", "/api/v1/models/{name}/versions", Least(Viewer)),
    ("POST", "/api/v1/models/{name}/versions", Least(Developer)),
    (
        "GET",
        "/api/v1/models/{name}/versions/{version}",
        Least(Viewer),
    ),
    (
        "DELETE",
        "/api/v1/models/{name}/versions/{version}",
        Least(Operator),
    ),
    (
        "GET",
        "/api/v1/models/{name}/versions/{version}/artifact",
        Least(Viewer),
    ),
    (
        "GET",
        "/api/v1/models/{name}/versions/{version}/files/{*path}",
        Least(Viewer),
    ),
    (
        "PUT",
        "/api/v1/models/{name}/versions/{version}/stage",
        Least(Operator),
    ),
    (
        "POST",
        "/api/v1/models/{name}/versions/{version}/evaluations",
        Least(Developer),
    ),
    (
        "GET",
        "/api/v1/models/{name}/versions/{version}/evaluations",
        Least(Viewer),
    ),
    (
        "GET",
        "/api/v1/models/{name}/versions/{version}/evaluations/{id}",
        Least(Viewer),
    ),
    ("GET", "/api/v1/services", Least(Viewer)),
    ("POST", "/api/v1/services", Least(Developer)),
    ("GET", "/api/v1/services/{name}", Least(Viewer)),
    ("PUT", "/api/v1/services/{name}", Least(Developer)),
    ("POST", "/api/v1/services/{name}/scale", Least(Developer)),
    ("POST", "/api/v1/services/{name}/restart", Least(Developer)),
    ("DELETE", "/api/v1/services/{name}", Least(Developer)),
    ("GET", "/api/v1/services/{name}/rollout", Least(Viewer)),
    (
        "POST",
        "/api/v1/services/{name}/rollout/{action}",
        Least(Developer),
    ),
    ("GET", "/api/v1/tasks", Least(Viewer)),
    ("POST", "/api/v1/tasks", Least(Developer)),
    ("GET", "/api/v1/tasks/{id}", Least(Viewer)),
    ("POST", "/api/v1/tasks/{id}/cancel", Least(Developer)),
    (
        "GET",
        "/api/v1/services/{name}/replicas/{replica}/logs",
        Least(Viewer),
    ),
    ("GET", "/api/v1/services/{name}/traffic", Least(Viewer)),
    ("GET", "/api/v1/usage", Least(Viewer)),
    ("GET", "/api/v1/quota", Least(Viewer)),
    ("GET", "/api/v1/filters", Least(Viewer)),
    ("GET", "/api/v1/filters/chain", Least(Viewer)),
    ("PUT", "/api/v1/filters/chain", Least(Developer)),
    ("GET", "/api/v1/filters/counters", Least(Viewer)),
    ("PUT", "/api/v1/filters/{name}", Least(Developer)),
    ("GET", "/api/v1/filters/{name}", Least(Viewer)),
    ("DELETE", "/api/v1/filters/{name}", Least(Developer)),
    ("GET", "/api/v1/filters/{name}/module", Least(Viewer)),
    ("POST", "/api/v1/filters/{name}/attach", Least(Developer)),
    ("POST", "/api/v1/filters/{name}/detach", Least(Developer)),
    ("GET", "/api/v1/audit", Least(Operator)),
    ("GET", "/api/v1/audit/verify", SystemAdmin),
    ("GET", "/api/v1/alerts", Least(Viewer)),
    ("GET", "/api/v1/alerts/rules", Least(Viewer)),
    ("POST", "/api/v1/alerts/rules", Least(Developer)),
    ("GET", "/api/v1/alerts/rules/{name}", Least(Viewer)),
    ("PUT", "/api/v1/alerts/rules/{name}", Least(Developer)),
    ("DELETE", "/api/v1/alerts/rules/{name}", Least(Developer)),
    ("GET", "/api/v1/alerts/silences", Least(Viewer)),
    ("POST", "/api/v1/alerts/silences", Least(Developer)),
    ("DELETE", "/api/v1/alerts/silences/{id}", Least(Developer)),
    ("GET", "/api/v1/alerts/notifications", Least(Viewer)),
    ("POST", "/api/v1/alerts/receiver", Least(Developer)),
    ("GET", "/api/v1/incidents", Least(Viewer)),
    ("GET", "/api/v1/incidents/mttr", Least(Viewer)),
    ("GET", "/api/v1/incidents/{id}", Least(Viewer)),
    (
        "POST",
        "/api/v1/incidents/{id}/acknowledge",
        Least(Developer),
    ),
    ("POST", "/api/v1/incidents/{id}/resolve", Least(Developer)),
    ("GET", "/api/v1/config/environments", Least(Viewer)),
    ("POST", "/api/v1/config/environments", Least(Operator)),
    ("GET", "/api/v1/config/environments/{env}", Least(Viewer)),
    (
        "GET",
        "/api/v1/config/environments/{env}/keys",
        Least(Viewer),
    ),
    (
        "GET",
        "/api/v1/config/environments/{env}/keys/{group}/{key}",
        Least(Viewer),
    ),
    (
        "PUT",
        "/api/v1/config/environments/{env}/keys/{group}/{key}",
        Least(Developer),
    ),
    (
        "DELETE",
        "/api/v1/config/environments/{env}/keys/{group}/{key}",
        Least(Developer),
    ),
    (
        "GET",
        "/api/v1/config/environments/{env}/keys/{group}/{key}/versions",
        Least(Viewer),
    ),
    (
        "GET",
        "/api/v1/config/environments/{env}/keys/{group}/{key}/versions/{version}",
        Least(Viewer),
    ),
    (
        "GET",
        "/api/v1/config/environments/{env}/keys/{group}/{key}/diff",
        Least(Viewer),
    ),
    (
        "POST",
        "/api/v1/config/environments/{env}/keys/{group}/{key}/rollback",
        Least(Developer),
    ),
    (
        "GET",
        "/api/v1/config/environments/{env}/snapshots",
        Least(Viewer),
    ),
    (
        "POST",
        "/api/v1/config/environments/{env}/snapshots",
        Least(Developer),
    ),
    (
        "GET",
        "/api/v1/config/environments/{env}/snapshots/{name}",
        Least(Viewer),
    ),
    (
        "POST",
        "/api/v1/config/environments/{env}/snapshots/{name}/restore",
        Least(Developer),
    ),
    ("POST", "/api/v1/config/promotions/preview", Least(Viewer)),
    ("POST", "/api/v1/config/promotions", Least(Developer)),
    (
        "POST",
        "/api/v1/config/environments/{env}/requests",
        Least(Developer),
    ),
    ("GET", "/api/v1/config/requests", Least(Viewer)),
    ("GET", "/api/v1/config/requests/{id}", Least(Viewer)),
    (
        "POST",
        "/api/v1/config/requests/{id}/approve",
        Least(Operator),
    ),
    (
        "POST",
        "/api/v1/config/requests/{id}/reject",
        Least(Operator),
    ),
    ("POST", "/api/v1/config/validate", Least(Viewer)),
    ("POST", "/api/v1/config/watch", Least(Viewer)),
    (
        "GET",
        "/api/v1/config/environments/{env}/events",
        Least(Viewer),
    ),
    ("GET", "/api/v1/policies", Least(Viewer)),
    ("GET", "/api/v1/policies/library", Least(Viewer)),
    ("POST", "/api/v1/policies/evaluate", Least(Viewer)),
    ("GET", "/api/v1/policies/{name}", Least(Viewer)),
    ("PUT", "/api/v1/policies/{name}", Least(Admin)),
    ("DELETE", "/api/v1/policies/{name}", Least(Admin)),
    ("GET", "/api/v1/policies/{name}/versions", Least(Viewer)),
    ("GET", "/api/v1/global-policies", SystemAdmin),
    ("GET", "/api/v1/global-policies/{name}", SystemAdmin),
    ("PUT", "/api/v1/global-policies/{name}", SystemAdmin),
    ("DELETE", "/api/v1/global-policies/{name}", SystemAdmin),
    (
        "GET",
        "/api/v1/global-policies/{name}/versions",
        SystemAdmin,
    ),
];

/// Whether `role`, holding a session in the system tenant, may call a route the spec gives `may`.
fn allowed(may: May, role: Role) -> bool {
    match may {
        Public | Anyone => true,
        Least(least) => role >= least,
        SystemAdmin => role == Role::Admin,
    }
}

/// The spec's line for a route of the table.
fn spec_of(spec: &RouteSpec) -> May {
    let method = spec.method.as_str();
    SPEC.iter()
        .find(|(m, p, _)| *m == method && *p == spec.path)
        .map(|(_, _, may)| *may)
        .unwrap_or_else(|| {
            panic!(
                "route {method} {} is not in the RBAC spec; add the least role that may call it to SPEC",
                spec.path
            )
        })
}

#[tokio::test]
async fn every_route_authenticates_and_authorises_as_the_spec_says() {
    let c = console();
    let app = &c.app;
    // The table holds exactly the spec's routes, and agrees on who is public.
    let served: Vec<(String, &str)> = table()
        .iter()
        .map(|r| (r.spec.method.to_string(), r.spec.path))
        .collect();
    for (method, path, _) in SPEC {
        assert!(
            served.iter().any(|(m, p)| m == method && p == path),
            "the spec has {method} {path}, which the console does not serve"
        );
    }

    // Fixture: one user per role, a bystander whose role the walk sets, a
    // model whose version 1 is in production (so that delete routes are
    // refused by the handler, 409, rather than emptying the fixture), a
    // service of the same name serving it, and a key of the admin for the
    // revoke route.
    let mut sessions = Vec::new();
    for (name, role) in [
        ("viewer", Role::Viewer),
        ("developer", Role::Developer),
        ("operator", Role::Operator),
        ("admin2", Role::Admin),
    ] {
        sessions.push((role, name, user_session(app, &c.admin, name, role).await));
    }
    create_user(app, &c.admin, BYSTANDER, Role::Viewer).await;
    create_model(app, &c.admin, FIXTURE_MODEL).await;
    let file = safetensors([1.0, 2.0]);
    upload_file(app, &c.admin, FIXTURE_MODEL, FIXTURE_FILE, &file).await;
    set_stage(app, &c.admin, FIXTURE_MODEL, 1, "production")
        .await
        .expect(200);
    post(
        app,
        "/api/v1/services",
        &c.admin,
        service_manifest(FIXTURE_MODEL),
    )
    .await
    .expect(202);
    let (_, key_id) = create_key(app, &c.admin, json!({"name": "revoke target"})).await;
    let fx = Fixture { key_id, file };

    // Credentials that must never pass.
    let secret = c.state.store.setting("jwt_secret").unwrap().unwrap();
    let real = Sessions::new(secret.as_bytes());
    let now = chrono::Utc::now();
    let (expired, _) = real
        .issue("admin", "default", now - chrono::Duration::hours(1))
        .unwrap();
    let (forged, _) = Sessions::new(b"not the installation's secret, same length..")
        .issue("admin", "default", now)
        .unwrap();
    let unknown_key = format!("agk_{}", "x".repeat(52));
    let bad_credentials: [(&str, Option<String>, u16, &str); 5] = [
        ("no Authorization", None, 401, "unauthenticated"),
        (
            "Basic scheme",
            Some("Basic x".to_owned()),
            401,
            "invalid_credentials",
        ),
        (
            "unknown API key",
            Some(format!("Bearer {unknown_key}")),
            401,
            "invalid_credentials",
        ),
        (
            "JWT signed with another secret",
            Some(format!("Bearer {forged}")),
            401,
            "invalid_credentials",
        ),
        (
            "expired session",
            Some(format!("Bearer {expired}")),
            401,
            "token_expired",
        ),
    ];

    let routes = table();
    assert!(
        routes.len() >= 20,
        "the table lost routes: {}",
        routes.len()
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    for route in &routes {
        let spec = &route.spec;
        for (what, authorization, status, code) in &bad_credentials {
            let resp = send(app, build(spec, &fx, authorization.as_deref())).await;
            checked += 1;
            if spec_of(spec) == Public {
                if resp.status.as_u16() == 401 || resp.status.as_u16() == 403 {
                    failures.push(format!(
                        "{} is public but refused {what}: {}",
                        label(spec),
                        resp.describe()
                    ));
                }
                continue;
            }
            if resp.status.as_u16() != *status
                || resp.code().as_deref() != Some(*code)
                || resp.content_type() != "application/problem+json"
            {
                failures.push(format!(
                    "{} with {what}: want {status} {code} problem+json, got {}",
                    label(spec),
                    resp.describe()
                ));
            }
        }
        for (role, name, token) in &sessions {
            let resp = send(app, build(spec, &fx, Some(&format!("Bearer {token}")))).await;
            checked += 1;
            let status = resp.status.as_u16();
            if allowed(spec_of(spec), *role) {
                if status == 401 || status == 403 {
                    failures.push(format!(
                        "{} must let {name} ({}) through, got {}",
                        label(spec),
                        role.as_str(),
                        resp.describe()
                    ));
                }
            } else if status != 403
                || resp.code().as_deref() != Some("forbidden")
                || resp.content_type() != "application/problem+json"
            {
                failures.push(format!(
                    "{} must refuse {name} ({}) with 403 forbidden problem+json, got {}",
                    label(spec),
                    role.as_str(),
                    resp.describe()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // A refused mutation is audited with who tried it.
    let refused = audit(app, &c.admin, "outcome=forbidden&action=models.create").await;
    let viewer = refused
        .iter()
        .find(|r| r["actor"] == "user:viewer")
        .unwrap_or_else(|| panic!("no forbidden models.create by user:viewer in {refused:?}"));
    assert_eq!(viewer["tenant"], "default");
    assert_eq!(viewer["outcome"], "forbidden");
    // ...and so is an anonymous attempt, under the actor "anonymous".
    let anonymous = audit(
        app,
        &c.admin,
        "outcome=unauthenticated&action=models.delete",
    )
    .await;
    assert!(
        anonymous.iter().any(|r| r["actor"] == "anonymous"),
        "{anonymous:?}"
    );
    // A refused read is not a change and is not audited.
    assert!(
        audit(app, &c.admin, "outcome=forbidden&action=audit.list")
            .await
            .is_empty()
    );
    assert_audit_valid(app, &c.admin).await;
}
