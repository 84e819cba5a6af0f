//! `alerts.*` and `incidents.*`: alert rules (checked whole, every wrong
//! field with its path, before anything is stored), the series pending and
//! firing now, silences, the notifications with their dead letters, an
//! Alertmanager-compatible receiver, and incidents with their timelines,
//! acknowledgement, resolution and mean time to resolve.

use std::collections::BTreeMap;

use autoglm_alerts::act::{self, AlertEvent};
use autoglm_core::alert::{
    ActiveAlert, AlertRule, AlertmanagerPayload, Incident, IncidentState, Notification, Silence,
    SilenceSpec, incident::Mttr, mttr,
};
use autoglm_core::error::ErrorCode;
use autoglm_core::registry::Page;
use autoglm_store::alerts::{self as stored, IncidentFilter, StoredRule};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::read;
use crate::AppState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// A rule with where its series stand.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleView {
    /// The rule as written.
    #[serde(flatten)]
    pub rule: AlertRule,
    /// `firing` when any series fires, else `pending` when any is pending, else `inactive`.
    pub state: String,
    /// Its pending and firing series.
    pub alerts: Vec<ActiveAlert>,
    /// Who wrote it last.
    pub created_by: String,
    /// When it was made.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it last changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

fn view(state: &AppState, tenant: &str, stored: StoredRule) -> RuleView {
    let alerts: Vec<ActiveAlert> = state
        .alerts
        .active(tenant)
        .into_iter()
        .filter(|a| a.rule == stored.rule.name)
        .collect();
    let state = if alerts.iter().any(|a| a.state == "firing") {
        "firing"
    } else if alerts.is_empty() {
        "inactive"
    } else {
        "pending"
    };
    RuleView {
        rule: stored.rule,
        state: state.to_owned(),
        alerts,
        created_by: stored.created_by,
        created_at: stored.created_at,
        updated_at: stored.updated_at,
    }
}

/// `GET /api/v1/alerts/rules`.
pub async fn list_rules(
    State(state): State<AppState>,
    ctx: Ctx,
) -> ApiResult<Json<Page<RuleView>>> {
    let tenant = ctx.tenant().to_owned();
    let rules = {
        let tenant = tenant.clone();
        read(&state, move |s| s.alert_rules(Some(&tenant))).await?
    };
    Ok(Json(Page::whole(
        rules
            .into_iter()
            .map(|r| view(&state, &tenant, r))
            .collect(),
    )))
}

