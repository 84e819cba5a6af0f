//! The operator: a kube-rs controller over ModelServices. Each reconcile
//! renders the service with `autoglm-render`, server-side applies every child
//! under one field manager with the ModelService as owner, deletes children
//! no longer rendered, and writes what the workloads report into the
//! ModelService's status (conditions `Ready`, `Progressing`, `Degraded`).
//! A finalizer deletes the children before the ModelService goes; events
//! record what it did; a Lease elects one leader among replicas. A spec
//! that wants a new version and has `rollout` is rolled out step by step,
//! its analyses measured from Prometheus (`rollout.rs`).
//!
//! Every replica also serves the admission webhook (`webhook.rs`), which
//! judges ModelService writes at the API server by the tenant's policies
//! as the console does (`admission.rs`).
//!
//! Nothing changed means nothing written: children are read from watch
//! caches, and a child is applied again only when its rendering changed or
//! its cached resourceVersion is no longer the one the operator's own last
//! apply returned (someone edited it).

mod admission;
mod breakpoint;
mod children;
mod lease;
mod metrics;
mod reconcile;
mod rollout;
mod status;
mod webhook;

#[cfg(feature = "test-hooks")]
pub use breakpoint::{Breakpoints, Handle, Held, Step};
pub use lease::LeaseConfig;
#[cfg(feature = "test-hooks")]
pub use reconcile::run_with_breakpoints;
pub use reconcile::{FIELD_MANAGER, FINALIZER, RunError, Settings, run};
pub use webhook::{
    CONFIGURATION, Certificate, DEFAULT_TIMEOUT_SECONDS, Endpoint, WebhookError, WebhookSettings,
    serve_webhook,
};
