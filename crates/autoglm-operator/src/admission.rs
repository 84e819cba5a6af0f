//! The admission decision: a ModelService created or updated through the
//! API server (by `kubectl apply`, a GitOps controller, the console) is
//! judged by the policies of its namespace's tenant, as the console judges
//! its own writes, so that both refuse with the same words.
//!
//! The policies and the stages of the tenant's model versions come from
//! the ConfigMap `policies-TENANT` the console keeps in autoglm's own
//! namespace, where tenants cannot write; `tenantGpus` from the other
//! ModelServices in the operator's cache. In a tenant's namespace (labelled
//! `autoglm.io/tenant`) without that copy every write is refused; in
//! another namespace there are no policies to ask.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use autoglm_core::error::Problem;
use autoglm_core::service::{ModelServiceManifest, ObjectMeta};
use autoglm_policy::{Caller, CompiledPolicy, Finding, Review, TenantPolicies};
use autoglm_render::ModelServiceObject;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::ResourceExt;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::runtime::reflector::{ObjectRef, Store};
use parking_lot::Mutex;
use serde_json::{Map, Value};

/// The annotation kubectl keeps its last apply in: not the user's.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A namespace's policies, compiled (or why they cannot be).
#[derive(Clone)]
struct Compiled {
    resource_version: Option<String>,
    policies: Result<Arc<Vec<CompiledPolicy>>, String>,
    /// Per model, each version's stage.
    stages: Arc<BTreeMap<String, Map<String, Value>>>,
}

/// What the webhook reads from: the watch caches and the compiled sets.
pub struct Judge {
    /// Where the console keeps the copies.
    system: String,
    /// Users whose writes were judged already: the console's own, which
    /// judged them with the real caller (and its role) before writing.
    trusted: Vec<String>,
    config_maps: Store<ConfigMap>,
    tenants: Store<Namespace>,
    services: Store<ModelServiceObject>,
    compiled: Mutex<HashMap<String, Compiled>>,
}

impl Judge {
    /// Reads the policies from `config_maps` (the copies in `system`), the
    /// tenants' namespaces from `tenants` and the other services from
    /// `services`.
    pub fn new(
        system: String,
        trusted: Vec<String>,
        config_maps: Store<ConfigMap>,
        tenants: Store<Namespace>,
        services: Store<ModelServiceObject>,
    ) -> Judge {
        Judge {
            system,
            trusted,
            config_maps,
            tenants,
            services,
            compiled: Mutex::default(),
        }
    }

    /// Whether `namespace` is a tenant's (the console labelled it).
    fn is_tenant(&self, namespace: &str) -> bool {
        self.tenants.get(&ObjectRef::new(namespace)).is_some()
    }

