//! `filters.*`: gateway filters. A tenant uploads proxy-wasm modules
//! (checked and compiled before they are kept) and attaches them, each with
//! its configuration and fail mode, to its whole tenant (its filter chain)
//! or to one service (its `spec.filters`, written as any change of the
//! service is). Every attachment's configuration is tried on the module
//! before it is written, and a new module must accept every configuration
//! it is attached with. The gateway loads what changed within a tenth of a
//! second, and requests in flight finish on the filters they began with.

use std::sync::Arc;

use autoglm_core::error::{ErrorCode, FieldError};
use autoglm_core::filter::{Attach, Detach, Filter, FilterCounter, FilterRef, check_chain};
use autoglm_core::service::ModelServiceManifest;
use autoglm_filters::{Attachment, Compiled, Limits, Stats};
use autoglm_store::StoreError;
use autoglm_store::filters::{self, Upload};
use autoglm_store::services;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{check_name, read};
use crate::AppState;
use crate::context::{Ctx, json_response};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};

/// Names that are routes of their own under `/api/v1/filters`.
const RESERVED: [&str; 2] = ["chain", "counters"];

/// What a write that checked its input before its transaction answers
/// when the input changed meanwhile.
fn changed(what: &str) -> StoreError {
    StoreError::rejected(
        ErrorCode::GenerationMismatch,
        format!("{what} changed while this change was checked; send it again"),
    )
}

/// `GET /api/v1/filters`.
pub async fn list(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Json<Vec<Filter>>> {
    let tenant = ctx.tenant().to_owned();
    Ok(Json(
        read(&state, move |s| {
            s.read(|c| {
                let mut all = filters::list(c, &tenant)?;
                for filter in &mut all {
                    filter.attached_to = filters::attached_to(c, &tenant, &filter.name)?;
                }
                Ok(all)
            })
        })
        .await?,
    ))
}

/// `GET /api/v1/filters/{name}`.
pub async fn get_one(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Filter>> {
    let tenant = ctx.tenant().to_owned();
    Ok(Json(
        read(&state, move |s| {
            s.read(|c| {
                let mut filter = filters::require(c, &tenant, &name)?;
                filter.attached_to = filters::attached_to(c, &tenant, &name)?;
                Ok(filter)
            })
        })
        .await?,
    ))
}

/// `GET /api/v1/filters/{name}/module`: the module's bytes.
pub async fn module(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    let bytes = read(&state, move |s| {
        s.read(|c| filters::module(c, &tenant, &name))?
            .ok_or_else(|| StoreError::rejected(ErrorCode::NotFound, format!("no filter {name:?}")))
    })
    .await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/wasm")],
        bytes,
    )
        .into_response())
}

/// Compiles `bytes` off the async threads; a module that is not a filter
/// this gateway runs is refused with the reason.
async fn compile(bytes: Bytes) -> ApiResult<Arc<Compiled>> {
    tokio::task::spawn_blocking(move || Compiled::new(&bytes))
        .await
        .map_err(|e| ApiError::internal("filter compile", &e))?
        .map_err(|e| ApiError::fields(vec![FieldError::new("module", e.to_string())]))
}

/// Starts `module` with each of `configs`, as the gateway will: a
/// configuration it refuses is an error at `path`.
async fn try_configs(
    module: Arc<Compiled>,
    name: String,
    configs: Vec<(String, FilterRef)>,
) -> ApiResult<()> {
    tokio::task::spawn_blocking(move || {
        let errors: Vec<FieldError> = configs
            .into_iter()
            .filter_map(|(path, filter)| {
                let attachment = Attachment::new(
                    &name,
                    module.clone(),
                    &filter.config_bytes(),
                    false,
                    Limits::default(),
                    Stats::default(),
                );
                attachment
                    .check()
                    .err()
                    .map(|failure| FieldError::new(path, format!("filter {name}: {failure}")))
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::fields(errors))
        }
    })
    .await
    .map_err(|e| ApiError::internal("filter check", &e))?
}

