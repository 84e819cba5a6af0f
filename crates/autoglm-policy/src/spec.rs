//! A policy as the API takes it: its Rego, how its findings count, and what
//! it applies to.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a policy's findings do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `deny` and `violation` refuse the write (Gatekeeper's `deny`).
    #[default]
    Enforce,
    /// Every finding is a warning: the write goes through.
    Warn,
    /// Findings are only recorded in the audit (Gatekeeper's `dryrun`).
    #[serde(rename = "dryrun")]
    DryRun,
}

impl Mode {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::DryRun => "dryrun",
        }
    }
}

/// Which Rego the source is written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Syntax {
    /// Rego v1 (OPA 1.x's default: `if`, `contains`).
    #[default]
    V1,
    /// Rego v0, as Gatekeeper's ConstraintTemplates are written.
    V0,
}

/// The resources a policy is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Kind {
    /// A model service: every create and update.
    ModelService,
    /// A model of the registry: every create and update of its metadata.
    Model,
    /// A model version: its registration, and every change of its stage.
    ModelVersion,
    /// A config key: every version published (by the API, a rollback, an
    /// approved change request or promotion, or a Nacos client).
    Config,
}

impl Kind {
    /// Its name on the wire and in `input.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ModelService => "ModelService",
            Kind::Model => "Model",
            Kind::ModelVersion => "ModelVersion",
            Kind::Config => "Config",
        }
    }
}

fn model_service_only() -> Vec<Kind> {
    vec![Kind::ModelService]
}

/// The body of `PUT /api/v1/policies/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    /// The Rego module.
    pub rego: String,
    /// What its findings do; `enforce` when absent.
    #[serde(default)]
    pub mode: Mode,
    /// `v1` (default) or `v0`.
    #[serde(default)]
    pub syntax: Syntax,
    /// `input.parameters` of every evaluation (a Gatekeeper constraint's
    /// parameters); an object, `{}` when absent.
    #[serde(default = "empty_object")]
    pub parameters: Value,
    /// What it is asked about; `[ModelService]` when absent.
    #[serde(default = "model_service_only")]
    pub kinds: Vec<Kind>,
    /// What it is for, for people.
    #[serde(default)]
    pub description: String,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl PolicySpec {
    /// Whether it is asked about `kind`.
    pub fn applies_to(&self, kind: Kind) -> bool {
        self.kinds.contains(&kind)
    }
}
