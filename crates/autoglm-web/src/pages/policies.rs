//! Policies as code: the tenant's policies with their modes, the default
//! ones to start from, an editor that the console checks as it saves (a
//! syntax error comes back with its line and column, the text kept), a
//! test run of the policy being edited against a pasted or existing
//! service, and the decisions the audit holds.

use crate::extract::Form;
use autoglm_console::AppState;
use autoglm_core::rbac::Permission;
use axum::Extension;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{Api, problem_words, refusal, segment};
use crate::layout;
use crate::session::{self, CsrfForm, Session, SignedIn};

const HERE: &str = "/ui/policies";

/// Whose policy a page edits: the tenant's, or (system admins) the global
/// ones that judge every tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The caller's tenant's.
    Tenant,
    /// Every tenant's.
    Global,
}

impl Scope {
    /// The scope of the page at `uri`.
    fn of(uri: &Uri) -> Scope {
        if uri.path().starts_with(Scope::Global.ui()) {
            Scope::Global
        } else {
            Scope::Tenant
        }
    }

    fn ui(self) -> &'static str {
        match self {
            Scope::Tenant => "/ui/policies",
            Scope::Global => "/ui/global-policies",
        }
    }

    fn api(self) -> &'static str {
        match self {
            Scope::Tenant => "/api/v1/policies",
            Scope::Global => "/api/v1/global-policies",
        }
    }
}

/// `GET /ui/policies`: the policies, the library, the decisions.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
) -> Response {
    list(&api, &session, &credential, html! {}, StatusCode::OK).await
}

