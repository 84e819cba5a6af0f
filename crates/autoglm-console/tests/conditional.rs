//! Conditional and cached reads: JSON answers of GETs carry an entity tag and
//! a matching `If-None-Match` gets 304; the registry's reads are answered from
//! memory until the next audited write, never across tenants, and a read after
//! an acknowledged write (or a revocation) always sees it.
#![allow(clippy::unwrap_used)]

mod common;

use autoglm_core::rbac::Role;
use axum::body::Body;
use axum::http::{Method, header};
use common::*;
use serde_json::json;

async fn get_if_none_match(c: &Console, uri: &str, token: &str, etag: &str) -> Resp {
    send(
        &c.app,
        request(Method::GET, uri, Some(token))
            .header(header::IF_NONE_MATCH, etag)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

fn etag(resp: &Resp) -> String {
    resp.headers
        .get(header::ETAG)
        .unwrap_or_else(|| panic!("no ETag on {}", resp.describe()))
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_unchanged_answer_is_not_sent_again_and_a_changed_one_is() {
    let c = console();
    create_model(&c.app, &c.admin, "alpha").await;
    for uri in [
        "/api/v1/models?limit=10",
        "/api/v1/models/alpha",
        "/api/v1/services",
        "/api/v1/keys",
    ] {
        let first = get(&c.app, uri, &c.admin).await.expect(200);
        let tag = etag(&first);
        assert!(tag.starts_with("W/\"") && tag.ends_with('"'), "{tag}");
        let again = get_if_none_match(&c, uri, &c.admin, &tag).await;
        assert_eq!(again.status, 304, "{uri}: {}", again.describe());
        assert!(again.body.is_empty(), "{uri}: a 304 has no body");
        assert_eq!(etag(&again), tag, "{uri}");
        // Weak comparison and lists, as RFC 9110 says for If-None-Match.
        let listed = format!("\"other\", {}", tag.trim_start_matches("W/"));
        assert_eq!(
            get_if_none_match(&c, uri, &c.admin, &listed).await.status,
            304
        );
        let stale = get_if_none_match(&c, uri, &c.admin, "\"stale\"").await;
        assert_eq!(stale.status, 200, "{uri}");
        assert_eq!(stale.body, first.body, "{uri}");
    }

    // An acknowledged write is seen by the next read, tag and all.
    let before = get(&c.app, "/api/v1/models?limit=10", &c.admin)
        .await
        .expect(200);
    create_model(&c.app, &c.admin, "beta").await;
    let after = get_if_none_match(&c, "/api/v1/models?limit=10", &c.admin, &etag(&before)).await;
    assert_eq!(after.status, 200, "{}", after.describe());
    assert_eq!(item_names(&after.json()), ["alpha", "beta"]);
    assert_ne!(etag(&after), etag(&before));
    patch(
        &c.app,
        "/api/v1/models/beta",
        &c.admin,
        json!({"description": "second"}),
    )
    .await
    .expect(200);
    let beta = get_json(&c.app, "/api/v1/models/beta", &c.admin).await;
    assert_eq!(beta["description"], "second");
    delete(&c.app, "/api/v1/models/beta", &c.admin)
        .await
        .expect(204);
    let gone = get(&c.app, "/api/v1/models/beta", &c.admin).await;
    assert_problem(&gone, 404, "not_found");
    assert_eq!(model_names(&c.app, &c.admin).await, ["alpha"]);
}

#[tokio::test]
async fn registry_reads_are_answered_from_memory_until_the_next_audited_write() {
    let c = console();
    create_model(&c.app, &c.admin, "alpha").await;
    let uri = "/api/v1/models/alpha";
    let kept = get(&c.app, uri, &c.admin).await.expect(200);
    // Behind the console's back (no audited write), the row changes: the kept
    // answer is still served, which shows that the read did not reach SQLite.
    let db = autoglm_store::Connection::open(c.dir.path().join("autoglm.db")).unwrap();
    db.execute(
        "UPDATE models SET description = 'changed behind its back' WHERE name = 'alpha'",
        [],
    )
    .unwrap();
    let cached = get(&c.app, uri, &c.admin).await.expect(200);
    assert_eq!(cached.body, kept.body, "answered from memory");
    // Any audited write (here, of another model) ends every kept answer.
    create_model(&c.app, &c.admin, "other").await;
    let fresh = get_json(&c.app, uri, &c.admin).await;
    assert_eq!(fresh["description"], "changed behind its back");
}

#[tokio::test]
async fn a_kept_answer_never_crosses_tenants() {
    let c = console();
    let app = &c.app;
    create_model(app, &c.admin, "only-in-default").await;
    post(app, "/api/v1/tenants", &c.admin, json!({"name": "team-a"}))
        .await
        .expect(201);
    create_user(app, &c.admin, "alice", Role::Viewer).await;
    let in_team_a = json!({"role": "developer", "tenant": "team-a"});
    call(
        app,
        Method::PUT,
        "/api/v1/users/alice/role",
        Some(&c.admin),
        Some(in_team_a),
    )
    .await
    .expect(200);
    let alice = login(app, "alice", Some("team-a")).await;
    let uri = "/api/v1/models?limit=100";
    let default_page = get(app, uri, &c.admin).await.expect(200);
    assert_eq!(item_names(&default_page.json()), ["only-in-default"]);
    // Same target, other tenant: its own (empty) answer, even with the tag.
    let team_a = get_if_none_match(&c, uri, &alice, &etag(&default_page)).await;
    assert_eq!(team_a.status, 200, "{}", team_a.describe());
    assert!(item_names(&team_a.json()).is_empty());
    assert_problem(
        &get(app, "/api/v1/models/only-in-default", &alice).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn a_revoked_key_or_a_lowered_role_takes_effect_on_the_next_request() {
    let c = console();
    let app = &c.app;
    let (secret, id) = create_key(app, &c.admin, json!({"name": "ci"})).await;
    // Resolved once and kept...
    get(app, "/api/v1/models", &secret).await.expect(200);
    get(app, "/api/v1/models", &secret).await.expect(200);
    // ...until the revocation, an audited write.
    delete(app, &format!("/api/v1/keys/{id}"), &c.admin)
        .await
        .expect(200);
    assert_problem(
        &get(app, "/api/v1/models", &secret).await,
        401,
        "invalid_credentials",
    );

    create_user(app, &c.admin, "dev", Role::Developer).await;
    let dev = login(app, "dev", None).await;
    create_model(app, &dev, "by-dev").await;
    set_role(app, &c.admin, "dev", "viewer").await.expect(200);
    let refused = post(
        app,
        "/api/v1/models",
        &dev,
        json!({"name": "after-demotion"}),
    )
    .await;
    assert_problem(&refused, 403, "forbidden");
}

#[tokio::test]
async fn a_large_list_goes_out_gzipped_when_asked_and_plain_otherwise() {
    let c = console();
    for i in 0..40 {
        create_model(&c.app, &c.admin, &format!("model-{i:03}")).await;
    }
    let uri = "/api/v1/models?limit=100";
    let plain = get(&c.app, uri, &c.admin).await.expect(200);
    assert!(plain.headers.get(header::CONTENT_ENCODING).is_none());
    let gzipped = send(
        &c.app,
        request(Method::GET, uri, Some(&c.admin))
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(gzipped.status, 200, "{}", gzipped.describe());
    assert_eq!(gzipped.headers[header::CONTENT_ENCODING], "gzip");
    assert!(
        gzipped.body.len() * 3 < plain.body.len(),
        "{} gzipped bytes for {} plain",
        gzipped.body.len(),
        plain.body.len()
    );
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&gzipped.body[..]),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, plain.body);
    assert_eq!(
        etag(&gzipped),
        etag(&plain),
        "the same content, the same (weak) tag"
    );
}
