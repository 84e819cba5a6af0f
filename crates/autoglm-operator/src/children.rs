//! The kinds a ModelService owns, and the operator's cache of them: one
//! reflector store per kind, fed by the same watches that trigger
//! reconciles. A reconcile reads children only from these stores, so a
//! resync with nothing changed sends no request at all.

use std::sync::Arc;

use autoglm_render::ChildKind;
use futures_util::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

/// The API of `kind` in `namespace`, for applies and deletes of rendered JSON.
pub fn dynamic_api(client: &Client, namespace: &str, kind: ChildKind) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &kind.api_resource())
}

/// A watch stream of the operator's children of one kind, for the controller.
pub type ChildStream<K> = std::pin::Pin<Box<dyn Stream<Item = Result<K, watcher::Error>> + Send>>;

/// Read-only views of every child the operator manages, by kind.
#[derive(Clone)]
pub struct Children {
    config_maps: Store<ConfigMap>,
    services: Store<Service>,
    /// The Deployments, read for status too.
    pub deployments: Store<Deployment>,
    /// The StatefulSets, read for status too.
    pub stateful_sets: Store<StatefulSet>,
    pdbs: Store<PodDisruptionBudget>,
    hpas: Store<HorizontalPodAutoscaler>,
    ingresses: Store<Ingress>,
    /// True once every store holds its first complete list.
    ready: tokio::sync::watch::Receiver<bool>,
}

/// The streams that fill [`Children`]; the controller must poll them.
pub struct ChildStreams {
    pub config_maps: ChildStream<ConfigMap>,
    pub services: ChildStream<Service>,
    pub deployments: ChildStream<Deployment>,
    pub stateful_sets: ChildStream<StatefulSet>,
    pub pdbs: ChildStream<PodDisruptionBudget>,
    pub hpas: ChildStream<HorizontalPodAutoscaler>,
    pub ingresses: ChildStream<Ingress>,
}

/// A watch of `K` in `namespaces` (all when empty): one namespace is watched
/// alone; several are watched cluster-wide and the others' events dropped.
pub fn scoped_watch<K>(
    client: &Client,
    namespaces: &[String],
    config: watcher::Config,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + use<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + 'static,
{
    let api = match namespaces {
        [one] => Api::<K>::namespaced(client.clone(), one),
        _ => Api::<K>::all(client.clone()),
    };
    let only = (namespaces.len() > 1).then(|| namespaces.to_vec());
    watcher(api, config).filter(move |event| {
        let keep = match (&only, event) {
            (
                Some(only),
                Ok(
                    watcher::Event::Apply(o)
                    | watcher::Event::Delete(o)
                    | watcher::Event::InitApply(o),
                ),
            ) => o.namespace().is_some_and(|ns| only.contains(&ns)),
            _ => true,
        };
        std::future::ready(keep)
    })
}

fn reflect<K>(client: &Client, namespaces: &[String], selector: &str) -> (Store<K>, ChildStream<K>)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = scoped_watch(
        client,
        namespaces,
        watcher::Config::default().labels(selector),
    )
    .default_backoff()
    // managedFields are most of an applied object's bytes and nothing here reads them.
    .modify(|object: &mut K| object.managed_fields_mut().clear())
    .reflect(writer)
    .applied_objects()
    .boxed();
    (reader, stream)
}

