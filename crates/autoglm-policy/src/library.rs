//! The default policies (`policies/` in the repository), each opt-in per
//! tenant: the console lists them and a tenant adds the ones it wants as
//! its own policies, with its own parameters.

use serde::Serialize;
use serde_json::{Value, json};

/// One default policy.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LibraryPolicy {
    /// The name it is added under by default.
    pub name: &'static str,
    /// What it checks.
    pub description: &'static str,
    /// Its Rego (v1).
    pub rego: &'static str,
    /// Parameters to start from.
    pub parameters: Value,
}

/// Every default policy.
pub fn library() -> Vec<LibraryPolicy> {
    vec![
        LibraryPolicy {
            name: "resource-limits",
            description: "Every replica states the CPU and memory it may use.",
            rego: include_str!("../../../policies/resource_limits.rego"),
            parameters: json!({}),
        },
        LibraryPolicy {
            name: "required-labels",
            description: "Services carry the labels team and cost-center (or those named), matching their patterns.",
            rego: include_str!("../../../policies/required_labels.rego"),
            parameters: json!({"labels": ["team", "cost-center"], "patterns": {}}),
        },
        LibraryPolicy {
            name: "image-registries",
            description: "Container images come from an allowed registry.",
            rego: include_str!("../../../policies/image_registries.rego"),
            parameters: json!({"registries": ["ghcr.io/your-org"]}),
        },
        LibraryPolicy {
            name: "gpu-quota",
            description: "The tenant's services together hold at most maxGpus GPUs.",
            rego: include_str!("../../../policies/gpu_quota.rego"),
            parameters: json!({"maxGpus": 8}),
        },
        LibraryPolicy {
            name: "dev-replicas",
            description: "At most maxReplicas replicas per version in the dev environment.",
            rego: include_str!("../../../policies/dev_replicas.rego"),
            parameters: json!({"maxReplicas": 2}),
        },
        LibraryPolicy {
            name: "prod-traffic",
            description: "In prod only a production-stage version takes more than 50% of the traffic.",
            rego: include_str!("../../../policies/prod_traffic.rego"),
            parameters: json!({}),
        },
    ]
}
