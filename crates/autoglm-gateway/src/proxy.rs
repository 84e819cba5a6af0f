//! One request through the gateway, step by step (the order is the crate
//! doc's): each step either passes the request on or answers it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use autoglm_contract::Demand;
use autoglm_core::error::GatewayCode;
use autoglm_exposition::Format;
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::balance::Balance;
use crate::body::{Finish, Outcome, Relay, Scan};
use crate::incoming::{BodyError, Incoming};
use crate::limits::Remaining;
use crate::metrics::{RequestLabels, VersionMetrics};
use crate::opening;
use crate::reply::{Local, Protocol, Refused, json};
use crate::routes::{Outstanding, ServiceRoute, Table, VersionRoute};
use crate::split::{Choice, choose};
use crate::upstream::{Pool, UpstreamBody};
use crate::usage::Used;
use crate::wire::{Known, RequestHead, ResponseHead};
use crate::{Inner, VERSION_HEADER};
use autoglm_filters::{Exchange, Flow, Headers, LocalResponse, Properties, Refusal, Run};
use autoglm_trace::{RequestSpan, parse_traceparent};

/// What the gateway answers.
#[derive(Debug)]
pub enum Answer {
    /// An answer of its own.
    Local(Local),
    /// A replica's answer.
    Relayed(Box<Relayed>),
}

/// A replica's answer, passed on with fields of the gateway's own added
/// (replacing the replica's of the same names): the version and the rate
/// limits.
#[derive(Debug)]
pub struct Relayed {
    /// The replica's head.
    pub head: ResponseHead,
    /// The version that answered.
    pub version: String,
    /// The rate limits' state.
    pub remaining: Remaining,
    /// The head's fields as the filters left them, when any ran.
    pub filtered: Option<Headers>,
    /// The body, as it arrives.
    pub relay: Relay,
}

/// What a request is after, read from its path (and body).
#[derive(Debug)]
struct Target {
    service: String,
    pinned: Option<String>,
    body: Bytes,
    scan: Scan,
    /// The head as the filters left it, when any ran.
    head: Option<Headers>,
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
    pool: &Arc<Pool>,
    req: &RequestHead,
    body: &mut impl Incoming,
    peer: SocketAddr,
) -> Answer {
    let started = Instant::now();
    let path = req.path();
    let local = |value| Answer::Local(json(StatusCode::OK, &value));
    match (req.method(), path) {
        ("GET", "/healthz" | "/readyz") => return local(json!({"status": "ok"})),
        ("GET", "/v2/health/live") => return local(json!({"live": true})),
        ("GET", "/v2/health/ready") => return local(json!({"ready": true})),
        ("GET", "/metrics") => {
            let format = Format::negotiate(req.field("accept"));
            return Answer::Local(Local {
                status: StatusCode::OK,
                content_type: format.content_type(),
                headers: Vec::new(),
                filtered: Vec::new(),
                body: Bytes::from(format.render(inner.metrics.encode())),
            });
        }
        _ => {}
    }
    let protocol = Protocol::of(path);
    let parent = req.header(Known::Traceparent).and_then(parse_traceparent);
    let mut span = Some(
        inner
            .tracing
            .start(|| format!("{} {}", req.method(), route_name(path)), parent),
    );
    let mut labels = RequestLabels::default();
    match forward(
        inner,
        pool,
        req,
        body,
        peer,
        &mut labels,
        started,
        &mut span,
    )
    .await
    {
        Ok(answer) => answer,
        Err(refused) => {
            labels.code = refused.code.status();
            if refused.status().is_server_error() {
                let (trace_id, span_id) = span
                    .as_ref()
                    .map(|s| (s.trace_id(), s.span_id()))
                    .unwrap_or_default();
                tracing::warn!(%peer, code = refused.code.as_str(), message = %refused.message, %trace_id, %span_id, "request failed");
            }
            if let Some(span) = span.take() {
                span.end(labels.code, || span_attributes(&labels));
            }
            inner
                .metrics
                .answered(&labels, started.elapsed().as_secs_f64());
            Answer::Local(refused.into_answer(protocol))
        }
    }
}

