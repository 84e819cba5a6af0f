//! The ModelService: which versions of a registry model to serve, with what
//! runtime, how many replicas, and how traffic is split between versions.
//!
//! One type serves the console API, the local platform and the Kubernetes CRD,
//! so it follows Kubernetes API conventions: camelCase fields, unknown fields
//! refused (a typo must not silently become a default), durations and
//! quantities as strings. Rules are in `validate`; all of them are pure.

mod balancing;
mod cluster;
mod config_ref;
mod manifest;
mod runtime;
mod status;
mod stored;
mod units;
mod validate;

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

pub use balancing::{BalancingStrategy, LoadBalancing, PrefixHash};
pub use cluster::{HpaMetrics, Ingress, Stateful};
pub use config_ref::{
    CONFIG_FILE_ENV, CONFIG_MD5_ANNOTATION, CONFIG_MD5_ENV, CONFIG_MOUNT_DIR, ConfigRef,
};
pub use manifest::{API_VERSION, KIND, ModelServiceManifest, ObjectMeta, check_type_meta};
pub use runtime::{
    BUILTIN_READY_PATH, BuiltinRuntime, CommandRuntime, ImageRuntime, PLACEHOLDERS,
    PlaceholderValues, Protocol, RuntimeSpec,
};
pub use status::{
    Condition, ConditionStatus, ModelServiceStatus, ReplicaState, ReplicaStatus, RolloutStatus,
    VersionStatus,
};
pub use stored::StoredService;
pub use units::{DurationError, QuantityError, parse_duration, parse_quantity};
pub use validate::{FieldError, MAX_REPLICAS, MAX_VERSIONS, ScaleError, to_problem};

/// The annotation that shows when a service was last restarted; set by the
/// server (as `kubectl rollout restart` sets its own), ignored on apply.
pub const RESTARTED_AT_ANNOTATION: &str = "autoglm.io/restartedAt";

/// Set by the local platform on the replicas it starts, to its own process
/// id: a built-in runtime whose parent is no longer that process exits.
pub const EXIT_WITH_PARENT_ENV: &str = "AUTOGLM_EXIT_WITH_PARENT";

/// How long an idle service scaled to zero waits before stopping its last replica.
pub const DEFAULT_SCALE_TO_ZERO_AFTER: Duration = Duration::from_secs(300);
/// How long load must stay low before scaling down, as the Kubernetes HPA default.
pub const DEFAULT_SCALE_DOWN_STABILIZATION: Duration = Duration::from_secs(300);

/// A ModelService as the console API takes and returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelService {
    /// DNS-1123 label, unique in the tenant (or namespace).
    pub name: String,
    /// What to serve and how.
    pub spec: ModelServiceSpec,
}

/// The body of `POST /api/v1/services/{name}/scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scale {
    /// Replicas per version, 0 to [`MAX_REPLICAS`]; sets `spec.replicas`.
    pub replicas: u32,
}

/// The desired state of a ModelService.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelServiceSpec {
    /// A model in the registry.
    pub model: String,
    /// The traffic split: weights sum to 100; weight 0 keeps a version warm without traffic.
    #[serde(default)]
    pub versions: Vec<VersionWeight>,
    /// How replicas run; the built-in engine when absent.
    #[serde(default)]
    pub runtime: RuntimeSpec,
    /// A fixed number of replicas per version; excludes `autoscaling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// A range of replicas per version, driven by in-flight requests; excludes `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// What each replica may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Extra environment variables of each replica.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// A config center key every replica reads as a file (its path in
    /// `AUTOGLM_CONFIG_FILE`); a change of it rolls the replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_ref: Option<ConfigRef>,
    /// Kubernetes only: a volume per replica, as a StatefulSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stateful: Option<Stateful>,
    /// Kubernetes only: an Ingress with this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Ingress>,
    /// How the gateway spreads each version's requests over its replicas;
    /// least outstanding when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancing: Option<LoadBalancing>,
    /// How a new version takes over: canary steps as Argo Rollouts spells
    /// them. Without it a new version takes its weight in one change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::rollout::RolloutSpec>,
    /// Gateway filters (uploaded proxy-wasm modules) run, in order, on
    /// each request to this service, after the tenant's own chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<crate::filter::FilterRef>,
}

