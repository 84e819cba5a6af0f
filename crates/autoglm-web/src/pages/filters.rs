//! Gateway filters: the proxy-wasm modules the tenant uploaded (ABI, size,
//! digest, where each is attached), an upload form whose `.wasm` file goes
//! on to the API as the raw module, the tenant's chain in order with each
//! filter's fail mode, configuration and counters (reordered with Up and
//! Down, detached with a button), a form to attach a filter to the tenant
//! or one service, and each service's own filters. Every change goes
//! through the console's API, and its refusal is shown beside the part of
//! the page it came from. Counters come from the gateway in the console's
//! process; where the gateway runs in another, the page says so.

use autoglm_console::AppState;
use autoglm_core::display::human_size;
use autoglm_core::filter::{FailMode, Filter, FilterCounter, FilterRef};
use autoglm_core::rbac::Permission;
use autoglm_core::service::ModelServiceManifest;
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::multipart::Field;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::stream;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::api::{Api, problem_words, refusal, segment};
use crate::extract::{Form, Query};
use crate::layout;
use crate::session::{self, CsrfForm, Session, SignedIn};

const HERE: &str = "/ui/filters";
const TITLE: &str = "Filters";

/// Largest filter name the upload form reads.
const NAME_LIMIT: usize = 256;

/// An action's outcome, shown beside the part of the page it concerns.
#[derive(Default)]
struct Notices {
    filters: Markup,
    upload: Markup,
    chain: Markup,
    attach: Markup,
    services: Markup,
}

/// What was typed into the forms, kept when one is refused.
#[derive(Default)]
struct Typed {
    name: String,
    attach: AttachForm,
}

/// The gateway's counters, or why there are none.
enum Counters {
    Read(Vec<FilterCounter>),
    Unavailable(Vec<String>),
}

impl Counters {
    async fn read(api: &Api, credential: &str) -> Counters {
        let (status, answer) = api
            .call(Method::GET, "/api/v1/filters/counters", credential, None)
            .await;
        if !status.is_success() {
            return Counters::Unavailable(problem_words(&answer));
        }
        match serde_json::from_value(answer) {
            Ok(counters) => Counters::Read(counters),
            Err(e) => Counters::Unavailable(vec![format!(
                "the gateway's counters could not be read: {e}"
            )]),
        }
    }

    /// Why there are none, said once above the tables that would show them.
    fn explained(&self, id: &str) -> Markup {
        html! {
            @if let Counters::Unavailable(words) = self {
                p.muted id=(id) { "Counters unavailable: " (words.join("; ")) }
            }
        }
    }
}

/// One attached filter's counters, in words.
fn counters_cell(counters: &Counters, scope: &str, filter: &str) -> Markup {
    let Counters::Read(all) = counters else {
        return html! { span.muted { "unavailable" } };
    };
    let Some(c) = all.iter().find(|c| c.scope == scope && c.filter == filter) else {
        return html! { span.muted.no-counts { "no request has run it since the gateway started" } };
    };
    let failed: u64 = c.failures.values().sum();
    html! {
        "requests: " span.requests { (c.requests) }
        " · own answers: " span.local { (c.local_responses) }
        br;
        span.failures {
            @if failed == 0 {
                "no failures"
            } @else {
                "failures: "
                (c.failures.iter().map(|(reason, n)| format!("{reason} {n}")).collect::<Vec<_>>().join(" · "))
            }
        }
        @if let Some(last) = &c.last_failure {
            br;
            span.last-failure { "last failure: " (last) }
        }
    }
}

/// A filter's configuration as pretty JSON.
fn config_cell(filter: &FilterRef) -> Markup {
    match &filter.config {
        None => html! { span.muted { "none" } },
        Some(config) => html! {
            pre.config { (serde_json::to_string_pretty(config).unwrap_or_default()) }
        },
    }
}

fn fail_mode(mode: FailMode) -> Markup {
    match mode {
        FailMode::Closed => {
            html! { span.badge title="a request is refused (503) when the filter fails" { "closed" } }
        }
        FailMode::Open => {
            html! { span.badge.warn title="a request passes on without the filter when it fails" { "open" } }
        }
    }
}

/// What a chain's row offers for its filter (at its place from 0).
type Actions<'a> = &'a dyn Fn(usize, &FilterRef) -> Markup;

