//! The rules of a ModelService spec. Every problem is collected, each with the
//! path of its field, so one round trip shows the user all of them.

use std::collections::HashMap;
use std::time::Duration;

use super::{ModelService, ModelServiceSpec, parse_duration, parse_quantity, runtime};
use crate::error::Problem;
use crate::names;

/// Most replicas per version: beyond this a typo is likelier than a need.
pub const MAX_REPLICAS: u32 = 100;
/// Most versions in one split: each one runs its own replicas.
pub const MAX_VERSIONS: usize = 16;

pub use crate::error::FieldError;

/// The `invalid_body` problem listing every field error.
pub fn to_problem(errors: &[FieldError]) -> Problem {
    Problem::invalid_fields(errors.to_vec())
}

pub(super) fn finish(errors: Vec<FieldError>) -> Result<(), Vec<FieldError>> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

impl ModelService {
    /// Checks the name and the spec.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Err(e) = names::validate("service", &self.name) {
            errors.push(FieldError::new("name", e.to_string()));
        }
        self.spec.check(&mut errors);
        finish(errors)
    }
}

/// Why a service cannot be scaled to a fixed count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScaleError {
    /// The service is autoscaled: its range decides, not a count.
    #[error(
        "the service is autoscaled ({min} to {max} replicas); change spec.autoscaling, or replace it with spec.replicas"
    )]
    Autoscaled {
        /// `minReplicas`.
        min: u32,
        /// `maxReplicas`.
        max: u32,
    },
    /// More than [`MAX_REPLICAS`].
    #[error("replicas {0} is above the limit of {MAX_REPLICAS}")]
    TooMany(u32),
}

impl ModelServiceSpec {
    /// The spec with `replicas` fixed, as `scale` sets it.
    pub fn scaled(&self, replicas: u32) -> Result<ModelServiceSpec, ScaleError> {
        if let Some(a) = &self.autoscaling {
            return Err(ScaleError::Autoscaled {
                min: a.min_replicas,
                max: a.max_replicas,
            });
        }
        if replicas > MAX_REPLICAS {
            return Err(ScaleError::TooMany(replicas));
        }
        Ok(ModelServiceSpec {
            replicas: Some(replicas),
            ..self.clone()
        })
    }

