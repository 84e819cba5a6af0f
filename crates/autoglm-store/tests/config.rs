//! The config center's tables against a real SQLite file: versions and
//! history, optimistic concurrency, tombstones, snapshots, all-or-nothing
//! changes and change requests.
#![allow(clippy::unwrap_used)]

use autoglm_core::audit::AuditEvent;
use autoglm_core::config::{ConfigFormat, DEFAULT_ENVIRONMENTS, md5_hex, plan_promotion};
use autoglm_core::error::ErrorCode;
use autoglm_store::config::{self, Expect, KeyPath};
use autoglm_store::{Mutation, Result, Store, StoreError, StoredResponse, Transaction, tenancy};

fn mutation() -> Mutation {
    Mutation {
        audit: AuditEvent {
            time: autoglm_store::timestamp(chrono::Utc::now()),
            actor: "user:ann".into(),
            tenant: "acme".into(),
            action: "config.test".into(),
            target: String::new(),
            request_id: "r".into(),
            outcome: String::new(),
        },
        idempotency: None,
    }
}

fn write<T>(store: &Store, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
    store.write(
        mutation(),
        |tx, _| f(tx),
        |_| StoredResponse {
            status: 200,
            body: Vec::new(),
        },
    )
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    write(&store, |tx| tenancy::create_tenant(tx, "acme")).unwrap();
    (dir, store)
}

const AT: KeyPath<'static> = KeyPath {
    tenant: "acme",
    environment: "dev",
    group: "DEFAULT_GROUP",
    key: "model-manager.json",
};

fn publish(
    store: &Store,
    at: KeyPath<'_>,
    content: &str,
    expect: Expect,
) -> Result<config::Published> {
    write(store, |tx| {
        config::publish(tx, at, ConfigFormat::Json, content, &expect, "ann", "why")
    })
}

#[test]
fn every_tenant_starts_with_the_four_environments() {
    let (_dir, store) = store();
    let envs = store.read(|c| config::environments(c, "acme")).unwrap();
    let mut want: Vec<_> = DEFAULT_ENVIRONMENTS.iter().map(|e| (e.0, e.2)).collect();
    want.sort();
    let got: Vec<_> = envs
        .iter()
        .map(|e| (e.name.as_str(), e.protected))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        store
            .read(|c| config::default_environment(c, "acme"))
            .unwrap(),
        "dev"
    );
}

#[test]
fn the_migration_gives_tenants_made_before_it_the_same_environments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let mut conn = r2d2_sqlite::rusqlite::Connection::open(&path).unwrap();
        for (i, sql) in [
            include_str!("../migrations/0001_init.sql"),
            include_str!("../migrations/0002_services.sql"),
            include_str!("../migrations/0003_gateway.sql"),
            include_str!("../migrations/0004_tasks.sql"),
            include_str!("../migrations/0005_rollouts.sql"),
            include_str!("../migrations/0006_evaluations.sql"),
            include_str!("../migrations/0007_alerts.sql"),
        ]
        .iter()
        .enumerate()
        {
            let tx = conn.transaction().unwrap();
            tx.execute_batch(sql).unwrap();
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .unwrap();
            tx.commit().unwrap();
        }
        conn.execute(
            "INSERT INTO tenants (name, created_at) VALUES ('old', '2026-01-01T00:00:00.000000Z')",
            [],
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let envs = store.read(|c| config::environments(c, "old")).unwrap();
    for (name, description, protected) in DEFAULT_ENVIRONMENTS {
        let env = envs.iter().find(|e| e.name == name).unwrap();
        assert_eq!(
            (env.description.as_str(), env.protected),
            (description, protected)
        );
        assert_eq!(env.default, name == "dev");
    }
    assert_eq!(envs.len(), 4);
}

#[test]
fn publishes_make_versions_and_an_identical_one_changes_nothing() {
    let (_dir, store) = store();
    let v1 = publish(&store, AT, "{\"a\": 1}", Expect::default()).unwrap();
    assert!(v1.changed);
    assert_eq!(
        (v1.version.version, v1.version.md5.as_str()),
        (1, md5_hex("{\"a\": 1}").as_str())
    );
    let v2 = publish(&store, AT, "{\"a\": 2}", Expect::default()).unwrap();
    assert_eq!(v2.version.version, 2);
    assert!(v2.version.revision > v1.version.revision);
    let same = publish(&store, AT, "{\"a\": 2}", Expect::default()).unwrap();
    assert!(!same.changed);
    assert_eq!(same.version.version, 2);
    let history = store.read(|c| config::history(c, AT)).unwrap();
    let versions: Vec<_> = history
        .iter()
        .map(|v| (v.version, v.content.as_str()))
        .collect();
    assert_eq!(versions, [(2, "{\"a\": 2}"), (1, "{\"a\": 1}")]);
    assert_eq!(
        store.read(|c| config::version(c, AT, 1)).unwrap().content,
        "{\"a\": 1}"
    );
    assert!(
        store
            .read(|c| config::version(c, AT, 3))
            .unwrap_err()
            .is_not_found()
    );
}

