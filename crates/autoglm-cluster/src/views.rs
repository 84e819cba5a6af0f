//! The gateway's routing input on Kubernetes: every ModelService as a
//! `tenant.service` view (its namespace is its tenant), each version with its
//! weight and the ready addresses its Service's EndpointSlices list. While
//! the operator rolls a version out, the weights are the rollout's.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use autoglm_contract::{ServiceView, VersionEndpoints, Views};
use autoglm_core::rollout::cluster::sole_version;
use autoglm_core::service::VersionWeight;
use autoglm_render::ModelServiceObject;
use futures_util::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::{Notify, watch};

/// The label every EndpointSlice carries with its Service's name.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The views of `services`, with endpoints from `slices`. Pure.
pub fn build_views(services: &[Arc<ModelServiceObject>], slices: &[Arc<EndpointSlice>]) -> Views {
    // (namespace, Service name) → ready addresses.
    let mut ready: BTreeMap<(String, String), Vec<SocketAddr>> = BTreeMap::new();
    for slice in slices {
        let (Some(namespace), Some(service)) =
            (slice.namespace(), slice.labels().get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        let Some(port) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("http"))
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        let addresses = ready.entry((namespace, service.clone())).or_default();
        for endpoint in slice.endpoints.iter().flatten() {
            // Unset means ready, as the EndpointSlice API defines it.
            if endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            addresses.extend(
                endpoint
                    .addresses
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                    .map(|ip| SocketAddr::new(ip, port)),
            );
        }
    }
    services
        .iter()
        .filter_map(|ms| {
            let namespace = ms.namespace()?;
            let name = ms.name_any();
            let endpoints = routed_versions(ms)
                .iter()
                .map(|v| {
                    let key = (namespace.clone(), format!("{name}-{}", v.version));
                    let mut addresses = ready.get(&key).cloned().unwrap_or_default();
                    addresses.sort();
                    addresses.dedup();
                    VersionEndpoints {
                        version: v.version.clone(),
                        weight: v.weight,
                        ready: addresses,
                    }
                })
                .collect();
            let view = ServiceView {
                status: ms.status.clone().unwrap_or_default(),
                endpoints,
                balancing: ms.spec.load_balancing.clone().unwrap_or_default(),
                filters: ms.spec.filters.clone(),
            };
            Some((format!("{namespace}.{name}"), view))
        })
        .collect()
}

/// The split to route by: while the operator rolls the version the spec
/// wants out (or has rolled it back), the split its rollout reached, which
/// the status holds; else the spec's.
fn routed_versions(ms: &ModelServiceObject) -> Vec<VersionWeight> {
    let rolling = ms
        .status
        .as_ref()
        .and_then(|s| s.rollout_state.as_ref())
        .filter(|r| sole_version(&ms.spec) == Some(r.canary.as_str()));
    match rolling {
        Some(r) => r.split(),
        None => ms.spec.versions.clone(),
    }
}

/// Runs `stream` (a reflector) for ever, waking `changed` on every event.
fn follow<S>(stream: S, changed: Arc<Notify>)
where
    S: futures_util::Stream + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while stream.next().await.is_some() {
            changed.notify_one();
        }
    });
}

