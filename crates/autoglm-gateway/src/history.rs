//! The last hour of traffic per service version, in 10-second intervals, for
//! the console's charts. Each answer is counted into its version's open
//! interval; a ticker closes every interval at once and keeps an hour of them.
//! A version with no traffic for a whole hour is forgotten, so made-up
//! traffic cannot grow the history without bound.

use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use autoglm_core::traffic::{
    INTERVAL_SECONDS, IntervalCounts, KEPT_INTERVALS, ServiceTraffic, TrafficPoint, VersionTraffic,
};
use chrono::{DateTime, Utc};
use foldhash::HashMap;

use crate::version::VersionLabels;

type Ring = VecDeque<TrafficPoint>;

/// The traffic history the gateway keeps.
#[derive(Debug, Default)]
pub struct History {
    open: RwLock<HashMap<VersionLabels, Arc<Mutex<IntervalCounts>>>>,
    closed: Mutex<HashMap<(String, String), BTreeMap<String, Ring>>>,
}

fn lock<T>(m: &Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    m.lock()
}

impl History {
    /// Counts an answer of `version` with `status` after `seconds`.
    pub fn record(&self, version: &VersionLabels, status: u16, seconds: f64) {
        {
            let open = self.open.read();
            if let Some(counts) = open.get(version) {
                lock(counts).record(status, seconds);
                return;
            }
        }
        let mut open = self.open.write();
        lock(open.entry(version.clone()).or_default()).record(status, seconds);
    }

    /// Closes every open interval at `at` and drops versions idle for the
    /// whole kept hour.
    pub fn close_interval(&self, at: DateTime<Utc>) {
        let mut open = self.open.write();
        let mut closed = lock(&self.closed);
        for (labels, counts) in open.iter() {
            let counts = std::mem::take(&mut *lock(counts));
            let ring = closed
                .entry((labels.tenant.clone(), labels.model.clone()))
                .or_default()
                .entry(labels.version.clone())
                .or_default();
            ring.push_back(counts.point(at));
            if ring.len() > KEPT_INTERVALS {
                ring.pop_front();
            }
        }
        let idle =
            |ring: &Ring| ring.len() >= KEPT_INTERVALS && ring.iter().all(|p| p.requests == 0);
        for versions in closed.values_mut() {
            versions.retain(|_, ring| !idle(ring));
        }
        closed.retain(|_, versions| !versions.is_empty());
        open.retain(|labels, _| {
            closed
                .get(&(labels.tenant.clone(), labels.model.clone()))
                .is_some_and(|versions| versions.contains_key(&labels.version))
        });
    }

    /// Closes an interval every [`INTERVAL_SECONDS`] for as long as the
    /// history is in use.
    pub async fn close_intervals_forever(history: std::sync::Weak<History>) {
        let mut ticker = tokio::time::interval(Duration::from_secs(INTERVAL_SECONDS));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(history) = history.upgrade() else {
                return;
            };
            history.close_interval(Utc::now());
        }
    }

    /// The last `intervals` kept intervals of `tenant`'s service `service`,
    /// by version.
    pub fn service(&self, tenant: &str, service: &str, intervals: usize) -> ServiceTraffic {
        let closed = lock(&self.closed);
        let versions = closed
            .get(&(tenant.to_owned(), service.to_owned()))
            .map(|versions| {
                versions
                    .iter()
                    .map(|(version, ring)| VersionTraffic {
                        version: version.clone(),
                        points: ring
                            .iter()
                            .skip(ring.len().saturating_sub(intervals))
                            .cloned()
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        ServiceTraffic {
            interval_seconds: INTERVAL_SECONDS,
            versions,
        }
    }
}

impl autoglm_contract::TrafficHistory for History {
    fn traffic(&self, tenant: &str, service: &str, intervals: usize) -> Option<ServiceTraffic> {
        Some(self.service(tenant, service, intervals))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(version: &str) -> VersionLabels {
        VersionLabels {
            tenant: "default".into(),
            model: "chat".into(),
            version: version.into(),
        }
    }

    #[test]
    fn each_interval_becomes_a_point_per_version() {
        let history = History::default();
        for _ in 0..30 {
            history.record(&labels("1"), 200, 0.01);
        }
        history.record(&labels("2"), 502, 0.01);
        history.close_interval(Utc::now());
        history.record(&labels("1"), 200, 0.01);
        history.close_interval(Utc::now());
        let traffic = history.service("default", "chat", KEPT_INTERVALS);
        let v1 = &traffic.versions[0];
        assert_eq!(v1.version, "1");
        assert_eq!(
            v1.points.iter().map(|p| p.requests).collect::<Vec<_>>(),
            [30, 1]
        );
        let v2 = &traffic.versions[1];
        assert_eq!(v2.points[0].errors, 1);
        assert_eq!(v2.points[1].requests, 0, "an idle interval is a zero");
        let latest = history.service("default", "chat", 1);
        assert_eq!(
            latest.versions[0].points[0].requests, 1,
            "only the newest interval"
        );
        assert!(
            history
                .service("default", "other", KEPT_INTERVALS)
                .versions
                .is_empty()
        );
        assert!(
            history
                .service("team", "chat", KEPT_INTERVALS)
                .versions
                .is_empty()
        );
    }

    #[test]
    fn an_hour_is_kept_and_an_idle_version_forgotten() {
        let history = History::default();
        history.record(&labels("1"), 200, 0.01);
        for _ in 0..KEPT_INTERVALS {
            history.close_interval(Utc::now());
        }
        let kept = history.service("default", "chat", KEPT_INTERVALS);
        assert_eq!(kept.versions[0].points.len(), KEPT_INTERVALS);
        assert_eq!(kept.versions[0].points[0].requests, 1);
        history.close_interval(Utc::now());
        assert!(
            history
                .service("default", "chat", KEPT_INTERVALS)
                .versions
                .is_empty()
        );
        assert!(history.open.read().is_empty());
    }
}
