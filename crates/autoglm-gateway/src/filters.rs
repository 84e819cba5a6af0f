//! The gateway's proxy-wasm filters: each tenant's uploaded modules and
//! filter chain, loaded from the store whenever they change (compiled off
//! the workers, and swapped whole: requests in flight finish on what they
//! started with), and the chain each request runs: its tenant's, then its
//! service's (`spec.filters`, from the routing table).
//!
//! An attachment is kept, with its instances, while neither its module nor
//! its configuration changes, so a reload that touches one filter leaves
//! the others warm. Counters are kept per tenant, scope and filter for as
//! long as the gateway runs, and exported as Prometheus metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use autoglm_core::error::GatewayCode;
use autoglm_core::filter::{FailMode, FilterCounter, FilterRef};
use autoglm_filters::{Attachment, Compiled, Count, FailureKind, Limits, Run, Stats};
use autoglm_store::Store;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::reply::Refused;

/// How often the store's filters version is compared.
const POLL: Duration = Duration::from_millis(100);
/// How long a resolved chain no request runs, or an attachment nothing
/// holds, is kept (with its warm instances).
const UNUSED: Duration = Duration::from_secs(60);

/// Labels of the filter metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FilterLabels {
    tenant: String,
    /// `tenant`, or `service/NAME`.
    scope: String,
    filter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    tenant: String,
    scope: String,
    filter: String,
    reason: String,
}

/// The filter metric families.
#[derive(Debug, Default)]
pub struct FilterMetrics {
    requests: Family<FilterLabels, Counter>,
    local_responses: Family<FilterLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
}

impl FilterMetrics {
    /// Registers the families in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "filter_requests",
            "Requests each attached filter saw, by tenant, scope (tenant or service/NAME) and filter",
            self.requests.clone(),
        );
        registry.register(
            "filter_local_responses",
            "Answers filters gave themselves instead of the upstream's",
            self.local_responses.clone(),
        );
        registry.register(
            "filter_failures",
            "Filter failures, by reason: deadline, memory, trap, refused (would not start), paused, suspended (not run after failing 5 times in a row)",
            self.failures.clone(),
        );
    }
}

/// What is loaded from the store.
#[derive(Default)]
struct Loaded {
    version: u64,
    /// Compiled modules by tenant and name.
    modules: HashMap<(String, String), Arc<Compiled>>,
    chains: HashMap<String, Vec<FilterRef>>,
}

/// A service's chain as last resolved.
struct Resolved {
    /// The filters version it was resolved at.
    version: u64,
    /// The service's own filters it was resolved from.
    own: Vec<FilterRef>,
    chain: Arc<[Arc<Attachment>]>,
    used: Instant,
}

/// What makes an attachment: a new module or configuration makes a new one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    tenant: String,
    scope: String,
    filter: String,
    digest: String,
    config: Vec<u8>,
    fail_open: bool,
}

/// The filters of every tenant.
pub struct Filters {
    loaded: ArcSwap<Loaded>,
    /// Each attachment with when it was made.
    attachments: Mutex<HashMap<Key, (Arc<Attachment>, Instant)>>,
    /// Each service's chain, resolved once per filters version and
    /// `spec.filters`: by tenant, then service.
    resolved: Mutex<HashMap<String, HashMap<String, Resolved>>>,
    stats: Mutex<HashMap<(String, String, String), Stats>>,
    metrics: FilterMetrics,
    limits: Limits,
}

impl std::fmt::Debug for Filters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filters")
            .field("limits", &self.limits)
            .finish()
    }
}

impl Filters {
    /// No filters yet; `limits` bound every instance.
    pub fn new(limits: Limits) -> Filters {
        Filters {
            loaded: ArcSwap::from_pointee(Loaded::default()),
            attachments: Mutex::default(),
            resolved: Mutex::default(),
            stats: Mutex::default(),
            metrics: FilterMetrics::default(),
            limits,
        }
    }

    /// The metric families, to register.
    pub fn metrics(&self) -> &FilterMetrics {
        &self.metrics
    }

