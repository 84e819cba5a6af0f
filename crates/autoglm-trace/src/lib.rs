//! W3C trace context through autoglm's servers, and spans over OTLP.
//!
//! Every request a gateway proxies is a span, a child of the client's
//! `traceparent` when it sent one; the replica receives a `traceparent`
//! naming that span, and a built-in runtime's request span hangs under it,
//! with the phases of its work (queue, prefill, decode) as its children. So
//! one trace runs from the client through the gateway into the runtime.
//! Spans are exported over OTLP/HTTP (protobuf) when an endpoint is
//! configured; without one the ids are still made and propagated, and
//! nothing is recorded.

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};

/// How often finished spans are sent.
const EXPORT_DELAY: Duration = Duration::from_millis(500);

/// Parses a W3C `traceparent` (version 00): trace id, parent span id, flags.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if version != "00"
        || parts.next().is_some()
        || !hex(trace, 32)
        || !hex(span, 16)
        || !hex(flags, 2)
    {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()?);
    Some(SpanContext::new(
        trace_id,
        span_id,
        flags,
        true,
        TraceState::default(),
    ))
}

/// A `traceparent` value, kept on the stack: formatting the ids (or even
/// allocating for them) is a measurable share of a proxied request's CPU.
#[derive(Debug, Clone, Copy)]
pub struct Traceparent([u8; 55]);

impl Traceparent {
    /// The value.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The `traceparent` naming `context`.
pub fn format_traceparent(context: &SpanContext) -> Traceparent {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let filled = hex::encode_to_slice(context.trace_id().to_bytes(), &mut out[3..35])
        .and_then(|()| hex::encode_to_slice(context.span_id().to_bytes(), &mut out[36..52]))
        .and_then(|()| hex::encode_to_slice([context.trace_flags().to_u8()], &mut out[53..55]));
    debug_assert!(filled.is_ok(), "the slices fit the ids");
    Traceparent(out)
}

/// The OTLP exporter cannot be built for this endpoint.
#[derive(Debug, thiserror::Error)]
#[error("cannot export spans to {url}")]
pub struct TracingError {
    /// Where the spans would go.
    pub url: String,
    /// What the exporter's builder said.
    #[source]
    pub source: opentelemetry_otlp::ExporterBuildError,
}

/// A server's tracer: exporting, or only propagating.
#[derive(Debug, Default)]
pub struct Tracing {
    exporting: Option<(SdkTracerProvider, SdkTracer)>,
}

impl Tracing {
    /// Exports spans to the OTLP/HTTP collector at `endpoint` (its base URL,
    /// e.g. `http://127.0.0.1:4318`; spans go to `/v1/traces`) as the
    /// service `service` (`autoglm-gateway`, `autoglm-runtime`).
    pub fn otlp(endpoint: &str, service: &'static str) -> Result<Tracing, TracingError> {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url.clone())
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|source| TracingError {
                url: url.clone(),
                source,
            })?;
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(EXPORT_DELAY)
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(Resource::builder().with_service_name(service).build())
            .build();
        let tracer = provider.tracer(service);
        Ok(Tracing {
            exporting: Some((provider, tracer)),
        })
    }

    /// Starts the span of a request named by `name` (called only when
    /// spans are exported), under `parent` when the client sent one.
    pub fn start(&self, name: impl FnOnce() -> String, parent: Option<SpanContext>) -> RequestSpan {
        match &self.exporting {
            Some((_, tracer)) => {
                let cx = match parent {
                    Some(p) => Context::new().with_remote_span_context(p),
                    None => Context::new(),
                };
                let span = tracer
                    .span_builder(name())
                    .with_kind(SpanKind::Server)
                    .start_with_context(tracer, &cx);
                RequestSpan {
                    context: span.span_context().clone(),
                    span: Some(span),
                    tracer: Some(tracer.clone()),
                }
            }
            None => {
                let trace_id = parent.as_ref().map_or_else(
                    || TraceId::from(rand::random::<u128>().max(1)),
                    |p| p.trace_id(),
                );
                let flags = parent
                    .as_ref()
                    .map_or(TraceFlags::SAMPLED, |p| p.trace_flags());
                RequestSpan {
                    context: SpanContext::new(
                        trace_id,
                        SpanId::from(rand::random::<u64>().max(1)),
                        flags,
                        false,
                        TraceState::default(),
                    ),
                    span: None,
                    tracer: None,
                }
            }
        }
    }

    /// Sends what is left; called once the gateway stopped.
    pub fn shutdown(&self) {
        if let Some((provider, _)) = &self.exporting
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "spans could not all be exported");
        }
    }
}

/// One request's span.
#[derive(Debug)]
pub struct RequestSpan {
    context: SpanContext,
    span: Option<opentelemetry_sdk::trace::Span>,
    tracer: Option<SdkTracer>,
}

impl RequestSpan {
    /// The trace's id, 32 lowercase hex digits: what log lines carry as `trace_id`.
    pub fn trace_id(&self) -> String {
        self.context.trace_id().to_string()
    }

    /// This span's id, 16 lowercase hex digits (`span_id` in log lines).
    pub fn span_id(&self) -> String {
        self.context.span_id().to_string()
    }

    /// Records a finished phase of the request as a child span from `start`
    /// to `end` (only when spans are exported): a runtime's queue wait,
    /// prefill and decode.
    pub fn phase(
        &self,
        name: &'static str,
        (start, end): (SystemTime, SystemTime),
        attributes: &[(&'static str, i64)],
    ) {
        let Some(tracer) = &self.tracer else {
            return;
        };
        let cx = Context::new().with_remote_span_context(self.context.clone());
        let mut span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes(
                attributes
                    .iter()
                    .map(|(key, value)| KeyValue::new(*key, *value)),
            )
            .start_with_context(tracer, &cx);
        span.end_with_timestamp(end);
    }

    /// The `traceparent` to send to the replica: this span as the parent.
    pub fn traceparent(&self) -> Traceparent {
        format_traceparent(&self.context)
    }

    /// Ends the span with what became of the request (`attributes` are
    /// made only when the span is exported).
    pub fn end(mut self, status: u16, attributes: impl FnOnce() -> [(&'static str, String); 3]) {
        if let Some(span) = &mut self.span {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            for (key, value) in attributes() {
                if !value.is_empty() {
                    span.set_attribute(KeyValue::new(key, value));
                }
            }
            if status >= 500 {
                span.set_status(Status::error(format!("status {status}")));
            }
            span.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_round_trip_and_bad_ones_are_ignored() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let cx = parse_traceparent(tp).expect("valid");
        assert!(cx.is_sampled());
        assert_eq!(format_traceparent(&cx).as_str(), tp);
        for bad in [
            "",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn without_an_exporter_the_trace_continues_under_a_new_span() {
        let parent = parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let span = Tracing::default().start(|| "x".into(), parent);
        let sent = span.traceparent();
        let sent = sent.as_str();
        assert!(
            sent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
            "{sent}"
        );
        assert!(!sent.contains("b7ad6b7169203331"), "a new span id: {sent}");
        assert!(sent.ends_with("-01"));
    }
}
