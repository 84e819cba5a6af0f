//! One request through the gateway, step by step (the order is the crate
//! doc's): each step either passes the request on or answers it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use autoglm_platform::Demand;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::body::{Finish, Outcome, Relay, Scan};
use crate::metrics::{RequestLabels, VersionLabels};
use crate::reply::{GatewayBody, Protocol, Refused, full, json};
use crate::routes::{Outstanding, ServiceRoute, Table};
use crate::split::{Choice, choose};
use crate::trace::{RequestSpan, parse_traceparent};
use crate::usage::Used;
use crate::{Inner, STICKY_HEADER, VERSION_HEADER};

/// Headers that belong to one connection and are never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What a request is after, read from its path (and body).
#[derive(Debug)]
struct Target {
    service: String,
    pinned: Option<String>,
    body: Bytes,
    scan: Scan,
}

/// The fields of an OpenAI request body the gateway reads.
#[derive(Debug, Deserialize)]
struct Peek {
    model: Option<String>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// Answers one request.
pub async fn handle(
    inner: &Arc<Inner>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<GatewayBody> {
    let started = Instant::now();
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET, "/healthz" | "/readyz") => {
            return json(StatusCode::OK, &json!({"status": "ok"}));
        }
        (&Method::GET, "/v2/health/live") => return json(StatusCode::OK, &json!({"live": true})),
        (&Method::GET, "/v2/health/ready") => return json(StatusCode::OK, &json!({"ready": true})),
        (&Method::GET, "/metrics") => {
            let mut r = Response::new(full(inner.metrics.encode()));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            return r;
        }
        _ => {}
    }
    let protocol = Protocol::of(path);
    let parent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent);
    let mut span = Some(
        inner
            .tracing
            .start(format!("{} {}", req.method(), route_name(path)), parent),
    );
    let mut labels = RequestLabels {
        tenant: String::new(),
        model: String::new(),
        version: String::new(),
        code: 0,
    };
    match forward(inner, req, &mut labels, started, &mut span).await {
        Ok(response) => response,
        Err(refused) => {
            labels.code = refused.status.as_u16();
            if let Some(span) = span.take() {
                span.end(labels.code, span_attributes(&labels));
            }
            if refused.status.is_server_error() {
                tracing::warn!(%peer, code = refused.code, message = %refused.message, "request failed");
            }
            inner
                .metrics
                .answered(labels, started.elapsed().as_secs_f64());
            refused.into_response(protocol)
        }
    }
}

