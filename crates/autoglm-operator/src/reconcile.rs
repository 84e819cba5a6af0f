//! One reconcile of one ModelService, and the controller that runs it.

use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoglm_core::service::{
    API_VERSION, CONFIG_MD5_ANNOTATION, ConditionStatus, KIND, ModelServiceManifest,
    ModelServiceSpec, ModelServiceStatus, ObjectMeta as ManifestMeta, RESTARTED_AT_ANNOTATION,
};
use autoglm_render::{Child, ChildKind, RenderOptions, render};
use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::breakpoint::{Breakpoints, Step};
use crate::children::{Children, dynamic_api, fingerprint, scoped_watch};
use crate::lease::{Candidate, LeaseConfig};
use crate::metrics::{self, Metrics};
use crate::rollout;
use crate::status::{self, Workload};
use autoglm_prometheus::Prometheus;
use autoglm_render::ModelServiceObject;

/// The one field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "autoglm-operator";
/// The finalizer that makes a ModelService wait for its cleanup.
pub const FINALIZER: &str = "autoglm.io/cleanup";

/// Why a reconcile failed; it is retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or could not be reached.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Adding or removing the finalizer failed.
    #[error("{0}")]
    Finalizer(Box<finalizer::Error<Error>>),
}

/// Why the operator stopped before its shutdown signal.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The metrics address is taken or not allowed.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// What the bind said.
        #[source]
        source: std::io::Error,
    },
    /// Another instance holds the lease now and may already act.
    #[error("lost the leader lease")]
    LostLease,
}

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Watch only these namespaces; all when empty.
    pub namespaces: Vec<String>,
    /// How children are rendered (`owner` is set per service).
    pub render: RenderOptions,
    /// Compete for this lease before doing anything; no election when `None`.
    pub lease: Option<(String, LeaseConfig)>,
    /// Serve `/metrics`, `/healthz` and `/readyz` here.
    pub metrics_addr: Option<SocketAddr>,
    /// Who reports the events: the pod or host name.
    pub instance: String,
    /// How often every ModelService is reconciled with nothing changed.
    pub resync: Duration,
    /// Where rollouts' analyses query the gateways' metrics; without it a
    /// rollout's measurements find no data and it pauses.
    pub prometheus: Option<String>,
}

/// What every reconcile shares.
struct Context {
    client: Client,
    render: RenderOptions,
    resync: Duration,
    children: Children,
    /// Per child, the fingerprint its last apply returned and what it applied.
    applied: Mutex<HashMap<String, (String, Value)>>,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    breakpoints: Breakpoints,
    prometheus: Option<Prometheus>,
}