/// A chain as a table with id `id`: each filter in order, its fail mode,
/// configuration and counters in `scope`, and what `actions` offers for it.
fn chain_table(
    id: &str,
    scope: &str,
    chain: &[FilterRef],
    counters: &Counters,
    actions: Option<Actions<'_>>,
) -> Markup {
    html! {
        table id=(id) {
            thead { tr {
                th.num scope="col" { "#" } th scope="col" { "Filter" } th scope="col" { "Fail mode" }
                th scope="col" { "Configuration" } th scope="col" { "Counters" }
                @if actions.is_some() { th scope="col" { span.muted { "Change" } } }
            } }
            tbody {
                @for (i, filter) in chain.iter().enumerate() {
                    tr id={(id) "-" (filter.name)} {
                        td.num { (i + 1) }
                        th scope="row" { (filter.name) }
                        td.fail-mode { (fail_mode(filter.fail_mode)) }
                        td.configuration { (config_cell(filter)) }
                        td.counters { (counters_cell(counters, scope, &filter.name)) }
                        @if let Some(actions) = actions { td { div.actions { (actions(i, filter)) } } }
                    }
                }
            }
        }
    }
}

/// The uploaded filters.
fn filters_table(session: &Session, filters: &[Filter], can_write: bool) -> Markup {
    html! {
        @if filters.is_empty() {
            p.empty id="no-filters" { "No filters uploaded yet." }
        } @else {
            table id="filters" {
                thead { tr {
                    th scope="col" { "Filter" } th scope="col" { "ABI" } th.num scope="col" { "Size" }
                    th scope="col" { "Digest" } th scope="col" { "Updated" } th scope="col" { "Attached to" }
                    @if can_write { th scope="col" { span.muted { "Delete" } } }
                } }
                tbody {
                    @for f in filters {
                        tr id={"filter-" (f.name)} {
                            th scope="row" { (f.name) }
                            td.abi { (f.abi) }
                            td.num.size title={(f.size) " bytes"} { (human_size(f.size)) }
                            td.digest { code title={"sha256:" (f.digest)} { (f.digest.get(..12).unwrap_or(&f.digest)) } }
                            td.updated { (f.updated_at.format("%Y-%m-%d %H:%M:%S")) " by " (f.uploaded_by) }
                            td.attached {
                                @if f.attached_to.is_empty() {
                                    span.muted { "not attached" }
                                } @else {
                                    @for (i, at) in f.attached_to.iter().enumerate() {
                                        @if i > 0 { " " }
                                        span.label { (at) }
                                    }
                                }
                            }
                            @if can_write {
                                td {
                                    form method="post" action={(HERE) "/" (segment(&f.name)) "/delete"} {
                                        input type="hidden" name="csrf" value=(session.csrf);
                                        button.danger type="submit" id={"delete-" (f.name)} { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The form a `.wasm` module is uploaded with. The token rides in the
/// query, so the handler reads the name and then streams the file on.
fn upload_form(session: &Session, typed: &Typed) -> Markup {
    html! {
        form.fields method="post" enctype="multipart/form-data" id="upload"
            action={(HERE) "/upload?csrf=" (session.csrf)} {
            fieldset {
                legend { "Upload a filter" }
                // The name comes first: the form sends its parts in this order.
                label for="filter-name" { "Name" }
                input id="filter-name" name="name" value=(typed.name) placeholder="header-injector" required;
                label for="module" { "The proxy-wasm module (.wasm)" }
                input id="module" name="module" type="file" accept=".wasm,application/wasm" required;
                p.muted { "A name already uploaded gets the new module: the gateway swaps it in without dropping a request, once it accepts every configuration it is attached with." }
            }
            button type="submit" id="upload-filter" { "Upload" }
        }
    }
}

/// The form a filter is attached with, to the tenant or one of `services`.
fn attach_form(
    session: &Session,
    filters: &[Filter],
    services: &[String],
    typed: &Typed,
) -> Markup {
    let t = &typed.attach;
    html! {
        form.fields method="post" action={(HERE) "/attach"} id="attach" {
            input type="hidden" name="csrf" value=(session.csrf);
            fieldset {
                legend { "Attach a filter" }
                label for="attach-filter" { "Filter" }
                select id="attach-filter" name="filter" {
                    @for f in filters { option value=(f.name) selected[t.filter == f.name] { (f.name) } }
                }
                label for="attach-target" { "To" }
                select id="attach-target" name="target" {
                    option value="" selected[t.target.is_empty()] { "the tenant (every request)" }
                    @for s in services { option value=(s) selected[&t.target == s] { "service " (s) } }
                }
                label for="attach-config" { "Configuration (JSON; empty for none; a string in quotes is passed as it is)" }
                textarea id="attach-config" name="config" rows="5" spellcheck="false"
                    placeholder=r#"{"response": {"x-served-by": "autoglm"}}"# { (t.config) }
                label for="attach-fail-mode" { "When it fails" }
                select id="attach-fail-mode" name="fail_mode" {
                    option value="closed" selected[t.fail_mode != "open"] { "closed: refuse the request (503)" }
                    option value="open" selected[t.fail_mode == "open"] { "open: pass the request on without it" }
                }
                label for="attach-position" { "Position (from 0; empty for the end)" }
                input.short id="attach-position" name="position" type="number" min="0" value=(t.position);
                p.muted { "Attaching a filter already there replaces its configuration and fail mode in its place, or moves it to the position given." }
            }
            button type="submit" id="attach-filter-button" { "Attach" }
        }
    }
}

/// The page, with `notices` beside the parts they concern.
async fn render(
    api: &Api,
    session: &Session,
    credential: &str,
    notices: Notices,
    typed: &Typed,
    status: StatusCode,
) -> Response {
    let filters: Vec<Filter> = match api.get_as("/api/v1/filters", credential).await {
        Ok(filters) => filters,
        Err(unread) => return unread.page(session, HERE, TITLE),
    };
    let chain: Vec<FilterRef> = match api.get_as("/api/v1/filters/chain", credential).await {
        Ok(chain) => chain,
        Err(unread) => return unread.page(session, HERE, TITLE),
    };
    let counters = Counters::read(api, credential).await;
    let (listed, page) = api
        .call(Method::GET, "/api/v1/services?limit=1000", credential, None)
        .await;
    let services: Vec<ModelServiceManifest> =
        serde_json::from_value(page["items"].clone()).unwrap_or_default();
    let names: Vec<String> = services.iter().map(|s| s.metadata.name.clone()).collect();
    let can_write = session.principal.require(Permission::ServicesWrite).is_ok();
    let order: Vec<&str> = chain.iter().map(|f| f.name.as_str()).collect();
    let order = order.join(",");
    let last = chain.len().saturating_sub(1);
    let chain_actions = |i: usize, f: &FilterRef| {
        html! {
            form.stack method="post" action={(HERE) "/chain/move"} {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="name" value=(f.name);
                input type="hidden" name="order" value=(order);
                button type="submit" name="direction" value="up" id={"up-" (f.name)} disabled[i == 0] { "Up" }
                button type="submit" name="direction" value="down" id={"down-" (f.name)} disabled[i == last] { "Down" }
            }
            (detach_button(session, &f.name, None))
        }
    };
    let with_services = services.iter().filter(|s| !s.spec.filters.is_empty());
    let body = html! {
        p.muted {
            "Filters are proxy-wasm modules the gateway runs on each request and its answer: first the tenant's chain, then the service's own filters."
        }
        h2 { "Uploaded filters" }
        (notices.filters)
        (filters_table(session, &filters, can_write))
        @if can_write {
            (notices.upload)
            (upload_form(session, typed))
        }
        h2 { "The tenant's chain" }
        p.muted { "Every request of the tenant runs these, in this order, before its service's own." }
        (notices.chain)
        (counters.explained("counters-unavailable"))
        @if chain.is_empty() {
            p.empty id="no-chain" { "No filter is attached to the tenant." }
        } @else if can_write {
            (chain_table("chain", "tenant", &chain, &counters, Some(&chain_actions)))
        } @else {
            (chain_table("chain", "tenant", &chain, &counters, None))
        }
        @if can_write {
            (notices.attach)
            @if filters.is_empty() {
                p.muted id="attach-nothing" { "Upload a filter to attach it." }
            } @else {
                (attach_form(session, &filters, &names, typed))
            }
        }
        h2 { "Services" }
        p.muted { "A service's own filters run after the tenant's chain, on its requests only." }
        (notices.services)
        @if !listed.is_success() {
            (refusal("services-unread", &page))
        } @else if with_services.clone().next().is_none() {
            p.empty id="no-service-filters" { "No service has filters of its own." }
        } @else {
            @for s in with_services {
                @let name = &s.metadata.name;
                h3 { "Service " a href=(super::services::here(name)) { (name) } }
                @let scope = format!("service/{name}");
                @let id = format!("service-{name}");
                @if can_write {
                    @let actions = |_: usize, f: &FilterRef| detach_button(session, &f.name, Some(name.as_str()));
                    (chain_table(&id, &scope, &s.spec.filters, &counters, Some(&actions)))
                } @else {
                    (chain_table(&id, &scope, &s.spec.filters, &counters, None))
                }
            }
        }
    };
    (status, layout::page(session, HERE, TITLE, body)).into_response()
}

/// The button that detaches `filter` from the tenant, or from `service`.
fn detach_button(session: &Session, filter: &str, service: Option<&str>) -> Markup {
    let id = match service {
        Some(service) => format!("detach-{filter}-from-{service}"),
        None => format!("detach-{filter}"),
    };
    html! {
        form method="post" action={(HERE) "/" (segment(filter)) "/detach"} {
            input type="hidden" name="csrf" value=(session.csrf);
            @if let Some(service) = service { input type="hidden" name="service" value=(service); }
            button.danger type="submit" id=(id) { "Detach" }
        }
    }
}

/// The query of `GET /ui/filters`: the task a service's change went out
/// with, when one did.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PageQuery {
    task: String,
    service: String,
}

/// `GET /ui/filters`.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    Query(query): Query<PageQuery>,
) -> Response {
    let mut notices = Notices::default();
    if !query.task.is_empty() && !query.service.is_empty() {
        notices.services = html! {
            p.notice role="status" id="service-task" {
                "The change to service " a href=(super::services::here(&query.service)) { (query.service) }
                " goes out with task " a href="/ui/tasks" { (query.task) }
                ": the gateway runs its new filters once the change is saved."
            }
        };
    }
    render(
        &api,
        &session,
        &credential,
        notices,
        &Typed::default(),
        StatusCode::OK,
    )
    .await
}

/// Back to the page after a change; one carried by a task (a service's
/// filters) names it there.
fn done(status: StatusCode, answer: &Value, service: Option<&str>) -> Response {
    let task = match &answer["id"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    match service {
        Some(service) if status == StatusCode::ACCEPTED && !task.is_empty() => {
            Redirect::to(&format!(
                "{HERE}?task={}&service={}",
                segment(&task),
                segment(service)
            ))
            .into_response()
        }
        _ => Redirect::to(HERE).into_response(),
    }
}

/// The query of the upload: the form's token.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UploadQuery {
    csrf: String,
}

fn broken(e: axum::extract::multipart::MultipartError) -> String {
    format!("The upload form: {e}.")
}

/// The upload form's name, and its module field when a file was chosen,
/// or why the form cannot be read. The form sends the name first.
async fn read_form(form: &mut Multipart) -> Result<(String, Option<Field<'_>>), String> {
    let unexpected = |field: &Field<'_>| {
        format!(
            "The upload form has an unexpected field {:?}.",
            field.name().unwrap_or_default()
        )
    };
    let name = match form.next_field().await.map_err(broken)? {
        None => return Ok((String::new(), None)),
        Some(field) if field.name() == Some("name") => read_name(field).await?,
        Some(field) => return Err(unexpected(&field)),
    };
    match form.next_field().await.map_err(broken)? {
        None => Ok((name, None)),
        Some(field) if field.name() == Some("module") => {
            // A file input left empty still sends a part without a name.
            let chosen = field.file_name().is_some_and(|f| !f.is_empty());
            Ok((name, chosen.then_some(field)))
        }
        Some(field) => Err(unexpected(&field)),
    }
}

/// The filter's name as typed.
async fn read_name(mut field: Field<'_>) -> Result<String, String> {
    let mut text = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(broken)? {
        if text.len() + chunk.len() > NAME_LIMIT {
            return Err(format!("The filter's name is over {NAME_LIMIT} bytes."));
        }
        text.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&text).trim().to_owned())
}

type Chunk = Result<Bytes, std::io::Error>;

/// Sends the file's chunks on as the API reads them. When the API stops
/// reading (it refused the module, or it is too large), the rest is read
/// and dropped, so the browser's upload ends and it reads the answer.
async fn pump(mut field: Field<'_>, out: mpsc::Sender<Chunk>) {
    let mut out = Some(out);
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                if let Some(sender) = &out
                    && sender.send(Ok(chunk)).await.is_err()
                {
                    out = None;
                }
            }
            Ok(None) => return,
            Err(e) => {
                if let Some(sender) = &out {
                    let why = std::io::Error::other(format!("the upload form: {e}"));
                    let _ = sender.send(Err(why)).await;
                }
                return;
            }
        }
    }
}

/// `POST /ui/filters/upload?csrf=`: the form's `.wasm` file, streamed on
/// as it arrives as the raw body of `PUT /api/v1/filters/{name}`, which
/// checks it and sets the size limit.
pub async fn upload(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, HERE, &query.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let refuse = |words: String, status| {
        let notices = Notices {
            upload: html! { div.error role="alert" id="upload-error" { p { (words) } } },
            ..Notices::default()
        };
        (notices, status)
    };
    let (notices, status, name) = match read_form(&mut form).await {
        Err(words) => {
            let (n, s) = refuse(words, StatusCode::BAD_REQUEST);
            (n, s, String::new())
        }
        Ok((name, _)) if name.is_empty() => {
            let (n, s) = refuse(
                "Name the filter.".to_owned(),
                StatusCode::UNPROCESSABLE_ENTITY,
            );
            (n, s, name)
        }
        Ok((name, None)) => {
            let (n, s) = refuse(
                "Choose the filter's .wasm file.".to_owned(),
                StatusCode::UNPROCESSABLE_ENTITY,
            );
            (n, s, name)
        }
        Ok((name, Some(field))) => {
            let (sender, receiver) = mpsc::channel::<Chunk>(8);
            let body = stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|chunk| (chunk, receiver))
            });
            let path = format!("/api/v1/filters/{}", segment(&name));
            let ((status, answer), ()) = futures_util::future::join(
                api.send(
                    Method::PUT,
                    &path,
                    &credential,
                    Some(("application/wasm", Body::from_stream(body))),
                ),
                pump(field, sender),
            )
            .await;
            if status.is_success() {
                return Redirect::to(HERE).into_response();
            }
            let problem = serde_json::from_slice(&answer).unwrap_or_default();
            let notices = Notices {
                upload: refusal("upload-error", &problem),
                ..Notices::default()
            };
            (notices, status, name)
        }
    };
    let typed = Typed {
        name,
        ..Typed::default()
    };
    render(&api, &session, &credential, notices, &typed, status).await
}

/// The attach form as typed.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct AttachForm {
    csrf: String,
    filter: String,
    /// A service's name; empty for the tenant.
    target: String,
    config: String,
    fail_mode: String,
    position: String,
}

