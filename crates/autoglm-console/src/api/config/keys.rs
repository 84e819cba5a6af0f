//! One key: read, publish (checked against its format, optionally against
//! the md5 or version it was based on), delete, history, diffs and rollback.

use autoglm_core::config::{
    ConfigDiff, ConfigFormat, ConfigVersion, PublishConfig, RollbackConfig, check_md5,
    check_publish, unified_diff,
};
use autoglm_core::error::{ErrorCode, FieldError};
use autoglm_core::registry::Page;
use autoglm_store::StoreError;
use autoglm_store::config::{self as stored, Expect, Published};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{KeyAt, commit, may_write_protected, writable};
use crate::AppState;
use crate::api::read;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// `?group=` of a key list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this group.
    pub group: Option<String>,
}

/// `GET /api/v1/config/environments/{env}/keys`: the live keys, with content.
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(env): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<ConfigVersion>>> {
    let tenant = ctx.tenant().to_owned();
    let keys = read(&state, move |s| {
        s.read(|c| stored::live_keys(c, &tenant, &env, query.group.as_deref()))
    })
    .await?;
    Ok(Json(Page::whole(keys)))
}

/// `GET .../keys/{group}/{key}`: the current version.
pub async fn get(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(at): ApiPath<KeyAt>,
) -> ApiResult<Json<ConfigVersion>> {
    at.check()?;
    let tenant = ctx.tenant().to_owned();
    Ok(Json(
        read(&state, move |s| {
            s.read(|c| stored::live(c, at.path(&tenant)))
        })
        .await?,
    ))
}

fn base(md5: Option<String>, version: Option<u64>) -> ApiResult<Expect> {
    if let Some(md5) = &md5 {
        check_md5(md5).map_err(|e| ApiError::fields(vec![FieldError::new("baseMd5", e)]))?;
    }
    Ok(Expect { md5, version })
}

fn published_status(p: &Published) -> StatusCode {
    if p.changed && p.version.version == 1 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

fn published_versions(p: &Published) -> Vec<&ConfigVersion> {
    if p.changed {
        vec![&p.version]
    } else {
        Vec::new()
    }
}

/// `PUT .../keys/{group}/{key}`: publish a new version (201 for a new key,
/// 200 otherwise; the same content and format again changes nothing).
pub async fn publish(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(at): ApiPath<KeyAt>,
    ApiJson(body): ApiJson<PublishConfig>,
) -> ApiResult<Response> {
    at.check()?;
    if let Some(format) = body.format {
        check_publish(&at.group, &at.key, format, &body.content).map_err(ApiError::fields)?;
    }
    let expect = base(body.base_md5, body.base_version)?;
    let tenant = ctx.tenant().to_owned();
    let author = ctx.principal.actor.clone();
    let protected_ok = may_write_protected(&ctx);
    let (_, response) = commit(
        &state,
        &ctx,
        at.target(),
        published_status,
        published_versions,
        move |tx| {
            writable(tx, &tenant, &at.env, protected_ok)?;
            // Left out, the format is the key's own, else its extension's.
            let format = match body.format {
                Some(format) => format,
                None => {
                    let now = stored::current(tx, at.path(&tenant))?.filter(|v| !v.deleted);
                    let format = now.map_or_else(|| ConfigFormat::of_key(&at.key), |v| v.format);
                    check_publish(&at.group, &at.key, format, &body.content)
                        .map_err(StoreError::Invalid)?;
                    format
                }
            };
            stored::publish(
                tx,
                at.path(&tenant),
                format,
                &body.content,
                &expect,
                &author,
                &body.message,
            )
        },
    )
    .await?;
    Ok(response)
}

/// `POST /api/v1/config/validate`: what a publish would say of this content.
pub async fn validate(
    _ctx: Ctx,
    ApiJson(body): ApiJson<autoglm_core::config::ValidateConfig>,
) -> Json<autoglm_core::config::Validation> {
    Json(body.run())
}

/// `?base_md5=&message=` of a delete.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Delete only if the key's md5 is this.
    pub base_md5: Option<String>,
    /// Why.
    #[serde(default)]
    pub message: String,
}

