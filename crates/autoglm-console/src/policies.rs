//! Policies as code in the write path: each tenant's policies (and the
//! global ones) compiled once per change, and every ModelService write, and
//! every model write for policies that ask for models, judged by them
//! inside its transaction, so that the decision and the write see the same
//! registry.
//!
//! A denial refuses the write with `policy_violation` and the findings;
//! warnings go back in `Warning` headers (as Kubernetes sends admission
//! warnings); every decision of a tenant with policies is audited beside
//! the change (`policies.decide`), dry-run findings only there.

use std::collections::HashMap;
use std::sync::Arc;

use autoglm_core::audit::AuditEvent;
use autoglm_core::config::ConfigVersion;
use autoglm_core::error::PolicyViolation;
use autoglm_core::service::{ModelServiceManifest, StoredService};
use autoglm_policy::{Caller, CompiledPolicy, Decision, Kind, Operation, Review};
use autoglm_store::{Connection, Store, StoreError, Transaction, policies, registry, services};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// A tenant's policies, compiled.
pub type PolicySet = Arc<Vec<CompiledPolicy>>;

/// The compiled policies of each tenant, valid while the store's policy
/// version stays what it was when they were loaded.
#[derive(Debug, Default)]
pub struct PolicySets {
    by_tenant: Mutex<HashMap<String, (u64, PolicySet)>>,
}

impl PolicySets {
    /// The set kept for `tenant`, if it was loaded at policy version `version`.
    fn cached(&self, tenant: &str, version: u64) -> Option<PolicySet> {
        match self.by_tenant.lock().get(tenant) {
            Some((at, set)) if *at == version => Some(set.clone()),
            _ => None,
        }
    }

    /// The policies that judge `tenant`'s writes, the global ones first
    /// (blocking: it may read the store and compile).
    pub fn of(&self, store: &Store, tenant: &str) -> Result<PolicySet, StoreError> {
        // Read before loading: a change that lands meanwhile leaves the set stale.
        let version = store.policy_version();
        if let Some(set) = self.cached(tenant, version) {
            return Ok(set);
        }
        let named =
            autoglm_policy::parse_all(store.judging_policies(tenant)?).map_err(StoreError::Sync)?;
        let compiled = autoglm_policy::compile_all(named).map_err(|f| {
            StoreError::Denied(vec![PolicyViolation {
                policy: f.policy,
                rule: f.rule,
                message: f.message,
            }])
        })?;
        let set = Arc::new(compiled);
        self.by_tenant
            .lock()
            .insert(tenant.to_owned(), (version, set.clone()));
        Ok(set)
    }
}

/// The review of a ModelService write, as its policies see it, with the
/// context read through `conn` (the write's transaction, or a reader for
/// an explanation): `versionStages` of its model, and `tenantGpus`, the
/// GPUs the tenant's other services may hold.
pub fn service_review(
    conn: &Connection,
    tenant: &str,
    caller: Caller,
    old: Option<&ModelServiceManifest>,
    new: &ModelServiceManifest,
) -> Result<Review, StoreError> {
    let stages = policies::version_stages(conn, tenant, &new.spec.model)?;
    let others = services::other_services(conn, tenant, &new.metadata.name)?;
    let tenant_gpus = others.iter().map(|o| o.manifest.spec.gpus_at_most()).sum();
    Ok(Review::service(
        tenant,
        caller,
        old,
        new,
        stages,
        tenant_gpus,
    ))
}

/// A registry model as its policies see it: the manifest `autoglm apply`
/// takes (`kind: Model`), with its labels in `metadata` as a service's are.
pub fn model_resource(model: &autoglm_core::registry::Model) -> Value {
    json!({
        "apiVersion": "autoglm.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": model.name, "namespace": model.tenant, "labels": model.labels},
        "spec": {"description": model.description, "labels": model.labels},
    })
}

/// A model version as its policies see it: its record as the API answers
/// it (`spec.stage`, `spec.framework`, `spec.task`, `spec.params`,
/// `spec.format`, `spec.files`...) under the name `MODEL/VERSION`, with its
/// model's labels in `metadata`.
pub fn version_resource(
    model: &autoglm_core::registry::Model,
    version: &autoglm_core::registry::ModelVersion,
) -> Value {
    json!({
        "apiVersion": "autoglm.io/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": format!("{}/{}", version.model, version.version),
                     "namespace": model.tenant, "labels": model.labels},
        "spec": version,
    })
}

