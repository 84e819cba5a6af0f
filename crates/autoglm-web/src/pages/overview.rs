//! The overview: every service of the tenant with its health, replicas and
//! traffic split as the platform reports them, and its last minute of
//! traffic as the gateway counted it; for roles that read the audit, the
//! tenant's latest changes.

use autoglm_console::AppState;
use autoglm_console::api::services::pending_status;
use autoglm_core::rbac::Permission;
use autoglm_core::service::{ConditionStatus, ModelServiceStatus};
use autoglm_core::traffic::{INTERVAL_SECONDS, ServiceTraffic};
use autoglm_store::{AuditFilter, ServiceFilter};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};

use super::Place;

/// The health badge of a status: its Ready condition, in words.
fn health(status: &ModelServiceStatus) -> Markup {
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    let (class, word) = match ready.map(|c| c.status) {
        Some(ConditionStatus::True) => ("ok", "Ready"),
        Some(ConditionStatus::False) => ("bad", "Not ready"),
        _ => ("warn", "Pending"),
    };
    let reason = ready.map(|c| c.reason.as_str()).unwrap_or_default();
    html! { span class={"badge " (class)} title=(reason) { (word) } " " span.muted { (reason) } }
}

/// The intervals of a minute.
const MINUTE: usize = (60 / INTERVAL_SECONDS) as usize;

/// Request rate, error share and 95th percentile latency over the last
/// minute, all versions together; dashes where no history is kept.
fn last_minute(traffic: Option<&ServiceTraffic>) -> Markup {
    let recent = || {
        traffic
            .map(|t| t.versions.as_slice())
            .unwrap_or_default()
            .iter()
            .flat_map(|v| v.points.iter())
    };
    if recent().next().is_none() {
        return html! { td.num { "–" } td.num { "–" } td.num { "–" } };
    }
    let requests: u64 = recent().map(|p| p.requests).sum();
    let errors: u64 = recent().map(|p| p.errors).sum();
    let p95 = recent().filter_map(|p| p.p95_seconds).reduce(f64::max);
    let rate = requests as f64 / (MINUTE as u64 * INTERVAL_SECONDS) as f64;
    let error_share = if requests == 0 {
        0.0
    } else {
        errors as f64 / requests as f64
    };
    html! {
        td.num { (format!("{rate:.2}")) }
        td.num { (format!("{:.1} %", error_share * 100.0)) }
        td.num title="the slowest version's 95th percentile over the minute" { @if let Some(p95) = p95 { (format!("{:.0} ms", p95 * 1000.0)) } @else { "–" } }
    }
}

/// Audit records the overview shows.
const RECENT_EVENTS: i64 = 10;

const PLACE: Place = Place {
    here: "/ui",
    title: "Overview",
    permission: Permission::ServicesRead,
    denied: "Your role cannot read services.",
    unreadable: "The services could not be read; try again.",
};

/// `GET /ui`.
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match PLACE.open(&state, &headers).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let tenant = session.principal.grant.tenant.clone();
    let store = state.store.clone();
    let filter = ServiceFilter {
        tenant: tenant.clone(),
        limit: 1000,
        ..ServiceFilter::default()
    };
    let events_filter = session
        .principal
        .require(Permission::AuditRead)
        .is_ok()
        .then(|| AuditFilter {
            tenant: Some(tenant.clone()),
            limit: RECENT_EVENTS,
            ..AuditFilter::default()
        });
    let read = tokio::task::spawn_blocking(move || {
        let services = store.list_services(&filter)?;
        let events = events_filter.map(|f| store.audit_list(&f)).transpose()?;
        Ok::<_, autoglm_store::StoreError>((services, events))
    })
    .await;
    let Ok(Ok((services, events))) = read else {
        return PLACE.unreadable(&session);
    };
    let can_deploy = session.principal.require(Permission::ServicesWrite).is_ok();
    let body = html! {
        @if can_deploy { a.button href="/ui/services/new" id="new-service" { "New service" } }
        @if services.is_empty() {
            p.empty { "No services yet. Deploy one from the form, or with " code { "autoglm apply -f service.yaml" } "." }
        } @else {
            table id="services" {
                caption.muted { (services.len()) @if services.len() == 1 { " service" } @else { " services" } " in " (tenant) }
                thead { tr {
                    th scope="col" { "Service" } th scope="col" { "Model" } th scope="col" { "Traffic" }
                    th scope="col" { "Health" } th.num scope="col" { "Ready / desired" }
                    th.num scope="col" { "Req/s" } th.num scope="col" { "Errors" } th.num scope="col" { "p95" }
                } }
                tbody {
                    @for service in &services {
                        @let spec = &service.manifest.spec;
                        @let status = state.platform.status(&tenant, service).unwrap_or_else(|| pending_status(spec));
                        tr {
                            th scope="row" { a href={"/ui/services/" (service.name())} { (service.name()) } }
                            td { (spec.model) }
                            td { @for v in &spec.versions { span.label { "v" (v.version) " · " (v.weight) "%" } } }
                            td { (health(&status)) }
                            td.num { (status.ready_replicas) " / " (status.desired_replicas) }
                            (last_minute(state.traffic.traffic(&tenant, service.name(), MINUTE).as_ref()))
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        (body)
        @if let Some(events) = &events {
            h2 { "Recent events" }
            @if events.is_empty() {
                p.empty { "Nothing has happened in " (tenant) " yet." }
            } @else {
                (super::audit::records_table("events", events, false, "The latest changes in this tenant, from the audit log"))
            }
        }
    };
    PLACE.show(&session, body)
}