#[test]
fn a_stale_base_is_refused_and_stores_nothing() {
    let (_dir, store) = store();
    let v1 = publish(&store, AT, "{}", Expect::default())
        .unwrap()
        .version;
    publish(
        &store,
        AT,
        "[]",
        Expect {
            md5: Some(v1.md5.clone()),
            version: None,
        },
    )
    .unwrap();
    let writes = store.write_count();
    for expect in [
        Expect {
            md5: Some(v1.md5.clone()),
            version: None,
        },
        Expect {
            md5: None,
            version: Some(1),
        },
        Expect {
            md5: Some(String::new()),
            version: None,
        },
        Expect {
            md5: None,
            version: Some(0),
        },
    ] {
        let e = publish(&store, AT, "{\"b\": 1}", expect).unwrap_err();
        assert!(
            matches!(&e, StoreError::Rejected(ErrorCode::GenerationMismatch, m) if m.contains("is at version 2")),
            "{e}"
        );
    }
    assert_eq!(store.write_count(), writes);
    assert_eq!(store.read(|c| config::live(c, AT)).unwrap().content, "[]");
    // A base of "nothing" holds for a key that does not exist yet.
    let other = KeyPath {
        key: "other.json",
        ..AT
    };
    publish(
        &store,
        other,
        "1",
        Expect {
            md5: Some(String::new()),
            version: Some(0),
        },
    )
    .unwrap();
}

#[test]
fn a_delete_is_a_version_and_keeps_the_history() {
    let (_dir, store) = store();
    publish(&store, AT, "{}", Expect::default()).unwrap();
    let tomb = write(&store, |tx| {
        config::delete(tx, AT, &Expect::default(), "ann", "gone")
    })
    .unwrap();
    assert_eq!(
        (tomb.version, tomb.deleted, tomb.md5.as_str()),
        (2, true, "")
    );
    assert!(
        store
            .read(|c| config::live(c, AT))
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        store
            .read(|c| config::live_keys(c, "acme", "dev", None))
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.read(|c| config::history(c, AT)).unwrap().len(), 2);
    assert!(
        write(&store, |tx| config::delete(
            tx,
            AT,
            &Expect::default(),
            "ann",
            ""
        ))
        .unwrap_err()
        .is_not_found()
    );
    let back = publish(
        &store,
        AT,
        "{}",
        Expect {
            md5: Some(String::new()),
            version: None,
        },
    )
    .unwrap();
    assert_eq!(back.version.version, 3);
}

#[test]
fn keys_that_would_share_a_configmap_data_key_are_refused() {
    let (_dir, store) = store();
    let at = |group, key| KeyPath { group, key, ..AT };
    publish(&store, at("g", "a:b"), "{}", Expect::default()).unwrap();
    // `g.a_b` is `g.a:b`'s data key too.
    let refused = publish(&store, at("g", "a_b"), "{}", Expect::default()).unwrap_err();
    let StoreError::Invalid(errors) = refused else {
        panic!("not a field refusal: {refused:?}")
    };
    assert_eq!(errors[0].path, "key");
    assert_eq!(
        errors[0].message,
        "dev/g/a_b and the existing key dev/g/a:b would both be \"g.a_b\" in ConfigMap autoglm-config-dev; rename one"
    );
    assert!(
        store
            .read(|c| config::current(c, at("g", "a_b")))
            .unwrap()
            .is_none()
    );
    // Across groups: group `g.a` with key `b` is `g.a.b`, as group `g` with key `a.b`.
    publish(&store, at("g", "a.b"), "{}", Expect::default()).unwrap();
    assert!(publish(&store, at("g.a", "b"), "{}", Expect::default()).is_err());
    // A new version of the same key is no collision, in another environment neither,
    // and a deleted key frees its data key.
    publish(&store, at("g", "a:b"), "[]", Expect::default()).unwrap();
    publish(
        &store,
        KeyPath {
            environment: "test",
            ..at("g", "a_b")
        },
        "{}",
        Expect::default(),
    )
    .unwrap();
    write(&store, |tx| {
        config::delete(tx, at("g", "a:b"), &Expect::default(), "ann", "")
    })
    .unwrap();
    publish(&store, at("g", "a_b"), "{}", Expect::default()).unwrap();
}

