//! Settings autoglm's own parts read from the config center: the gateway's
//! timeouts, queue, retries and default rate limit, from the key
//! `gateway.yaml` in group `autoglm` of the system tenant's default
//! environment, applied live; and a built-in runtime's sampling defaults and
//! batching, from its service's `configRef`, read at start (a change rolls
//! the replicas). A field left out means the value otherwise in force.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::ConfigFormat;
use crate::error::FieldError;
use crate::security::RateLimit;
use crate::service::parse_duration;

/// The group holding autoglm's own settings.
pub const SETTINGS_GROUP: &str = "autoglm";

/// The gateway's key.
pub const GATEWAY_KEY: &str = "gateway.yaml";

/// The gateway's live settings, as written (durations like `30s`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    request_timeout: Option<String>,
    body_timeout: Option<String>,
    hold_timeout: Option<String>,
    body_limit: Option<u64>,
    max_waiting: Option<u64>,
    retries: Option<u32>,
    default_rate_limit: Option<RateLimit>,
}

/// The gateway's live settings; `None` keeps the start-up value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewaySettings {
    /// Longest wait for a replica's answer (and between its pieces).
    pub request_timeout: Option<Duration>,
    /// Longest time to receive a request body.
    pub body_timeout: Option<Duration>,
    /// Longest a request waits for a ready replica.
    pub hold_timeout: Option<Duration>,
    /// Largest request body, bytes.
    pub body_limit: Option<usize>,
    /// Most requests waiting per version.
    pub max_waiting: Option<u64>,
    /// Other replicas tried after a refused connection.
    pub retries: Option<u32>,
    /// The rate limit of a tenant that has none of its own.
    pub default_rate_limit: Option<RateLimit>,
}

impl GatewaySettings {
    /// Parses and checks the key's content (YAML, JSON or TOML); every wrong
    /// field is named.
    pub fn parse(format: ConfigFormat, content: &str) -> Result<GatewaySettings, Vec<FieldError>> {
        let written: Written = written("gateway", format, content)?;
        let mut errors = Vec::new();
        let mut duration =
            |field: &str, value: &Option<String>| positive_duration(&mut errors, field, value);
        let settings = GatewaySettings {
            request_timeout: duration("request_timeout", &written.request_timeout),
            body_timeout: duration("body_timeout", &written.body_timeout),
            hold_timeout: duration("hold_timeout", &written.hold_timeout),
            body_limit: written.body_limit.map(|b| b as usize),
            max_waiting: written.max_waiting,
            retries: written.retries,
            default_rate_limit: written.default_rate_limit,
        };
        if written.body_limit == Some(0) {
            errors.push(FieldError::new("body_limit", "must be at least 1 byte"));
        }
        if let Some(Err(e)) = settings
            .default_rate_limit
            .as_ref()
            .map(RateLimit::validate)
        {
            errors.push(FieldError::new(
                format!("default_rate_limit.{}", e.field),
                e.to_string(),
            ));
        }
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(errors)
        }
    }
}

/// Reads settings written as YAML (empty: all left out), JSON or TOML.
fn written<T: DeserializeOwned + Default>(
    what: &str,
    format: ConfigFormat,
    content: &str,
) -> Result<T, Vec<FieldError>> {
    let whole = |e: String| vec![FieldError::new("content", e)];
    match format {
        ConfigFormat::Yaml if content.trim().is_empty() => Ok(T::default()),
        ConfigFormat::Yaml => serde_yaml_ng::from_str(content).map_err(|e| whole(e.to_string())),
        ConfigFormat::Json => serde_json::from_str(content).map_err(|e| whole(e.to_string())),
        ConfigFormat::Toml => toml::from_str(content).map_err(|e| whole(e.to_string())),
        other => Err(whole(format!(
            "{what} settings are yaml, json or toml, not {}",
            other.as_str()
        ))),
    }
}

/// A duration longer than zero, or the error of `field` noted.
fn positive_duration(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: &Option<String>,
) -> Option<Duration> {
    value.as_deref().and_then(|v| match parse_duration(v) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            errors.push(FieldError::new(field, "must be longer than 0"));
            None
        }
        Err(e) => {
            errors.push(FieldError::new(field, format!("{v:?} {e}")));
            None
        }
    })
}

/// A built-in runtime's settings from its service's `configRef`:
///
/// ```yaml
/// sampling: {temperature: 0.7, top_p: 0.9, top_k: 40, max_tokens: 128}
/// batching: {max_batch: 32, max_batch_wait: 5ms, queue_capacity: 64}
/// ```
///
/// Sampling values are defaults: a request's own values win.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSettings {
    /// Defaults of the OpenAI sampling fields a request leaves out.
    #[serde(default)]
    pub sampling: SamplingDefaults,
    /// Overrides of the runtime's batching flags.
    #[serde(default)]
    pub batching: BatchingSettings,
}

/// Defaults of the sampling fields a request leaves out.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingDefaults {
    /// 0 to 2.
    pub temperature: Option<f32>,
    /// In (0, 1].
    pub top_p: Option<f32>,
    /// 0: off.
    pub top_k: Option<u32>,
    /// At least 1.
    pub max_tokens: Option<u32>,
}

