//! The route table: every console endpoint with what it needs, in one place.
//!
//! The router, the guard layer, the OpenAPI document and the RBAC test are all
//! built from [`table`], so a route cannot exist without declaring its access,
//! and the document cannot miss a route.

use std::sync::Arc;

use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::AppState;
use crate::api::{audit, auth, keys, models, services, tenancy, usage, versions};
use autoglm_core::audit::{AuditRecord, ChainVerification};
use autoglm_core::rbac::Permission;
use autoglm_core::registry::{
    CreateModel, Model, ModelVersion, Page, RegisterPath, SetStage, UpdateModel,
};
use autoglm_core::security::{
    ApiKey, CreateApiKey, CreateTenant, CreateUser, CreatedApiKey, Identity, LoginRequest,
    LoginResponse, RateLimit, SetRole, Tenant, UsageRecord, User,
};
use autoglm_core::service::{ModelServiceManifest, Scale};
use autoglm_core::traffic::ServiceTraffic;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials.
    Public,
    /// Any valid credential.
    Authenticated,
    /// A credential whose grant allows this permission.
    Permission(Permission),
    /// An admin of the system tenant.
    SystemAdmin,
}

/// A function adding a type's schema to the document.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// What a route accepts as a body.
#[derive(Debug, Clone, Copy)]
pub enum RequestBody {
    /// No body.
    None,
    /// A JSON document.
    Json(SchemaFn),
    /// `multipart/form-data` upload, or a JSON document.
    UploadOrJson(SchemaFn),
}

/// What a route answers on success.
#[derive(Debug, Clone, Copy)]
pub enum ResponseBody {
    /// JSON with this status.
    Json(u16, SchemaFn),
    /// 204 without a body.
    NoContent,
    /// Raw bytes (`application/octet-stream`).
    Bytes,
    /// UTF-8 text (`text/plain`).
    Text,
}

/// One endpoint.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// Path template, axum syntax (`{name}`, `{*path}`).
    pub path: &'static str,
    /// Operation id, and the audit action of mutating routes.
    pub action: &'static str,
    /// One line for the document.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Whether it is a command that must carry a fresh timestamp and nonce.
    pub command: bool,
    /// Whether a POST may carry an `Idempotency-Key`: not when the answer
    /// holds a secret, which must never be stored for replay.
    pub replayable: bool,
    /// Query parameters and their descriptions.
    pub query: &'static [(&'static str, &'static str)],
    /// Request body.
    pub request: RequestBody,
    /// Success response.
    pub response: ResponseBody,
}

impl RouteSpec {
    /// Whether the route changes state (and so is audited).
    pub fn is_mutating(&self) -> bool {
        matches!(
            self.method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        )
    }
}

/// A route with its handler.
#[derive(Debug)]
pub struct Route {
    /// What it is.
    pub spec: Arc<RouteSpec>,
    /// What serves it.
    pub handler: MethodRouter<AppState>,
}