async fn forward(
    inner: &Arc<Inner>,
    req: Request<Incoming>,
    labels: &mut RequestLabels,
    started: Instant,
    span: &mut Option<RequestSpan>,
) -> Result<Response<GatewayBody>, Refused> {
    let caller = authenticate(inner, &req).await?;
    labels.tenant.clone_from(&caller.tenant);
    let verdict = inner.limiter.admit(
        (&caller.credential, caller.key_limit),
        (&caller.tenant, caller.tenant_limit),
        started,
    );
    if let Some((scope, seconds)) = verdict.refused {
        inner.metrics.rate_limited(scope.as_str());
        let mut refused = Refused::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            format!(
                "the {} rate limit is reached; retry in {seconds} s",
                scope.as_str()
            ),
        )
        .retry_after(seconds);
        refused.message.push_str(&limit_summary(&verdict.headers));
        refused.headers = verdict.headers;
        return Err(refused);
    }
    if req.method() == Method::GET && req.uri().path() == "/v1/models" {
        let table = inner.table.borrow().clone();
        let data: Vec<serde_json::Value> = table
            .names(&caller.tenant)
            .into_iter()
            .map(|n| json!({"id": n, "object": "model", "created": 0, "owned_by": caller.tenant}))
            .collect();
        return Ok(json(
            StatusCode::OK,
            &json!({"object": "list", "data": data}),
        ));
    }
    let (parts, body) = req.into_parts();
    let target = target(inner, &parts, body).await?;
    let table = inner.table.borrow().clone();
    let Some(service) = table.service(&caller.tenant, &target.service).cloned() else {
        return Err(Refused::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!(
                "model {:?} is not served in tenant {:?}",
                target.service, caller.tenant
            ),
        ));
    };
    labels.model.clone_from(&target.service);
    let header_pin = parts
        .headers
        .get(VERSION_HEADER)
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| {
            Refused::new(
                StatusCode::BAD_REQUEST,
                "invalid_header",
                format!("{VERSION_HEADER} must be text"),
            )
        })?;
    let pinned = match (target.pinned.as_deref(), header_pin.as_deref()) {
        (Some(a), Some(b)) if a != b => {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "conflicting_version",
                format!("the request names version {a} and {VERSION_HEADER} says {b}"),
            ));
        }
        (a, b) => a.or(b).map(str::to_owned),
    };
    let sticky = parts
        .headers
        .get(STICKY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            inner
                .config
                .sticky_by_key
                .then(|| caller.credential.clone())
        });
    let choice = match (&pinned, &sticky) {
        (Some(v), _) => Choice::Pinned(v),
        (None, Some(key)) => Choice::Sticky(key),
        (None, None) => Choice::Random(rand::random_range(0..100)),
    };
    let Some(index) = choose(&service.versions, choice) else {
        return Err(match &pinned {
            Some(v) => Refused::new(
                StatusCode::NOT_FOUND,
                "version_not_found",
                format!("version {v} of {:?} is not served", target.service),
            ),
            None => Refused::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_traffic",
                format!("no version of {:?} takes traffic", target.service),
            ),
        });
    };
    // A version being replaced (weight 0, still ready) answers while its
    // successor starts; anything else waits for its own replicas, so that a
    // version scaled to zero sees the demand that wakes it.
    let index = if pinned.is_none() && service.versions[index].endpoints.is_empty() {
        service
            .versions
            .iter()
            .position(|v| v.weight == 0 && !v.endpoints.is_empty())
            .unwrap_or(index)
    } else {
        index
    };
    let version = service.versions[index].version.clone();
    labels.version.clone_from(&version);
    let vlabels = VersionLabels {
        tenant: caller.tenant.clone(),
        model: target.service.clone(),
        version: version.clone(),
    };
    let service = hold(inner, &caller, &target.service, service, &version, &vlabels).await?;
    let route = service
        .versions
        .iter()
        .find(|v| v.version == version)
        .ok_or_else(|| {
            Refused::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_replica",
                "the version went away",
            )
        })?;

    let demand = inner.demand.of(&service.platform_name, &version);
    let in_flight_guard = Demand::start(&demand);
    let gauge = inner.metrics.in_flight(&vlabels);
    gauge.inc();
    let mut tried: Vec<SocketAddr> = Vec::new();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let traceparent = span.as_ref().map(RequestSpan::traceparent);
    let response = loop {
        let Some(endpoint) = route.pick(&tried) else {
            gauge.dec();
            return Err(Refused::new(
                StatusCode::BAD_GATEWAY,
                "no_replica",
                format!(
                    "no replica of {} version {version} accepted the connection",
                    target.service
                ),
            ));
        };
        tried.push(endpoint.addr);
        let outstanding = Outstanding::on(endpoint.clone());
        let upstream = upstream_request(
            &parts,
            &endpoint.base,
            &path_and_query,
            traceparent.as_ref(),
            target.body.clone(),
        )?;
        let sent = Instant::now();
        match tokio::time::timeout(inner.config.request_timeout, inner.client.request(upstream))
            .await
        {
            Ok(Ok(resp)) => {
                if resp.status().is_server_error() {
                    endpoint.failed(false);
                } else {
                    endpoint.succeeded();
                }
                inner
                    .metrics
                    .upstream(&vlabels, sent.elapsed().as_secs_f64());
                break (resp, outstanding);
            }
            Ok(Err(e)) if e.is_connect() && tried.len() <= inner.config.retries as usize => {
                endpoint.failed(true);
                inner.metrics.retried(&vlabels);
                tracing::info!(replica = %endpoint.addr, error = %e, "connection refused; trying another replica");
            }
            Ok(Err(e)) => {
                endpoint.failed(e.is_connect());
                gauge.dec();
                return Err(Refused::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    format!(
                        "the replica of {} version {version} failed: {e}",
                        target.service
                    ),
                ));
            }
            Err(_) => {
                endpoint.failed(false);
                gauge.dec();
                return Err(Refused::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    format!(
                        "the replica did not answer within {} s",
                        inner.config.request_timeout.as_secs()
                    ),
                ));
            }
        }
    };
    let (resp, outstanding) = response;
    let (mut head, incoming) = resp.into_parts();
    strip_hop_by_hop(&mut head.headers);
    head.headers.insert(
        HeaderName::from_static(VERSION_HEADER),
        HeaderValue::from_str(&version).unwrap_or_else(|_| HeaderValue::from_static("")),
    );
    for (name, value) in &verdict.headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            head.headers.insert(HeaderName::from_static(name), v);
        }
    }
    let scan = if head.status.is_success() {
        target.scan
    } else {
        Scan::None
    };
    labels.code = head.status.as_u16();
    let finish: Finish = {
        let inner = inner.clone();
        let labels = labels.clone();
        let caller = caller.clone();
        let span = span.take();
        Box::new(move |outcome: Outcome| {
            drop((outstanding, in_flight_guard));
            gauge.dec();
            if let Some(span) = span {
                // A stream the client left early is still the status it began with.
                span.end(labels.code, span_attributes(&labels));
            }
            let tokens = outcome.tokens.unwrap_or_default();
            inner.usage.record(
                Used {
                    tenant: &caller.tenant,
                    credential: &caller.credential,
                    service: &labels.model,
                    version: &labels.version,
                    prompt_tokens: tokens.prompt_tokens,
                    completion_tokens: tokens.completion_tokens,
                },
                chrono::Utc::now(),
            );
            let total = tokens.prompt_tokens + tokens.completion_tokens;
            if total > 0 {
                inner
                    .limiter
                    .charge(&caller.credential, &caller.tenant, total, Instant::now());
            }
            inner
                .metrics
                .answered(labels, started.elapsed().as_secs_f64());
        })
    };
    if matches!(scan, Scan::Sse { strip_usage: true }) {
        head.headers.remove(CONTENT_LENGTH);
    }
    Ok(Response::from_parts(
        head,
        Relay::new(incoming, scan, finish).boxed_unsync(),
    ))
}

