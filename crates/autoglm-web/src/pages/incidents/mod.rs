//! The incidents page: the tenant's incidents, newest first, filtered by
//! state and service (refreshed live), each linking to its own page, and
//! the mean time to resolve per service and rule.

pub mod detail;

use crate::extract::Query;
use autoglm_core::alert::Incident;
use autoglm_core::alert::incident::Mttr;
use autoglm_core::registry::Page;
use axum::Extension;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::alerts::badge;
use crate::api::{Api, segment};
use crate::layout::{self, short_time};
use crate::session::SignedIn;

const HERE: &str = "/ui/incidents";

/// Seconds as people read a time to resolve: `42 s`, `3 min 5 s`, `2 h 10 min`, `1 d 4 h`.
pub fn human_seconds(seconds: f64) -> String {
    if seconds < 10.0 {
        return format!("{seconds:.1} s");
    }
    // Whole seconds are precise enough beyond ten.
    let s = seconds.round() as u64;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

fn took(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "–".to_owned(), human_seconds)
}

/// The filters of the page.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    state: String,
    #[serde(default)]
    service: String,
}

/// `state=…&service=…`, without what is empty: the page's query and the API's.
fn query(state: &str, service: &str) -> String {
    [("state", state), ("service", service)]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| format!("{key}={}", segment(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn incidents_table(incidents: &[Incident]) -> Markup {
    html! {
        table id="incidents" {
            thead { tr {
                th.num scope="col" { "#" } th scope="col" { "Rule" } th scope="col" { "Service" } th scope="col" { "Version" }
                th scope="col" { "Severity" } th scope="col" { "State" } th scope="col" { "Opened" } th scope="col" { "Resolved" }
                th.num scope="col" { "Time to resolve" }
            } }
            tbody {
                @for i in incidents {
                    tr id={"incident-" (i.id)} data-state=(i.state.as_str()) {
                        th.num scope="row" { a href={(HERE) "/" (i.id)} { (i.id) } }
                        td.rule { (i.rule) }
                        td { a href={"/ui/services/" (segment(&i.service))} { (i.service) } }
                        td { @if !i.version.is_empty() { "v" (i.version) } }
                        td { (badge(&i.severity)) }
                        td.state { (badge(i.state.as_str())) }
                        td { (short_time(&i.opened_at.to_rfc3339())) }
                        td { @if let Some(t) = i.resolved_at { (short_time(&t.to_rfc3339())) } @else { "–" } }
                        td.num { (took(i.seconds_to_resolve)) }
                    }
                }
            }
        }
    }
}

fn mttr_table(rows: &[Mttr]) -> Markup {
    html! {
        table id="mttr" {
            thead { tr {
                th scope="col" { "Service" } th scope="col" { "Rule" } th.num scope="col" { "Incidents" }
                th.num scope="col" { "Resolved" } th.num scope="col" { "Mean time to resolve" } th.num scope="col" { "Longest" }
            } }
            tbody {
                @for r in rows {
                    tr data-service=(r.service) data-rule=(r.rule) {
                        td { (r.service) } th scope="row" { (r.rule) } td.num { (r.incidents) }
                        td.num.resolved { (r.resolved) } td.num { (took(r.mean_seconds)) } td.num { (took(r.max_seconds)) }
                    }
                }
            }
        }
    }
}

/// `GET /ui/incidents`, with `state` and `service` as the API takes them.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    Query(filters): Query<Filters>,
) -> Response {
    let (state, service) = (filters.state.as_str(), filters.service.as_str());
    let path = format!("/api/v1/incidents?limit=200&{}", query(state, service));
    let incidents: Page<Incident> = match api.get_as(&path, &credential).await {
        Ok(page) => page,
        Err(unread) => return unread.page(&session, HERE, "Incidents"),
    };
    let mttr = api
        .get_as("/api/v1/incidents/mttr", &credential)
        .await
        .map_or_else(|_| Vec::new(), |p: Page<Mttr>| p.items);
    let body = html! {
        p.muted { "An incident opens when an alert fires and resolves when it stops, or by hand. " a href="/ui/alerts" { "Alert rules" } }
        nav.filters aria-label="State" {
            @for (wanted, words) in [("", "all"), ("open", "open"), ("acknowledged", "acknowledged"), ("resolved", "resolved")] {
                @if state == wanted {
                    a href={(HERE) "?" (query(wanted, service))} aria-current="page" { strong { (words) } }
                } @else {
                    a href={(HERE) "?" (query(wanted, service))} { (words) }
                }
                " "
            }
            @if !service.is_empty() {
                span.label { "service = " (service) } " " a href={(HERE) "?" (query(state, ""))} { "every service" }
            }
        }
        section id="live-incidents" data-live {
            @if incidents.items.is_empty() { p.empty { "No incident matches." } } @else { (incidents_table(&incidents.items)) }
        }
        h2 { "Mean time to resolve" }
        section id="live-mttr" data-live {
            @if mttr.is_empty() { p.empty { "No incidents yet." } } @else { (mttr_table(&mttr)) }
        }
    };
    (
        StatusCode::OK,
        layout::page(&session, HERE, "Incidents", body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::human_seconds;

    #[test]
    fn times_to_resolve_read_in_their_largest_units() {
        assert_eq!(human_seconds(2.345), "2.3 s");
        assert_eq!(human_seconds(42.4), "42 s");
        assert_eq!(human_seconds(185.0), "3 min 5 s");
        assert_eq!(human_seconds(7_800.0), "2 h 10 min");
        assert_eq!(human_seconds(100_800.0), "1 d 4 h");
    }
}
