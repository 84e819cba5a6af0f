//! Quota: what the tenant may hold (CPU, memory, GPUs, replicas) and spend
//! (tokens per day and month), each with a bar of what it holds and has
//! spent now. System admins see any tenant's and set them here; a tenant's
//! own admin may not raise its quota.

use autoglm_console::AppState;
use autoglm_core::quota::TenantQuota;
use autoglm_core::service::parse_quantity;
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::api::{Api, refusal, segment};
use crate::extract::{Form, Query};
use crate::layout;
use crate::session::{self, Session, SignedIn};

const HERE: &str = "/ui/quota";
const TITLE: &str = "Quota";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct QuotaQuery {
    tenant: String,
}

/// One bounded resource: its name, what is used and the limit as written,
/// and both as numbers for the bar.
struct Row {
    id: &'static str,
    label: &'static str,
    used: String,
    limit: Option<String>,
    fraction: Option<f64>,
}

fn row(id: &'static str, label: &'static str, used: String, limit: Option<String>) -> Row {
    let number = |s: &str| parse_quantity(s).ok();
    let fraction = limit.as_deref().and_then(|l| {
        let (used, limit) = (number(&used)?, number(l)?);
        Some(if limit > 0.0 { used / limit } else { 1.0 })
    });
    Row {
        id,
        label,
        used,
        limit,
        fraction,
    }
}

fn rows(q: &TenantQuota) -> Vec<Row> {
    let (quota, used) = (&q.quota, &q.used);
    vec![
        row(
            "replicas",
            "Replicas",
            used.replicas.to_string(),
            quota.replicas.map(|v| v.to_string()),
        ),
        row(
            "cpu",
            "CPU (cores requested)",
            used.cpu.clone(),
            quota.cpu.clone(),
        ),
        row(
            "memory",
            "Memory (requested)",
            used.memory.clone(),
            quota.memory.clone(),
        ),
        row(
            "gpus",
            "GPUs",
            used.gpus.to_string(),
            quota.gpus.map(|v| v.to_string()),
        ),
        row(
            "tokens_per_day",
            "Tokens today (UTC)",
            used.tokens_today.to_string(),
            quota.tokens_per_day.map(|v| v.to_string()),
        ),
        row(
            "tokens_per_month",
            "Tokens this month (UTC)",
            used.tokens_this_month.to_string(),
            quota.tokens_per_month.map(|v| v.to_string()),
        ),
    ]
}

