//! The cluster driver. The console on Kubernetes writes each stored service
//! as a `ModelService` into the namespace named after its tenant and reads
//! the operator's status back (`platform.rs`), so its API answers the same on
//! both platforms; the gateway routes to each version's ready endpoints as
//! the EndpointSlices of that version's Service list them (`views.rs`), so
//! traffic weights hold per version. Each config environment is kept as a
//! ConfigMap in the tenant's namespace (`config_maps.rs`), and each tenant's
//! namespace holds its policies for the operator's admission webhook
//! (`tenants.rs`).

pub mod config_maps;
mod platform;
pub mod tenants;
mod views;

pub use platform::{FIELD_MANAGER, KubernetesPlatform, StartError};
pub use views::{build_views, watch_views};
