//! One evaluation round, without IO: every rule over the samples of the
//! services it watches, each version a series stepped through its state.
//! What it returns is what the engine writes (fired, resolved) and shows
//! (pending and firing series).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use autoglm_core::alert::{ActiveAlert, AlertMetric, ReadyRule, SeriesState, Silence, Transition};
use autoglm_core::rollout::measure::measure;
use autoglm_core::traffic::{INTERVAL_SECONDS, TrafficPoint};
use chrono::{DateTime, Utc};

/// What one version looked like when the round began.
#[derive(Debug, Clone, Default)]
pub struct VersionSample {
    /// The version.
    pub version: String,
    /// Its share of traffic in the spec.
    pub weight: u32,
    /// The gateway's closed intervals, oldest first.
    pub traffic: Vec<TrafficPoint>,
    /// Replicas wanted but not ready, when a platform reports.
    pub replicas_unavailable: Option<u64>,
    /// Requests waiting for a replica, when a gateway runs here.
    pub queue_length: Option<u64>,
}

/// One service's versions.
#[derive(Debug, Clone, Default)]
pub struct ServiceSample {
    /// Its tenant.
    pub tenant: String,
    /// Its name.
    pub service: String,
    /// Its versions.
    pub versions: Vec<VersionSample>,
}

/// Identifies a series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// The tenant.
    pub tenant: String,
    /// The rule.
    pub rule: String,
    /// The service.
    pub service: String,
    /// The version.
    pub version: String,
}

/// A series that changed state this round.
#[derive(Debug, Clone)]
pub struct Change {
    /// Which.
    pub key: SeriesKey,
    /// What happened.
    pub transition: Transition,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The value read.
    pub value: Option<f64>,
    /// When it fired (for a pending or cleared one, when it began to hold):
    /// Alertmanager's `startsAt`, and when its incident opens.
    pub fired_at: DateTime<Utc>,
    /// The silence that matches, if any.
    pub silenced_by: Option<i64>,
}

/// The value of `metric` for one version. Traffic metrics read the last
/// `span` worth of closed intervals (the gateway closes one for every
/// version it knows every 10 s, idle ones included), counted rather than
/// timed, so that an interval closed a little late is not missed and a
/// condition held for `for` does not flicker to no data between two
/// closes; intervals older than `span` plus one interval are stale.
fn value_of(
    metric: AlertMetric,
    v: &VersionSample,
    span: std::time::Duration,
    now: DateTime<Utc>,
) -> Option<f64> {
    match metric {
        AlertMetric::Traffic(m) => {
            let count = (span.as_secs() / INTERVAL_SECONDS).max(1) as usize;
            let stale = now
                - chrono::Duration::from_std(span).unwrap_or(chrono::Duration::MAX)
                - chrono::Duration::seconds(INTERVAL_SECONDS as i64);
            let recent: Vec<&TrafficPoint> = v
                .traffic
                .iter()
                .rev()
                .take(count)
                .filter(|p| p.at > stale && p.at <= now)
                .collect();
            measure(m, &recent, INTERVAL_SECONDS)
        }
        AlertMetric::ReplicasUnavailable => v.replicas_unavailable.map(|n| n as f64),
        AlertMetric::QueueLength => v.queue_length.map(|n| n as f64),
    }
}

/// The labels of a series.
fn labels(
    tenant: &str,
    rule: &ReadyRule,
    service: &str,
    version: &str,
) -> BTreeMap<String, String> {
    let mut labels = rule.labels.clone();
    labels.insert("alertname".to_owned(), rule.name.clone());
    labels.insert("service".to_owned(), service.to_owned());
    labels.insert("version".to_owned(), version.to_owned());
    labels.insert("severity".to_owned(), rule.severity.as_str().to_owned());
    labels.insert("tenant".to_owned(), tenant.to_owned());
    labels
}