/// The request path, one step a line, in ARCHITECTURE.md's order. Each step
/// either hands the next what it needs or refuses the request.
#[allow(clippy::too_many_arguments)] // the request's parts, borrowed from `handle`
async fn forward(
    inner: &Arc<Inner>,
    pool: &Arc<Pool>,
    req: &RequestHead,
    body: &mut impl Incoming,
    peer: SocketAddr,
    labels: &mut RequestLabels,
    started: Instant,
    span: &mut Option<RequestSpan>,
) -> Result<Answer, Refused> {
    // authenticate: the bearer credential, to a tenant, its limits and rights.
    let caller = authenticate(inner, req, started).await?;
    labels.tenant.push_str(&caller.tenant);
    // quota: the tenant's tokens for the day and the month.
    if let Some(quota) = caller.tenant_tokens {
        within_token_quota(inner, &caller, quota).await?;
    }
    // admit: the key's and the tenant's request-rate buckets.
    let remaining = admit(inner, &caller, started)?;
    if req.method() == "GET" && req.path() == "/v1/models" {
        return Ok(list_models(inner, &caller));
    }
    // target: the service (and a pinned version) from the path or the body.
    let mut target = target(inner, req, body).await?;
    labels.model.clone_from(&target.service);
    // split: one version, by pin, sticky key or weight.
    let (service, index) = split(inner, req, &caller, &target)?;
    let version = service.versions[index].version.clone();
    labels.version.clone_from(&version);
    // filter: the tenant's filters, then the service's, over the request.
    let mut filtering =
        match filter_request(inner, req, peer, &caller, &mut target, &service, &version)? {
            Filtered::Pass(filtering) => filtering,
            Filtered::Answer(local) => {
                return Ok(answered_by_filter(inner, labels, span, started, local));
            }
        };
    // hold: a version without a ready replica waits for one (and wakes the autoscaler).
    let service = hold(inner, &caller, &target.service, service, index).await?;
    let route = service
        .versions
        .iter()
        .find(|v| v.version == version)
        .ok_or_else(|| {
            Refused::new(
                GatewayCode::NoReplicaReady,
                format!(
                    "version {version} of {} went away while the request waited",
                    target.service
                ),
            )
        })?;
    let in_flight = InFlight::start(route);
    // balance and forward: the replica the version's balance picks, another one while none of the request was sent.
    let (head, incoming, outstanding) =
        exchange(inner, pool, req, body, &target, route, &version, span).await?;
    // relay: the answer as it arrives, with the usage found in it.
    let scan = if (200..300).contains(&head.status) {
        target.scan
    } else {
        Scan::None
    };
    // filter: the response's head, through the same filters.
    let filtered = match filtering.as_deref_mut() {
        None => Ok(None),
        Some(filtering) => match filter_response(filtering, req, &head) {
            Ok(fields) => Ok(Some(fields)),
            // The replica answered: the request counts as any answered one.
            Err(Stop::Answer(local)) => Err(local),
            Err(Stop::Refused(refused)) => return Err(refused),
        },
    };
    labels.code = match &filtered {
        Ok(fields) => fields.as_deref().and_then(status_of).unwrap_or(head.status),
        Err(local) => local.status.as_u16(),
    };
    // account: usage, token charge, metrics and span, once the answer's last write is done.
    let finish = account(
        inner,
        caller,
        std::mem::take(labels),
        span.take(),
        started,
        (in_flight, outstanding),
    );
    let filtered = match filtered {
        Ok(fields) => fields,
        Err(local) => {
            finish(Outcome {
                complete: true,
                tokens: None,
                at: Instant::now(),
            });
            return Ok(Answer::Local(local));
        }
    };
    Ok(Answer::Relayed(Box::new(Relayed {
        head,
        version,
        remaining,
        filtered,
        relay: Relay::new(incoming, scan, finish, filtering),
    })))
}

/// A request the filters saw: their run (it ends their streams when
/// dropped, after the answer) and the exchange as they left it.
#[derive(Debug)]
pub struct Filtering {
    pub run: Run,
    pub exchange: Exchange,
}

