//! Nacos' HTTP config API on the Nacos port: v1 (`/nacos/v1/cs/configs`,
//! the listener long-poll, login) as the 2.x clients speak it, and v2
//! (`/nacos/v2/cs/config`) with its `{code, message, data}` envelope.
//! Parameters come from the query string or a form body, as Spring takes them.

use std::collections::HashMap;
use std::time::Duration;

use autoglm_console::AppState;
use autoglm_core::config::{ConfigVersion, WatchedKey};
use autoglm_core::security::LoginRequest;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::listen;
use crate::ops::{self, Change, Failure, NacosKey};

/// Every HTTP route of the Nacos port.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/nacos/v1/cs/configs",
            get(v1_get)
                .post(|s, q, h, b| v1_write(s, q, h, b, false))
                .delete(|s, q, h, b| v1_write(s, q, h, b, true)),
        )
        .route("/nacos/v1/cs/configs/listener", post(v1_listener))
        .route("/nacos/v1/auth/login", post(login))
        .route("/nacos/v1/auth/users/login", post(login))
        .route(
            "/nacos/v2/cs/config",
            get(v2_get)
                .post(|s, q, h, b| v2_write(s, q, h, b, false))
                .delete(|s, q, h, b| v2_write(s, q, h, b, true)),
        )
        .with_state(state)
}

/// Query and form parameters together (the form wins, as it comes last).
struct Params(HashMap<String, String>);

impl Params {
    fn new(query: Option<String>, body: &[u8]) -> Params {
        let mut map = HashMap::new();
        for source in [query.unwrap_or_default().as_bytes(), body] {
            for (k, v) in form_urlencoded::parse(source) {
                map.insert(k.into_owned(), v.into_owned());
            }
        }
        Params(map)
    }

    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    /// The caller's token: `accessToken` as a parameter or header, or a bearer.
    fn token(&self, headers: &HeaderMap) -> Option<String> {
        self.get("accessToken")
            .or_else(|| header_str(headers, "accesstoken"))
            .or_else(|| {
                header_str(headers, "authorization")
                    .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
            })
    }

    fn key(&self, namespace_param: &str) -> Result<NacosKey, Failure> {
        NacosKey::new(
            self.get(namespace_param),
            self.get("group"),
            self.get("dataId"),
        )
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn request_id(headers: &HeaderMap) -> String {
    header_str(headers, "x-request-id").unwrap_or_default()
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
        body,
    )
        .into_response()
}

/// A failure as v1 answers it: `caused: ...;` for bad parameters, the bare
/// message for refusals, `config data not exist` for a missing key.
fn v1_failure(f: Failure) -> Response {
    match f {
        Failure::Denied(m) => text(StatusCode::FORBIDDEN, m),
        Failure::Invalid(m) => text(StatusCode::BAD_REQUEST, format!("caused: {m};")),
        Failure::NotFound => text(StatusCode::NOT_FOUND, "config data not exist\n".to_owned()),
        Failure::Conflict(m) => text(StatusCode::CONFLICT, format!("caused: {m};")),
        Failure::Internal(m) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("caused: {m};")),
    }
}

/// The headers Nacos sends with a config: type, md5, time, no caching.
fn config_headers(v: &ConfigVersion, json_body: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let content_type = if json_body || v.format == autoglm_core::config::ConfigFormat::Json {
        "application/json;charset=UTF-8"
    } else {
        "text/plain;charset=UTF-8"
    };
    let pairs = [
        (header::CONTENT_TYPE.as_str(), content_type.to_owned()),
        ("config-type", v.format.as_str().to_owned()),
        ("content-md5", v.md5.clone()),
        (
            "last-modified",
            v.created_at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        ),
        ("pragma", "no-cache".to_owned()),
        ("expires", "Thu, 01 Jan 1970 00:00:00 GMT".to_owned()),
        ("cache-control", "no-cache,no-store".to_owned()),
    ];
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(name),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
    headers
}

