//! One version of a model: its files, lineage and stage, its evaluations
//! with what each measured (refreshed live while one runs), and a form that
//! runs a JSONL dataset through it in a service that serves it.

use autoglm_console::AppState;
use autoglm_core::display::{human_size, short_digest};
use autoglm_core::evaluation::Evaluation;
use autoglm_core::rbac::Permission;
use autoglm_core::registry::ModelVersion;
use autoglm_core::service::ModelServiceManifest;
use axum::Extension;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Value, json};

use crate::api::{Api, refusal, segment};
use crate::layout::{self, short_time};
use crate::session::{self, Session, SignedIn};

fn here(name: &str, version: &str) -> String {
    format!("/ui/models/{}/versions/{}", segment(name), segment(version))
}

fn api_path(name: &str, version: &str) -> String {
    format!(
        "/api/v1/models/{}/versions/{}",
        segment(name),
        segment(version)
    )
}

/// The services that serve `version` of `name`: where an evaluation can run.
async fn serving(api: &Api, credential: &str, name: &str, version: &str) -> Vec<String> {
    let (_, page) = api
        .call(
            Method::GET,
            &format!("/api/v1/services?limit=1000&model={}", segment(name)),
            credential,
            None,
        )
        .await;
    let services: Vec<ModelServiceManifest> =
        serde_json::from_value(page["items"].clone()).unwrap_or_default();
    services
        .into_iter()
        .filter(|s| s.spec.versions.iter().any(|v| v.version == version))
        .map(|s| s.metadata.name)
        .collect()
}

fn ms(v: f64) -> String {
    format!("{v:.1}")
}

fn evaluations_table(evaluations: &[Evaluation]) -> Markup {
    html! {
        table id="evaluations" {
            thead { tr {
                th.num scope="col" { "#" } th scope="col" { "Service" } th scope="col" { "State" }
                th.num scope="col" { "Lines" } th.num scope="col" { "Errors" }
                th.num scope="col" { "p50 ms" } th.num scope="col" { "p95 ms" } th.num scope="col" { "p99 ms" }
                th.num scope="col" { "Requests/s" } th.num scope="col" { "Tokens/s" } th scope="col" { "Score" }
                th scope="col" { "Started" }
            } }
            tbody {
                @for e in evaluations {
                    @let r = e.result.as_ref();
                    tr id={"evaluation-" (e.id)} {
                        th.num scope="row" { (e.id) }
                        td { a href={"/ui/services/" (segment(&e.service))} { (e.service) } }
                        td.state {
                            span class={"badge " (match e.state.as_str() { "succeeded" => "ok", "failed" | "cancelled" => "bad", _ => "warn" })} { (e.state.as_str()) }
                            @if let Some(err) = &e.error { " " span.error { (err.message) } }
                            " " a.muted href={"/ui/tasks?kind=evaluate"} { "task " (e.task) }
                        }
                        td.num { (e.samples) }
                        td.num.errors { @if let Some(r) = r { (r.errors) " (" (format!("{:.1}", r.error_ratio * 100.0)) "%)" } @else { "–" } }
                        td.num.p50 { @if let Some(r) = r { (ms(r.latency_ms.p50)) } @else { "–" } }
                        td.num.p95 { @if let Some(r) = r { (ms(r.latency_ms.p95)) } @else { "–" } }
                        td.num.p99 { @if let Some(r) = r { (ms(r.latency_ms.p99)) } @else { "–" } }
                        td.num { @if let Some(r) = r { (format!("{:.1}", r.throughput)) } @else { "–" } }
                        td.num { @if let Some(t) = r.and_then(|r| r.tokens_per_second) { (format!("{t:.1}")) } @else { "–" } }
                        td.score {
                            @match r.and_then(|r| r.score.as_ref()) {
                                Some(s) => { (s.metric) " " strong { (format!("{:.3}", s.value)) } span.muted { " over " (s.labelled) " labelled" } },
                                None => "–",
                            }
                        }
                        td { (short_time(&e.created_at)) " by " (e.created_by) }
                    }
                    @if let Some(r) = r { @if !r.first_errors.is_empty() {
                        tr { td colspan="12" { details { summary.muted { "First errors" } ul { @for err in &r.first_errors { li { code { (err) } } } } } } }
                    } }
                }
            }
        }
    }
}

