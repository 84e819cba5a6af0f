//! The seams between the parts of autoglm: what the console asks of a
//! platform ([`ServicePlatform`]) and of a gateway in its process
//! ([`TrafficHistory`]), what a platform publishes for the gateway to route
//! by ([`Views`]), and what the gateway counts for a reconciler to scale by
//! ([`Demand`]).
//!
//! No IO, and no dependency on any part's crate: the gateway and the cluster
//! driver build on these without the console's HTTP crate or the local
//! platform.

pub mod demand;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use autoglm_core::service::{LoadBalancing, ModelServiceStatus, StoredService};
use autoglm_core::traffic::ServiceTraffic;

pub use demand::Demand;

/// The platform that runs services (the local one, or the operator's view of
/// Kubernetes), as the console sees it. Every method is called on request
/// paths: each must be cheap and must not block.
pub trait ServicePlatform: Send + Sync + std::fmt::Debug {
    /// The status of `tenant`'s service, or `None` when the platform has not
    /// taken it up (yet).
    fn status(&self, tenant: &str, service: &StoredService) -> Option<ModelServiceStatus>;

    /// Called after a write to `tenant`'s service `name` committed (created,
    /// changed, scaled, restarted or deleted): the platform reads it again
    /// from the store and converges.
    fn changed(&self, tenant: &str, name: &str);

    /// Whether the platform still runs (or is still removing) anything of
    /// `tenant`'s service `name`: a delete is done once this is false.
    fn present(&self, tenant: &str, name: &str) -> bool;

    /// The ready replicas of each version of `tenant`'s service `name`, as
    /// the gateway would route to them; empty when none runs.
    fn endpoints(&self, tenant: &str, name: &str) -> Vec<VersionEndpoints>;

    /// Whether any platform runs services here; `false` for [`NoPlatform`],
    /// where a change is done once it is stored.
    fn runs_services(&self) -> bool {
        true
    }

    /// The last `max_bytes` of a replica's log; `None` when the platform has
    /// no such replica or keeps no logs.
    fn log_tail(
        &self,
        tenant: &str,
        service: &str,
        replica: &str,
        max_bytes: u64,
    ) -> std::io::Result<Option<String>>;

    /// What `tenant`'s replicas hold now (requested CPU and memory, GPUs,
    /// replicas), as its quotas count them; nothing where nothing runs.
    fn held(&self, _tenant: &str) -> autoglm_core::quota::Holding {
        autoglm_core::quota::Holding::default()
    }
}

/// No platform: every service is pending and nothing runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPlatform;

impl ServicePlatform for NoPlatform {
    fn status(&self, _: &str, _: &StoredService) -> Option<ModelServiceStatus> {
        None
    }

    fn changed(&self, _: &str, _: &str) {}

    fn present(&self, _: &str, _: &str) -> bool {
        false
    }

    fn endpoints(&self, _: &str, _: &str) -> Vec<VersionEndpoints> {
        Vec::new()
    }

    fn runs_services(&self) -> bool {
        false
    }

    fn log_tail(&self, _: &str, _: &str, _: &str, _: u64) -> std::io::Result<Option<String>> {
        Ok(None)
    }
}

/// The recent traffic of services, as a gateway in this process counted it.
pub trait TrafficHistory: Send + Sync + std::fmt::Debug {
    /// The last `intervals` intervals (at most an hour's) of `tenant`'s
    /// service `service`; `None` when this process keeps no history (its
    /// gateway runs elsewhere).
    fn traffic(&self, tenant: &str, service: &str, intervals: usize) -> Option<ServiceTraffic>;
}

/// The counters of the filters that a gateway in this process runs.
pub trait FilterCounters: Send + Sync + std::fmt::Debug {
    /// Those of `tenant`'s filters; `None` when this process runs no gateway.
    fn filter_counters(&self, tenant: &str) -> Option<Vec<autoglm_core::filter::FilterCounter>>;
}

impl FilterCounters for NoTrafficHistory {
    fn filter_counters(&self, _: &str) -> Option<Vec<autoglm_core::filter::FilterCounter>> {
        None
    }
}

/// No gateway in this process (`autoglm console`).
#[derive(Debug)]
pub struct NoTrafficHistory;

impl TrafficHistory for NoTrafficHistory {
    fn traffic(&self, _: &str, _: &str, _: usize) -> Option<ServiceTraffic> {
        None
    }
}

/// Ready replicas of one version, for routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionEndpoints {
    /// The model version.
    pub version: String,
    /// Its share of traffic, in percent.
    pub weight: u32,
    /// Addresses of its ready replicas.
    pub ready: Vec<SocketAddr>,
}

/// What a platform shows of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceView {
    /// For the console API.
    pub status: ModelServiceStatus,
    /// For the gateway.
    pub endpoints: Vec<VersionEndpoints>,
    /// How the gateway balances each version's requests over its endpoints.
    pub balancing: LoadBalancing,
    /// The service's own gateway filters, in order (`spec.filters`).
    pub filters: Vec<autoglm_core::filter::FilterRef>,
}

/// Every service's view, by name.
pub type Views = BTreeMap<String, ServiceView>;
