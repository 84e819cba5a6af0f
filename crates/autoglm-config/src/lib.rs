//! The config center's watch hub.
//!
//! Every committed change of a key reaches the hub from inside the store's
//! commit ([`Hub::committed`], called while the writer is still held), so
//! changes arrive in revision order and never before they are durable.
//! Watchers never poll the store: a long-poll compares the md5s it holds with
//! the hub's current ones and sleeps until a commit touches one of its keys
//! (a [`Listener`] per watcher, woken only by its own keys); a stream reads
//! the hub's log after the revision it last sent. A console that
//! restarts loads the current md5s from the store, so a watcher that comes
//! back with its md5s (or its last revision) misses nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use autoglm_core::config::{ConfigChange, WatchedKey};
use autoglm_store::{Store, StoreError, config};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

mod follow;
mod listeners;

pub use follow::follow;
use listeners::Registry;
pub use listeners::{Listener, Topic};

/// The most recent changes the hub keeps for streams that fall behind;
/// a stream further behind reads the store.
pub const LOG_CAPACITY: usize = 65_536;

type Address = (String, String, String, String);

#[derive(Debug, Default)]
struct State {
    /// Every key's newest version (tombstones too), by tenant, environment, group, key.
    current: HashMap<Address, ConfigChange>,
    /// The latest changes, by revision, with their tenant.
    log: VecDeque<(String, ConfigChange)>,
    /// Changes at or below this revision may be missing from `log`.
    floor: u64,
}

/// Pushes committed config changes to watchers.
#[derive(Debug)]
pub struct Hub {
    state: RwLock<State>,
    revision: watch::Sender<u64>,
    listeners: Arc<Mutex<Registry>>,
}

fn address(tenant: &str, environment: &str, group: &str, key: &str) -> Address {
    (
        tenant.to_owned(),
        environment.to_owned(),
        group.to_owned(),
        key.to_owned(),
    )
}

impl Hub {
    /// A hub holding the store's current versions.
    pub fn load(store: &Store) -> Result<Arc<Hub>, StoreError> {
        let (versions, revision) = store.read(config::all_current)?;
        let current = versions
            .into_iter()
            .map(|tv| {
                let v = tv.version;
                (
                    address(&tv.tenant, &v.environment, &v.group, &v.key),
                    v.change(),
                )
            })
            .collect();
        Ok(Arc::new(Hub {
            state: RwLock::new(State {
                current,
                log: VecDeque::new(),
                floor: revision,
            }),
            revision: watch::Sender::new(revision),
            listeners: Arc::default(),
        }))
    }

    /// Takes changes just committed, in revision order, and wakes watchers.
    pub fn committed(&self, tenant: &str, changes: &[ConfigChange]) {
        let Some(last) = changes.iter().map(|c| c.revision).max() else {
            return;
        };
        {
            let mut state = self.state.write();
            for change in changes {
                state.current.insert(
                    address(tenant, &change.environment, &change.group, &change.key),
                    change.clone(),
                );
                state.log.push_back((tenant.to_owned(), change.clone()));
                if state.log.len() > LOG_CAPACITY
                    && let Some((_, dropped)) = state.log.pop_front()
                {
                    state.floor = dropped.revision;
                }
            }
        }
        {
            let listeners = self.listeners.lock();
            let mut environments = std::collections::HashSet::new();
            for change in changes {
                listeners.wake(&Topic::key(
                    tenant,
                    &change.environment,
                    &change.group,
                    &change.key,
                ));
                if environments.insert(change.environment.as_str()) {
                    listeners.wake(&Topic::environment(tenant, &change.environment));
                }
            }
        }
        self.revision.send_if_modified(|now| {
            let moved = last > *now;
            *now = (*now).max(last);
            moved
        });
    }

    /// The newest revision the hub has seen.
    pub fn revision(&self) -> u64 {
        *self.revision.borrow()
    }

    /// A receiver that wakes whenever the revision moves, whatever the
    /// key: for the few readers of every change (the ConfigMap writer).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// A listener with no topics yet; see [`Listener::listen`].
    pub fn listener(&self) -> Listener {
        Listener::new(self.listeners.clone())
    }

    /// The key's newest change (a tombstone when deleted), if it ever existed.
    pub fn current(
        &self,
        tenant: &str,
        environment: &str,
        group: &str,
        key: &str,
    ) -> Option<ConfigChange> {
        self.state
            .read()
            .current
            .get(&address(tenant, environment, group, key))
            .cloned()
    }

    /// The watched keys whose md5 is not the one their watcher holds (an
    /// absent or deleted key has the empty md5), as they are now.
    pub fn differing(&self, tenant: &str, keys: &[WatchedKey]) -> Vec<ConfigChange> {
        let state = self.state.read();
        keys.iter()
            .filter_map(|k| {
                let now = state
                    .current
                    .get(&address(tenant, &k.environment, &k.group, &k.key));
                let md5 = now.map_or("", |c| c.md5.as_str());
                if md5.eq_ignore_ascii_case(&k.md5) {
                    return None;
                }
                Some(now.cloned().unwrap_or_else(|| ConfigChange {
                    environment: k.environment.clone(),
                    group: k.group.clone(),
                    key: k.key.clone(),
                    version: 0,
                    md5: String::new(),
                    deleted: true,
                    revision: 0,
                }))
            })
            .collect()
    }

    /// Waits until one of the keys differs from what its watcher holds, or
    /// `timeout` passes (then the answer is empty).
    pub async fn wait(
        &self,
        tenant: &str,
        keys: &[WatchedKey],
        timeout: Duration,
    ) -> Vec<ConfigChange> {
        let listener = self.listener();
        for k in keys {
            listener.listen(Topic::key(tenant, &k.environment, &k.group, &k.key));
        }
        let deadline = std::pin::pin!(tokio::time::sleep(timeout));
        let mut deadline = deadline;
        loop {
            // Listening before looking: a change between the look and the
            // wait still wakes this watcher.
            let changed = self.differing(tenant, keys);
            if !changed.is_empty() {
                return changed;
            }
            tokio::select! {
                () = listener.changed() => {}
                () = &mut deadline => return Vec::new(),
            }
        }
    }

    /// The tenant's changes after `revision` (of one environment when
    /// given), oldest first, or `None` when the log no longer reaches back
    /// that far and the caller must read the store.
    pub fn after(
        &self,
        tenant: &str,
        environment: Option<&str>,
        revision: u64,
    ) -> Option<Vec<ConfigChange>> {
        self.log_after(revision, |log| {
            log.filter(|(t, c)| t == tenant && environment.is_none_or(|e| e == c.environment))
                .map(|(_, c)| c.clone())
                .collect()
        })
    }

    /// Runs `read` over the log's entries after `revision`, or `None` when
    /// the log no longer reaches back that far.
    fn log_after<R>(
        &self,
        revision: u64,
        read: impl FnOnce(&mut dyn Iterator<Item = &(String, ConfigChange)>) -> R,
    ) -> Option<R> {
        let state = self.state.read();
        if revision < state.floor {
            return None;
        }
        let start = state.log.partition_point(|(_, c)| c.revision <= revision);
        Some(read(&mut state.log.range(start..)))
    }
}

impl Hub {
    /// Every tenant's changes after `revision`, oldest first, or `None` when
    /// the log no longer reaches back that far.
    pub fn all_after(&self, revision: u64) -> Option<Vec<(String, ConfigChange)>> {
        self.log_after(revision, |log| log.cloned().collect())
    }
}

#[cfg(test)]
mod tests;
