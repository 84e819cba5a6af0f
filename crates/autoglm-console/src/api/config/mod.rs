//! `config.*`: the config center. Environments of the caller's tenant hold
//! groups of keys; every publish is a checked, immutable version; protected
//! environments take writes only from `config:protected` holders or through
//! change requests a second user approves. Every committed change is handed
//! to the watch hub inside the commit, so watchers hear of it in order.

pub mod changes;
pub mod keys;
pub mod watch;

use autoglm_core::config::{ConfigChange, ConfigVersion, CreateEnvironment, Environment};
use autoglm_core::error::{ErrorCode, FieldError};
use autoglm_core::rbac::Permission;
use autoglm_store::StoreError;
use autoglm_store::config as stored;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::read;
use crate::AppState;
use crate::context::{Ctx, json_response};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};

/// Names an environment may not take: the web console's pages beside them.
pub const RESERVED_ENVIRONMENTS: [&str; 3] = ["promote", "requests", "validate"];

/// The path of one key.
#[derive(Debug, Deserialize)]
pub struct KeyAt {
    /// The environment.
    pub env: String,
    /// The group.
    pub group: String,
    /// The key.
    pub key: String,
}

impl KeyAt {
    /// As the store names it, in `tenant`.
    pub fn path<'a>(&'a self, tenant: &'a str) -> stored::KeyPath<'a> {
        stored::KeyPath {
            tenant,
            environment: &self.env,
            group: &self.group,
            key: &self.key,
        }
    }

    /// The audit target.
    pub fn target(&self) -> String {
        format!("config/{}/{}/{}", self.env, self.group, self.key)
    }

    /// Refuses names no key can have (`..`, `/`) before anything is read.
    pub fn check(&self) -> ApiResult<()> {
        let mut errors = Vec::new();
        for (kind, name) in [("group", &self.group), ("key", &self.key)] {
            if let Err(e) = autoglm_core::config::check_key_name(kind, name) {
                errors.push(FieldError::new(kind, e));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::InvalidPath,
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ))
        }
    }
}

/// Whether the caller may write protected environments directly.
pub fn may_write_protected(ctx: &Ctx) -> bool {
    ctx.principal.require(Permission::ConfigProtected).is_ok()
}

/// Inside a write: the environment, refused when it is protected and the
/// caller may not write it directly.
pub fn writable(
    tx: &autoglm_store::Transaction<'_>,
    tenant: &str,
    environment: &str,
    protected_ok: bool,
) -> Result<Environment, StoreError> {
    let env = stored::existing_environment(tx, tenant, environment)?;
    if env.protected && !protected_ok {
        return Err(StoreError::rejected(
            ErrorCode::Forbidden,
            format!(
                "environment {environment} is protected: writing it needs config:protected \
                 (operator or admin); file a change request \
                 (POST /api/v1/config/environments/{environment}/requests) for a second user to approve"
            ),
        ));
    }
    Ok(env)
}

/// Commits a config change and hands its new versions to the watch hub inside
/// the commit; answers `status_of` the value with it as JSON.
pub async fn commit<T, F>(
    state: &AppState,
    ctx: &Ctx,
    target: String,
    status_of: impl Fn(&T) -> StatusCode + Send + Copy + 'static,
    versions_of: fn(&T) -> Vec<&ConfigVersion>,
    change: F,
) -> ApiResult<(T, Response)>
where
    T: serde::Serialize + Send + 'static,
    F: FnOnce(&autoglm_store::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
{
    let hub = state.config.clone();
    let tenant = ctx.tenant().to_owned();
    let judged = crate::policies::Judged::new(state, ctx).await?;
    let (value, status, body) = ctx
        .apply_then(
            state,
            status_of,
            target,
            {
                let (judged, tenant) = (judged.clone(), tenant.clone());
                move |tx, audit| {
                    let value = change(tx)?;
                    judged.configs(tx, &tenant, &versions_of(&value), audit)?;
                    Ok(value)
                }
            },
            move |value| {
                let changes: Vec<ConfigChange> = versions_of(value)
                    .into_iter()
                    .map(ConfigVersion::change)
                    .collect();
                hub.committed(&tenant, &changes);
            },
        )
        .await?;
    let mut response = json_response(status, body);
    judged.warn(&mut response);
    Ok((value, response))
}

/// `GET /api/v1/config/environments`.
pub async fn environments(
    State(state): State<AppState>,
    ctx: Ctx,
) -> ApiResult<Json<autoglm_core::registry::Page<Environment>>> {
    let tenant = ctx.tenant().to_owned();
    let envs = read(&state, move |s| {
        s.read(|c| stored::environments(c, &tenant))
    })
    .await?;
    Ok(Json(autoglm_core::registry::Page::whole(envs)))
}

/// `GET /api/v1/config/environments/{env}`.
pub async fn environment(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(env): ApiPath<String>,
) -> ApiResult<Json<Environment>> {
    let tenant = ctx.tenant().to_owned();
    Ok(Json(
        read(&state, move |s| {
            s.read(|c| stored::environment(c, &tenant, &env))
        })
        .await?,
    ))
}

/// `POST /api/v1/config/environments`.
pub async fn create_environment(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<CreateEnvironment>,
) -> ApiResult<Response> {
    super::check_name("environment", &body.name)?;
    // The web console's own pages sit beside the environments' at /ui/config/NAME.
    if RESERVED_ENVIRONMENTS.contains(&body.name.as_str()) {
        return Err(ApiError::new(
            ErrorCode::InvalidName,
            format!(
                "environment name {:?} is reserved; choose another",
                body.name
            ),
        ));
    }
    let tenant = ctx.tenant().to_owned();
    let actor = ctx.principal.actor.clone();
    ctx.write(
        &state,
        StatusCode::CREATED,
        format!("config/{}", body.name),
        move |tx, _| stored::create_environment(tx, &tenant, &body, &actor),
    )
    .await
}
