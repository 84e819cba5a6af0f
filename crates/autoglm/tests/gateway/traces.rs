//! Requests as spans of the caller's trace, exported over OTLP.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::env::{Env, one_version};

/// An OTLP/HTTP receiver: answers every POST with 200 and hands over the
/// decoded trace exports. (No OpenTelemetry Collector is installable here;
/// this is the receiving end of the same protocol, decoded with the
/// protocol's own generated types.)
fn otlp_receiver() -> (
    String,
    std::sync::mpsc::Receiver<
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
    >,
) {
    use prost::Message;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    let mut path = String::new();
                    loop {
                        line.clear();
                        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if path.is_empty() {
                            path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    assert_eq!(path, "/v1/traces");
                    tx.send(
                        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                            body.as_slice(),
                        )
                        .unwrap(),
                    )
                    .unwrap();
                    stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                }
            });
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_are_spans_of_the_callers_trace_exported_over_otlp() {
    let (collector, exports) = otlp_receiver();
    let (env, _home) = Env::with_echo(&["--otlp-endpoint", &collector], 1, one_version(1), 1).await;
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

    let deadline = Instant::now() + Duration::from_secs(10);
    let span = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let export = exports
            .recv_timeout(left)
            .expect("no span exported within 10 s");
        let found = export
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .find(|s| hex(&s.trace_id) == trace)
            .cloned();
        if let Some(span) = found {
            break span;
        }
    };
    assert_eq!(span.name, "POST /v1/chat/completions");
    assert_eq!(hex(&span.parent_span_id), parent);
    assert_eq!(
        hex(&span.span_id),
        fields[2],
        "the exported span is the replica's parent"
    );
    let attribute = |key: &str| {
        span.attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.clone())
            .and_then(|v| v.value)
            .map(|v| format!("{v:?}"))
            .unwrap_or_default()
    };
    assert!(
        attribute("http.response.status_code").contains("200"),
        "{span:?}"
    );
    assert!(attribute("autoglm.model").contains("echo"), "{span:?}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