/// The caller, or why not.
async fn authenticate(inner: &Inner, req: &Request<Incoming>) -> Result<Caller, Refused> {
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Refused::new(
                StatusCode::UNAUTHORIZED,
                "missing_api_key",
                "send an API key as Authorization: Bearer <key>",
            )
        })?;
    let caller = inner.auth.resolve(token).await.map_err(|r| {
        if r.status == 401 {
            Refused::new(StatusCode::UNAUTHORIZED, "invalid_api_key", r.message)
        } else {
            Refused::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", r.message)
        }
    })?;
    if !caller.may_invoke {
        return Err(Refused::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "this credential lacks the services:invoke permission",
        ));
    }
    Ok(caller)
}

/// Reads what the request is after: the service (and a pinned version) from
/// the path or the body, and the body, rewritten where the gateway must.
async fn target(
    inner: &Inner,
    parts: &hyper::http::request::Parts,
    body: Incoming,
) -> Result<Target, Refused> {
    let path = parts.uri.path();
    let openai = matches!(
        path,
        "/v1/chat/completions" | "/v1/completions" | "/v1/embeddings"
    );
    let oip = path.strip_prefix("/v2/models/");
    if !openai && oip.is_none() {
        return Err(Refused::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {} {path}", parts.method),
        ));
    }
    if openai && parts.method != Method::POST {
        return Err(Refused::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} takes POST"),
        ));
    }
    let body = read_body(inner, parts, body).await?;
    if let Some(rest) = oip {
        // {name}, {name}/ready, {name}/infer, {name}/versions/{v}[/ready|/infer]
        let mut segments = rest.split('/');
        let service = segments.next().unwrap_or_default().to_owned();
        let pinned = match (segments.next(), segments.next()) {
            (Some("versions"), Some(v)) => Some(v.to_owned()),
            _ => None,
        };
        return Ok(Target {
            service,
            pinned,
            body,
            scan: Scan::None,
        });
    }
    let peek: Peek = serde_json::from_slice(&body).map_err(|e| {
        Refused::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not a valid request: {e}"),
        )
    })?;
    let model = peek.model.filter(|m| !m.is_empty()).ok_or_else(|| {
        Refused::new(
            StatusCode::BAD_REQUEST,
            "missing_model",
            "the body must name a model",
        )
    })?;
    let (service, pinned) = match model.split_once(':') {
        Some((s, v)) => (s.to_owned(), Some(v.to_owned())),
        None => (model.clone(), None),
    };
    let streams = peek.stream == Some(true) && path != "/v1/embeddings";
    let asked_usage = peek.stream_options.and_then(|o| o.include_usage) == Some(true);
    let scan = if streams {
        Scan::Sse {
            strip_usage: !asked_usage,
        }
    } else {
        Scan::Json
    };
    // Replicas know the service by its name alone; and a stream reports its
    // usage only when asked, so the gateway asks (and hides the answer).
    let body = if pinned.is_some() || (streams && !asked_usage) {
        let mut doc: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            Refused::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not valid JSON: {e}"),
            )
        })?;
        doc["model"] = json!(service);
        if streams && !asked_usage {
            doc["stream_options"] = json!({"include_usage": true});
        }
        Bytes::from(doc.to_string())
    } else {
        body
    };
    Ok(Target {
        service,
        pinned,
        body,
        scan,
    })
}

