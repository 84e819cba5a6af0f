//! Tenants as namespaces: each tenant's namespace is kept with what the
//! cluster needs to judge and bound the tenant's workloads without asking
//! the console: the `autoglm-policies` ConfigMap (the policies that judge
//! the tenant's writes and its models' version stages, read by the
//! operator's admission webhook).
//!
//! Applied whole at start and again whenever a commit changes a tenant, a
//! policy or a version's stage (the store's tenancy version).

use std::sync::Arc;
use std::time::Duration;

use autoglm_policy::{CONFIG_MAP, LABEL, TenantPolicies};
use autoglm_store::{Store, StoreError};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::platform::FIELD_MANAGER;

/// How often the tenancy version is compared: a cheap atomic read.
const POLL: Duration = Duration::from_millis(250);

/// Creates (or keeps) the tenant's namespace, marked as the console's.
pub(crate) async fn apply_namespace(client: &Client, tenant: &str) -> Result<(), kube::Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            tenant,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": tenant},
            })),
        )
        .await
        .map(|_| ())
}

/// Keeps every tenant's namespace in step with the store until the task is
/// dropped.
pub async fn run(client: Client, store: Arc<Store>) {
    let mut applied: Option<u64> = None;
    loop {
        let version = store.tenancy_version();
        if applied != Some(version) {
            match apply_all(&client, &store).await {
                Ok(()) => applied = Some(version),
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
                name: tenant.name,
            })
        })
        .collect()
}

async fn apply_all(client: &Client, store: &Arc<Store>) -> Result<(), String> {
    let tenants = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || read_all(&store))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
    };
    for tenant in tenants {
        apply_namespace(client, &tenant.name)
            .await
            .map_err(|e| format!("namespace {}: {e}", tenant.name))?;
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &tenant.name);
        maps.patch(
            CONFIG_MAP,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": CONFIG_MAP, "namespace": tenant.name, "labels": {
                    "app.kubernetes.io/managed-by": FIELD_MANAGER,
                    LABEL: "true",
                }},
                "data": tenant.policies.to_data(),
            })),
        )
        .await
        .map_err(|e| format!("ConfigMap {}/{CONFIG_MAP}: {e}", tenant.name))?;
    }
    Ok(())
}
