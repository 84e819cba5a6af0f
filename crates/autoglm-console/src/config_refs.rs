//! Rolls the services that reference a config key (`spec.configRef`) when
//! the key changes: each commit's keys are looked up among the services'
//! references and the platform is told, as after a write of the service
//! itself, so it re-plans them with the new content (one replica at a time
//! locally, pods rolled through their checksum annotation on Kubernetes).

use std::collections::BTreeSet;

use autoglm_store::config_refs;

use crate::AppState;

/// Follows the config hub until it goes.
pub async fn roll_referrers(state: AppState) {
    let hub = state.config.clone();
    let mut moved = hub.subscribe();
    let mut seen = hub.revision();
    loop {
        if moved.changed().await.is_err() {
            return;
        }
        let now = hub.revision();
        // `None`: more changed than the hub remembers; every referrer rolls
        // (a replica whose content did not change keeps running).
        let keys: Option<BTreeSet<(String, String, String, String)>> =
            hub.all_after(seen).map(|changes| {
                changes
                    .into_iter()
                    .map(|(tenant, c)| (tenant, c.environment, c.group, c.key))
                    .collect()
            });
        seen = now;
        let store = state.store.clone();
        let due = tokio::task::spawn_blocking(move || {
            store.read(|c| match keys {
                None => config_refs::all_referrers(c),
                Some(keys) => {
                    let mut due = BTreeSet::new();
                    for (tenant, environment, group, key) in keys {
                        for name in config_refs::referrers(c, &tenant, &environment, &group, &key)?
                        {
                            due.insert((tenant.clone(), name));
                        }
                    }
                    Ok(due.into_iter().collect())
                }
            })
        })
        .await;
        match due {
            Ok(Ok(due)) => {
                for (tenant, name) in due {
                    tracing::info!(%tenant, service = %name, "its config changed; rolling it");
                    state.platform.changed(&tenant, &name);
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot find the services a config change rolls")
            }
            Err(_) => return,
        }
    }
}
