//! A rendered child: one of the seven Kubernetes kinds a ModelService owns,
//! typed, so the operator reads its kind and name from the object itself
//! and the list of kinds it watches and prunes cannot drift from what
//! `render` produces.

use k8s_openapi::Resource as _;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube_core::{ApiResource, Resource};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// The kinds a ModelService may have as children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChildKind {
    /// The runtime's configuration.
    ConfigMap,
    /// A Service: the service-wide one, per version, or headless.
    Service,
    /// A stateless version's workload.
    Deployment,
    /// A stateful version's workload.
    StatefulSet,
    /// Keeps a version serving through node drains.
    PodDisruptionBudget,
    /// An autoscaled version's scaler.
    HorizontalPodAutoscaler,
    /// The service's way in from outside the cluster.
    Ingress,
}

impl ChildKind {
    /// Every kind, in the order `render` emits them first.
    pub const ALL: [ChildKind; 7] = [
        ChildKind::ConfigMap,
        ChildKind::Service,
        ChildKind::Deployment,
        ChildKind::StatefulSet,
        ChildKind::PodDisruptionBudget,
        ChildKind::HorizontalPodAutoscaler,
        ChildKind::Ingress,
    ];

    /// The kind as Kubernetes spells it (`Deployment`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChildKind::ConfigMap => ConfigMap::KIND,
            ChildKind::Service => Service::KIND,
            ChildKind::Deployment => Deployment::KIND,
            ChildKind::StatefulSet => StatefulSet::KIND,
            ChildKind::PodDisruptionBudget => PodDisruptionBudget::KIND,
            ChildKind::HorizontalPodAutoscaler => HorizontalPodAutoscaler::KIND,
            ChildKind::Ingress => Ingress::KIND,
        }
    }

    /// Group, version and plural, for a dynamic client of this kind.
    pub fn api_resource(self) -> ApiResource {
        match self {
            ChildKind::ConfigMap => ApiResource::erase::<ConfigMap>(&()),
            ChildKind::Service => ApiResource::erase::<Service>(&()),
            ChildKind::Deployment => ApiResource::erase::<Deployment>(&()),
            ChildKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
            ChildKind::PodDisruptionBudget => ApiResource::erase::<PodDisruptionBudget>(&()),
            ChildKind::HorizontalPodAutoscaler => {
                ApiResource::erase::<HorizontalPodAutoscaler>(&())
            }
            ChildKind::Ingress => ApiResource::erase::<Ingress>(&()),
        }
    }
}

impl std::fmt::Display for ChildKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object `render` produces.
#[derive(Debug, Clone, PartialEq)]
pub enum Child {
    /// See [`ChildKind::ConfigMap`].
    ConfigMap(ConfigMap),
    /// See [`ChildKind::Service`].
    Service(Service),
    /// See [`ChildKind::Deployment`].
    Deployment(Deployment),
    /// See [`ChildKind::StatefulSet`].
    StatefulSet(StatefulSet),
    /// See [`ChildKind::PodDisruptionBudget`].
    PodDisruptionBudget(PodDisruptionBudget),
    /// See [`ChildKind::HorizontalPodAutoscaler`].
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
    /// See [`ChildKind::Ingress`].
    Ingress(Ingress),
}

/// Applies `$body` to the object inside any [`Child`], whatever its type.
macro_rules! each {
    ($child:expr, $object:ident => $body:expr) => {
        match $child {
            Child::ConfigMap($object) => $body,
            Child::Service($object) => $body,
            Child::Deployment($object) => $body,
            Child::StatefulSet($object) => $body,
            Child::PodDisruptionBudget($object) => $body,
            Child::HorizontalPodAutoscaler($object) => $body,
            Child::Ingress($object) => $body,
        }
    };
}

impl Child {
    /// Its kind.
    pub fn kind(&self) -> ChildKind {
        match self {
            Child::ConfigMap(_) => ChildKind::ConfigMap,
            Child::Service(_) => ChildKind::Service,
            Child::Deployment(_) => ChildKind::Deployment,
            Child::StatefulSet(_) => ChildKind::StatefulSet,
            Child::PodDisruptionBudget(_) => ChildKind::PodDisruptionBudget,
            Child::HorizontalPodAutoscaler(_) => ChildKind::HorizontalPodAutoscaler,
            Child::Ingress(_) => ChildKind::Ingress,
        }
    }

    /// Its `metadata.name` (`render` names every child).
    pub fn name(&self) -> &str {
        each!(self, object => object.meta().name.as_deref().unwrap_or_default())
    }

    /// The object as the JSON a server-side apply sends, `apiVersion` and
    /// `kind` included.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("Kubernetes objects serialise to JSON")
    }
}

impl Serialize for Child {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        each!(self, object => object.serialize(serializer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_names_the_group_version_and_plural_the_server_serves() {
        let served: Vec<(String, String, String)> = ChildKind::ALL
            .iter()
            .map(|k| {
                let r = k.api_resource();
                assert_eq!(r.kind, k.as_str());
                (r.group, r.version, r.plural)
            })
            .collect();
        let expected = [
            ("", "v1", "configmaps"),
            ("", "v1", "services"),
            ("apps", "v1", "deployments"),
            ("apps", "v1", "statefulsets"),
            ("policy", "v1", "poddisruptionbudgets"),
            ("autoscaling", "v2", "horizontalpodautoscalers"),
            ("networking.k8s.io", "v1", "ingresses"),
        ]
        .map(|(g, v, p)| (g.to_owned(), v.to_owned(), p.to_owned()));
        assert_eq!(served, expected);
    }

    #[test]
    fn a_child_serialises_with_its_api_version_and_kind() {
        let child = Child::PodDisruptionBudget(PodDisruptionBudget {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("chat-v1".to_owned()),
                ..Default::default()
            },
            ..Default::default()
        });
        let value = child.to_value();
        assert_eq!(value["apiVersion"], "policy/v1");
        assert_eq!(value["kind"], "PodDisruptionBudget");
        assert_eq!(child.name(), "chat-v1");
        assert_eq!(child.kind(), ChildKind::PodDisruptionBudget);
    }
}
