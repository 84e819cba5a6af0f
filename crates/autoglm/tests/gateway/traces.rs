//! Requests as spans of the caller's trace, exported over OTLP to a real
//! Jaeger v2 (`scripts/jaeger.sh`) and read back from its query API.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::jaeger::{Jaeger, tag};
use crate::env::{Env, one_version};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_are_spans_of_the_callers_trace_exported_over_otlp() {
    let home = tempfile::tempdir().unwrap();
    let jaeger = Jaeger::start(home.path());
    let env = Env::with_echo(
        &["--otlp-endpoint", &jaeger.otlp_http],
        1,
        one_version(1),
        1,
    )
    .await;
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let r: Value = env
        .chat(&env.up.console.token, "echo")
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The replica is called as a child of the gateway's span, in the caller's trace.
    let sent = r["seen"]["traceparent"].as_str().unwrap().to_owned();
    let fields: Vec<&str> = sent.split('-').collect();
    assert_eq!(
        (fields[0], fields[1], fields[3]),
        ("00", trace, "01"),
        "{sent}"
    );
    assert_ne!(fields[2], parent);

    let spans = jaeger.spans_when(trace, 1, Duration::from_secs(10)).await;
    let span = &spans[0];
    assert_eq!(span["serviceName"], "autoglm-gateway", "{span}");
    assert_eq!(span["operationName"], "POST /v1/chat/completions");
    assert_eq!(span["references"][0]["refType"], "CHILD_OF", "{span}");
    assert_eq!(span["references"][0]["spanID"], parent, "{span}");
    assert_eq!(
        span["spanID"], fields[2],
        "the exported span is the replica's parent"
    );
    assert_eq!(
        tag(span, "http.response.status_code"),
        Some(&json!(200)),
        "{span}"
    );
    assert_eq!(tag(span, "autoglm.model"), Some(&json!("echo")), "{span}");
}