impl AttachForm {
    /// The body of `POST /api/v1/filters/{name}/attach`, or what in the
    /// form cannot be sent.
    fn body(&self) -> Result<Value, String> {
        let mut body = Map::new();
        if !self.target.is_empty() {
            body.insert("service".into(), Value::from(self.target.clone()));
        }
        let config = self.config.trim();
        if !config.is_empty() {
            let value: Value = serde_json::from_str(config).map_err(|e| {
                format!("The configuration is not JSON: {e}. Put a plain string in quotes.")
            })?;
            body.insert("config".into(), value);
        }
        if self.fail_mode == "open" {
            body.insert("failMode".into(), Value::from("open"));
        }
        let position = self.position.trim();
        if !position.is_empty() {
            let at: usize = position.parse().map_err(|_| {
                format!("The position must be a whole number from 0, not {position:?}.")
            })?;
            body.insert("position".into(), Value::from(at));
        }
        Ok(Value::Object(body))
    }
}

/// `POST /ui/filters/attach`.
pub async fn attach(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Form(form): Form<AttachForm>,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, HERE, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let (notice, status) = match form.body() {
        Err(words) => (
            html! { div.error role="alert" id="attach-error" { p { (words) } } },
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Ok(body) => {
            let path = format!("/api/v1/filters/{}/attach", segment(&form.filter));
            let (status, answer) = api.call(Method::POST, &path, &credential, Some(body)).await;
            if status.is_success() {
                let service = (!form.target.is_empty()).then_some(form.target.as_str());
                return done(status, &answer, service);
            }
            (refusal("attach-error", &answer), status)
        }
    };
    let notices = Notices {
        attach: notice,
        ..Notices::default()
    };
    let typed = Typed {
        attach: form,
        ..Typed::default()
    };
    render(&api, &session, &credential, notices, &typed, status).await
}

/// An Up or Down button of the tenant's chain.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MoveForm {
    csrf: String,
    name: String,
    /// `up` or `down`.
    direction: String,
    /// The chain's order as the page showed it, names joined by commas.
    order: String,
}