async fn render(
    api: &Api,
    session: &Session,
    credential: &str,
    name: &str,
    version: &str,
    notice: Markup,
    status: StatusCode,
) -> Response {
    let title = format!("{name} version {version}");
    let v: ModelVersion = match api.get_as(&api_path(name, version), credential).await {
        Ok(v) => v,
        Err(unread) => return unread.page(session, "/ui/models", &title),
    };
    let (_, page) = api
        .call(
            Method::GET,
            &format!("{}/evaluations", api_path(name, version)),
            credential,
            None,
        )
        .await;
    let evaluations: Vec<Evaluation> =
        serde_json::from_value(page["items"].clone()).unwrap_or_default();
    let can_evaluate = session.principal.require(Permission::ModelsWrite).is_ok();
    let services = if can_evaluate {
        serving(api, credential, name, version).await
    } else {
        Vec::new()
    };
    let body = html! {
        p { a href={"/ui/models/" (segment(name))} { "← " (name) } }
        dl.facts {
            dt { "Stage" } dd { (v.stage.as_str()) }
            dt { "Task · framework" } dd { (v.spec.task.as_deref().unwrap_or("–")) " · " (v.spec.framework.as_deref().unwrap_or("–")) }
            dt { "Size" } dd { (human_size(v.size)) }
            dt { "Digest" } dd { code title=(v.digest) { (short_digest(&v.digest)) "…" } }
            dt { "Derived from" } dd { @if let Some(p) = v.spec.parent { "version " (p) } @else { "–" } }
            dt { "Created" } dd { (v.created_at.format("%Y-%m-%d %H:%M")) " by " (v.created_by) }
        }
        details {
            summary { (v.files.len()) " files" }
            ul { @for f in &v.files { li { code { (f.path) } " " span.muted { (human_size(f.size)) } } } }
        }
        h2 { "Evaluations" }
        (notice)
        section id="live-evaluations" data-live {
            @if evaluations.is_empty() {
                p.empty { "Not evaluated yet." }
            } @else {
                (evaluations_table(&evaluations))
            }
        }
        @if can_evaluate {
            h2 { "Evaluate" }
            @if services.is_empty() {
                p.muted { "No service serves this version. Deploy it (a weight of 0 will do) to evaluate it." }
            } @else {
                form.fields method="post" enctype="multipart/form-data" id="evaluate"
                    action={(here(name, version)) "/evaluations"} {
                    input type="hidden" name="csrf" value=(session.csrf);
                    fieldset {
                        legend { "Run a dataset through this version" }
                        label for="service" { "Service" }
                        select id="service" name="service" { @for s in &services { option value=(s) { (s) } } }
                        label for="concurrency" { "Requests at once" }
                        input.short id="concurrency" name="concurrency" inputmode="numeric" value="4";
                        label for="dataset" { "Dataset (JSON lines: messages, prompt, input or inputs, each with an optional label)" }
                        input id="dataset" name="dataset" type="file" accept=".jsonl,.ndjson,.json,application/x-ndjson" required;
                    }
                    button type="submit" { "Evaluate" }
                }
            }
        }
    };
    (status, layout::page(session, "/ui/models", &title, body)).into_response()
}

/// `GET /ui/models/{name}/versions/{version}`.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    render(
        &api,
        &session,
        &credential,
        &name,
        &version,
        html! {},
        StatusCode::OK,
    )
    .await
}

/// The evaluate form's fields.
#[derive(Default)]
struct EvaluateForm {
    csrf: String,
    service: String,
    concurrency: String,
    dataset: String,
}

async fn read_form(mut form: Multipart) -> Result<EvaluateForm, String> {
    let mut out = EvaluateForm::default();
    while let Some(field) = form.next_field().await.map_err(|e| e.body_text())? {
        let name = field.name().unwrap_or_default().to_owned();
        let text = field.text().await.map_err(|e| e.body_text())?;
        match name.as_str() {
            "csrf" => out.csrf = text,
            "service" => out.service = text,
            "concurrency" => out.concurrency = text,
            "dataset" => out.dataset = text,
            _ => {}
        }
    }
    Ok(out)
}

/// `POST /ui/models/{name}/versions/{version}/evaluations`: the form as
/// the API's JSON; back to the page, where the evaluation shows as it runs.
pub async fn evaluate(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
    form: Multipart,
) -> Response {
    let back = here(&name, &version);
    let form = match read_form(form).await {
        Ok(f) => f,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    let (session, credential) =
        match session::require_form(&state, &headers, &back, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let mut body = json!({"service": form.service, "dataset": form.dataset});
    if !form.concurrency.trim().is_empty() {
        body["concurrency"] = match form.concurrency.trim().parse::<u32>() {
            Ok(n) => json!(n),
            // The API says what is wrong with it.
            Err(_) => Value::String(form.concurrency.clone()),
        };
    }
    let (status, answer) = api
        .call(
            Method::POST,
            &format!("{}/evaluations", api_path(&name, &version)),
            &credential,
            Some(body),
        )
        .await;
    if status.is_success() {
        return Redirect::to(&back).into_response();
    }
    render(
        &api,
        &session,
        &credential,
        &name,
        &version,
        refusal("evaluate-error", &answer),
        status,
    )
    .await
}
