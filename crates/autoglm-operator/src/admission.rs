//! The admission decision: a ModelService created or updated through the
//! API server (by `kubectl apply`, a GitOps controller, the console) is
//! judged by the policies of its namespace's tenant, as the console judges
//! its own writes, so that both refuse with the same words.
//!
//! The policies and the stages of the tenant's model versions come from
//! the `autoglm-policies` ConfigMap the console keeps in the namespace;
//! `tenantGpus` from the other ModelServices in the operator's cache. No
//! ConfigMap means no policies: the write is allowed.

use std::collections::HashMap;
use std::sync::Arc;

use autoglm_core::error::Problem;
use autoglm_core::service::{ModelServiceManifest, ObjectMeta};
use autoglm_policy::{Caller, CompiledPolicy, Finding, Review, TenantPolicies};
use autoglm_render::ModelServiceObject;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::runtime::reflector::{ObjectRef, Store};
use parking_lot::Mutex;

/// The annotation kubectl keeps its last apply in: not the user's.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A namespace's policies, compiled (or why they cannot be).
#[derive(Clone)]
struct Compiled {
    resource_version: Option<String>,
    policies: Result<Arc<Vec<CompiledPolicy>>, String>,
    tenant: Arc<TenantPolicies>,
}

/// What the webhook reads from: the watch caches and the compiled sets.
pub struct Judge {
    config_maps: Store<ConfigMap>,
    services: Store<ModelServiceObject>,
    compiled: Mutex<HashMap<String, Compiled>>,
}

impl Judge {
    /// Reads the policies from `config_maps` (only the `autoglm-policies`
    /// ones) and the other services from `services`.
    pub fn new(config_maps: Store<ConfigMap>, services: Store<ModelServiceObject>) -> Judge {
        Judge {
            config_maps,
            services,
            compiled: Mutex::default(),
        }
    }

    /// The compiled policies of `namespace`, compiled again only when its
    /// ConfigMap changed.
    fn policies_of(&self, namespace: &str) -> Option<Compiled> {
        let map = self
            .config_maps
            .get(&ObjectRef::new(autoglm_policy::CONFIG_MAP).within(namespace))?;
        let version = map.resource_version();
        if let Some(kept) = self.compiled.lock().get(namespace)
            && kept.resource_version == version
        {
            return Some(kept.clone());
        }
        let read = TenantPolicies::from_data(&map.data.clone().unwrap_or_default());
        let tenant = Arc::new(read.clone().unwrap_or_default());
        let policies = read.and_then(|t| {
            autoglm_policy::compile_all(t.policies)
                .map(Arc::new)
                .map_err(|f| denial_message(std::slice::from_ref(&f)))
        });
        let compiled = Compiled {
            resource_version: version,
            policies,
            tenant,
        };
        self.compiled
            .lock()
            .insert(namespace.to_owned(), compiled.clone());
        Some(compiled)
    }

    /// The GPUs the namespace's services other than `name` may hold.
    fn other_gpus(&self, namespace: &str, name: &str) -> u64 {
        self.services
            .state()
            .iter()
            .filter(|s| s.namespace().as_deref() == Some(namespace) && s.name_any() != name)
            .map(|s| s.spec.gpus_at_most())
            .sum()
    }

    /// The answer to one admission request.
    pub fn review(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let response = AdmissionResponse::from(request);
        let Some(object) = &request.object else {
            return response;
        };
        // The finalizer's removal, status and metadata-only updates do not
        // change what is served: a policy added since must not block them.
        if object.metadata.deletion_timestamp.is_some() {
            return response;
        }
        let namespace = request.namespace.clone().unwrap_or_default();
        let Some(compiled) = self.policies_of(&namespace) else {
            return response;
        };
        let new = match manifest(object) {
            Ok(new) => new,
            Err(why) => return response.deny(format!("the ModelService cannot be read: {why}")),
        };
        let old = match (&request.operation, &request.old_object) {
            (Operation::Update, Some(old)) => manifest(old).ok(),
            _ => None,
        };
        if let Some(old) = &old
            && old.spec == new.spec
            && old.metadata.labels == new.metadata.labels
        {
            return response;
        }
        let policies = match &compiled.policies {
            Ok(policies) => policies,
            Err(why) => return response.deny(why),
        };
        if policies.is_empty() {
            return response;
        }
        let caller = Caller {
            actor: format!(
                "kubernetes:{}",
                request.user_info.username.as_deref().unwrap_or("")
            ),
            username: request.user_info.username.clone().unwrap_or_default(),
            role: String::new(),
        };
        let review = Review::service(
            &namespace,
            caller,
            old.as_ref(),
            &new,
            compiled.tenant.stages_of(&new.spec.model),
            self.other_gpus(&namespace, &new.metadata.name),
        );
        let decision = autoglm_policy::decide(policies.iter(), &review);
        let mut response = response;
        let warnings: Vec<String> = decision
            .warnings
            .iter()
            .map(|f| format!("policy {}: {}", f.policy, f.message))
            .collect();
        if !warnings.is_empty() {
            response.warnings = Some(warnings);
        }
        if decision.allowed() {
            return response;
        }
        response.deny(denial_message(&decision.denials))
    }
}

/// The refusal in the console's words: its problem's `detail`.
fn denial_message(denials: &[Finding]) -> String {
    let violations = denials
        .iter()
        .map(|f| autoglm_core::error::PolicyViolation {
            policy: f.policy.clone(),
            rule: f.rule.clone(),
            message: f.message.clone(),
        })
        .collect();
    Problem::policy_violations(violations)
        .detail
        .unwrap_or_default()
}

/// The object as the console's manifest: what its policies see.
fn manifest(object: &DynamicObject) -> Result<ModelServiceManifest, serde_json::Error> {
    let meta = &object.metadata;
    let mut annotations = meta.annotations.clone().unwrap_or_default();
    annotations.remove(LAST_APPLIED);
    Ok(ModelServiceManifest {
        api_version: autoglm_core::service::API_VERSION.to_owned(),
        kind: autoglm_core::service::KIND.to_owned(),
        metadata: ObjectMeta {
            name: meta.name.clone().unwrap_or_default(),
            namespace: None,
            labels: meta.labels.clone().unwrap_or_default(),
            annotations,
            generation: meta.generation,
            creation_timestamp: None,
        },
        spec: serde_json::from_value(object.data["spec"].clone())?,
        status: None,
    })
}