/// Overrides of the runtime's batching flags.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchingSettings {
    /// Largest embeddings batch, 1 to 1024 (`--max-batch`).
    pub max_batch: Option<usize>,
    /// Longest an embeddings request waits for others (`--max-batch-wait-ms`), e.g. `5ms`.
    pub max_batch_wait: Option<String>,
    /// Generation requests that may wait beyond those being decoded (`--queue-capacity`).
    pub queue_capacity: Option<usize>,
}

impl RuntimeSettings {
    /// Parses and checks the content; every wrong field is named.
    pub fn parse(format: ConfigFormat, content: &str) -> Result<RuntimeSettings, Vec<FieldError>> {
        let settings: RuntimeSettings = written("runtime", format, content)?;
        let mut errors = Vec::new();
        let sampling = &settings.sampling;
        if sampling
            .temperature
            .is_some_and(|t| !(0.0..=2.0).contains(&t))
        {
            errors.push(FieldError::new("sampling.temperature", "must be 0 to 2"));
        }
        if sampling.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
            errors.push(FieldError::new("sampling.top_p", "must be in (0, 1]"));
        }
        if sampling.max_tokens == Some(0) {
            errors.push(FieldError::new("sampling.max_tokens", "must be at least 1"));
        }
        if settings
            .batching
            .max_batch
            .is_some_and(|b| !(1..=1024).contains(&b))
        {
            errors.push(FieldError::new("batching.max_batch", "must be 1 to 1024"));
        }
        positive_duration(
            &mut errors,
            "batching.max_batch_wait",
            &settings.batching.max_batch_wait,
        );
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(errors)
        }
    }

    /// `batching.max_batch_wait`, once [`RuntimeSettings::parse`] accepted it.
    pub fn max_batch_wait(&self) -> Option<Duration> {
        positive_duration(&mut Vec::new(), "", &self.batching.max_batch_wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_from_yaml_with_durations_and_a_default_limit() {
        let s = GatewaySettings::parse(
            ConfigFormat::Yaml,
            "request_timeout: 90s\nhold_timeout: 2m\nretries: 1\ndefault_rate_limit: {requests_per_second: 5}\n",
        )
        .unwrap();
        assert_eq!(s.request_timeout, Some(Duration::from_secs(90)));
        assert_eq!(s.hold_timeout, Some(Duration::from_secs(120)));
        assert_eq!(s.retries, Some(1));
        assert_eq!(s.default_rate_limit.unwrap().requests_per_second, Some(5));
        assert_eq!(s.body_limit, None);
        assert_eq!(
            GatewaySettings::parse(ConfigFormat::Yaml, "").unwrap(),
            GatewaySettings::default()
        );
    }

    #[test]
    fn wrong_fields_are_named() {
        let e = GatewaySettings::parse(
            ConfigFormat::Yaml,
            "request_timeout: soon\nbody_limit: 0\ndefault_rate_limit: {requests_per_second: 0}\n",
        )
        .unwrap_err();
        let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "request_timeout",
                "body_limit",
                "default_rate_limit.requests_per_second"
            ]
        );
        let e = GatewaySettings::parse(ConfigFormat::Json, "{\"retry\": 1}").unwrap_err();
        assert!(e[0].message.contains("unknown field"), "{e:?}");
        assert!(GatewaySettings::parse(ConfigFormat::Text, "x").is_err());
    }
}

#[cfg(test)]
mod runtime_tests {
    use super::*;

    #[test]
    fn runtime_settings_parse_and_name_each_wrong_field() {
        let s = RuntimeSettings::parse(
            ConfigFormat::Yaml,
            "sampling: {temperature: 0.2, max_tokens: 7}\nbatching: {max_batch: 8, max_batch_wait: 3ms}\n",
        )
        .unwrap();
        assert_eq!(s.sampling.temperature, Some(0.2));
        assert_eq!(s.sampling.max_tokens, Some(7));
        assert_eq!(s.sampling.top_p, None);
        assert_eq!(s.batching.max_batch, Some(8));
        assert_eq!(s.max_batch_wait(), Some(Duration::from_millis(3)));
        assert_eq!(
            RuntimeSettings::parse(ConfigFormat::Json, r#"{"sampling": {"top_p": 0.5}}"#)
                .unwrap()
                .sampling
                .top_p,
            Some(0.5)
        );
        let wrong = RuntimeSettings::parse(
            ConfigFormat::Yaml,
            "sampling: {temperature: 3, top_p: 0, max_tokens: 0}\nbatching: {max_batch: 0, max_batch_wait: soon}\n",
        )
        .unwrap_err();
        let paths: Vec<_> = wrong.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "sampling.temperature",
                "sampling.top_p",
                "sampling.max_tokens",
                "batching.max_batch",
                "batching.max_batch_wait"
            ]
        );
        let unknown =
            RuntimeSettings::parse(ConfigFormat::Yaml, "sampling: {temprature: 1}\n").unwrap_err();
        assert!(unknown[0].message.contains("unknown field"), "{unknown:?}");
        assert!(RuntimeSettings::parse(ConfigFormat::Text, "x").is_err());
    }
}
