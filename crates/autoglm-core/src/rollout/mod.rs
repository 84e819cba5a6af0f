//! Progressive delivery: a ModelService's `spec.rollout` (Argo Rollouts'
//! canary steps and AnalysisTemplate metrics), the conditions its metrics
//! judge by, and the pure state machine that the local platform's driver
//! and the operator both run. No IO, no clock: time and measurements come
//! in as events.

pub mod cluster;
pub mod condition;
pub mod machine;
pub mod measure;
pub mod promql;
pub mod spec;

pub use condition::Condition;
pub use machine::{Effect, Event, Measurement, MeasurementPhase, MetricResult, Phase, Rollout};
pub use spec::{
    Analysis, GatewayMetric, GatewayProvider, Metric, Pause, Provider, ReadyMetric, ReadyStep,
    RolloutSpec, Step,
};

#[cfg(test)]
mod tests;
