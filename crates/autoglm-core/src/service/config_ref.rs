//! A service's `configRef`: one key of the config center that every replica
//! reads as a file. The platforms deliver the key's live version and roll
//! the replicas, one at a time, whenever it changes (the built-in runtime
//! reads it at start; see [`crate::config::settings::RuntimeSettings`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::FieldError;
use crate::config::{DEFAULT_ENVIRONMENT, DEFAULT_GROUP, check_key_name};
use crate::names;

/// The variable holding the path of the referenced key's content.
pub const CONFIG_FILE_ENV: &str = "AUTOGLM_CONFIG_FILE";

/// The variable holding the md5 of the content a replica started with.
pub const CONFIG_MD5_ENV: &str = "AUTOGLM_CONFIG_MD5";

/// Where pods on Kubernetes find the key: its ConfigMap is mounted here.
pub const CONFIG_MOUNT_DIR: &str = "/etc/autoglm/config";

/// The pod annotation (copied from the ModelService) holding the md5 of the
/// key's live content: a change rolls the pods, as a Helm checksum does.
pub const CONFIG_MD5_ANNOTATION: &str = "autoglm.io/config-md5";

/// A key of the config center that the service's replicas read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigRef {
    /// The environment; the tenant's default (`dev`) when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The group; `DEFAULT_GROUP` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The key.
    pub key: String,
}

impl ConfigRef {
    /// The environment, the default one when left out.
    pub fn environment(&self) -> &str {
        self.environment.as_deref().unwrap_or(DEFAULT_ENVIRONMENT)
    }

    /// The group, `DEFAULT_GROUP` when left out.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(DEFAULT_GROUP)
    }

    /// Whether this refers to `environment`/`group`/`key`.
    pub fn refers_to(&self, environment: &str, group: &str, key: &str) -> bool {
        self.environment() == environment && self.group() == group && self.key == key
    }

    pub(super) fn check(&self, errors: &mut Vec<FieldError>) {
        if let Some(environment) = &self.environment
            && let Err(e) = names::validate("environment", environment)
        {
            errors.push(FieldError::new("spec.configRef.environment", e.to_string()));
        }
        if let Err(e) = check_key_name("group", self.group()) {
            errors.push(FieldError::new("spec.configRef.group", e));
        }
        if let Err(e) = check_key_name("key", &self.key) {
            errors.push(FieldError::new("spec.configRef.key", e));
        }
    }
}
