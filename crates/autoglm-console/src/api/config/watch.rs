//! Watching keys: a long-poll in the Nacos way (the caller sends the md5s it
//! holds and hears back as soon as one differs, or with nothing after its
//! timeout) and a server-sent event stream per environment that resumes
//! after the last revision it delivered (`Last-Event-ID`).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use autoglm_config::Topic;
use autoglm_core::config::{ConfigChange, Watch, WatchAnswer, check_key_name, check_md5};
use autoglm_core::error::{ErrorCode, FieldError};
use autoglm_store::config as stored;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;

use crate::AppState;
use crate::api::read;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// The longest a long-poll waits, as in Nacos.
pub const MAX_WATCH: Duration = Duration::from_secs(30);

/// The most keys one watch may cover.
pub const MAX_WATCHED_KEYS: usize = 10_000;

/// `POST /api/v1/config/watch`.
pub async fn watch(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<Watch>,
) -> ApiResult<Json<WatchAnswer>> {
    let timeout = body.timeout_ms.map_or(MAX_WATCH, Duration::from_millis);
    let mut errors = Vec::new();
    if timeout > MAX_WATCH {
        errors.push(FieldError::new(
            "timeoutMs",
            format!("at most {} ms", MAX_WATCH.as_millis()),
        ));
    }
    if body.keys.is_empty() || body.keys.len() > MAX_WATCHED_KEYS {
        errors.push(FieldError::new(
            "keys",
            format!(
                "watch 1 to {MAX_WATCHED_KEYS} keys, not {}",
                body.keys.len()
            ),
        ));
    }
    for (i, k) in body.keys.iter().enumerate() {
        for (field, check) in [
            ("group", check_key_name("group", &k.group)),
            ("key", check_key_name("key", &k.key)),
            ("md5", check_md5(&k.md5)),
        ] {
            if let Err(e) = check {
                errors.push(FieldError::new(format!("keys[{i}].{field}"), e));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let tenant = ctx.tenant().to_owned();
    let environments: BTreeSet<String> = body.keys.iter().map(|k| k.environment.clone()).collect();
    {
        let tenant = tenant.clone();
        read(&state, move |s| {
            s.read(|c| {
                for env in &environments {
                    stored::existing_environment(c, &tenant, env)?;
                }
                Ok(())
            })
        })
        .await?;
    }
    let changed = state.config.wait(&tenant, &body.keys, timeout).await;
    Ok(Json(WatchAnswer { changed }))
}

/// `?group=&key=&since=` of an event stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only this group.
    pub group: Option<String>,
    /// Only this key.
    pub key: Option<String>,
    /// Start after this revision (default: now; `Last-Event-ID` wins).
    pub since: Option<u64>,
}

/// How many missed changes one read of the store hands a stream.
const CATCH_UP_PAGE: u64 = 1000;

/// `GET /api/v1/config/environments/{env}/events`: every change of the
/// environment's keys as it commits, `id` its revision, `event: change`.
pub async fn events(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(env): ApiPath<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidHeader,
                        "Last-Event-ID must be a revision number",
                    )
                })?,
        ),
    };
    for (kind, name) in [("group", &query.group), ("key", &query.key)] {
        if let Some(name) = name {
            check_key_name(kind, name).map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e))?;
        }
    }
    let tenant = ctx.tenant().to_owned();
    {
        let (tenant, env) = (tenant.clone(), env.clone());
        read(&state, move |s| {
            s.read(|c| stored::existing_environment(c, &tenant, &env))
        })
        .await?;
    }
    let hub = state.config.clone();
    let start = last_event_id
        .or(query.since)
        .unwrap_or_else(|| hub.revision());
    // Woken by its one key when it asks for one, else by its environment.
    let listener = hub.listener();
    listener.listen(match (&query.group, &query.key) {
        (Some(group), Some(key)) => Topic::key(&tenant, &env, group, key),
        _ => Topic::environment(&tenant, &env),
    });
    let wanted = move |c: &ConfigChange| {
        query.group.as_ref().is_none_or(|g| *g == c.group)
            && query.key.as_ref().is_none_or(|k| *k == c.key)
    };
    let store = state.store.clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let mut last = start;
        loop {
            let batch = match hub.after(&tenant, Some(&env), last) {
                Some(batch) => batch,
                // Further behind than the hub's log: the store has every version.
                None => {
                    let (store, tenant, env) = (store.clone(), tenant.clone(), env.clone());
                    let read = tokio::task::spawn_blocking(move || {
                        store.read(|c| {
                            stored::versions_after(c, &tenant, Some(&env), last, CATCH_UP_PAGE)
                        })
                    })
                    .await;
                    match read {
                        Ok(Ok(versions)) => versions.iter().map(|v| v.change()).collect(),
                        _ => return,
                    }
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    () = listener.changed() => {}
                    () = tx.closed() => return,
                }
                continue;
            }
            for change in batch {
                last = last.max(change.revision);
                if !wanted(&change) {
                    continue;
                }
                let event = Event::default()
                    .id(change.revision.to_string())
                    .event("change")
                    .json_data(&change)
                    .unwrap_or_default();
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|e| e.map(Ok)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
