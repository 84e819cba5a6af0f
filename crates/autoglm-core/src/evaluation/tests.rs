//! The evaluation rules step by step: datasets parsed and refused, answers
//! read by kind, percentiles, and scores against labels.

use std::time::Duration;

use serde_json::json;

use super::*;

fn ok(prediction: Prediction, ms: u64) -> Outcome {
    Outcome {
        latency: Duration::from_millis(ms),
        answer: Ok(Answer {
            prediction: Some(prediction),
            completion_tokens: None,
        }),
    }
}

#[test]
fn a_dataset_is_one_kind_of_request_per_line_with_labels_taken_out() {
    let d = parse_dataset(
        "{\"input\": \"goal!\", \"label\": \"sport\", \"model\": \"x\"}\n\n{\"input\": \"rain\"}\n",
    )
    .unwrap();
    assert_eq!(d.kind, RequestKind::Embedding);
    assert_eq!(d.samples.len(), 2);
    assert_eq!(d.samples[0].label, Some(json!("sport")));
    assert!(!d.samples[0].body.contains_key("label"));
    assert!(!d.samples[0].body.contains_key("model"), "set when sent");
    assert_eq!(d.samples[1].label, None);
    assert_eq!(RequestKind::Infer.path("iris"), "/v2/models/iris/infer");
}

#[test]
fn bad_datasets_name_the_line_and_the_fault() {
    let cases = [
        ("", 0, "no lines"),
        ("{\"input\": \"a\"}\nnot json", 2, "is not JSON"),
        ("[1]", 1, "not a JSON object"),
        ("{\"text\": \"a\"}", 1, "has none of messages"),
        (
            "{\"input\": \"a\", \"prompt\": \"b\"}",
            1,
            "prompt and input",
        ),
        ("{\"input\": \"a\"}\n{\"prompt\": \"b\"}", 2, "one kind"),
        ("{\"input\": [\"a\", \"b\"]}", 1, "one text"),
        ("{\"messages\": []}", 1, "at least one message"),
        ("{\"inputs\": {}}", 1, "at least one tensor"),
        ("{\"prompt\": \"a\", \"label\": [1]}", 1, "label must be"),
    ];
    for (text, line, words) in cases {
        let e = parse_dataset(text).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.to_string().contains(words), "{text:?}: {e}");
    }
    let long = "{\"prompt\": \"a\"}\n".repeat(MAX_SAMPLES + 1);
    assert_eq!(parse_dataset(&long).unwrap_err().line, MAX_SAMPLES + 1);
}

#[test]
fn answers_are_read_by_kind() {
    let chat = json!({"choices": [{"message": {"content": " Paris "}}], "usage": {"completion_tokens": 3}});
    let a = read_answer(RequestKind::Chat, &chat);
    assert_eq!(a.prediction, Some(Prediction::Text(" Paris ".into())));
    assert_eq!(a.completion_tokens, Some(3));
    let embedding = json!({"data": [{"embedding": [0.5, -1]}]});
    assert_eq!(
        read_answer(RequestKind::Embedding, &embedding).prediction,
        Some(Prediction::Vector(vec![0.5, -1.0]))
    );
    // An integer label output wins over the probabilities...
    let labelled = json!({"outputs": [
        {"name": "probabilities", "datatype": "FP32", "data": [0.1, 0.2, 0.7]},
        {"name": "label", "datatype": "INT64", "data": [1]}
    ]});
    assert_eq!(
        read_answer(RequestKind::Infer, &labelled).prediction,
        Some(Prediction::Label("1".into()))
    );
    // ...and without one, the largest value's index is the class.
    let scores =
        json!({"outputs": [{"name": "logits", "datatype": "FP32", "data": [0.1, 0.9, 0.3]}]});
    assert_eq!(
        read_answer(RequestKind::Infer, &scores).prediction,
        Some(Prediction::Label("1".into()))
    );
    assert_eq!(read_answer(RequestKind::Chat, &json!({})).prediction, None);
}

#[test]
fn quantiles_are_by_nearest_rank() {
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(quantile(&v, 0.5), 50.0);
    assert_eq!(quantile(&v, 0.95), 95.0);
    assert_eq!(quantile(&v, 0.99), 99.0);
    assert_eq!(quantile(&[7.0], 0.99), 7.0);
    assert_eq!(quantile(&[], 0.5), 0.0);
}

#[test]
fn a_summary_counts_errors_latency_throughput_and_exact_matches() {
    let d = parse_dataset(
        "{\"prompt\": \"a\", \"label\": \"Yes\"}\n{\"prompt\": \"b\", \"label\": \"no\"}\n{\"prompt\": \"c\", \"label\": \"x\"}\n{\"prompt\": \"d\"}",
    )
    .unwrap();
    let outcomes = vec![
        ok(Prediction::Text("yes\n".into()), 10),
        ok(Prediction::Text("maybe".into()), 30),
        Outcome {
            latency: Duration::from_millis(20),
            answer: Err("503: overloaded".into()),
        },
        ok(Prediction::Text("whatever".into()), 40),
    ];
    let r = summarise(&d, &outcomes, Duration::from_secs(2));
    assert_eq!((r.requests, r.errors), (4, 1));
    assert_eq!(r.error_ratio, 0.25);
    assert_eq!(r.throughput, 2.0);
    assert_eq!(r.latency_ms.p50, 20.0);
    assert_eq!(r.latency_ms.max, 40.0);
    assert_eq!(r.latency_ms.mean, 25.0);
    assert_eq!(r.first_errors, vec!["503: overloaded".to_owned()]);
    // Two labelled lines were answered; one matched (case and space aside).
    let score = r.score.unwrap();
    assert_eq!(score.metric, "exactMatch");
    assert_eq!((score.value, score.labelled), (0.5, 2));
    assert_eq!(r.tokens_per_second, None);
}

#[test]
fn embeddings_score_by_their_nearest_labelled_neighbour() {
    let d = parse_dataset(
        "{\"input\": \"a\", \"label\": \"x\"}\n{\"input\": \"b\", \"label\": \"x\"}\n{\"input\": \"c\", \"label\": \"y\"}\n{\"input\": \"d\", \"label\": \"y\"}",
    )
    .unwrap();
    let v = |a: f64, b: f64| ok(Prediction::Vector(vec![a, b]), 1);
    // Two tight pairs: every line's neighbour shares its label.
    let apart = summarise(
        &d,
        &[v(1.0, 0.1), v(1.0, 0.0), v(0.0, 1.0), v(0.1, 1.0)],
        Duration::from_secs(1),
    );
    assert_eq!(apart.score.as_ref().unwrap().value, 1.0);
    assert_eq!(apart.score.unwrap().metric, "nearestNeighbourAccuracy");
    // The labels crossed: every neighbour carries the other label.
    let crossed = summarise(
        &d,
        &[v(1.0, 0.1), v(0.0, 1.0), v(1.0, 0.0), v(0.1, 1.0)],
        Duration::from_secs(1),
    );
    assert_eq!(crossed.score.unwrap().value, 0.0);
}

#[test]
fn no_labels_no_score_and_tokens_are_counted_when_told() {
    let d = parse_dataset("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}").unwrap();
    let outcome = Outcome {
        latency: Duration::from_millis(5),
        answer: Ok(Answer {
            prediction: Some(Prediction::Text("hello".into())),
            completion_tokens: Some(8),
        }),
    };
    let r = summarise(&d, &[outcome], Duration::from_secs(4));
    assert_eq!(r.score, None);
    assert_eq!(r.tokens_per_second, Some(2.0));
}