/// `chain` with `name` moved one place `direction`, if it can move.
fn moved(mut chain: Vec<FilterRef>, name: &str, direction: &str) -> Option<Vec<FilterRef>> {
    let at = chain.iter().position(|f| f.name == name)?;
    let to = match direction {
        "up" => at.checked_sub(1)?,
        "down" => Some(at + 1).filter(|to| *to < chain.len())?,
        _ => return None,
    };
    chain.swap(at, to);
    Some(chain)
}

/// `POST /ui/filters/chain/move`: one filter of the tenant's chain one
/// place up or down, as `PUT /api/v1/filters/chain` with the new order.
/// A chain changed since the page was shown is shown again, unchanged.
pub async fn move_in_chain(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Form(form): Form<MoveForm>,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, HERE, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let chain: Vec<FilterRef> = match api.get_as("/api/v1/filters/chain", &credential).await {
        Ok(chain) => chain,
        Err(unread) => return unread.page(&session, HERE, TITLE),
    };
    let shown: Vec<&str> = form.order.split(',').filter(|n| !n.is_empty()).collect();
    let now: Vec<&str> = chain.iter().map(|f| f.name.as_str()).collect();
    let (notice, status) = if shown != now {
        (
            html! { div.error role="alert" id="chain-error" { p { "The chain changed since the page was shown; here it is as it is now. Move the filter again if you still want to." } } },
            StatusCode::CONFLICT,
        )
    } else {
        let Some(chain) = moved(chain, &form.name, &form.direction) else {
            return Redirect::to(HERE).into_response();
        };
        let (status, answer) = api
            .call(
                Method::PUT,
                "/api/v1/filters/chain",
                &credential,
                Some(json!(chain)),
            )
            .await;
        if status.is_success() {
            return Redirect::to(HERE).into_response();
        }
        (refusal("chain-error", &answer), status)
    };
    let notices = Notices {
        chain: notice,
        ..Notices::default()
    };
    render(
        &api,
        &session,
        &credential,
        notices,
        &Typed::default(),
        status,
    )
    .await
}