/// A config version as its policies see it: `GROUP/KEY`, its environment
/// as the `environment` label (as a service's), and what was published.
pub fn config_resource(v: &ConfigVersion) -> Value {
    json!({
        "apiVersion": "autoglm.io/v1alpha1",
        "kind": "Config",
        "metadata": {"name": format!("{}/{}", v.group, v.key),
                     "labels": {"environment": v.environment}},
        "spec": {"environment": v.environment, "group": v.group, "key": v.key,
                 "format": v.format, "content": v.content, "version": v.version,
                 "md5": v.md5, "author": v.author, "message": v.message},
    })
}

/// The review of a write of `kind` (a create when there is no `old`).
pub fn review_of(
    kind: Kind,
    tenant: &str,
    caller: Caller,
    old: Option<Value>,
    new: Value,
) -> Review {
    Review {
        kind,
        operation: if old.is_some() {
            Operation::Update
        } else {
            Operation::Create
        },
        resource: new,
        old_resource: old,
        caller,
        tenant: tenant.to_owned(),
        context: json!({}),
    }
}

/// The caller of a request, as policies see it.
pub fn caller_of(principal: &autoglm_auth::Principal) -> Caller {
    Caller {
        actor: principal.actor.clone(),
        username: principal.username.clone(),
        role: principal.grant.role.as_str().to_owned(),
    }
}

/// Judges a write by `set`: refuses it (nothing is written) when an
/// enforced policy found something; otherwise audits the decision beside
/// the change (when any policy was asked) and returns the warnings.
pub fn judge(
    tx: &Transaction<'_>,
    set: &[CompiledPolicy],
    review: &Review,
    audit: &AuditEvent,
) -> Result<Vec<String>, StoreError> {
    let decision = autoglm_policy::decide(set.iter(), review);
    if !decision.allowed() {
        return Err(StoreError::Denied(
            decision
                .denials
                .into_iter()
                .map(|f| PolicyViolation {
                    policy: f.policy,
                    rule: f.rule,
                    message: f.message,
                })
                .collect(),
        ));
    }
    if decision.evaluated > 0 {
        autoglm_store::append_audit(
            tx,
            &AuditEvent {
                action: "policies.decide".into(),
                outcome: outcome(&decision),
                ..audit.clone()
            },
        )?;
    }
    Ok(decision
        .warnings
        .iter()
        .map(|f| format!("policy {}: {}", f.policy, f.message))
        .collect())
}

/// A decision in the audit's words: `allowed`, then its findings.
fn outcome(decision: &Decision) -> String {
    let mut outcome = format!("allowed by {} policies", decision.evaluated);
    for (kind, findings) in [("warn", &decision.warnings), ("dryrun", &decision.dry_run)] {
        for f in findings {
            outcome.push_str(&format!("; {kind} {}/{}: {}", f.policy, f.rule, f.message));
        }
    }
    outcome
}

/// Adds each warning as a `Warning: 299 - "…"` header (RFC 7234's
/// miscellaneous persistent warning, as kube-apiserver sends them).
pub fn add_warnings(headers: &mut axum::http::HeaderMap, warnings: &[String]) {
    for warning in warnings {
        let text = warning
            .replace(['"', '\\'], "'")
            .replace(|c: char| c.is_control(), " ");
        if let Ok(value) = axum::http::HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            headers.append(axum::http::header::WARNING, value);
        }
    }
}

/// The policies of a request's tenant, read before its write, and the
/// warnings its judgement leaves for the answer.
#[derive(Debug, Clone)]
pub struct Judged {
    set: PolicySet,
    caller: Caller,
    warnings: Arc<Mutex<Vec<String>>>,
}

impl Judged {
    /// Reads (and if need be compiles) the tenant's policies.
    pub async fn new(
        state: &crate::AppState,
        ctx: &crate::context::Ctx,
    ) -> crate::error::ApiResult<Judged> {
        Judged::of(state, &ctx.principal).await
    }

    /// The policies of `principal`'s tenant, judging its writes.
    pub async fn of(
        state: &crate::AppState,
        principal: &autoglm_auth::Principal,
    ) -> crate::error::ApiResult<Judged> {
        let (sets, tenant) = (state.policies.clone(), principal.grant.tenant.clone());
        // Kept sets are read on the spot: only loading one needs the blocking pool.
        let set = match sets.cached(&tenant, state.store.policy_version()) {
            Some(set) => set,
            None => crate::api::read(state, move |s| sets.of(s, &tenant)).await?,
        };
        Ok(Judged {
            set,
            caller: caller_of(principal),
            warnings: Arc::default(),
        })
    }

    /// Judges a service's create or update inside its transaction.
    pub fn service(
        &self,
        tx: &Transaction<'_>,
        tenant: &str,
        old: Option<&StoredService>,
        new: &StoredService,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        if self.set.is_empty() {
            return Ok(());
        }
        let old = old.map(|o| &o.manifest);
        let review = service_review(tx, tenant, self.caller.clone(), old, &new.manifest)?;
        let mut warnings = judge(tx, &self.set, &review, audit)?;
        warnings.extend(self.promotion(tx, tenant, old, &new.manifest, audit)?);
        *self.warnings.lock() = warnings;
        Ok(())
    }

