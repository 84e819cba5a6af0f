//! The hub against a real store: load, long-poll wakeups, ordering and resume.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use autoglm_core::audit::AuditEvent;
use autoglm_core::config::{ConfigFormat, WatchedKey};
use autoglm_store::config::{Expect, KeyPath};
use autoglm_store::{Mutation, Store, StoredResponse, tenancy};

use super::*;

fn mutation() -> Mutation {
    Mutation {
        audit: AuditEvent {
            time: autoglm_store::timestamp(chrono_now()),
            actor: "user:ann".into(),
            tenant: "acme".into(),
            action: "config.publish".into(),
            target: String::new(),
            request_id: "r".into(),
            outcome: String::new(),
        },
        idempotency: None,
    }
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn respond<T>(_: &T) -> StoredResponse {
    StoredResponse {
        status: 200,
        body: Vec::new(),
    }
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    store
        .write(
            mutation(),
            |tx, _| tenancy::create_tenant(tx, "acme"),
            respond,
        )
        .unwrap();
    (dir, store)
}

fn publish(store: &Store, hub: &Hub, key: &str, content: &str) -> ConfigChange {
    let at = KeyPath {
        tenant: "acme",
        environment: "dev",
        group: "DEFAULT_GROUP",
        key,
    };
    store
        .write_then(
            mutation(),
            |tx, _| {
                config::publish(
                    tx,
                    at,
                    ConfigFormat::Text,
                    content,
                    &Expect::default(),
                    "ann",
                    "",
                )
            },
            respond,
            |p| hub.committed("acme", &[p.version.change()]),
        )
        .unwrap()
        .version
        .change()
}

fn watched(key: &str, md5: &str) -> WatchedKey {
    WatchedKey {
        environment: "dev".into(),
        group: "DEFAULT_GROUP".into(),
        key: key.into(),
        md5: md5.into(),
    }
}

#[tokio::test]
async fn a_long_poll_wakes_on_the_commit_and_only_for_its_keys() {
    let (_dir, store) = store();
    let hub = Hub::load(&store).unwrap();
    let a = publish(&store, &hub, "a", "1");
    // Holding a's md5: nothing to say yet.
    assert!(hub.differing("acme", &[watched("a", &a.md5)]).is_empty());
    let waiter = {
        let hub = hub.clone();
        let md5 = a.md5.clone();
        tokio::spawn(async move {
            hub.wait(
                "acme",
                &[watched("a", &md5), watched("never", "")],
                Duration::from_secs(30),
            )
            .await
        })
    };
    tokio::task::yield_now().await;
    publish(&store, &hub, "b", "other key");
    let b_only = tokio::time::timeout(Duration::from_millis(100), async {
        while !waiter.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(b_only.is_err(), "a change of another key woke the watcher");
    let a2 = publish(&store, &hub, "a", "2");
    let changed = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed, vec![a2]);
}

#[tokio::test]
async fn a_long_poll_times_out_empty_and_other_tenants_see_nothing() {
    let (_dir, store) = store();
    let hub = Hub::load(&store).unwrap();
    publish(&store, &hub, "a", "1");
    let start = std::time::Instant::now();
    let none = hub
        .wait("other", &[watched("a", "")], Duration::from_millis(200))
        .await;
    assert!(none.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn a_restarted_hub_knows_every_current_md5() {
    let (_dir, store) = store();
    let hub = Hub::load(&store).unwrap();
    let old = publish(&store, &hub, "a", "1");
    let new = publish(&store, &hub, "a", "2");
    drop(hub);
    // A watcher that held version 1 when the console went down.
    let again = Hub::load(&store).unwrap();
    assert_eq!(again.revision(), new.revision);
    assert_eq!(
        again.differing("acme", &[watched("a", &old.md5)]),
        vec![new.clone()]
    );
    assert!(
        again
            .differing("acme", &[watched("a", &new.md5)])
            .is_empty()
    );
    // Its log starts empty, so a stream that saw only revision 1 reads the store.
    assert!(again.after("acme", None, old.revision).is_none());
    assert_eq!(again.after("acme", None, new.revision), Some(Vec::new()));
}

#[tokio::test]
async fn the_log_hands_streams_every_change_in_order() {
    let (_dir, store) = store();
    let hub = Hub::load(&store).unwrap();
    let start = hub.revision();
    let changes: Vec<_> = (0..5)
        .map(|i| publish(&store, &hub, &format!("k{}", i % 2), &i.to_string()))
        .collect();
    assert_eq!(hub.after("acme", None, start).unwrap(), changes);
    assert_eq!(
        hub.after("acme", Some("dev"), changes[2].revision).unwrap(),
        changes[3..]
    );
    assert_eq!(hub.after("acme", Some("prod"), start).unwrap(), Vec::new());
    assert_eq!(hub.after("other", None, start).unwrap(), Vec::new());
}

/// Whether the listener has a wakeup waiting, without waiting for one.
async fn woken(listener: &Listener) -> bool {
    // `timeout` polls the inner future before its deadline, so a stored
    // wakeup resolves it and a missing one never does.
    tokio::time::timeout(Duration::ZERO, listener.changed())
        .await
        .is_ok()
}

#[tokio::test]
async fn a_listener_is_woken_only_by_commits_of_its_topics() {
    let (_dir, store) = store();
    let hub = Hub::load(&store).unwrap();
    let key_a = hub.listener();
    key_a.listen(Topic::key("acme", "dev", "DEFAULT_GROUP", "a"));
    let dev = hub.listener();
    dev.listen(Topic::environment("acme", "dev"));
    let prod = hub.listener();
    prod.listen(Topic::environment("acme", "prod"));
    let other_tenant = hub.listener();
    other_tenant.listen(Topic::key("other", "dev", "DEFAULT_GROUP", "a"));

    publish(&store, &hub, "b", "1");
    assert!(!woken(&key_a).await, "key a's listener woke for key b");
    assert!(woken(&dev).await, "the environment's listener slept");
    assert!(!woken(&prod).await && !woken(&other_tenant).await);

    publish(&store, &hub, "a", "1");
    assert!(woken(&key_a).await && woken(&dev).await);
    // One wakeup per commit at most: nothing is left over.
    assert!(!woken(&key_a).await);

    key_a.forget(&Topic::key("acme", "dev", "DEFAULT_GROUP", "a"));
    publish(&store, &hub, "a", "2");
    assert!(!woken(&key_a).await, "a forgotten topic still woke");
}

#[tokio::test]
async fn a_wakeup_before_the_wait_is_kept_for_it() {
    let (_dir, store) = store();
    let hub = Hub::load(&store).unwrap();
    let listener = hub.listener();
    listener.listen(Topic::key("acme", "dev", "DEFAULT_GROUP", "a"));
    // The commit lands while nobody awaits the listener.
    publish(&store, &hub, "a", "1");
    tokio::time::timeout(Duration::from_secs(5), listener.changed())
        .await
        .expect("the wakeup of a commit before the wait was lost");
}
