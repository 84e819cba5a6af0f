//! The parts of a ModelService only a Kubernetes cluster acts on: HPA
//! metrics, per-replica storage and an ingress. The local platform accepts
//! them, so one spec deploys to both, and ignores them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::validate::FieldError;
use super::{ModelServiceSpec, parse_quantity, quantity, quantity_schema};
use crate::names::{self, NameError};

/// Resource and custom metrics for a Kubernetes HorizontalPodAutoscaler,
/// alongside the gateway's request-based scaling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HpaMetrics {
    /// Target average CPU use, in percent of `resources.cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// Target average memory use, in percent of `resources.memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    /// Target requests per second per replica (a Pods metric,
    /// `autoglm_runtime_requests_per_second`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    /// Target requests waiting at the gateway, per replica (an External
    /// metric, `autoglm_gateway_waiting_requests`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_length: Option<u32>,
}

/// Each replica keeps its own volume: rendered as a StatefulSet with
/// volumeClaimTemplates instead of a Deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stateful {
    /// The size of each replica's volume, a quantity such as `"10Gi"`.
    #[serde(deserialize_with = "required_quantity")]
    #[schemars(schema_with = "quantity_schema")]
    pub storage: String,
    /// The StorageClass; the cluster's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// An Ingress in front of the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ingress {
    /// The host name clients use, e.g. `chat.example.com`.
    pub host: String,
    /// A Secret holding the TLS certificate for `host`; plain HTTP when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret: Option<String>,
    /// The IngressClass; the cluster's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
}

fn required_quantity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    quantity(d)?.ok_or_else(|| serde::de::Error::custom("a quantity such as \"10Gi\" is required"))
}

/// The most a utilisation target may be: 1000% of the request is already
/// a replica running far beyond what it asked for.
const MAX_UTILISATION: u32 = 1000;

impl ModelServiceSpec {
    pub(super) fn check_cluster(&self, errors: &mut Vec<FieldError>) {
        if let Some(hpa) = self.autoscaling.as_ref().and_then(|a| a.hpa.as_ref()) {
            self.check_hpa(hpa, errors);
        }
        if let Some(stateful) = &self.stateful {
            check_storage(stateful, errors);
        }
        if let Some(ingress) = &self.ingress {
            check_ingress(ingress, errors);
        }
    }

    fn check_hpa(&self, hpa: &HpaMetrics, errors: &mut Vec<FieldError>) {
        let resources = self.resources.as_ref();
        let utilisation = [
            ("cpu", hpa.cpu, resources.and_then(|r| r.cpu.as_ref())),
            (
                "memory",
                hpa.memory,
                resources.and_then(|r| r.memory.as_ref()),
            ),
        ];
        for (field, target, request) in utilisation {
            let path = format!("spec.autoscaling.hpa.{field}");
            match target {
                Some(0) => errors.push(FieldError::new(path, format!("{field} must be at least 1 (percent)"))),
                Some(t) if t > MAX_UTILISATION => errors.push(FieldError::new(
                    path,
                    format!("{field} {t} is above {MAX_UTILISATION} percent of the request"),
                )),
                Some(_) if request.is_none() => errors.push(FieldError::new(
                    path,
                    format!("a {field} target is a percentage of spec.resources.{field}, which is not set"),
                )),
                _ => {}
            }
        }
        for (field, target) in [
            ("requestsPerSecond", hpa.requests_per_second),
            ("queueLength", hpa.queue_length),
        ] {
            if target == Some(0) {
                errors.push(FieldError::new(
                    format!("spec.autoscaling.hpa.{field}"),
                    format!("{field} must be at least 1"),
                ));
            }
        }
        if hpa == &HpaMetrics::default() {
            errors.push(FieldError::new(
                "spec.autoscaling.hpa",
                "hpa needs at least one target: cpu, memory, requestsPerSecond or queueLength",
            ));
        }
    }
}

fn check_storage(stateful: &Stateful, errors: &mut Vec<FieldError>) {
    let storage = &stateful.storage;
    match parse_quantity(storage) {
        Err(e) => errors.push(FieldError::new(
            "spec.stateful.storage",
            format!("storage {storage:?} {e}; write bytes like \"10Gi\""),
        )),
        Ok(v) if v < 1.0 || storage.ends_with('m') => errors.push(FieldError::new(
            "spec.stateful.storage",
            format!("storage {storage:?} must be at least one byte, like \"10Gi\""),
        )),
        Ok(_) => {}
    }
    if let Some(class) = &stateful.storage_class_name
        && let Err(e) = validate_subdomain(class)
    {
        errors.push(FieldError::new(
            "spec.stateful.storageClassName",
            format!("storageClassName {e}"),
        ));
    }
}

