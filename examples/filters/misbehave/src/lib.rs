//! `misbehave`: a deliberately faulty filter, for testing the gateway's
//! sandbox. Do not deploy it.
//!
//! In the chosen phase it does one of:
//!
//! * `spin`: loops forever (the host must stop it with its CPU/fuel limit);
//! * `hog`: allocates 1 MiB buffers filled with a non-zero byte and keeps
//!   them, forever (the host must stop it with its memory limit);
//! * `trap`: panics, which aborts and becomes a WebAssembly trap;
//! * `none`: nothing; it returns `Continue` and sets the response header
//!   `x-misbehave: ok`, so a test can see that the filter ran.
//!
//! # Configuration
//!
//! ```json
//! { "mode": "spin", "phase": "request_headers" }
//! ```
//!
//! `mode` is required: `spin`, `hog`, `trap` or `none`. `phase` is optional:
//! `request_headers` (default), `request_body` or `response_headers`. Other
//! values make the host refuse the configuration.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde_json::Value;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(MisbehaveRoot { config: Config { mode: Mode::None, phase: Phase::RequestHeaders } })
    });
}}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Spin,
    Hog,
    Trap,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Config {
    mode: Mode,
    phase: Phase,
}

/// Parses the plugin configuration; `None` means it is invalid.
fn parse_config(raw: &[u8]) -> Option<Config> {
    let value: Value = serde_json::from_slice(raw).ok()?;
    let obj = value.as_object()?;
    let mode = match obj.get("mode")?.as_str()? {
        "spin" => Mode::Spin,
        "hog" => Mode::Hog,
        "trap" => Mode::Trap,
        "none" => Mode::None,
        _ => return None,
    };
    let phase = match obj.get("phase").map(Value::as_str) {
        None | Some(Some("request_headers")) => Phase::RequestHeaders,
        Some(Some("request_body")) => Phase::RequestBody,
        Some(Some("response_headers")) => Phase::ResponseHeaders,
        _ => return None,
    };
    Some(Config { mode, phase })
}

/// Busy loop the optimizer cannot remove.
fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        core::hint::black_box(&mut counter);
        counter = counter.wrapping_add(1);
    }
}

/// Allocates and keeps 1 MiB buffers until the host stops it.
fn hog() -> ! {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        kept.push(vec![0xA5; 1 << 20]);
        core::hint::black_box(&mut kept);
    }
}

struct MisbehaveRoot {
    config: Config,
}

impl Context for MisbehaveRoot {}

impl RootContext for MisbehaveRoot {
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
        Some(Box::new(Misbehave {
            config: self.config,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Misbehave {
    config: Config,
}

impl Misbehave {
    /// Misbehaves if `phase` is the configured one.
    fn act(&self, phase: Phase) -> Action {
        if phase != self.config.phase {
            return Action::Continue;
        }
        match self.config.mode {
            Mode::Spin => spin(),
            Mode::Hog => hog(),
            Mode::Trap => panic!("misbehave: deliberate trap"),
            Mode::None => Action::Continue,
        }
    }
}

impl Context for Misbehave {}

impl HttpContext for Misbehave {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.act(Phase::RequestHeaders)
    }

    fn on_http_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        self.act(Phase::RequestBody)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let action = self.act(Phase::ResponseHeaders);
        if self.config.mode == Mode::None {
            self.set_http_response_header("x-misbehave", Some("ok"));
        }
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config() {
        let c = parse_config(br#"{"mode":"spin"}"#).unwrap();
        assert_eq!(
            c,
            Config {
                mode: Mode::Spin,
                phase: Phase::RequestHeaders
            }
        );
        let c = parse_config(br#"{"mode":"hog","phase":"request_body"}"#).unwrap();
        assert_eq!(
            c,
            Config {
                mode: Mode::Hog,
                phase: Phase::RequestBody
            }
        );
        let c = parse_config(br#"{"mode":"none","phase":"response_headers"}"#).unwrap();
        assert_eq!(
            c,
            Config {
                mode: Mode::None,
                phase: Phase::ResponseHeaders
            }
        );
        for raw in [
            "",
            "{}",
            r#"{"mode":"crash"}"#,
            r#"{"mode":"trap","phase":"body"}"#,
            r#"{"mode":"trap","phase":1}"#,
        ] {
            assert_eq!(parse_config(raw.as_bytes()), None, "{raw}");
        }
    }
}
