//! Who waits on what. A watcher registers the keys (or whole environments)
//! it cares about and is woken only by commits that touch one of them, so a
//! publish costs in proportion to its own watchers, not to every watcher
//! the console holds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// What a listener can wait on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// One key: tenant, environment, group, key.
    Key(String, String, String, String),
    /// Every key of one environment: tenant, environment.
    Environment(String, String),
}

impl Topic {
    /// One key of a tenant's environment.
    pub fn key(tenant: &str, environment: &str, group: &str, key: &str) -> Topic {
        Topic::Key(
            tenant.to_owned(),
            environment.to_owned(),
            group.to_owned(),
            key.to_owned(),
        )
    }

    /// Every key of a tenant's environment.
    pub fn environment(tenant: &str, environment: &str) -> Topic {
        Topic::Environment(tenant.to_owned(), environment.to_owned())
    }
}

/// The listeners of each topic.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    next: u64,
    by_topic: HashMap<Topic, HashMap<u64, Arc<Notify>>>,
}

impl Registry {
    /// Wakes every listener of `topic`. A listener not waiting at that
    /// moment keeps the wakeup for its next wait, so none is lost.
    pub(crate) fn wake(&self, topic: &Topic) {
        for notify in self
            .by_topic
            .get(topic)
            .into_iter()
            .flat_map(|l| l.values())
        {
            notify.notify_one();
        }
    }
}

/// A watcher's registration; dropping it unregisters every topic.
#[derive(Debug)]
pub struct Listener {
    registry: Arc<Mutex<Registry>>,
    id: u64,
    notify: Arc<Notify>,
    topics: Mutex<HashSet<Topic>>,
}

impl Listener {
    pub(crate) fn new(registry: Arc<Mutex<Registry>>) -> Listener {
        let id = {
            let mut registry = registry.lock();
            registry.next += 1;
            registry.next
        };
        Listener {
            registry,
            id,
            notify: Arc::new(Notify::new()),
            topics: Mutex::new(HashSet::new()),
        }
    }

    /// Wakes this listener on every later commit that touches `topic`.
    /// Register before looking at the current state: a commit in between
    /// still wakes the next [`Listener::changed`].
    pub fn listen(&self, topic: Topic) {
        let mut topics = self.topics.lock();
        if topics.contains(&topic) {
            return;
        }
        self.registry
            .lock()
            .by_topic
            .entry(topic.clone())
            .or_default()
            .insert(self.id, self.notify.clone());
        topics.insert(topic);
    }

    /// Stops waking on `topic`.
    pub fn forget(&self, topic: &Topic) {
        if self.topics.lock().remove(topic) {
            remove(&mut self.registry.lock(), topic, self.id);
        }
    }

    /// Resolves after a commit touched one of the topics (at once when one
    /// did since the last call). It may resolve for a change the watcher
    /// already holds: callers look again.
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}

fn remove(registry: &mut Registry, topic: &Topic, id: u64) {
    if let Some(listeners) = registry.by_topic.get_mut(topic) {
        listeners.remove(&id);
        if listeners.is_empty() {
            registry.by_topic.remove(topic);
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let topics = std::mem::take(self.topics.get_mut());
        let mut registry = self.registry.lock();
        for topic in &topics {
            remove(&mut registry, topic, self.id);
        }
    }
}
