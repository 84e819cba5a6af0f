//! The overview: every service of the tenant with its health, replicas and
//! traffic split, as the platform reports them.

use autoglm_console::AppState;
use autoglm_console::api::services::pending_status;
use autoglm_core::rbac::Permission;
use autoglm_core::service::{ConditionStatus, ModelServiceStatus};
use autoglm_store::ServiceFilter;
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
    let services = match tokio::task::spawn_blocking(move || store.list_services(&filter)).await {
        Ok(Ok(services)) => services,
        _ => return PLACE.unreadable(&session),
    };
    let body = html! {
        @if services.is_empty() {
            p.empty { "No services yet. Deploy one with " code { "autoglm apply -f service.yaml" } "." }
        } @else {
            table id="services" {
                caption.muted { (services.len()) " services in " (tenant) }
                thead { tr {
                    th scope="col" { "Service" } th scope="col" { "Model" } th scope="col" { "Traffic" }
                    th scope="col" { "Health" } th.num scope="col" { "Ready / desired" }
                } }
                tbody {
                    @for service in &services {
                        @let spec = &service.manifest.spec;
                        @let status = state.platform.status(&tenant, service).unwrap_or_else(|| pending_status(spec));
                        tr {
                            th scope="row" { (service.name()) }
                            td { (spec.model) }
                            td { @for v in &spec.versions { span.label { "v" (v.version) " · " (v.weight) "%" } } }
                            td { (health(&status)) }
                            td.num { (status.ready_replicas) " / " (status.desired_replicas) }
                        }
                    }
                }
            }
        }
    };
    PLACE.show(&session, body)
}