/// Why the filters stopped an answer.
enum Stop {
    /// A filter answered for itself.
    Answer(Local),
    /// A filter failed closed, or left the answer broken.
    Refused(Refused),
}

/// Runs the filters over the response's head: the fields to write, or why not.
fn filter_response(
    filtering: &mut Filtering,
    req: &RequestHead,
    head: &ResponseHead,
) -> Result<Headers, Stop> {
    let bodiless = |status: u16| matches!(status, 204 | 304);
    filtering.exchange.response_headers = head.filter_headers();
    let end = req.method() == "HEAD" || bodiless(head.status);
    match filtering.run.response_headers(&mut filtering.exchange, end) {
        Ok(Flow::Continue) => {
            let fields = std::mem::take(&mut filtering.exchange.response_headers);
            match status_of(&fields) {
                // The body is framed by the replica's status: a filter may not
                // turn an answer with a body into one without, or back.
                Some(s) if (200..=599).contains(&s) && bodiless(s) == bodiless(head.status) => {
                    Ok(fields)
                }
                other => Err(Stop::Refused(Refused::new(
                    GatewayCode::FilterFailed,
                    format!(
                        "a filter set the answer's :status to {other:?}, not a final status framed as the replica's {}",
                        head.status
                    ),
                ))),
            }
        }
        Ok(Flow::Respond(local)) => Err(Stop::Answer(filter_answer(local))),
        Err(refusal) => Err(Stop::Refused(filter_refusal(refusal))),
    }
}

/// The `:status` of filtered fields.
fn status_of(fields: &[(String, Vec<u8>)]) -> Option<u16> {
    fields
        .iter()
        .find(|(n, _)| n == ":status")
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
}

/// Whether the request line the filters left can be written: a method of
/// token characters, a path from `/` without spaces or control characters.
fn valid_request_line(fields: &[(String, Vec<u8>)]) -> bool {
    let value = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    };
    let method = value(":method").unwrap_or_default();
    let path = value(":path").unwrap_or_default();
    !method.is_empty()
        && method
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
        && path.first() == Some(&b'/')
        && path.iter().all(|b| *b > b' ' && *b != 0x7f)
}

/// What the filters made of a request.
enum Filtered {
    /// Pass it on: rewritten in `target` when filters ran.
    Pass(Option<Box<Filtering>>),
    /// Answer this instead (a filter's local response).
    Answer(Local),
}

/// Runs the tenant's and the service's filters over the request's head and
/// body, leaving in `target` what they made of them.
fn filter_request(
    inner: &Inner,
    req: &RequestHead,
    peer: SocketAddr,
    caller: &Caller,
    target: &mut Target,
    service: &ServiceRoute,
    version: &str,
) -> Result<Filtered, Refused> {
    let Some(run) = inner
        .filters
        .run(&caller.tenant, &target.service, &service.filters)?
    else {
        return Ok(Filtered::Pass(None));
    };
    let mut filtering = Filtering {
        run,
        exchange: Exchange {
            request_headers: req.filter_headers(),
            request_body: target.body.to_vec(),
            properties: Properties {
                tenant: caller.tenant.to_string(),
                service: target.service.clone(),
                version: version.to_owned(),
                source_address: peer.to_string(),
                request_id: String::new(),
            },
            ..Exchange::default()
        },
    };
    match filtering.run.request(&mut filtering.exchange) {
        Ok(Flow::Continue) => {
            if !valid_request_line(&filtering.exchange.request_headers) {
                return Err(Refused::new(
                    GatewayCode::FilterFailed,
                    "a filter left a :method or :path that cannot be sent",
                ));
            }
            target.body = Bytes::from(std::mem::take(&mut filtering.exchange.request_body));
            // The response's filters may read the request's head again.
            target.head = Some(filtering.exchange.request_headers.clone());
            Ok(Filtered::Pass(Some(Box::new(filtering))))
        }
        Ok(Flow::Respond(local)) => Ok(Filtered::Answer(filter_answer(local))),
        Err(refusal) => Err(filter_refusal(refusal)),
    }
}

