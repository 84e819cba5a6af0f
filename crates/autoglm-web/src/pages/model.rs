//! One model: its versions with digest, size, format, stage and lineage; a
//! stage change per version; and an upload of a new version with a progress
//! bar. Changes go through the console's API, uploads streamed to it as sent.

use crate::extract::{Form, Query};
use autoglm_console::AppState;
use autoglm_core::display::{human_size, short_digest};
use autoglm_core::rbac::Permission;
use autoglm_core::registry::{Model, ModelVersion};
use autoglm_core::stage::Stage;
use axum::Extension;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use crate::api::{Api, refusal, segment};
use crate::layout;
use crate::session::{self, Session, SignedIn};

const STAGES: [Stage; 4] = [
    Stage::None,
    Stage::Staging,
    Stage::Production,
    Stage::Archived,
];

fn here(name: &str) -> String {
    format!("/ui/models/{}", segment(name))
}

fn stage_badge(stage: Stage) -> Markup {
    let class = match stage {
        Stage::Production => "ok",
        Stage::Staging => "warn",
        Stage::None | Stage::Archived => "",
    };
    html! { span class={"badge " (class)} { (stage.as_str()) } }
}

/// The page, with `notice` (an action's refusal) above the versions.
async fn render(
    api: &Api,
    session: &Session,
    credential: &str,
    name: &str,
    notice: Markup,
    status: StatusCode,
) -> Response {
    let path = format!("/api/v1/models/{}", segment(name));
    let model: Model = match api.get_as(&path, credential).await {
        Ok(model) => model,
        Err(unread) => return unread.page(session, "/ui/models", name),
    };
    let (_, page) = api
        .call(
            Method::GET,
            &format!("/api/v1/models/{}/versions?limit=1000", segment(name)),
            credential,
            None,
        )
        .await;
    let versions: Vec<ModelVersion> =
        serde_json::from_value(page["items"].clone()).unwrap_or_default();
    let can_upload = session.principal.require(Permission::ModelsWrite).is_ok();
    let can_promote = session.principal.require(Permission::ModelsPromote).is_ok();
    let body = html! {
        p.muted {
            (model.description.as_deref().unwrap_or(""))
            @for (k, v) in &model.labels { " " span.label { (k) "=" (v) } }
        }
        (notice)
        @if versions.is_empty() {
            p.empty { "No versions yet." }
        } @else {
            table id="versions" {
                thead { tr {
                    th scope="col" { "Version" } th scope="col" { "Stage" } th scope="col" { "Format" }
                    th.num scope="col" { "Size" } th scope="col" { "Digest" } th scope="col" { "Task · framework" }
                    th scope="col" { "Derived from" } th scope="col" { "Created" }
                    @if can_promote { th scope="col" { "Change stage" } }
                } }
                tbody {
                    @for v in &versions {
                        tr id={"version-" (v.version)} {
                            th scope="row" { a href={(here(name)) "/versions/" (v.version)} { (v.version) } }
                            td.stage { (stage_badge(v.stage)) }
                            td { (serde_json::to_value(v.format).ok().and_then(|f| f.as_str().map(str::to_owned)).unwrap_or_default()) " · " (v.files.len()) @if v.files.len() == 1 { " file" } @else { " files" } }
                            td.num { (human_size(v.size)) }
                            td { code title=(v.digest) { (short_digest(&v.digest)) "…" } }
                            td { (v.spec.task.as_deref().unwrap_or("–")) " · " (v.spec.framework.as_deref().unwrap_or("–")) }
                            td { @if let Some(parent) = v.spec.parent { "v" (parent) } @else { "–" } }
                            td { (v.created_at.format("%Y-%m-%d %H:%M")) " by " (v.created_by) }
                            @if can_promote {
                                td {
                                    form.stack method="post" action={(here(name)) "/versions/" (v.version) "/stage"} {
                                        input type="hidden" name="csrf" value=(session.csrf);
                                        label.muted for={"stage-" (v.version)} { "to" }
                                        select id={"stage-" (v.version)} name="stage" {
                                            @for s in STAGES.iter().filter(|s| **s != v.stage && **s != Stage::None) {
                                                option value=(s.as_str()) { (s.as_str()) }
                                            }
                                        }
                                        button type="submit" { "Move" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if can_upload {
            h2 { "Upload a new version" }
            form.fields method="post" enctype="multipart/form-data" id="upload"
                action={(here(name)) "/versions?csrf=" (session.csrf)} data-progress="upload-progress" data-page=(here(name)) {
                fieldset {
                    legend { "Files" }
                    // The text fields come first: the form sends its parts in this order.
                    div.row {
                        label for="task" { "Task" }
                        input.short id="task" name="task" placeholder="text-generation";
                        label for="framework" { "Framework" }
                        input.short id="framework" name="framework" placeholder="onnx";
                        label for="parent" { "Derived from version" }
                        input.short id="parent" name="parent" inputmode="numeric";
                    }
                    label for="description" { "Description" }
                    input id="description" name="description";
                    label for="artifact" { "The model's files (weights, config, tokenizer)" }
                    input id="artifact" name="artifact" type="file" multiple required;
                }
                button type="submit" { "Upload" }
                progress id="upload-progress" value="0" max="1" hidden {}
                span.muted id="upload-progress-words" role="status" {}
            }
        }
    };
    (status, layout::page(session, "/ui/models", name, body)).into_response()
}

/// `GET /ui/models/{name}`.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    Path(name): Path<String>,
) -> Response {
    render(&api, &session, &credential, &name, html! {}, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/models/{name}/versions?csrf=`: the browser's upload form,
/// re-framed as the API's upload (a `metadata` part, then `artifact` parts)
/// and streamed on to it as it arrives. The token rides in the query, so the
/// form's fields stay what the API reads.
pub async fn upload(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    Path(name): Path<String>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    form: Multipart,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, &here(&name), &query.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let (content_type, body) = crate::upload::reframe(form);
    let path = format!("/api/v1/models/{}/versions", segment(&name));
    let (status, answer) = api
        .send(
            Method::POST,
            &path,
            &credential,
            Some((&content_type, body)),
        )
        .await;
    if status.is_success() {
        return Redirect::to(&here(&name)).into_response();
    }
    let problem = serde_json::from_slice(&answer).unwrap_or_default();
    render(
        &api,
        &session,
        &credential,
        &name,
        refusal("upload-error", &problem),
        status,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct StageForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    stage: String,
}

/// `POST /ui/models/{name}/versions/{version}/stage`.
pub async fn set_stage(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
    Form(form): Form<StageForm>,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, &here(&name), &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let path = format!(
        "/api/v1/models/{}/versions/{}/stage",
        segment(&name),
        segment(&version)
    );
    let (status, answer) = api
        .command(
            Method::PUT,
            &path,
            &credential,
            json!({"stage": form.stage}),
        )
        .await;
    if status.is_success() {
        return Redirect::to(&here(&name)).into_response();
    }
    render(
        &api,
        &session,
        &credential,
        &name,
        refusal("stage-error", &answer),
        status,
    )
    .await
}