async fn read(
    state: &AppState,
    params: &Params,
    headers: &HeaderMap,
    namespace: &str,
) -> Result<ConfigVersion, Failure> {
    let who = ops::authenticate(state, params.token(headers)).await?;
    let key = params.key(namespace)?;
    ops::query(state, &who, &key)
        .await?
        .ok_or(Failure::NotFound)
}

async fn change(
    state: &AppState,
    params: &Params,
    headers: &HeaderMap,
    namespace: &str,
    remove: bool,
) -> Result<(), Failure> {
    let who = ops::authenticate(state, params.token(headers)).await?;
    let key = params.key(namespace)?;
    let change = if remove {
        Change::Remove
    } else {
        let content = params.get("content").ok_or_else(|| {
            Failure::Invalid("Required request parameter 'content' is not present".to_owned())
        })?;
        let cas_md5 = header_str(headers, "casmd5").or_else(|| params.get("casMd5"));
        Change::Publish {
            content,
            kind: params.get("type"),
            cas_md5,
        }
    };
    ops::write(state, &who, &key, change, &request_id(headers)).await
}

async fn v1_get(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::new(q, &body);
    match read(&state, &params, &headers, "tenant").await {
        Ok(v) => (config_headers(&v, false), v.content).into_response(),
        Err(f) => v1_failure(f),
    }
}

/// `POST` (publish) and `DELETE` (remove) of `/nacos/v1/cs/configs`: `true`.
async fn v1_write(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
    remove: bool,
) -> Response {
    let params = Params::new(q, &body);
    match change(&state, &params, &headers, "tenant", remove).await {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], "true").into_response(),
        Err(f) => v1_failure(f),
    }
}

/// The longest a listener is held, as Nacos holds a 30 s poll.
const MAX_HOLD: Duration = Duration::from_millis(29_500);

/// `POST /nacos/v1/cs/configs/listener`: answers at once with the keys whose
/// md5 differs, else holds the poll until one changes or the client's
/// timeout (less half a second, at least 10 s) passes; then an empty 200.
async fn v1_listener(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::new(q, &body);
    match listener(&state, &params, &headers).await {
        Ok(answer) => (
            [
                (header::PRAGMA, "no-cache"),
                (header::CACHE_CONTROL, "no-cache,no-store"),
            ],
            answer,
        )
            .into_response(),
        Err(f) => v1_failure(f),
    }
}

async fn listener(
    state: &AppState,
    params: &Params,
    headers: &HeaderMap,
) -> Result<String, Failure> {
    let who = ops::authenticate(state, params.token(headers)).await?;
    who.require(autoglm_core::rbac::Permission::ConfigRead)
        .map_err(|e| Failure::Denied(e.to_string()))?;
    let probe = params.get("Listening-Configs").unwrap_or_default();
    let listened = listen::parse(&probe)
        .map_err(|e| Failure::Invalid(format!("invalid probeModify ({e})")))?;
    let hold = match header_str(headers, "long-pulling-timeout") {
        None => Duration::ZERO,
        Some(ms) => {
            let ms: u64 = ms.trim().parse().map_err(|_| {
                Failure::Invalid(format!(
                    "invalid probeModify (Long-Pulling-Timeout {ms:?} is not a number)"
                ))
            })?;
            Duration::from_millis(ms.saturating_sub(500).max(10_000)).min(MAX_HOLD)
        }
    };
    let no_hangup =
        header_str(headers, "long-pulling-timeout-no-hangup").is_some_and(|v| v == "true");
    let mut environments: HashMap<String, String> = HashMap::new();
    let mut watched = Vec::with_capacity(listened.len());
    for key in &listened {
        let namespace = if key.tenant.is_empty() {
            params.get("tenant").unwrap_or_default()
        } else {
            key.tenant.clone()
        };
        let env = match environments.get(&namespace) {
            Some(env) => env.clone(),
            None => {
                let env = ops::environment_of(state, &who, &namespace).await?;
                environments.insert(namespace, env.clone());
                env
            }
        };
        let group = if key.group.is_empty() {
            autoglm_core::config::DEFAULT_GROUP.to_owned()
        } else {
            key.group.clone()
        };
        watched.push(WatchedKey {
            environment: env,
            group,
            key: key.data_id.clone(),
            md5: key.md5.clone(),
        });
    }
    let tenant = &who.grant.tenant;
    let hold = if no_hangup { Duration::ZERO } else { hold };
    let changed = state.config.wait(tenant, &watched, hold).await;
    let lines = listened.iter().zip(&watched).filter(|(_, w)| {
        changed
            .iter()
            .any(|c| c.environment == w.environment && c.group == w.group && c.key == w.key)
    });
    Ok(listen::answer(lines.map(|(l, _)| l)))
}

