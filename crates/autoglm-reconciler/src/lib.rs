//! The reconciler of `autoglm up`: keeps the local platform running what the
//! store says.
//!
//! At start it plans every stored ModelService; afterwards the console tells
//! it (through [`ServicePlatform::changed`]) which service a committed write
//! touched, and it reads that service again and re-plans it: started,
//! changed, scaled, restarted or removed. Autoscaled versions get their
//! replica count from an [`Autoscaler`] fed by the gateway's [`Demand`],
//! sampled every 250 ms and at once when a request waits on a service at zero.

mod autoscale;
#[cfg(test)]
mod breakpoint;
mod plan;
#[cfg(test)]
mod tests;

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoglm_artifacts::ArtifactStore;
use autoglm_contract::{Demand, ServicePlatform};
use autoglm_core::config::ConfigVersion;
use autoglm_core::service::{Condition, ConditionStatus, ModelServiceStatus};
use autoglm_platform::LocalPlatform;
use autoglm_store::{Store, StoreError, StoredService, config_refs};
use tokio::sync::mpsc;

pub use autoscale::{Autoscaler, Policy};
pub use plan::{
    ConfigFile, Found, Launcher, Unschedulable, plan, platform_name, split_platform_name,
};

/// How often autoscaled services are sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// A service the reconciler runs, with what it needs to re-plan it.
#[derive(Debug)]
struct Reconciled {
    stored: StoredService,
    found: Found,
    scalers: HashMap<String, Autoscaler>,
}

/// Keeps the local platform in step with the store.
#[derive(Debug)]
pub struct Reconciler {
    store: Arc<Store>,
    artifacts: ArtifactStore,
    platform: Arc<LocalPlatform>,
    demand: Arc<Demand>,
    launcher: Launcher,
    url: Option<String>,
    changes: mpsc::UnboundedSender<(String, String)>,
    scheduled: Mutex<HashMap<String, Reconciled>>,
    refused: Mutex<HashMap<String, Unschedulable>>,
    removing: Mutex<HashSet<String>>,
    /// The store's tenancy version the platform's quotas were read at.
    quotas_at: Mutex<Option<u64>>,
    #[cfg(test)]
    breakpoints: breakpoint::Breakpoints,
}

impl Reconciler {
    /// Starts scheduling: plans every stored service, then follows changes
    /// and demand. `launcher` says how replicas start; `url` is where
    /// clients reach services (the gateway).
    pub fn start(
        store: Arc<Store>,
        artifacts: ArtifactStore,
        platform: Arc<LocalPlatform>,
        demand: Arc<Demand>,
        launcher: Launcher,
        url: Option<String>,
    ) -> Arc<Reconciler> {
        let (tx, rx) = mpsc::unbounded_channel();
        let reconciler = Arc::new(Reconciler {
            store,
            artifacts,
            platform,
            demand,
            launcher,
            url,
            changes: tx,
            scheduled: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
            removing: Mutex::new(HashSet::new()),
            quotas_at: Mutex::new(None),
            #[cfg(test)]
            breakpoints: breakpoint::Breakpoints::default(),
        });
        tokio::spawn(follow(
            Arc::downgrade(&reconciler),
            reconciler.demand.clone(),
            rx,
        ));
        reconciler
    }

    /// Hands the tenants' quotas to the platform when a commit changed
    /// them (or any tenant) since they were last read.
    pub async fn sync_quotas(&self) -> Result<(), StoreError> {
        let version = self.store.tenancy_version();
        if *self.quotas_at.lock() == Some(version) {
            return Ok(());
        }
        let store = self.store.clone();
        let quotas = tokio::task::spawn_blocking(move || store.all_quotas())
            .await
            .map_err(|_| StoreError::Poisoned)??;
        let limits = quotas
            .into_iter()
            // Quotas are checked when they are set: one that no longer
            // reads is left out rather than stopping every replica.
            .filter_map(|(tenant, quota)| Some((tenant, quota.limits().ok()?)))
            .collect();
        self.platform.set_quotas(limits);
        *self.quotas_at.lock() = Some(version);
        Ok(())
    }

