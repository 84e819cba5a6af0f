//! Policies on Kubernetes: a ConfigMap per tenant, kept by the console in
//! autoglm's own namespace (where tenants cannot write), with every policy
//! that judges the tenant's writes (the global ones first, named
//! `global/NAME`) and the stages of the tenant's model versions, so that
//! the operator's admission webhook decides as the console does without
//! asking it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::compile::{CompiledPolicy, compile};
use crate::decide::Finding;
use crate::spec::{Mode, PolicySpec};

/// The namespace the copies are kept in, unless told otherwise.
pub const SYSTEM_NAMESPACE: &str = "autoglm-system";
/// The label that marks a copy (value `"true"`), for the webhook's watch.
pub const LABEL: &str = "autoglm.io/policies";
/// The label that names a copy's tenant.
pub const TENANT_LABEL: &str = "autoglm.io/tenant";

/// The name of `tenant`'s copy.
pub fn config_map_name(tenant: &str) -> String {
    format!("policies-{tenant}")
}
const POLICIES_KEY: &str = "policies.json";
const STAGES_KEY: &str = "versionStages.json";

/// One policy as it judges a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedPolicy {
    /// Its name in findings (`global/NAME` for a global one).
    pub name: String,
    /// The policy.
    pub spec: PolicySpec,
}

/// Everything a tenant's writes are judged with, outside the console.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantPolicies {
    /// In the order they judge.
    pub policies: Vec<NamedPolicy>,
    /// Per model, each version's stage (`input.context.versionStages`).
    pub version_stages: BTreeMap<String, Map<String, Value>>,
}

impl TenantPolicies {
    /// The ConfigMap's `data`.
    pub fn to_data(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                POLICIES_KEY.to_owned(),
                serde_json::to_string(&self.policies).unwrap_or_default(),
            ),
            (
                STAGES_KEY.to_owned(),
                serde_json::to_string(&self.version_stages).unwrap_or_default(),
            ),
        ])
    }

    /// Read back from a ConfigMap's `data`.
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<TenantPolicies, String> {
        let field = |key: &str| data.get(key).map(String::as_str).unwrap_or("");
        let policies = serde_json::from_str(field(POLICIES_KEY))
            .map_err(|e| format!("policies ConfigMap has no readable {POLICIES_KEY}: {e}"))?;
        let version_stages = serde_json::from_str(field(STAGES_KEY))
            .map_err(|e| format!("policies ConfigMap has no readable {STAGES_KEY}: {e}"))?;
        Ok(TenantPolicies {
            policies,
            version_stages,
        })
    }
}

/// The policies as the store keeps them (name and spec), read.
pub fn parse_all(stored: Vec<(String, Value)>) -> Result<Vec<NamedPolicy>, String> {
    stored
        .into_iter()
        .map(|(name, spec)| match serde_json::from_value(spec) {
            Ok(spec) => Ok(NamedPolicy { name, spec }),
            Err(e) => Err(format!("policy {name} is stored unreadable: {e}")),
        })
        .collect()
}

/// Compiles the policies that judge a tenant, in order. Each compiled when
/// it was saved; one that no longer does refuses every write (it fails
/// closed): its finding is the error.
pub fn compile_all(
    policies: impl IntoIterator<Item = NamedPolicy>,
) -> Result<Vec<CompiledPolicy>, Finding> {
    policies
        .into_iter()
        .map(|p| {
            compile(&p.name, &p.spec).map_err(|e| Finding {
                policy: p.name.clone(),
                rule: "error".into(),
                message: format!("the stored policy no longer compiles: {e}"),
                details: None,
                mode: Mode::Enforce,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_map_data_reads_back_as_written() {
        let written = TenantPolicies {
            policies: vec![NamedPolicy {
                name: "global/labels".into(),
                spec: serde_json::from_value(serde_json::json!({
                    "rego": "package p\ndeny contains \"x\" if { false }",
                    "mode": "warn",
                }))
                .unwrap(),
            }],
            version_stages: BTreeMap::from([(
                "chat".to_owned(),
                Map::from_iter([("1".to_owned(), Value::from("production"))]),
            )]),
        };
        let read = TenantPolicies::from_data(&written.to_data()).unwrap();
        assert_eq!(read, written);
    }

    #[test]
    fn unreadable_data_is_refused_in_words() {
        let error = TenantPolicies::from_data(&BTreeMap::new()).unwrap_err();
        assert!(error.contains("policies.json"), "{error}");
    }

    #[test]
    fn a_policy_that_no_longer_compiles_is_the_error() {
        let broken = NamedPolicy {
            name: "broken".into(),
            spec: serde_json::from_value(serde_json::json!({"rego": "package p\ndeny contains"}))
                .unwrap(),
        };
        let finding = compile_all([broken]).unwrap_err();
        assert_eq!(
            (finding.policy.as_str(), finding.rule.as_str()),
            ("broken", "error")
        );
        assert!(
            finding
                .message
                .starts_with("the stored policy no longer compiles")
        );
    }
}
