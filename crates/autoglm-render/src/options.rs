//! What rendering takes besides the ModelService, and why it refuses one:
//! shared by the workload renderer and the pod template it calls.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// What rendering needs besides the ModelService.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    /// The namespace when the manifest names none.
    pub namespace: String,
    /// The autoglm image: the built-in runtime and the model loader.
    pub image: String,
    /// The console the model loader pulls versions from.
    pub console_url: String,
    /// A Secret whose `token` key is an API key allowed to read the registry.
    pub registry_token_secret: String,
    /// The ModelService owning the children; the operator sets it, `autoglm
    /// render` leaves it out.
    pub owner: Option<OwnerReference>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            namespace: "default".to_owned(),
            image: format!("ghcr.io/open-autoglm/autoglm:{}", env!("CARGO_PKG_VERSION")),
            console_url: "http://autoglm-console.autoglm-system.svc:8080".to_owned(),
            registry_token_secret: "autoglm-registry-token".to_owned(),
            owner: None,
        }
    }
}

/// Why a valid ModelService cannot run on Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A `command` runtime names a program on this machine.
    #[error(
        "spec.runtime.command runs a program on the local platform only; on Kubernetes use spec.runtime.image, or builtin"
    )]
    CommandRuntime,
    /// A derived object name would break a Kubernetes limit.
    #[error("{0}")]
    Name(String),
    /// The spec breaks a rule of the console.
    #[error("{0}")]
    Invalid(String),
}
