//! `auth-check`: lets a request through only when one header has an allowed
//! value.
//!
//! If the configured header is present and its value is exactly one of the
//! allowed values, the request continues. Otherwise the filter answers itself
//! with `403` and an OpenAI-style JSON error, and the request never reaches
//! the model:
//!
//! ```json
//! {"error":{"message":"the x-team header must be one of: red, blue","type":"permission_denied","code":"filter_denied"}}
//! ```
//!
//! # Configuration
//!
//! ```json
//! { "header": "x-team", "allowed": ["red", "blue"] }
//! ```
//!
//! Both fields are required: `header` a non-empty string, `allowed` a
//! non-empty list of strings. Anything else makes the host refuse the
//! configuration.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde_json::Value;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(AuthRoot { config: None })
    });
}}

#[derive(Debug, PartialEq)]
struct Config {
    header: String,
    allowed: Vec<String>,
    /// The 403 body, built once.
    denied_body: String,
}

/// Parses the plugin configuration; `None` means it is invalid.
fn parse_config(raw: &[u8]) -> Option<Config> {
    let value: Value = serde_json::from_slice(raw).ok()?;
    let obj = value.as_object()?;
    let header = obj.get("header")?.as_str()?.to_string();
    let allowed = obj
        .get("allowed")?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()?;
    if header.is_empty() || allowed.is_empty() {
        return None;
    }
    let denied_body = denied_body(&header, &allowed);
    Some(Config {
        header,
        allowed,
        denied_body,
    })
}

/// The JSON error body sent with the 403.
fn denied_body(header: &str, allowed: &[String]) -> String {
    let message = format!("the {header} header must be one of: {}", allowed.join(", "));
    let message = Value::String(message).to_string();
    format!(
        r#"{{"error":{{"message":{message},"type":"permission_denied","code":"filter_denied"}}}}"#
    )
}

impl Config {
    fn allows(&self, value: Option<&str>) -> bool {
        value.is_some_and(|v| self.allowed.iter().any(|a| a == v))
    }
}

struct AuthRoot {
    config: Option<Rc<Config>>,
}

impl Context for AuthRoot {}

impl RootContext for AuthRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        self.config = parse_config(&raw).map(Rc::new);
        self.config.is_some()
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = Rc::clone(self.config.as_ref()?);
        Some(Box::new(AuthCheck { config }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct AuthCheck {
    config: Rc<Config>,
}

impl Context for AuthCheck {}

impl HttpContext for AuthCheck {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let value = self.get_http_request_header(&self.config.header);
        if self.config.allows(value.as_deref()) {
            return Action::Continue;
        }
        self.send_http_response(
            403,
            vec![("content-type", "application/json")],
            Some(self.config.denied_body.as_bytes()),
        );
        Action::Pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_builds_the_error() {
        let c = parse_config(br#"{"header":"x-team","allowed":["red","blue"]}"#).unwrap();
        assert_eq!(
            c.denied_body,
            r#"{"error":{"message":"the x-team header must be one of: red, blue","type":"permission_denied","code":"filter_denied"}}"#
        );
        assert!(c.allows(Some("red")));
        assert!(!c.allows(Some("Red")));
        assert!(!c.allows(Some("")));
        assert!(!c.allows(None));
    }

    #[test]
    fn escapes_the_message() {
        let c = parse_config(br#"{"header":"x-\"q","allowed":["a"]}"#).unwrap();
        assert!(serde_json::from_str::<Value>(&c.denied_body).is_ok());
    }

    #[test]
    fn rejects_bad_config() {
        for raw in [
            "",
            "{}",
            "{",
            r#"{"header":"x-team"}"#,
            r#"{"header":"x-team","allowed":[]}"#,
            r#"{"header":"","allowed":["a"]}"#,
            r#"{"header":"x-team","allowed":[1]}"#,
            r#"{"allowed":["a"]}"#,
        ] {
            assert_eq!(parse_config(raw.as_bytes()), None, "{raw}");
        }
    }
}
