//! `pii-redactor`: removes personal data from request bodies before they
//! reach the model, and optionally from the answers too.
//!
//! The filter holds the request body until it is complete, then replaces:
//!
//! * e-mail addresses with `[REDACTED EMAIL]`;
//! * US social security numbers (`123-45-6789`) with `[REDACTED SSN]`;
//! * card numbers (13-19 digits, optionally in groups split by spaces or
//!   dashes, passing the Luhn check) with `[REDACTED CARD]`;
//! * phone numbers (10-15 digits split by spaces, dashes or dots, optional
//!   leading `+` and `(area)` code, e.g. `+1 415-555-0100`, `(415) 555-0100`,
//!   `415.555.0100`) with `[REDACTED PHONE]`. A bare digit run without `+` is
//!   left alone: it is more often an id, a seed or a timestamp.
//!
//! Cards are checked before phones, so a card number is never reported as a
//! phone. Ordinary numbers (`"max_tokens": 4096`, decimals, IP addresses) and
//! the JSON around the data are left untouched. When anything was replaced the
//! body is rewritten and the filter logs `redacted N items` at info level.
//!
//! # Configuration
//!
//! ```json
//! { "kinds": ["email", "phone", "card", "ssn"], "responses": false }
//! ```
//!
//! `kinds` is optional and defaults to all four; an empty configuration means
//! the same. `responses` is optional and defaults to `false`; when `true` the
//! response body is redacted too: the filter holds it until it is complete
//! (so a streamed answer arrives all at once at its end), rewrites it and
//! logs `redacted N items in the response`. An unknown kind, a `responses`
//! that is not a boolean or invalid JSON makes the host refuse the
//! configuration.

mod scan;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde_json::Value;

pub use scan::{redact, redact_bytes, Kinds};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(RedactorRoot {
            config: Config::DEFAULT,
        })
    });
}}

/// The plugin configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Config {
    /// Which kinds of personal data to redact.
    kinds: Kinds,
    /// Whether response bodies are redacted as well as request bodies.
    responses: bool,
}

impl Config {
    const DEFAULT: Config = Config {
        kinds: Kinds::ALL,
        responses: false,
    };
}

/// Parses the plugin configuration; `None` means it is invalid.
fn parse_config(raw: &[u8]) -> Option<Config> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Some(Config::DEFAULT);
    }
    let value: Value = serde_json::from_slice(raw).ok()?;
    let object = value.as_object()?;
    let kinds = match object.get("kinds") {
        None | Some(Value::Null) => Kinds::ALL,
        Some(Value::Array(names)) => {
            let mut kinds = Kinds::NONE;
            for name in names {
                if !kinds.enable(name.as_str()?) {
                    return None;
                }
            }
            kinds
        }
        Some(_) => return None,
    };
    let responses = match object.get("responses") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(on)) => *on,
        Some(_) => return None,
    };
    Some(Config { kinds, responses })
}

struct RedactorRoot {
    config: Config,
}

impl Context for RedactorRoot {}