/// A filter's local response as the gateway's own answer.
fn filter_answer(mut local: LocalResponse) -> Local {
    if matches!(local.status, 204 | 304) {
        local.body.clear();
    }
    Local {
        status: StatusCode::from_u16(local.status).unwrap_or(StatusCode::FORBIDDEN),
        content_type: "text/plain; charset=utf-8",
        headers: Vec::new(),
        filtered: local.headers,
        body: Bytes::from(local.body),
    }
}

/// A filter failing closed, as the gateway's refusal.
fn filter_refusal(refusal: Refusal) -> Refused {
    Refused::new(
        GatewayCode::FilterFailed,
        format!("filter {} failed: {}", refusal.filter, refusal.failure),
    )
}

/// Counts and ends a request a filter answered.
fn answered_by_filter(
    inner: &Inner,
    labels: &mut RequestLabels,
    span: &mut Option<RequestSpan>,
    started: Instant,
    local: Local,
) -> Answer {
    labels.code = local.status.as_u16();
    if let Some(span) = span.take() {
        span.end(labels.code, || span_attributes(labels));
    }
    inner
        .metrics
        .answered(labels, started.elapsed().as_secs_f64());
    Answer::Local(local)
}

/// A request being answered by a version's replica: counted in the
/// version's demand (the autoscaler's input) and its in-flight gauge until
/// dropped, whichever way the request ends.
struct InFlight {
    metrics: Arc<VersionMetrics>,
    _demand: autoglm_contract::demand::InFlight,
}

