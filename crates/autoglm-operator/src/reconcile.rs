//! One reconcile of one ModelService, and the controller that runs it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autoglm_core::service::{
    API_VERSION, Condition, ConditionStatus, KIND, ModelServiceManifest, ModelServiceStatus,
    ObjectMeta as ManifestMeta, RESTARTED_AT_ANNOTATION, VersionStatus,
};
use autoglm_render::{RenderOptions, render};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::object::ModelServiceObject;

/// The one field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "autoglm-operator";

/// The kinds a ModelService may have as children: (group, version, kind, plural).
const CHILD_KINDS: [(&str, &str, &str, &str); 7] = [
    ("", "v1", "ConfigMap", "configmaps"),
    ("", "v1", "Service", "services"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
    ),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
    ("networking.k8s.io", "v1", "Ingress", "ingresses"),
];

/// Why a reconcile failed; it is retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or could not be reached.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A rendered object of a kind the operator does not manage (a bug).
    #[error("rendered an object of unmanaged kind {0}")]
    UnknownKind(String),
}

/// The operator's state shared by every reconcile.
pub struct Operator {
    client: Client,
    options: RenderOptions,
    /// Per child, the resourceVersion of the operator's last apply and what it applied.
    applied: Mutex<HashMap<String, (String, Value)>>,
    writes: AtomicU64,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("options", &self.options)
            .field("writes", &self.writes)
            .finish_non_exhaustive()
    }
}

impl Operator {
    /// An operator rendering with `options` (its `owner` is set per service).
    pub fn new(client: Client, options: RenderOptions) -> Operator {
        Operator {
            client,
            options,
            applied: Mutex::new(HashMap::new()),
            writes: AtomicU64::new(0),
        }
    }

