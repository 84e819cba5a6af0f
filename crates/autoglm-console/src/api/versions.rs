//! `versions.*`: immutable model versions, uploaded or registered, and their stages.

use autoglm_artifacts::{Staging, StoredArtifact};
use autoglm_core::error::ErrorCode;
use autoglm_core::names::validate_artifact_path;
use autoglm_core::rbac::Permission;
use autoglm_core::registry::{
    ModelVersion, Page, RegisterPath, SetStage, VersionSource, VersionSpec, validate_version_spec,
};
use autoglm_store::{NewVersion, registry};
use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{invalid_body, page, page_limit, read};
use crate::AppState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::policies::{Judged, version_resource};
use autoglm_policy::Kind;

/// Query of `GET /api/v1/models/{name}/versions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListVersions {
    limit: Option<i64>,
    page_token: Option<i64>,
}

/// `GET /api/v1/models/{name}/versions`.
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListVersions>,
) -> ApiResult<Json<Page<ModelVersion>>> {
    let limit = page_limit(q.limit)?;
    let tenant = ctx.tenant().to_owned();
    let items = read(&state, move |s| {
        s.list_versions(&tenant, &name, q.page_token, limit + 1)
    })
    .await?;
    Ok(Json(page(items, limit, |v| v.version.to_string())))
}

/// `POST /api/v1/models/{name}/versions`: multipart upload, or JSON naming a
/// path on the console's machine (which needs `artifacts:register-path`).
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    req: Request,
) -> ApiResult<Response> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let tenant = ctx.tenant().to_owned();
    {
        let (tenant, name) = (tenant.clone(), name.clone());
        read(&state, move |s| s.model(&tenant, &name)).await?;
    }
    let (spec, artifact, source) = if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(req, &state)
            .await
            .map_err(|e| ApiError::new(ErrorCode::MalformedBody, e.body_text()))?;
        let (spec, artifact) = receive_upload(&state, &tenant, &name, multipart).await?;
        (spec, artifact, VersionSource::Upload)
    } else if content_type.starts_with("application/json") {
        ctx.principal.require(Permission::ArtifactsRegisterPath)?;
        let ApiJson(body) = ApiJson::<RegisterPath>::from_request(req, &state).await?;
        check_spec(&state, &tenant, &name, &body.spec).await?;
        let mut staging = state.artifacts.begin().await?;
        staging.copy_from(std::path::Path::new(&body.path)).await?;
        (body.spec, staging.commit().await?, VersionSource::Path)
    } else {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "upload as multipart/form-data, or register a server path as application/json",
        ));
    };
    let storage_dir = artifact.storage_dir.clone();
    let new = NewVersion {
        spec,
        digest: artifact.digest,
        size: artifact.size,
        format: artifact.format,
        files: artifact.files,
        source,
        storage_dir: artifact.storage_dir,
        created_by: ctx.principal.actor.clone(),
    };
    let judged = Judged::new(&state, &ctx).await?;
    let result = ctx
        .apply(
            &state,
            StatusCode::CREATED,
            format!("models/{name}/versions"),
            {
                let judged = judged.clone();
                move |tx, audit| {
                    let version = registry::insert_version(tx, &tenant, &name, &new)?;
                    audit.target = format!("models/{name}/versions/{}", version.version);
                    judge_version(&judged, tx, &tenant, None, &version, audit)?;
                    Ok(version)
                }
            },
        )
        .await;
    match result {
        Ok((_, body)) => Ok(judged.respond(StatusCode::CREATED, body)),
        Err(e) => {
            state.artifacts.remove(&storage_dir).await;
            Err(e)
        }
    }
}

/// Judges a version's registration (no `old`) or stage change by the
/// policies that ask about versions.
fn judge_version(
    judged: &Judged,
    tx: &autoglm_store::Transaction<'_>,
    tenant: &str,
    old: Option<&ModelVersion>,
    new: &ModelVersion,
    audit: &autoglm_core::audit::AuditEvent,
) -> Result<(), autoglm_store::StoreError> {
    let model = registry::get_model(tx, tenant, &new.model)?;
    judged.resource(
        tx,
        Kind::ModelVersion,
        tenant,
        old.map(|o| version_resource(&model, o)),
        || version_resource(&model, new),
        audit,
    )
}

async fn check_spec(
    state: &AppState,
    tenant: &str,
    name: &str,
    spec: &VersionSpec,
) -> ApiResult<()> {
    validate_version_spec(spec).map_err(invalid_body)?;
    if let Some(parent) = spec.parent {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        read(state, move |s| s.version(&tenant, &name, parent))
            .await
            .map_err(|_| invalid_body(format!("parent version {parent} does not exist")))?;
    }
    Ok(())
}

