//! The engine on the real all-MiniLM-L6-v2 weights: reference hidden
//! states, pooling and normalisation, padding independence, refusals.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use autoglm_embed::BertEmbedder;
use autoglm_inference::{Embedder, InferenceError};

/// Loading takes a moment; every test shares one model, as the runtime would.
fn model() -> &'static BertEmbedder {
    static MODEL: OnceLock<BertEmbedder> = OnceLock::new();
    MODEL.get_or_init(|| {
        BertEmbedder::load(&autoglm_testmodels::path(autoglm_testmodels::MINILM)).unwrap()
    })
}

fn embed(texts: &[&str]) -> Vec<Vec<f32>> {
    let inputs: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
    model().embed(&inputs).unwrap().vectors
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn first_token_state_matches_candles_reference() {
    let states = model().token_states("Here is a test sentence").unwrap();
    // [CLS] here is a test sentence [SEP]
    assert_eq!(states.len(), 7);
    assert!(states.iter().all(|s| s.len() == 384));
    let expected = [0.0798, -0.0665, -0.0247];
    for (got, want) in states[0].iter().zip(expected) {
        assert!(
            (got - want).abs() < 1e-3,
            "first token starts {:?}, want {expected:?}",
            &states[0][..3]
        );
    }
}

#[test]
fn reports_dimensions_and_limit_from_the_config() {
    assert_eq!(model().dimensions(), 384);
    assert_eq!(model().max_tokens(), 256);
}

#[test]
fn pooled_vectors_have_unit_length_and_token_counts() {
    let inputs = vec!["A cat sits on the mat.".to_owned(), "Hello".to_owned()];
    let out = model().embed(&inputs).unwrap();
    assert_eq!(out.vectors.len(), 2);
    for v in &out.vectors {
        assert_eq!(v.len(), 384);
        assert!((dot(v, v).sqrt() - 1.0).abs() < 1e-4);
    }
    // With [CLS] and [SEP].
    assert_eq!(out.tokens, vec![9, 3]);
}

#[test]
fn similar_meanings_are_closer() {
    let v = embed(&[
        "A cat sits on the mat.",
        "A kitten rests on the rug.",
        "He plays the guitar on stage.",
    ]);
    assert!(
        dot(&v[0], &v[1]) > dot(&v[0], &v[2]) + 0.1,
        "cat~kitten {} cat~guitar {}",
        dot(&v[0], &v[1]),
        dot(&v[0], &v[2])
    );
    let w = embed(&["cat", "kitten", "guitar"]);
    assert!(dot(&w[0], &w[1]) > dot(&w[0], &w[2]));
}

#[test]
fn padding_does_not_change_a_vector() {
    let short = "A cat sits on the mat.";
    let long = "The quick brown fox jumps over the lazy dog while the band plays a long and \
                rather complicated piece of music in the park on a sunny afternoon in late June, \
                and nobody seems to notice the rain clouds gathering far away over the hills.";
    let alone = embed(&[short]);
    let batched = embed(&[long, short, "cat"]);
    let alone_cat = embed(&["cat"]);
    for (a, b) in alone[0].iter().zip(&batched[1]) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    for (a, b) in alone_cat[0].iter().zip(&batched[2]) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

#[test]
fn refuses_too_long_inputs_without_truncating() {
    // "word" is one token: 255 of them plus [CLS] and [SEP] is 257.
    let long = vec![format!("word{}", " word".repeat(254))];
    match model().embed(&long) {
        Err(InferenceError::TooLong { tokens, limit }) => {
            assert_eq!(limit, 256);
            assert_eq!(tokens, 257);
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
    // Exactly at the limit is fine.
    let fits = vec![format!("word{}", " word".repeat(253))];
    assert_eq!(model().embed(&fits).unwrap().tokens, vec![256]);
    // One bad input refuses the whole batch.
    let mixed = vec!["fine".to_owned(), long[0].clone()];
    assert!(matches!(
        model().embed(&mixed),
        Err(InferenceError::TooLong { .. })
    ));
    assert!(matches!(
        model().token_states(&long[0]),
        Err(InferenceError::TooLong { .. })
    ));
}

#[test]
fn refuses_empty_inputs_and_empty_batches() {
    for bad in [
        vec![String::new()],
        vec!["ok".to_owned(), "  \n".to_owned()],
        vec![],
    ] {
        match model().embed(&bad) {
            Err(InferenceError::InvalidInput(_)) => {}
            other => panic!("expected InvalidInput for {bad:?}, got {other:?}"),
        }
    }
    assert!(matches!(
        model().token_states(""),
        Err(InferenceError::InvalidInput(_))
    ));
}

#[test]
fn embeds_from_several_threads_at_once() {
    fn shared<T: Send + Sync>(_: &T) {}
    shared(model());
    let input = vec!["A cat sits on the mat.".to_owned()];
    let reference = model().embed(&input).unwrap().vectors;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| model().embed(&input).unwrap().vectors))
            .collect();
        for handle in handles {
            let got = handle.join().unwrap();
            for (a, b) in reference[0].iter().zip(&got[0]) {
                assert!((a - b).abs() < 1e-5);
            }
        }
    });
}