async fn list(
    api: &Api,
    session: &Session,
    credential: &str,
    notice: Markup,
    status: StatusCode,
) -> Response {
    let (listed, policies) = api
        .call(Method::GET, "/api/v1/policies", credential, None)
        .await;
    let (_, library) = api
        .call(Method::GET, "/api/v1/policies/library", credential, None)
        .await;
    let (_, decisions) = api
        .call(Method::GET, "/api/v1/audit?limit=200", credential, None)
        .await;
    let may_write = session.principal.require(Permission::PoliciesWrite).is_ok();
    let decisions: Vec<&Value> = decisions["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|r| r["action"] == "policies.decide")
                .take(50)
                .collect()
        })
        .unwrap_or_default();
    let body = html! {
        (notice)
        @if may_write {
            p {
                a.button href="/ui/policies/new" id="new-policy" { "New policy" }
                @if session.principal.grant.is_system_admin() {
                    " " a.button href="/ui/global-policies/new" id="new-global-policy" { "New global policy" }
                }
            }
        }
        @if !listed.is_success() {
            (refusal("policies-error", &policies))
        } @else if policies.as_array().is_none_or(Vec::is_empty) {
            p.empty id="no-policies" { "This tenant has no policies: every deploy goes through unjudged." }
        } @else {
            table id="policies" {
                thead { tr { th scope="col" { "Policy" } th scope="col" { "Scope" } th scope="col" { "Mode" } th scope="col" { "Version" } th scope="col" { "Description" } th scope="col" { "Changed" } } }
                tbody {
                    @for p in policies.as_array().into_iter().flatten() {
                        @let name = p["name"].as_str().unwrap_or_default();
                        @let global = p["scope"] == "global";
                        tr id={ @if global { "global-" } @else { "policy-" } (name)} {
                            th scope="row" {
                                @if !global { a href={"/ui/policies/" (segment(name))} { (name) } }
                                @else if session.principal.grant.is_system_admin() { a href={"/ui/global-policies/" (segment(name))} { (name) } }
                                @else { (name) }
                            }
                            td { @if global { "every tenant" } @else { "this tenant" } }
                            td { (mode_badge(p["spec"]["mode"].as_str().unwrap_or("enforce"))) }
                            td { (p["version"]) }
                            td { (p["spec"]["description"].as_str().unwrap_or("")) }
                            td.muted { (p["createdAt"].as_str().unwrap_or("").get(..16).unwrap_or("").replace('T', " ")) " by " (p["createdBy"].as_str().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        h2 { "Default policies" }
        p.muted { "Each is opt-in: open one to add it as this tenant's own, with your parameters." }
        table id="library" {
            thead { tr { th scope="col" { "Policy" } th scope="col" { "Checks" } } }
            tbody {
                @for entry in library.as_array().into_iter().flatten() {
                    @let name = entry["name"].as_str().unwrap_or_default();
                    tr id={"library-" (name)} {
                        th scope="row" {
                            @if may_write { a href={"/ui/policies/new?from=" (segment(name))} { (name) } } @else { (name) }
                        }
                        td { (entry["description"].as_str().unwrap_or("")) }
                    }
                }
            }
        }
        h2 { "Decisions" }
        @if decisions.is_empty() {
            p.empty id="no-decisions" { "No deploy has been judged yet." }
        } @else {
            table id="decisions" {
                thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Outcome" } } }
                tbody {
                    @for r in &decisions {
                        tr {
                            td { (r["time"].as_str().unwrap_or("").get(..19).unwrap_or("").replace('T', " ")) }
                            td { (r["actor"].as_str().unwrap_or("")) }
                            td { code { (r["target"].as_str().unwrap_or("")) } }
                            td {
                                @let outcome = r["outcome"].as_str().unwrap_or("");
                                @if let Some(findings) = outcome.strip_prefix("refused: ") {
                                    span.badge.bad { "refused" } " " (findings)
                                } @else { (outcome) }
                            }
                        }
                    }
                }
            }
        }
    };
    (status, layout::page(session, HERE, "Policies", body)).into_response()
}

fn mode_badge(mode: &str) -> Markup {
    match mode {
        "enforce" => html! { span.badge.bad { "enforce" } },
        "warn" => html! { span.badge.warn { "warn" } },
        other => html! { span.badge { (other) } },
    }
}

/// What the editor holds: the policy as typed.
#[derive(Debug, Default, Deserialize)]
pub struct Editor {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    syntax: String,
    #[serde(default)]
    parameters: String,
    #[serde(default)]
    rego: String,
    /// Checkboxes: which kinds of resource it judges.
    #[serde(default)]
    kind_service: Option<String>,
    #[serde(default)]
    kind_model: Option<String>,
    #[serde(default)]
    kind_version: Option<String>,
    #[serde(default)]
    kind_config: Option<String>,
    /// A test run's resource: a ModelService manifest as JSON.
    #[serde(default)]
    resource: String,
    /// Or the name of an existing service to test against.
    #[serde(default)]
    service: String,
}

impl Editor {
    /// The editor over a stored policy's (or a library entry's) fields.
    fn from_policy(name: &str, spec: &Value) -> Editor {
        Editor {
            name: name.to_owned(),
            description: spec["description"].as_str().unwrap_or("").to_owned(),
            mode: spec["mode"].as_str().unwrap_or("enforce").to_owned(),
            syntax: spec["syntax"].as_str().unwrap_or("v1").to_owned(),
            parameters: serde_json::to_string_pretty(&spec["parameters"])
                .unwrap_or_else(|_| "{}".into()),
            rego: spec["rego"].as_str().unwrap_or("").to_owned(),
            kind_service: judges(spec, "ModelService"),
            kind_model: judges(spec, "Model"),
            kind_version: judges(spec, "ModelVersion"),
            kind_config: judges(spec, "Config"),
            ..Editor::default()
        }
    }

    /// The API's policy body, or what in the form is not JSON.
    fn spec(&self) -> Result<Value, String> {
        let parameters: Value = match self.parameters.trim() {
            "" => json!({}),
            text => {
                serde_json::from_str(text).map_err(|e| format!("Parameters are not JSON: {e}."))?
            }
        };
        let kinds: Vec<&str> = [
            (&self.kind_service, "ModelService"),
            (&self.kind_model, "Model"),
            (&self.kind_version, "ModelVersion"),
            (&self.kind_config, "Config"),
        ]
        .into_iter()
        .filter(|(ticked, _)| ticked.is_some())
        .map(|(_, kind)| kind)
        .collect();
        Ok(json!({
            "kinds": kinds,
            "rego": self.rego.replace("\r\n", "\n"),
            "mode": if self.mode.is_empty() { "enforce" } else { &self.mode },
            "syntax": if self.syntax.is_empty() { "v1" } else { &self.syntax },
            "parameters": parameters,
            "description": self.description.trim(),
        }))
    }
}

/// `Some` when a policy's spec judges `kind` (a policy without `kinds`
/// judges services), as a checkbox's value.
fn judges(spec: &Value, kind: &str) -> Option<String> {
    let judged = match spec["kinds"].as_array() {
        Some(kinds) => kinds.iter().any(|k| k == kind),
        None => kind == "ModelService",
    };
    judged.then(|| "on".to_owned())
}

async fn editor(
    session: &Session,
    scope: Scope,
    form: &Editor,
    existing: bool,
    notice: Markup,
    status: StatusCode,
) -> Response {
    let action = if existing {
        format!("{}/{}", scope.ui(), segment(&form.name))
    } else {
        scope.ui().to_owned()
    };
    let kind = match scope {
        Scope::Tenant => "policy",
        Scope::Global => "global policy (every tenant)",
    };
    let title = if existing {
        format!("The {kind} {}", form.name)
    } else {
        format!("New {kind}")
    };
    let may_write = session.principal.require(Permission::PoliciesWrite).is_ok();
    let body = html! {
        (notice)
        form.fields method="post" action=(action) id="policy-editor" {
            input type="hidden" name="csrf" value=(session.csrf);
            label for="name" { "Name" }
            @if existing {
                input id="name" name="name" value=(form.name) readonly;
            } @else {
                input id="name" name="name" value=(form.name) placeholder="required-labels" required;
            }
            label for="description" { "Description" }
            input id="description" name="description" value=(form.description);
            label for="mode" { "Mode" }
            select id="mode" name="mode" {
                @for (value, words) in [("enforce", "enforce: refuse what it finds"), ("warn", "warn: answer warnings"), ("dryrun", "dry run: only record")] {
                    option value=(value) selected[form.mode == value || (form.mode.is_empty() && value == "enforce")] { (words) }
                }
            }
            label for="syntax" { "Rego" }
            select id="syntax" name="syntax" {
                option value="v1" selected[form.syntax != "v0"] { "v1 (OPA 1.x)" }
                option value="v0" selected[form.syntax == "v0"] { "v0 (Gatekeeper templates)" }
            }
            fieldset.scopes {
                legend.muted { "Judges writes of" }
                label { input type="checkbox" id="kind-service" name="kind_service" checked[form.kind_service.is_some()]; " services" }
                label { input type="checkbox" id="kind-model" name="kind_model" checked[form.kind_model.is_some()]; " models" }
                label { input type="checkbox" id="kind-version" name="kind_version" checked[form.kind_version.is_some()]; " model versions (registered, stage changed)" }
                label { input type="checkbox" id="kind-config" name="kind_config" checked[form.kind_config.is_some()]; " config keys (every version published)" }
            }
            label for="parameters" { "Parameters (JSON: input.parameters)" }
            textarea id="parameters" name="parameters" rows="4" spellcheck="false" { (form.parameters) }
            label for="rego" { "Policy (deny, violation and warn rules)" }
            textarea id="rego" name="rego" rows="18" spellcheck="false" { (form.rego) }
            @if may_write { button type="submit" id="save-policy" { "Save" } }
            h2 { "Test it" }
            p.muted { "Judge a service by the policy as written above, without saving it or deploying anything." }
            label for="service" { "An existing service" }
            input id="service" name="service" value=(form.service) placeholder="chat";
            label for="resource" { "Or a ModelService manifest (JSON)" }
            textarea id="resource" name="resource" rows="8" spellcheck="false" { (form.resource) }
            button type="submit" formaction={(action) "/test"} id="test-policy" { "Test" }
        }
        @if existing && may_write {
            form method="post" action={(scope.ui()) "/" (segment(&form.name)) "/delete"} {
                input type="hidden" name="csrf" value=(session.csrf);
                button type="submit" class="revoke" id="delete-policy" { "Delete policy" }
            }
        }
    };
    (status, layout::page(session, HERE, &title, body)).into_response()
}

/// The query of `GET /ui/policies/new`.
#[derive(Debug, Deserialize)]
pub struct NewQuery {
    from: Option<String>,
}

/// `GET /ui/policies/new[?from=LIBRARY]` (and `/ui/global-policies/new`):
/// an empty editor, or one holding a default policy.
pub async fn new(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<NewQuery>,
) -> Response {
    let scope = Scope::of(&uri);
    let mut form = Editor {
        mode: "enforce".into(),
        parameters: "{}".into(),
        kind_service: Some("on".into()),
        ..Editor::default()
    };
    if let Some(from) = &query.from {
        let (_, library) = api
            .call(Method::GET, "/api/v1/policies/library", &credential, None)
            .await;
        if let Some(entry) = library
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == from.as_str())
        {
            form = Editor::from_policy(from, entry);
        }
    }
    editor(&session, scope, &form, false, html! {}, StatusCode::OK).await
}

/// `GET /ui/policies/{name}` (and `/ui/global-policies/{name}`): the
/// editor over the current version, with its history.
pub async fn detail(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    OriginalUri(uri): OriginalUri,
    Path(name): Path<String>,
) -> Response {
    let scope = Scope::of(&uri);
    let path = format!("{}/{}", scope.api(), segment(&name));
    let (status, policy) = api.call(Method::GET, &path, &credential, None).await;
    if !status.is_success() {
        return list(
            &api,
            &session,
            &credential,
            refusal("policies-error", &policy),
            status,
        )
        .await;
    }
    let form = Editor::from_policy(&name, &policy["spec"]);
    let (_, versions) = api
        .call(Method::GET, &format!("{path}/versions"), &credential, None)
        .await;
    let history = html! {
        details id="policy-versions" open {
            summary { "Versions" }
            ul {
                @for v in versions.as_array().into_iter().flatten() {
                    li {
                        "v" (v["version"]) " · " (v["createdAt"].as_str().unwrap_or("").get(..19).unwrap_or("").replace('T', " "))
                        " · " (v["createdBy"].as_str().unwrap_or(""))
                        @if v["spec"].is_null() { " · deleted" } @else { " · " (v["spec"]["mode"].as_str().unwrap_or("")) }
                    }
                }
            }
        }
    };
    editor(&session, scope, &form, true, history, StatusCode::OK).await
}

/// The session of an editor's POST, and whether it edits a stored policy
/// (whose name then comes from the path, not the form).
async fn editing(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    name: Option<Path<String>>,
    form: &mut Editor,
) -> Result<(Session, String, bool, Scope), Response> {
    let (session, credential) = session::require_form(state, headers, HERE, &form.csrf).await?;
    let existing = name.is_some();
    if let Some(Path(name)) = name {
        form.name = name;
    }
    Ok((session, credential, existing, Scope::of(uri)))
}

/// `POST /ui/policies[/{name}]` and `POST /ui/global-policies[/{name}]`: saves; a refusal
/// (a syntax error with its line and column) keeps the text as typed.
pub async fn save(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    name: Option<Path<String>>,
    Form(mut form): Form<Editor>,
) -> Response {
    let (session, credential, existing, scope) =
        match editing(&state, &headers, &uri, name, &mut form).await {
            Ok(signed) => signed,
            Err(answer) => return answer,
        };
    let spec = match form.spec() {
        Ok(spec) => spec,
        Err(words) => {
            let notice = html! { p.error role="alert" id="policy-error" { (words) } };
            return editor(
                &session,
                scope,
                &form,
                existing,
                notice,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let path = format!("{}/{}", scope.api(), segment(form.name.trim()));
    let (status, answer) = api.call(Method::PUT, &path, &credential, Some(spec)).await;
    if status.is_success() {
        return Redirect::to(&format!("{}/{}", scope.ui(), segment(form.name.trim())))
            .into_response();
    }
    editor(
        &session,
        scope,
        &form,
        existing,
        refusal("policy-error", &answer),
        status,
    )
    .await
}

/// `POST /ui/policies/test` and `POST /ui/policies/{name}/test`: how the
/// policy as typed judges the service, and why.
pub async fn test(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    name: Option<Path<String>>,
    Form(mut form): Form<Editor>,
) -> Response {
    let (session, credential, existing, scope) =
        match editing(&state, &headers, &uri, name, &mut form).await {
            Ok(signed) => signed,
            Err(answer) => return answer,
        };
    let refuse = |words: String| html! { p.error role="alert" id="test-error" { (words) } };
    let resource = if !form.service.trim().is_empty() {
        let path = format!("/api/v1/services/{}", segment(form.service.trim()));
        let (status, service) = api.call(Method::GET, &path, &credential, None).await;
        if !status.is_success() {
            let notice = refusal("test-error", &service);
            return editor(&session, scope, &form, existing, notice, status).await;
        }
        let mut service = service;
        if let Some(o) = service.as_object_mut() {
            o.remove("status");
        }
        Ok(service)
    } else {
        serde_json::from_str::<Value>(&form.resource)
            .map_err(|e| format!("The manifest is not JSON: {e}."))
    };
    let (resource, spec) = match (resource, form.spec()) {
        (Ok(r), Ok(s)) => (r, s),
        (Err(words), _) | (_, Err(words)) => {
            return editor(
                &session,
                scope,
                &form,
                existing,
                refuse(words),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let (status, answer) = api
        .call(
            Method::POST,
            "/api/v1/policies/evaluate",
            &credential,
            Some(json!({"resource": resource, "policy": spec})),
        )
        .await;
    let notice = if status.is_success() {
        outcome(&answer)
    } else {
        html! { div.error role="alert" id="test-error" { @for line in problem_words(&answer) { p { (line) } } } }
    };
    editor(&session, scope, &form, existing, notice, StatusCode::OK).await
}

/// A test run's decision and, per rule, what fired on which input paths.
fn outcome(answer: &Value) -> Markup {
    let decision = &answer["decision"];
    let denials = decision["denials"].as_array().cloned().unwrap_or_default();
    let warnings = decision["warnings"].as_array().cloned().unwrap_or_default();
    let recorded = decision["dryRun"].as_array().cloned().unwrap_or_default();
    html! {
        div.notice role="status" id="test-result" {
            @if denials.is_empty() {
                p { span.badge.ok id="test-verdict" { "allowed" } }
            } @else {
                p { span.badge.bad id="test-verdict" { "refused" } }
            }
            ul id="test-findings" {
                @for (kind, findings) in [("denied", &denials), ("warning", &warnings), ("recorded", &recorded)] {
                    @for f in findings {
                        li { (kind) " · " code { (f["rule"].as_str().unwrap_or("")) } ": " (f["message"].as_str().unwrap_or("")) }
                    }
                }
            }
            @for e in answer["explanations"].as_array().into_iter().flatten() {
                @if let Some(error) = e["error"].as_str() { p.error { (error) } }
                table.explanation {
                    thead { tr { th scope="col" { "Rule" } th scope="col" { "Fired" } th scope="col" { "Lines" } th scope="col" { "Input paths" } } }
                    tbody {
                        @for r in e["rules"].as_array().into_iter().flatten() {
                            tr {
                                th scope="row" { code { (r["rule"].as_str().unwrap_or("")) } }
                                td { @if r["fired"] == true { "yes" } @else { "no" } }
                                td { (r["lines"].as_array().map(|l| l.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                                td { @for p in r["inputPaths"].as_array().into_iter().flatten() { code { (p.as_str().unwrap_or("")) } " " } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /ui/policies/{name}/delete` and `POST /ui/global-policies/{name}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, HERE, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let path = format!("{}/{}", Scope::of(&uri).api(), segment(&name));
    let (status, answer) = api.call(Method::DELETE, &path, &credential, None).await;
    if status.is_success() {
        return Redirect::to(HERE).into_response();
    }
    list(
        &api,
        &session,
        &credential,
        refusal("policies-error", &answer),
        status,
    )
    .await
}
