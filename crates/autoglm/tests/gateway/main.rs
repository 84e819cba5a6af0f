//! The gateway of `autoglm up`, end to end: the real binary, the real local
//! platform, replicas as real processes. Replicas here run a ModelService
//! `command` runtime (tests/fixtures/openai_upstream.py, a small
//! OpenAI-compatible server) so that thousands of requests stay fast and each
//! answer says which version served it; the built-in engine behind the same
//! gateway is exercised with the official `openai` client in `openai.rs`.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
mod env;

mod exposition;
mod filters;
mod http1;
mod limits;
mod prefix;
mod replicas;
mod resilience;
mod routing;
mod traces;
