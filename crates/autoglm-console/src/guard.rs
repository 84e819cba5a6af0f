//! The per-route guard: authenticate → authorise → replay checks
//! (command nonce, idempotency key) → handler → audit a failed mutation.
//!
//! A successful mutation writes its own audit record in its transaction
//! ([`crate::context::Ctx::write`]); a refused one changed nothing, so the
//! guard records the refusal on its own.

use std::sync::Arc;
use std::time::Instant;

use autoglm_auth::{Principal, authenticate};
use autoglm_core::audit::AuditEvent;
use autoglm_core::error::ErrorCode;
use autoglm_core::replay::{self, NONCE_HEADER, ReplayError, TIMESTAMP_HEADER};
use autoglm_store::{IdempotencyKey, timestamp};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::conditional;
use crate::context::{Ctx, json_response};
use crate::error::{ApiError, ErrorOutcome};
use crate::routes::{Access, RouteSpec};
use crate::{AppState, request_id};

/// Header naming an idempotent POST.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Header set on a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Runs the guard for `spec` around the handler.
pub async fn guard(
    State(state): State<AppState>,
    spec: Arc<RouteSpec>,
    req: Request,
    next: Next,
) -> Response {
    let request_id = request_id(req.headers());
    let target = req.uri().path().to_owned();
    let mut actor = ("anonymous".to_owned(), String::new());
    // Released when this future ends or is dropped (client gone, panic), so a
    // retry is never locked out by an abandoned first attempt.
    let mut held_key: Option<HeldKey> = None;
    let response = match admit(&state, &spec, req, &request_id, &mut actor, &mut held_key).await {
        Ok(Admitted::Run(req)) if spec.is_json_read() => {
            let cache_key = spec
                .cached
                .then(|| req.extensions().get::<Ctx>())
                .flatten()
                .map(|ctx| (ctx.tenant().to_owned(), req.uri().to_string()));
            conditional::answer(&state, cache_key, req, next).await
        }
        Ok(Admitted::Run(req)) => next.run(req).await,
        Ok(Admitted::Replay(response)) => response,
        Err(error) => error.into_response(),
    };
    drop(held_key);
    if spec.is_mutating() && !response.status().is_success() {
        let outcome = response.extensions().get::<ErrorOutcome>().map_or_else(
            || response.status().as_u16().to_string(),
            |o| o.0.as_str().to_owned(),
        );
        let event = AuditEvent {
            time: timestamp(chrono::Utc::now()),
            actor: actor.0,
            tenant: actor.1,
            action: spec.action.to_owned(),
            target,
            request_id,
            outcome,
        };
        // A policy's refusal is a decision too: recorded as the allowed ones are.
        let decision = response
            .extensions()
            .get::<crate::error::PolicyRefusal>()
            .map(|refusal| AuditEvent {
                action: "policies.decide".to_owned(),
                outcome: format!("refused: {}", refusal.0),
                ..event.clone()
            });
        let store = state.store.clone();
        let written = tokio::task::spawn_blocking(move || {
            store.audit_only(&event)?;
            match decision {
                Some(decision) => store.audit_only(&decision),
                None => Ok(()),
            }
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::error!("could not audit a refused request");
        }
    }
    response
}

/// An idempotency key marked as in flight until dropped.
struct HeldKey {
    set: Arc<parking_lot::Mutex<std::collections::HashSet<(String, String)>>>,
    key: (String, String),
}

impl Drop for HeldKey {
    fn drop(&mut self) {
        self.set.lock().remove(&self.key);
    }
}

enum Admitted {
    Run(Request),
    Replay(Response),
}

async fn admit(
    state: &AppState,
    spec: &Arc<RouteSpec>,
    req: Request,
    request_id: &str,
    actor: &mut (String, String),
    held_key: &mut Option<HeldKey>,
) -> Result<Admitted, ApiError> {
    if spec.access == Access::Public {
        return Ok(Admitted::Run(req));
    }
    let principal = authenticate_request(state, req.headers()).await?;
    *actor = (principal.actor.clone(), principal.grant.tenant.clone());
    match spec.access {
        Access::Permission(p) => principal.require(p)?,
        Access::SystemAdmin if !principal.grant.is_system_admin() => {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "only admins of the system tenant may do this",
            ));
        }
        _ => {}
    }
    refuse_declared_oversize(spec, req.headers())?;
    if spec.command {
        // Spent before the handler runs, in its own transaction: a refused
        // command must not leave its nonce usable for a later replay.
        let nonce = check_command(req.headers())?;
        let store = state.store.clone();
        let expires_at = chrono::Utc::now().timestamp() + 2 * replay::WINDOW_SECONDS;
        tokio::task::spawn_blocking(move || store.consume_nonce(&nonce, expires_at)).await??;
    }
    let (req, idempotency) = idempotency_key(&principal, spec, req).await?;
    if let Some(key) = &idempotency {
        let store = state.store.clone();
        let lookup = key.clone();
        if let Some(stored) =
            tokio::task::spawn_blocking(move || store.idempotent_response(&lookup)).await??
        {
            let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
            let mut response = json_response(status, stored.body);
            response
                .headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            return Ok(Admitted::Replay(response));
        }
        let in_flight = (key.principal.clone(), key.key.clone());
        if !state.in_flight_keys.lock().insert(in_flight.clone()) {
            return Err(ApiError::new(
                ErrorCode::IdempotencyInProgress,
                "a request with this Idempotency-Key is still being processed; retry later",
            ));
        }
        *held_key = Some(HeldKey {
            set: state.in_flight_keys.clone(),
            key: in_flight,
        });
    }
    let mut req = req;
    req.extensions_mut().insert(Ctx {
        principal,
        spec: spec.clone(),
        request_id: request_id.to_owned(),
        idempotency,
    });
    Ok(Admitted::Run(req))
}