    /// The compiled policies of `namespace`, compiled again only when its
    /// ConfigMap changed.
    fn policies_of(&self, namespace: &str) -> Option<Compiled> {
        let name = autoglm_policy::config_map_name(namespace);
        let map = self
            .config_maps
            .get(&ObjectRef::new(&name).within(&self.system))?;
        let version = map.resource_version();
        if let Some(kept) = self.compiled.lock().get(namespace)
            && kept.resource_version == version
        {
            return Some(kept.clone());
        }
        let (policies, stages) =
            match TenantPolicies::from_data(&map.data.clone().unwrap_or_default()) {
                Ok(read) => (
                    autoglm_policy::compile_all(read.policies)
                        .map(Arc::new)
                        .map_err(|f| denial_message(std::slice::from_ref(&f))),
                    Arc::new(read.version_stages),
                ),
                Err(why) => (Err(why), Arc::default()),
            };
        let compiled = Compiled {
            resource_version: version,
            policies,
            stages,
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

    /// A `modelservices/scale` request as the update of the ModelService it
    /// scales: the cached object, and the same with the new replica count.
    /// `None` when the service is not in the cache (the API server will not
    /// find it either) or the Scale cannot be read.
    fn scaled(
        &self,
        request: &AdmissionRequest<DynamicObject>,
    ) -> Option<(DynamicObject, DynamicObject)> {
        let namespace = request.namespace.as_deref()?;
        let cached = self
            .services
            .get(&ObjectRef::new(&request.name).within(namespace))?;
        let replicas = request.object.as_ref()?.data["spec"]["replicas"].as_u64()?;
        let old: DynamicObject =
            serde_json::from_value(serde_json::to_value(&*cached).ok()?).ok()?;
        let mut new = old.clone();
        new.data["spec"]["replicas"] = replicas.into();
        Some((old, new))
    }

    /// The answer to one admission request.
    pub fn review(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let response = AdmissionResponse::from(request);
        if request
            .user_info
            .username
            .as_ref()
            .is_some_and(|user| self.trusted.contains(user))
        {
            return response;
        }
        if request.sub_resource.as_deref() == Some("scale") {
            return match self.scaled(request) {
                Some((old, new)) => self.judge(request, response, &new, Some(&old)),
                None => response,
            };
        }
        let Some(object) = &request.object else {
            return response;
        };
        let old = match (&request.operation, &request.old_object) {
            (Operation::Update, Some(old)) => Some(old),
            _ => None,
        };
        self.judge(request, response, object, old)
    }

    /// Judges `object` (replacing `old`, on an update) by its namespace's policies.
    fn judge(
        &self,
        request: &AdmissionRequest<DynamicObject>,
        response: AdmissionResponse,
        object: &DynamicObject,
        old: Option<&DynamicObject>,
    ) -> AdmissionResponse {
        let namespace = request.namespace.clone().unwrap_or_default();
        let Some(compiled) = self.policies_of(&namespace) else {
            if self.is_tenant(&namespace) {
                return response.deny(format!(
                    "the policies of tenant {namespace} are not known here yet: the console keeps them in ConfigMap {}/{}",
                    self.system,
                    autoglm_policy::config_map_name(&namespace)
                ));
            }
            return response;
        };
        let new = match manifest(object) {
            Ok(new) => new,
            Err(why) => return response.deny(format!("the ModelService cannot be read: {why}")),
        };
        let old = old.and_then(|old| manifest(old).ok());
        // The finalizer's removal and other metadata-only updates do not
        // change what is served: a policy added since must not block them.
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
            compiled
                .stages
                .get(&new.spec.model)
                .cloned()
                .unwrap_or_default(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::admission::AdmissionReview;
    use kube::runtime::{reflector, watcher};

    /// A judge whose only tenant namespace is `team`, with no policies' copy.
    fn judge(trusted: &[&str]) -> Judge {
        let (tenants, mut writer) = reflector::store();
        let mut team = Namespace::default();
        team.metadata.name = Some("team".into());
        writer.apply_watcher_event(&watcher::Event::Apply(team));
        Judge::new(
            "autoglm-system".into(),
            trusted.iter().map(|u| (*u).to_owned()).collect(),
            reflector::store().0,
            tenants,
            reflector::store().0,
        )
    }

    fn create_by(user: &str) -> AdmissionRequest<DynamicObject> {
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "1", "name": "chat", "namespace": "team", "operation": "CREATE",
                "kind": {"group": "autoglm.io", "version": "v1alpha1", "kind": "ModelService"},
                "resource": {"group": "autoglm.io", "version": "v1alpha1", "resource": "modelservices"},
                "userInfo": {"username": user},
                "object": {"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService",
                           "metadata": {"name": "chat", "namespace": "team"},
                           "spec": {"model": "m", "versions": [{"version": "1", "weight": 100}]}},
            },
        }))
        .unwrap();
        review.try_into().unwrap()
    }

    #[test]
    fn a_tenant_namespace_without_its_policies_refuses_all_but_the_trusted_console() {
        let console = "system:serviceaccount:autoglm:console";
        let judge = judge(&[console]);
        let refused = judge.review(&create_by("alice"));
        assert!(!refused.allowed);
        assert!(
            refused
                .result
                .message
                .contains("the policies of tenant team are not known here yet"),
            "{}",
            refused.result.message
        );
        assert!(judge.review(&create_by(console)).allowed);
    }
}