struct Builder(Vec<Route>);

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        method: Method,
        path: &'static str,
        action: &'static str,
        summary: &'static str,
        access: Access,
        request: RequestBody,
        response: ResponseBody,
        handler: MethodRouter<AppState>,
    ) -> &mut RouteSpec {
        let spec = RouteSpec {
            method,
            path,
            action,
            summary,
            access,
            command: false,
            replayable: true,
            query: &[],
            request,
            response,
        };
        self.0.push(Route {
            spec: Arc::new(spec),
            handler,
        });
        let last = self.0.len() - 1;
        Arc::get_mut(&mut self.0[last].spec).expect("spec was just created")
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
        Method::POST,
        "/api/v1/auth/login",
        "auth.login",
        "Exchange a user name and password for a session token",
        Public,
        In(schema::<LoginRequest>),
        Out(200, schema::<LoginResponse>),
        post(auth::login),
    );
    b.add(
        Method::GET,
        "/api/v1/auth/whoami",
        "auth.whoami",
        "Describe the caller's credential",
        Authenticated,
        NoBody,
        Out(200, schema::<Identity>),
        get(auth::whoami),
    );

    b.add(
        Method::GET,
        "/api/v1/tenants",
        "tenants.list",
        "List tenants",
        SystemAdmin,
        NoBody,
        Out(200, schema::<Vec<Tenant>>),
        get(tenancy::list_tenants),
    );
    b.add(
        Method::POST,
        "/api/v1/tenants",
        "tenants.create",
        "Create a tenant",
        SystemAdmin,
        In(schema::<CreateTenant>),
        Out(201, schema::<Tenant>),
        post(tenancy::create_tenant),
    );
    b.add(
        Method::GET,
        "/api/v1/tenants/{name}/rate-limit",
        "tenants.get_rate_limit",
        "Get a tenant's gateway limits (requests per second, tokens per minute)",
        SystemAdmin,
        NoBody,
        Out(200, schema::<RateLimit>),
        get(usage::get_tenant_limit),
    );
    b.add(
        Method::PUT,
        "/api/v1/tenants/{name}/rate-limit",
        "tenants.set_rate_limit",
        "Set a tenant's gateway limits; {} lifts them",
        SystemAdmin,
        In(schema::<RateLimit>),
        Out(200, schema::<RateLimit>),
        put(usage::set_tenant_limit),
    );
    b.add(
        Method::GET,
        "/api/v1/users",
        "users.list",
        "List the users of the caller's tenant",
        P(UsersWrite),
        NoBody,
        Out(200, schema::<Vec<User>>),
        get(tenancy::list_users),
    );
    b.add(
        Method::POST,
        "/api/v1/users",
        "users.create",
        "Create a user with a role in the caller's tenant",
        P(UsersWrite),
        In(schema::<CreateUser>),
        Out(201, schema::<User>),
        post(tenancy::create_user),
    );
    b.add(
        Method::PUT,
        "/api/v1/users/{username}/role",
        "users.set_role",
        "Set a user's role in the caller's tenant",
        P(UsersWrite),
        In(schema::<SetRole>),
        Out(200, schema::<User>),
        put(tenancy::set_role),
    );

    b.add(
        Method::GET,
        "/api/v1/keys",
        "keys.list",
        "List API keys (the caller's; every key of the tenant for admins with all=true)",
        P(KeysWrite),
        NoBody,
        Out(200, schema::<Vec<ApiKey>>),
        get(keys::list),
    )
    .query = &[("all", "true: every key of the tenant (admins)")];
    b.add(
        Method::POST,
        "/api/v1/keys",
        "keys.create",
        "Create an API key; the secret is shown only in this answer",
        P(KeysWrite),
        In(schema::<CreateApiKey>),
        Out(201, schema::<CreatedApiKey>),
        post(keys::create),
    )
    .replayable = false;
    b.add(
        Method::DELETE,
        "/api/v1/keys/{id}",
        "keys.revoke",
        "Revoke an API key",
        P(KeysWrite),
        NoBody,
        Out(200, schema::<ApiKey>),
        delete(keys::revoke),
    );

    b.add(
        Method::GET,
        "/api/v1/models",
        "models.list",
        "List models, by name",
        P(ModelsRead),
        NoBody,
        Out(200, schema::<Page<Model>>),
        get(models::list),
    )
    .query = &[
        ("limit", "Most items to return, 1 to 1000 (default 100)"),
        ("page_token", "Token from the previous page"),
        ("q", "Only names containing this"),
        (
            "label",
            "Only models with these labels: key=value[,key=value...]",
        ),
        ("stage", "Only models with a version in this stage"),
    ];
    b.add(
        Method::POST,
        "/api/v1/models",
        "models.create",
        "Register a model",
        P(ModelsWrite),
        In(schema::<CreateModel>),
        Out(201, schema::<Model>),
        post(models::create),
    );
    b.add(
        Method::GET,
        "/api/v1/models/{name}",
        "models.get",
        "Get a model",
        P(ModelsRead),
        NoBody,
        Out(200, schema::<Model>),
        get(models::get_one),
    );
    b.add(
        Method::PATCH,
        "/api/v1/models/{name}",
        "models.update",
        "Update a model's description or labels",
        P(ModelsWrite),
        In(schema::<UpdateModel>),
        Out(200, schema::<Model>),
        patch(models::update),
    );
    b.add(
        Method::DELETE,
        "/api/v1/models/{name}",
        "models.delete",
        "Delete a model and all its versions (none may be in use)",
        P(ModelsDelete),
        NoBody,
        NoContent,
        delete(models::delete_one),
    );

    b.add(
        Method::GET,
        "/api/v1/models/{name}/versions",
        "versions.list",
        "List a model's versions, newest first",
        P(ModelsRead),
        NoBody,
        Out(200, schema::<Page<ModelVersion>>),
        get(versions::list),
    )
    .query = PAGING;
    b.add(Method::POST, "/api/v1/models/{name}/versions", "versions.create",
        "Create a version: multipart upload (a `metadata` JSON part, then `artifact` file parts), or JSON to register a server path",
        P(ModelsWrite), UploadOrJson(schema::<RegisterPath>), Out(201, schema::<ModelVersion>), post(versions::create));
    b.add(
        Method::GET,
        "/api/v1/models/{name}/versions/{version}",
        "versions.get",
        "Get a version",
        P(ModelsRead),
        NoBody,
        Out(200, schema::<ModelVersion>),
        get(versions::get_one),
    );
    b.add(
        Method::DELETE,
        "/api/v1/models/{name}/versions/{version}",
        "versions.delete",
        "Delete a version not in use",
        P(ModelsDelete),
        NoBody,
        NoContent,
        delete(versions::delete_one),
    );
    b.add(
        Method::GET,
        "/api/v1/models/{name}/versions/{version}/artifact",
        "versions.download",
        "Download a single-file version's artifact",
        P(ModelsRead),
        NoBody,
        Bytes,
        get(versions::download),
    );
    b.add(
        Method::GET,
        "/api/v1/models/{name}/versions/{version}/files/{*path}",
        "versions.download_file",
        "Download one file of a version",
        P(ModelsRead),
        NoBody,
        Bytes,
        get(versions::download_file),
    );
    b.add(
        Method::PUT,
        "/api/v1/models/{name}/versions/{version}/stage",
        "versions.set_stage",
        "Move a version to another stage (a command: send X-Autoglm-Timestamp and X-Autoglm-Nonce)",
        P(ModelsPromote),
        In(schema::<SetStage>),
        Out(200, schema::<ModelVersion>),
        put(versions::set_stage),
    )
    .command = true;

    b.add(
        Method::GET,
        "/api/v1/services",
        "services.list",
        "List model services, by name, with their status",
        P(ServicesRead),
        NoBody,
        Out(200, schema::<Page<ModelServiceManifest>>),
        get(services::list),
    )
    .query = &[
        ("limit", "Most items to return, 1 to 1000 (default 100)"),
        ("page_token", "Token from the previous page"),
        (
            "label",
            "Only services with these labels: key=value[,key=value...]",
        ),
        ("model", "Only services of this model"),
    ];
    b.add(
        Method::POST,
        "/api/v1/services",
        "services.create",
        "Create a model service from its manifest; its model and versions must exist",
        P(ServicesWrite),
        In(schema::<ModelServiceManifest>),
        Out(201, schema::<ModelServiceManifest>),
        post(services::create),
    );
    b.add(
        Method::GET,
        "/api/v1/services/{name}",
        "services.get",
        "Get a model service: manifest, generation and status",
        P(ServicesRead),
        NoBody,
        Out(200, schema::<ModelServiceManifest>),
        get(services::get_one),
    );
    b.add(
        Method::PUT,
        "/api/v1/services/{name}",
        "services.update",
        "Replace a model service's labels, annotations and spec (generation +1 when the spec changes; metadata.generation, when sent, must be current)",
        P(ServicesWrite),
        In(schema::<ModelServiceManifest>),
        Out(200, schema::<ModelServiceManifest>),
        put(services::update),
    );
    b.add(
        Method::POST,
        "/api/v1/services/{name}/scale",
        "services.scale",
        "Set a fixed replica count per version (not for autoscaled services)",
        P(ServicesWrite),
        In(schema::<Scale>),
        Out(200, schema::<ModelServiceManifest>),
        post(services::scale),
    );
    b.add(
        Method::POST,
        "/api/v1/services/{name}/restart",
        "services.restart",
        "Replace every replica of a model service, spec unchanged",
        P(ServicesWrite),
        NoBody,
        Out(200, schema::<ModelServiceManifest>),
        post(services::restart),
    );
    b.add(
        Method::DELETE,
        "/api/v1/services/{name}",
        "services.delete",
        "Delete a model service",
        P(ServicesWrite),
        NoBody,
        NoContent,
        delete(services::delete_one),
    );
    b.add(
        Method::GET,
        "/api/v1/services/{name}/replicas/{replica}/logs",
        "services.logs",
        "The end of a replica's log (stdout and stderr), as text",
        P(ServicesRead),
        NoBody,
        Text,
        get(services::logs),
    )
    .query = &[(
        "bytes",
        "How many bytes from the end, 1 to 1048576 (default 65536)",
    )];
    b.add(
        Method::GET,
        "/api/v1/services/{name}/traffic",
        "services.traffic",
        "The last hour of a service's traffic per version in 10-second intervals: requests per second, error ratio, latency percentiles",
        P(ServicesRead),
        NoBody,
        Out(200, schema::<ServiceTraffic>),
        get(services::traffic),
    );
    b.add(
        Method::GET,
        "/api/v1/usage",
        "usage.list",
        "Gateway usage of the caller's tenant per key, service, version and minute (or step)",
        P(ServicesRead),
        NoBody,
        Out(200, schema::<Vec<UsageRecord>>),
        get(usage::list),
    )
    .query = &[
        ("key", "Only this API key id (or user:NAME for sessions)"),
        ("service", "Only this service"),
        ("since", "Only minutes at or after this RFC 3339 time"),
        (
            "step",
            "Sum the minutes into steps of this duration (1m to 24h, whole minutes, e.g. 5m or 1h); rows start at their step's first minute. At most 10,000 rows are returned",
        ),
    ];

    b.add(
        Method::GET,
        "/api/v1/audit",
        "audit.list",
        "List audit records, newest first",
        P(AuditRead),
        NoBody,
        Out(200, schema::<Page<AuditRecord>>),
        get(audit::list),
    )
    .query = &[
        ("limit", "Most items to return, 1 to 1000 (default 100)"),
        ("page_token", "Token from the previous page"),
        ("actor", "Only this actor (user:NAME, key:ID)"),
        ("action", "Only this action (models.create...)"),
        ("target", "Only targets starting with this"),
        ("outcome", "Only this outcome (success, or an error code)"),
        ("since", "Only records at or after this RFC 3339 time"),
        ("until", "Only records before this RFC 3339 time"),
    ];
    b.add(
        Method::GET,
        "/api/v1/audit/verify",
        "audit.verify",
        "Verify the audit log's hash chain (it spans every tenant, so system admins only)",
        SystemAdmin,
        NoBody,
        Out(200, schema::<ChainVerification>),
        get(audit::verify),
    );
    b.0
}