impl Children {
    /// Stores of everything labelled `selector` in `namespaces` (all when
    /// empty), and the streams that fill them.
    pub fn watch(
        client: &Client,
        namespaces: &[String],
        selector: &str,
    ) -> (Children, ChildStreams) {
        let (config_maps, config_map_stream) = reflect(client, namespaces, selector);
        let (services, service_stream) = reflect(client, namespaces, selector);
        let (deployments, deployment_stream) = reflect(client, namespaces, selector);
        let (stateful_sets, stateful_set_stream) = reflect(client, namespaces, selector);
        let (pdbs, pdb_stream) = reflect(client, namespaces, selector);
        let (hpas, hpa_stream) = reflect(client, namespaces, selector);
        let (ingresses, ingress_stream) = reflect(client, namespaces, selector);
        let (ready_tx, ready) = tokio::sync::watch::channel(false);
        let stores = (
            config_maps.clone(),
            services.clone(),
            deployments.clone(),
            stateful_sets.clone(),
            pdbs.clone(),
            hpas.clone(),
            ingresses.clone(),
        );
        // A store's own wait wakes only one of several waiters, and every
        // reconcile started before the first lists would wait: one task waits
        // for them all, and reconciles wait on a channel any number can watch.
        tokio::spawn(async move {
            let (a, b, c, d, e, f, g) = stores;
            let waited = futures_util::join!(
                a.wait_until_ready(),
                b.wait_until_ready(),
                c.wait_until_ready(),
                d.wait_until_ready(),
                e.wait_until_ready(),
                f.wait_until_ready(),
                g.wait_until_ready(),
            );
            // A dropped writer means the controller stopped; reconciles end with it.
            if waited.0.is_ok() {
                let _ = ready_tx.send(true);
            }
        });
        (
            Children {
                config_maps,
                services,
                deployments,
                stateful_sets,
                pdbs,
                hpas,
                ingresses,
                ready,
            },
            ChildStreams {
                config_maps: config_map_stream,
                services: service_stream,
                deployments: deployment_stream,
                stateful_sets: stateful_set_stream,
                pdbs: pdb_stream,
                hpas: hpa_stream,
                ingresses: ingress_stream,
            },
        )
    }

    /// Waits until every store holds its first complete list.
    pub async fn ready(&self) {
        let _ = self.ready.clone().wait_for(|ready| *ready).await;
    }

    /// The metadata of the cached children of `kind` that `keep` accepts.
    pub fn metadata(&self, kind: ChildKind, keep: impl Fn(&ObjectMeta) -> bool) -> Vec<ObjectMeta> {
        fn pick<K: Resource<DynamicType = ()> + Clone>(
            store: &Store<K>,
            keep: impl Fn(&ObjectMeta) -> bool,
        ) -> Vec<ObjectMeta> {
            store
                .state()
                .iter()
                .filter(|o| keep(o.meta()))
                .map(|o| o.meta().clone())
                .collect()
        }
        match kind {
            ChildKind::ConfigMap => pick(&self.config_maps, keep),
            ChildKind::Service => pick(&self.services, keep),
            ChildKind::Deployment => pick(&self.deployments, keep),
            ChildKind::StatefulSet => pick(&self.stateful_sets, keep),
            ChildKind::PodDisruptionBudget => pick(&self.pdbs, keep),
            ChildKind::HorizontalPodAutoscaler => pick(&self.hpas, keep),
            ChildKind::Ingress => pick(&self.ingresses, keep),
        }
    }

    /// What a write to one child's desired state changes, as cached: its
    /// generation where it has one (so its controller's status updates do
    /// not count), else its resourceVersion; `None` when it is not there.
    pub fn fingerprint(&self, kind: ChildKind, namespace: &str, name: &str) -> Option<String> {
        fn get<K: Resource<DynamicType = ()> + Clone>(
            store: &Store<K>,
            namespace: &str,
            name: &str,
        ) -> Option<String> {
            store
                .get(&ObjectRef::new(name).within(namespace))
                .and_then(|o: Arc<K>| fingerprint(o.meta()))
        }
        match kind {
            ChildKind::ConfigMap => get(&self.config_maps, namespace, name),
            ChildKind::Service => get(&self.services, namespace, name),
            ChildKind::Deployment => get(&self.deployments, namespace, name),
            ChildKind::StatefulSet => get(&self.stateful_sets, namespace, name),
            ChildKind::PodDisruptionBudget => get(&self.pdbs, namespace, name),
            ChildKind::HorizontalPodAutoscaler => get(&self.hpas, namespace, name),
            ChildKind::Ingress => get(&self.ingresses, namespace, name),
        }
    }
}

/// See [`Children::fingerprint`].
pub fn fingerprint(meta: &ObjectMeta) -> Option<String> {
    match meta.generation {
        Some(generation) => Some(format!("g{generation}")),
        None => meta.resource_version.as_ref().map(|rv| format!("r{rv}")),
    }
}