    /// Plans every stored service of every tenant.
    pub async fn sync_all(&self) -> Result<usize, StoreError> {
        self.sync_quotas().await?;
        let store = self.store.clone();
        let all = tokio::task::spawn_blocking(move || store.all_service_names())
            .await
            .map_err(|_| StoreError::Poisoned)??;
        let count = all.len();
        for (tenant, name) in all {
            self.reload(&tenant, &name).await;
        }
        Ok(count)
    }

    /// Reads `tenant`'s service `name` from the store and applies it, or
    /// removes it when it is gone.
    async fn reload(&self, tenant: &str, name: &str) {
        if let Some(loaded) = self.read(tenant, name).await {
            self.settle(tenant, name, loaded).await;
        }
    }

    /// Reads `tenant`'s service `name` from the store; `None` when the read
    /// failed, which is logged.
    async fn read(&self, tenant: &str, name: &str) -> Option<Loaded> {
        let key = platform_name(tenant, name);
        let store = self.store.clone();
        let artifacts = self.artifacts.clone();
        let config_dir = self.launcher.config_dir.clone();
        let (t, n) = (tenant.to_owned(), name.to_owned());
        let read =
            tokio::task::spawn_blocking(move || load(&store, &artifacts, &config_dir, &t, &n))
                .await;
        match read {
            Ok(Ok(loaded)) => Some(loaded),
            Ok(Err(e)) => {
                tracing::error!(service = %key, error = %e, "cannot read a service to schedule it");
                None
            }
            Err(e) => {
                tracing::error!(service = %key, error = %e, "reading a service panicked");
                None
            }
        }
    }

    /// Applies what [`Reconciler::read`] found: the service, or its removal.
    async fn settle(&self, tenant: &str, name: &str, loaded: Loaded) {
        let key = platform_name(tenant, name);
        match loaded {
            Some((stored, found)) => {
                let now = Instant::now();
                let mut scheduled = self.scheduled.lock();
                let entry = scheduled.entry(key).or_insert_with(|| Reconciled {
                    stored: stored.clone(),
                    found: Found::default(),
                    scalers: HashMap::new(),
                });
                // A referenced key deleted under running replicas: they keep
                // the content they have (as pods keep a deleted ConfigMap's
                // files) until the key is published again.
                let same_ref =
                    stored.manifest.spec.config_ref == entry.stored.manifest.spec.config_ref;
                let config = match found.config {
                    None if same_ref && entry.found.config.is_some() => {
                        tracing::warn!(service = %name, "its configRef key is gone; replicas keep the content they have");
                        entry.found.config.take()
                    }
                    config => config,
                };
                entry.stored = stored;
                entry.found = Found { config, ..found };
                sync_scalers(entry, now);
                self.apply(tenant, entry);
            }
            None => {
                // Present until its replicas are gone, not only its view.
                self.removing.lock().insert(key.clone());
                self.scheduled.lock().remove(&key);
                self.refused.lock().remove(&key);
                self.platform.remove(&key).await;
                self.removing.lock().remove(&key);
            }
        }
    }

    /// Hands the service's current plan to the platform.
    fn apply(&self, tenant: &str, s: &Reconciled) {
        let key = platform_name(tenant, s.stored.name());
        let replicas = |version: &str| match s.scalers.get(version) {
            Some(a) => a.replicas(),
            None => s.stored.manifest.spec.replica_bounds().initial,
        };
        let mut refused = self.refused.lock();
        match plan(tenant, &s.stored, &s.found, &self.launcher, replicas) {
            Ok(p) => {
                refused.remove(&key);
                if let Err(e) = self.platform.apply(p) {
                    tracing::error!(service = %key, error = %e, "the platform cannot run a service");
                }
            }
            Err(why) => {
                tracing::warn!(service = %key, reason = why.reason, message = %why.message, "service cannot run here");
                refused.insert(key, why);
            }
        }
    }