impl RootContext for RedactorRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        match parse_config(&raw) {
            Some(config) => {
                self.config = config;
                true
            }
            None => false,
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Redactor {
            kinds: self.config.kinds,
            responses: self.config.responses,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Redactor {
    kinds: Kinds,
    responses: bool,
}

impl Context for Redactor {}

impl HttpContext for Redactor {
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let Some(body) = self.get_http_request_body(0, body_size) else {
            return Action::Continue;
        };
        let (new, count) = redact_bytes(&body, &self.kinds);
        if count > 0 {
            self.set_http_request_body(0, body_size, &new);
            log::info!("redacted {count} items");
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Nothing to do even with `responses` on: the host re-frames a body
        // whose size changed, so `content-length` can stay.
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.responses {
            return Action::Continue;
        }
        // The host keeps what it has so far and hands it over again, whole,
        // with the next piece.
        if !end_of_stream {
            return Action::Pause;
        }
        let Some(body) = self.get_http_response_body(0, body_size) else {
            return Action::Continue;
        };
        let (new, count) = redact_bytes(&body, &self.kinds);
        if count > 0 {
            self.set_http_response_body(0, body_size, &new);
            log::info!("redacted {count} items in the response");
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> (String, usize) {
        redact(text, &Kinds::ALL)
    }

    #[test]
    fn config() {
        assert_eq!(parse_config(b""), Some(Config::DEFAULT));
        assert_eq!(parse_config(b"{}"), Some(Config::DEFAULT));
        let only_email = parse_config(br#"{"kinds":["email"]}"#).unwrap();
        assert_eq!(
            only_email.kinds,
            Kinds {
                email: true,
                ..Kinds::NONE
            }
        );
        assert!(!only_email.responses);
        assert_eq!(parse_config(br#"{"kinds":["iban"]}"#), None);
        assert_eq!(parse_config(br#"{"kinds":"email"}"#), None);
        assert_eq!(parse_config(b"{"), None);
    }

    #[test]
    fn config_responses() {
        assert_eq!(
            parse_config(br#"{"responses":true}"#),
            Some(Config {
                responses: true,
                ..Config::DEFAULT
            })
        );
        assert_eq!(
            parse_config(br#"{"responses":false}"#),
            Some(Config::DEFAULT)
        );
        // Absent (or null) means off.
        assert!(!parse_config(br#"{"kinds":["ssn"]}"#).unwrap().responses);
        assert_eq!(
            parse_config(br#"{"responses":null}"#),
            Some(Config::DEFAULT)
        );
        let both = parse_config(br#"{"kinds":["card"],"responses":true}"#).unwrap();
        assert_eq!(
            both,
            Config {
                kinds: Kinds {
                    card: true,
                    ..Kinds::NONE
                },
                responses: true,
            }
        );
        // Anything but a boolean is refused.
        for bad in [
            r#"{"responses":"true"}"#,
            r#"{"responses":1}"#,
            r#"{"responses":[]}"#,
            r#"{"responses":{}}"#,
        ] {
            assert_eq!(parse_config(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            all("mail jane.doe+ai@example.co.uk, or bob@x.io."),
            ("mail [REDACTED EMAIL], or [REDACTED EMAIL].".into(), 2)
        );
        assert_eq!(all("user@localhost and @home and a@b.c").1, 0);
    }

    #[test]
    fn phones() {
        for phone in [
            "+1 415-555-0100",
            "(415) 555-0100",
            "415.555.0100",
            "415-555-0100",
            "415 555 0100",
            "+1 (415) 555-0100",
            "+44 20 7946 0958",
            "+14155550100",
        ] {
            let text = format!("call {phone} now");
            assert_eq!(
                all(&text),
                ("call [REDACTED PHONE] now".into(), 1),
                "{phone}"
            );
        }
    }

    #[test]
    fn cards_before_phones() {
        for card in [
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "4111111111111111",
            "378282246310005",
        ] {
            let text = format!("card: {card}.");
            assert_eq!(all(&text), ("card: [REDACTED CARD].".into(), 1), "{card}");
        }
        // Fails the Luhn check and is too long for a phone; no part of it
        // is taken for a phone either.
        assert_eq!(all("4111 1111 1111 1112").1, 0);
        // 15 digits that fail the Luhn check: not a card, but a phone.
        let cards = Kinds {
            card: true,
            ..Kinds::NONE
        };
        assert_eq!(redact("+1 4111 1111 1111", &cards).1, 0);
        assert_eq!(all("+1 4111 1111 1111").0, "[REDACTED PHONE]");
    }

    #[test]
    fn ssns() {
        assert_eq!(all("ssn 123-45-6789!"), ("ssn [REDACTED SSN]!".into(), 1));
        assert_eq!(all("ssn 123-45-6789 2"), ("ssn [REDACTED SSN] 2".into(), 1));
        let ssn = Kinds {
            ssn: true,
            ..Kinds::NONE
        };
        assert_eq!(redact("123-45-67890 1123-45-6789 123-45-6789-1", &ssn).1, 0);
    }

    #[test]
    fn kinds_are_respected() {
        let text = "a@b.com 123-45-6789 4111111111111111 +1 415-555-0100";
        assert_eq!(redact(text, &Kinds::NONE), (text.into(), 0));
        let only_ssn = Kinds {
            ssn: true,
            ..Kinds::NONE
        };
        assert_eq!(
            redact(text, &only_ssn).0,
            "a@b.com [REDACTED SSN] 4111111111111111 +1 415-555-0100"
        );
        assert_eq!(
            all(text),
            (
                "[REDACTED EMAIL] [REDACTED SSN] [REDACTED CARD] [REDACTED PHONE]".into(),
                4
            )
        );
    }

    #[test]
    fn ordinary_json_is_untouched() {
        let body = r#"{"model":"glm-4.5","max_tokens": 4096,"temperature":0.7,"seed":1234567890,"created":1700000000,"top_p":0.123456789012,"messages":[{"role":"user","content":"Version 1.2.3 on 192.168.100.200, date 2024-01-15, pi 3.14159265358979, ids [1234567, 89012345], x1234567890123"}]}"#;
        assert_eq!(all(body), (body.into(), 0));
    }

    #[test]
    fn json_bodies_keep_their_structure() {
        let body = r#"{"messages":[{"role":"user","content":"I'm jane@example.com, call (415) 555-0100; SSN 123-45-6789"}],"max_tokens":4096}"#;
        let (out, n) = all(body);
        assert_eq!(n, 3);
        assert_eq!(
            out,
            r#"{"messages":[{"role":"user","content":"I'm [REDACTED EMAIL], call [REDACTED PHONE]; SSN [REDACTED SSN]"}],"max_tokens":4096}"#
        );
        assert!(serde_json::from_str::<Value>(&out).is_ok());
    }

    #[test]
    fn non_ascii_text_survives() {
        assert_eq!(
            all("été: é@exämple.com ok"),
            ("été: é@exämple.com ok".into(), 0)
        );
        assert_eq!(
            all("日本 a@b.jp 日本"),
            ("日本 [REDACTED EMAIL] 日本".into(), 1)
        );
        let (out, n) = redact_bytes(b"\xff a@b.jp \xfe", &Kinds::ALL);
        assert_eq!((out.as_slice(), n), (&b"\xff [REDACTED EMAIL] \xfe"[..], 1));
    }

    #[test]
    fn truncated_input_does_not_panic() {
        let text = "x (415) 555-0100 +1 415.555.0100 123-45-6789 4111-1111-1111-1111 a@b.co";
        for end in 0..=text.len() {
            let (out, _) = all(&text[..end]);
            assert!(!out.is_empty() || end == 0);
            let (out, _) = all(&text[end..]);
            assert!(!out.is_empty() || end == text.len());
        }
        for t in [
            "(", "+", "@", "(4", "(415)", "(415) ", "123-", "123-45-", "a@b.", "1 ", "1-",
        ] {
            assert_eq!(all(t), (t.into(), 0), "{t}");
        }
    }
}