/// Refuses a body whose declared length is over the route's limit before
/// anything reads it: hyper only asks for the body (`100 Continue`) when a
/// reader polls it, so a client that sent `Expect: 100-continue` (curl does
/// for bodies over 1 MiB) gets its 413 without uploading the body, and never
/// a reset connection half way through.
fn refuse_declared_oversize(spec: &RouteSpec, headers: &HeaderMap) -> Result<(), ApiError> {
    if matches!(spec.request, crate::routes::RequestBody::UploadOrJson(_)) {
        return Ok(());
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > spec.body_limit as u64 => Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "this endpoint takes bodies of at most {} bytes; this one declares {length}",
                spec.body_limit
            ),
        )),
        _ => Ok(()),
    }
}

async fn authenticate_request(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthenticated,
            "send Authorization: Bearer <API key or session token>",
        )
    })?;
    let token = value
        .to_str()
        .ok()
        .and_then(autoglm_auth::bearer_token)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidCredentials,
                "the Authorization header must be 'Bearer <token>'",
            )
        })?
        .to_owned();
    // Read before resolving: see CredentialCache::put.
    let access = state.store.access_version();
    if let Some(answer) = state
        .credentials
        .get(&token, access, Instant::now(), chrono::Utc::now())
    {
        return answer.map_err(ApiError::from);
    }
    let store = state.store.clone();
    let sessions = state.sessions.clone();
    let presented = token.clone();
    let answer = tokio::task::spawn_blocking(move || {
        authenticate(&store, &sessions, &presented, chrono::Utc::now())
    })
    .await?;
    // A refusal is kept as well as a principal (a flood of bad tokens costs
    // no SQL), but not a failure of the store: the next request asks again.
    match &answer {
        Ok(principal) => {
            let expires = principal.expires_at;
            state
                .credentials
                .put(&token, access, Instant::now(), expires, answer.clone());
        }
        Err(e) if e.code.status() < 500 => {
            state
                .credentials
                .put(&token, access, Instant::now(), None, answer.clone());
        }
        Err(_) => {}
    }
    answer.map_err(ApiError::from)
}

fn check_command(headers: &HeaderMap) -> Result<String, ApiError> {
    let read = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    replay::check_command(
        chrono::Utc::now(),
        read(TIMESTAMP_HEADER),
        read(NONCE_HEADER),
    )
    .map_err(|e| match e {
        ReplayError::Malformed(m) => ApiError::new(ErrorCode::InvalidHeader, m),
        ReplayError::Stale(m) => ApiError::new(ErrorCode::StaleCommand, m),
    })
}

/// Reads the `Idempotency-Key` of a POST and fingerprints the request. A JSON
/// body is part of the fingerprint; an upload's is not (it may be gigabytes),
/// so its length stands in for it.
async fn idempotency_key(
    principal: &Principal,
    spec: &RouteSpec,
    req: Request,
) -> Result<(Request, Option<IdempotencyKey>), ApiError> {
    if spec.method != Method::POST {
        return Ok((req, None));
    }
    let Some(value) = req.headers().get(IDEMPOTENCY_HEADER) else {
        return Ok((req, None));
    };
    if !spec.replayable {
        return Err(ApiError::new(
            ErrorCode::InvalidHeader,
            format!(
                "{} does not take an Idempotency-Key: its answer holds a secret that is never stored",
                spec.action
            ),
        ));
    }
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidHeader,
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
        })?
        .to_owned();
    let mut hasher = Sha256::new();
    hasher.update(req.method().as_str());
    hasher.update([0]);
    hasher.update(req.uri().path());
    hasher.update([0]);
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let req = if is_json {
        let (parts, body) = req.into_parts();
        let limit = spec.body_limit;
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("this endpoint takes JSON bodies of at most {limit} bytes"),
            )
        })?;
        hasher.update(&bytes);
        Request::from_parts(parts, Body::from(bytes))
    } else {
        if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
            hasher.update(len.as_bytes());
        }
        req
    };
    let fingerprint = hex::encode(hasher.finalize());
    Ok((
        req,
        Some(IdempotencyKey {
            principal: principal.actor.clone(),
            key,
            fingerprint,
        }),
    ))
}
