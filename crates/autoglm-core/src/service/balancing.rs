//! How the gateway spreads a version's requests over its ready replicas:
//! `leastOutstanding` (the default), or `prefixHash`, which keeps a
//! conversation on the replica whose KV cache holds its prefix, as KubeAI's
//! PrefixHash does (consistent hashing with bounded loads).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ModelServiceSpec;
use super::validate::FieldError;

/// `spec.loadBalancing`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancing {
    /// The strategy; `leastOutstanding` when absent.
    #[serde(default)]
    pub strategy: BalancingStrategy,
    /// The `prefixHash` strategy's knobs; KubeAI's defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_hash: Option<PrefixHash>,
}

/// A balancing strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BalancingStrategy {
    /// The replica with the fewest requests outstanding.
    #[default]
    LeastOutstanding,
    /// The replica a hash of the conversation's opening lands on, within a
    /// load bound.
    PrefixHash,
}

impl BalancingStrategy {
    /// The name as the spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            BalancingStrategy::LeastOutstanding => "leastOutstanding",
            BalancingStrategy::PrefixHash => "prefixHash",
        }
    }
}

/// The knobs of `prefixHash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrefixHash {
    /// Leading characters of each message (or of a completion's prompt)
    /// that make the key.
    #[serde(default = "default_prefix_char_length")]
    pub prefix_char_length: u32,
    /// The key covers the messages up to and including this many user
    /// turns: 1 keys a chat by its system prompt and first question, which
    /// every later turn repeats.
    #[serde(default = "default_user_messages")]
    pub user_messages: u32,
    /// A replica takes a key's request while its load stays within this
    /// percentage of the mean (the request counted); past it, the least
    /// loaded replica does.
    #[serde(default = "default_mean_load_factor")]
    pub mean_load_factor: u32,
    /// Points per replica on the hash ring: more spread keys more evenly.
    #[serde(default = "default_replication")]
    pub replication: u32,
}

fn default_prefix_char_length() -> u32 {
    100
}
fn default_user_messages() -> u32 {
    1
}
fn default_mean_load_factor() -> u32 {
    125
}
fn default_replication() -> u32 {
    256
}

impl Default for PrefixHash {
    fn default() -> Self {
        PrefixHash {
            prefix_char_length: default_prefix_char_length(),
            user_messages: default_user_messages(),
            mean_load_factor: default_mean_load_factor(),
            replication: default_replication(),
        }
    }
}

impl LoadBalancing {
    /// The prefix-hash knobs when the strategy is `prefixHash`.
    pub fn prefix_hash(&self) -> Option<PrefixHash> {
        match self.strategy {
            BalancingStrategy::PrefixHash => Some(self.prefix_hash.clone().unwrap_or_default()),
            BalancingStrategy::LeastOutstanding => None,
        }
    }
}

/// Each knob's allowed range: beyond these a typo is likelier than a need.
const RANGES: [(&str, u32, u32); 4] = [
    ("prefixCharLength", 1, 100_000),
    ("userMessages", 1, 64),
    ("meanLoadFactor", 100, 1000),
    ("replication", 1, 1024),
];

impl ModelServiceSpec {
    pub(super) fn check_balancing(&self, errors: &mut Vec<FieldError>) {
        let Some(balancing) = &self.load_balancing else {
            return;
        };
        let Some(knobs) = &balancing.prefix_hash else {
            return;
        };
        if balancing.strategy != BalancingStrategy::PrefixHash {
            errors.push(FieldError::new(
                "spec.loadBalancing.prefixHash",
                format!(
                    "applies only to strategy prefixHash, and the strategy is {}",
                    balancing.strategy.as_str()
                ),
            ));
        }
        let values = [
            knobs.prefix_char_length,
            knobs.user_messages,
            knobs.mean_load_factor,
            knobs.replication,
        ];
        for ((field, min, max), value) in RANGES.into_iter().zip(values) {
            if !(min..=max).contains(&value) {
                errors.push(FieldError::new(
                    format!("spec.loadBalancing.prefixHash.{field}"),
                    format!("must be from {min} to {max}, not {value}"),
                ));
            }
        }
    }
}
