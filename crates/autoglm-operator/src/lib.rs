//! The operator: a kube-rs controller over ModelServices. Each reconcile
//! renders the service with `autoglm-render`, server-side applies every child
//! under one field manager with the ModelService as owner, deletes children
//! no longer rendered, and writes what the workloads report into the
//! ModelService's status.
//!
//! Nothing changed means nothing written: a child is applied again only when
//! its rendering changed or its live resourceVersion is no longer the one
//! the operator's own last apply returned (someone edited it).

mod object;
mod reconcile;

pub use object::ModelServiceObject;
pub use reconcile::{FIELD_MANAGER, Operator, run};
