//! The Kubernetes side of a ModelService, pure and offline: the CRD
//! (`crd`), and the children one ModelService renders to (`render`), which
//! `autoglm render` prints and the operator applies.

mod child;
mod crd;
mod labels;
mod object;
mod options;
mod pod;
mod render;

pub use child::{Child, ChildKind};
pub use crd::{
    GROUP, PLURAL, VERSION, custom_resource_definition, custom_resource_definition_yaml,
};
pub use labels::{CONSOLE_MANAGER, MANAGED_BY, MODEL_SERVICE_LABEL, MODEL_VERSION_LABEL, selector};
pub use object::ModelServiceObject;
pub use options::{RenderError, RenderOptions};
pub use render::{render, to_yaml};