/// The quota with its bars.
fn table(q: &TenantQuota) -> Markup {
    html! {
        table id="quota" {
            thead { tr {
                th scope="col" { "Resource" } th.num scope="col" { "In use" }
                th.num scope="col" { "Quota" } th scope="col" { "Use" }
            } }
            tbody {
                @for r in rows(q) {
                    tr id={"quota-" (r.id)} {
                        th scope="row" { (r.label) }
                        td.num.used { (r.used) }
                        td.num.limit { @match &r.limit { Some(l) => (l), None => span.muted { "no limit" } } }
                        td {
                            @if let Some(f) = r.fraction {
                                meter min="0" max="1" low="0.75" high="0.9" optimum="0" value=(format!("{:.3}", f.min(1.0))) {}
                                " " span.percent { (format!("{:.0}%", f * 100.0)) }
                                @if f >= 1.0 { " " strong.full { "full" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The form a system admin sets a tenant's quota with, filled with it.
fn form(session: &Session, q: &TenantQuota) -> Markup {
    let quota = serde_json::to_value(&q.quota).unwrap_or_default();
    let field = |name: &str| match &quota[name] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    html! {
        h2 { "Set the quota of " (q.tenant) }
        form method="post" action=(HERE) id="set-quota" {
            input type="hidden" name="csrf" value=(session.csrf);
            input type="hidden" name="tenant" value=(q.tenant);
            @for (name, label, hint) in [
                ("cpu", "CPU", "8 or 500m"), ("memory", "Memory", "32Gi"), ("gpus", "GPUs", "2"),
                ("replicas", "Replicas", "10"), ("tokens_per_day", "Tokens per day", "1000000"),
                ("tokens_per_month", "Tokens per month", "20000000"),
            ] {
                label for=(name) class="muted" { (label) }
                input id=(name) name=(name) placeholder=(hint) value=(field(name));
            }
            p.muted { "Leave a field empty for no limit. A lower quota stops nothing that runs: it refuses new replicas and requests." }
            button type="submit" { "Save quota" }
        }
    }
}

async fn render(
    api: &Api,
    session: &Session,
    credential: &str,
    tenant: &str,
    notice: Markup,
    status: StatusCode,
) -> Response {
    let admin = session.principal.grant.is_system_admin();
    let path = if admin {
        format!("/api/v1/tenants/{}/quota", segment(tenant))
    } else {
        "/api/v1/quota".to_owned()
    };
    let quota: TenantQuota = match api.get_as(&path, credential).await {
        Ok(q) => q,
        Err(unread) => return unread.page(session, HERE, TITLE),
    };
    let tenants = if admin {
        let (_, listed) = api
            .call(Method::GET, "/api/v1/tenants", credential, None)
            .await;
        listed
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect()
    } else {
        Vec::new()
    };
    let body = html! {
        (notice)
        p.muted { "Tenant " strong id="quota-tenant" { (quota.tenant) } ". Replicas start only while every quota has room; the gateway refuses a tenant whose tokens for the day or month are spent." }
        @if !tenants.is_empty() {
            nav.tabs id="quota-tenants" {
                @for t in &tenants {
                    a href={(HERE) "?tenant=" (segment(t))} aria-current=[(t == &quota.tenant).then_some("page")] { (t) }
                }
            }
        }
        (table(&quota))
        @if admin { (form(session, &quota)) }
    };
    (status, layout::page(session, HERE, TITLE, body)).into_response()
}

/// `GET /ui/quota[?tenant=NAME]` (another tenant's for system admins).
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    Query(query): Query<QuotaQuery>,
) -> Response {
    let tenant = if query.tenant.is_empty() {
        session.principal.grant.tenant.clone()
    } else {
        query.tenant
    };
    render(
        &api,
        &session,
        &credential,
        &tenant,
        html! {},
        StatusCode::OK,
    )
    .await
}

/// The body of `PUT /api/v1/tenants/{name}/quota` from the form: empty
/// fields left out, counts as numbers.
fn quota_body(pairs: &[(String, String)]) -> Result<Value, String> {
    let mut body = Map::new();
    for (name, value) in pairs {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match name.as_str() {
            "cpu" | "memory" => {
                body.insert(name.clone(), Value::from(value));
            }
            "gpus" | "replicas" | "tokens_per_day" | "tokens_per_month" => {
                let n: u64 = value
                    .parse()
                    .map_err(|_| format!("{name} must be a whole number, not {value:?}."))?;
                body.insert(name.clone(), Value::from(n));
            }
            _ => {}
        }
    }
    Ok(Value::Object(body))
}

/// `POST /ui/quota`: a system admin sets a tenant's quota (the API refuses
/// anyone else).
pub async fn save(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (session, credential) =
        match session::require_form(&state, &headers, HERE, &field("csrf")).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let tenant = field("tenant");
    let body = match quota_body(&pairs) {
        Ok(body) => body,
        Err(words) => {
            let notice = html! { p.error role="alert" id="quota-error" { (words) } };
            return render(
                &api,
                &session,
                &credential,
                &tenant,
                notice,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let path = format!("/api/v1/tenants/{}/quota", segment(&tenant));
    let (status, answer) = api.call(Method::PUT, &path, &credential, Some(body)).await;
    if status.is_success() {
        return Redirect::to(&format!("{HERE}?tenant={}", segment(&tenant))).into_response();
    }
    let notice = refusal("quota-error", &answer);
    render(&api, &session, &credential, &tenant, notice, status).await
}
