//! The routing table: each service's versions with their weights and ready
//! replicas, rebuilt whenever the platform publishes new views. Replica state
//! (outstanding requests, failures, ejection) lives in [`Endpoint`]s that
//! outlast rebuilds, so a new table does not forget what the old one learned.

use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use autoglm_contract::demand::VersionDemand;
use autoglm_contract::{Demand, Views};
use foldhash::HashMap;

use crate::balance::{Balance, Picked, Ring};
use crate::metrics::{Metrics, VersionMetrics};
use crate::split::Weighted;
use crate::version::VersionLabels;

/// After this many failures in a row a replica is ejected.
const EJECT_AFTER: u32 = 3;
/// How long an ejection lasts at first; it doubles with each one in a row, to 30 s.
const EJECT_BASE: Duration = Duration::from_secs(2);

/// One ready replica, as the gateway tracks it.
#[derive(Debug)]
pub struct Endpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `host:port`, for the Host field of requests to it.
    pub authority: String,
    outstanding: AtomicU32,
    failures: AtomicU32,
    ejections: AtomicU32,
    /// Milliseconds since `epoch` until which it is ejected.
    ejected_until: AtomicU64,
    epoch: Instant,
}

impl Endpoint {
    /// A replica at `addr` with no history; `epoch` anchors its ejection clock.
    pub fn new(addr: SocketAddr, epoch: Instant) -> Endpoint {
        Endpoint {
            addr,
            authority: addr.to_string(),
            outstanding: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            epoch,
        }
    }