    /// A write that starts a rollout with `promoteToProduction` asks, in
    /// effect, for its canary's move to production when it ends (which the
    /// rollout's task makes without a caller): that stage change is judged
    /// now, by the policies that ask about versions.
    fn promotion(
        &self,
        tx: &Transaction<'_>,
        tenant: &str,
        old: Option<&ModelServiceManifest>,
        new: &ModelServiceManifest,
        audit: &AuditEvent,
    ) -> Result<Vec<String>, StoreError> {
        let promotes = new
            .spec
            .rollout
            .as_ref()
            .is_some_and(|r| r.promote_to_production);
        let applies = self
            .set
            .iter()
            .any(|p| p.spec.applies_to(Kind::ModelVersion));
        let Some(old) = old.filter(|_| promotes && applies) else {
            return Ok(Vec::new());
        };
        // The canary is the version the write brings in (stored beside the
        // stable one, at the rollout's first weight).
        let added: Vec<&str> = new
            .spec
            .versions
            .iter()
            .map(|v| v.version.as_str())
            .filter(|v| !old.spec.versions.iter().any(|o| o.version == *v))
            .collect();
        let Some(version) = (match added.as_slice() {
            [canary] => canary.parse::<i64>().ok(),
            _ => None,
        }) else {
            return Ok(Vec::new());
        };
        let model = registry::get_model(tx, tenant, &new.spec.model)?;
        let before = registry::get_version(tx, tenant, &new.spec.model, version)?.version;
        if before.stage == autoglm_core::stage::Stage::Production {
            return Ok(Vec::new());
        }
        let after = autoglm_core::registry::ModelVersion {
            stage: autoglm_core::stage::Stage::Production,
            ..before.clone()
        };
        let review = review_of(
            Kind::ModelVersion,
            tenant,
            self.caller.clone(),
            Some(version_resource(&model, &before)),
            version_resource(&model, &after),
        );
        judge(tx, &self.set, &review, audit)
    }

    /// Judges a model's create or update inside its transaction.
    pub fn model(
        &self,
        tx: &Transaction<'_>,
        tenant: &str,
        old: Option<&autoglm_core::registry::Model>,
        new: &autoglm_core::registry::Model,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.resource(
            tx,
            Kind::Model,
            tenant,
            old.map(model_resource),
            || model_resource(new),
            audit,
        )
    }

    /// Judges a write of `kind` inside its transaction: `new` is built only
    /// when a policy asks about the kind.
    pub fn resource(
        &self,
        tx: &Transaction<'_>,
        kind: Kind,
        tenant: &str,
        old: Option<Value>,
        new: impl FnOnce() -> Value,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        if !self.set.iter().any(|p| p.spec.applies_to(kind)) {
            return Ok(());
        }
        let review = review_of(kind, tenant, self.caller.clone(), old, new());
        *self.warnings.lock() = judge(tx, &self.set, &review, audit)?;
        Ok(())
    }

    /// Judges each config version a change publishes (a delete is not
    /// judged), with the key's version before it as `oldResource`.
    pub fn configs(
        &self,
        tx: &Transaction<'_>,
        tenant: &str,
        versions: &[&ConfigVersion],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        if !self.set.iter().any(|p| p.spec.applies_to(Kind::Config)) {
            return Ok(());
        }
        let mut warnings = Vec::new();
        for v in versions.iter().filter(|v| !v.deleted) {
            let at = autoglm_store::config::KeyPath {
                tenant,
                environment: &v.environment,
                group: &v.group,
                key: &v.key,
            };
            let old = match v.version {
                0 | 1 => None,
                n => Some(autoglm_store::config::version(tx, at, n - 1)?)
                    .filter(|o| !o.deleted)
                    .map(|o| config_resource(&o)),
            };
            let review = review_of(
                Kind::Config,
                tenant,
                self.caller.clone(),
                old,
                config_resource(v),
            );
            warnings.extend(judge(tx, &self.set, &review, audit)?);
        }
        *self.warnings.lock() = warnings;
        Ok(())
    }

    /// The warnings of the judgement, as `Warning` headers of `response`.
    pub fn warn(&self, response: &mut axum::response::Response) {
        add_warnings(response.headers_mut(), &self.warnings.lock());
    }

    /// The JSON answer, with the warnings as headers.
    pub fn respond(
        &self,
        status: axum::http::StatusCode,
        body: Vec<u8>,
    ) -> axum::response::Response {
        let mut response = crate::context::json_response(status, body);
        self.warn(&mut response);
        response
    }
}