/// The request body, bounded in size and in time.
async fn read_body(
    inner: &Inner,
    parts: &hyper::http::request::Parts,
    body: Incoming,
) -> Result<Bytes, Refused> {
    let limit = inner.config.body_limit;
    let too_large = || {
        Refused::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than the gateway's limit of {limit} bytes"),
        )
    };
    if let Some(len) = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(too_large());
    }
    match tokio::time::timeout(
        inner.config.body_timeout,
        Limited::new(body, limit).collect(),
    )
    .await
    {
        Err(_) => Err(Refused::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the body did not arrive within {} s",
                inner.config.body_timeout.as_secs()
            ),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "body_unreadable",
            format!("the body could not be read: {e}"),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Waits, when the version has no ready replica, until one is ready (the
/// scheduler is told through the demand it sees), within the hold timeout and
/// the bound on waiting requests.
async fn hold(
    inner: &Inner,
    caller: &Caller,
    service_name: &str,
    service: Arc<ServiceRoute>,
    version: &str,
    vlabels: &VersionLabels,
) -> Result<Arc<ServiceRoute>, Refused> {
    let ready = |s: &ServiceRoute| {
        s.versions
            .iter()
            .any(|v| v.version == version && !v.endpoints.is_empty())
    };
    if ready(&service) {
        return Ok(service);
    }
    let demand = inner.demand.of(&service.platform_name, version);
    let Some(_waiting) = inner.demand.wait(&demand, inner.config.max_waiting) else {
        return Err(Refused::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_waiting",
            format!(
                "{} requests already wait for a replica of {service_name} version {version}",
                inner.config.max_waiting
            ),
        )
        .retry_after(5));
    };
    let gauge = inner.metrics.waiting(vlabels);
    gauge.inc();
    let mut table = inner.table.clone();
    let found = tokio::time::timeout(inner.config.hold_timeout, async {
        loop {
            let now: Arc<Table> = table.borrow_and_update().clone();
            match now.service(&caller.tenant, service_name) {
                None => return None,
                Some(s) if ready(s) => return Some(s.clone()),
                Some(_) => {}
            }
            if table.changed().await.is_err() {
                return None;
            }
        }
    })
    .await;
    gauge.dec();
    match found {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(Refused::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("model {service_name:?} was removed while the request waited"),
        )),
        Err(_) => Err(Refused::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_replica_ready",
            format!(
                "no replica of {service_name} version {version} became ready within {} s",
                inner.config.hold_timeout.as_secs()
            ),
        )
        .retry_after(5)),
    }
}

/// The request to send to a replica.
fn upstream_request(
    parts: &hyper::http::request::Parts,
    base: &str,
    path_and_query: &str,
    traceparent: Option<&HeaderValue>,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, Refused> {
    let uri: hyper::Uri = format!("{base}{path_and_query}").parse().map_err(|_| {
        Refused::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "the request path is not valid",
        )
    })?;
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    for (name, value) in &parts.headers {
        if name == AUTHORIZATION || name == HOST || name == CONTENT_LENGTH {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    strip_hop_by_hop(headers);
    if let Some(traceparent) = traceparent {
        headers.insert(HeaderName::from_static("traceparent"), traceparent.clone());
    }
    Ok(req)
}

fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// A span name of few distinct values: the route, not the raw path.
fn route_name(path: &str) -> &'static str {
    match path {
        "/v1/chat/completions" => "/v1/chat/completions",
        "/v1/completions" => "/v1/completions",
        "/v1/embeddings" => "/v1/embeddings",
        "/v1/models" => "/v1/models",
        p if p.starts_with("/v2/models/") && p.ends_with("/infer") => "/v2/models/{name}/infer",
        p if p.starts_with("/v2/models/") => "/v2/models/{name}",
        _ => "other",
    }
}

fn span_attributes(labels: &RequestLabels) -> [(&'static str, String); 3] {
    [
        ("autoglm.tenant", labels.tenant.clone()),
        ("autoglm.model", labels.model.clone()),
        ("autoglm.version", labels.version.clone()),
    ]
}

/// The limits' state in words, for a 429 message.
fn limit_summary(headers: &[(&'static str, String)]) -> String {
    let parts: Vec<String> = headers
        .iter()
        .map(|(n, v)| format!("{}={v}", n.trim_start_matches("x-ratelimit-")))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}