impl Context {
    /// Applies `child` unless the cache shows it exactly as last applied.
    /// Returns whether the object changed (an apply the server found to
    /// change nothing, as after a restart with an empty cache, did not).
    async fn apply(&self, namespace: &str, child: &Child) -> Result<bool, Error> {
        let (kind, name) = (child.kind(), child.name());
        let api = dynamic_api(&self.client, namespace, kind);
        let child = child.to_value();
        let key = format!("{kind}/{namespace}/{name}");
        let unchanged = self
            .applied
            .lock()
            .get(&key)
            .is_some_and(|(fingerprint, applied)| {
                applied == &child
                    && self.children.fingerprint(kind, namespace, name).as_ref()
                        == Some(fingerprint)
            });
        if unchanged {
            return Ok(false);
        }
        let before = self.children.fingerprint(kind, namespace, name);
        let result = api
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&child),
            )
            .await?;
        self.metrics.wrote("apply");
        tracing::debug!(child = %key, "applied");
        let after = fingerprint(&result.metadata);
        self.applied
            .lock()
            .insert(key, (after.clone().unwrap_or_default(), child));
        Ok(before != after)
    }

    /// Deletes the service's cached children that `keep` does not name.
    /// Returns what it deleted, as `Kind/name`.
    async fn prune(
        &self,
        namespace: &str,
        service: &str,
        keep: &BTreeSet<(ChildKind, String)>,
    ) -> Result<Vec<String>, Error> {
        let mut deleted = Vec::new();
        for kind in ChildKind::ALL {
            let doomed = self.children.metadata(kind, |meta: &ObjectMeta| {
                meta.namespace.as_deref() == Some(namespace)
                    && meta
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(autoglm_render::MODEL_SERVICE_LABEL))
                        == Some(&service.to_owned())
                    && !keep.contains(&(kind, meta.name.clone().unwrap_or_default()))
            });
            let api = dynamic_api(&self.client, namespace, kind);
            for meta in doomed {
                let name = meta.name.unwrap_or_default();
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    // The cache may lag a delete that already happened.
                    Err(kube::Error::Api(status)) if status.code == 404 => continue,
                    Err(e) => return Err(e.into()),
                }
                self.metrics.wrote("delete");
                self.applied
                    .lock()
                    .remove(&format!("{kind}/{namespace}/{name}"));
                deleted.push(format!("{kind}/{name}"));
            }
        }
        Ok(deleted)
    }

    /// The workload of each version, as cached.
    fn workloads(
        &self,
        ms: &ModelServiceObject,
        spec: &ModelServiceSpec,
        namespace: &str,
    ) -> Vec<Option<Workload>> {
        let name = ms.name_any();
        spec.versions
            .iter()
            .map(|v| {
                let workload = format!("{name}-{}", v.version);
                if ms.spec.stateful.is_some() {
                    self.children
                        .stateful_sets
                        .get(&ObjectRef::new(&workload).within(namespace))
                        .map(|s| Workload::of_stateful_set(&s))
                } else {
                    self.children
                        .deployments
                        .get(&ObjectRef::new(&workload).within(namespace))
                        .map(|d| Workload::of_deployment(&d))
                }
            })
            .collect()
    }

    /// Writes `status` (with transition times carried over) unless it is
    /// what the object already says; a condition that flipped is an event.
    async fn write_status(
        &self,
        ms: &ModelServiceObject,
        mut status: ModelServiceStatus,
    ) -> Result<(), Error> {
        let now = k8s_openapi::jiff::Timestamp::now()
            .round(k8s_openapi::jiff::Unit::Second)
            .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now())
            .to_string();
        status::stamp_transitions(&mut status, ms.status.as_ref(), &now);
        if ms.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let api: Api<ModelServiceObject> =
            Api::namespaced(self.client.clone(), &ms.namespace().unwrap_or_default());
        api.patch_status(
            &ms.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": format!("{}/{}", autoglm_render::GROUP, autoglm_render::VERSION),
                "kind": KIND,
                "status": status,
            })),
        )
        .await?;
        self.metrics.wrote("status");
        for (condition, before) in status.conditions.iter().map(|c| {
            let before = ms
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|p| p.type_ == c.type_))
                .map(|p| p.status);
            (c, before)
        }) {
            // Worth an event: turning Ready, leaving Ready, degrading, recovering.
            let (warning, worth) = match (condition.type_.as_str(), condition.status, before) {
                (_, now, Some(before)) if now == before => (false, false),
                ("Ready", ConditionStatus::True, _) => (false, true),
                ("Ready", _, Some(ConditionStatus::True)) => (true, true),
                ("Degraded", ConditionStatus::True, _) => (true, true),
                ("Degraded", _, Some(ConditionStatus::True)) => (false, true),
                _ => (false, false),
            };
            if worth {
                self.event(
                    ms,
                    warning,
                    &condition.reason,
                    "Observe",
                    condition.message.clone(),
                )
                .await;
            }
        }
        Ok(())
    }

    /// Publishes an event about `ms`; a failure to publish is only logged.
    async fn event(
        &self,
        ms: &ModelServiceObject,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(note.chars().take(1000).collect()),
            action: action.to_owned(),
            secondary: None,
        };
        match self.recorder.publish(&event, &ms.object_ref(&())).await {
            Ok(()) => self.metrics.wrote("event"),
            Err(error) => tracing::warn!(%error, "publishing an event"),
        }
    }
}

/// The manifest the renderer takes, from the object the API server holds.
fn manifest_of(
    ms: &ModelServiceObject,
    spec: &ModelServiceSpec,
    namespace: &str,
) -> ModelServiceManifest {
    // What the pods carry: a change of either rolls them.
    let annotations = [RESTARTED_AT_ANNOTATION, CONFIG_MD5_ANNOTATION]
        .into_iter()
        .filter_map(|name| {
            ms.annotations()
                .get(name)
                .map(|value| (name.to_owned(), value.clone()))
        })
        .collect();
    ModelServiceManifest {
        api_version: API_VERSION.to_owned(),
        kind: KIND.to_owned(),
        metadata: ManifestMeta {
            name: ms.name_any(),
            namespace: Some(namespace.to_owned()),
            annotations,
            ..ManifestMeta::default()
        },
        spec: spec.clone(),
        status: None,
    }
}