/// Reads the parts: an optional `metadata` JSON part first, then `artifact` file parts.
async fn receive_upload(
    state: &AppState,
    tenant: &str,
    name: &str,
    mut multipart: Multipart,
) -> ApiResult<(VersionSpec, StoredArtifact)> {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        ApiError::new(ErrorCode::MalformedBody, e.body_text())
    };
    let mut spec = None;
    let mut staging: Option<Staging> = None;
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        match field.name() {
            Some("metadata") => {
                if spec.is_some() || staging.is_some() {
                    return Err(invalid_body(
                        "the metadata part must come once, before the artifact parts",
                    ));
                }
                let mut field = field;
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    if bytes.len() + chunk.len() > crate::JSON_LIMIT {
                        return Err(ApiError::new(
                            ErrorCode::PayloadTooLarge,
                            format!(
                                "the metadata part is limited to {} bytes",
                                crate::JSON_LIMIT
                            ),
                        ));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                let parsed: VersionSpec = serde_json::from_slice(&bytes)
                    .map_err(|e| invalid_body(format!("metadata part: {e}")))?;
                check_spec(state, tenant, name, &parsed).await?;
                spec = Some(parsed);
            }
            Some("artifact") => {
                let path = field
                    .file_name()
                    .ok_or_else(|| invalid_body("each artifact part needs a filename"))?
                    .to_owned();
                validate_artifact_path(&path).map_err(invalid_body)?;
                if staging.is_none() {
                    staging = Some(state.artifacts.begin().await?);
                }
                if let Some(staging) = staging.as_mut() {
                    staging.write_stream(&path, field).await?;
                }
            }
            other => {
                return Err(invalid_body(format!(
                    "unexpected part {:?}; send 'metadata' then 'artifact' parts",
                    other.unwrap_or("")
                )));
            }
        }
    }
    let staging = staging.ok_or_else(|| invalid_body("the upload holds no artifact part"))?;
    Ok((spec.unwrap_or_default(), staging.commit().await?))
}

/// `GET /api/v1/models/{name}/versions/{version}`.
pub async fn get_one(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath((name, version)): ApiPath<(String, i64)>,
) -> ApiResult<Json<ModelVersion>> {
    let tenant = ctx.tenant().to_owned();
    Ok(Json(
        read(&state, move |s| s.version(&tenant, &name, version))
            .await?
            .version,
    ))
}

/// `DELETE /api/v1/models/{name}/versions/{version}`.
pub async fn delete_one(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath((name, version)): ApiPath<(String, i64)>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    let target = format!("models/{name}/versions/{version}");
    let (dir, _) = ctx
        .apply(&state, StatusCode::NO_CONTENT, target, move |tx, _| {
            registry::delete_version(tx, &tenant, &name, version)
        })
        .await?;
    state.artifacts.remove(&dir).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /api/v1/models/{name}/versions/{version}/stage`.
pub async fn set_stage(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath((name, version)): ApiPath<(String, i64)>,
    ApiJson(body): ApiJson<SetStage>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    let target = format!("models/{name}/versions/{version}");
    let judged = Judged::new(&state, &ctx).await?;
    let (_, answer) = ctx
        .apply(&state, StatusCode::OK, target, {
            let judged = judged.clone();
            move |tx, audit| {
                let before = registry::get_version(tx, &tenant, &name, version)?.version;
                let after = registry::set_stage(tx, &tenant, &name, version, &body)?;
                judge_version(&judged, tx, &tenant, Some(&before), &after, audit)?;
                Ok(after)
            }
        })
        .await?;
    Ok(judged.respond(StatusCode::OK, answer))
}

/// `GET /api/v1/models/{name}/versions/{version}/artifact`: a single-file version's file.
pub async fn download(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath((name, version)): ApiPath<(String, i64)>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    let stored = read(&state, move |s| s.version(&tenant, &name, version)).await?;
    match stored.version.files.as_slice() {
        [single] => {
            send_file(
                &state,
                &stored.storage_dir,
                &single.path,
                single.size,
                &single.sha256,
            )
            .await
        }
        files => Err(ApiError::new(
            ErrorCode::NotFound,
            format!(
                "this version has {} files; download them one by one under files/{{path}}",
                files.len()
            ),
        )),
    }
}

/// `GET /api/v1/models/{name}/versions/{version}/files/{*path}`: one file, by
/// its path in the version's file list (nothing else is reachable).
pub async fn download_file(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath((name, version, path)): ApiPath<(String, i64, String)>,
) -> ApiResult<Response> {
    validate_artifact_path(&path)
        .map_err(|e| ApiError::new(ErrorCode::InvalidPath, e.to_string()))?;
    let tenant = ctx.tenant().to_owned();
    let stored = read(&state, move |s| s.version(&tenant, &name, version)).await?;
    let file = stored
        .version
        .files
        .iter()
        .find(|f| f.path == path)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("this version has no file {path:?}"),
            )
        })?;
    send_file(
        &state,
        &stored.storage_dir,
        &file.path,
        file.size,
        &file.sha256,
    )
    .await
}

async fn send_file(
    state: &AppState,
    dir: &str,
    path: &str,
    size: u64,
    sha256: &str,
) -> ApiResult<Response> {
    let full = state.artifacts.path_of(dir).join(path);
    let file = tokio::fs::File::open(&full)
        .await
        .map_err(|e| ApiError::internal("open artifact", &e))?;
    let name = path.rsplit('/').next().unwrap_or(path).replace('"', "");
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::ETAG, format!("\"sha256:{sha256}\"")),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response())
}
