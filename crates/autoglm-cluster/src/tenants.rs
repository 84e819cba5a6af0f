//! Tenants as namespaces: each tenant's namespace is kept with what the
//! cluster needs to judge and bound the tenant's workloads without asking
//! the console:
//!
//! - in autoglm's own namespace (`--system-namespace`, where tenants
//!   cannot write), the ConfigMap `policies-TENANT`: the policies that judge
//!   the tenant's writes and its models' version stages, read by the
//!   operator's admission webhook;
//! - the ResourceQuota `autoglm-quota`: the tenant's CPU, memory and GPU
//!   requests and pods, from its quota (deleted when it has none);
//! - the LimitRange `autoglm-defaults`: requests for containers that state
//!   none, so that a quota on requests never refuses a pod for lack of them;
//! - the NetworkPolicy `autoglm-isolation`: only autoglm's gateway and
//!   operator pods (`app.kubernetes.io/part-of: autoglm`, component
//!   `gateway` or `operator`) may reach the tenant's model servers.
//!
//! Applied whole at start and again whenever a commit changes a tenant, its
//! quota, a policy or a version's stage (the store's tenancy version).

use std::sync::Arc;
use std::time::Duration;

use autoglm_core::quota::Quota;
use autoglm_policy::{LABEL, TENANT_LABEL, TenantPolicies, config_map_name};
use autoglm_store::{Store, StoreError};
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::platform::FIELD_MANAGER;

/// How often the tenancy version is compared: a cheap atomic read.
const POLL: Duration = Duration::from_millis(250);

/// Creates (or keeps) the tenant's namespace, labelled `autoglm.io/tenant`:
/// the webhook refuses writes in it while it has no copy of the tenant's
/// policies.
pub(crate) async fn apply_namespace(client: &Client, tenant: &str) -> Result<(), kube::Error> {
    namespace(client, tenant, json!({TENANT_LABEL: tenant})).await
}

/// Creates (or keeps) namespace `name` with `labels`, as the console's.
async fn namespace(client: &Client, name: &str, labels: Value) -> Result<(), kube::Error> {
    Api::<Namespace>::all(client.clone())
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels},
            })),
        )
        .await
        .map(|_| ())
}

/// How often everything is applied again with nothing changed in the
/// store: an object edited or deleted in the cluster comes back.
const RESYNC: Duration = Duration::from_secs(300);

/// Keeps every tenant's namespace, and its policies' copy in `system`, in
/// step with the store until the task is dropped.
pub async fn run(client: Client, store: Arc<Store>, system: String) {
    let mut applied: Option<(u64, std::time::Instant)> = None;
    loop {
        let version = store.tenancy_version();
        let due = applied.is_none_or(|(at, when)| at != version || when.elapsed() > RESYNC);
        if due {
            match apply_all(&client, &store, &system).await {
                Ok(()) => applied = Some((version, std::time::Instant::now())),
                Err(e) => {
                    tracing::warn!(error = %e, "tenant namespaces not applied; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What one tenant's namespace should hold, read from the store.
struct TenantState {
    name: String,
    policies: TenantPolicies,
    quota: Quota,
}

/// The ResourceQuota's name in each tenant's namespace.
pub const RESOURCE_QUOTA: &str = "autoglm-quota";
/// The LimitRange's.
pub const LIMIT_RANGE: &str = "autoglm-defaults";
/// The NetworkPolicy's.
pub const NETWORK_POLICY: &str = "autoglm-isolation";
/// The GPUs a pod requests, as the renderer asks for them.
const GPU_REQUESTS: &str = "requests.nvidia.com/gpu";

/// The ResourceQuota's `spec.hard` for `quota`; `None` when it bounds none
/// of what a ResourceQuota can.
pub fn quota_hard(quota: &Quota) -> Option<Value> {
    let mut hard = serde_json::Map::new();
    if let Some(cpu) = &quota.cpu {
        hard.insert("requests.cpu".into(), json!(cpu));
    }
    if let Some(memory) = &quota.memory {
        hard.insert("requests.memory".into(), json!(memory));
    }
    if let Some(gpus) = quota.gpus {
        hard.insert(GPU_REQUESTS.into(), json!(gpus.to_string()));
    }
    if let Some(replicas) = quota.replicas {
        hard.insert("pods".into(), json!(replicas.to_string()));
    }
    (!hard.is_empty()).then_some(Value::Object(hard))
}

/// Requests for containers that state none, so that a quota on requests
/// never refuses a pod for lack of them.
fn limit_range(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "LimitRange",
        "metadata": {"name": LIMIT_RANGE, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}},
        "spec": {"limits": [{
            "type": "Container",
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
        }]},
    })
}

/// Only autoglm's gateway and operator may reach the tenant's model servers.
fn isolation(namespace: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": NETWORK_POLICY, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}},
        "spec": {
            // The model servers the operator renders, not every pod
            // that happens to run in the namespace.
            "podSelector": {"matchLabels": {"app.kubernetes.io/managed-by": autoglm_render::MANAGED_BY,
                                            "app.kubernetes.io/component": "model-server"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{
                "namespaceSelector": {},
                "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "autoglm"},
                    "matchExpressions": [{"key": "app.kubernetes.io/component",
                        "operator": "In", "values": ["gateway", "operator"]}]},
            }]}],
        },
    })
}

