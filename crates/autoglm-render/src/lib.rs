//! The Kubernetes side of a ModelService, pure and offline: the CRD
//! (`crd`), and the children one ModelService renders to (`render`), which
//! `autoglm render` prints and the operator applies.

mod crd;
mod labels;
mod object;
mod pod;
mod render;

pub use crd::{
    GROUP, PLURAL, VERSION, custom_resource_definition, custom_resource_definition_yaml,
};
pub use labels::{MANAGED_BY, MODEL_SERVICE_LABEL, MODEL_VERSION_LABEL, selector};
pub use object::ModelServiceObject;
pub use render::{RenderError, RenderOptions, render, to_yaml};
