//! The config center on Kubernetes: each environment's live keys as one
//! ConfigMap, `autoglm-config-ENV`, in the tenant's namespace (labelled as
//! the console's, its data server-side applied whole so a deleted key goes),
//! updated as publishes commit. Pods mount or read it like any ConfigMap.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use autoglm_config::Hub;
use autoglm_core::config::{config_map_name, data_key};
use autoglm_store::{Store, StoreError, config};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::platform::FIELD_MANAGER;

/// Keeps the ConfigMaps in step with the config center until the hub goes.
pub async fn run(client: Client, store: Arc<Store>, hub: Arc<Hub>) {
    let mut moved = hub.subscribe();
    // Everything once at start; then what each round of commits touched.
    let mut synced: Option<u64> = None;
    loop {
        moved.borrow_and_update();
        let now = hub.revision();
        let due: Option<BTreeSet<(String, String)>> = synced.and_then(|from| {
            hub.all_after(from).map(|changes| {
                changes
                    .into_iter()
                    .map(|(t, c)| (t, c.environment))
                    .collect()
            })
        });
        let due = match due {
            Some(due) => due,
            None => match every_environment(&store).await {
                Ok(all) => all,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list environments for their ConfigMaps");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            },
        };
        let mut failed = false;
        for (tenant, environment) in due {
            if let Err(e) = apply(&client, &store, &tenant, &environment).await {
                tracing::warn!(%tenant, %environment, error = %e, "ConfigMap not applied; retrying");
                failed = true;
            }
        }
        if failed {
            // A whole pass again after a pause: the API server may be back.
            synced = None;
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        }
        synced = Some(now);
        if moved.changed().await.is_err() {
            return;
        }
    }
}

async fn every_environment(store: &Arc<Store>) -> Result<BTreeSet<(String, String)>, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        store.read(|c| Ok(config::all_environments(c)?.into_iter().collect()))
    })
    .await
    .map_err(|e| StoreError::rejected(autoglm_core::error::ErrorCode::Internal, e.to_string()))?
}

async fn apply(
    client: &Client,
    store: &Arc<Store>,
    tenant: &str,
    environment: &str,
) -> Result<(), String> {
    let keys = {
        let (store, tenant, environment) =
            (store.clone(), tenant.to_owned(), environment.to_owned());
        tokio::task::spawn_blocking(move || {
            store.read(|c| config::live_keys(c, &tenant, &environment, None))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
    };
    let data: BTreeMap<String, String> = keys
        .iter()
        .map(|v| (data_key(&v.group, &v.key), v.content.clone()))
        .collect();
    crate::tenants::apply_namespace(client, tenant)
        .await
        .map_err(|e| format!("namespace {tenant}: {e}"))?;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), tenant);
    let name = config_map_name(environment);
    maps.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": tenant, "labels": {
                "app.kubernetes.io/managed-by": FIELD_MANAGER,
                "autoglm.io/config-environment": environment,
            }},
            "data": data,
        })),
    )
    .await
    .map_err(|e| format!("ConfigMap {tenant}/{name}: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_are_valid_configmap_keys() {
        assert_eq!(
            data_key("DEFAULT_GROUP", "app.yaml"),
            "DEFAULT_GROUP.app.yaml"
        );
        assert_eq!(data_key("g", "a:b"), "g.a_b");
        assert_eq!(config_map_name("prod"), "autoglm-config-prod");
    }
}