fn read_all(store: &Store) -> Result<Vec<TenantState>, StoreError> {
    store
        .list_tenants()?
        .into_iter()
        .map(|tenant| {
            let policies = autoglm_policy::parse_all(store.judging_policies(&tenant.name)?)
                .map_err(StoreError::Sync)?;
            Ok(TenantState {
                policies: TenantPolicies {
                    policies,
                    version_stages: store.all_version_stages(&tenant.name)?,
                },
                quota: store.tenant_quota(&tenant.name)?,
                name: tenant.name,
            })
        })
        .collect()
}

async fn apply_all(client: &Client, store: &Arc<Store>, system: &str) -> Result<(), String> {
    let tenants = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || read_all(&store))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
    };
    namespace(client, system, json!({}))
        .await
        .map_err(|e| format!("namespace {system}: {e}"))?;
    for tenant in tenants {
        apply_namespace(client, &tenant.name)
            .await
            .map_err(|e| format!("namespace {}: {e}", tenant.name))?;
        // The policies' copy lives where the tenant cannot write.
        let name = config_map_name(&tenant.name);
        let copy = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": system, "labels": {
                "app.kubernetes.io/managed-by": FIELD_MANAGER,
                LABEL: "true",
                TENANT_LABEL: tenant.name,
            }},
            "data": tenant.policies.to_data(),
        });
        apply(
            Api::<ConfigMap>::namespaced(client.clone(), system),
            &name,
            &copy,
        )
        .await
        .map_err(|e| format!("ConfigMap {system}/{name}: {e}"))?;
        apply_quota(client, &tenant.name, &tenant.quota).await?;
        let ns = &tenant.name;
        apply(
            Api::<LimitRange>::namespaced(client.clone(), ns),
            LIMIT_RANGE,
            &limit_range(ns),
        )
        .await
        .map_err(|e| format!("LimitRange {ns}/{LIMIT_RANGE}: {e}"))?;
        apply(
            Api::<NetworkPolicy>::namespaced(client.clone(), ns),
            NETWORK_POLICY,
            &isolation(ns),
        )
        .await
        .map_err(|e| format!("NetworkPolicy {ns}/{NETWORK_POLICY}: {e}"))?;
    }
    Ok(())
}

async fn apply<K>(api: Api<K>, name: &str, object: &Value) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map(|_| ())
}

/// The tenant's ResourceQuota as its quota says, or none.
async fn apply_quota(client: &Client, namespace: &str, quota: &Quota) -> Result<(), String> {
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), namespace);
    let what = |e| format!("ResourceQuota {namespace}/{RESOURCE_QUOTA}: {e}");
    match quota_hard(quota) {
        Some(hard) => apply(
            quotas,
            RESOURCE_QUOTA,
            &json!({
                "apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": RESOURCE_QUOTA, "namespace": namespace,
                             "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}},
                "spec": {"hard": hard},
            }),
        )
        .await
        .map_err(what),
        None => match quotas
            .delete(RESOURCE_QUOTA, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(what(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_becomes_the_resource_quota_of_requests_and_pods() {
        let quota = Quota {
            cpu: Some("8".into()),
            memory: Some("32Gi".into()),
            gpus: Some(2),
            replicas: Some(10),
            tokens_per_day: Some(1_000_000),
            tokens_per_month: None,
        };
        assert_eq!(
            quota_hard(&quota),
            Some(json!({"requests.cpu": "8", "requests.memory": "32Gi",
                        "requests.nvidia.com/gpu": "2", "pods": "10"}))
        );
        // Token quotas are the gateway's: no ResourceQuota for them alone.
        let tokens_only = Quota {
            tokens_per_day: Some(5),
            ..Quota::default()
        };
        assert_eq!(quota_hard(&tokens_only), None);
    }
}