/// `PUT /api/v1/filters/{name}`: the module's bytes (`application/wasm`),
/// a new filter (201) or a new module for one (200), swapped in the
/// gateway without dropping a request.
pub async fn put(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    body: Bytes,
) -> ApiResult<Response> {
    check_name("filter", &name)?;
    if RESERVED.contains(&name.as_str()) {
        return Err(ApiError::new(
            ErrorCode::InvalidName,
            format!("{name} names a route of its own under filters; choose another name"),
        ));
    }
    let module = compile(body.clone()).await?;
    let tenant = ctx.tenant().to_owned();
    let attached = {
        let (tenant, name) = (tenant.clone(), name.clone());
        read(&state, move |s| {
            s.read(|c| filters::attachments(c, &tenant, &name))
        })
        .await?
    };
    try_configs(module.clone(), name.clone(), attached.clone()).await?;
    let by = ctx.principal.actor.clone();
    let (_, status, answer) = ctx
        .apply_with(
            &state,
            |uploaded: &Uploaded| {
                if uploaded.created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                }
            },
            format!("filters/{name}"),
            move |tx, _| {
                let upload = Upload {
                    module: &body,
                    digest: &module.digest,
                    abi: &module.abi,
                    by: &by,
                };
                if filters::attachments(tx, &tenant, &name)? != attached {
                    return Err(changed("the filter's attachments"));
                }
                let created = filters::put(tx, &tenant, &name, upload)?;
                Ok(Uploaded {
                    created,
                    filter: filters::require(tx, &tenant, &name)?,
                })
            },
        )
        .await?;
    Ok(json_response(status, answer))
}

/// A filter as uploaded: whether it is new decides the status.
#[derive(serde::Serialize)]
struct Uploaded {
    #[serde(skip)]
    created: bool,
    #[serde(flatten)]
    filter: Filter,
}

