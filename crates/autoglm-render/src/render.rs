//! A ModelService's children: per version a Deployment (or a StatefulSet
//! with a headless Service and volume claims), a Service, a
//! PodDisruptionBudget and, when autoscaled, an HPA; for the whole service a
//! ConfigMap, a Service across versions and, when asked, an Ingress.
//!
//! One Service per version lets the gateway read each version's ready
//! endpoints from its EndpointSlices and keep the traffic weights; the
//! service-wide one is what an Ingress and in-cluster callers use.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use autoglm_core::service::{CONFIG_MD5_ANNOTATION, ModelServiceManifest, RESTARTED_AT_ANNOTATION};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment, StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, ExternalMetricSource, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec,
    MetricTarget, PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, Service, ServicePort, ServiceSpec,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::child::Child;
use crate::labels::{labels, selector};
use crate::options::{RenderError, RenderOptions};
use crate::pod::{MODEL_VOLUME, PodInputs, pod_template, server_port};

/// The longest name a Service may have (a DNS-1035 label).
const MAX_SERVICE_NAME: usize = 63;

/// The children of `manifest`, in the order they are best applied: what
/// pods refer to first, then the workloads, then what refers to them.
pub fn render(
    manifest: &ModelServiceManifest,
    options: &RenderOptions,
) -> Result<Vec<Child>, RenderError> {
    manifest.validate().map_err(|errors| {
        RenderError::Invalid(
            errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let service = manifest.metadata.name.as_str();
    let spec = &manifest.spec;
    check_names(manifest)?;
    server_port(spec)?;
    let namespace = manifest
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(&options.namespace);
    let meta = |name: String, version: Option<&str>| ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels(service, &spec.model, version)),
        owner_references: options.owner.clone().map(|o| vec![o]),
        ..ObjectMeta::default()
    };

    let mut children = Vec::new();
    let config_map_name = format!("{service}-runtime");
    let config_data = config_data(manifest);
    let config_hash = fnv_hex(&config_data);
    children.push(Child::ConfigMap(ConfigMap {
        metadata: meta(config_map_name.clone(), None),
        data: Some(config_data),
        ..ConfigMap::default()
    }));
    children.push(Child::Service(cluster_service(
        meta(service.to_owned(), None),
        selector(service, None),
    )));

    let restarted_at = manifest
        .metadata
        .annotations
        .get(RESTARTED_AT_ANNOTATION)
        .map(String::as_str);
    let bounds = spec.replica_bounds();
    for v in &spec.versions {
        let version = v.version.as_str();
        let name = format!("{service}-{version}");
        let template = pod_template(&PodInputs {
            service,
            version,
            spec,
            options,
            config_map: &config_map_name,
            config_hash: &config_hash,
            restarted_at,
            config_md5: manifest
                .metadata
                .annotations
                .get(CONFIG_MD5_ANNOTATION)
                .map(String::as_str),
        })?;
        let pods = LabelSelector {
            match_labels: Some(selector(service, Some(version))),
            ..LabelSelector::default()
        };
        // Under an HPA the workload's replica count is the HPA's to set;
        // applying one here would fight it on every reconcile.
        let replicas = spec.replicas.map(|n| n as i32);
        children.push(Child::Service(cluster_service(
            meta(name.clone(), Some(version)),
            selector(service, Some(version)),
        )));
        let kind = if let Some(stateful) = &spec.stateful {
            let headless = format!("{name}-headless");
            let mut headless_service = cluster_service(
                meta(headless.clone(), Some(version)),
                selector(service, Some(version)),
            );
            if let Some(s) = headless_service.spec.as_mut() {
                s.cluster_ip = Some("None".to_owned());
                s.publish_not_ready_addresses = Some(true);
            }
            children.push(Child::Service(headless_service));
            children.push(Child::StatefulSet(StatefulSet {
                metadata: meta(name.clone(), Some(version)),
                spec: Some(StatefulSetSpec {
                    replicas,
                    selector: pods.clone(),
                    service_name: Some(headless),
                    pod_management_policy: Some("Parallel".to_owned()),
                    template,
                    volume_claim_templates: Some(vec![PersistentVolumeClaim {
                        metadata: ObjectMeta {
                            name: Some(MODEL_VOLUME.to_owned()),
                            labels: Some(labels(service, &spec.model, Some(version))),
                            ..ObjectMeta::default()
                        },
                        spec: Some(PersistentVolumeClaimSpec {
                            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                            storage_class_name: stateful.storage_class_name.clone(),
                            resources: Some(VolumeResourceRequirements {
                                requests: Some(BTreeMap::from([(
                                    "storage".to_owned(),
                                    Quantity(stateful.storage.clone()),
                                )])),
                                ..VolumeResourceRequirements::default()
                            }),
                            ..PersistentVolumeClaimSpec::default()
                        }),
                        ..PersistentVolumeClaim::default()
                    }]),
                    persistent_volume_claim_retention_policy: Some(
                        StatefulSetPersistentVolumeClaimRetentionPolicy {
                            when_deleted: Some("Delete".to_owned()),
                            when_scaled: Some("Retain".to_owned()),
                        },
                    ),
                    revision_history_limit: Some(3),
                    ..StatefulSetSpec::default()
                }),
                status: None,
            }));
            "StatefulSet"
        } else {
            children.push(Child::Deployment(Deployment {
                metadata: meta(name.clone(), Some(version)),
                spec: Some(DeploymentSpec {
                    replicas,
                    selector: pods.clone(),
                    template,
                    // Never below the serving capacity during a rollout.
                    strategy: Some(DeploymentStrategy {
                        type_: Some("RollingUpdate".to_owned()),
                        rolling_update: Some(RollingUpdateDeployment {
                            max_surge: Some(IntOrString::Int(1)),
                            max_unavailable: Some(IntOrString::Int(0)),
                        }),
                    }),
                    revision_history_limit: Some(3),
                    ..DeploymentSpec::default()
                }),
                status: None,
            }));
            "Deployment"
        };
        children.push(Child::PodDisruptionBudget(PodDisruptionBudget {
            metadata: meta(name.clone(), Some(version)),
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(pods),
                ..PodDisruptionBudgetSpec::default()
            }),
            status: None,
        }));
        if let Some(autoscaling) = &spec.autoscaling {
            children.push(Child::HorizontalPodAutoscaler(hpa(
                meta(name.clone(), Some(version)),
                HpaInputs {
                    service,
                    version,
                    kind,
                    target: &name,
                    min: bounds.min.max(1),
                    max: bounds.max,
                    autoscaling,
                    stabilization_seconds: autoscaling
                        .scale_down_stabilization()
                        .map_err(|e| RenderError::Invalid(e.to_string()))?
                        .as_secs(),
                },
            )));
        }
    }

    if let Some(ingress) = &spec.ingress {
        children.push(Child::Ingress(Ingress {
            metadata: meta(service.to_owned(), None),
            spec: Some(IngressSpec {
                ingress_class_name: ingress.class_name.clone(),
                rules: Some(vec![IngressRule {
                    host: Some(ingress.host.clone()),
                    http: Some(HTTPIngressRuleValue {
                        paths: vec![HTTPIngressPath {
                            path: Some("/".to_owned()),
                            path_type: "Prefix".to_owned(),
                            backend: IngressBackend {
                                service: Some(IngressServiceBackend {
                                    name: service.to_owned(),
                                    port: Some(ServiceBackendPort {
                                        name: Some("http".to_owned()),
                                        number: None,
                                    }),
                                }),
                                resource: None,
                            },
                        }],
                    }),
                }]),
                tls: ingress.tls_secret.as_ref().map(|secret| {
                    vec![IngressTLS {
                        hosts: Some(vec![ingress.host.clone()]),
                        secret_name: Some(secret.clone()),
                    }]
                }),
                default_backend: None,
            }),
            status: None,
        }));
    }
    Ok(children)
}

