//! The audit log: newest first, filtered by actor, action, target and
//! outcome; for system admins, the state of the hash chain that spans it.

use crate::extract::Query;
use autoglm_console::AppState;
use autoglm_core::audit::AuditRecord;
use autoglm_core::rbac::Permission;
use autoglm_store::AuditFilter;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::Place;

/// Records shown on one page.
const SHOWN: i64 = 200;

#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    outcome: String,
}

fn given(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn filter_field(id: &str, label: &str, value: &str) -> Markup {
    html! {
        label for=(id) class="muted" { (label) }
        input id=(id) name=(id) value=(value);
    }
}

const PLACE: Place = Place {
    here: "/ui/audit",
    title: "Audit",
    permission: Permission::AuditRead,
    denied: "Your role cannot read the audit log.",
    unreadable: "The audit log could not be read; try again.",
};

/// `GET /ui/audit`.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(filters): Query<Filters>,
) -> Response {
    let session = match PLACE.open(&state, &headers).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let admin = session.principal.grant.is_system_admin();
    let filter = AuditFilter {
        // System admins read every tenant's records, as the API lets them.
        tenant: (!admin).then(|| session.principal.grant.tenant.clone()),
        actor: given(&filters.actor),
        action: given(&filters.action),
        target_prefix: given(&filters.target),
        outcome: given(&filters.outcome),
        limit: SHOWN,
        ..AuditFilter::default()
    };
    let store = state.store.clone();
    let read = tokio::task::spawn_blocking(move || {
        let records = store.audit_list(&filter)?;
        let chain = if admin {
            Some(store.audit_verify()?)
        } else {
            None
        };
        Ok::<_, autoglm_store::StoreError>((records, chain))
    })
    .await;
    let Ok(Ok((records, chain))) = read else {
        return PLACE.unreadable(&session);
    };
    let body = html! {
        @if let Some(chain) = &chain {
            @if chain.valid {
                p id="chain" { span.badge.ok { "Chain intact" } " " span.muted { (chain.records) " records verified; head " code { (chain.head.get(..16).unwrap_or(&chain.head)) "…" } } }
            } @else {
                p id="chain" role="alert" { span.badge.bad { "Chain broken" } " at record " (chain.first_bad_seq.unwrap_or_default()) ": " (chain.reason.as_deref().unwrap_or("")) }
            }
        } @else {
            p id="chain" class="muted" { "Verifying the hash chain, which spans every tenant, is for system admins." }
        }
        form.search method="get" action="/ui/audit" role="search" {
            (filter_field("actor", "Actor", &filters.actor))
            (filter_field("action", "Action", &filters.action))
            (filter_field("target", "Target starts with", &filters.target))
            (filter_field("outcome", "Outcome", &filters.outcome))
            button type="submit" { "Filter" }
        }
        @if records.is_empty() {
            p.empty { "No record matches." }
        } @else {
            (records_table("audit", &records, admin, &format!("Newest first; at most {SHOWN} shown")))
        }
    };
    PLACE.show(&session, body)
}

/// Audit records as a table with id `id`, newest first; with the tenant
/// column for a system admin, who reads every tenant's.
pub fn records_table(id: &str, records: &[AuditRecord], admin: bool, caption: &str) -> Markup {
    html! {
        table id=(id) {
            caption.muted { (caption) }
            thead { tr {
                th.num scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Actor" }
                th scope="col" { "Action" } th scope="col" { "Target" } th scope="col" { "Outcome" }
                @if admin { th scope="col" { "Tenant" } }
            } }
            tbody {
                @for record in records {
                    @let e = &record.event;
                    tr {
                        td.num { (record.seq) }
                        td { time datetime=(e.time) { (crate::layout::short_time(&e.time)) } }
                        td { (e.actor) }
                        td.action { (e.action) }
                        td { (e.target) }
                        td { @if e.outcome == "success" { span.badge.ok { "success" } } @else { span.badge.bad { (e.outcome) } } }
                        @if admin { td { (e.tenant) } }
                    }
                }
            }
        }
    }
}
