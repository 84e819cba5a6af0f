//! Policies as code: Rego modules, OPA-compatible, evaluated with `regorus`
//! against a resource about to be written.
//!
//! A policy's rules are read as OPA's ecosystem writes them: a `deny` set
//! (OPA's documentation, conftest) or a `violation` set (Gatekeeper) lists
//! what is wrong, a `warn` set what is doubtful. Each element is a message,
//! or an object with a `msg` (Gatekeeper's `{"msg": …, "details": …}`). The
//! input carries the resource both ways: autoglm's own (`input.resource`,
//! `input.caller`, `input.tenant`, `input.environment`) and Gatekeeper's
//! admission review (`input.review.object`, `input.parameters`), so a
//! ConstraintTemplate's Rego runs as it is (in Rego v0, as Gatekeeper's is).
//!
//! Evaluation is bounded: a policy's source by size and line length, its
//! evaluation by regorus' execution timer. Nothing here does IO; the store
//! keeps the sources, the console decides when to evaluate.

mod compile;
mod decide;
mod explain;
mod input;
mod library;
mod mirror;
mod query;
mod ranges;
mod spec;
mod testing;

pub use compile::{CompiledPolicy, EVALUATION_LIMIT, MAX_REGO_BYTES, PolicyError, compile};
pub use decide::{Decision, Finding, decide};
pub use explain::{Explanation, FiredRule, explain};
pub use input::{Caller, Operation, Review};
pub use library::{LibraryPolicy, library};
pub use mirror::{
    LABEL, NamedPolicy, SYSTEM_NAMESPACE, TENANT_LABEL, TenantPolicies, compile_all,
    config_map_name, parse_all,
};
pub use query::{QueryError, eval_query};
pub use ranges::MAX_RANGE;
pub use spec::{Kind, Mode, PolicySpec, Syntax};
pub use testing::{TestOutcome, TestReport, TestResult, run_tests};
