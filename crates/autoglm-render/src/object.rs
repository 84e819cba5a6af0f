//! The ModelService as the operator reads it from the API server: the
//! console's own spec and status types under Kubernetes object metadata.

use std::borrow::Cow;

use crate::{GROUP, PLURAL, VERSION};
use autoglm_core::service::{KIND, ModelServiceSpec, ModelServiceStatus};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A `modelservices.autoglm.io` object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelServiceObject {
    /// Kubernetes metadata.
    pub metadata: ObjectMeta,
    /// What to serve.
    pub spec: ModelServiceSpec,
    /// As last written by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ModelServiceStatus>,
}

impl kube_core::Resource for ModelServiceObject {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        KIND.into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        PLURAL.into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}