    /// Writes to the API server so far: applies, deletes and status patches.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn api_for(
        &self,
        namespace: &str,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
    ) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        Api::namespaced_with(
            self.client.clone(),
            namespace,
            &ApiResource::from_gvk_with_plural(&gvk, plural),
        )
    }

    async fn apply(&self, namespace: &str, child: &Value) -> Result<(), Error> {
        let kind = child["kind"].as_str().unwrap_or_default();
        let name = child["metadata"]["name"].as_str().unwrap_or_default();
        let (group, version, _, plural) = CHILD_KINDS
            .iter()
            .find(|(_, _, k, _)| *k == kind)
            .ok_or_else(|| Error::UnknownKind(kind.to_owned()))?;
        let api = self.api_for(namespace, group, version, kind, plural);
        let key = format!("{kind}/{namespace}/{name}");
        let last = self
            .applied
            .lock()
            .expect("applied lock")
            .get(&key)
            .cloned();
        if let Some((resource_version, applied)) = last
            && &applied == child
            && let Some(live) = api.get_opt(name).await?
            && live.metadata.resource_version.as_deref() == Some(resource_version.as_str())
        {
            return Ok(());
        }
        let result = api
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(child),
            )
            .await?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.applied.lock().expect("applied lock").insert(
            key,
            (
                result.metadata.resource_version.unwrap_or_default(),
                child.clone(),
            ),
        );
        Ok(())
    }

    /// Deletes the service's children that the rendering no longer has (a
    /// version taken out of the split, an Ingress removed).
    async fn prune(&self, namespace: &str, service: &str, children: &[Value]) -> Result<(), Error> {
        let keep: BTreeSet<(String, String)> = children
            .iter()
            .map(|c| {
                (
                    c["kind"].as_str().unwrap_or_default().to_owned(),
                    c["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        let selector = format!(
            "{}={service},app.kubernetes.io/managed-by={}",
            autoglm_render::MODEL_SERVICE_LABEL,
            autoglm_render::MANAGED_BY
        );
        for (group, version, kind, plural) in CHILD_KINDS {
            let api = self.api_for(namespace, group, version, kind, plural);
            for object in api
                .list_metadata(&ListParams::default().labels(&selector))
                .await?
            {
                let name = object.name_any();
                if !keep.contains(&(kind.to_owned(), name.clone())) {
                    api.delete(&name, &DeleteParams::background()).await?;
                    self.writes.fetch_add(1, Ordering::Relaxed);
                    self.applied
                        .lock()
                        .expect("applied lock")
                        .remove(&format!("{kind}/{namespace}/{name}"));
                }
            }
        }
        Ok(())
    }

    /// What the workloads report, as the ModelService's status.
    async fn observe(
        &self,
        ms: &ModelServiceObject,
        namespace: &str,
    ) -> Result<ModelServiceStatus, Error> {
        let name = ms.name_any();
        let mut versions = Vec::new();
        for v in &ms.spec.versions {
            let workload = format!("{name}-{}", v.version);
            let (replicas, ready) = if ms.spec.stateful.is_some() {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), namespace);
                api.get_opt(&workload).await?.map_or((0, 0), |s| {
                    let status = s.status.unwrap_or_default();
                    (status.replicas, status.ready_replicas.unwrap_or(0))
                })
            } else {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
                api.get_opt(&workload).await?.map_or((0, 0), |d| {
                    let status = d.status.unwrap_or_default();
                    (
                        status.replicas.unwrap_or(0),
                        status.ready_replicas.unwrap_or(0),
                    )
                })
            };
            versions.push(VersionStatus {
                version: v.version.clone(),
                weight: v.weight,
                replicas: replicas.max(0) as u32,
                ready_replicas: ready.max(0) as u32,
            });
        }
        let desired: u32 = versions.iter().map(|v| v.replicas).sum();
        let ready: u32 = versions.iter().map(|v| v.ready_replicas).sum();
        let serving = versions
            .iter()
            .filter(|v| v.weight > 0)
            .all(|v| v.ready_replicas > 0);
        let condition = if serving && ready == desired {
            condition(
                ConditionStatus::True,
                "AllReplicasReady",
                format!("{ready} of {desired} replicas ready"),
            )
        } else {
            condition(
                ConditionStatus::False,
                "ReplicasNotReady",
                format!("{ready} of {desired} replicas ready"),
            )
        };
        Ok(ModelServiceStatus {
            desired_replicas: desired,
            ready_replicas: ready,
            versions,
            replicas: Vec::new(),
            conditions: vec![condition],
            url: Some(format!("http://{name}.{namespace}.svc/v1")),
        })
    }

    async fn write_status(
        &self,
        ms: &ModelServiceObject,
        status: ModelServiceStatus,
    ) -> Result<(), Error> {
        if ms.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let api: Api<ModelServiceObject> =
            Api::namespaced(self.client.clone(), &ms.namespace().unwrap_or_default());
        api.patch_status(
            &ms.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn condition(status: ConditionStatus, reason: &str, message: String) -> Condition {
    Condition {
        type_: "Ready".to_owned(),
        status,
        reason: reason.to_owned(),
        message,
    }
}

async fn reconcile(ms: Arc<ModelServiceObject>, operator: Arc<Operator>) -> Result<Action, Error> {
    let namespace = ms.namespace().unwrap_or_else(|| "default".to_owned());
    let name = ms.name_any();
    let annotations = ms
        .annotations()
        .get(RESTARTED_AT_ANNOTATION)
        .map(|at| [(RESTARTED_AT_ANNOTATION.to_owned(), at.clone())].into())
        .unwrap_or_default();
    let manifest = ModelServiceManifest {
        api_version: API_VERSION.to_owned(),
        kind: KIND.to_owned(),
        metadata: ManifestMeta {
            name: name.clone(),
            namespace: Some(namespace.clone()),
            annotations,
            ..ManifestMeta::default()
        },
        spec: ms.spec.clone(),
        status: None,
    };
    let options = RenderOptions {
        owner: ms.controller_owner_ref(&()),
        ..operator.options.clone()
    };
    let children = match render(&manifest, &options) {
        Ok(children) => children,
        Err(e) => {
            let mut status = ms.status.clone().unwrap_or_default();
            status.conditions = vec![condition(
                ConditionStatus::False,
                "InvalidSpec",
                e.to_string(),
            )];
            operator.write_status(&ms, status).await?;
            return Ok(Action::await_change());
        }
    };
    for child in &children {
        operator.apply(&namespace, child).await?;
    }
    operator.prune(&namespace, &name, &children).await?;
    let status = operator.observe(&ms, &namespace).await?;
    operator.write_status(&ms, status).await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn error_policy(_: Arc<ModelServiceObject>, error: &Error, _: Arc<Operator>) -> Action {
    tracing::warn!(%error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controller over ModelServices in `namespace`, or in all, until
/// SIGINT or SIGTERM.
pub async fn run(operator: Arc<Operator>, namespace: Option<&str>) {
    let client = operator.client.clone();
    let services: Api<ModelServiceObject> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let owned = || watcher::Config::default().labels("app.kubernetes.io/managed-by=autoglm");
    Controller::new(services, watcher::Config::default())
        .owns(Api::<Deployment>::all(client.clone()), owned())
        .owns(Api::<StatefulSet>::all(client.clone()), owned())
        .owns(Api::<Service>::all(client.clone()), owned())
        .owns(Api::<ConfigMap>::all(client.clone()), owned())
        .owns(Api::<PodDisruptionBudget>::all(client.clone()), owned())
        .owns(Api::<HorizontalPodAutoscaler>::all(client.clone()), owned())
        .owns(Api::<Ingress>::all(client), owned())
        .shutdown_on_signal()
        .run(reconcile, error_policy, operator)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "controller");
            }
        })
        .await;
}
