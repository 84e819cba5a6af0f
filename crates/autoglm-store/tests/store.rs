//! The store against a real SQLite file: migrations, atomic writes with their
//! audit records, idempotency and nonces.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use autoglm_core::audit::AuditEvent;
use autoglm_core::error::ErrorCode;
use autoglm_store::{
    IdempotencyKey, ModelFilter, Mutation, Store, StoreError, StoredResponse, registry, tenancy,
};

fn event(action: &str) -> AuditEvent {
    AuditEvent {
        time: autoglm_store::timestamp(chrono::Utc::now()),
        actor: "user:test".into(),
        tenant: "default".into(),
        action: action.into(),
        target: String::new(),
        request_id: "r".into(),
        outcome: String::new(),
    }
}

fn mutation(action: &str) -> Mutation {
    Mutation {
        audit: event(action),
        idempotency: None,
    }
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    store
        .write(
            mutation("tenants.create"),
            |tx, _| tenancy::create_tenant(tx, "default"),
            |_| empty(),
        )
        .unwrap();
    (dir, store)
}

fn empty() -> StoredResponse {
    StoredResponse {
        status: 200,
        body: Vec::new(),
    }
}

#[test]
fn migrations_run_once_and_reopen_cleanly() {
    let (dir, store) = store();
    assert_eq!(store.migrations().found, 0);
    drop(store);
    let again = Store::open(&dir.path().join("db.sqlite")).unwrap();
    assert_eq!(again.migrations().found, again.migrations().current);
    assert!(again.tenant_exists("default").unwrap());
}

#[test]
fn a_refused_write_changes_nothing_and_audits_nothing() {
    let (_dir, store) = store();
    let create = |name: &str| {
        store.write(
            mutation("models.create"),
            |tx, _| registry::create_model(tx, "default", name, None, &BTreeMap::new()),
            |_| empty(),
        )
    };
    create("m").unwrap();
    let err = create("m").unwrap_err();
    assert!(
        matches!(err, StoreError::Rejected(ErrorCode::AlreadyExists, _)),
        "{err:?}"
    );
    let records = store
        .audit_list(&autoglm_store::AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(records.len(), 2, "tenant + one model, not the refused one");
    let filter = ModelFilter {
        tenant: "default".into(),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_models(&filter).unwrap().len(), 1);
    assert!(store.audit_verify().unwrap().valid);
}

#[test]
fn idempotency_records_commit_with_the_change() {
    let (_dir, store) = store();
    let key = IdempotencyKey {
        principal: "user:a".into(),
        key: "k1".into(),
        fingerprint: "f1".into(),
    };
    let m = Mutation {
        idempotency: Some(key.clone()),
        ..mutation("models.create")
    };
    store
        .write(
            m,
            |tx, _| registry::create_model(tx, "default", "m", None, &BTreeMap::new()),
            |_| StoredResponse {
                status: 201,
                body: b"{}".to_vec(),
            },
        )
        .unwrap();
    assert_eq!(
        store.idempotent_response(&key).unwrap().map(|r| r.status),
        Some(201)
    );
    let other = IdempotencyKey {
        fingerprint: "f2".into(),
        ..key
    };
    assert!(matches!(
        store.idempotent_response(&other),
        Err(StoreError::Rejected(ErrorCode::IdempotencyKeyReused, _))
    ));
}

#[test]
fn a_nonce_is_accepted_once() {
    let (_dir, store) = store();
    let expires = chrono::Utc::now().timestamp() + 600;
    store.consume_nonce("n-0123456789abcdef", expires).unwrap();
    assert!(matches!(
        store.consume_nonce("n-0123456789abcdef", expires),
        Err(StoreError::Rejected(ErrorCode::NonceReused, _))
    ));
}

#[test]
fn a_database_of_the_first_schema_gains_services_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let conn = r2d2_sqlite::rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../migrations/0001_init.sql"))
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO tenants (name, created_at) VALUES ('default', '2026-01-01T00:00:00.000000Z')",
            [],
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.migrations().found, 1);
    assert!(store.migrations().current >= 2);
    let filter = autoglm_store::ServiceFilter {
        tenant: "default".into(),
        limit: 10,
        ..Default::default()
    };
    assert!(store.list_services(&filter).unwrap().is_empty());
    assert!(store.tenant_exists("default").unwrap());
}

