//! Settings autoglm's own parts read from the config center and apply live:
//! the gateway's timeouts, queue, retries and default rate limit, from the
//! key `gateway.yaml` in group `autoglm` of the system tenant's default
//! environment. A field left out means the value the gateway started with.

use std::time::Duration;

use serde::Deserialize;

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
        let whole = |e: String| vec![FieldError::new("content", e)];
        let written: Written = match format {
            ConfigFormat::Yaml if content.trim().is_empty() => Written::default(),
            ConfigFormat::Yaml => {
                serde_yaml_ng::from_str(content).map_err(|e| whole(e.to_string()))?
            }
            ConfigFormat::Json => {
                serde_json::from_str(content).map_err(|e| whole(e.to_string()))?
            }
            ConfigFormat::Toml => toml::from_str(content).map_err(|e| whole(e.to_string()))?,
            other => {
                return Err(whole(format!(
                    "gateway settings are yaml, json or toml, not {}",
                    other.as_str()
                )));
            }
        };
        let mut errors = Vec::new();
        let mut duration = |field: &str, value: &Option<String>| {
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
        };
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
