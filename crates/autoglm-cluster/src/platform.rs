//! The console's `ServicePlatform` on Kubernetes: every committed service
//! write is server-side applied as a ModelService in the tenant's namespace
//! (or deleted), and the status the console answers with is the one the
//! operator wrote on that object.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use autoglm_contract::{ServicePlatform, VersionEndpoints, Views};
use autoglm_core::quota::Holding;
use autoglm_core::service::{
    CONFIG_MD5_ANNOTATION, Condition, ConditionStatus, ModelServiceStatus, RESTARTED_AT_ANNOTATION,
};
use autoglm_render::ModelServiceObject;
use autoglm_store::{Store, StoreError, StoredService, config_refs};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store as Cache};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::views::watch_views;

/// The field manager of the console's writes, and its `managed-by` label.
pub const FIELD_MANAGER: &str = autoglm_render::CONSOLE_MANAGER;

/// Services written to Kubernetes and read back from it.
pub struct KubernetesPlatform {
    services: Cache<ModelServiceObject>,
    /// Services whose last write the API server refused, with its words.
    refused: Arc<Mutex<HashMap<(String, String), String>>>,
    views: watch::Receiver<Arc<Views>>,
    changes: mpsc::UnboundedSender<(String, String)>,
}

impl std::fmt::Debug for KubernetesPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesPlatform")
            .field("cached", &self.services.len())
            .finish_non_exhaustive()
    }
}

/// The ModelService the cluster should hold for `stored`: its spec, labels,
/// restart annotation and the md5 of its `configRef`'s live content (which
/// the operator copies onto the pods, so a change rolls them), marked as
/// the console's.
fn desired(tenant: &str, stored: &StoredService, config_md5: Option<&str>) -> Value {
    let meta = &stored.manifest.metadata;
    let mut labels = meta.labels.clone();
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        FIELD_MANAGER.to_owned(),
    );
    let annotations: BTreeMap<_, _> = meta
        .annotations
        .get(RESTARTED_AT_ANNOTATION)
        .map(|at| (RESTARTED_AT_ANNOTATION.to_owned(), at.clone()))
        .into_iter()
        .chain(config_md5.map(|md5| (CONFIG_MD5_ANNOTATION.to_owned(), md5.to_owned())))
        .collect();
    json!({
        "apiVersion": format!("{}/{}", autoglm_render::GROUP, autoglm_render::VERSION),
        "kind": autoglm_core::service::KIND,
        "metadata": {
            "name": meta.name,
            "namespace": tenant,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": stored.manifest.spec,
    })
}

/// Why a service could not be written to the cluster.
enum Failure {
    /// The API server answered no, in these words.
    Refused(String),
    /// It could not be asked (or the store could not be read): try again.
    Unreachable(String),
}

impl Failure {
    fn of(what: String, error: kube::Error) -> Failure {
        match error {
            kube::Error::Api(status)
                if (400..500).contains(&status.code) && ![409, 429].contains(&status.code) =>
            {
                Failure::Refused(status.message)
            }
            e => Failure::Unreachable(format!("{what}: {e}")),
        }
    }
}

/// Writes one service's current state to the cluster.
async fn sync(
    client: &Client,
    store: &Arc<Store>,
    tenant: &str,
    name: &str,
) -> Result<(), Failure> {
    let read = {
        let (store, tenant, name) = (store.clone(), tenant.to_owned(), name.to_owned());
        tokio::task::spawn_blocking(move || {
            let stored = store.service(&tenant, &name)?;
            let config = match &stored.manifest.spec.config_ref {
                Some(r) => store.read(|c| config_refs::referenced(c, &tenant, r))?,
                None => None,
            };
            Ok::<_, StoreError>((stored, config))
        })
        .await
        .map_err(|e| Failure::Unreachable(e.to_string()))?
    };
    let services: Api<ModelServiceObject> = Api::namespaced(client.clone(), tenant);
    match read {
        Ok((stored, config)) => {
            crate::tenants::apply_namespace(client, tenant)
                .await
                .map_err(|e| Failure::of(format!("namespace {tenant}"), e))?;
            services
                .patch(
                    name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(desired(
                        tenant,
                        &stored,
                        config.as_ref().map(|v| v.md5.as_str()),
                    )),
                )
                .await
                .map_err(|e| Failure::of(format!("ModelService {tenant}/{name}"), e))?;
        }
        Err(e) if e.is_not_found() => match services.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => {
                return Err(Failure::of(
                    format!("deleting ModelService {tenant}/{name}"),
                    e,
                ));
            }
        },
        Err(e) => {
            return Err(Failure::Unreachable(format!(
                "reading service {tenant}/{name}: {e}"
            )));
        }
    }
    Ok(())
}

/// Applies every change the console reports, one at a time, retrying a
/// failed one after a pause (the API server may be restarting).
async fn follow(
    client: Client,
    store: Arc<Store>,
    refused: Arc<Mutex<HashMap<(String, String), String>>>,
    retry: mpsc::UnboundedSender<(String, String)>,
    mut changes: mpsc::UnboundedReceiver<(String, String)>,
) {
    while let Some((tenant, name)) = changes.recv().await {
        let result = sync(&client, &store, &tenant, &name).await;
        let mut refusals = refused.lock();
        match result {
            Ok(()) => {
                refusals.remove(&(tenant, name));
            }
            // The API server said no (a CEL rule, admission): retrying will not help.
            Err(Failure::Refused(why)) => {
                tracing::warn!(service = %format!("{tenant}/{name}"), %why, "Kubernetes refused a service");
                refusals.insert((tenant, name), why);
            }
            Err(Failure::Unreachable(error)) => {
                drop(refusals);
                tracing::warn!(%error, "writing a service to Kubernetes failed; retrying");
                let retry = retry.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    let _ = retry.send((tenant, name));
                });
            }
        }
    }
}

