//! The entries of [`table()`], one struct literal per route, in the order the
//! router mounts them and the OpenAPI document lists them.

use std::sync::Arc;

use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use schemars::{JsonSchema, Schema, SchemaGenerator};

use super::{Access, RequestBody, ResponseBody, Route, RouteSpec};
use crate::AppState;
use crate::api::alerts::{Received, RuleView, SilenceView};
use crate::api::evaluations::StartEvaluation;
use crate::api::{
    alerts, audit, auth, evaluations, keys, models, quota, rollouts, services, tasks, tenancy,
    usage, versions,
};
use autoglm_core::alert::incident::Mttr;
use autoglm_core::alert::{
    ActiveAlert, AlertRule, AlertmanagerPayload, Incident, Notification, SilenceSpec,
};
use autoglm_core::audit::{AuditRecord, ChainVerification};
use autoglm_core::evaluation::Evaluation;
use autoglm_core::quota::{Quota, TenantQuota};
use autoglm_core::rbac::Permission;
use autoglm_core::registry::{
    CreateModel, Model, ModelVersion, Page, RegisterPath, SetStage, UpdateModel,
};
use autoglm_core::security::{
    ApiKey, CreateApiKey, CreateTenant, CreateUser, CreatedApiKey, Identity, LoginRequest,
    LoginResponse, RateLimit, SetRole, Tenant, UsageRecord, User,
};
use autoglm_core::service::{ModelServiceManifest, Scale};
use autoglm_core::task::Task;
use autoglm_core::traffic::ServiceTraffic;

pub(super) fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

pub(super) struct Builder(pub(super) Vec<Route>);

/// A route's spec from its seven parts, the rest left at their defaults:
/// for the route files that list many routes one per call.
pub(super) const fn route(
    method: Method,
    path: &'static str,
    action: &'static str,
    summary: &'static str,
    access: Access,
    request: RequestBody,
    response: ResponseBody,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        action,
        summary,
        access,
        request,
        response,
        ..RouteSpec::DEFAULT
    }
}

impl Builder {
    pub(super) fn add(&mut self, spec: RouteSpec, handler: MethodRouter<AppState>) {
        assert!(
            !spec.path.is_empty() && !spec.action.is_empty() && !spec.summary.is_empty(),
            "a route names its path, action and summary: {spec:?}"
        );
        self.0.push(Route {
            spec: Arc::new(spec),
            handler,
        });
    }
}

const PAGING: &[(&str, &str)] = &[
    ("limit", "Most items to return, 1 to 1000 (default 100)"),
    ("page_token", "Token from the previous page"),
];

