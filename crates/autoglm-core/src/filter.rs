//! Gateway filters: proxy-wasm modules a tenant uploads, attached in order
//! to the whole tenant (its filter chain) or to one service (its
//! `spec.filters`), each with its configuration and what a request does
//! when the filter fails. A request runs the tenant's chain, then its
//! service's.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::names;

/// Most filters in one chain.
pub const MAX_CHAIN: usize = 16;
/// Largest configuration of one attachment, as JSON text.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// One filter in a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterRef {
    /// The uploaded filter's name.
    pub name: String,
    /// What the filter reads in `proxy_on_configure`: a string is passed
    /// as it is, anything else as its JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_schema")]
    pub config: Option<serde_json::Value>,
    /// What a request does when the filter fails (traps, overruns its
    /// deadline, reaches its memory cap): `closed` refuses it (503),
    /// `open` passes it on without the filter. Default `closed`.
    #[serde(default, skip_serializing_if = "FailMode::is_closed")]
    pub fail_mode: FailMode,
}

/// What a request does when a filter fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FailMode {
    /// The request is refused.
    #[default]
    Closed,
    /// The request passes on without the filter.
    Open,
}

impl FailMode {
    /// Whether this is the default.
    pub fn is_closed(&self) -> bool {
        *self == FailMode::Closed
    }
}

fn any_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Any JSON value; a string is passed as it is.",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

impl FilterRef {
    /// The configuration's bytes as the filter reads them.
    pub fn config_bytes(&self) -> Vec<u8> {
        match &self.config {
            None => Vec::new(),
            Some(serde_json::Value::String(text)) => text.as_bytes().to_vec(),
            Some(other) => other.to_string().into_bytes(),
        }
    }
}

/// Checks a chain: names, no filter twice, sizes. `at` is its path, e.g.
/// `spec.filters`.
pub fn check_chain(chain: &[FilterRef], at: &str, errors: &mut Vec<FieldError>) {
    if chain.len() > MAX_CHAIN {
        errors.push(FieldError::new(
            at,
            format!("at most {MAX_CHAIN} filters, not {}", chain.len()),
        ));
    }
    for (i, filter) in chain.iter().enumerate() {
        if let Err(e) = names::validate("filter", &filter.name) {
            errors.push(FieldError::new(format!("{at}[{i}].name"), e.to_string()));
        }
        if chain[..i].iter().any(|f| f.name == filter.name) {
            errors.push(FieldError::new(
                format!("{at}[{i}].name"),
                format!("filter {} is already in the chain", filter.name),
            ));
        }
        let size = filter.config_bytes().len();
        if size > MAX_CONFIG_BYTES {
            errors.push(FieldError::new(
                format!("{at}[{i}].config"),
                format!("the configuration is {size} bytes, over the limit of {MAX_CONFIG_BYTES}"),
            ));
        }
    }
}

/// An uploaded filter, as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    pub name: String,
    /// The SHA-256 of the module, hex.
    pub digest: String,
    /// The module's size in bytes.
    pub size: u64,
    /// The proxy-wasm ABI it was built for.
    pub abi: String,
    /// Who uploaded the current module.
    pub uploaded_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Where it is attached: `tenant`, or `service/NAME`.
    #[serde(default)]
    pub attached_to: Vec<String>,
}

/// One attached filter's counters, as the gateway in the console's process
/// counted them since it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilterCounter {
    /// `tenant`, or `service/NAME`.
    pub scope: String,
    pub filter: String,
    /// Requests it saw.
    pub requests: u64,
    /// Answers it gave itself instead of the upstream's.
    pub local_responses: u64,
    /// Failures by reason: deadline, memory, trap, refused, paused.
    pub failures: std::collections::BTreeMap<String, u64>,
    /// What its last failure said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// The body of `POST /api/v1/filters/{name}/attach`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attach {
    /// The service to attach it to; the whole tenant when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Its configuration (see [`FilterRef::config`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_schema")]
    pub config: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "FailMode::is_closed")]
    pub fail_mode: FailMode,
    /// Its place in the chain, from 0; the end when left out. Attaching a
    /// filter already in the chain replaces it there (or moves it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
}

/// The body of `POST /api/v1/filters/{name}/detach`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Detach {
    /// The service to detach it from; the tenant's chain when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl Attach {
    /// `chain` with this filter put in: replaced where it was (or moved to
    /// `position`), else inserted at `position` or the end.
    pub fn apply(&self, name: &str, mut chain: Vec<FilterRef>) -> Vec<FilterRef> {
        let entry = FilterRef {
            name: name.to_owned(),
            config: self.config.clone(),
            fail_mode: self.fail_mode,
        };
        let was = chain.iter().position(|f| f.name == name);
        if let Some(at) = was {
            chain.remove(at);
        }
        let at = self
            .position
            .or(was)
            .unwrap_or(chain.len())
            .min(chain.len());
        chain.insert(at, entry);
        chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(names: &[&str]) -> Vec<FilterRef> {
        names
            .iter()
            .map(|n| FilterRef {
                name: (*n).to_owned(),
                config: None,
                fail_mode: FailMode::Closed,
            })
            .collect()
    }

    fn order(chain: &[FilterRef]) -> Vec<&str> {
        chain.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn attaching_appends_inserts_replaces_and_moves() {
        let attach = |position| Attach {
            service: None,
            config: Some(serde_json::json!({"k": 1})),
            fail_mode: FailMode::Open,
            position,
        };
        let chain = attach(None).apply("c", named(&["a", "b"]));
        assert_eq!(order(&chain), ["a", "b", "c"]);
        assert_eq!(
            order(&attach(Some(0)).apply("c", named(&["a", "b"]))),
            ["c", "a", "b"]
        );
        assert_eq!(
            order(&attach(Some(99)).apply("c", named(&["a"]))),
            ["a", "c"]
        );
        let replaced = attach(None).apply("a", named(&["a", "b"]));
        assert_eq!(order(&replaced), ["a", "b"], "stays in its place");
        assert_eq!(replaced[0].fail_mode, FailMode::Open);
        assert_eq!(
            order(&attach(Some(1)).apply("a", named(&["a", "b", "c"]))),
            ["b", "a", "c"]
        );
    }

    #[test]
    fn a_chain_is_checked_for_names_repeats_and_sizes() {
        let mut chain = named(&["good", "Bad Name", "good"]);
        chain[0].config = Some(serde_json::Value::String("x".repeat(MAX_CONFIG_BYTES + 1)));
        let mut errors = Vec::new();
        check_chain(&chain, "spec.filters", &mut errors);
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.filters[0].config",
                "spec.filters[1].name",
                "spec.filters[2].name"
            ]
        );
        let mut errors = Vec::new();
        check_chain(
            &vec![named(&["a"]).remove(0); MAX_CHAIN + 1],
            "filters",
            &mut errors,
        );
        assert!(errors[0].message.contains("at most 16"));
    }

    #[test]
    fn a_string_configuration_is_passed_as_it_is() {
        let mut filter = named(&["a"]).remove(0);
        assert!(filter.config_bytes().is_empty());
        filter.config = Some(serde_json::Value::String("raw text".into()));
        assert_eq!(filter.config_bytes(), b"raw text");
        filter.config = Some(serde_json::json!({"a": [1, 2]}));
        assert_eq!(filter.config_bytes(), br#"{"a":[1,2]}"#);
    }
}
