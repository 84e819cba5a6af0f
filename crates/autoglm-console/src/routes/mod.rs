//! The route table: every console endpoint with what it needs, in one place.
//!
//! The router, the guard layer, the OpenAPI document and the RBAC test are all
//! built from [`table()`], so a route cannot exist without declaring its access,
//! and the document cannot miss a route.

use std::sync::Arc;

use axum::http::Method;
use axum::routing::MethodRouter;
use schemars::{Schema, SchemaGenerator};

use crate::AppState;
use autoglm_core::rbac::Permission;

mod config;
mod filters;
mod policies;
mod table;

pub use table::table;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials.
    Public,
    /// Any valid credential.
    Authenticated,
    /// A credential whose grant allows this permission.
    Permission(Permission),
    /// An admin of the system tenant.
    SystemAdmin,
}

/// A function adding a type's schema to the document.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// What a route accepts as a body.
#[derive(Debug, Clone, Copy)]
pub enum RequestBody {
    /// No body.
    None,
    /// A JSON document.
    Json(SchemaFn),
    /// `multipart/form-data` upload, or a JSON document.
    UploadOrJson(SchemaFn),
    /// Raw bytes of this media type (a filter's WebAssembly module).
    Binary(&'static str),
}

/// What a route answers on success.
#[derive(Debug, Clone, Copy)]
pub enum ResponseBody {
    /// JSON with this status.
    Json(u16, SchemaFn),
    /// 204 without a body.
    NoContent,
    /// Raw bytes (`application/octet-stream`).
    Bytes,
    /// UTF-8 text (`text/plain`).
    Text,
    /// Server-sent events (`text/event-stream`), each `data` this JSON.
    EventStream(SchemaFn),
}

/// One endpoint.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// Path template, axum syntax (`{name}`, `{*path}`).
    pub path: &'static str,
    /// Operation id, and the audit action of mutating routes.
    pub action: &'static str,
    /// One line for the document.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Whether it is a command that must carry a fresh timestamp and nonce.
    pub command: bool,
    /// Whether a POST may carry an `Idempotency-Key`: not when the answer
    /// holds a secret, which must never be stored for replay.
    pub replayable: bool,
    /// Query parameters and their descriptions.
    pub query: &'static [(&'static str, &'static str)],
    /// Request body.
    pub request: RequestBody,
    /// Success response.
    pub response: ResponseBody,
    /// Largest JSON body, in bytes (uploads have their own caps).
    pub body_limit: usize,
    /// Whether a GET's answer depends on the database alone, so that it may
    /// be kept until the next audited write ([`crate::conditional`]).
    pub cached: bool,
}

impl RouteSpec {
    /// The base of every entry in [`table()`]: `command: false`,
    /// `replayable: true` and no query parameters, which most routes keep.
    ///
    /// The other fields are placeholders that each entry names itself; the
    /// access fails closed (system admins only) should one ever be left out,
    /// and the table refuses an empty path, action or summary.
    const DEFAULT: RouteSpec = RouteSpec {
        method: Method::GET,
        path: "",
        action: "",
        summary: "",
        access: Access::SystemAdmin,
        command: false,
        replayable: true,
        query: &[],
        request: RequestBody::None,
        response: ResponseBody::NoContent,
        body_limit: crate::JSON_LIMIT,
        cached: false,
    };

    /// Whether the route answers a GET with JSON, which gets an entity tag.
    pub fn is_json_read(&self) -> bool {
        self.method == Method::GET && matches!(self.response, ResponseBody::Json(..))
    }

    /// Whether the route changes state (and so is audited).
    pub fn is_mutating(&self) -> bool {
        matches!(
            self.method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        )
    }
}

/// A route with its handler.
#[derive(Debug)]
pub struct Route {
    /// What it is.
    pub spec: Arc<RouteSpec>,
    /// What serves it.
    pub handler: MethodRouter<AppState>,
}