/// `DELETE /api/v1/filters/{name}`: refused while it is attached.
pub async fn delete_one(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    ctx.write(
        &state,
        StatusCode::NO_CONTENT,
        format!("filters/{name}"),
        move |tx, _| {
            // Judged in the deleting transaction: an attach cannot slip between.
            let attached = filters::attached_to(tx, &tenant, &name)?;
            if !attached.is_empty() {
                let places: Vec<String> = attached
                    .iter()
                    .map(|at| match at.strip_prefix("service/") {
                        Some(service) => format!("service {service}"),
                        None => "the tenant's chain".to_owned(),
                    })
                    .collect();
                return Err(StoreError::rejected(
                    ErrorCode::InUse,
                    format!(
                        "filter {name} is attached to {}; detach it first",
                        places.join(" and ")
                    ),
                ));
            }
            if !filters::delete(tx, &tenant, &name)? {
                return Err(StoreError::rejected(
                    ErrorCode::NotFound,
                    format!("no filter {name:?}"),
                ));
            }
            Ok(())
        },
    )
    .await
    .map(|_| StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/filters/chain`: the tenant's chain, run on every request
/// before the service's own filters.
pub async fn get_chain(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Json<Vec<FilterRef>>> {
    let tenant = ctx.tenant().to_owned();
    Ok(Json(
        read(&state, move |s| s.read(|c| filters::chain(c, &tenant))).await?,
    ))
}

/// Checks a chain: its rules, that each filter is uploaded, and that each
/// accepts its configuration.
pub(crate) async fn check(
    state: &AppState,
    tenant: &str,
    chain: &[FilterRef],
    at: &str,
) -> ApiResult<()> {
    let mut errors = Vec::new();
    check_chain(chain, at, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    for (i, filter) in chain.iter().enumerate() {
        let (tenant, name) = (tenant.to_owned(), filter.name.clone());
        let bytes = read(state, move |s| {
            s.read(|c| filters::module(c, &tenant, &name))
        })
        .await?;
        let Some(bytes) = bytes else {
            return Err(ApiError::fields(vec![FieldError::new(
                format!("{at}[{i}].name"),
                format!("no filter {:?} is uploaded", filter.name),
            )]));
        };
        let module = compile(Bytes::from(bytes)).await?;
        try_configs(
            module,
            filter.name.clone(),
            vec![(format!("{at}[{i}].config"), filter.clone())],
        )
        .await?;
    }
    Ok(())
}

/// `PUT /api/v1/filters/chain`: the tenant's whole chain, in order (to
/// reorder, reconfigure, or attach several at once).
pub async fn put_chain(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(chain): ApiJson<Vec<FilterRef>>,
) -> ApiResult<Response> {
    edit_chain(&state, &ctx, None, true, |_| Ok(chain)).await
}

/// `POST /api/v1/filters/{name}/attach`: to the tenant's chain, or to a
/// service's `spec.filters` (a change of the service, judged by policies
/// and carried by a task as any is).
pub async fn attach(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Attach>,
) -> ApiResult<Response> {
    let service = body.service.clone();
    edit_chain(&state, &ctx, service, true, |chain| {
        Ok(body.apply(&name, chain))
    })
    .await
}

/// `POST /api/v1/filters/{name}/detach`.
pub async fn detach(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Detach>,
) -> ApiResult<Response> {
    let at = body.service.as_ref().map_or_else(
        || "the tenant's chain".to_owned(),
        |s| format!("service {s}"),
    );
    edit_chain(&state, &ctx, body.service, false, |mut chain| {
        let before = chain.len();
        chain.retain(|f| f.name != name);
        if chain.len() == before {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("filter {name} is not attached to {at}"),
            ));
        }
        Ok(chain)
    })
    .await
}

/// Changes the tenant's chain (no `service`) or a service's filters with
/// `edit`, checking the result first when `check_it` (a chain that only
/// lost a filter needs no check): the tenant's is written as it is, a
/// service's as a change of the service.
async fn edit_chain(
    state: &AppState,
    ctx: &Ctx,
    service: Option<String>,
    check_it: bool,
    edit: impl FnOnce(Vec<FilterRef>) -> ApiResult<Vec<FilterRef>>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    let Some(service) = service else {
        let current = {
            let tenant = tenant.clone();
            read(state, move |s| s.read(|c| filters::chain(c, &tenant))).await?
        };
        let chain = edit(current.clone())?;
        if check_it {
            check(state, &tenant, &chain, "chain").await?;
        }
        return ctx
            .write(
                state,
                StatusCode::OK,
                "filters/chain".to_owned(),
                move |tx, _| {
                    if filters::chain(tx, &tenant)? != current {
                        return Err(changed("the tenant's filter chain"));
                    }
                    filters::set_chain(tx, &tenant, &chain)?;
                    Ok(chain)
                },
            )
            .await;
    };
    let manifest = {
        let tenant = tenant.clone();
        read(state, move |s| s.service(&tenant, &service))
            .await?
            .manifest
    };
    let chain = edit(manifest.spec.filters.clone())?;
    if check_it {
        check(state, &tenant, &chain, "spec.filters").await?;
    }
    change_service(state, ctx, manifest, chain).await
}

/// Writes `manifest` with `chain` as its filters, as a change of the service.
async fn change_service(
    state: &AppState,
    ctx: &Ctx,
    mut manifest: ModelServiceManifest,
    chain: Vec<FilterRef>,
) -> ApiResult<Response> {
    manifest.spec.filters = chain;
    manifest.status = None;
    let name = manifest.metadata.name.clone();
    super::services::write_service(state, ctx, &name, false, move |tx, tenant| {
        services::update_service(tx, tenant, &manifest).map(Some)
    })
    .await
}

/// `GET /api/v1/filters/counters`: each attached filter's counters, as the
/// gateway in this process counted them.
pub async fn counters(
    State(state): State<AppState>,
    ctx: Ctx,
) -> ApiResult<Json<Vec<FilterCounter>>> {
    state
        .filters
        .filter_counters(ctx.tenant())
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unavailable,
                "this console runs no gateway: its gateway runs in another process \
             (read the gateway's autoglm_gateway_filter_* metrics from Prometheus instead)",
            )
        })
}
