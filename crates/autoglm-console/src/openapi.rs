//! The OpenAPI 3.1 document, generated from the route table and the wire types.

use autoglm_core::error::{ErrorCode, Problem};
use axum::Json;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::routes::{Access, RequestBody, ResponseBody, table};

/// Builds the document.
pub fn document() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let problem = generator.subschema_for::<Problem>();
    let mut paths = Map::new();
    for route in table() {
        let spec = &route.spec;
        let mut parameters: Vec<Value> = spec
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name.trim_start_matches('*'), "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        parameters.extend(
            spec.query
                .iter()
                .map(|(name, description)| json!({"name": name, "in": "query", "description": description, "schema": {"type": "string"}})),
        );
        if spec.command {
            for (name, description) in [
                (
                    "X-Autoglm-Timestamp",
                    "Unix seconds; within 300 s of the console's clock",
                ),
                (
                    "X-Autoglm-Nonce",
                    "16 to 128 characters of [A-Za-z0-9_-], never reused",
                ),
            ] {
                parameters.push(json!({"name": name, "in": "header", "required": true, "description": description, "schema": {"type": "string"}}));
            }
        }
        if spec.method == axum::http::Method::POST
            && spec.access != Access::Public
            && spec.replayable
        {
            parameters.push(json!({"name": "Idempotency-Key", "in": "header", "description": "Replays the first answer to a retried request instead of applying it twice", "schema": {"type": "string"}}));
        }
        let mut op = Map::new();
        op.insert("operationId".into(), json!(spec.action));
        op.insert("summary".into(), json!(spec.summary));
        op.insert(
            "tags".into(),
            json!([spec.action.split('.').next().unwrap_or("api")]),
        );
        op.insert("parameters".into(), Value::Array(parameters));
        match spec.access {
            Access::Public => {
                op.insert("security".into(), json!([]));
            }
            Access::Authenticated => {}
            Access::Permission(p) => {
                op.insert("x-autoglm-permission".into(), json!(p.as_str()));
                op.insert(
                    "x-autoglm-least-role".into(),
                    json!(p.least_role().as_str()),
                );
            }
            Access::SystemAdmin => {
                op.insert("x-autoglm-permission".into(), json!("system-admin"));
            }
        }
        match spec.request {
            RequestBody::None => {}
            RequestBody::Json(schema) => {
                op.insert("requestBody".into(), json!({"required": true, "content": {"application/json": {"schema": schema(&mut generator)}}}));
            }
            RequestBody::Binary(media) => {
                op.insert(
                    "requestBody".into(),
                    json!({"required": true, "content": {
                        media: {"schema": {"type": "string", "format": "binary"}}
                    }}),
                );
            }
            RequestBody::UploadOrJson(schema) => {
                op.insert("requestBody".into(), json!({"required": true, "content": {
                    "multipart/form-data": {"schema": {"type": "object", "properties": {
                        "metadata": {"type": "string", "description": "JSON VersionSpec; must come before the files"},
                        "artifact": {"type": "array", "items": {"type": "string", "format": "binary"}, "description": "One part per file; the part's filename is the path inside the artifact"}
                    }}},
                    "application/json": {"schema": schema(&mut generator)}
                }}));
            }
        }
        let mut responses = Map::new();
        match spec.response {
            ResponseBody::Json(status, schema) => {
                responses.insert(status.to_string(), json!({"description": "Success", "content": {"application/json": {"schema": schema(&mut generator)}}}));
            }
            ResponseBody::NoContent => {
                responses.insert("204".into(), json!({"description": "Done"}));
            }
            ResponseBody::Text => {
                responses.insert("200".into(), json!({"description": "Text", "content": {"text/plain": {"schema": {"type": "string"}}}}));
            }
            ResponseBody::EventStream(schema) => {
                responses.insert("200".into(), json!({"description": "Server-sent events; each event's data is this JSON", "content": {"text/event-stream": {"schema": schema(&mut generator)}}}));
            }
            ResponseBody::Bytes => {
                responses.insert("200".into(), json!({"description": "The file", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}));
            }
        }
        responses.insert("default".into(), json!({"description": "An error; `code` is stable (see x-autoglm-error-codes)", "content": {"application/problem+json": {"schema": problem}}}));
        op.insert("responses".into(), Value::Object(responses));
        let path = spec.path.replace("{*", "{");
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[spec.method.as_str().to_lowercase()] = Value::Object(op);
    }
    let codes: Vec<Value> = ErrorCode::ALL
        .iter()
        .map(|c| json!({"code": c.as_str(), "status": c.status(), "title": c.title()}))
        .collect();
    json!({
        "openapi": "3.0.3",
        "info": {"title": "autoglm console API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "schemas": generator.take_definitions(true),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API key (agk_...) or a session JWT from /api/v1/auth/login"}}
        },
        "security": [{"bearer": []}],
        "x-autoglm-error-codes": codes
    })
}

/// `GET /api/v1/openapi.json`: built once, on first request.
pub async fn serve() -> Json<Value> {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    Json(DOCUMENT.get_or_init(document).clone())
}
