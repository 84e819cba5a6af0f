//! One trace from the client through the gateway into the runtime, in a
//! real Jaeger v2 (built from the Go module proxy by `scripts/jaeger.sh`):
//! `autoglm up --otlp-endpoint` sends the gateway's spans there, and the
//! built-in runtime serving SmolLM2 its own (the request, and its queue,
//! prefill and decode phases with token counts), each a child of the one
//! before, under the span id the client sent in its `traceparent`. The log
//! lines of the request carry the same trace id: the console's JSON lines,
//! and the runtime's, which the replica log API and page filter by it.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Up;
use common::jaeger::{Jaeger, tag};
use serde_json::{Value, json};

/// The span of `trace` with `operation`, from `service`.
fn span<'a>(trace: &'a Value, service: &str, operation: &str) -> &'a Value {
    let processes = &trace["processes"];
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["operationName"] == operation
                && processes[s["processID"].as_str().unwrap()]["serviceName"] == service
        })
        .unwrap_or_else(|| panic!("no {operation} span from {service} in {trace}"))
}

fn parent(span: &Value) -> &str {
    span["references"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["refType"] == "CHILD_OF")
        .and_then(|r| r["spanID"].as_str())
        .unwrap_or_else(|| panic!("no parent: {span}"))
}

fn micros(span: &Value, field: &str) -> u64 {
    span[field].as_u64().unwrap()
}

#[tokio::test]
async fn a_chat_is_one_trace_from_the_client_through_the_gateway_into_the_runtimes_phases() {
    // The demo finds the model in the cache; fetch it first under the tests' lock.
    autoglm_testmodels::path(autoglm_testmodels::SMOLLM2);
    let home = tempfile::tempdir().unwrap();
    let jaeger = Jaeger::start(home.path());
    let up = Up::start_with(
        &home.path().join("home"),
        &["--otlp-endpoint", &jaeger.otlp_http, "--log-format", "json"],
    );
    up.wait_for_line("demo services deployed", Duration::from_secs(180));

    let (trace_id, client_span) = ("5af7651916cd43dd8448eb211c80319c", "c7ad6b7169203331");
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", up.gateway))
        .bearer_auth(&up.console.token)
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .json(&json!({"model": "chat", "max_tokens": 8,
                      "messages": [{"role": "user", "content": "Say hello."}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let generated = answer["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(generated > 0, "{answer}");

    // The gateway's span, the runtime's and its three phases: five spans.
    let trace = jaeger
        .trace_with(trace_id, 5, Duration::from_secs(30))
        .await;
    let gateway = span(&trace, "autoglm-gateway", "POST /v1/chat/completions");
    let runtime = span(&trace, "autoglm-runtime", "POST /v1/chat/completions");
    assert_eq!(
        parent(gateway),
        client_span,
        "the gateway's span is the client's child"
    );
    assert_eq!(
        parent(runtime),
        gateway["spanID"].as_str().unwrap(),
        "the runtime's span is the gateway's child"
    );
    let runtime_id = runtime["spanID"].as_str().unwrap();
    let phases = ["queue", "prefill", "decode"].map(|name| span(&trace, "autoglm-runtime", name));
    for phase in phases {
        assert_eq!(parent(phase), runtime_id, "{phase}");
        // Each phase lies within the runtime's span.
        assert!(
            micros(phase, "startTime") >= micros(runtime, "startTime"),
            "{phase}"
        );
        assert!(
            micros(phase, "startTime") + micros(phase, "duration")
                <= micros(runtime, "startTime") + micros(runtime, "duration") + 1_000,
            "{phase}"
        );
    }
    // In order: queue, then prefill, then decode.
    let [queue, prefill, decode] = phases;
    assert!(
        micros(queue, "startTime") + micros(queue, "duration") <= micros(prefill, "startTime") + 1
    );
    assert!(
        micros(prefill, "startTime") + micros(prefill, "duration")
            <= micros(decode, "startTime") + 1
    );
    assert_eq!(
        tag(decode, "gen_ai.usage.output_tokens"),
        Some(&json!(generated))
    );
    assert_eq!(
        tag(prefill, "gen_ai.usage.input_tokens"),
        Some(&answer["usage"]["prompt_tokens"])
    );
    assert_eq!(tag(runtime, "gen_ai.request.model"), Some(&json!("chat")));
    assert_eq!(tag(gateway, "http.response.status_code"), Some(&json!(200)));

    // The runtime logged the generation under the same trace id, and the
    // replica log API finds its lines by it.
    let (status, service) = get(&up, "/api/v1/services/chat").await;
    assert_eq!(status, 200, "{service}");
    let replica = service["status"]["replicas"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let logs = format!("/api/v1/services/chat/replicas/{replica}/logs");
    let (status, lines) = get(&up, &format!("{logs}?trace_id={trace_id}")).await;
    assert_eq!(status, 200, "{lines}");
    let lines = lines.as_str().unwrap();
    assert!(lines.contains("generation finished"), "{lines}");
    assert!(lines.lines().all(|l| l.contains(trace_id)), "{lines}");
    let (status, none) = get(&up, &format!("{logs}?trace_id={}", "0".repeat(31) + "1")).await;
    assert_eq!(
        (status, none.as_str()),
        (200, Some("")),
        "another trace has no lines"
    );
    let (status, refused) = get(&up, &format!("{logs}?trace_id=XYZ")).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["code"], "invalid_query", "{refused}");

    // The console's own JSON log line of a request carries its trace id.
    let console_trace = "6af7651916cd43dd8448eb211c80319c";
    let answered = reqwest::Client::new()
        .get(up.console.api("/api/v1/services"))
        .bearer_auth(&up.console.token)
        .header(
            "traceparent",
            format!("00-{console_trace}-d7ad6b7169203331-01"),
        )
        .send()
        .await
        .unwrap();
    assert!(answered.status().is_success());
    let log = home.path().join("home.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["span"]["trace_id"] == console_trace);
        if let Some(line) = found {
            break line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no console line of {console_trace} in {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(line["span"]["path"], "/api/v1/services", "{line}");
    assert_eq!(
        line["span"]["span_id"].as_str().map(str::len),
        Some(16),
        "{line}"
    );
}

/// `GET path` on the console as the admin: the status and the JSON answer
/// (the text as a JSON string when it is not JSON).
async fn get(up: &Up, path: &str) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .get(up.console.api(path))
        .bearer_auth(&up.console.token)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