/// The children as multi-document YAML, as `autoglm render` prints them.
pub fn to_yaml(children: &[Child]) -> String {
    let mut out = String::new();
    for child in children {
        out.push_str("---\n");
        // Through JSON, whose maps sort their keys: kubectl prints fields in
        // this order too, and the output stays stable across k8s-openapi
        // releases that reorder struct fields.
        out.push_str(
            &serde_yaml_ng::to_string(&child.to_value()).expect("a JSON value serialises as YAML"),
        );
    }
    out
}

/// Service names are DNS-1035 labels: at most 63 characters, starting
/// with a letter. Checked up front so the user hears which name is too long.
fn check_names(manifest: &ModelServiceManifest) -> Result<(), RenderError> {
    let service = &manifest.metadata.name;
    if !service.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(RenderError::Name(format!(
            "metadata.name {service:?} must start with a letter on Kubernetes: it names Services"
        )));
    }
    let suffix = if manifest.spec.stateful.is_some() {
        "-headless"
    } else {
        ""
    };
    for v in &manifest.spec.versions {
        let name = format!("{service}-{}{suffix}", v.version);
        if name.len() > MAX_SERVICE_NAME {
            return Err(RenderError::Name(format!(
                "the Service {name:?} for version {} would be {} characters; shorten metadata.name to at most {} characters",
                v.version,
                name.len(),
                MAX_SERVICE_NAME - (name.len() - service.len()),
            )));
        }
    }
    Ok(())
}