    /// Loads the store's filters whenever they change, while `filters` lives.
    pub fn follow(filters: std::sync::Weak<Filters>, store: Arc<Store>) {
        tokio::spawn(async move {
            let mut seen = None;
            loop {
                let version = store.filters_version();
                if seen != Some(version) {
                    let Some(strong) = filters.upgrade() else {
                        return;
                    };
                    let store = store.clone();
                    let loaded =
                        tokio::task::spawn_blocking(move || strong.load(&store, version)).await;
                    match loaded {
                        Ok(Ok(())) => seen = Some(version),
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "the gateway's filters could not be loaded; retrying")
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "loading the gateway's filters failed")
                        }
                    }
                }
                tokio::time::sleep(POLL).await;
                if let Some(strong) = filters.upgrade() {
                    strong.forget_unused();
                }
            }
        });
    }

    /// Reads and compiles what changed since the last load.
    fn load(&self, store: &Store, version: u64) -> autoglm_store::Result<()> {
        let (digests, chains) = store.read(|c| {
            Ok((
                autoglm_store::filters::digests(c)?,
                autoglm_store::filters::chains(c)?,
            ))
        })?;
        let before = self.loaded.load();
        let by_digest: HashMap<&str, &Arc<Compiled>> = before
            .modules
            .values()
            .map(|m| (m.digest.as_str(), m))
            .collect();
        let mut modules = HashMap::new();
        for (tenant, name, digest) in digests {
            let compiled = match by_digest.get(digest.as_str()) {
                Some(known) => Arc::clone(known),
                None => {
                    let Some(bytes) =
                        store.read(|c| autoglm_store::filters::module(c, &tenant, &name))?
                    else {
                        continue;
                    };
                    match Compiled::new(&bytes) {
                        Ok(compiled) => compiled,
                        Err(e) => {
                            tracing::warn!(%tenant, filter = %name, error = %e, "a stored filter does not compile");
                            continue;
                        }
                    }
                }
            };
            modules.insert((tenant, name), compiled);
        }
        self.loaded.store(Arc::new(Loaded {
            version,
            modules,
            chains: chains.into_iter().collect(),
        }));
        // Attachments of modules no longer there, or replaced, go.
        let loaded = self.loaded.load();
        self.attachments.lock().retain(|key, _| {
            loaded
                .modules
                .get(&(key.tenant.clone(), key.filter.clone()))
                .is_some_and(|m| m.digest == key.digest)
        });
        tracing::debug!(version, "gateway filters loaded");
        Ok(())
    }

    /// Drops attachments no request ran for [`UNUSED`] (a configuration
    /// changed, a filter detached): their instances go with the last
    /// request that holds them.
    fn forget_unused(&self) {
        self.resolved.lock().retain(|_, services| {
            services.retain(|_, resolved| resolved.used.elapsed() < UNUSED);
            !services.is_empty()
        });
        // Held elsewhere than here: by a resolved chain or a request.
        self.attachments.lock().retain(|_, (attachment, made)| {
            Arc::strong_count(attachment) > 1 || made.elapsed() < UNUSED
        });
    }

    /// The version of the store's filters loaded last.
    pub fn loaded_version(&self) -> u64 {
        self.loaded.load().version
    }

    /// The chain a request of `tenant` to `service` runs, or `None` when it
    /// runs none. A filter that is attached but not uploaded fails as its
    /// attachment says.
    pub fn run(
        &self,
        tenant: &str,
        service: &str,
        own: &[FilterRef],
    ) -> Result<Option<Run>, Refused> {
        let loaded = self.loaded.load();
        let tenant_chain = loaded.chains.get(tenant).map_or(&[][..], Vec::as_slice);
        if tenant_chain.is_empty() && own.is_empty() {
            return Ok(None);
        }
        if let Some(resolved) = self
            .resolved
            .lock()
            .get_mut(tenant)
            .and_then(|services| services.get_mut(service))
            && resolved.version == loaded.version
            && resolved.own == own
        {
            resolved.used = Instant::now();
            return Ok((!resolved.chain.is_empty()).then(|| Run::new(resolved.chain.to_vec())));
        }
        let chain: Arc<[Arc<Attachment>]> = self
            .resolve(&loaded, tenant, service, tenant_chain, own)?
            .into();
        self.resolved
            .lock()
            .entry(tenant.to_owned())
            .or_default()
            .insert(
                service.to_owned(),
                Resolved {
                    version: loaded.version,
                    own: own.to_vec(),
                    chain: chain.clone(),
                    used: Instant::now(),
                },
            );
        Ok((!chain.is_empty()).then(|| Run::new(chain.to_vec())))
    }

    /// The attachments of a request of `tenant` to `service`: the tenant's
    /// chain, then the service's own.
    fn resolve(
        &self,
        loaded: &Loaded,
        tenant: &str,
        service: &str,
        tenant_chain: &[FilterRef],
        own: &[FilterRef],
    ) -> Result<Vec<Arc<Attachment>>, Refused> {
        let service_scope = format!("service/{service}");
        let mut chain = Vec::with_capacity(tenant_chain.len() + own.len());
        for (scope, filter) in tenant_chain
            .iter()
            .map(|f| ("tenant", f))
            .chain(own.iter().map(|f| (service_scope.as_str(), f)))
        {
            let Some(module) = loaded
                .modules
                .get(&(tenant.to_owned(), filter.name.clone()))
            else {
                let message = format!(
                    "filter {} ({scope}) is attached but not uploaded",
                    filter.name
                );
                if filter.fail_mode == FailMode::Open {
                    tracing::warn!(%tenant, "{message}; passed over (fails open)");
                    continue;
                }
                return Err(Refused::new(GatewayCode::FilterFailed, message));
            };
            chain.push(self.attachment(tenant, scope, filter, module));
        }
        Ok(chain)
    }

    fn attachment(
        &self,
        tenant: &str,
        scope: &str,
        filter: &FilterRef,
        module: &Arc<Compiled>,
    ) -> Arc<Attachment> {
        let key = Key {
            tenant: tenant.to_owned(),
            scope: scope.to_owned(),
            filter: filter.name.clone(),
            digest: module.digest.clone(),
            config: filter.config_bytes(),
            fail_open: filter.fail_mode == FailMode::Open,
        };
        let mut attachments = self.attachments.lock();
        if let Some((known, _)) = attachments.get(&key) {
            return known.clone();
        }
        let stats = self.stats(tenant, scope, &filter.name);
        let made = Attachment::new(
            &filter.name,
            module.clone(),
            &key.config,
            key.fail_open,
            self.limits,
            stats,
        );
        attachments.insert(key, (made.clone(), Instant::now()));
        made
    }

    /// The counters of `filter` in `scope` of `tenant`, made on first use.
    fn stats(&self, tenant: &str, scope: &str, filter: &str) -> Stats {
        let mut all = self.stats.lock();
        all.entry((tenant.to_owned(), scope.to_owned(), filter.to_owned()))
            .or_insert_with(|| {
                let labels = FilterLabels {
                    tenant: tenant.to_owned(),
                    scope: scope.to_owned(),
                    filter: filter.to_owned(),
                };
                Stats::new(|count| match count {
                    Count::Requests => self.metrics.requests.get_or_create(&labels).clone(),
                    Count::LocalResponses => {
                        self.metrics.local_responses.get_or_create(&labels).clone()
                    }
                    Count::Failures(kind) => self
                        .metrics
                        .failures
                        .get_or_create(&FailureLabels {
                            tenant: labels.tenant.clone(),
                            scope: labels.scope.clone(),
                            filter: labels.filter.clone(),
                            reason: kind.as_str().to_owned(),
                        })
                        .clone(),
                })
            })
            .clone()
    }

    /// Every counted filter of `tenant`.
    pub fn counts(&self, tenant: &str) -> Vec<FilterCounter> {
        let mut counts: Vec<FilterCounter> = self
            .stats
            .lock()
            .iter()
            .filter(|((t, _, _), _)| t == tenant)
            .map(|((_, scope, filter), stats)| FilterCounter {
                scope: scope.clone(),
                filter: filter.clone(),
                requests: stats.requests.get(),
                local_responses: stats.local_responses.get(),
                failures: FailureKind::ALL
                    .into_iter()
                    .map(|kind| (kind.as_str().to_owned(), stats.failures(kind)))
                    .collect(),
                last_failure: stats.last_failure(),
            })
            .collect();
        counts.sort_by(|a, b| (&a.scope, &a.filter).cmp(&(&b.scope, &b.filter)));
        counts
    }
}

impl autoglm_contract::FilterCounters for Filters {
    fn filter_counters(&self, tenant: &str) -> Option<Vec<FilterCounter>> {
        Some(self.counts(tenant))
    }
}