async fn apply_service(ms: &ModelServiceObject, ctx: &Context) -> Result<Action, Error> {
    let namespace = ms.namespace().unwrap_or_else(|| "default".to_owned());
    let name = ms.name_any();
    let generation = ms.metadata.generation;
    let options = RenderOptions {
        owner: ms.controller_owner_ref(&()),
        ..ctx.render.clone()
    };
    // A rollout renders the split it has reached, not the spec's end state.
    let stepped = rollout::step(ms, ctx.prometheus.as_ref()).await;
    let children = match render(&manifest_of(ms, &stepped.spec, &namespace), &options) {
        Ok(children) => children,
        Err(e) => {
            let invalid = status::invalid(ms.status.as_ref(), generation, e.to_string());
            if ms.status.as_ref().map(|s| &s.conditions) != Some(&invalid.conditions) {
                ctx.event(ms, true, "InvalidSpec", "Render", e.to_string())
                    .await;
            }
            ctx.write_status(ms, invalid).await?;
            return Ok(Action::await_change());
        }
    };
    ctx.breakpoints.reach(ms, Step::BeforeApply).await;
    let mut written = Vec::new();
    for child in &children {
        if ctx.apply(&namespace, child).await? {
            written.push(format!("{}/{}", child.kind(), child.name()));
        }
    }
    if !written.is_empty() {
        ctx.event(
            ms,
            false,
            "Applied",
            "Apply",
            format!("applied {}", written.join(", ")),
        )
        .await;
    }
    let keep = children
        .iter()
        .map(|c| (c.kind(), c.name().to_owned()))
        .collect();
    let pruned = ctx.prune(&namespace, &name, &keep).await?;
    if !pruned.is_empty() {
        ctx.event(
            ms,
            false,
            "Pruned",
            "Delete",
            format!("deleted {}", pruned.join(", ")),
        )
        .await;
    }
    let mut observed = status::observe(
        &stepped.spec,
        generation,
        &ctx.workloads(ms, &stepped.spec, &namespace),
        format!("http://{name}.{namespace}.svc/v1"),
    );
    observed.stable_version = stepped.stable;
    observed.rollout = stepped.state.as_ref().map(|r| r.summary());
    let before = ms.status.as_ref().and_then(|s| s.rollout_state.as_ref());
    if let Some(r) = &stepped.state
        && before.map(|b| (b.phase, b.step)) != Some((r.phase, r.step))
    {
        let warning = r.phase == autoglm_core::rollout::Phase::Degraded;
        let reason = format!("Rollout{:?}", r.phase);
        let note = format!(
            "version {} at {}% (step {}){}",
            r.canary,
            r.weight,
            r.step,
            if r.message.is_empty() {
                String::new()
            } else {
                format!(": {}", r.message)
            }
        );
        ctx.event(ms, warning, &reason, "Rollout", note).await;
    }
    observed.rollout_state = stepped.state;
    observed.rollout_command = stepped.command;
    if let Some((refused, words)) = stepped.command_outcome {
        let reason = if refused {
            "RolloutCommandRefused"
        } else {
            "RolloutCommand"
        };
        ctx.event(ms, refused, reason, "Rollout", words).await;
    }
    ctx.breakpoints.reach(ms, Step::BeforeStatus).await;
    ctx.write_status(ms, observed).await?;
    Ok(Action::requeue(stepped.due.map_or(ctx.resync, |due| {
        due.max(Duration::from_millis(100)).min(ctx.resync)
    })))
}

/// Deletes every child before the ModelService goes, so that nothing it
/// started outlives it even where no garbage collector runs, and forgets it.
async fn clean_up(ms: &ModelServiceObject, ctx: &Context) -> Result<Action, Error> {
    let namespace = ms.namespace().unwrap_or_else(|| "default".to_owned());
    let deleted = ctx
        .prune(&namespace, &ms.name_any(), &BTreeSet::new())
        .await?;
    ctx.event(
        ms,
        false,
        "Deleted",
        "Delete",
        if deleted.is_empty() {
            "no children left".to_owned()
        } else {
            format!("deleted {}", deleted.join(", "))
        },
    )
    .await;
    Ok(Action::await_change())
}

