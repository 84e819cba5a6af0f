//! The routes of gateway filters (`/api/v1/filters/...`), added to the table.

use autoglm_core::filter::{Attach, Detach, Filter, FilterCounter, FilterRef};
use axum::http::Method;
use axum::routing::{get, post, put};
use serde_json::Value;

use super::table::{Builder, route, schema};
use super::{Access, RequestBody, ResponseBody, RouteSpec};
use crate::api::filters;
use autoglm_core::rbac::Permission;

/// Adds every filter route. A filter is part of how a tenant's services
/// are served, so it takes the services' permissions: those who deploy a
/// service may filter its traffic.
pub(super) fn add(b: &mut Builder) {
    use Access::Permission as P;
    use Permission::{ServicesRead, ServicesWrite};
    use RequestBody::{Binary, Json as In, None as NoBody};
    use ResponseBody::{Bytes, Json as Out, NoContent};

    b.add(
        route(Method::GET, "/api/v1/filters", "filters.list",
            "List the tenant's gateway filters (proxy-wasm modules), each with where it is attached",
            P(ServicesRead), NoBody, Out(200, schema::<Vec<Filter>>)),
        get(filters::list),
    );
    b.add(
        route(Method::GET, "/api/v1/filters/chain", "filters.get_chain",
            "The tenant's filter chain: the filters every request of the tenant runs, in order, before its service's own",
            P(ServicesRead), NoBody, Out(200, schema::<Vec<FilterRef>>)),
        get(filters::get_chain),
    );
    b.add(
        route(Method::PUT, "/api/v1/filters/chain", "filters.set_chain",
            "Replace the tenant's filter chain (reorder, reconfigure); each filter must be uploaded and accept its configuration",
            P(ServicesWrite), In(schema::<Vec<FilterRef>>), Out(200, schema::<Vec<FilterRef>>)),
        put(filters::put_chain),
    );
    b.add(
        route(Method::GET, "/api/v1/filters/counters", "filters.counters",
            "Each attached filter's counters (requests, its own answers, failures by reason) from the gateway in this process",
            P(ServicesRead), NoBody, Out(200, schema::<Vec<FilterCounter>>)),
        get(filters::counters),
    );
    b.add(
        RouteSpec {
            body_limit: autoglm_filters::MAX_MODULE_BYTES,
            ..route(Method::PUT, "/api/v1/filters/{name}", "filters.put",
                "Upload a filter's WebAssembly module (application/wasm): checked to be a proxy-wasm filter, compiled, and swapped into the gateway without dropping a request",
                P(ServicesWrite), Binary("application/wasm"), Out(200, schema::<Filter>))
        },
        put(filters::put),
    );
    b.add(
        route(
            Method::GET,
            "/api/v1/filters/{name}",
            "filters.get",
            "Get a filter: its digest, size, ABI and where it is attached",
            P(ServicesRead),
            NoBody,
            Out(200, schema::<Filter>),
        ),
        get(filters::get_one),
    );
    b.add(
        route(
            Method::DELETE,
            "/api/v1/filters/{name}",
            "filters.delete",
            "Delete a filter; refused while it is attached",
            P(ServicesWrite),
            NoBody,
            NoContent,
        ),
        axum::routing::delete(filters::delete_one),
    );
    b.add(
        route(
            Method::GET,
            "/api/v1/filters/{name}/module",
            "filters.module",
            "Download a filter's module",
            P(ServicesRead),
            NoBody,
            Bytes,
        ),
        get(filters::module),
    );
    b.add(
        route(Method::POST, "/api/v1/filters/{name}/attach", "filters.attach",
            "Attach a filter, with its configuration and fail mode, to the tenant's chain (200, the chain) or to a service (202, the task that changes its spec.filters; 200 with the service when nothing changed); at a position, attaching again replaces or moves it",
            P(ServicesWrite), In(schema::<Attach>), Out(200, schema::<Value>)),
        post(filters::attach),
    );
    b.add(
        route(
            Method::POST,
            "/api/v1/filters/{name}/detach",
            "filters.detach",
            "Detach a filter from the tenant's chain (200, the chain) or from a service (202, the task)",
            P(ServicesWrite),
            In(schema::<Detach>),
            Out(200, schema::<Value>),
        ),
        post(filters::detach),
    );
}