/// `DELETE .../keys/{group}/{key}`: a tombstone version; the history stays.
pub async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(at): ApiPath<KeyAt>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> ApiResult<Response> {
    at.check()?;
    let expect = base(query.base_md5, None)
        .map_err(|_| ApiError::new(ErrorCode::InvalidQuery, "base_md5 is not 32 hex digits"))?;
    let tenant = ctx.tenant().to_owned();
    let author = ctx.principal.actor.clone();
    let protected_ok = may_write_protected(&ctx);
    commit(
        &state,
        &ctx,
        at.target(),
        |_| StatusCode::NO_CONTENT,
        |v: &ConfigVersion| vec![v],
        move |tx| {
            writable(tx, &tenant, &at.env, protected_ok)?;
            stored::delete(tx, at.path(&tenant), &expect, &author, &query.message)
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET .../keys/{group}/{key}/versions`: every version, newest first.
pub async fn history(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(at): ApiPath<KeyAt>,
) -> ApiResult<Json<Page<ConfigVersion>>> {
    at.check()?;
    let tenant = ctx.tenant().to_owned();
    let versions = read(&state, move |s| {
        s.read(|c| stored::history(c, at.path(&tenant)))
    })
    .await?;
    Ok(Json(Page::whole(versions)))
}

/// The path of one version.
#[derive(Debug, Deserialize)]
pub struct VersionAt {
    /// The environment.
    pub env: String,
    /// The group.
    pub group: String,
    /// The key.
    pub key: String,
    /// The version.
    pub version: u64,
}

/// `GET .../keys/{group}/{key}/versions/{version}`.
pub async fn version(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(v): ApiPath<VersionAt>,
) -> ApiResult<Json<ConfigVersion>> {
    let at = KeyAt {
        env: v.env,
        group: v.group,
        key: v.key,
    };
    at.check()?;
    let tenant = ctx.tenant().to_owned();
    Ok(Json(
        read(&state, move |s| {
            s.read(|c| {
                stored::existing_environment(c, &tenant, &at.env)?;
                stored::version(c, at.path(&tenant), v.version)
            })
        })
        .await?,
    ))
}

/// `?from=&to=` of a diff.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// The older version (default: the one before `to`).
    pub from: Option<u64>,
    /// The newer version (default: the current one).
    pub to: Option<u64>,
}

/// `GET .../keys/{group}/{key}/diff`: `diff -u` between two versions.
pub async fn diff(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(at): ApiPath<KeyAt>,
    ApiQuery(query): ApiQuery<DiffQuery>,
) -> ApiResult<Json<ConfigDiff>> {
    at.check()?;
    let tenant = ctx.tenant().to_owned();
    let (old, new) = read(&state, move |s| {
        s.read(|c| {
            let path = at.path(&tenant);
            let history = stored::history(c, path)?;
            let to = query.to.unwrap_or(history[0].version);
            let from = query.from.unwrap_or(to.saturating_sub(1));
            let find = |v: u64| {
                history
                    .iter()
                    .find(|h| h.version == v)
                    .cloned()
                    .ok_or_else(|| {
                        StoreError::rejected(
                            ErrorCode::NotFound,
                            format!("{path} has no version {v}"),
                        )
                    })
            };
            // Version 0 is "before the first publish": empty.
            let old = if from == 0 { None } else { Some(find(from)?) };
            Ok((old, find(to)?))
        })
    })
    .await?;
    let label = |v: Option<&ConfigVersion>| {
        v.map_or_else(
            || "/dev/null".to_owned(),
            |v| format!("{}/{}/{}@{}", v.environment, v.group, v.key, v.version),
        )
    };
    Ok(Json(ConfigDiff {
        from: old.as_ref().map_or(0, |o| o.version),
        to: new.version,
        unified: unified_diff(
            &label(old.as_ref()),
            &label(Some(&new)),
            old.as_ref().map_or("", |o| o.content.as_str()),
            &new.content,
        ),
    }))
}

/// `POST .../keys/{group}/{key}/rollback`: a new version with an earlier one's content.
pub async fn rollback(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(at): ApiPath<KeyAt>,
    ApiJson(body): ApiJson<RollbackConfig>,
) -> ApiResult<Response> {
    at.check()?;
    let tenant = ctx.tenant().to_owned();
    let author = ctx.principal.actor.clone();
    let protected_ok = may_write_protected(&ctx);
    let (_, response) = commit(
        &state,
        &ctx,
        at.target(),
        |_| StatusCode::OK,
        published_versions,
        move |tx| {
            writable(tx, &tenant, &at.env, protected_ok)?;
            let path = at.path(&tenant);
            let old = stored::version(tx, path, body.version)?;
            if old.deleted {
                return Err(StoreError::Invalid(vec![FieldError::new(
                    "version",
                    format!(
                        "version {} of {path} is a delete; name one with content",
                        old.version
                    ),
                )]));
            }
            let message = if body.message.is_empty() {
                format!("rollback to version {}", old.version)
            } else {
                body.message
            };
            stored::publish(
                tx,
                path,
                old.format,
                &old.content,
                &Expect::default(),
                &author,
                &message,
            )
        },
    )
    .await?;
    Ok(response)
}