/// Every console API route.
pub fn table() -> Vec<Route> {
    use Access::{Authenticated, Permission as P, Public, SystemAdmin};
    use Permission::*;
    use RequestBody::{Json as In, None as NoBody, UploadOrJson};
    use ResponseBody::{Bytes, Json as Out, NoContent, Text};
    let mut b = Builder(Vec::new());

    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/auth/login",
            action: "auth.login",
            summary: "Exchange a user name and password for a session token",
            access: Public,
            request: In(schema::<LoginRequest>),
            response: Out(200, schema::<LoginResponse>),
            ..RouteSpec::DEFAULT
        },
        post(auth::login),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/auth/whoami",
            action: "auth.whoami",
            summary: "Describe the caller's credential",
            access: Authenticated,
            request: NoBody,
            response: Out(200, schema::<Identity>),
            ..RouteSpec::DEFAULT
        },
        get(auth::whoami),
    );

    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/tenants",
            action: "tenants.list",
            summary: "List tenants",
            access: SystemAdmin,
            request: NoBody,
            response: Out(200, schema::<Vec<Tenant>>),
            ..RouteSpec::DEFAULT
        },
        get(tenancy::list_tenants),
    );
    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/tenants",
            action: "tenants.create",
            summary: "Create a tenant",
            access: SystemAdmin,
            request: In(schema::<CreateTenant>),
            response: Out(201, schema::<Tenant>),
            ..RouteSpec::DEFAULT
        },
        post(tenancy::create_tenant),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/tenants/{name}/rate-limit",
            action: "tenants.get_rate_limit",
            summary: "Get a tenant's gateway limits (requests per second, tokens per minute)",
            access: SystemAdmin,
            request: NoBody,
            response: Out(200, schema::<RateLimit>),
            ..RouteSpec::DEFAULT
        },
        get(usage::get_tenant_limit),
    );
    b.add(
        RouteSpec {
            method: Method::PUT,
            path: "/api/v1/tenants/{name}/rate-limit",
            action: "tenants.set_rate_limit",
            summary: "Set a tenant's gateway limits; {} lifts them",
            access: SystemAdmin,
            request: In(schema::<RateLimit>),
            response: Out(200, schema::<RateLimit>),
            ..RouteSpec::DEFAULT
        },
        put(usage::set_tenant_limit),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/tenants/{name}/quota",
            action: "tenants.get_quota",
            summary: "Get a tenant's quota (CPU, memory, GPUs, replicas, tokens per day and month) with its use",
            access: SystemAdmin,
            request: NoBody,
            response: Out(200, schema::<TenantQuota>),
            ..RouteSpec::DEFAULT
        },
        get(quota::get_tenant),
    );
    b.add(
        RouteSpec {
            method: Method::PUT,
            path: "/api/v1/tenants/{name}/quota",
            action: "tenants.set_quota",
            summary: "Set a tenant's quota; {} lifts it (running replicas are kept)",
            access: SystemAdmin,
            request: In(schema::<Quota>),
            response: Out(200, schema::<Quota>),
            ..RouteSpec::DEFAULT
        },
        put(quota::set_tenant),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/quota",
            action: "quota.get",
            summary: "The caller's tenant's quota with what it holds and has spent",
            access: P(ServicesRead),
            request: NoBody,
            response: Out(200, schema::<TenantQuota>),
            ..RouteSpec::DEFAULT
        },
        get(quota::get_own),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/users",
            action: "users.list",
            summary: "List the users of the caller's tenant",
            access: P(UsersWrite),
            request: NoBody,
            response: Out(200, schema::<Vec<User>>),
            ..RouteSpec::DEFAULT
        },
        get(tenancy::list_users),
    );
    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/users",
            action: "users.create",
            summary: "Create a user with a role in the caller's tenant",
            access: P(UsersWrite),
            request: In(schema::<CreateUser>),
            response: Out(201, schema::<User>),
            ..RouteSpec::DEFAULT
        },
        post(tenancy::create_user),
    );
    b.add(
        RouteSpec {
            method: Method::PUT,
            path: "/api/v1/users/{username}/role",
            action: "users.set_role",
            summary: "Set a user's role in the caller's tenant",
            access: P(UsersWrite),
            request: In(schema::<SetRole>),
            response: Out(200, schema::<User>),
            ..RouteSpec::DEFAULT
        },
        put(tenancy::set_role),
    );

    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/keys",
            action: "keys.list",
            summary: "List API keys (the caller's; every key of the tenant for admins with all=true)",
            access: P(KeysWrite),
            request: NoBody,
            response: Out(200, schema::<Vec<ApiKey>>),
            query: &[("all", "true: every key of the tenant (admins)")],
            ..RouteSpec::DEFAULT
        },
        get(keys::list),
    );
    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/keys",
            action: "keys.create",
            summary: "Create an API key; the secret is shown only in this answer",
            access: P(KeysWrite),
            request: In(schema::<CreateApiKey>),
            response: Out(201, schema::<CreatedApiKey>),
            replayable: false,
            ..RouteSpec::DEFAULT
        },
        post(keys::create),
    );
    b.add(
        RouteSpec {
            method: Method::DELETE,
            path: "/api/v1/keys/{id}",
            action: "keys.revoke",
            summary: "Revoke an API key",
            access: P(KeysWrite),
            request: NoBody,
            response: Out(200, schema::<ApiKey>),
            ..RouteSpec::DEFAULT
        },
        delete(keys::revoke),
    );

    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/models",
            action: "models.list",
            summary: "List models, by name",
            access: P(ModelsRead),
            request: NoBody,
            response: Out(200, schema::<Page<Model>>),
            cached: true,
            query: &[
                ("limit", "Most items to return, 1 to 1000 (default 100)"),
                ("page_token", "Token from the previous page"),
                ("q", "Only names containing this"),
                (
                    "label",
                    "Only models with these labels: key=value[,key=value...]",
                ),
                ("stage", "Only models with a version in this stage"),
            ],
            ..RouteSpec::DEFAULT
        },
        get(models::list),
    );
    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/models",
            action: "models.create",
            summary: "Register a model",
            access: P(ModelsWrite),
            request: In(schema::<CreateModel>),
            response: Out(201, schema::<Model>),
            ..RouteSpec::DEFAULT
        },
        post(models::create),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/models/{name}",
            action: "models.get",
            summary: "Get a model",
            access: P(ModelsRead),
            request: NoBody,
            response: Out(200, schema::<Model>),
            cached: true,
            ..RouteSpec::DEFAULT
        },
        get(models::get_one),
    );
    b.add(
        RouteSpec {
            method: Method::PATCH,
            path: "/api/v1/models/{name}",
            action: "models.update",
            summary: "Update a model's description or labels",
            access: P(ModelsWrite),
            request: In(schema::<UpdateModel>),
            response: Out(200, schema::<Model>),
            ..RouteSpec::DEFAULT
        },
        patch(models::update),
    );
    b.add(
        RouteSpec {
            method: Method::DELETE,
            path: "/api/v1/models/{name}",
            action: "models.delete",
            summary: "Delete a model and all its versions (none may be in use)",
            access: P(ModelsDelete),
            request: NoBody,
            response: NoContent,
            ..RouteSpec::DEFAULT
        },
        delete(models::delete_one),
    );

    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/models/{name}/versions",
            action: "versions.list",
            summary: "List a model's versions, newest first",
            access: P(ModelsRead),
            request: NoBody,
            response: Out(200, schema::<Page<ModelVersion>>),
            cached: true,
            query: PAGING,
            ..RouteSpec::DEFAULT
        },
        get(versions::list),
    );
    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/models/{name}/versions",
            action: "versions.create",
            summary: "Create a version: multipart upload (a `metadata` JSON part, then `artifact` file parts), or JSON to register a server path",
            access: P(ModelsWrite),
            request: UploadOrJson(schema::<RegisterPath>),
            response: Out(201, schema::<ModelVersion>),
            ..RouteSpec::DEFAULT
        },
        post(versions::create),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/models/{name}/versions/{version}",
            action: "versions.get",
            summary: "Get a version",
            access: P(ModelsRead),
            request: NoBody,
            response: Out(200, schema::<ModelVersion>),
            cached: true,
            ..RouteSpec::DEFAULT
        },
        get(versions::get_one),
    );
    b.add(
        RouteSpec {
            method: Method::DELETE,
            path: "/api/v1/models/{name}/versions/{version}",
            action: "versions.delete",
            summary: "Delete a version not in use",
            access: P(ModelsDelete),
            request: NoBody,
            response: NoContent,
            ..RouteSpec::DEFAULT
        },
        delete(versions::delete_one),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/models/{name}/versions/{version}/artifact",
            action: "versions.download",
            summary: "Download a single-file version's artifact",
            access: P(ModelsRead),
            request: NoBody,
            response: Bytes,
            ..RouteSpec::DEFAULT
        },
        get(versions::download),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/models/{name}/versions/{version}/files/{*path}",
            action: "versions.download_file",
            summary: "Download one file of a version",
            access: P(ModelsRead),
            request: NoBody,
            response: Bytes,
            ..RouteSpec::DEFAULT
        },
        get(versions::download_file),
    );
    b.add(
        RouteSpec {
            method: Method::PUT,
            path: "/api/v1/models/{name}/versions/{version}/stage",
            action: "versions.set_stage",
            summary: "Move a version to another stage (a command: send X-Autoglm-Timestamp and X-Autoglm-Nonce)",
            access: P(ModelsPromote),
            request: In(schema::<SetStage>),
            response: Out(200, schema::<ModelVersion>),
            command: true,
            ..RouteSpec::DEFAULT
        },
        put(versions::set_stage),
    );

    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/models/{name}/versions/{version}/evaluations",
            action: "evaluations.create",
            summary: "Evaluate a version: run a JSONL dataset through the ready replicas of the version in a service that serves it, and record latency, throughput, errors and a score against the lines' labels. Answers 202 with the evaluate task (Location: the task)",
            access: P(ModelsWrite),
            request: In(schema::<StartEvaluation>),
            response: Out(202, schema::<Task>),
            body_limit: evaluations::DATASET_LIMIT,
            ..RouteSpec::DEFAULT
        },
        post(evaluations::start),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/models/{name}/versions/{version}/evaluations",
            action: "evaluations.list",
            summary: "List a version's evaluations, newest first (the last 100), with what each measured",
            access: P(ModelsRead),
            request: NoBody,
            response: Out(200, schema::<Page<Evaluation>>),
            ..RouteSpec::DEFAULT
        },
        get(evaluations::list),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/models/{name}/versions/{version}/evaluations/{id}",
            action: "evaluations.get",
            summary: "Get one evaluation of a version",
            access: P(ModelsRead),
            request: NoBody,
            response: Out(200, schema::<Evaluation>),
            ..RouteSpec::DEFAULT
        },
        get(evaluations::get_one),
    );

    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/services",
            action: "services.list",
            summary: "List model services, by name, with their status",
            access: P(ServicesRead),
            request: NoBody,
            response: Out(200, schema::<Page<ModelServiceManifest>>),
            query: &[
                ("limit", "Most items to return, 1 to 1000 (default 100)"),
                ("page_token", "Token from the previous page"),
                (
                    "label",
                    "Only services with these labels: key=value[,key=value...]",
                ),
                ("model", "Only services of this model"),
            ],
            ..RouteSpec::DEFAULT
        },
        get(services::list),
    );
    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/services",
            action: "services.create",
            summary: "Create a model service from its manifest; its model and versions must exist. Answers 202 with the deploy task that takes it to the platform (Location: the task)",
            access: P(ServicesWrite),
            request: In(schema::<ModelServiceManifest>),
            response: Out(202, schema::<Task>),
            ..RouteSpec::DEFAULT
        },
        post(services::create),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/services/{name}",
            action: "services.get",
            summary: "Get a model service: manifest, generation and status",
            access: P(ServicesRead),
            request: NoBody,
            response: Out(200, schema::<ModelServiceManifest>),
            ..RouteSpec::DEFAULT
        },
        get(services::get_one),
    );
    b.add(
        RouteSpec {
            method: Method::PUT,
            path: "/api/v1/services/{name}",
            action: "services.update",
            summary: "Replace a model service's labels, annotations and spec (generation +1 when the spec changes; metadata.generation, when sent, must be current). Answers 202 with the update, scale or trafficSplit task that carries the change, or 200 with the service when nothing changed",
            access: P(ServicesWrite),
            request: In(schema::<ModelServiceManifest>),
            response: Out(202, schema::<Task>),
            ..RouteSpec::DEFAULT
        },
        put(services::update),
    );
    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/services/{name}/scale",
            action: "services.scale",
            summary: "Set a fixed replica count per version (not for autoscaled services); answers 202 with the scale task",
            access: P(ServicesWrite),
            request: In(schema::<Scale>),
            response: Out(202, schema::<Task>),
            ..RouteSpec::DEFAULT
        },
        post(services::scale),
    );
    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/services/{name}/restart",
            action: "services.restart",
            summary: "Replace every replica of a model service, spec unchanged; answers 202 with the restart task",
            access: P(ServicesWrite),
            request: NoBody,
            response: Out(202, schema::<Task>),
            ..RouteSpec::DEFAULT
        },
        post(services::restart),
    );
    b.add(
        RouteSpec {
            method: Method::DELETE,
            path: "/api/v1/services/{name}",
            action: "services.delete",
            summary: "Delete a model service; answers 202 with the delete task that takes it off the platform",
            access: P(ServicesWrite),
            request: NoBody,
            response: Out(202, schema::<Task>),
            ..RouteSpec::DEFAULT
        },
        delete(services::delete_one),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/services/{name}/rollout",
            action: "services.rollout",
            summary: "A service's rollout: phase, step, the canary's weight, analysis results, and its steps",
            access: P(ServicesRead),
            request: NoBody,
            response: Out(200, schema::<rollouts::RolloutView>),
            ..RouteSpec::DEFAULT
        },
        get(rollouts::get_one),
    );
    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/services/{name}/rollout/{action}",
            action: "services.rollout_action",
            summary: "Pause, resume, promote (skip the remaining steps) or abort (all traffic back on the stable version) a service's rollout",
            access: P(ServicesWrite),
            request: NoBody,
            response: Out(200, schema::<rollouts::RolloutView>),
            ..RouteSpec::DEFAULT
        },
        post(rollouts::act),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/tasks",
            action: "tasks.list",
            summary: "List tasks, newest first, with their state, progress and result",
            access: P(ServicesRead),
            request: NoBody,
            response: Out(200, schema::<Page<Task>>),
            query: &[
                ("limit", "Most items to return, 1 to 1000 (default 100)"),
                ("page_token", "Token from the previous page"),
                (
                    "state",
                    "Only tasks in this state: pending, running, succeeded, failed, cancelled",
                ),
                (
                    "kind",
                    "Only tasks of this kind: deploy, update, scale, restart, trafficSplit, delete, rolloutStep, rollback",
                ),
                (
                    "target",
                    "Only tasks acting on this target, e.g. services/chat",
                ),
            ],
            ..RouteSpec::DEFAULT
        },
        get(tasks::list),
    );
    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/tasks",
            action: "tasks.create",
            summary: "Start a restart, scale or delete of a service as a task, by name; answers 202 with the task",
            access: P(ServicesWrite),
            request: In(schema::<tasks::CreateTask>),
            response: Out(202, schema::<Task>),
            ..RouteSpec::DEFAULT
        },
        post(tasks::create),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/tasks/{id}",
            action: "tasks.get",
            summary: "Get a task; with wait=30s (at most 60s), answers once it is final or the wait is over",
            access: P(ServicesRead),
            request: NoBody,
            response: Out(200, schema::<Task>),
            query: &[("wait", "How long to wait for the task to be final, e.g. 30s")],
            ..RouteSpec::DEFAULT
        },
        get(tasks::get_one),
    );
    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/tasks/{id}/cancel",
            action: "tasks.cancel",
            summary: "Cancel a pending or running task; its service goes back to what it was before the task's change, unless a later change superseded it",
            access: P(ServicesWrite),
            request: NoBody,
            response: Out(202, schema::<Task>),
            ..RouteSpec::DEFAULT
        },
        post(tasks::cancel),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/services/{name}/replicas/{replica}/logs",
            action: "services.logs",
            summary: "The end of a replica's log (stdout and stderr), as text",
            access: P(ServicesRead),
            request: NoBody,
            response: Text,
            query: &[
                (
                    "bytes",
                    "How many bytes from the end, 1 to 1048576 (default 65536, or all of that with trace_id)",
                ),
                (
                    "trace_id",
                    "Only the lines of this W3C trace (32 lowercase hex digits), as every request's log lines carry it",
                ),
            ],
            ..RouteSpec::DEFAULT
        },
        get(services::logs),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/services/{name}/traffic",
            action: "services.traffic",
            summary: "The last hour of a service's traffic per version in 10-second intervals: requests per second, error ratio, latency percentiles",
            access: P(ServicesRead),
            request: NoBody,
            response: Out(200, schema::<ServiceTraffic>),
            ..RouteSpec::DEFAULT
        },
        get(services::traffic),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/usage",
            action: "usage.list",
            summary: "Gateway usage of the caller's tenant per key, service, version and minute (or step)",
            access: P(ServicesRead),
            request: NoBody,
            response: Out(200, schema::<Vec<UsageRecord>>),
            query: &[
                ("key", "Only this API key id (or user:NAME for sessions)"),
                ("service", "Only this service"),
                ("since", "Only minutes at or after this RFC 3339 time"),
                (
                    "step",
                    "Sum the minutes into steps of this duration (1m to 24h, whole minutes, e.g. 5m or 1h); rows start at their step's first minute. At most 10,000 rows are returned",
                ),
            ],
            ..RouteSpec::DEFAULT
        },
        get(usage::list),
    );

    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/audit",
            action: "audit.list",
            summary: "List audit records, newest first",
            access: P(AuditRead),
            request: NoBody,
            response: Out(200, schema::<Page<AuditRecord>>),
            query: &[
                ("limit", "Most items to return, 1 to 1000 (default 100)"),
                ("page_token", "Token from the previous page"),
                ("actor", "Only this actor (user:NAME, key:ID)"),
                ("action", "Only this action (models.create...)"),
                ("target", "Only targets starting with this"),
                ("outcome", "Only this outcome (success, or an error code)"),
                ("since", "Only records at or after this RFC 3339 time"),
                ("until", "Only records before this RFC 3339 time"),
            ],
            ..RouteSpec::DEFAULT
        },
        get(audit::list),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/audit/verify",
            action: "audit.verify",
            summary: "Verify the audit log's hash chain (it spans every tenant, so system admins only)",
            access: SystemAdmin,
            request: NoBody,
            response: Out(200, schema::<ChainVerification>),
            ..RouteSpec::DEFAULT
        },
        get(audit::verify),
    );
    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/alerts",
            action: "alerts.active",
            summary: "The alert series pending or firing now, with their values, labels and the silence that holds each back",
            access: P(AlertsRead),
            request: NoBody,
            response: Out(200, schema::<Page<ActiveAlert>>),
            ..RouteSpec::DEFAULT
        },
        get(alerts::active),
    );

    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/alerts/rules",
            action: "alertRules.list",
            summary: "List alert rules by name, each with its state (inactive, pending, firing) and its pending and firing series",
            access: P(AlertsRead),
            request: NoBody,
            response: Out(200, schema::<Page<RuleView>>),
            ..RouteSpec::DEFAULT
        },
        get(alerts::list_rules),
    );

    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/alerts/rules",
            action: "alertRules.create",
            summary: "Create an alert rule: a metric of each version of a service (or every service), a condition over it held for `for`, severity, labels, webhook receivers and a playbook. Every wrong field is refused at once with its path",
            access: P(AlertsWrite),
            request: In(schema::<AlertRule>),
            response: Out(201, schema::<RuleView>),
            ..RouteSpec::DEFAULT
        },
        post(alerts::create_rule),
    );

    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/alerts/rules/{name}",
            action: "alertRules.get",
            summary: "Get one alert rule with its state",
            access: P(AlertsRead),
            request: NoBody,
            response: Out(200, schema::<RuleView>),
            ..RouteSpec::DEFAULT
        },
        get(alerts::get_rule),
    );

    b.add(
        RouteSpec {
            method: Method::PUT,
            path: "/api/v1/alerts/rules/{name}",
            action: "alertRules.replace",
            summary: "Create or replace an alert rule (201 when new)",
            access: P(AlertsWrite),
            request: In(schema::<AlertRule>),
            response: Out(200, schema::<RuleView>),
            ..RouteSpec::DEFAULT
        },
        put(alerts::replace_rule),
    );

    b.add(
        RouteSpec {
            method: Method::DELETE,
            path: "/api/v1/alerts/rules/{name}",
            action: "alertRules.delete",
            summary: "Delete an alert rule; its incidents stay",
            access: P(AlertsWrite),
            request: NoBody,
            response: NoContent,
            ..RouteSpec::DEFAULT
        },
        delete(alerts::delete_rule),
    );

    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/alerts/silences",
            action: "silences.list",
            summary: "List silences, newest first, with their state (active, pending, expired)",
            access: P(AlertsRead),
            request: NoBody,
            response: Out(200, schema::<Page<SilenceView>>),
            ..RouteSpec::DEFAULT
        },
        get(alerts::list_silences),
    );

    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/alerts/silences",
            action: "silences.create",
            summary: "Silence the alerts whose labels match every matcher, from startsAt (default now) to endsAt: they still fire and open incidents, but notify no one and run no playbook",
            access: P(AlertsWrite),
            request: In(schema::<SilenceSpec>),
            response: Out(201, schema::<SilenceView>),
            ..RouteSpec::DEFAULT
        },
        post(alerts::create_silence),
    );

    b.add(
        RouteSpec {
            method: Method::DELETE,
            path: "/api/v1/alerts/silences/{id}",
            action: "silences.expire",
            summary: "Expire a silence now",
            access: P(AlertsWrite),
            request: NoBody,
            response: Out(200, schema::<SilenceView>),
            ..RouteSpec::DEFAULT
        },
        delete(alerts::expire_silence),
    );

    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/alerts/notifications",
            action: "notifications.list",
            summary: "List the tenant's notifications, newest first; `state=dead` lists the dead letters (a receiver that failed every attempt)",
            access: P(AlertsRead),
            request: NoBody,
            response: Out(200, schema::<Page<Notification>>),
            query: &[("state", "pending, delivered or dead")],
            ..RouteSpec::DEFAULT
        },
        get(alerts::notifications),
    );

    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/alerts/receiver",
            action: "alerts.receive",
            summary: "Alertmanager's webhook receiver: a firing alert with a `service` label opens (or keeps) an incident and runs the playbook of the rule named by its `alertname`; a resolved one resolves it",
            access: P(AlertsWrite),
            request: In(schema::<AlertmanagerPayload>),
            response: Out(200, schema::<Received>),
            ..RouteSpec::DEFAULT
        },
        post(alerts::receive),
    );

    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/incidents",
            action: "incidents.list",
            summary: "List incidents, newest first, without their timelines",
            access: P(AlertsRead),
            request: NoBody,
            response: Out(200, schema::<Page<Incident>>),
            query: &[
                ("state", "open, acknowledged or resolved"),
                ("service", "only this service's"),
                ("rule", "only this rule's"),
                ("limit", "at most this many, 1 to 1000 (100)"),
            ],
            ..RouteSpec::DEFAULT
        },
        get(alerts::list_incidents),
    );

    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/incidents/mttr",
            action: "incidents.mttr",
            summary: "Mean time to resolve per service and rule, over the last 1000 incidents",
            access: P(AlertsRead),
            request: NoBody,
            response: Out(200, schema::<Page<Mttr>>),
            ..RouteSpec::DEFAULT
        },
        get(alerts::mean_time_to_resolve),
    );

    b.add(
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/incidents/{id}",
            action: "incidents.get",
            summary: "Get an incident with its timeline",
            access: P(AlertsRead),
            request: NoBody,
            response: Out(200, schema::<Incident>),
            ..RouteSpec::DEFAULT
        },
        get(alerts::get_incident),
    );

    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/incidents/{id}/acknowledge",
            action: "incidents.acknowledge",
            summary: "Acknowledge an open incident",
            access: P(AlertsWrite),
            request: NoBody,
            response: Out(200, schema::<Incident>),
            ..RouteSpec::DEFAULT
        },
        post(alerts::acknowledge),
    );

    b.add(
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/incidents/{id}/resolve",
            action: "incidents.resolve",
            summary: "Resolve an incident by hand",
            access: P(AlertsWrite),
            request: NoBody,
            response: Out(200, schema::<Incident>),
            ..RouteSpec::DEFAULT
        },
        post(alerts::resolve),
    );
    super::config::add(&mut b);
    super::policies::add(&mut b);
    super::filters::add(&mut b);
    b.0
}