fn check_ingress(ingress: &Ingress, errors: &mut Vec<FieldError>) {
    let host = ingress.host.strip_prefix("*.").unwrap_or(&ingress.host);
    if let Err(e) = validate_subdomain(host) {
        errors.push(FieldError::new("spec.ingress.host", format!("host {e}")));
    }
    for (field, value) in [
        ("tlsSecret", &ingress.tls_secret),
        ("className", &ingress.class_name),
    ] {
        if let Some(value) = value
            && let Err(e) = validate_subdomain(value)
        {
            errors.push(FieldError::new(
                format!("spec.ingress.{field}"),
                format!("{field} {e}"),
            ));
        }
    }
}

/// Why a value is not a DNS-1123 subdomain; the caller starts the sentence
/// with the field's name.
#[derive(Debug, Error)]
enum SubdomainError {
    /// Longer than 253 characters.
    #[error("{value:?} is longer than 253 characters")]
    TooLong { value: String },
    /// A dot-separated part is not a DNS label.
    #[error("{value:?} is not a DNS name: {source}")]
    BadLabel {
        value: String,
        #[source]
        source: NameError,
    },
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
fn validate_subdomain(value: &str) -> Result<(), SubdomainError> {
    if value.len() > 253 {
        return Err(SubdomainError::TooLong {
            value: value.to_owned(),
        });
    }
    for label in value.split('.') {
        names::validate("DNS", label).map_err(|source| SubdomainError::BadLabel {
            value: value.to_owned(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> ModelServiceSpec {
        let mut base =
            serde_json::json!({"model": "m", "versions": [{"version": "1", "weight": 100}]});
        if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(base).expect("spec")
    }

    fn errors(spec: &ModelServiceSpec) -> Vec<String> {
        spec.validate()
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect()
    }

    #[test]
    fn a_full_cluster_spec_is_valid() {
        let s = spec(serde_json::json!({
            "autoscaling": {"minReplicas": 1, "maxReplicas": 4, "targetInFlight": 2,
                "hpa": {"cpu": 70, "memory": 80, "requestsPerSecond": 50, "queueLength": 100}},
            "resources": {"cpu": 2, "memory": "4Gi", "gpu": 1},
            "stateful": {"storage": "10Gi", "storageClassName": "fast-ssd"},
            "ingress": {"host": "chat.example.com", "tlsSecret": "chat-tls"}
        }));
        assert_eq!(errors(&s), Vec::<String>::new());
    }

    #[test]
    fn each_bad_cluster_field_is_named() {
        let s = spec(serde_json::json!({
            "autoscaling": {"maxReplicas": 4, "targetInFlight": 2,
                "hpa": {"cpu": 70, "memory": 0, "queueLength": 0}},
            "stateful": {"storage": "512m"},
            "ingress": {"host": "Chat.example.com", "tlsSecret": "bad_secret"}
        }));
        let found = errors(&s);
        for expected in [
            "spec.autoscaling.hpa.cpu: a cpu target is a percentage of spec.resources.cpu",
            "spec.autoscaling.hpa.memory: memory must be at least 1",
            "spec.autoscaling.hpa.queueLength: queueLength must be at least 1",
            "spec.stateful.storage: storage \"512m\" must be at least one byte",
            "spec.ingress.host: host \"Chat.example.com\" is not a DNS name",
            "spec.ingress.tlsSecret: tlsSecret \"bad_secret\" is not a DNS name",
        ] {
            assert!(
                found.iter().any(|e| e.starts_with(expected)),
                "{expected} not in {found:#?}"
            );
        }
        let empty = spec(serde_json::json!({
            "autoscaling": {"maxReplicas": 4, "targetInFlight": 2, "hpa": {}}
        }));
        assert_eq!(
            errors(&empty),
            [
                "spec.autoscaling.hpa: hpa needs at least one target: cpu, memory, requestsPerSecond or queueLength"
            ]
        );
    }

    #[test]
    fn subdomain_refusals_keep_the_label_error() {
        let long = "a".repeat(254);
        assert!(matches!(
            validate_subdomain(&long),
            Err(SubdomainError::TooLong { value }) if value == long
        ));
        let err = validate_subdomain("ok.Bad").err();
        assert!(matches!(
            &err,
            Some(SubdomainError::BadLabel {
                source: NameError::BadCharacter { bad: 'B', .. },
                ..
            })
        ));
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some(
                "\"ok.Bad\" is not a DNS name: DNS name \"Bad\" contains 'B'; use lower-case letters, digits and '-'"
            )
        );
    }

    #[test]
    fn wildcard_hosts_and_numeric_storage_are_accepted() {
        let s = spec(serde_json::json!({
            "stateful": {"storage": 1073741824},
            "ingress": {"host": "*.models.example.com"}
        }));
        assert_eq!(errors(&s), Vec::<String>::new());
        assert_eq!(
            s.stateful.map(|st| st.storage).as_deref(),
            Some("1073741824")
        );
    }
}