/// Deletes the console's ModelServices that the store no longer has (gone
/// while the console was down), retrying the listing until it succeeds.
async fn delete_forgotten(
    client: Client,
    stored: Vec<(String, String)>,
    changes: mpsc::UnboundedSender<(String, String)>,
) {
    let api = Api::<ModelServiceObject>::all(client);
    let ours =
        ListParams::default().labels(&format!("app.kubernetes.io/managed-by={FIELD_MANAGER}"));
    loop {
        match api.list_metadata(&ours).await {
            Ok(list) => {
                for object in list {
                    let key = (object.namespace().unwrap_or_default(), object.name_any());
                    if !stored.contains(&key) {
                        let _ = changes.send(key);
                    }
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot list ModelServices yet; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// Why the cluster driver could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not list the services to write to the cluster.
    #[error("cannot read the services")]
    Read(#[from] autoglm_store::StoreError),
    /// The blocking read panicked.
    #[error("the read of the services panicked")]
    Panicked(#[from] tokio::task::JoinError),
}

impl KubernetesPlatform {
    /// Starts following the cluster, writes every stored service to it, and
    /// deletes the console's ModelServices that the store no longer has.
    pub async fn start(
        client: Client,
        store: Arc<Store>,
    ) -> Result<Arc<KubernetesPlatform>, StartError> {
        let (services, views) = watch_views(&client);
        let (tx, rx) = mpsc::unbounded_channel();
        let refused = Arc::default();
        tokio::spawn(follow(
            client.clone(),
            store.clone(),
            Arc::clone(&refused),
            tx.clone(),
            rx,
        ));
        let stored = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.all_service_names()).await??
        };
        // The cluster may be briefly unreachable (or the CRD not yet served):
        // the console starts anyway, and the deletions wait for the listing.
        tokio::spawn(delete_forgotten(client, stored.clone(), tx.clone()));
        for key in stored {
            let _ = tx.send(key);
        }
        Ok(Arc::new(KubernetesPlatform {
            services,
            refused,
            views,
            changes: tx,
        }))
    }

    /// Every service's view, for the gateway.
    pub fn watch(&self) -> watch::Receiver<Arc<Views>> {
        self.views.clone()
    }
}

impl ServicePlatform for KubernetesPlatform {
    fn status(&self, tenant: &str, service: &StoredService) -> Option<ModelServiceStatus> {
        let refused = self
            .refused
            .lock()
            .get(&(tenant.to_owned(), service.name().to_owned()))
            .cloned();
        if let Some(why) = refused {
            return Some(ModelServiceStatus::without_replicas(
                &service.manifest.spec,
                0,
                Condition::new("Ready", ConditionStatus::False, "KubernetesRefused", why),
            ));
        }
        let ms = self
            .services
            .get(&ObjectRef::new(service.name()).within(tenant))?;
        let mut status = ms.status.clone()?;
        // The operator counts Kubernetes' generations; the console's answer
        // counts its own. The operator has seen the console's latest when it
        // has seen the object's latest and that object holds the stored spec.
        let caught_up = status.observed_generation == ms.metadata.generation
            && ms.spec == service.manifest.spec;
        let generation = service.generation();
        status.observed_generation = Some(if caught_up {
            generation
        } else {
            generation - 1
        });
        // Likewise a restart: seen once the object carries its annotation.
        let restarted = |annotations: Option<&BTreeMap<String, String>>| {
            annotations.and_then(|a| a.get(RESTARTED_AT_ANNOTATION).cloned())
        };
        let restart_seen = restarted(ms.metadata.annotations.as_ref())
            == restarted(Some(&service.manifest.metadata.annotations));
        status.observed_restarts = Some(service.restarts - i64::from(!restart_seen));
        Some(status)
    }

    fn present(&self, tenant: &str, name: &str) -> bool {
        self.services
            .get(&ObjectRef::new(name).within(tenant))
            .is_some()
    }

    fn endpoints(&self, tenant: &str, name: &str) -> Vec<VersionEndpoints> {
        self.views
            .borrow()
            .get(&format!("{tenant}.{name}"))
            .map(|v| v.endpoints.clone())
            .unwrap_or_default()
    }

    fn changed(&self, tenant: &str, name: &str) {
        let _ = self.changes.send((tenant.to_owned(), name.to_owned()));
    }

    /// Replica logs live with the pods: `kubectl logs`.
    fn log_tail(&self, _: &str, _: &str, _: &str, _: u64) -> std::io::Result<Option<String>> {
        Ok(None)
    }

    /// The replicas the operator reports for the namespace's ModelServices,
    /// each holding what its spec requests.
    fn held(&self, tenant: &str) -> Holding {
        self.services
            .state()
            .iter()
            .filter(|s| s.namespace().as_deref() == Some(tenant))
            .map(|s| {
                let replicas: u32 = s
                    .status
                    .as_ref()
                    .map_or(0, |st| st.versions.iter().map(|v| v.replicas).sum());
                Holding::of_replica(s.spec.resources.as_ref()).times(u64::from(replicas))
            })
            .fold(Holding::default(), Holding::plus)
    }
}