/// One version of the traffic split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionWeight {
    /// The registry version, e.g. `"3"`.
    pub version: String,
    /// Percent of requests sent to it.
    pub weight: u32,
}

/// Request-driven autoscaling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Autoscaling {
    /// Fewest replicas; 0 scales to zero and the gateway holds requests while one starts. Default 1.
    #[serde(default = "one")]
    pub min_replicas: u32,
    /// Most replicas, 1 to [`MAX_REPLICAS`].
    pub max_replicas: u32,
    /// In-flight requests per replica to aim for.
    pub target_in_flight: u32,
    /// Idle time before the last replica stops, when `minReplicas` is 0; default 300s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_to_zero_after: Option<String>,
    /// How long load must stay low before scaling down; default 300s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_stabilization: Option<String>,
    /// Kubernetes only: resource and custom metrics for an HPA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa: Option<HpaMetrics>,
}

fn one() -> u32 {
    1
}

impl Autoscaling {
    /// `scaleToZeroAfter`, or its default.
    pub fn scale_to_zero_after(&self) -> Result<Duration, DurationError> {
        self.scale_to_zero_after
            .as_deref()
            .map_or(Ok(DEFAULT_SCALE_TO_ZERO_AFTER), parse_duration)
    }

    /// `scaleDownStabilization`, or its default.
    pub fn scale_down_stabilization(&self) -> Result<Duration, DurationError> {
        self.scale_down_stabilization
            .as_deref()
            .map_or(Ok(DEFAULT_SCALE_DOWN_STABILIZATION), parse_duration)
    }
}

/// Resources of each replica, as Kubernetes requests them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// CPU cores as a Kubernetes quantity: `"500m"`, `"2"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "quantity")]
    #[schemars(schema_with = "quantity_schema")]
    pub cpu: Option<String>,
    /// Memory as a Kubernetes quantity: `"512Mi"`, `"4Gi"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "quantity")]
    #[schemars(schema_with = "quantity_schema")]
    pub memory: Option<String>,
    /// Whole GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u32>,
}

/// An environment variable of each replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// A C identifier, not starting with `AUTOGLM_` (the platform's own).
    pub name: String,
    /// The value.
    #[serde(default)]
    pub value: String,
}

/// How many replicas each version may have, and how many to start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaBounds {
    /// Fewest.
    pub min: u32,
    /// Most.
    pub max: u32,
    /// How many to start.
    pub initial: u32,
}

impl ModelServiceSpec {
    /// The replica bounds of a valid spec: `replicas: n` is `n..=n`; autoscaling
    /// starts at least one replica even when it may scale to zero, so that a
    /// broken runtime shows up right after apply rather than at the first
    /// request; neither means one replica.
    pub fn replica_bounds(&self) -> ReplicaBounds {
        match (self.replicas, &self.autoscaling) {
            (Some(n), _) => ReplicaBounds {
                min: n,
                max: n,
                initial: n,
            },
            (None, Some(a)) => ReplicaBounds {
                min: a.min_replicas,
                max: a.max_replicas,
                initial: a.min_replicas.max(1).min(a.max_replicas),
            },
            (None, None) => ReplicaBounds {
                min: 1,
                max: 1,
                initial: 1,
            },
        }
    }

    /// The GPUs the service may hold at its most: per replica, times its
    /// most replicas per version, times its versions.
    pub fn gpus_at_most(&self) -> u64 {
        let per_replica = self.resources.as_ref().and_then(|r| r.gpu).unwrap_or(0);
        u64::from(per_replica)
            * u64::from(self.replica_bounds().max)
            * self.versions.len().max(1) as u64
    }
}

/// Takes a quantity written as a string or as a bare number, as YAML users
/// write `cpu: 2`, and keeps it as the string Kubernetes would.
fn quantity<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a quantity such as \"500m\", 2 or \"4Gi\"")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Visitor)
}

/// Kubernetes' int-or-string, so the CRD schema accepts `cpu: 2` too.
fn quantity_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": true
    })
}

#[cfg(test)]
mod tests;