    /// Samples demand once and re-plans each autoscaled service whose count moved.
    fn autoscale(&self, now: Instant) {
        let mut scheduled = self.scheduled.lock();
        for (key, s) in scheduled.iter_mut() {
            let mut moved = false;
            for (version, scaler) in s.scalers.iter_mut() {
                let before = scaler.replicas();
                let (in_flight, waiting) = self.demand.load(key, version);
                if scaler.observe(now, in_flight, waiting) != before {
                    tracing::info!(service = %key, %version, from = before, to = scaler.replicas(), in_flight, waiting, "autoscaling");
                    moved = true;
                }
            }
            if moved && let Some((tenant, _)) = split_platform_name(key) {
                self.apply(tenant, s);
            }
        }
    }
}

/// Why a service's plan inputs could not be read.
type LoadError = Box<dyn std::error::Error + Send + Sync>;

/// A service and what its plan needs, or `None` when it no longer exists.
type Loaded = Option<(StoredService, Found)>;

fn load(
    store: &Store,
    artifacts: &ArtifactStore,
    config_dir: &Path,
    tenant: &str,
    name: &str,
) -> Result<Loaded, LoadError> {
    let stored = match store.service(tenant, name) {
        Ok(s) => s,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let spec = &stored.manifest.spec;
    let mut dirs = BTreeMap::new();
    for v in &spec.versions {
        let Ok(number) = v.version.parse::<i64>() else {
            continue;
        };
        match store.version(tenant, &spec.model, number) {
            Ok(found) => {
                dirs.insert(v.version.clone(), artifacts.path_of(&found.storage_dir));
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let config = match &spec.config_ref {
        None => None,
        Some(r) => store
            .read(|c| config_refs::referenced(c, tenant, r))?
            .map(|v| write_config_file(config_dir, &v))
            .transpose()?,
    };
    Ok(Some((stored, Found { dirs, config })))
}

/// Writes a config version's content where replicas read it: one file per
/// content, named by its md5 (and the key's format), written once through
/// a temporary file, so a running replica's file never changes under it.
fn write_config_file(dir: &Path, v: &ConfigVersion) -> Result<ConfigFile, LoadError> {
    let path = dir.join(format!("{}.{}", v.md5, v.format.extension()));
    if !path.exists() {
        let io = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        std::fs::create_dir_all(dir).map_err(io)?;
        let partial = dir.join(format!(".{}.partial", v.md5));
        std::fs::write(&partial, &v.content).map_err(io)?;
        std::fs::rename(&partial, &path).map_err(io)?;
    }
    Ok(ConfigFile {
        path,
        md5: v.md5.clone(),
    })
}

/// Gives each version of an autoscaled service its autoscaler, and drops them otherwise.
fn sync_scalers(s: &mut Reconciled, now: Instant) {
    let spec = &s.stored.manifest.spec;
    let Some(policy) = spec.autoscaling.as_ref().and_then(|a| {
        Some(Policy {
            min: a.min_replicas,
            max: a.max_replicas,
            target_in_flight: a.target_in_flight,
            scale_down_stabilization: a.scale_down_stabilization().ok()?,
            scale_to_zero_after: a.scale_to_zero_after().ok()?,
        })
    }) else {
        s.scalers.clear();
        return;
    };
    let initial = spec.replica_bounds().initial;
    s.scalers
        .retain(|v, _| spec.versions.iter().any(|x| &x.version == v));
    for v in &spec.versions {
        s.scalers
            .entry(v.version.clone())
            .and_modify(|a| a.set_policy(policy))
            .or_insert_with(|| Autoscaler::new(policy, initial, now));
    }
}

/// What wakes the reconciler's loop.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trigger {
    /// The console committed a write that touched this service.
    Changed { tenant: String, name: String },
    /// [`SAMPLE_INTERVAL`] passed.
    Tick,
    /// A request waits on a service: sampled now rather than at the next tick.
    DemandWoken,
}

/// Applies changes as the console reports them, and samples demand.
async fn follow(
    reconciler: std::sync::Weak<Reconciler>,
    demand: Arc<Demand>,
    mut changes: mpsc::UnboundedReceiver<(String, String)>,
) {
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let trigger = tokio::select! {
            // The sender lives in the reconciler: `None` means it is gone.
            change = changes.recv() => match change {
                Some((tenant, name)) => Trigger::Changed { tenant, name },
                None => return,
            },
            _ = tick.tick() => Trigger::Tick,
            () = demand.woken() => Trigger::DemandWoken,
        };
        let Some(s) = reconciler.upgrade() else {
            return;
        };
        #[cfg(test)]
        s.breakpoints
            .reach(breakpoint::Phase::Woken(trigger.clone()))
            .await;
        match trigger {
            Trigger::Changed { tenant, name } => {
                // A quota changed just before would otherwise wait for a tick.
                if let Err(e) = s.sync_quotas().await {
                    tracing::warn!(error = %e, "cannot read the tenants' quotas");
                }
                if let Some(loaded) = s.read(&tenant, &name).await {
                    #[cfg(test)]
                    s.breakpoints.reach(breakpoint::Phase::BeforeApply).await;
                    s.settle(&tenant, &name, loaded).await;
                }
            }
            Trigger::Tick | Trigger::DemandWoken => {
                if let Err(e) = s.sync_quotas().await {
                    tracing::warn!(error = %e, "cannot read the tenants' quotas");
                }
                #[cfg(test)]
                s.breakpoints.reach(breakpoint::Phase::BeforeApply).await;
                s.autoscale(Instant::now());
            }
        }
        #[cfg(test)]
        s.breakpoints.reach(breakpoint::Phase::AfterApply).await;
    }
}

impl ServicePlatform for Reconciler {
    fn status(&self, tenant: &str, service: &StoredService) -> Option<ModelServiceStatus> {
        let key = platform_name(tenant, service.name());
        if let Some(why) = self.refused.lock().get(&key) {
            return Some(refused_status(service, why));
        }
        let mut status = self.platform.view(&key)?.status;
        status.url = self.url.clone();
        Some(status)
    }

    fn changed(&self, tenant: &str, name: &str) {
        let _ = self.changes.send((tenant.to_owned(), name.to_owned()));
    }

    fn present(&self, tenant: &str, name: &str) -> bool {
        let key = platform_name(tenant, name);
        self.scheduled.lock().contains_key(&key)
            || self.refused.lock().contains_key(&key)
            || self.removing.lock().contains(&key)
            || self.platform.view(&key).is_some()
    }

    fn endpoints(&self, tenant: &str, name: &str) -> Vec<autoglm_contract::VersionEndpoints> {
        self.platform
            .view(&platform_name(tenant, name))
            .map(|v| v.endpoints)
            .unwrap_or_default()
    }

    fn log_tail(
        &self,
        tenant: &str,
        service: &str,
        replica: &str,
        max_bytes: u64,
    ) -> std::io::Result<Option<String>> {
        let key = platform_name(tenant, service);
        // A replica id starts with its service's platform name.
        if !replica.starts_with(&format!("{key}-")) {
            return Ok(None);
        }
        self.platform.log_tail(&key, replica, max_bytes)
    }

    fn held(&self, tenant: &str) -> autoglm_core::quota::Holding {
        self.platform.held(tenant)
    }
}

/// The status of a service the local platform cannot run.
fn refused_status(service: &StoredService, why: &Unschedulable) -> ModelServiceStatus {
    ModelServiceStatus::without_replicas(
        &service.manifest.spec,
        0,
        Condition::new(
            "Ready",
            ConditionStatus::False,
            why.reason,
            why.message.clone(),
        ),
    )
}