impl InFlight {
    fn start(route: &VersionRoute) -> InFlight {
        route.metrics.in_flight.inc();
        InFlight {
            metrics: route.metrics.clone(),
            _demand: Demand::start(&route.demand),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

/// A 429 when the tenant has spent its tokens for the day or the month
/// (its stored spending read the first time this gateway sees it).
async fn within_token_quota(
    inner: &Inner,
    caller: &Caller,
    quota: autoglm_core::quota::TokenQuota,
) -> Result<(), Refused> {
    let now = chrono::Utc::now();
    if !inner.tokens.knows(&caller.tenant) {
        let (store, tenant) = (inner.auth.store(), caller.tenant.clone());
        let read = tokio::task::spawn_blocking(move || store.tokens_spent(&tenant, now)).await;
        match read {
            Ok(Ok(spent)) => inner.tokens.seed(&caller.tenant, spent, now),
            _ => {
                return Err(Refused::new(
                    GatewayCode::Internal,
                    "the tenant's token use could not be read",
                ));
            }
        }
    } else if inner.tokens.due(&caller.tenant, Instant::now()) {
        // Read again beside the request, which does not wait for it: what
        // other gateways flushed since counts from the next request on.
        let (store, tenant) = (inner.auth.store(), caller.tenant.clone());
        let tokens = inner.tokens.clone();
        tokio::task::spawn_blocking(move || {
            if let Ok(spent) = store.tokens_spent(&tenant, now) {
                tokens.seed(&tenant, spent, now);
            }
        });
    }
    inner
        .tokens
        .admit(&caller.tenant, quota, now)
        .map_err(|spent| {
            inner.metrics.rate_limited("tenant_quota");
            Refused::new(
                GatewayCode::InsufficientQuota,
                format!(
                    "tenant {} has spent {} of its {} tokens this {} (UTC); the quota renews at {}",
                    caller.tenant,
                    spent.spent,
                    spent.limit,
                    spent.period,
                    spent
                        .renews
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            )
            .retry_after((spent.renews - now).num_seconds().max(1) as u64)
        })
}

/// The rate limits' state, or a 429 with it.
fn admit(inner: &Inner, caller: &Caller, now: Instant) -> Result<Remaining, Refused> {
    let verdict = inner.limiter.admit(
        (&caller.credential, caller.key_limit),
        (
            &caller.tenant,
            caller
                .tenant_limit
                .or(inner.config.load().default_rate_limit),
        ),
        now,
    );
    let Some((scope, seconds)) = verdict.refused else {
        return Ok(verdict.remaining);
    };
    inner.metrics.rate_limited(scope.as_str());
    let mut refused = Refused::new(
        GatewayCode::RateLimitExceeded,
        format!(
            "the {} rate limit is reached; retry in {seconds} s",
            scope.as_str()
        ),
    )
    .retry_after(seconds);
    let mut digits = Default::default();
    refused.headers = verdict
        .remaining
        .fields(&mut digits)
        .map(|(name, value)| (name, value.to_owned()))
        .collect();
    refused.message.push_str(&limit_summary(&refused.headers));
    Err(refused)
}

/// `GET /v1/models`: the services of the caller's tenant.
fn list_models(inner: &Inner, caller: &Caller) -> Answer {
    let table = inner.table.borrow().clone();
    let data: Vec<serde_json::Value> = table
        .names(&caller.tenant)
        .into_iter()
        .map(|n| json!({"id": n, "object": "model", "created": 0, "owned_by": &*caller.tenant}))
        .collect();
    Answer::Local(json(
        StatusCode::OK,
        &json!({"object": "list", "data": data}),
    ))
}

/// The target's service and the index of the version that takes the request.
fn split(
    inner: &Inner,
    req: &RequestHead,
    caller: &Caller,
    target: &Target,
) -> Result<(Arc<ServiceRoute>, usize), Refused> {
    let table = inner.table.borrow().clone();
    let Some(service) = table.service(&caller.tenant, &target.service).cloned() else {
        return Err(Refused::new(
            GatewayCode::ModelNotFound,
            format!(
                "model {:?} is not served in tenant {:?}",
                target.service, caller.tenant
            ),
        ));
    };
    let header_pin = match req.header(Known::Version) {
        Some(v) => Some(v),
        None if req.has_header(Known::Version) => {
            return Err(Refused::new(
                GatewayCode::InvalidHeader,
                format!("{VERSION_HEADER} must be text"),
            ));
        }
        None => None,
    };
    let pinned = match (target.pinned.as_deref(), header_pin) {
        (Some(a), Some(b)) if a != b => {
            return Err(Refused::new(
                GatewayCode::ConflictingVersion,
                format!("the request names version {a} and {VERSION_HEADER} says {b}"),
            ));
        }
        (a, b) => a.or(b),
    };
    let sticky = req.header(Known::Sticky).map(str::to_owned).or_else(|| {
        inner
            .start
            .sticky_by_key
            .then(|| caller.credential.to_string())
    });
    let choice = match (pinned, &sticky) {
        (Some(v), _) => Choice::Pinned(v),
        (None, Some(key)) => Choice::Sticky(key),
        (None, None) => Choice::Random(rand::random_range(0..100)),
    };
    let Some(index) = choose(&service.versions, choice) else {
        return Err(match pinned {
            Some(v) => Refused::new(
                GatewayCode::VersionNotFound,
                format!("version {v} of {:?} is not served", target.service),
            ),
            None => Refused::new(
                GatewayCode::NoTraffic,
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
    Ok((service, index))
}

/// Sends the request to the replica of `route` its balance picks and reads
/// its answer's head. A replica that took none of the request (refused the
/// connection) is ejected for a while and the next one tried, up to the
/// configured retries; once any of it was written, the outcome is the
/// answer, as the replica may have acted on it.
///
/// What counts against a replica in its ejection is its own doing: a
/// refused or broken connection, an answer that is not HTTP, a 5xx. A
/// request that outlasts the request timeout does not count: a long answer
/// is the caller's asking (a non-streaming generation sends its head only
/// once done), and a replica that truly hangs fails its health checks and
/// leaves the routes, while its outstanding requests already turn the
/// balance away from it.
#[allow(clippy::too_many_arguments)] // the request's parts, borrowed from the step before
async fn exchange(
    inner: &Inner,
    pool: &Arc<Pool>,
    req: &RequestHead,
    body: &mut impl Incoming,
    target: &Target,
    route: &VersionRoute,
    version: &str,
    span: &Option<RequestSpan>,
) -> Result<(ResponseHead, UpstreamBody, Outstanding), Refused> {
    // Replicas that took none of the request; empty unless a retry is needed.
    let mut tried: Vec<SocketAddr> = Vec::new();
    let traceparent = span.as_ref().map(RequestSpan::traceparent);
    let to_head = req.method() == "HEAD";
    let key = match &route.balance {
        Balance::PrefixHash { config, .. } => opening::key(&target.body, config),
        Balance::LeastOutstanding => None,
    };
    loop {
        let sent = Instant::now();
        let Some((endpoint, picked)) = route.pick(&tried, key, sent) else {
            return Err(Refused::new(
                GatewayCode::NoReplica,
                format!(
                    "no replica of {} version {version} accepted the connection",
                    target.service
                ),
            ));
        };
        if tried.is_empty() {
            route.metrics.picked(picked);
        }
        let outstanding = Outstanding::on(endpoint.clone());
        let mut upstream = BytesMut::new();
        let extra: &[(&str, &str)] = match &traceparent {
            Some(t) => &[("traceparent", t.as_str())],
            None => &[],
        };
        match &target.head {
            Some(fields) => RequestHead::write_filtered_upstream(
                fields,
                &mut upstream,
                &endpoint.authority,
                Known::Authorization,
                extra,
                &target.body,
            ),
            None => req.write_upstream(
                &mut upstream,
                &endpoint.authority,
                Known::Authorization,
                extra,
                &target.body,
            ),
        }
        let deadline = (sent + inner.config.load().request_timeout).into();
        let exchange = pool.exchange(endpoint.addr, &upstream, to_head, sent);
        match body.within(deadline, exchange).await {
            Ok(Ok((head, incoming))) => {
                if head.status >= 500 {
                    endpoint.failed(false);
                } else {
                    endpoint.succeeded();
                }
                route.metrics.upstream.observe(sent.elapsed().as_secs_f64());
                return Ok((head, incoming, outstanding));
            }
            Ok(Err(e)) if e.unsent() && tried.len() < inner.config.load().retries as usize => {
                tried.push(endpoint.addr);
                endpoint.failed(true);
                inner.metrics.retried(&route.metrics.labels);
                tracing::info!(replica = %endpoint.addr, error = %e, "nothing sent; trying another replica");
            }
            Ok(Err(e)) => {
                endpoint.failed(e.unsent());
                return Err(Refused::new(
                    GatewayCode::UpstreamError,
                    format!(
                        "the replica of {} version {version} failed: {e}",
                        target.service
                    ),
                ));
            }
            Err(_) => {
                return Err(Refused::new(
                    GatewayCode::UpstreamTimeout,
                    format!(
                        "the replica did not answer within {} s",
                        inner.config.load().request_timeout.as_secs()
                    ),
                ));
            }
        }
    }
}

/// What runs once the answer's last write is done: the request leaves the
/// replica's and the version's counts, and its usage, token charge, metrics
/// and span are recorded.
fn account(
    inner: &Arc<Inner>,
    caller: Caller,
    labels: RequestLabels,
    span: Option<RequestSpan>,
    started: Instant,
    counted: (InFlight, Outstanding),
) -> Finish {
    let inner = inner.clone();
    Box::new(move |outcome: Outcome| {
        let (in_flight, outstanding) = counted;
        drop(outstanding);
        let metrics = in_flight.metrics.clone();
        drop(in_flight);
        if let Some(span) = span {
            // A stream the client left early is still the status it began with.
            span.end(labels.code, || span_attributes(&labels));
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
            std::time::SystemTime::now(),
        );
        let total = tokens
            .prompt_tokens
            .saturating_add(tokens.completion_tokens);
        if total > 0 {
            inner
                .limiter
                .charge(&caller.credential, &caller.tenant, total, outcome.at);
            inner
                .tokens
                .charge(&caller.tenant, total, chrono::Utc::now());
        }
        let seconds = outcome.at.saturating_duration_since(started).as_secs_f64();
        inner.metrics.answered_by(&metrics, labels.code, seconds);
    })
}

/// The caller, or why not.
async fn authenticate(inner: &Inner, req: &RequestHead, now: Instant) -> Result<Caller, Refused> {
    let token = req
        .header(Known::Authorization)
        .and_then(autoglm_auth::bearer_token)
        .ok_or_else(|| {
            Refused::new(
                GatewayCode::MissingApiKey,
                "send an API key as Authorization: Bearer <key>",
            )
        })?;
    let caller = inner.auth.resolve(token, now).await.map_err(|r| {
        if r.status == 401 {
            Refused::new(GatewayCode::InvalidApiKey, r.message)
        } else {
            Refused::new(GatewayCode::Internal, r.message)
        }
    })?;
    if !caller.may_invoke {
        return Err(Refused::new(
            GatewayCode::PermissionDenied,
            "this credential lacks the services:invoke permission",
        ));
    }
    Ok(caller)
}

/// Reads what the request is after: the service (and a pinned version) from
/// the path or the body, and the body, rewritten where the gateway must.
async fn target(
    inner: &Inner,
    req: &RequestHead,
    body: &mut impl Incoming,
) -> Result<Target, Refused> {
    let path = req.path();
    let openai = matches!(
        path,
        "/v1/chat/completions" | "/v1/completions" | "/v1/embeddings"
    );
    let oip = path.strip_prefix("/v2/models/");
    if !openai && oip.is_none() {
        return Err(Refused::new(
            GatewayCode::NotFound,
            format!("no route for {} {path}", req.method()),
        ));
    }
    if openai && req.method() != "POST" {
        return Err(Refused::new(
            GatewayCode::MethodNotAllowed,
            format!("{path} takes POST"),
        ));
    }
    let body = read_body(inner, body).await?;
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
            head: None,
        });
    }
    let peek: Peek = serde_json::from_slice(&body).map_err(|e| {
        Refused::new(
            GatewayCode::InvalidJson,
            format!("the body is not a valid request: {e}"),
        )
    })?;
    let model = peek
        .model
        .filter(|m| !m.is_empty())
        .ok_or_else(|| Refused::new(GatewayCode::MissingModel, "the body must name a model"))?;
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
                GatewayCode::InvalidJson,
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
        head: None,
    })
}

/// The request body, bounded in size and in time.
async fn read_body(inner: &Inner, body: &mut impl Incoming) -> Result<Bytes, Refused> {
    let limit = inner.config.load().body_limit;
    body.read(limit, inner.config.load().body_timeout)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => Refused::new(
                GatewayCode::BodyTooLarge,
                format!("the body is larger than the gateway's limit of {limit} bytes"),
            ),
            BodyError::Timeout => Refused::new(
                GatewayCode::BodyTimeout,
                format!(
                    "the body did not arrive within {} s",
                    inner.config.load().body_timeout.as_secs()
                ),
            ),
            BodyError::Unreadable(why) => Refused::new(
                GatewayCode::BodyUnreadable,
                format!("the body could not be read: {why}"),
            ),
        })
}

/// Waits, when the version at `index` has no ready replica, until one is
/// ready (the reconciler is told through the demand it sees), within the hold
/// timeout and the bound on waiting requests.
async fn hold(
    inner: &Inner,
    caller: &Caller,
    service_name: &str,
    service: Arc<ServiceRoute>,
    index: usize,
) -> Result<Arc<ServiceRoute>, Refused> {
    let chosen = &service.versions[index];
    if !chosen.endpoints.is_empty() {
        return Ok(service);
    }
    let version = chosen.version.as_str();
    let ready = |s: &ServiceRoute| {
        s.versions
            .iter()
            .any(|v| v.version == version && !v.endpoints.is_empty())
    };
    let Some(_waiting) = inner
        .demand
        .wait(&chosen.demand, inner.config.load().max_waiting)
    else {
        return Err(Refused::new(
            GatewayCode::TooManyWaiting,
            format!(
                "{} requests already wait for a replica of {service_name} version {version}",
                inner.config.load().max_waiting
            ),
        )
        .retry_after(5));
    };
    let gauge = inner.metrics.waiting(&chosen.metrics.labels);
    gauge.inc();
    let mut table = inner.table.clone();
    let found = tokio::time::timeout(inner.config.load().hold_timeout, async {
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
            GatewayCode::ModelNotFound,
            format!("model {service_name:?} was removed while the request waited"),
        )),
        Err(_) => Err(Refused::new(
            GatewayCode::NoReplicaReady,
            format!(
                "no replica of {service_name} version {version} became ready within {} s",
                inner.config.load().hold_timeout.as_secs()
            ),
        )
        .retry_after(5)),
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