/// `GET /api/v1/alerts/rules/{name}`.
pub async fn get_rule(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<RuleView>> {
    let tenant = ctx.tenant().to_owned();
    let rule = {
        let tenant = tenant.clone();
        read(&state, move |s| s.alert_rule(&tenant, &name)).await?
    };
    Ok(Json(view(&state, &tenant, rule)))
}

async fn put(
    state: &AppState,
    ctx: &Ctx,
    rule: AlertRule,
    create_only: bool,
) -> ApiResult<Response> {
    rule.ready().map_err(ApiError::fields)?;
    let tenant = ctx.tenant().to_owned();
    let actor = ctx.principal.actor.clone();
    let name = rule.name.clone();
    let (created, status, _) = ctx
        .apply_with(
            state,
            |v: &(bool, StoredRule)| {
                if v.0 {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                }
            },
            format!("alerts/rules/{name}"),
            move |tx, _| {
                if create_only && stored::rule_exists(tx, &tenant, &rule.name)? {
                    return Err(autoglm_store::StoreError::rejected(
                        ErrorCode::AlreadyExists,
                        format!("alert rule {:?} already exists; PUT replaces it", rule.name),
                    ));
                }
                let (stored, created) = stored::put_rule(tx, &tenant, &rule, &actor)?;
                Ok((created, stored))
            },
        )
        .await?;
    let tenant = ctx.tenant().to_owned();
    Ok(crate::context::json_response(
        status,
        serde_json::to_vec(&view(state, &tenant, created.1)).unwrap_or_default(),
    ))
}

/// `POST /api/v1/alerts/rules`.
pub async fn create_rule(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(rule): ApiJson<AlertRule>,
) -> ApiResult<Response> {
    put(&state, &ctx, rule, true).await
}

/// `PUT /api/v1/alerts/rules/{name}`.
pub async fn replace_rule(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(rule): ApiJson<AlertRule>,
) -> ApiResult<Response> {
    if rule.name != name {
        return Err(ApiError::fields(vec![
            autoglm_core::error::FieldError::new(
                "name",
                format!("the body names rule {:?}, the path {name:?}", rule.name),
            ),
        ]));
    }
    put(&state, &ctx, rule, false).await
}

/// `DELETE /api/v1/alerts/rules/{name}`.
pub async fn delete_rule(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    ctx.apply(
        &state,
        StatusCode::NO_CONTENT,
        format!("alerts/rules/{name}"),
        move |tx, _| stored::delete_rule(tx, &tenant, &name),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/alerts`: the pending and firing series.
pub async fn active(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Json<Page<ActiveAlert>>> {
    Ok(Json(Page::whole(state.alerts.active(ctx.tenant()))))
}

/// A silence with its state.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SilenceView {
    /// The silence.
    #[serde(flatten)]
    pub silence: Silence,
    /// `active`, `pending` or `expired`.
    pub state: String,
}

fn silence_view(silence: Silence) -> SilenceView {
    let state = silence.state(chrono::Utc::now()).to_owned();
    SilenceView { silence, state }
}

/// `GET /api/v1/alerts/silences`: newest first, the expired ones too.
pub async fn list_silences(
    State(state): State<AppState>,
    ctx: Ctx,
) -> ApiResult<Json<Page<SilenceView>>> {
    let tenant = ctx.tenant().to_owned();
    let items = read(&state, move |s| {
        s.silences(Some(&tenant), chrono::Utc::now(), true)
    })
    .await?;
    Ok(Json(Page::whole(
        items.into_iter().map(|(_, s)| silence_view(s)).collect(),
    )))
}

/// `POST /api/v1/alerts/silences`.
pub async fn create_silence(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(spec): ApiJson<SilenceSpec>,
) -> ApiResult<Response> {
    spec.check(chrono::Utc::now()).map_err(ApiError::fields)?;
    let tenant = ctx.tenant().to_owned();
    let actor = ctx.principal.actor.clone();
    ctx.write(
        &state,
        StatusCode::CREATED,
        "alerts/silences".to_owned(),
        move |tx, _| stored::insert_silence(tx, &tenant, &spec, &actor).map(silence_view),
    )
    .await
}

/// `DELETE /api/v1/alerts/silences/{id}`: expires it now.
pub async fn expire_silence(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    ctx.write(
        &state,
        StatusCode::OK,
        format!("alerts/silences/{id}"),
        move |tx, _| stored::expire_silence(tx, &tenant, id).map(silence_view),
    )
    .await
}

/// Query of `GET /api/v1/alerts/notifications`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListNotifications {
    state: Option<String>,
}

/// `GET /api/v1/alerts/notifications`.
pub async fn notifications(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<ListNotifications>,
) -> ApiResult<Json<Page<Notification>>> {
    if let Some(s) = &q.state
        && !["pending", "delivered", "dead"].contains(&s.as_str())
    {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("state {s:?} is not pending, delivered or dead"),
        ));
    }
    let tenant = ctx.tenant().to_owned();
    let items = read(&state, move |s| {
        s.notifications(&tenant, q.state.as_deref())
    })
    .await?;
    Ok(Json(Page::whole(items)))
}

/// What the receiver did with an Alertmanager's payload.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Received {
    /// The incidents opened, kept or resolved, one per alert taken.
    pub incidents: Vec<i64>,
    /// Alerts left out, each with why.
    pub ignored: Vec<String>,
}

/// `POST /api/v1/alerts/receiver`: takes Alertmanager's webhook payload.
/// A firing alert with a `service` label of this tenant opens (or keeps) an
/// incident and runs the playbook of the rule named by its `alertname`, if
/// there is one here; a resolved one resolves it.
pub async fn receive(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(payload): ApiJson<AlertmanagerPayload>,
) -> ApiResult<Json<Received>> {
    let tenant = ctx.tenant().to_owned();
    let external = String::new();
    let received = read(&state, move |store| {
        let mut out = Received {
            incidents: Vec::new(),
            ignored: Vec::new(),
        };
        for (i, alert) in payload.alerts.iter().enumerate() {
            let service = alert.labels.get("service").cloned().unwrap_or_default();
            let name = alert.labels.get("alertname").cloned().unwrap_or_default();
            if service.is_empty() || name.is_empty() {
                out.ignored
                    .push(format!("alerts[{i}]: no service or alertname label"));
                continue;
            }
            if store.service(&tenant, &service).is_err() {
                out.ignored.push(format!(
                    "alerts[{i}]: no service {service:?} in this tenant"
                ));
                continue;
            }
            let playbook = store
                .alert_rule(&tenant, &name)
                .ok()
                .and_then(|r| r.rule.ready().ok())
                .and_then(|r| r.playbook);
            let mut labels: BTreeMap<String, String> = alert.labels.clone();
            labels.insert("tenant".to_owned(), tenant.clone());
            let event = AlertEvent {
                tenant: tenant.clone(),
                labels,
                annotations: alert.annotations.clone(),
                fired_at: alert.starts_at,
                source: "alertmanager",
                message: format!(
                    "from Alertmanager ({}): {}",
                    payload.receiver,
                    alert
                        .annotations
                        .get("summary")
                        .cloned()
                        .unwrap_or_else(|| name.clone())
                ),
                silenced_by: None,
                receivers: Vec::new(),
                playbook,
            };
            match alert.status.as_str() {
                "firing" => out
                    .incidents
                    .push(act::fire(store, &event, &external)?.incident),
                "resolved" => {
                    let at = if alert.ends_at > alert.starts_at {
                        alert.ends_at
                    } else {
                        chrono::Utc::now()
                    };
                    if let Some(id) = act::resolve(store, &event, at, &external)? {
                        out.incidents.push(id);
                    } else {
                        out.ignored.push(format!(
                            "alerts[{i}]: resolved, and no incident of it is open"
                        ));
                    }
                }
                other => out.ignored.push(format!(
                    "alerts[{i}]: status {other:?} is not firing or resolved"
                )),
            }
        }
        Ok(out)
    })
    .await?;
    state.tasks.wake();
    state.alerts.notification_queued();
    Ok(Json(received))
}

/// Query of `GET /api/v1/incidents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListIncidents {
    state: Option<String>,
    service: Option<String>,
    rule: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/incidents`: newest first, without timelines.
pub async fn list_incidents(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<ListIncidents>,
) -> ApiResult<Json<Page<Incident>>> {
    let wanted = match q.state.as_deref() {
        None => None,
        Some(s) => Some(IncidentState::parse(s).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                format!("state {s:?} is not open, acknowledged or resolved"),
            )
        })?),
    };
    let filter = IncidentFilter {
        tenant: ctx.tenant().to_owned(),
        state: wanted,
        service: q.service,
        rule: q.rule,
        limit: super::page_limit(q.limit)?,
    };
    let items = read(&state, move |s| s.incidents(&filter)).await?;
    Ok(Json(Page::whole(items)))
}

/// `GET /api/v1/incidents/{id}`: with its timeline.
pub async fn get_incident(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Incident>> {
    let tenant = ctx.tenant().to_owned();
    Ok(Json(
        read(&state, move |s| s.incident(Some(&tenant), id)).await?,
    ))
}

/// `POST /api/v1/incidents/{id}/acknowledge`.
pub async fn acknowledge(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    let actor = ctx.principal.actor.clone();
    ctx.write(
        &state,
        StatusCode::OK,
        format!("incidents/{id}"),
        move |tx, _| stored::acknowledge_incident(tx, &tenant, id, &actor),
    )
    .await
}

/// `POST /api/v1/incidents/{id}/resolve`: by hand; the alert, if it still
/// fires, opens a new one only after it resolves and fires again.
pub async fn resolve(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    let actor = ctx.principal.actor.clone();
    ctx.write(
        &state,
        StatusCode::OK,
        format!("incidents/{id}"),
        move |tx, _| {
            stored::resolve_incident(
                tx,
                &tenant,
                id,
                chrono::Utc::now(),
                &actor,
                &format!("resolved by {actor}"),
            )
        },
    )
    .await
}

/// `GET /api/v1/incidents/mttr`: per service and rule, over the last 1000 incidents.
pub async fn mean_time_to_resolve(
    State(state): State<AppState>,
    ctx: Ctx,
) -> ApiResult<Json<Page<Mttr>>> {
    let filter = IncidentFilter {
        tenant: ctx.tenant().to_owned(),
        limit: 1000,
        ..IncidentFilter::default()
    };
    let incidents = read(&state, move |s| s.incidents(&filter)).await?;
    Ok(Json(Page::whole(mttr(&incidents))))
}