async fn reconcile(ms: Arc<ModelServiceObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.children.ready().await;
    ctx.breakpoints.reach(&ms, Step::Started).await;
    let started = Instant::now();
    let api: Api<ModelServiceObject> = Api::namespaced(
        ctx.client.clone(),
        &ms.namespace().unwrap_or_else(|| "default".to_owned()),
    );
    let has_finalizer = ms.finalizers().iter().any(|f| f == FINALIZER);
    let deleting = ms.meta().deletion_timestamp.is_some();
    let result = finalizer(&api, FINALIZER, ms.clone(), |event| async {
        match event {
            finalizer::Event::Apply(ms) => apply_service(&ms, &ctx).await,
            finalizer::Event::Cleanup(ms) => clean_up(&ms, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    if result.is_ok() && has_finalizer == deleting {
        ctx.metrics.wrote("finalizer");
    }
    ctx.metrics
        .reconciled(result.is_ok(), started.elapsed().as_secs_f64());
    if let Err(error) = &result {
        ctx.event(&ms, true, "ReconcileFailed", "Reconcile", error.to_string())
            .await;
    }
    ctx.breakpoints.reach(&ms, Step::Finished).await;
    result
}

fn error_policy(_: Arc<ModelServiceObject>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// The controller's backoff over all its watches together. Each watch backs
/// off on its own errors already; the controller's default would also pause
/// every watch after any one's error, growing to 30 s, so that after an API
/// server restart (a few errors from each of eight watches) reconciles
/// stalled for minutes.
struct EachStreamBacksOff;

impl Iterator for EachStreamBacksOff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl kube::runtime::utils::Backoff for EachStreamBacksOff {
    fn reset(&mut self) {}
}

/// Runs the operator until `shutdown` completes (`Ok`), or until it loses
/// the leader lease (`Err`: the process should exit and be restarted, as
/// every Kubernetes controller does, since another leader may already act).
/// On shutdown the reconciles under way finish first.
pub async fn run(
    client: Client,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    operate(client, settings, shutdown, Breakpoints::none()).await
}

/// [`run`], each reconcile reporting its steps to `breakpoints`.
#[cfg(feature = "test-hooks")]
pub async fn run_with_breakpoints(
    client: Client,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    breakpoints: Breakpoints,
) -> Result<(), RunError> {
    operate(client, settings, shutdown, breakpoints).await
}

async fn operate(
    client: Client,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    breakpoints: Breakpoints,
) -> Result<(), RunError> {
    // Awaited twice: while waiting for the lease, then by the controller.
    let shutdown = shutdown.shared();
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = settings.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Listen { addr, source })?;
        tokio::spawn(metrics::serve(listener, metrics.clone()));
    }
    let mut candidate = settings.lease.clone().map(|(namespace, config)| {
        Candidate::new(Api::<Lease>::namespaced(client.clone(), &namespace), config)
    });
    if let Some(candidate) = candidate.as_mut() {
        tracing::info!("waiting for the leader lease");
        tokio::select! {
            () = candidate.acquire() => {}
            () = shutdown.clone() => return Ok(()),
        }
        tracing::info!("leading");
    }
    metrics.set_leading(true);

    let selector = format!(
        "app.kubernetes.io/managed-by={}",
        autoglm_render::MANAGED_BY
    );
    let (children, streams) = Children::watch(&client, &settings.namespaces, &selector);
    let context = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.to_owned(),
                instance: Some(settings.instance.clone()),
            },
        ),
        client,
        render: settings.render.clone(),
        resync: settings.resync,
        children,
        applied: Mutex::new(HashMap::new()),
        metrics: metrics.clone(),
        breakpoints,
        prometheus: settings.prometheus.as_deref().map(Prometheus::new),
    });
    let (service_cache, service_writer) = reflector::store();
    let service_stream = scoped_watch::<ModelServiceObject>(
        &context.client,
        &settings.namespaces,
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(service_writer)
    .applied_objects();
    let controller = Controller::for_stream(service_stream, service_cache)
        .trigger_backoff(EachStreamBacksOff)
        .owns_stream(streams.config_maps)
        .owns_stream(streams.services)
        .owns_stream(streams.deployments)
        .owns_stream(streams.stateful_sets)
        .owns_stream(streams.pdbs)
        .owns_stream(streams.hpas)
        .owns_stream(streams.ingresses)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "controller");
            }
        });
    match candidate.as_mut() {
        None => {
            controller.await;
            Ok(())
        }
        Some(candidate) => {
            let lost = tokio::select! {
                () = controller => false,
                () = candidate.keep() => true,
            };
            metrics.set_leading(false);
            if lost {
                return Err(RunError::LostLease);
            }
            candidate.release().await;
            Ok(())
        }
    }
}
