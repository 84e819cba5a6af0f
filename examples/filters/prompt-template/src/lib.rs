//! `prompt-template`: puts a per-tenant system prompt in front of every
//! request.
//!
//! The template's `{tenant}` and `{service}` placeholders are filled from the
//! host properties `autoglm.tenant` and `autoglm.service` (empty when
//! missing). The filter holds the request body until it is complete, then:
//!
//! * if the JSON body has a `messages` array (chat), it inserts
//!   `{"role": "system", "content": RENDERED}` as the first message;
//! * else if it has a string `prompt` (completions), it becomes
//!   `RENDERED + "\n\n" + prompt`;
//! * else, or if the body is not valid JSON, the body is left alone (the
//!   gateway answers invalid JSON itself).
//!
//! # Configuration
//!
//! ```json
//! { "system": "You are the assistant of {tenant}, answering for {service}." }
//! ```
//!
//! `system` is required; a missing or non-string value makes the host refuse
//! the configuration.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde_json::{json, Value};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(TemplateRoot { template: Rc::from("") })
    });
}}

/// Parses the plugin configuration into the template; `None` means invalid.
fn parse_config(raw: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(raw).ok()?;
    Some(value.as_object()?.get("system")?.as_str()?.to_string())
}

/// Fills `{tenant}` and `{service}` in `template`.
pub fn render(template: &str, tenant: &str, service: &str) -> String {
    template
        .replace("{tenant}", tenant)
        .replace("{service}", service)
}

/// Adds the rendered system prompt to a request body. `None` means the body
/// is left as it is (not JSON, or neither `messages` nor `prompt`).
pub fn rewrite(body: &[u8], system: &str) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let obj = value.as_object_mut()?;
    if let Some(Value::Array(messages)) = obj.get_mut("messages") {
        messages.insert(0, json!({"role": "system", "content": system}));
    } else if let Some(Value::String(prompt)) = obj.get_mut("prompt") {
        *prompt = format!("{system}\n\n{prompt}");
    } else {
        return None;
    }
    serde_json::to_vec(&value).ok()
}

struct TemplateRoot {
    template: Rc<str>,
}

impl Context for TemplateRoot {}

impl RootContext for TemplateRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        match parse_config(&raw) {
            Some(template) => {
                self.template = Rc::from(template);
                true
            }
            None => false,
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(PromptTemplate {
            template: Rc::clone(&self.template),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct PromptTemplate {
    template: Rc<str>,
}

impl PromptTemplate {
    fn property(&self, name: &str) -> String {
        self.get_property(vec!["autoglm", name])
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}

impl Context for PromptTemplate {}

impl HttpContext for PromptTemplate {
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let Some(body) = self.get_http_request_body(0, body_size) else {
            return Action::Continue;
        };
        let system = render(
            &self.template,
            &self.property("tenant"),
            &self.property("service"),
        );
        if let Some(new) = rewrite(&body, &system) {
            self.set_http_request_body(0, body_size, &new);
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config() {
        assert_eq!(
            parse_config(br#"{"system":"hi {tenant}"}"#).as_deref(),
            Some("hi {tenant}")
        );
        for raw in ["", "{}", "{", r#"{"system":1}"#, r#"["system"]"#] {
            assert_eq!(parse_config(raw.as_bytes()), None, "{raw}");
        }
    }

    #[test]
    fn renders_placeholders() {
        assert_eq!(
            render(
                "For {tenant} via {service}; {tenant}! {other}",
                "acme",
                "chat"
            ),
            "For acme via chat; acme! {other}"
        );
        assert_eq!(render("For {tenant}.", "", ""), "For .");
    }

    #[test]
    fn chat_gets_a_first_system_message() {
        let body =
            br#"{"model":"glm-4","messages":[{"role":"user","content":"hi"}],"stream":false}"#;
        let out = rewrite(body, "Be brief.\n\"ok\"").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"model":"glm-4","messages":[{"role":"system","content":"Be brief.\n\"ok\""},{"role":"user","content":"hi"}],"stream":false}"#
        );
    }

    #[test]
    fn completion_prompt_is_prefixed() {
        let out = rewrite(
            br#"{"prompt":"Say hi","max_tokens":4096,"temperature":0.7}"#,
            "S",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"prompt":"S\n\nSay hi","max_tokens":4096,"temperature":0.7}"#
        );
    }

    #[test]
    fn other_bodies_are_left_alone() {
        for body in [
            "not json",
            "",
            "[1,2]",
            r#"{"input":"embed me"}"#,
            r#"{"prompt":["a","b"]}"#,
            r#"{"messages":"x"}"#,
        ] {
            assert_eq!(rewrite(body.as_bytes(), "S"), None, "{body}");
        }
        // A non-array `messages` falls back to `prompt`.
        let out = rewrite(br#"{"messages":null,"prompt":"p"}"#, "S").unwrap();
        assert_eq!(out, br#"{"messages":null,"prompt":"S\n\np"}"#);
    }
}