/// Watches every ModelService and the EndpointSlices of the Services autoglm
/// renders; returns the ModelService cache and the views, rebuilt (at most
/// every 100 ms) whenever either changes.
pub fn watch_views(client: &Client) -> (Store<ModelServiceObject>, watch::Receiver<Arc<Views>>) {
    let changed = Arc::new(Notify::new());
    let (services, services_writer) = reflector::store();
    follow(
        watcher(
            Api::<ModelServiceObject>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(services_writer),
        changed.clone(),
    );
    let (slices, slices_writer) = reflector::store();
    let selector = format!(
        "app.kubernetes.io/managed-by={}",
        autoglm_render::MANAGED_BY
    );
    follow(
        watcher(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default().labels(&selector),
        )
        .default_backoff()
        .reflect(slices_writer),
        changed.clone(),
    );
    let (tx, rx) = watch::channel(Arc::new(Views::new()));
    let (services_view, slices_view): (Store<ModelServiceObject>, Store<EndpointSlice>) =
        (services.clone(), slices);
    tokio::spawn(async move {
        loop {
            changed.notified().await;
            // Coalesce a burst of events (a rollout moves many) into one rebuild.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let views = build_views(&services_view.state(), &slices_view.state());
            tx.send_if_modified(|current| {
                if **current == views {
                    return false;
                }
                *current = Arc::new(views);
                true
            });
            if tx.is_closed() {
                return;
            }
        }
    });
    (services, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(namespace: &str, name: &str, weights: &[(&str, u32)]) -> Arc<ModelServiceObject> {
        let versions: Vec<_> = weights
            .iter()
            .map(|(v, w)| serde_json::json!({"version": v, "weight": w}))
            .collect();
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"model": "m", "versions": versions, "replicas": 1},
            }))
            .expect("ModelService"),
        )
    }

    fn slice(
        namespace: &str,
        service: &str,
        port_name: &str,
        endpoints: serde_json::Value,
    ) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("{service}-x"), "namespace": namespace,
                             "labels": {SERVICE_NAME_LABEL: service}},
                "addressType": "IPv4",
                "ports": [{"name": port_name, "port": 8080}],
                "endpoints": endpoints,
            }))
            .expect("EndpointSlice"),
        )
    }

    #[test]
    fn each_version_gets_the_ready_addresses_of_its_own_service() {
        let views = build_views(
            &[service("team", "chat", &[("1", 90), ("2", 10)])],
            &[
                slice(
                    "team",
                    "chat-1",
                    "http",
                    serde_json::json!([
                        {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                        {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
                        {"addresses": ["10.0.0.3"]},
                    ]),
                ),
                slice(
                    "team",
                    "chat-2",
                    "http",
                    serde_json::json!([{"addresses": ["10.0.0.9"]}]),
                ),
                // Another namespace's Service of the same name, and a slice without the http port.
                slice(
                    "other",
                    "chat-2",
                    "http",
                    serde_json::json!([{"addresses": ["10.9.9.9"]}]),
                ),
                slice(
                    "team",
                    "chat-2",
                    "metrics",
                    serde_json::json!([{"addresses": ["10.0.0.8"]}]),
                ),
            ],
        );
        let view = &views["team.chat"];
        let addresses = |i: usize| -> Vec<String> {
            view.endpoints[i]
                .ready
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            (view.endpoints[0].version.as_str(), view.endpoints[0].weight),
            ("1", 90)
        );
        assert_eq!(addresses(0), ["10.0.0.1:8080", "10.0.0.3:8080"]);
        assert_eq!(addresses(1), ["10.0.0.9:8080"]);
        assert_eq!(views.len(), 1);
    }

    #[test]
    fn a_rollout_the_operator_drives_routes_by_the_split_it_reached() {
        let mut ms = (*service("team", "chat", &[("2", 100)])).clone();
        let mut rollout = autoglm_core::rollout::Rollout::start("1", "2", chrono::Utc::now());
        rollout.weight = 30;
        ms.status = Some(autoglm_core::service::ModelServiceStatus {
            rollout_state: Some(rollout.clone()),
            ..Default::default()
        });
        let weights = |ms: &ModelServiceObject| -> Vec<(String, u32)> {
            build_views(&[Arc::new(ms.clone())], &[])["team.chat"]
                .endpoints
                .iter()
                .map(|e| (e.version.clone(), e.weight))
                .collect()
        };
        assert_eq!(weights(&ms), [("1".to_owned(), 70), ("2".to_owned(), 30)]);
        // Rolled back: all on the stable version, whatever the spec wants.
        rollout.phase = autoglm_core::rollout::Phase::Degraded;
        ms.status.as_mut().expect("a status").rollout_state = Some(rollout);
        assert_eq!(weights(&ms), [("1".to_owned(), 100)]);
        // The spec moved on to another version: the old rollout no longer routes.
        ms.spec.versions[0].version = "3".to_owned();
        assert_eq!(weights(&ms), [("3".to_owned(), 100)]);
    }
}
