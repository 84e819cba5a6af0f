//! The routes of policies as code (`/api/v1/policies/...`), added to the table.

use axum::http::Method;
use axum::routing::{delete, get, post, put};
use serde_json::Value;

use super::table::{Builder, route, schema};
use super::{Access, RequestBody, ResponseBody, RouteSpec};
use crate::api::policies;
use autoglm_core::rbac::Permission;
use autoglm_policy::PolicySpec;

/// A policy carries up to 64 KiB of Rego, which JSON escaping can grow.
const POLICY_LIMIT: usize = 512 * 1024;

/// Adds every policy route.
pub(super) fn add(b: &mut Builder) {
    use Access::Permission as P;
    use Permission::{PoliciesRead, PoliciesWrite};
    use RequestBody::{Json as In, None as NoBody};
    use ResponseBody::{Json as Out, NoContent};

    let route = |method, path, action, summary, access, request, response| RouteSpec {
        body_limit: POLICY_LIMIT,
        ..route(method, path, action, summary, access, request, response)
    };

    b.add(
        route(
            Method::GET,
            "/api/v1/policies",
            "policies.list",
            "List the tenant's policies (Rego), the current version of each",
            P(PoliciesRead),
            NoBody,
            Out(200, schema::<Value>),
        ),
        get(policies::list),
    );
    b.add(
        route(
            Method::GET,
            "/api/v1/policies/library",
            "policies.library",
            "List the default policies, each to add as one of the tenant's own",
            P(PoliciesRead),
            NoBody,
            Out(200, schema::<Value>),
        ),
        get(policies::list_library),
    );
    b.add(
        route(Method::POST, "/api/v1/policies/evaluate", "policies.evaluate",
            "Judge a ModelService by the tenant's policies (or a draft policy) without writing it: the decision, and per policy which rules fired on which input paths",
            P(PoliciesRead), In(schema::<Value>), Out(200, schema::<Value>)),
        post(policies::evaluate),
    );
    b.add(
        route(
            Method::GET,
            "/api/v1/policies/{name}",
            "policies.get",
            "Read a policy's current version",
            P(PoliciesRead),
            NoBody,
            Out(200, schema::<Value>),
        ),
        get(policies::get_one),
    );
    b.add(
        route(Method::PUT, "/api/v1/policies/{name}", "policies.put",
            "Add a policy or a new version of it (compiled first: a syntax error is refused with its line and column); 201 for the first version",
            P(PoliciesWrite), In(schema::<PolicySpec>), Out(200, schema::<Value>)),
        put(policies::put),
    );
    b.add(
        route(
            Method::DELETE,
            "/api/v1/policies/{name}",
            "policies.delete",
            "Delete a policy (its history stays)",
            P(PoliciesWrite),
            NoBody,
            NoContent,
        ),
        delete(policies::delete),
    );
    let global = |method, path, action, summary, request, response| {
        route(
            method,
            path,
            action,
            summary,
            Access::SystemAdmin,
            request,
            response,
        )
    };
    b.add(
        global(
            Method::GET,
            "/api/v1/global-policies",
            "global_policies.list",
            "List the global policies, which judge every tenant's writes beside its own",
            NoBody,
            Out(200, schema::<Value>),
        ),
        get(policies::list_global),
    );
    b.add(
        global(
            Method::GET,
            "/api/v1/global-policies/{name}",
            "global_policies.get",
            "Read a global policy's current version",
            NoBody,
            Out(200, schema::<Value>),
        ),
        get(policies::get_one),
    );
    b.add(
        global(
            Method::PUT,
            "/api/v1/global-policies/{name}",
            "global_policies.put",
            "Add a global policy or a new version of it; it judges every tenant",
            In(schema::<PolicySpec>),
            Out(200, schema::<Value>),
        ),
        put(policies::put),
    );
    b.add(
        global(
            Method::DELETE,
            "/api/v1/global-policies/{name}",
            "global_policies.delete",
            "Delete a global policy (its history stays)",
            NoBody,
            NoContent,
        ),
        delete(policies::delete),
    );
    b.add(
        global(
            Method::GET,
            "/api/v1/global-policies/{name}/versions",
            "global_policies.versions",
            "List every version of a global policy, newest first",
            NoBody,
            Out(200, schema::<Value>),
        ),
        get(policies::history),
    );
    b.add(
        route(
            Method::GET,
            "/api/v1/policies/{name}/versions",
            "policies.versions",
            "List every version of a policy, newest first, deletions included",
            P(PoliciesRead),
            NoBody,
            Out(200, schema::<Value>),
        ),
        get(policies::history),
    );
}
