//! A model service as the store keeps it: what platforms are handed to run
//! and report the status of, without a dependency on the store itself.

use chrono::{DateTime, Utc};

use super::ModelServiceManifest;

/// A service as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredService {
    /// The manifest without status: metadata with the name, the tenant as
    /// namespace, labels, annotations (with
    /// [`RESTARTED_AT_ANNOTATION`](super::RESTARTED_AT_ANNOTATION) once
    /// restarted), generation and creation time; and the spec.
    pub manifest: ModelServiceManifest,
    /// Restarts asked for so far: a platform replaces the replicas when it grows.
    pub restarts: i64,
    /// When the last restart was asked for.
    pub restarted_at: Option<DateTime<Utc>>,
    /// The last change of anything.
    pub updated_at: DateTime<Utc>,
    /// Its rollout's summary, if one ever ran.
    pub rollout: Option<super::RolloutStatus>,
}

impl StoredService {
    /// The service's name.
    pub fn name(&self) -> &str {
        &self.manifest.metadata.name
    }

    /// The current generation.
    pub fn generation(&self) -> i64 {
        self.manifest.metadata.generation.unwrap_or(1)
    }
}