/// A Detach button: from a service, or the tenant's chain when none.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DetachForm {
    csrf: String,
    service: String,
}

/// `POST /ui/filters/{name}/detach`.
pub async fn detach(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<DetachForm>,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, HERE, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let service = (!form.service.is_empty()).then_some(form.service.as_str());
    let body = match service {
        Some(service) => json!({"service": service}),
        None => json!({}),
    };
    let path = format!("/api/v1/filters/{}/detach", segment(&name));
    let (status, answer) = api.call(Method::POST, &path, &credential, Some(body)).await;
    if status.is_success() {
        return done(status, &answer, service);
    }
    let notices = match service {
        Some(_) => Notices {
            services: refusal("services-error", &answer),
            ..Notices::default()
        },
        None => Notices {
            chain: refusal("chain-error", &answer),
            ..Notices::default()
        },
    };
    render(
        &api,
        &session,
        &credential,
        notices,
        &Typed::default(),
        status,
    )
    .await
}

/// `POST /ui/filters/{name}/delete`: refused while it is attached.
pub async fn delete(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, HERE, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let path = format!("/api/v1/filters/{}", segment(&name));
    let (status, answer) = api.call(Method::DELETE, &path, &credential, None).await;
    if status.is_success() {
        return Redirect::to(HERE).into_response();
    }
    let notices = Notices {
        filters: refusal("filters-error", &answer),
        ..Notices::default()
    };
    render(
        &api,
        &session,
        &credential,
        notices,
        &Typed::default(),
        status,
    )
    .await
}

