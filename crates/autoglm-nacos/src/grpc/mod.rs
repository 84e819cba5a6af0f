//! Nacos' gRPC API, the subset current clients use for configuration:
//! server check, connection setup and health check, config query, publish
//! and remove, batch listen, and change notifications pushed on the
//! bi-directional stream. Connections are keyed by the peer's address, as
//! Nacos keys them: the unary calls and the stream share one HTTP/2
//! connection, and the client sends requests before its setup arrives.

pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use autoglm_config::{Listener, Topic};
use autoglm_console::AppState;
use autoglm_core::config::WatchedKey;
use autoglm_core::rbac::Permission;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tonic::Status;

use crate::ops::{self, Change, Failure, NacosKey};
use wire::Payload;

/// A key a connection listens to.
#[derive(Debug, Clone)]
struct Listen {
    /// The autoglm tenant of the caller that listens.
    tenant: String,
    /// The key as the config center has it.
    watched: WatchedKey,
    /// The names as the client sent them, echoed back in pushes.
    data_id: String,
    group: String,
    namespace: String,
}

/// A listened key: tenant, environment, group, key.
type ListenId = (String, String, String, String);

/// One client connection: what it listens to, and its hub listener, woken
/// only by commits of those keys.
#[derive(Debug)]
struct Connection {
    listening: Mutex<HashMap<ListenId, Listen>>,
    listener: Listener,
}

/// The gRPC server's state.
#[derive(Debug)]
pub struct Grpc {
    state: AppState,
    connections: Mutex<HashMap<SocketAddr, Arc<Connection>>>,
    pushes: AtomicU64,
    started: u128,
}

impl Grpc {
    fn connection(&self, peer: SocketAddr) -> Arc<Connection> {
        self.connections
            .lock()
            .entry(peer)
            .or_insert_with(|| {
                Arc::new(Connection {
                    listening: Mutex::default(),
                    listener: self.state.config.listener(),
                })
            })
            .clone()
    }
}

/// The router serving both gRPC methods.
pub fn router(state: AppState) -> Router {
    let grpc = Arc::new(Grpc {
        state,
        connections: Mutex::default(),
        pushes: AtomicU64::new(0),
        started: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
    });
    Router::new()
        .route("/Request/request", post(unary))
        .route("/BiRequestStream/requestBiStream", post(bi_stream))
        .with_state(grpc)
}

async fn unary(
    State(grpc): State<Arc<Grpc>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let service = tower::service_fn(move |request: tonic::Request<Payload>| {
        let grpc = grpc.clone();
        async move {
            let answer = handle(&grpc, peer, request.into_inner()).await;
            Ok::<_, Status>(tonic::Response::new(answer))
        }
    });
    let mut codec =
        tonic::server::Grpc::new(tonic_prost::ProstCodec::<Payload, Payload>::default());
    codec.unary(service, req).await.into_response()
}

async fn bi_stream(
    State(grpc): State<Arc<Grpc>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let service = tower::service_fn(move |request: tonic::Request<tonic::Streaming<Payload>>| {
        let grpc = grpc.clone();
        async move {
            let (push, mut pushed) = mpsc::channel::<Payload>(64);
            let connection = grpc.connection(peer);
            let mut inbound = request.into_inner();
            // What the client sends on the stream: its setup, acks of our
            // pushes, answers to detection. None needs an answer; the
            // stream ending is the connection ending.
            {
                let grpc = grpc.clone();
                tokio::spawn(async move {
                    while let Some(Ok(message)) = inbound.next().await {
                        tracing::debug!(kind = message.kind(), %peer, "nacos stream message");
                    }
                    grpc.connections.lock().remove(&peer);
                });
            }
            // It ends when the client goes: its receiver, in the stream, is dropped.
            tokio::spawn(notify_changes(grpc.clone(), connection, push));
            let stream = futures_util::stream::poll_fn(move |cx| {
                pushed.poll_recv(cx).map(|p| p.map(Ok::<_, Status>))
            });
            Ok::<_, Status>(tonic::Response::new(stream))
        }
    });
    let mut codec =
        tonic::server::Grpc::new(tonic_prost::ProstCodec::<Payload, Payload>::default());
    codec.streaming(service, req).await.into_response()
}

