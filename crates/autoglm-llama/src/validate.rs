//! Checks on what a request asks for, done in `submit` so that a bad request
//! is refused at once (a 4xx) instead of failing on the scheduler thread.

use autoglm_inference::{ChatMessage, InferenceError, Result, SamplingParams};

/// Most stop sequences one request may give.
pub const MAX_STOP_SEQUENCES: usize = 4;
/// Longest stop sequence, in bytes.
pub const MAX_STOP_BYTES: usize = 64;
/// Chat roles the templates know.
pub const ROLES: [&str; 3] = ["system", "user", "assistant"];

fn invalid(message: impl Into<String>) -> InferenceError {
    InferenceError::InvalidInput(message.into())
}

/// Refuses sampling values outside their documented ranges.
pub fn sampling(params: &SamplingParams) -> Result<()> {
    // `contains` is false for NaN, which must be refused too.
    if !(0.0..=2.0).contains(&params.temperature) {
        return Err(invalid(format!(
            "temperature must be between 0 and 2, not {}",
            params.temperature
        )));
    }
    if !(params.top_p > 0.0 && params.top_p <= 1.0) {
        return Err(invalid(format!(
            "top_p must be in (0, 1], not {}",
            params.top_p
        )));
    }
    if params.max_tokens == 0 {
        return Err(invalid("max_tokens must be at least 1"));
    }
    if params.stop.len() > MAX_STOP_SEQUENCES {
        return Err(invalid(format!(
            "at most {MAX_STOP_SEQUENCES} stop sequences, not {}",
            params.stop.len()
        )));
    }
    for stop in &params.stop {
        if stop.is_empty() {
            return Err(invalid("stop sequences must not be empty"));
        }
        if stop.len() > MAX_STOP_BYTES {
            return Err(invalid(format!(
                "stop sequences are at most {MAX_STOP_BYTES} bytes, not {}",
                stop.len()
            )));
        }
    }
    Ok(())
}

/// Refuses an empty chat and roles the template would render blindly.
pub fn chat(messages: &[ChatMessage]) -> Result<()> {
    if messages.is_empty() {
        return Err(invalid("a chat needs at least one message"));
    }
    for message in messages {
        if !ROLES.contains(&message.role.as_str()) {
            return Err(invalid(format!(
                "unknown chat role {:?}; expected one of {}",
                message.role,
                ROLES.join(", ")
            )));
        }
        if message.content.contains('\0') || message.role.contains('\0') {
            return Err(invalid("chat messages must not contain NUL characters"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> SamplingParams {
        SamplingParams {
            temperature: 0.7,
            top_p: 0.9,
            top_k: 40,
            seed: None,
            max_tokens: 16,
            stop: vec![],
        }
    }

    #[test]
    fn accepts_documented_ranges() {
        for (temperature, top_p) in [(0.0, 1.0), (2.0, 0.01), (1.0, 1.0)] {
            assert!(
                sampling(&SamplingParams {
                    temperature,
                    top_p,
                    ..ok()
                })
                .is_ok()
            );
        }
        let stops = vec!["x".repeat(MAX_STOP_BYTES); MAX_STOP_SEQUENCES];
        assert!(
            sampling(&SamplingParams {
                stop: stops,
                ..ok()
            })
            .is_ok()
        );
    }

    #[test]
    fn refuses_values_outside_them() {
        let bad = [
            SamplingParams {
                temperature: -0.1,
                ..ok()
            },
            SamplingParams {
                temperature: 2.01,
                ..ok()
            },
            SamplingParams {
                temperature: f32::NAN,
                ..ok()
            },
            SamplingParams { top_p: 0.0, ..ok() },
            SamplingParams { top_p: 1.5, ..ok() },
            SamplingParams {
                top_p: f32::NAN,
                ..ok()
            },
            SamplingParams {
                max_tokens: 0,
                ..ok()
            },
            SamplingParams {
                stop: vec![String::new()],
                ..ok()
            },
            SamplingParams {
                stop: vec!["x".repeat(MAX_STOP_BYTES + 1)],
                ..ok()
            },
            SamplingParams {
                stop: vec!["a".into(); MAX_STOP_SEQUENCES + 1],
                ..ok()
            },
        ];
        for params in bad {
            assert!(
                matches!(sampling(&params), Err(InferenceError::InvalidInput(_))),
                "{params:?}"
            );
        }
    }

    #[test]
    fn chat_roles_are_checked() {
        let message = |role: &str| ChatMessage {
            role: role.into(),
            content: "hi".into(),
        };
        assert!(chat(&[message("system"), message("user"), message("assistant")]).is_ok());
        assert!(matches!(
            chat(&[message("tool")]),
            Err(InferenceError::InvalidInput(_))
        ));
        assert!(matches!(chat(&[]), Err(InferenceError::InvalidInput(_))));
    }
}