/// The "Filters" part of a service's page: its own filters in order with
/// their counters, and where to change them.
pub async fn service_section(
    api: &Api,
    credential: &str,
    service: &str,
    filters: &[FilterRef],
) -> Markup {
    let counters = if filters.is_empty() {
        Counters::Read(Vec::new())
    } else {
        Counters::read(api, credential).await
    };
    html! {
        section id="service-filters" {
            h2 { "Filters " span.muted { a href=(HERE) { "all filters" } } }
            @if filters.is_empty() {
                p.muted id="no-own-filters" { "No filters of its own; the tenant's chain still runs on its requests." }
            } @else {
                p.muted { "Run in this order on its requests, after the tenant's chain." }
                (counters.explained("service-counters-unavailable"))
                (chain_table("own-filters", &format!("service/{service}"), filters, &counters, None))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(names: &[&str]) -> Vec<FilterRef> {
        names
            .iter()
            .map(|n| FilterRef {
                name: (*n).to_owned(),
                config: None,
                fail_mode: FailMode::Closed,
            })
            .collect()
    }

    fn names(chain: &[FilterRef]) -> Vec<&str> {
        chain.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn a_filter_moves_one_place_within_the_chain() {
        let up = moved(chain(&["a", "b", "c"]), "b", "up").unwrap();
        assert_eq!(names(&up), ["b", "a", "c"]);
        let down = moved(chain(&["a", "b", "c"]), "b", "down").unwrap();
        assert_eq!(names(&down), ["a", "c", "b"]);
        assert!(moved(chain(&["a", "b"]), "a", "up").is_none());
        assert!(moved(chain(&["a", "b"]), "b", "down").is_none());
        assert!(moved(chain(&["a"]), "x", "up").is_none());
        assert!(moved(chain(&["a", "b"]), "a", "sideways").is_none());
    }

    #[test]
    fn the_attach_form_becomes_the_apis_body() {
        let form = AttachForm {
            filter: "inject".into(),
            target: "chat".into(),
            config: r#" {"request": {"x-team": "red"}} "#.into(),
            fail_mode: "open".into(),
            position: "0".into(),
            ..AttachForm::default()
        };
        assert_eq!(
            form.body().unwrap(),
            json!({"service": "chat", "config": {"request": {"x-team": "red"}}, "failMode": "open", "position": 0})
        );
        let tenant = AttachForm {
            fail_mode: "closed".into(),
            ..AttachForm::default()
        };
        assert_eq!(tenant.body().unwrap(), json!({}));
        let bad = AttachForm {
            config: "{not json".into(),
            ..AttachForm::default()
        };
        assert!(
            bad.body()
                .unwrap_err()
                .starts_with("The configuration is not JSON")
        );
        let bad = AttachForm {
            position: "first".into(),
            ..AttachForm::default()
        };
        assert!(bad.body().unwrap_err().contains("\"first\""));
    }

    #[test]
    fn counters_say_why_they_are_missing() {
        let none = counters_cell(&Counters::Read(Vec::new()), "tenant", "a").into_string();
        assert!(none.contains("no request has run it"), "{none}");
        let gone = Counters::Unavailable(vec!["runs in another process".into()]);
        assert!(
            counters_cell(&gone, "tenant", "a")
                .into_string()
                .contains("unavailable")
        );
        assert!(
            gone.explained("x")
                .into_string()
                .contains("runs in another process")
        );
        let counted = Counters::Read(vec![FilterCounter {
            scope: "service/chat".into(),
            filter: "a".into(),
            requests: 7,
            local_responses: 2,
            failures: [("deadline".to_owned(), 1), ("trap".to_owned(), 0)].into(),
            last_failure: Some("ran past its deadline".into()),
        }]);
        let html = counters_cell(&counted, "service/chat", "a").into_string();
        assert!(
            html.contains(r#"<span class="requests">7</span>"#),
            "{html}"
        );
        assert!(html.contains("deadline 1 · trap 0"), "{html}");
        assert!(html.contains("ran past its deadline"), "{html}");
        let other_scope = counters_cell(&counted, "tenant", "a").into_string();
        assert!(
            other_scope.contains("no request has run it"),
            "{other_scope}"
        );
    }
}
