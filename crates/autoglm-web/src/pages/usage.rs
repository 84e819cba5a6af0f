//! Usage: what each key sent to each model through the gateway (requests,
//! prompt and completion tokens), totalled and over time, for the last hour,
//! day or week.

use std::collections::{BTreeMap, HashMap};

use crate::extract::Query;
use autoglm_core::rbac::Permission;
use autoglm_core::security::UsageRecord;
use axum::Extension;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, DurationRound, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use crate::api::{Api, problem_words, segment};
use crate::layout;
use crate::session::SignedIn;
use autoglm_store::USAGE_ROWS;

const HERE: &str = "/ui/usage";

/// The windows offered, each with the step its table is totalled by.
const WINDOWS: [(&str, &str, i64, i64); 3] = [
    ("1h", "Last hour", 60, 5),
    ("24h", "Last day", 24 * 60, 60),
    ("7d", "Last week", 7 * 24 * 60, 24 * 60),
];

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UsageQuery {
    window: String,
    key: String,
    model: String,
}

#[derive(Default, Clone, Copy)]
struct Sums {
    requests: u64,
    prompt: u64,
    completion: u64,
}

impl Sums {
    fn add(&mut self, r: &UsageRecord) {
        self.requests += r.requests;
        self.prompt += r.prompt_tokens;
        self.completion += r.completion_tokens;
    }
}

/// The records totalled per key and model, and per step and key · model.
type Totals = BTreeMap<(String, String), Sums>;
type OverTime = BTreeMap<DateTime<Utc>, Totals>;

fn totals(records: &[UsageRecord], step: Duration) -> (Totals, OverTime) {
    let mut totals = Totals::new();
    let mut over_time = OverTime::new();
    for r in records {
        let pair = (r.key.clone(), r.service.clone());
        totals.entry(pair.clone()).or_default().add(r);
        let at = r.minute.duration_trunc(step).unwrap_or(r.minute);
        over_time
            .entry(at)
            .or_default()
            .entry(pair)
            .or_default()
            .add(r);
    }
    (totals, over_time)
}

/// A key as people know it: its name, with its id.
fn key_label(names: &HashMap<String, String>, id: &str) -> Markup {
    match names.get(id) {
        Some(name) => html! { (name) " " code.muted { (id) } },
        None => html! { code { (id) } },
    }
}

fn tables(totals: &Totals, over_time: &OverTime, names: &HashMap<String, String>) -> Markup {
    html! {
        h2 { "Per key and model" }
        table id="usage-totals" {
            thead { tr {
                th scope="col" { "Key" } th scope="col" { "Model" } th.num scope="col" { "Requests" }
                th.num scope="col" { "Prompt tokens" } th.num scope="col" { "Completion tokens" }
            } }
            tbody {
                @for ((key, model), sums) in totals {
                    tr {
                        th scope="row" { (key_label(names, key)) }
                        td { (model) }
                        td.num { (sums.requests) } td.num { (sums.prompt) } td.num { (sums.completion) }
                    }
                }
            }
        }
        h2 { "Over time" }
        table id="usage-over-time" {
            thead { tr {
                th scope="col" { "From (UTC)" }
                @for (key, model) in totals.keys() { th.num scope="col" { (key_label(names, key)) " · " (model) br; span.muted { "requests / tokens" } } }
            } }
            tbody {
                @for (at, row) in over_time.iter().rev() {
                    tr {
                        th scope="row" { (at.format("%Y-%m-%d %H:%M")) }
                        @for pair in totals.keys() {
                            td.num { @match row.get(pair) {
                                Some(s) => { (s.requests) " / " (s.prompt + s.completion) },
                                None => "–",
                            } }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/usage?window=&key=&model=`.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    Query(query): Query<UsageQuery>,
) -> Response {
    if session.principal.require(Permission::ServicesRead).is_err() {
        let body = html! { p.empty { "Your role cannot read usage." } };
        return (
            StatusCode::FORBIDDEN,
            layout::page(&session, HERE, "Usage", body),
        )
            .into_response();
    }
    let (window, label, minutes, step) = WINDOWS
        .into_iter()
        .find(|(w, ..)| *w == query.window)
        .unwrap_or(WINDOWS[1]);
    let since = (Utc::now() - Duration::minutes(minutes))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut path = format!("/api/v1/usage?since={}&step={step}m", segment(&since));
    for (field, value) in [("key", &query.key), ("service", &query.model)] {
        if !value.trim().is_empty() {
            path.push_str(&format!("&{field}={}", segment(value.trim())));
        }
    }
    let (status, answer) = api.call(Method::GET, &path, &credential, None).await;
    // Every key of the tenant for those who manage users, else one's own.
    let all = session.principal.require(Permission::UsersWrite).is_ok();
    let keys_path = if all {
        "/api/v1/keys?all=true"
    } else {
        "/api/v1/keys"
    };
    let (_, keys) = api.call(Method::GET, keys_path, &credential, None).await;
    let names: HashMap<String, String> = keys
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| Some((k["id"].as_str()?.to_owned(), k["name"].as_str()?.to_owned())))
        .collect();
    let records: Option<Vec<UsageRecord>> = status
        .is_success()
        .then(|| serde_json::from_value(answer.clone()).ok())
        .flatten();
    let body = html! {
        form.search method="get" action=(HERE) role="search" {
            label for="window" class="muted" { "Window" }
            select id="window" name="window" {
                @for (w, l, ..) in WINDOWS { option value=(w) selected[w == window] { (l) } }
            }
            label for="key" class="muted" { "Key" }
            input id="key" name="key" value=(query.key);
            label for="model" class="muted" { "Model" }
            input id="model" name="model" value=(query.model);
            button type="submit" { "Show" }
        }
        @match &records {
            None => p.error role="alert" { "Usage could not be read: " (problem_words(&answer).join("; ")) },
            Some(records) if records.is_empty() => p.empty { "No traffic through the gateway in this window (" (label) ")." },
            Some(records) => {
                @if records.len() >= USAGE_ROWS {
                    p.error role="alert" id="usage-truncated" { "Only the oldest " (USAGE_ROWS) " rows of this window were read: filter by key or model to see all of it." }
                }
                @let (totals, over_time) = totals(records, Duration::minutes(step));
                (tables(&totals, &over_time, &names))
            },
        }
    };
    layout::page(&session, HERE, "Usage", body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(minute: &str, key: &str, service: &str, requests: u64) -> UsageRecord {
        UsageRecord {
            minute: minute.parse().unwrap_or_default(),
            key: key.into(),
            service: service.into(),
            version: "1".into(),
            requests,
            prompt_tokens: 10 * requests,
            completion_tokens: requests,
        }
    }

    #[test]
    fn records_are_totalled_per_key_model_and_step() {
        let records = [
            record("2026-11-29T10:01:00Z", "k1", "chat", 2),
            record("2026-11-29T10:04:00Z", "k1", "chat", 3),
            record("2026-11-29T10:07:00Z", "k1", "chat", 1),
            record("2026-11-29T10:02:00Z", "k2", "embed", 4),
        ];
        let (totals, over_time) = totals(&records, Duration::minutes(5));
        let k1 = totals[&("k1".to_owned(), "chat".to_owned())];
        assert_eq!((k1.requests, k1.prompt, k1.completion), (6, 60, 6));
        assert_eq!(over_time.len(), 2, "10:00 and 10:05");
        let first = &over_time
            .values()
            .next()
            .map(|t| t[&("k1".to_owned(), "chat".to_owned())].requests);
        assert_eq!(*first, Some(5));
    }
}