/// One pending or firing series between rounds.
#[derive(Debug, Clone)]
struct Tracked {
    state: SeriesState,
    value: Option<f64>,
    labels: BTreeMap<String, String>,
    /// Its key's hash, in `Series::active`.
    hash: u64,
    /// The last round that saw it.
    round: u64,
    /// When it fires if its condition still holds then (while pending).
    due: Option<DateTime<Utc>>,
}

impl Tracked {
    fn set_due(&mut self, for_duration: std::time::Duration) {
        self.due = match self.state {
            SeriesState::Pending { since } => Some(
                since + chrono::Duration::from_std(for_duration).unwrap_or(chrono::Duration::MAX),
            ),
            _ => None,
        };
    }
}

/// The pending and firing series, kept between rounds. An inactive series
/// is kept nowhere: most series are inactive most of the time, and a round
/// only hashes their names (no allocation) to learn that they are.
#[derive(Debug, Default)]
pub struct Series {
    states: HashMap<SeriesKey, Tracked>,
    active: HashSet<u64>,
    round: u64,
}

fn hash_of(tenant: &str, rule: &str, service: &str, version: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (tenant, rule, service, version).hash(&mut h);
    h.finish()
}

impl Series {
    /// Starts `key` as firing since `since` (an incident left open by an
    /// earlier run), so that it resolves if the condition no longer holds.
    pub fn resume_firing(
        &mut self,
        key: SeriesKey,
        since: DateTime<Utc>,
        labels: BTreeMap<String, String>,
    ) {
        let hash = hash_of(&key.tenant, &key.rule, &key.service, &key.version);
        self.active.insert(hash);
        self.states.entry(key).or_insert(Tracked {
            state: SeriesState::Firing {
                since,
                fired_at: since,
            },
            value: None,
            labels,
            hash,
            round: self.round,
            due: None,
        });
    }