/// The environment every replica gets from the ConfigMap: the served name
/// and the spec's variables.
fn config_data(manifest: &ModelServiceManifest) -> BTreeMap<String, String> {
    let mut data = BTreeMap::from([
        (
            "AUTOGLM_MODEL_NAME".to_owned(),
            manifest.metadata.name.clone(),
        ),
        (
            "AUTOGLM_REGISTRY_MODEL".to_owned(),
            manifest.spec.model.clone(),
        ),
    ]);
    for var in &manifest.spec.env {
        data.insert(var.name.clone(), var.value.clone());
    }
    data
}

/// A stable 64-bit FNV-1a of the data, as hex: a checksum, not a secret.
fn fnv_hex(data: &BTreeMap<String, String>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (key, value) in data {
        for byte in key.bytes().chain([0]).chain(value.bytes()).chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let mut out = String::with_capacity(16);
    let _ = write!(out, "{hash:016x}");
    out
}

fn cluster_service(metadata: ObjectMeta, selector: BTreeMap<String, String>) -> Service {
    Service {
        metadata,
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: 80,
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                app_protocol: Some("http".to_owned()),
                ..ServicePort::default()
            }]),
            type_: Some("ClusterIP".to_owned()),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

struct HpaInputs<'a> {
    service: &'a str,
    version: &'a str,
    kind: &'a str,
    target: &'a str,
    min: u32,
    max: u32,
    autoscaling: &'a autoglm_core::service::Autoscaling,
    stabilization_seconds: u64,
}

/// An autoscaling/v2 HPA. Without `hpa` targets it scales on the gateway's
/// in-flight requests per replica, the same signal as the local platform.
fn hpa(metadata: ObjectMeta, inputs: HpaInputs<'_>) -> HorizontalPodAutoscaler {
    let gateway_selector = LabelSelector {
        match_labels: Some(BTreeMap::from([
            ("model".to_owned(), inputs.service.to_owned()),
            ("version".to_owned(), inputs.version.to_owned()),
        ])),
        ..LabelSelector::default()
    };
    let external = |name: &str, per_replica: u32| MetricSpec {
        type_: "External".to_owned(),
        external: Some(ExternalMetricSource {
            metric: MetricIdentifier {
                name: name.to_owned(),
                selector: Some(gateway_selector.clone()),
            },
            target: MetricTarget {
                type_: "AverageValue".to_owned(),
                average_value: Some(Quantity(per_replica.to_string())),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    };
    let utilisation = |resource: &str, percent: u32| MetricSpec {
        type_: "Resource".to_owned(),
        resource: Some(ResourceMetricSource {
            name: resource.to_owned(),
            target: MetricTarget {
                type_: "Utilization".to_owned(),
                average_utilization: Some(percent as i32),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    };
    let mut metrics = Vec::new();
    match &inputs.autoscaling.hpa {
        None => metrics.push(external(
            "autoglm_gateway_in_flight_requests",
            inputs.autoscaling.target_in_flight,
        )),
        Some(targets) => {
            if let Some(cpu) = targets.cpu {
                metrics.push(utilisation("cpu", cpu));
            }
            if let Some(memory) = targets.memory {
                metrics.push(utilisation("memory", memory));
            }
            if let Some(rps) = targets.requests_per_second {
                metrics.push(MetricSpec {
                    type_: "Pods".to_owned(),
                    pods: Some(PodsMetricSource {
                        metric: MetricIdentifier {
                            name: "autoglm_runtime_requests_per_second".to_owned(),
                            selector: None,
                        },
                        target: MetricTarget {
                            type_: "AverageValue".to_owned(),
                            average_value: Some(Quantity(rps.to_string())),
                            ..MetricTarget::default()
                        },
                    }),
                    ..MetricSpec::default()
                });
            }
            if let Some(queue) = targets.queue_length {
                metrics.push(external("autoglm_gateway_waiting_requests", queue));
            }
        }
    }
    HorizontalPodAutoscaler {
        metadata,
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: inputs.kind.to_owned(),
                name: inputs.target.to_owned(),
            },
            min_replicas: Some(inputs.min as i32),
            max_replicas: inputs.max as i32,
            metrics: Some(metrics),
            behavior: Some(HorizontalPodAutoscalerBehavior {
                // Up at once, down only after the stabilisation window, as locally.
                scale_up: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(0),
                    ..HPAScalingRules::default()
                }),
                scale_down: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(inputs.stabilization_seconds as i32),
                    ..HPAScalingRules::default()
                }),
            }),
        },
        status: None,
    }
}
