//! The name of one routed service version, as the metrics label it and the
//! traffic history keys it.

use prometheus_client::encoding::EncodeLabelSet;

/// Labels of one service version.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    /// Tenant.
    pub tenant: String,
    /// Service.
    pub model: String,
    /// Version.
    pub version: String,
}