    /// Runs one round at `now` over `rules` (with their tenants) and
    /// `services`; returns what changed. Series of rules or services that
    /// are gone are dropped (a firing one resolves).
    pub fn round(
        &mut self,
        rules: &[(String, ReadyRule)],
        services: &[ServiceSample],
        silences: &[(String, Silence)],
        now: DateTime<Utc>,
    ) -> Vec<Change> {
        self.round += 1;
        let mut by_tenant: HashMap<&str, Vec<&ServiceSample>> = HashMap::new();
        let mut by_name: HashMap<(&str, &str), &ServiceSample> = HashMap::new();
        for s in services {
            by_tenant.entry(&s.tenant).or_default().push(s);
            by_name.insert((&s.tenant, &s.service), s);
        }
        let mut changes = Vec::new();
        for (tenant, rule) in rules {
            let watched: &[&ServiceSample] = match &rule.service {
                Some(name) => match by_name.get(&(tenant.as_str(), name.as_str())) {
                    Some(sample) => std::slice::from_ref(sample),
                    None => &[],
                },
                None => by_tenant.get(tenant.as_str()).map_or(&[], Vec::as_slice),
            };
            for sample in watched {
                for v in &sample.versions {
                    let value = value_of(rule.metric, v, rule.window, now);
                    let baseline = sample
                        .versions
                        .iter()
                        .filter(|o| o.version != v.version)
                        .max_by_key(|o| o.weight)
                        .and_then(|o| value_of(rule.metric, o, rule.window, now));
                    let holds = value.and_then(|x| rule.condition.holds(x, baseline));
                    let hash = hash_of(tenant, &rule.name, &sample.service, &v.version);
                    let key = || SeriesKey {
                        tenant: tenant.clone(),
                        rule: rule.name.clone(),
                        service: sample.service.clone(),
                        version: v.version.clone(),
                    };
                    let known = if self.active.contains(&hash) {
                        let key = key();
                        self.states.get_mut(&key).map(|entry| (key, entry))
                    } else {
                        None
                    };
                    if let Some((key, entry)) = known {
                        entry.round = self.round;
                        entry.value = value;
                        let before = entry.state;
                        if let Some(transition) = entry.state.step(holds, rule.for_duration, now) {
                            entry.set_due(rule.for_duration);
                            changes.push(change(key, transition, before, entry, silences, now));
                        }
                        continue;
                    }
                    let mut state = SeriesState::Inactive;
                    if let Some(transition) = state.step(holds, rule.for_duration, now) {
                        let mut entry = Tracked {
                            state,
                            value,
                            labels: labels(tenant, rule, &sample.service, &v.version),
                            hash,
                            round: self.round,
                            due: None,
                        };
                        entry.set_due(rule.for_duration);
                        let key = key();
                        changes.push(change(
                            key.clone(),
                            transition,
                            SeriesState::Inactive,
                            &entry,
                            silences,
                            now,
                        ));
                        self.active.insert(hash);
                        self.states.insert(key, entry);
                    }
                }
            }
        }
        // A series no rule or service produces any more resolves.
        let round = self.round;
        let gone: Vec<SeriesKey> = self
            .states
            .iter()
            .filter(|(_, e)| e.round != round)
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            if let Some(mut entry) = self.states.remove(&key) {
                let before = entry.state;
                if let Some(transition) = entry.state.step(None, std::time::Duration::ZERO, now) {
                    changes.push(change(key, transition, before, &entry, silences, now));
                }
            }
        }
        self.states.retain(|_, e| e.state != SeriesState::Inactive);
        self.active = self.states.values().map(|e| e.hash).collect();
        changes
    }

    /// When the first pending series is due to fire, if any: the engine
    /// evaluates again then rather than at its next tick, so an alert fires
    /// as soon as its `for` is over.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.states.values().filter_map(|e| e.due).min()
    }

    /// Every pending or firing series, ordered by tenant, rule, service, version.
    pub fn active(
        &self,
        silences: &[(String, Silence)],
        now: DateTime<Utc>,
    ) -> Vec<(String, ActiveAlert)> {
        let mut out: Vec<(&SeriesKey, ActiveAlert)> = self
            .states
            .iter()
            .filter_map(|(key, tracked)| {
                let Tracked {
                    state,
                    value,
                    labels,
                    ..
                } = tracked;
                let (since, fired_at) = match *state {
                    SeriesState::Inactive => return None,
                    SeriesState::Pending { since } => (since, None),
                    SeriesState::Firing { since, fired_at } => (since, Some(fired_at)),
                };
                Some((
                    key,
                    ActiveAlert {
                        rule: key.rule.clone(),
                        service: key.service.clone(),
                        version: key.version.clone(),
                        state: state.name().to_owned(),
                        since,
                        fired_at,
                        value: *value,
                        labels: labels.clone(),
                        silenced_by: silenced_by(&key.tenant, labels, silences, now),
                    },
                ))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out.into_iter()
            .map(|(k, a)| (k.tenant.clone(), a))
            .collect()
    }
}

fn silenced_by(
    tenant: &str,
    labels: &BTreeMap<String, String>,
    silences: &[(String, Silence)],
    now: DateTime<Utc>,
) -> Option<i64> {
    silences
        .iter()
        .find(|(t, s)| t == tenant && s.silences(labels, now))
        .map(|(_, s)| s.id)
}

fn change(
    key: SeriesKey,
    transition: Transition,
    before: SeriesState,
    entry: &Tracked,
    silences: &[(String, Silence)],
    now: DateTime<Utc>,
) -> Change {
    let fired_at = match (entry.state, before) {
        (SeriesState::Firing { fired_at, .. }, _) | (_, SeriesState::Firing { fired_at, .. }) => {
            fired_at
        }
        (SeriesState::Pending { since }, _) => since,
        _ => now,
    };
    Change {
        silenced_by: silenced_by(&key.tenant, &entry.labels, silences, now),
        key,
        transition,
        labels: entry.labels.clone(),
        value: entry.value,
        fired_at,
    }
}

#[cfg(test)]
mod tests;