/// `POST /nacos/v1/auth/login` and `/nacos/v1/auth/users/login`: an autoglm
/// user's name and password give a session token; any name with an autoglm
/// API key as the password gives that key back as the token.
async fn login(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::new(q, &body);
    let (Some(username), Some(password)) = (params.get("username"), params.get("password")) else {
        return text(
            StatusCode::BAD_REQUEST,
            "caused: username and password are required;".to_owned(),
        );
    };
    let answer = if password.starts_with(autoglm_auth::KEY_PREFIX) {
        ops::authenticate(&state, Some(password.clone()))
            .await
            .map(|who| (password, 18_000, who.username))
            .map_err(|f| f.message().to_owned())
    } else {
        let request = LoginRequest {
            username: username.clone(),
            password,
            tenant: params.get("tenant"),
        };
        autoglm_console::api::auth::password_login(&state, request, &request_id(&headers))
            .await
            .map(|session| {
                let ttl = (session.expires_at - chrono::Utc::now())
                    .num_seconds()
                    .max(1);
                (session.token, ttl, username)
            })
            .map_err(|e| e.detail)
    };
    match answer {
        Ok((token, ttl, username)) => (
            [(header::AUTHORIZATION, format!("Bearer {token}"))],
            axum::Json(json!({"accessToken": token, "tokenTtl": ttl, "globalAdmin": false, "username": username})),
        )
            .into_response(),
        Err(message) => text(StatusCode::FORBIDDEN, message),
    }
}

/// A v2 answer: `{code, message, data}`.
fn envelope(status: StatusCode, code: u32, message: &str, data: serde_json::Value) -> Response {
    (
        status,
        axum::Json(json!({"code": code, "message": message, "data": data})),
    )
        .into_response()
}

fn v2_failure(f: Failure) -> Response {
    match f {
        Failure::Denied(m) => envelope(StatusCode::FORBIDDEN, 10001, "access denied", json!(m)),
        Failure::Invalid(m) if m.starts_with("Required") => envelope(
            StatusCode::BAD_REQUEST,
            10000,
            "parameter missing",
            json!(m),
        ),
        Failure::Invalid(m) => envelope(
            StatusCode::BAD_REQUEST,
            20002,
            "parameter validate error",
            json!(m),
        ),
        Failure::NotFound => envelope(
            StatusCode::NOT_FOUND,
            20004,
            "resource not found",
            json!("config data not exist"),
        ),
        Failure::Conflict(m) => {
            envelope(StatusCode::CONFLICT, 20005, "resource conflict", json!(m))
        }
        Failure::Internal(m) => envelope(
            StatusCode::INTERNAL_SERVER_ERROR,
            30000,
            "server error",
            json!(m),
        ),
    }
}

async fn v2_get(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::new(q, &body);
    match read(&state, &params, &headers, "namespaceId").await {
        Ok(v) => {
            let mut response = envelope(StatusCode::OK, 0, "success", json!(v.content));
            response.headers_mut().extend(config_headers(&v, true));
            response
        }
        Err(f) => v2_failure(f),
    }
}

/// `POST` (publish) and `DELETE` (remove) of `/nacos/v2/cs/config`: `data: true`.
async fn v2_write(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
    remove: bool,
) -> Response {
    let params = Params::new(q, &body);
    match change(&state, &params, &headers, "namespaceId", remove).await {
        Ok(()) => envelope(StatusCode::OK, 0, "success", json!(true)),
        Err(f) => v2_failure(f),
    }
}
