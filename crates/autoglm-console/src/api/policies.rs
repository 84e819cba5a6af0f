//! `policies.*`: the tenant's policies as code (Rego), their versions, the
//! default ones to start from, and an explanation of how they judge a
//! resource. A policy is compiled before it is stored: one that does not
//! parse is refused with its line and column and nothing is written.

use autoglm_core::error::{ErrorCode, FieldError};
use autoglm_core::service::ModelServiceManifest;
use autoglm_policy::{
    Decision, Explanation, LibraryPolicy, PolicyError, PolicySpec, explain, library,
};
use autoglm_store::policies::{self, GLOBAL, StoredPolicy};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{check_name, read};
use crate::AppState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};

/// `GET /api/v1/policies`: the current version of each of the tenant's
/// policies, then of the global ones that judge it too (`scope: global`).
pub async fn list(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Json<Vec<StoredPolicy>>> {
    let tenant = ctx.tenant().to_owned();
    Ok(Json(
        read(&state, move |s| {
            let mut policies = s.list_policies(&tenant)?;
            policies.extend(s.list_policies(GLOBAL)?);
            Ok(policies)
        })
        .await?,
    ))
}

/// `GET /api/v1/global-policies`: the policies that judge every tenant.
pub async fn list_global(State(state): State<AppState>) -> ApiResult<Json<Vec<StoredPolicy>>> {
    Ok(Json(read(&state, |s| s.list_policies(GLOBAL)).await?))
}

/// `GET /api/v1/policies/library`: the default policies, to add as one's own.
pub async fn list_library() -> Json<Vec<LibraryPolicy>> {
    Json(library())
}

/// Where a route keeps its policies: the caller's tenant, or the global ones.
fn scope_of(ctx: &Ctx) -> (String, &'static str) {
    if ctx.spec.path.starts_with("/api/v1/global-policies") {
        (GLOBAL.to_owned(), "global-policies")
    } else {
        (ctx.tenant().to_owned(), "policies")
    }
}

/// `GET /api/v1/policies/{name}` and `GET /api/v1/global-policies/{name}`.
pub async fn get_one(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<StoredPolicy>> {
    let (tenant, _) = scope_of(&ctx);
    Ok(Json(read(&state, move |s| s.policy(&tenant, &name)).await?))
}

/// `GET …/{name}/versions`: newest first, deletions included.
pub async fn history(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Vec<StoredPolicy>>> {
    let (tenant, _) = scope_of(&ctx);
    Ok(Json(
        read(&state, move |s| s.policy_history(&tenant, &name)).await?,
    ))
}

/// A policy that cannot be used, as the field it comes from.
fn refused(error: PolicyError) -> ApiError {
    let path = match error {
        PolicyError::Parameters => "parameters",
        PolicyError::NoKinds => "kinds",
        PolicyError::TooLarge { .. } | PolicyError::Syntax { .. } | PolicyError::NoRules => "rego",
    };
    ApiError::fields(vec![FieldError::new(path, error.to_string())])
}

/// `PUT /api/v1/policies/{name}` (and `/api/v1/global-policies/{name}`):
/// a new version (201 for the first, 200 after), or the current one when
/// nothing changed.
pub async fn put(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(spec): ApiJson<PolicySpec>,
) -> ApiResult<Response> {
    check_name("policy", &name)?;
    // The API's own routes beside {name}, and the web console's.
    if ["library", "evaluate", "new", "test"].contains(&name.as_str()) {
        return Err(ApiError::new(
            ErrorCode::InvalidName,
            format!("{name} names a page or route of its own under policies; choose another name"),
        ));
    }
    autoglm_policy::compile(&name, &spec).map_err(refused)?;
    let value =
        serde_json::to_value(&spec).map_err(|e| ApiError::internal("serialising a policy", &e))?;
    let (tenant, kind) = scope_of(&ctx);
    let actor = ctx.principal.actor.clone();
    let target = format!("{kind}/{name}");
    let (_, status, body) = ctx
        .apply_with(
            &state,
            |p: &Put| {
                if p.created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                }
            },
            target,
            move |tx, _| {
                Ok(
                    match policies::put_policy(tx, &tenant, &name, &value, &actor)? {
                        Some(policy) => Put {
                            created: policy.version == 1,
                            policy,
                        },
                        None => Put {
                            policy: current(tx, &tenant, &name)?,
                            created: false,
                        },
                    },
                )
            },
        )
        .await?;
    Ok(crate::context::json_response(status, body))
}

/// What a PUT wrote: the policy, and whether this made it exist.
#[derive(Debug, Serialize)]
struct Put {
    #[serde(flatten)]
    policy: StoredPolicy,
    #[serde(skip)]
    created: bool,
}

fn current(
    tx: &autoglm_store::Transaction<'_>,
    tenant: &str,
    name: &str,
) -> autoglm_store::Result<StoredPolicy> {
    policies::current_policy(tx, tenant, name)?.ok_or_else(|| {
        autoglm_store::StoreError::rejected(ErrorCode::NotFound, format!("policy {name} not found"))
    })
}

/// `DELETE /api/v1/policies/{name}` (and `/api/v1/global-policies/{name}`).
pub async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    let (tenant, kind) = scope_of(&ctx);
    let actor = ctx.principal.actor.clone();
    ctx.write(
        &state,
        StatusCode::NO_CONTENT,
        format!("{kind}/{name}"),
        move |tx, _| policies::delete_policy(tx, &tenant, &name, &actor),
    )
    .await
}

/// The body of `POST /api/v1/policies/evaluate`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Evaluate {
    /// A ModelService manifest, as it would be written.
    pub resource: Value,
    /// A policy to try before saving it (judged alone, under the name
    /// `draft`); otherwise the tenant's policies judge.
    #[serde(default)]
    pub policy: Option<PolicySpec>,
}

/// The answer of `POST /api/v1/policies/evaluate`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluated {
    /// What a write of the resource would meet.
    pub decision: Decision,
    /// Per policy: which rules fired, on which lines and input paths.
    pub explanations: Vec<Explanation>,
}

/// `POST /api/v1/policies/evaluate`: how the policies judge a resource,
/// and why, without writing anything.
pub async fn evaluate(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<Evaluate>,
) -> ApiResult<Response> {
    let manifest = ModelServiceManifest::from_value(body.resource).map_err(ApiError::fields)?;
    let draft = match body.policy {
        Some(spec) => Some(autoglm_policy::compile("draft", &spec).map_err(|e| {
            let ApiError { errors, .. } = refused(e);
            ApiError::fields(
                errors
                    .into_iter()
                    .map(|f| FieldError::new(format!("policy.{}", f.path), f.message))
                    .collect(),
            )
        })?),
        None => None,
    };
    let tenant = ctx.tenant().to_owned();
    let caller = crate::policies::caller_of(&ctx.principal);
    let sets = state.policies.clone();
    let evaluated = read(&state, move |s| {
        let name = manifest.metadata.name.clone();
        let old = match s.service(&tenant, &name) {
            Ok(old) => Some(old.manifest),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let review = s.read(|c| {
            crate::policies::service_review(c, &tenant, caller, old.as_ref(), &manifest)
        })?;
        let saved;
        let set: Vec<&autoglm_policy::CompiledPolicy> = match &draft {
            Some(draft) => vec![draft],
            None => {
                saved = sets.of(s, &tenant)?;
                saved.iter().collect()
            }
        };
        Ok(Evaluated {
            decision: autoglm_policy::decide(set.iter().copied(), &review),
            explanations: set.iter().map(|p| explain(p, &review)).collect(),
        })
    })
    .await?;
    Ok(Json(evaluated).into_response())
}
