//! The input document a policy sees: autoglm's view of the write and
//! Gatekeeper's admission review of the same resource.

use autoglm_core::service::ModelServiceManifest;
use serde_json::{Map, Value, json};

use crate::spec::Kind;

/// What the write does to the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// It did not exist.
    Create,
    /// It existed (`oldResource` is what it was).
    Update,
}

impl Operation {
    /// As Kubernetes' admission review spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
        }
    }
}

/// Who writes.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The audit actor (`user:alice`, `key:…`).
    pub actor: String,
    /// The user.
    pub username: String,
    /// Their role in the tenant.
    pub role: String,
}

/// One write to be judged.
#[derive(Debug, Clone)]
pub struct Review {
    /// What is written.
    pub kind: Kind,
    /// Create or update.
    pub operation: Operation,
    /// The resource as it will be (for a ModelService, its manifest).
    pub resource: Value,
    /// The resource as it was, on update.
    pub old_resource: Option<Value>,
    /// Who writes.
    pub caller: Caller,
    /// The tenant it belongs to (a namespace on Kubernetes).
    pub tenant: String,
    /// What the console knows around the resource (`input.context`): for a
    /// ModelService, `versionStages` (each listed version's stage) and
    /// `tenantGpus` (the GPUs the tenant's other services may hold).
    pub context: Value,
}

impl Review {
    /// The review of a ModelService's create (no `old`) or update, with
    /// its context: the stages of its model's versions, and the GPUs the
    /// tenant's other services may hold.
    pub fn service(
        tenant: &str,
        caller: Caller,
        old: Option<&ModelServiceManifest>,
        new: &ModelServiceManifest,
        version_stages: Map<String, Value>,
        tenant_gpus: u64,
    ) -> Review {
        let resource = |m: &ModelServiceManifest| serde_json::to_value(m).unwrap_or_default();
        Review {
            kind: Kind::ModelService,
            operation: if old.is_some() {
                Operation::Update
            } else {
                Operation::Create
            },
            resource: resource(new),
            old_resource: old.map(resource),
            caller,
            tenant: tenant.to_owned(),
            context: json!({"versionStages": version_stages, "tenantGpus": tenant_gpus}),
        }
    }

    /// The resource's name (`metadata.name`).
    pub fn name(&self) -> &str {
        self.resource["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
    }

    /// Its environment: the `environment` label (`dev`, `test`, `staging`,
    /// `prod`), as the config center names them.
    pub fn environment(&self) -> Option<&str> {
        self.resource["metadata"]["labels"]["environment"].as_str()
    }

    /// The input document for a policy with `parameters`.
    pub fn input(&self, parameters: &Value) -> Value {
        json!({
            "kind": self.kind.as_str(),
            "operation": self.operation.as_str(),
            "name": self.name(),
            "tenant": self.tenant,
            "environment": self.environment(),
            "resource": self.resource,
            "oldResource": self.old_resource,
            "caller": {
                "actor": self.caller.actor,
                "username": self.caller.username,
                "role": self.caller.role,
            },
            "context": self.context,
            "parameters": parameters,
            "review": {
                "kind": {"group": "autoglm.io", "version": "v1alpha1", "kind": self.kind.as_str()},
                "name": self.name(),
                "namespace": self.tenant,
                "operation": self.operation.as_str(),
                "object": self.resource,
                "oldObject": self.old_resource,
                "userInfo": {"username": self.caller.username},
            },
        })
    }
}