    /// Requests sent to it and not yet answered in full.
    pub fn outstanding(&self) -> u32 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Whether it is ejected at `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        let now_ms = now.duration_since(self.epoch).as_millis() as u64;
        self.ejected_until.load(Ordering::Relaxed) > now_ms
    }

    /// Records a success: the failure streak ends.
    pub fn succeeded(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
            self.ejections.store(0, Ordering::Relaxed);
        }
    }

    /// Records a failure; `certain` (the connection was refused) ejects at once.
    /// Returns whether the replica is now ejected.
    pub fn failed(&self, certain: bool) -> bool {
        let streak = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if !certain && streak < EJECT_AFTER {
            return false;
        }
        let n = self.ejections.fetch_add(1, Ordering::Relaxed).min(4);
        let until = Instant::now() + EJECT_BASE * 2u32.pow(n);
        let ms = until.duration_since(self.epoch).as_millis() as u64;
        self.ejected_until.store(ms, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        true
    }
}

/// Counts a request outstanding on an endpoint until dropped.
#[derive(Debug)]
pub struct Outstanding(pub Arc<Endpoint>);

impl Outstanding {
    /// Starts counting on `endpoint`.
    pub fn on(endpoint: Arc<Endpoint>) -> Outstanding {
        endpoint.outstanding.fetch_add(1, Ordering::Relaxed);
        Outstanding(endpoint)
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One version of a service in the table.
#[derive(Debug)]
pub struct VersionRoute {
    /// The version label.
    pub version: String,
    /// Percent of traffic.
    pub weight: u32,
    /// Its ready replicas.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Its metrics, resolved when the table is built.
    pub metrics: Arc<VersionMetrics>,
    /// Its demand, as the autoscaler reads it.
    pub demand: Arc<VersionDemand>,
    /// How it chooses among `endpoints`.
    pub balance: Balance,
}

impl Weighted for VersionRoute {
    fn version(&self) -> &str {
        &self.version
    }
    fn weight(&self) -> u32 {
        self.weight
    }
}

impl VersionRoute {
    /// The replica for a request keyed `key` (see [`Balance::pick`]),
    /// skipping those in `tried`; `now` decides which ejections are over.
    pub fn pick(
        &self,
        tried: &[SocketAddr],
        key: Option<u64>,
        now: Instant,
    ) -> Option<(Arc<Endpoint>, Picked)> {
        self.balance.pick(&self.endpoints, tried, key, now)
    }
}

/// One service in the table.
#[derive(Debug)]
pub struct ServiceRoute {
    /// Its versions in spec order.
    pub versions: Vec<VersionRoute>,
    /// Its own gateway filters (`spec.filters`), run after its tenant's.
    pub filters: Vec<autoglm_core::filter::FilterRef>,
}

/// Every routable service, by tenant and name.
#[derive(Debug, Default)]
pub struct Table {
    tenants: HashMap<String, HashMap<String, Arc<ServiceRoute>>>,
}

impl Table {
    /// `tenant`'s service `name`.
    pub fn service(&self, tenant: &str, name: &str) -> Option<&Arc<ServiceRoute>> {
        self.tenants.get(tenant)?.get(name)
    }

    /// `tenant`'s service names, sorted.
    pub fn names(&self, tenant: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .tenants
            .get(tenant)
            .map(|s| s.keys().map(String::as_str).collect())
            .unwrap_or_default();
        names.sort_unstable();
        names
    }
}

/// Builds tables from views, keeping endpoint state across builds.
#[derive(Debug)]
pub struct Builder {
    known: Mutex<HashMap<SocketAddr, Arc<Endpoint>>>,
    epoch: Instant,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            known: Mutex::new(HashMap::default()),
            epoch: Instant::now(),
        }
    }
}

impl Builder {
    /// The table for `views`, with each version's metrics and demand.
    /// Platform names are `tenant.service`.
    pub fn build(&self, views: &Views, metrics: &Metrics, demand: &Demand) -> Table {
        let mut known = self.known.lock();
        let mut seen: HashMap<SocketAddr, Arc<Endpoint>> = HashMap::default();
        let mut tenants: HashMap<String, HashMap<String, Arc<ServiceRoute>>> = HashMap::default();
        for (platform_name, view) in views {
            let Some((tenant, name)) = platform_name.split_once('.') else {
                continue;
            };
            let prefix_hash = view.balancing.prefix_hash();
            let versions = view
                .endpoints
                .iter()
                .map(|v| VersionRoute {
                    metrics: Arc::new(metrics.version(
                        VersionLabels {
                            tenant: tenant.to_owned(),
                            model: name.to_owned(),
                            version: v.version.clone(),
                        },
                        prefix_hash.is_some(),
                    )),
                    demand: demand.of(platform_name, &v.version),
                    version: v.version.clone(),
                    weight: v.weight,
                    endpoints: v
                        .ready
                        .iter()
                        .map(|addr| {
                            let e = known
                                .get(addr)
                                .cloned()
                                .unwrap_or_else(|| Arc::new(Endpoint::new(*addr, self.epoch)));
                            seen.insert(*addr, e.clone());
                            e
                        })
                        .collect(),
                    balance: match &prefix_hash {
                        Some(config) => Balance::PrefixHash {
                            ring: Ring::new(v.ready.iter().copied(), config.replication),
                            config: config.clone(),
                        },
                        None => Balance::LeastOutstanding,
                    },
                })
                .collect();
            tenants.entry(tenant.to_owned()).or_default().insert(
                name.to_owned(),
                Arc::new(ServiceRoute {
                    versions,
                    filters: view.filters.clone(),
                }),
            );
        }
        // A port that comes back later is a new replica: forget the old state.
        *known = seen;
        Table { tenants }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(n: u16) -> VersionRoute {
        let epoch = Instant::now();
        VersionRoute {
            metrics: Arc::new(Metrics::new(&Default::default()).version(
                VersionLabels {
                    tenant: "t".into(),
                    model: "m".into(),
                    version: "1".into(),
                },
                false,
            )),
            demand: Demand::default().of("t.m", "1"),
            version: "1".into(),
            weight: 100,
            endpoints: (0..n)
                .map(|i| {
                    Arc::new(Endpoint::new(
                        SocketAddr::from(([127, 0, 0, 1], 9000 + i)),
                        epoch,
                    ))
                })
                .collect(),
            balance: Balance::LeastOutstanding,
        }
    }

    fn port(picked: Option<(Arc<Endpoint>, Picked)>) -> Option<u16> {
        picked.map(|(e, _)| e.addr.port())
    }

    #[test]
    fn picks_the_least_outstanding_replica() {
        let r = route(3);
        let _a = Outstanding::on(r.endpoints[0].clone());
        let _b = Outstanding::on(r.endpoints[0].clone());
        let _c = Outstanding::on(r.endpoints[1].clone());
        assert_eq!(port(r.pick(&[], None, Instant::now())), Some(9002));
        let tried = [r.endpoints[2].addr];
        assert_eq!(port(r.pick(&tried, None, Instant::now())), Some(9001));
    }

    #[test]
    fn a_refused_replica_is_ejected_until_all_are() {
        let r = route(2);
        assert!(r.endpoints[0].failed(true));
        for _ in 0..20 {
            assert_eq!(port(r.pick(&[], None, Instant::now())), Some(9001));
        }
        // Uncertain failures eject only after a streak.
        assert!(!r.endpoints[1].failed(false));
        assert!(!r.endpoints[1].failed(false));
        assert!(r.endpoints[1].failed(false));
        // Every replica ejected: still pick one rather than fail.
        assert!(r.pick(&[], None, Instant::now()).is_some());
    }
}