/// Pushes `ConfigChangeNotifyRequest` for each listened key whose md5 moves
/// away from the one the client last held, for as long as the stream is open.
async fn notify_changes(grpc: Arc<Grpc>, connection: Arc<Connection>, push: mpsc::Sender<Payload>) {
    let hub = grpc.state.config.clone();
    loop {
        tokio::select! {
            () = connection.listener.changed() => {}
            () = push.closed() => return,
        }
        let due: Vec<Listen> = {
            let mut listening = connection.listening.lock();
            listening
                .values_mut()
                .filter_map(|l| {
                    let now = hub
                        .current(
                            &l.tenant,
                            &l.watched.environment,
                            &l.watched.group,
                            &l.watched.key,
                        )
                        .filter(|c| !c.deleted)
                        .map(|c| c.md5)
                        .unwrap_or_default();
                    (now != l.watched.md5).then(|| {
                        l.watched.md5 = now;
                        l.clone()
                    })
                })
                .collect()
        };
        for l in due {
            let id = grpc.pushes.fetch_add(1, Ordering::Relaxed) + 1;
            let body = json!({
                "headers": {}, "requestId": id.to_string(), "module": "config",
                "dataId": l.data_id, "group": l.group, "tenant": l.namespace,
            });
            if push
                .send(Payload::of("ConfigChangeNotifyRequest", &body))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// A response of class `kind`: success, or the failure in Nacos' codes.
fn response(kind: &str, request_id: &str, result: Result<Value, Failure>) -> Payload {
    let mut body = match result {
        Ok(fields) => {
            let mut body =
                json!({"resultCode": 200, "errorCode": 0, "message": "", "success": true});
            if let (Some(body), Some(fields)) = (body.as_object_mut(), fields.as_object()) {
                body.extend(fields.clone());
            }
            body
        }
        Err(f) => {
            let code = match &f {
                Failure::NotFound => 300,
                Failure::Invalid(_) | Failure::Conflict(_) => 400,
                Failure::Denied(_) => 403,
                Failure::Internal(_) => 500,
            };
            json!({"resultCode": 500, "errorCode": code, "message": f.message(), "success": false})
        }
    };
    body["requestId"] = json!(request_id);
    Payload::of(kind, &body)
}

fn text(body: &Value, field: &str) -> Option<String> {
    body[field].as_str().map(str::to_owned)
}

async fn handle(grpc: &Grpc, peer: SocketAddr, request: Payload) -> Payload {
    let body = request.json();
    let request_id = text(&body, "requestId").unwrap_or_default();
    let state = &grpc.state;
    match request.kind() {
        "ServerCheckRequest" => {
            let id = format!("{}_{}_{}", grpc.started, peer.ip(), peer.port());
            // No ability negotiation: a client told `true` waits for a setup ack.
            response(
                "ServerCheckResponse",
                &request_id,
                Ok(json!({"connectionId": id, "supportAbilityNegotiation": false})),
            )
        }
        "HealthCheckRequest" => response("HealthCheckResponse", &request_id, Ok(json!({}))),
        "ConfigQueryRequest" => {
            let result = async {
                let who = ops::authenticate(state, request.header("accessToken")).await?;
                let key = NacosKey::new(
                    text(&body, "tenant"),
                    text(&body, "group"),
                    text(&body, "dataId"),
                )?;
                let v = ops::query(state, &who, &key)
                    .await?
                    .ok_or(Failure::NotFound)?;
                Ok(json!({
                    "content": v.content, "md5": v.md5, "contentType": v.format.as_str(),
                    "lastModified": v.created_at.timestamp_millis(), "encryptedDataKey": "",
                }))
            }
            .await;
            response("ConfigQueryResponse", &request_id, result)
        }
        kind @ ("ConfigPublishRequest" | "ConfigRemoveRequest") => {
            let publish = kind == "ConfigPublishRequest";
            let result = async {
                let who = ops::authenticate(state, request.header("accessToken")).await?;
                let key = NacosKey::new(
                    text(&body, "tenant"),
                    text(&body, "group"),
                    text(&body, "dataId"),
                )?;
                let change = if publish {
                    let kind = text(&body["additionMap"], "type").filter(|t| !t.is_empty());
                    Change::Publish {
                        content: text(&body, "content").unwrap_or_default(),
                        kind,
                        cas_md5: text(&body, "casMd5"),
                    }
                } else {
                    Change::Remove
                };
                ops::write(state, &who, &key, change, &request_id).await?;
                Ok(json!({}))
            }
            .await;
            let answer = if publish {
                "ConfigPublishResponse"
            } else {
                "ConfigRemoveResponse"
            };
            response(answer, &request_id, result)
        }
        "ConfigBatchListenRequest" => {
            let result = listen(grpc, peer, &request, &body).await;
            response("ConfigChangeBatchListenResponse", &request_id, result)
        }
        other => {
            tracing::debug!(kind = other, "nacos request type not served");
            let body = json!({"resultCode": 500, "errorCode": 302, "message": "RequestHandler Not Found", "requestId": request_id, "success": false});
            Payload::of("ErrorResponse", &body)
        }
    }
}

/// Registers (or drops) the connection's listens and names the keys whose
/// md5 already differs from the one the client holds.
async fn listen(
    grpc: &Grpc,
    peer: SocketAddr,
    request: &Payload,
    body: &Value,
) -> Result<Value, Failure> {
    let state = &grpc.state;
    let who = ops::authenticate(state, request.header("accessToken")).await?;
    who.require(Permission::ConfigRead)
        .map_err(|e| Failure::Denied(e.to_string()))?;
    let listen = body["listen"].as_bool().unwrap_or(true);
    let contexts = body["configListenContexts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let connection = grpc.connection(peer);
    let mut environments: HashMap<String, String> = HashMap::new();
    let mut changed = Vec::new();
    for context in &contexts {
        let namespace = text(context, "tenant").unwrap_or_default();
        let key = NacosKey::new(
            Some(namespace.clone()),
            text(context, "group"),
            text(context, "dataId"),
        )?;
        let md5 = text(context, "md5").unwrap_or_default();
        autoglm_core::config::check_md5(&md5).map_err(Failure::Invalid)?;
        let env = match environments.get(&namespace) {
            Some(env) => env.clone(),
            None => {
                let env = ops::environment_of(state, &who, &namespace).await?;
                environments.insert(namespace.clone(), env.clone());
                env
            }
        };
        let id = (
            who.grant.tenant.clone(),
            env.clone(),
            key.group.clone(),
            key.data_id.clone(),
        );
        let topic = Topic::key(&id.0, &id.1, &id.2, &id.3);
        if !listen {
            connection.listening.lock().remove(&id);
            connection.listener.forget(&topic);
            continue;
        }
        let watched = WatchedKey {
            environment: env,
            group: key.group.clone(),
            key: key.data_id.clone(),
            md5: md5.to_ascii_lowercase(),
        };
        // Registered before comparing: a change in between is pushed.
        connection.listener.listen(topic);
        connection.listening.lock().insert(
            id,
            Listen {
                tenant: who.grant.tenant.clone(),
                watched: watched.clone(),
                data_id: text(context, "dataId").unwrap_or_default(),
                group: text(context, "group").unwrap_or_default(),
                namespace: namespace.clone(),
            },
        );
        if !state
            .config
            .differing(&who.grant.tenant, &[watched])
            .is_empty()
        {
            changed.push(json!({"group": text(context, "group").unwrap_or_default(), "dataId": text(context, "dataId").unwrap_or_default(), "tenant": namespace}));
        }
    }
    Ok(json!({"changedConfigs": changed}))
}