    /// Checks every rule; paths start with `spec.`.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        self.check(&mut errors);
        finish(errors)
    }

    pub(super) fn check(&self, errors: &mut Vec<FieldError>) {
        if let Err(e) = names::validate("model", &self.model) {
            errors.push(FieldError::new("spec.model", e.to_string()));
        }
        self.check_versions(errors);
        if let Some(rollout) = &self.rollout
            && let Err(refused) = rollout.ready()
        {
            errors.extend(refused);
        }
        runtime::check(&self.runtime, errors);
        self.check_scaling(errors);
        self.check_resources(errors);
        self.check_env(errors);
        if let Some(config_ref) = &self.config_ref {
            config_ref.check(errors);
        }
        self.check_cluster(errors);
        self.check_balancing(errors);
        crate::filter::check_chain(&self.filters, "spec.filters", errors);
    }

    fn check_versions(&self, errors: &mut Vec<FieldError>) {
        if self.versions.is_empty() {
            errors.push(FieldError::new(
                "spec.versions",
                "at least one version is required",
            ));
            return;
        }
        if self.versions.len() > MAX_VERSIONS {
            errors.push(FieldError::new(
                "spec.versions",
                format!(
                    "{} versions; the limit is {MAX_VERSIONS}",
                    self.versions.len()
                ),
            ));
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, v) in self.versions.iter().enumerate() {
            // Versions end up in labels and object names, hence DNS-1123.
            if let Err(e) = names::validate("version", &v.version) {
                errors.push(FieldError::new(
                    format!("spec.versions[{i}].version"),
                    e.to_string(),
                ));
            } else if let Some(first) = seen.insert(&v.version, i) {
                errors.push(FieldError::new(
                    format!("spec.versions[{i}].version"),
                    format!(
                        "version {:?} is listed twice (first at spec.versions[{first}])",
                        v.version
                    ),
                ));
            }
            if v.weight > 100 {
                errors.push(FieldError::new(
                    format!("spec.versions[{i}].weight"),
                    format!("weight {} is above 100", v.weight),
                ));
            }
        }
        let sum: u64 = self.versions.iter().map(|v| u64::from(v.weight)).sum();
        if sum == 0 {
            errors.push(FieldError::new(
                "spec.versions",
                "every weight is 0; at least one version must take traffic (weight 0 only keeps a version warm)",
            ));
        } else if sum != 100 {
            errors.push(FieldError::new(
                "spec.versions",
                format!("weights sum to {sum}; they must sum to exactly 100"),
            ));
        }
    }

    fn check_scaling(&self, errors: &mut Vec<FieldError>) {
        if self.replicas.is_some() && self.autoscaling.is_some() {
            errors.push(FieldError::new(
                "spec.replicas",
                "replicas and autoscaling are mutually exclusive: set replicas for a fixed count or autoscaling for a range",
            ));
        }
        if let Some(n) = self.replicas
            && n > MAX_REPLICAS
        {
            errors.push(FieldError::new(
                "spec.replicas",
                format!("replicas {n} is above the limit of {MAX_REPLICAS}"),
            ));
        }
        let Some(a) = &self.autoscaling else {
            return;
        };
        if a.max_replicas == 0 {
            errors.push(FieldError::new(
                "spec.autoscaling.maxReplicas",
                "maxReplicas must be at least 1",
            ));
        } else if a.max_replicas > MAX_REPLICAS {
            errors.push(FieldError::new(
                "spec.autoscaling.maxReplicas",
                format!(
                    "maxReplicas {} is above the limit of {MAX_REPLICAS}",
                    a.max_replicas
                ),
            ));
        }
        if a.min_replicas > a.max_replicas {
            errors.push(FieldError::new(
                "spec.autoscaling.minReplicas",
                format!(
                    "minReplicas {} is above maxReplicas {}",
                    a.min_replicas, a.max_replicas
                ),
            ));
        }
        if a.target_in_flight == 0 {
            errors.push(FieldError::new(
                "spec.autoscaling.targetInFlight",
                "targetInFlight must be at least 1",
            ));
        }
        let path = "spec.autoscaling.scaleToZeroAfter";
        match a.scale_to_zero_after.as_deref().map(parse_duration) {
            Some(Err(e)) => errors.push(FieldError::new(path, e.to_string())),
            // Zero would stop a replica between two requests of one client.
            Some(Ok(d)) if d < Duration::from_secs(1) => errors.push(FieldError::new(
                path,
                "scaleToZeroAfter must be at least 1s",
            )),
            _ => {}
        }
        let path = "spec.autoscaling.scaleDownStabilization";
        match a.scale_down_stabilization.as_deref().map(parse_duration) {
            Some(Err(e)) => errors.push(FieldError::new(path, e.to_string())),
            // It is rendered into an HPA, whose window stops at one hour.
            Some(Ok(d)) if d > Duration::from_secs(3600) => errors.push(FieldError::new(
                path,
                "scaleDownStabilization must be at most 1h, as on a Kubernetes HPA",
            )),
            _ => {}
        }
    }

    fn check_resources(&self, errors: &mut Vec<FieldError>) {
        let Some(r) = &self.resources else {
            return;
        };
        if let Some(cpu) = &r.cpu {
            match parse_quantity(cpu) {
                Err(e) => errors.push(FieldError::new(
                    "spec.resources.cpu",
                    format!("cpu {cpu:?} {e}; write cores like \"500m\", \"2\" or \"1.5\""),
                )),
                Ok(v) if v <= 0.0 => errors.push(FieldError::new(
                    "spec.resources.cpu",
                    format!("cpu {cpu:?} must be more than 0"),
                )),
                Ok(_) => {}
            }
        }
        if let Some(memory) = &r.memory {
            match parse_quantity(memory) {
                Err(e) => errors.push(FieldError::new(
                    "spec.resources.memory",
                    format!("memory {memory:?} {e}; write bytes like \"512Mi\" or \"4Gi\""),
                )),
                // Legal for Kubernetes, but "512m" means 0.512 bytes, never what was meant.
                Ok(_) if memory.ends_with('m') => errors.push(FieldError::new(
                    "spec.resources.memory",
                    format!(
                        "memory {memory:?} means millibytes; write \"{}Mi\" for mebibytes",
                        memory.trim_end_matches('m')
                    ),
                )),
                Ok(v) if v < 1.0 => errors.push(FieldError::new(
                    "spec.resources.memory",
                    format!("memory {memory:?} must be at least one byte"),
                )),
                Ok(_) => {}
            }
        }
    }

    fn check_env(&self, errors: &mut Vec<FieldError>) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, var) in self.env.iter().enumerate() {
            let path = format!("spec.env[{i}].name");
            let name = var.name.as_str();
            let identifier = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !identifier {
                errors.push(FieldError::new(
                    path,
                    format!(
                        "env name {name:?} must be a C identifier: letters, digits and '_', not starting with a digit"
                    ),
                ));
            } else if name.starts_with("AUTOGLM_") {
                errors.push(FieldError::new(
                    path,
                    format!(
                        "env name {name:?} is reserved: names starting with AUTOGLM_ are set by the platform"
                    ),
                ));
            } else if let Some(first) = seen.insert(name, i) {
                errors.push(FieldError::new(
                    path,
                    format!("env name {name:?} is set twice (first at spec.env[{first}])"),
                ));
            }
            if var.value.contains('\0') {
                errors.push(FieldError::new(
                    format!("spec.env[{i}].value"),
                    "env value must not contain a NUL byte",
                ));
            }
        }
    }
}
