//! A generation's trace: the request's span, a child of the caller's
//! `traceparent` (the gateway's span, when it came through one), with the
//! phases of the work as its children: `queue` (waiting for a free
//! sequence), `prefill` (the prompt evaluated, up to the first token) and
//! `decode` (the rest), token counts as attributes.

use std::time::{Duration, SystemTime};

use autoglm_trace::{RequestSpan, parse_traceparent};
use axum::http::HeaderMap;

use crate::Runtime;
use crate::usage::TokenUsage;

/// One generation's span and the times its phases are cut at.
#[derive(Debug)]
pub struct Traced {
    span: RequestSpan,
    submitted: SystemTime,
    first_token: Option<SystemTime>,
}

impl Traced {
    /// Starts the span of `route` under the caller's `traceparent`, if any.
    pub fn start(runtime: &Runtime, headers: &HeaderMap, route: &'static str) -> Traced {
        let parent = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent);
        let span = runtime.tracing().start(|| format!("POST {route}"), parent);
        Traced {
            span,
            submitted: SystemTime::now(),
            first_token: None,
        }
    }

    /// The first token came.
    pub fn first_token(&mut self) {
        self.first_token.get_or_insert_with(SystemTime::now);
    }

    /// Ends the trace of a generation that finished after waiting
    /// `queue_wait` for a sequence.
    pub fn done(self, model: &str, usage: &TokenUsage, queue_wait: Duration) {
        let now = SystemTime::now();
        tracing::info!(
            trace_id = %self.span.trace_id(),
            span_id = %self.span.span_id(),
            prompt_tokens = usage.prompt_tokens,
            completion_tokens = usage.completion_tokens,
            queue_ms = queue_wait.as_millis() as u64,
            total_ms = now.duration_since(self.submitted).unwrap_or_default().as_millis() as u64,
            "generation finished"
        );
        let prefill_from = (self.submitted + queue_wait).min(now);
        let decode_from = self.first_token.unwrap_or(now).max(prefill_from);
        let tokens = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.span
            .phase("queue", (self.submitted, prefill_from), &[]);
        self.span.phase(
            "prefill",
            (prefill_from, decode_from),
            &[
                ("gen_ai.usage.input_tokens", tokens(usage.prompt_tokens)),
                ("autoglm.cached_tokens", tokens(usage.cached_tokens)),
            ],
        );
        self.span.phase(
            "decode",
            (decode_from, now),
            &[(
                "gen_ai.usage.output_tokens",
                tokens(usage.completion_tokens),
            )],
        );
        self.span.end(200, || {
            [
                ("gen_ai.request.model", model.to_owned()),
                ("gen_ai.usage.input_tokens", usage.prompt_tokens.to_string()),
                (
                    "gen_ai.usage.output_tokens",
                    usage.completion_tokens.to_string(),
                ),
            ]
        });
    }

    /// Ends the trace of a generation that failed.
    pub fn failed(self, model: &str) {
        tracing::warn!(
            trace_id = %self.span.trace_id(),
            span_id = %self.span.span_id(),
            "generation failed"
        );
        self.span.end(500, || {
            [
                ("gen_ai.request.model", model.to_owned()),
                ("", String::new()),
                ("", String::new()),
            ]
        });
    }
}
