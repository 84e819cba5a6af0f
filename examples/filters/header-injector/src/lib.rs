//! `header-injector`: adds fixed headers to requests and responses.
//!
//! Every entry of `request` is set on the request headers (replacing any
//! existing value) before the request goes upstream; every entry of
//! `response` is set on the response headers before the response goes back to
//! the client. The filter never blocks or changes bodies.
//!
//! # Configuration
//!
//! ```json
//! {
//!   "request":  { "x-team": "red", "x-trace-source": "gateway" },
//!   "response": { "x-served-by": "autoglm" }
//! }
//! ```
//!
//! Both maps are optional and default to empty, so `{}` (or an empty
//! configuration) is a valid filter that does nothing. Values must be strings;
//! anything else makes the configuration invalid and the host refuses it.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde_json::Value;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(InjectorRoot { config: Rc::new(Config::default()) })
    });
}}

/// Parsed plugin configuration: (name, value) pairs to set.
#[derive(Debug, Default, PartialEq)]
struct Config {
    request: Vec<(String, String)>,
    response: Vec<(String, String)>,
}

/// Parses the plugin configuration; `None` means it is invalid.
fn parse_config(raw: &[u8]) -> Option<Config> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Some(Config::default());
    }
    let value: Value = serde_json::from_slice(raw).ok()?;
    let obj = value.as_object()?;
    Some(Config {
        request: parse_headers(obj.get("request"))?,
        response: parse_headers(obj.get("response"))?,
    })
}

fn parse_headers(value: Option<&Value>) -> Option<Vec<(String, String)>> {
    match value {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
        Some(_) => None,
    }
}

struct InjectorRoot {
    config: Rc<Config>,
}

impl Context for InjectorRoot {}

impl RootContext for InjectorRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        match parse_config(&raw) {
            Some(config) => {
                self.config = Rc::new(config);
                true
            }
            None => false,
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Injector {
            config: Rc::clone(&self.config),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Injector {
    config: Rc<Config>,
}

impl Context for Injector {}

impl HttpContext for Injector {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in &self.config.request {
            self.set_http_request_header(name, Some(value));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in &self.config.response {
            self.set_http_response_header(name, Some(value));
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_a_no_op() {
        assert_eq!(parse_config(b"{}"), Some(Config::default()));
        assert_eq!(parse_config(b""), Some(Config::default()));
    }

    #[test]
    fn parses_both_maps() {
        let c = parse_config(br#"{"request":{"x-a":"1"},"response":{"x-b":"2"}}"#).unwrap();
        assert_eq!(c.request, vec![("x-a".into(), "1".into())]);
        assert_eq!(c.response, vec![("x-b".into(), "2".into())]);
    }

    #[test]
    fn rejects_bad_config() {
        assert_eq!(parse_config(b"{not json"), None);
        assert_eq!(parse_config(b"[]"), None);
        assert_eq!(parse_config(br#"{"request":{"x-a":1}}"#), None);
        assert_eq!(parse_config(br#"{"response":"x"}"#), None);
    }
}