#[test]
fn an_unknown_environment_is_refused_naming_the_known_ones() {
    let (_dir, store) = store();
    let e = publish(
        &store,
        KeyPath {
            environment: "qa",
            ..AT
        },
        "{}",
        Expect::default(),
    )
    .unwrap_err();
    assert!(e.is_not_found());
    assert!(e.to_string().contains("dev, prod, staging, test"), "{e}");
}

#[test]
fn one_stale_key_refuses_the_whole_change() {
    let (_dir, store) = store();
    for (key, content) in [("a.json", "1"), ("b.json", "2")] {
        publish(
            &store,
            KeyPath {
                key,
                environment: "staging",
                ..AT
            },
            content,
            Expect::default(),
        )
        .unwrap();
    }
    publish(
        &store,
        KeyPath {
            key: "b.json",
            environment: "prod",
            ..AT
        },
        "0",
        Expect::default(),
    )
    .unwrap();
    let source = store
        .read(|c| config::live_keys(c, "acme", "staging", None))
        .unwrap();
    let target = store
        .read(|c| config::live_keys(c, "acme", "prod", None))
        .unwrap();
    let (changes, _) = plan_promotion("staging", "prod", &source, &target, &[], false).unwrap();
    assert_eq!(changes.len(), 2);
    // prod's b.json moves after the plan was made.
    publish(
        &store,
        KeyPath {
            key: "b.json",
            environment: "prod",
            ..AT
        },
        "9",
        Expect::default(),
    )
    .unwrap();
    let e = write(&store, |tx| {
        config::apply_changes(tx, "acme", "prod", &changes, "ann", "promote")
    })
    .unwrap_err();
    assert!(
        matches!(e, StoreError::Rejected(ErrorCode::GenerationMismatch, _)),
        "{e}"
    );
    let prod = store
        .read(|c| config::live_keys(c, "acme", "prod", None))
        .unwrap();
    let keys: Vec<_> = prod
        .iter()
        .map(|v| (v.key.as_str(), v.content.as_str()))
        .collect();
    assert_eq!(keys, [("b.json", "9")], "a.json must not have landed");
}

#[test]
fn a_snapshot_holds_exact_versions() {
    let (_dir, store) = store();
    publish(&store, AT, "{\"v\": 1}", Expect::default()).unwrap();
    let snap = write(&store, |tx| {
        config::create_snapshot(tx, "acme", "dev", "before", "", "ann")
    })
    .unwrap();
    assert_eq!(snap.items.len(), 1);
    assert_eq!(snap.items[0].version, 1);
    publish(&store, AT, "{\"v\": 2}", Expect::default()).unwrap();
    let held = store
        .read(|c| config::snapshot_versions(c, "acme", "dev", "before"))
        .unwrap();
    assert_eq!(held[0].content, "{\"v\": 1}");
    let again = write(&store, |tx| {
        config::create_snapshot(tx, "acme", "dev", "before", "", "ann")
    })
    .unwrap_err();
    assert!(matches!(
        again,
        StoreError::Rejected(ErrorCode::AlreadyExists, _)
    ));
}

#[test]
fn a_change_request_is_decided_once_and_not_by_its_author() {
    let (_dir, store) = store();
    let request = write(&store, |tx| {
        config::create_request(tx, "acme", "prod", Some("staging"), &[], "m", "dev-dan")
    })
    .unwrap();
    assert_eq!(request.state, "pending");
    let e = write(&store, |tx| {
        config::decide_request(tx, "acme", request.id, "approved", "dev-dan", "")
    })
    .unwrap_err();
    assert!(
        matches!(e, StoreError::Rejected(ErrorCode::Forbidden, _)),
        "{e}"
    );
    let done = write(&store, |tx| {
        config::decide_request(tx, "acme", request.id, "rejected", "ops-olga", "no")
    })
    .unwrap();
    assert_eq!(
        (done.state.as_str(), done.decided_by.as_deref()),
        ("rejected", Some("ops-olga"))
    );
    let e = write(&store, |tx| {
        config::decide_request(tx, "acme", request.id, "approved", "ops-olga", "")
    })
    .unwrap_err();
    assert!(
        matches!(e, StoreError::Rejected(ErrorCode::InvalidTransition, _)),
        "{e}"
    );
    assert!(
        store
            .read(|c| config::request(c, "other", request.id))
            .unwrap_err()
            .is_not_found()
    );
}
