//! Demand: how many requests each service version has in flight, and how
//! many wait for a replica. The gateway counts; the reconciler reads it to
//! scale, and is woken at once when a request waits on a service at zero.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// The counters of one service version.
#[derive(Debug, Default)]
pub struct VersionDemand {
    in_flight: AtomicU64,
    waiting: AtomicU64,
}

impl VersionDemand {
    /// Requests sent to a replica and not yet answered in full.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests held until a replica is ready.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// Every service version's demand, by platform name and version.
#[derive(Debug, Default)]
pub struct Demand {
    versions: RwLock<HashMap<(String, String), Arc<VersionDemand>>>,
    woken: Notify,
}

/// Counts one request in flight until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<VersionDemand>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts one waiting request until dropped.
#[derive(Debug)]
pub struct Waiting(Arc<VersionDemand>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Demand {
    /// The counters of `service`'s `version`, made on first use.
    pub fn of(&self, service: &str, version: &str) -> Arc<VersionDemand> {
        let key = (service.to_owned(), version.to_owned());
        if let Some(d) = self.versions.read().get(&key) {
            return d.clone();
        }
        self.versions.write().entry(key).or_default().clone()
    }

    /// Counts a request in flight on `demand`.
    pub fn start(demand: &Arc<VersionDemand>) -> InFlight {
        demand.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(demand.clone())
    }

    /// Counts a request waiting for a replica of `demand`, and wakes the
    /// reconciler; `None` when `max` already wait.
    pub fn wait(&self, demand: &Arc<VersionDemand>, max: u64) -> Option<Waiting> {
        let before = demand.waiting.fetch_add(1, Ordering::Relaxed);
        let guard = Waiting(demand.clone());
        if before >= max {
            return None;
        }
        self.woken.notify_one();
        Some(guard)
    }

    /// Completes when a request starts waiting (or at once, if one did
    /// since the last call).
    pub async fn woken(&self) {
        self.woken.notified().await;
    }

    /// (in flight, waiting) of `service`'s `version`; zero when never seen.
    pub fn load(&self, service: &str, version: &str) -> (u64, u64) {
        self.versions
            .read()
            .get(&(service.to_owned(), version.to_owned()))
            .map(|d| (d.in_flight(), d.waiting()))
            .unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_while_they_live() {
        let demand = Demand::default();
        let d = demand.of("default.chat", "1");
        let a = Demand::start(&d);
        let b = Demand::start(&demand.of("default.chat", "1"));
        let w = demand.wait(&d, 1);
        assert!(demand.wait(&d, 1).is_none(), "one may wait");
        assert_eq!(demand.load("default.chat", "1"), (2, 1));
        assert_eq!(demand.load("default.chat", "2"), (0, 0));
        drop((a, w));
        assert_eq!(demand.load("default.chat", "1"), (1, 0));
        drop(b);
        assert_eq!(demand.load("default.chat", "1"), (0, 0));
    }
}