#[test]
fn usage_is_summed_per_step_from_the_step_s_first_minute() {
    use autoglm_core::security::UsageRecord;
    use autoglm_store::{UsageDelta, UsageFilter, usage};
    let (_dir, store) = store();
    let delta = |minute: &str, key: &str, requests: u64| UsageDelta {
        tenant: "default".into(),
        record: UsageRecord {
            minute: minute.parse().unwrap(),
            key: key.into(),
            service: "chat".into(),
            version: "1".into(),
            requests,
            prompt_tokens: 10 * requests,
            completion_tokens: requests,
        },
    };
    let batch = [
        delta("2026-11-29T10:01:00Z", "k1", 2),
        delta("2026-11-29T10:04:00Z", "k1", 3),
        delta("2026-11-29T10:07:00Z", "k1", 1),
        delta("2026-11-29T10:02:00Z", "k2", 4),
    ];
    store
        .bookkeeping(|tx| usage::add_usage(tx, &batch))
        .unwrap();
    let read = |step: Option<u32>| {
        store
            .list_usage(&UsageFilter {
                tenant: "default".into(),
                step_seconds: step,
                ..UsageFilter::default()
            })
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.minute.format("%H:%M").to_string(),
                    r.key,
                    r.requests,
                    r.prompt_tokens,
                )
            })
            .collect::<Vec<_>>()
    };
    let per_minute = read(None);
    assert_eq!(per_minute.len(), 4, "as stored: {per_minute:?}");
    assert_eq!(
        read(Some(300)),
        [
            ("10:00".to_owned(), "k1".to_owned(), 5, 50),
            ("10:00".to_owned(), "k2".to_owned(), 4, 40),
            ("10:05".to_owned(), "k1".to_owned(), 1, 10),
        ]
    );
    assert_eq!(read(Some(3600)).iter().map(|r| r.2).sum::<u64>(), 10);
}

