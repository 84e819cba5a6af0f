//! Settings readers: a key's live version handed to a callback at once and
//! after each change of it.

use std::sync::Arc;

use autoglm_store::{Store, config};

use crate::{Hub, Topic};

/// Calls `apply` with a key's live version (`None` when it is absent or
/// deleted) at once and after every change of it, for as long as the task
/// runs. `environment` `None` follows the tenant's default environment.
/// Settings readers use it: a change reaches them within one commit.
pub async fn follow(
    hub: Arc<Hub>,
    store: Arc<Store>,
    tenant: String,
    environment: Option<String>,
    group: String,
    key: String,
    mut apply: impl FnMut(Option<autoglm_core::config::ConfigVersion>) + Send + 'static,
) {
    let listener = hub.listener();
    let mut listening: Option<String> = None;
    let mut applied: Option<(String, String)> = None;
    loop {
        let read = {
            let (store, tenant, environment, group, key) = (
                store.clone(),
                tenant.clone(),
                environment.clone(),
                group.clone(),
                key.clone(),
            );
            tokio::task::spawn_blocking(move || {
                store.read(|c| {
                    let environment = match environment {
                        Some(e) => e,
                        None => config::default_environment(c, &tenant)?,
                    };
                    let at = config::KeyPath {
                        tenant: &tenant,
                        environment: &environment,
                        group: &group,
                        key: &key,
                    };
                    Ok((environment.clone(), config::current(c, at)?))
                })
            })
            .await
        };
        match read {
            Ok(Ok((environment, now))) => {
                if listening.as_ref() != Some(&environment) {
                    listener.listen(Topic::key(&tenant, &environment, &group, &key));
                    listening = Some(environment);
                    // Read again: a change before listening began is seen.
                    continue;
                }
                let live = now.filter(|v| !v.deleted);
                let seen = (
                    environment,
                    live.as_ref().map(|v| v.md5.clone()).unwrap_or_default(),
                );
                if applied.as_ref() != Some(&seen) {
                    apply(live);
                    applied = Some(seen);
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, %key, "cannot read a followed config key; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            Err(_) => return,
        }
        listener.changed().await;
    }
}
