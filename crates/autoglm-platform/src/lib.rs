//! The local platform: runs the replicas of model services as processes on
//! this machine.
//!
//! The console turns each ModelService into a [`ServicePlan`] (versions,
//! replica counts, how to launch a replica) and hands it to
//! [`LocalPlatform::apply`]. A reconciler per service starts replicas on free
//! loopback ports, checks their ready path (answered by the replica's own
//! process, not by another that holds its port: see [`listen`]), restarts them with exponential
//! backoff when they exit or stop answering, replaces them one ready replica
//! at a time when the launch changes, and publishes [`Views`]: the status the
//! console shows and the ready endpoints the gateway routes to.
//!
//! Files live under the platform's root: `SERVICE/REPLICA.log` (stdout and
//! stderr) and `SERVICE/REPLICA.pid`. A platform that starts stops whatever
//! an earlier, crashed run left behind (see [`procs`]), so no replica outlives
//! its platform by more than one restart. Once [`LocalPlatform::shutdown`]
//! has begun, [`LocalPlatform::apply`] starts nothing more, and a replica
//! whose task is dropped (the runtime ending under it) takes its whole
//! process group with it.

mod backoff;
mod ledger;
mod listen;
mod plan;
mod ports;
pub mod procs;
mod replica;
mod service;

use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use autoglm_contract::{ServiceView, Views};
use tokio::sync::watch;

pub use backoff::Backoff;
pub use ledger::Ledger;
pub use plan::{Launch, ServicePlan, VersionPlan};
use ports::Ports;
use service::ServiceRunner;

/// Timings of the local platform.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The first port handed to replicas (design.md: 9000).
    pub base_port: u16,
    /// How often a replica's ready path is checked.
    pub probe_interval: Duration,
    /// How long a stopping replica keeps running after it left the ready
    /// endpoints, before SIGTERM: requests routed by a table that still had
    /// it arrive to a live server (Kubernetes users add a preStop sleep for this).
    pub drain_delay: Duration,
    /// How long a stopping replica may drain before SIGKILL.
    pub grace: Duration,
    /// First restart delay.
    pub backoff_initial: Duration,
    /// Longest restart delay.
    pub backoff_max: Duration,
    /// A run this long resets the restart delay.
    pub backoff_forgive_after: Duration,
    /// How long a change may take to have every wanted replica of it ready
    /// before `Progressing` says `ProgressDeadlineExceeded` (Kubernetes'
    /// `progressDeadlineSeconds`, 600 s by default there too).
    pub progress_deadline: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            base_port: 9000,
            probe_interval: Duration::from_millis(500),
            drain_delay: Duration::from_secs(1),
            grace: Duration::from_secs(30),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            backoff_forgive_after: Duration::from_secs(60),
            progress_deadline: Duration::from_secs(600),
        }
    }
}

/// The local platform.
#[derive(Debug)]
pub struct LocalPlatform {
    root: PathBuf,
    settings: Settings,
    ports: Arc<Ports>,
    /// The running services; `None` once shutdown has begun, so a plan
    /// applied after it (an autoscaler's last scale-up) starts nothing.
    services: Mutex<Option<HashMap<String, ServiceRunner>>>,
    views: Arc<watch::Sender<Arc<Views>>>,
    ledger: Arc<Ledger>,
}

impl LocalPlatform {
    /// A platform keeping its files under `root`; first stops replicas that
    /// an earlier run recorded there and left running.
    pub fn start(root: PathBuf, settings: Settings) -> io::Result<LocalPlatform> {
        std::fs::create_dir_all(&root)?;
        let stopped = procs::sweep(&root, Duration::from_secs(5));
        if stopped > 0 {
            tracing::warn!(stopped, "stopped replicas an earlier run left behind");
        }
        Ok(LocalPlatform {
            ports: Arc::new(Ports::from(settings.base_port)),
            root,
            settings,
            services: Mutex::new(Some(HashMap::new())),
            views: Arc::new(watch::channel(Arc::new(Views::new())).0),
            ledger: Arc::default(),
        })
    }

    /// Runs `plan`: starts its service or moves it to the new plan. Refused
    /// once shutdown has begun.
    pub fn apply(&self, plan: ServicePlan) -> io::Result<()> {
        let mut services = self.services.lock();
        let Some(services) = services.as_mut() else {
            return Err(io::Error::other(format!(
                "the platform is shutting down; {} is not started",
                plan.name
            )));
        };
        if let Some(runner) = services.get(&plan.name) {
            runner.update(plan);
            return Ok(());
        }
        let dir = self.root.join(&plan.name);
        std::fs::create_dir_all(&dir)?;
        let name = plan.name.clone();
        let runner = ServiceRunner::start(
            plan,
            dir,
            self.ports.clone(),
            self.settings.clone(),
            self.views.clone(),
            self.ledger.clone(),
        );
        services.insert(name, runner);
        Ok(())
    }

    /// Stops every replica of `name` and waits until they are gone. Logs stay.
    pub async fn remove(&self, name: &str) {
        let runner = self.services.lock().as_mut().and_then(|s| s.remove(name));
        if let Some(runner) = runner {
            runner.remove().await;
        }
    }

    /// Replaces the tenants' quotas (a tenant left out has none): each
    /// replica starts only while its tenant's quotas have room for it.
    pub fn set_quotas(&self, limits: HashMap<String, autoglm_core::quota::QuotaLimits>) {
        self.ledger.set_limits(limits);
    }

    /// What `tenant`'s replicas hold now.
    pub fn held(&self, tenant: &str) -> autoglm_core::quota::Holding {
        self.ledger.held(tenant)
    }

    /// The current view of `name`.
    pub fn view(&self, name: &str) -> Option<ServiceView> {
        self.views.borrow().get(name).cloned()
    }

    /// Follows every service's view: the gateway's routing table.
    pub fn watch(&self) -> watch::Receiver<Arc<Views>> {
        self.views.subscribe()
    }

    /// The last `max_bytes` of a replica's log, or `None` when it has none.
    pub fn log_tail(
        &self,
        service: &str,
        replica: &str,
        max_bytes: u64,
    ) -> io::Result<Option<String>> {
        let Some(path) = self.log_path(service, replica) else {
            return Ok(None);
        };
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Where a replica's log is; names that could leave the root are refused.
    fn log_path(&self, service: &str, replica: &str) -> Option<PathBuf> {
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                && !s.starts_with('.')
        };
        (plain(service) && plain(replica))
            .then(|| self.root.join(service).join(format!("{replica}.log")))
    }

    /// Stops every service's replicas and waits until they are gone; from
    /// now on the platform starts nothing.
    pub async fn shutdown(&self) {
        let runners: Vec<ServiceRunner> = self
            .services
            .lock()
            .take()
            .into_iter()
            .flat_map(HashMap::into_values)
            .collect();
        for runner in runners {
            runner.remove().await;
        }
    }

    /// The platform's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }
}