/// Group commit's shared transaction: writes that arrive together commit
/// together, yet each is all or nothing on its own. Each part holds the
/// writer for 20 ms (as a slow write would), so the others queue behind it.
#[test]
fn writes_arriving_together_share_a_transaction_and_fail_alone() {
    let (_dir, store) = store();
    let before = store.sync_counts();
    let barrier = std::sync::Barrier::new(8);
    let outcomes: Vec<(String, &str)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (store, barrier) = (&store, &barrier);
                scope.spawn(move || {
                    let name = format!("m{i}");
                    barrier.wait();
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        store.write(
                            mutation("models.create"),
                            |tx, _| {
                                registry::create_model(
                                    tx,
                                    "default",
                                    &name,
                                    None,
                                    &BTreeMap::new(),
                                )?;
                                std::thread::sleep(std::time::Duration::from_millis(20));
                                match i % 4 {
                                    // A part that fails after its change.
                                    1 => Err(StoreError::rejected(ErrorCode::InvalidBody, "no")),
                                    // One that panics after its change.
                                    2 => panic!("a write that panics"),
                                    _ => Ok(()),
                                }
                            },
                            |_| empty(),
                        )
                    }));
                    let outcome = match outcome {
                        Ok(Ok(())) => "created",
                        Ok(Err(_)) => "refused",
                        Err(_) => "panicked",
                    };
                    (name, outcome)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (name, outcome) in &outcomes {
        let index: usize = name[1..].parse().unwrap();
        let expected = ["created", "refused", "panicked", "created"][index % 4];
        assert_eq!(*outcome, expected, "{name}");
        let present = store.model("default", name).is_ok();
        assert_eq!(present, expected == "created", "{name} after {outcome}");
    }
    let audit = store
        .audit_list(&autoglm_store::AuditFilter {
            action: Some("models.create".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        audit.len(),
        4,
        "one record per created model, none for the others"
    );
    assert!(store.audit_verify().unwrap().valid);
    let after = store.sync_counts();
    let commits = after.commits - before.commits;
    assert!(
        commits < 8,
        "8 writes arriving together took {commits} transactions"
    );
    assert!(after.syncs - before.syncs <= commits);
    // The writer is free and whole after a panic inside it.
    store
        .write(
            mutation("models.create"),
            |tx, _| registry::create_model(tx, "default", "after", None, &BTreeMap::new()),
            |_| empty(),
        )
        .unwrap();
}

/// Credential caches stay valid through writes that change nobody's access,
/// and each change to a key, a user's role or a tenant's limit makes them
/// stale before the write that made it returns.
#[test]
fn only_changes_to_access_raise_the_access_version() {
    use autoglm_core::rbac::Role;
    use autoglm_core::security::RateLimit;

    let (_dir, store) = store();
    let write =
        |action: &str, f: &dyn Fn(&autoglm_store::Transaction<'_>) -> Result<(), StoreError>| {
            let before = store.access_version();
            store
                .write(mutation(action), |tx, _| f(tx), |_| empty())
                .unwrap();
            store.access_version() - before
        };
    let unchanged =
        |action: &str, f: &dyn Fn(&autoglm_store::Transaction<'_>) -> Result<(), StoreError>| {
            let raised = write(action, f);
            assert_eq!(raised, 0, "{action} changed nobody's access");
        };
    let changed =
        |action: &str, f: &dyn Fn(&autoglm_store::Transaction<'_>) -> Result<(), StoreError>| {
            let raised = write(action, f);
            assert_eq!(raised, 1, "{action} changed access in one commit");
        };

    unchanged("models.create", &|tx| {
        registry::create_model(tx, "default", "m", None, &BTreeMap::new()).map(drop)
    });
    changed("users.create", &|tx| {
        tenancy::create_user(tx, "alice", "hash", "default", Role::Viewer).map(drop)
    });
    changed("users.update", &|tx| {
        tenancy::set_role(tx, "alice", "default", Role::Admin).map(drop)
    });
    changed("keys.create", &|tx| {
        tenancy::insert_key(
            tx,
            &tenancy::NewApiKey {
                id: "k1".into(),
                secret_hash: "h1".into(),
                name: None,
                username: "alice".into(),
                tenant: "default".into(),
                scopes: None,
                expires_at: None,
                rate_limit: None,
            },
        )
        .map(drop)
    });
    changed("keys.revoke", &|tx| {
        tenancy::revoke_key(tx, "default", None, "k1").map(drop)
    });
    let limit = RateLimit {
        requests_per_second: Some(5),
        tokens_per_minute: None,
    };
    changed("tenants.limit", &|tx| {
        tenancy::set_tenant_rate_limit(tx, "default", Some(&limit))
    });
    unchanged("models.delete", &|tx| {
        registry::delete_model(tx, "default", "m").map(drop)
    });
}

#[test]
fn a_policy_keeps_every_version_and_an_unchanged_one_adds_none() {
    use autoglm_store::policies;
    let (_dir, store) = store();
    let spec = serde_json::json!({"rego": "package p", "mode": "enforce"});
    let put = |spec: &serde_json::Value| {
        store
            .write(
                mutation("policies.put"),
                |tx, _| policies::put_policy(tx, "default", "p", spec, "user:test"),
                |_| empty(),
            )
            .unwrap()
            .map(|p| p.version)
    };
    assert_eq!(put(&spec), Some(1));
    assert_eq!(put(&spec), None, "unchanged");
    assert_eq!(
        put(&serde_json::json!({"rego": "package p", "mode": "warn"})),
        Some(2)
    );
    store
        .write(
            mutation("policies.delete"),
            |tx, _| policies::delete_policy(tx, "default", "p", "user:test"),
            |_| empty(),
        )
        .unwrap();
    assert!(store.policy("default", "p").unwrap_err().is_not_found());
    let versions: Vec<(i64, bool)> = store
        .policy_history("default", "p")
        .unwrap()
        .iter()
        .map(|p| (p.version, p.spec.is_some()))
        .collect();
    assert_eq!(versions, [(3, false), (2, true), (1, true)]);
    assert_eq!(
        put(&spec),
        Some(4),
        "a deleted policy comes back as a new version"
    );
    assert_eq!(store.list_policies("default").unwrap().len(), 1);
}

#[test]
fn tokens_spent_count_from_the_utc_day_and_month() {
    use autoglm_core::security::UsageRecord;
    use autoglm_store::{UsageDelta, usage};
    let (_dir, store) = store();
    let delta = |minute: &str, tokens: u64| UsageDelta {
        tenant: "default".into(),
        record: UsageRecord {
            minute: minute.parse().unwrap(),
            key: "k".into(),
            service: "chat".into(),
            version: "1".into(),
            requests: 1,
            prompt_tokens: tokens,
            completion_tokens: 1,
        },
    };
    let batch = [
        delta("2026-11-30T23:59:00Z", 1000),
        delta("2026-12-01T00:00:00Z", 100),
        delta("2026-12-06T23:59:00Z", 10),
        delta("2026-12-07T00:00:00Z", 1),
        delta("2026-12-07T12:30:00Z", 2),
    ];
    store
        .bookkeeping(|tx| usage::add_usage(tx, &batch))
        .unwrap();
    let now = "2026-12-07T13:00:00Z".parse().unwrap();
    // Today: 1 + 1 and 2 + 1; this month: those and 101 and 11.
    assert_eq!(store.tokens_spent("default", now).unwrap(), (5, 117));
    assert_eq!(store.tokens_spent("other", now).unwrap(), (0, 0));
}

#[test]
fn a_quota_is_kept_per_tenant_and_changing_it_raises_the_versions() {
    use autoglm_core::quota::Quota;
    let (_dir, store) = store();
    assert_eq!(store.tenant_quota("default").unwrap(), Quota::default());
    let (access, tenancy) = (store.access_version(), store.tenancy_version());
    let quota = Quota {
        gpus: Some(2),
        tokens_per_day: Some(10),
        ..Quota::default()
    };
    store
        .write(
            mutation("tenants.set_quota"),
            |tx, _| autoglm_store::tenancy::set_tenant_quota(tx, "default", Some(&quota)),
            |_| empty(),
        )
        .unwrap();
    assert_eq!(store.tenant_quota("default").unwrap(), quota);
    assert_eq!(store.all_quotas().unwrap()["default"], quota);
    // The gateway's credentials carry it, and the cluster applies it again.
    assert!(store.access_version() > access);
    assert!(store.tenancy_version() > tenancy);
    let missing = store
        .write(
            mutation("tenants.set_quota"),
            |tx, _| autoglm_store::tenancy::set_tenant_quota(tx, "nobody", Some(&quota)),
            |_| empty(),
        )
        .unwrap_err();
    assert!(missing.to_string().contains("nobody"), "{missing}");
    assert!(store.tenant_quota("nobody").is_err());
}
