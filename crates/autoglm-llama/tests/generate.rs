//! Generation on the real SmolLM2-135M-Instruct GGUF: determinism under
//! batching, the three ways a generation ends, refusals, cancellation and
//! seeded sampling.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use autoglm_inference::{
    FinishReason, GenerationRequest, Generator, InferenceError, SamplingParams,
};
use autoglm_llama::LlamaGenerator;
use common::*;

const FRANCE: &str = "What is the capital of France?";

/// One generator for the tests that only need some generator; tests that
/// watch the scheduler's state load their own.
fn shared() -> &'static LlamaGenerator {
    static GENERATOR: OnceLock<LlamaGenerator> = OnceLock::new();
    GENERATOR.get_or_init(|| load(4, 512))
}

#[test]
fn info_describes_the_model() {
    let info = shared().info();
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.max_sequences, 4);
    assert_eq!(info.context_length, 512);
}

#[test]
fn greedy_output_is_deterministic_and_unchanged_by_batching() {
    let generator = load(4, 512);
    let alone = generate(&generator, FRANCE, greedy(40));
    assert!(alone.text.contains("Paris"), "{alone:?}");
    assert_eq!(generate(&generator, FRANCE, greedy(40)), alone);

    // The others start first so that the France prompt is prefilled and
    // decoded while they are mid-sequence.
    let others: Vec<_> = [
        "Write a poem about the sea.",
        "List three colours.",
        "Explain what a CPU does.",
    ]
    .into_iter()
    .map(|chat| submit(&generator, chat, greedy(60)))
    .collect();
    let batched = submit(&generator, FRANCE, greedy(40));
    let others: Vec<_> = others.into_iter().map(collect).collect();
    assert_eq!(collect(batched), alone);
    assert!(others.iter().all(|o| o.completion_tokens > 0));
}

#[test]
fn chunked_prefill_and_cached_prefixes_give_the_same_output() {
    let whole = load(2, 512);
    let options = autoglm_llama::LlamaOptions {
        max_sequences: 2,
        context_per_sequence: 512,
        prefill_chunk: 5,
        threads: THREADS,
    };
    let chunked = LlamaGenerator::load(&model_path(), options).unwrap();
    let chat = "Name the largest planet of the solar system and say one thing about it.";
    let reference = generate(&whole, chat, greedy(30));
    // A prompt split over many steps, while another sequence decodes.
    let neighbour = submit(&chunked, "Count from one to twenty.", greedy(40));
    assert_eq!(generate(&chunked, chat, greedy(30)), reference);
    collect(neighbour);

    // A follow-up turn starts from the cached first turn in both.
    let mut history = user(chat);
    history.push(autoglm_inference::ChatMessage {
        role: "assistant".into(),
        content: reference.text.clone(),
    });
    history.extend(user("And the smallest?"));
    let follow_up = |generator: &LlamaGenerator| {
        let prompt = generator.render_chat(&history).unwrap();
        let (events, received) = tokio::sync::mpsc::unbounded_channel();
        generator
            .submit(
                GenerationRequest {
                    prompt,
                    params: greedy(30),
                },
                events,
            )
            .unwrap();
        collect(received)
    };
    let (chunked_turn, whole_turn) = (follow_up(&chunked), follow_up(&whole));
    assert_eq!(chunked_turn, whole_turn);
    // The first turn's prompt (but for its last token, always evaluated
    // again) and answer came from the cache, the new question did not; the
    // count is what `usage.prompt_tokens_details` reports.
    let first_turn = reference.prompt_tokens - 1;
    for turn in [&chunked_turn, &whole_turn] {
        assert!(
            turn.cached_tokens >= first_turn && turn.cached_tokens < turn.prompt_tokens,
            "cached {} of {} prompt tokens; the first turn's prompt alone is {first_turn}",
            turn.cached_tokens,
            turn.prompt_tokens
        );
    }
    assert_eq!(reference.cached_tokens, 0, "a cold slot has nothing cached");
}

#[test]
fn max_tokens_ends_with_length() {
    let outcome = generate(shared(), "Write a long story about a dragon.", greedy(7));
    assert_eq!(outcome.finish_reason, FinishReason::Length);
    assert_eq!(outcome.completion_tokens, 7);
    assert!(!outcome.text.is_empty());
}

#[test]
fn end_of_turn_ends_with_stop() {
    let generator = shared();
    let outcome = generate(generator, FRANCE, greedy(200));
    assert_eq!(outcome.finish_reason, FinishReason::Stop, "{outcome:?}");
    assert!(outcome.completion_tokens < 200);
    assert!(!outcome.text.contains("<|im_end|>"));
    let prompt = generator.render_chat(&user(FRANCE)).unwrap();
    assert_eq!(
        outcome.prompt_tokens,
        generator.count_tokens(&prompt).unwrap()
    );
}

#[test]
fn stop_sequence_cuts_the_output() {
    let generator = shared();
    let full = generate(generator, FRANCE, greedy(40)).text;
    assert!(full.len() > 12, "{full:?}");
    // A piece from the middle of the known output; the output must end
    // right before its first occurrence.
    let start = (4..full.len())
        .find(|&i| full.is_char_boundary(i) && full.is_char_boundary(i + 5))
        .unwrap();
    let stop = full[start..start + 5].to_owned();
    let expected = &full[..full.find(&stop).unwrap()];

    let params = SamplingParams {
        stop: vec!["never appears".into(), stop.clone()],
        ..greedy(40)
    };
    let outcome = generate(generator, FRANCE, params);
    assert_eq!(outcome.finish_reason, FinishReason::Stop);
    assert_eq!(outcome.text, expected, "stop {stop:?} in {full:?}");
    assert!(!outcome.text.contains(&stop));
}

#[test]
fn chat_uses_the_models_template() {
    let generator = shared();
    let mut chat = vec![autoglm_inference::ChatMessage {
        role: "system".into(),
        content: "Be brief.".into(),
    }];
    chat.extend(user("Hello"));
    let prompt = generator.render_chat(&chat).unwrap();
    assert!(
        prompt.contains("<|im_start|>system\nBe brief.<|im_end|>"),
        "{prompt:?}"
    );
    assert!(
        prompt.contains("<|im_start|>user\nHello<|im_end|>"),
        "{prompt:?}"
    );
    assert!(prompt.ends_with("<|im_start|>assistant\n"), "{prompt:?}");

    let bad = vec![autoglm_inference::ChatMessage {
        role: "wizard".into(),
        content: "hi".into(),
    }];
    assert!(matches!(
        generator.render_chat(&bad),
        Err(InferenceError::InvalidInput(_))
    ));
}

#[test]
fn token_counts_include_special_tokens() {
    let generator = shared();
    assert!(generator.count_tokens("Hello").unwrap() >= 1);
    // `<|im_start|>` is one token, not its characters.
    let special = generator.count_tokens("<|im_start|>").unwrap();
    assert!(special <= 2, "{special}");
}

#[test]
fn too_long_prompts_are_refused() {
    let generator = shared();
    let request = |prompt: String, max_tokens| GenerationRequest {
        prompt,
        params: greedy(max_tokens),
    };
    let (events, _received) = tokio::sync::mpsc::unbounded_channel();

    let long = "hello ".repeat(1000);
    match generator.submit(request(long, 10), events.clone()) {
        Err(InferenceError::TooLong { tokens, limit }) => {
            assert_eq!(limit, 512);
            assert!(tokens > 1000, "{tokens}");
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
    // The completion counts too.
    match generator.submit(request("Hi".into(), 600), events) {
        Err(InferenceError::TooLong { tokens, limit: 512 }) => assert!(tokens > 600),
        other => panic!("expected TooLong, got {other:?}"),
    }
}

#[test]
fn bad_requests_are_refused() {
    let generator = shared();
    let bad = [
        SamplingParams {
            temperature: 2.5,
            ..greedy(8)
        },
        SamplingParams {
            temperature: -1.0,
            ..greedy(8)
        },
        SamplingParams {
            temperature: 0.7,
            top_p: 0.0,
            ..greedy(8)
        },
        SamplingParams {
            top_p: 1.1,
            ..greedy(8)
        },
        greedy(0),
        SamplingParams {
            stop: vec![String::new()],
            ..greedy(8)
        },
        SamplingParams {
            stop: vec!["x".into(); 5],
            ..greedy(8)
        },
        SamplingParams {
            stop: vec!["y".repeat(65)],
            ..greedy(8)
        },
    ];
    for params in bad {
        let (events, _received) = tokio::sync::mpsc::unbounded_channel();
        let result = generator.submit(
            GenerationRequest {
                prompt: "Hi".into(),
                params: params.clone(),
            },
            events,
        );
        assert!(
            matches!(result, Err(InferenceError::InvalidInput(_))),
            "{params:?}: {result:?}"
        );
    }
    let (events, _received) = tokio::sync::mpsc::unbounded_channel();
    let empty = generator.submit(
        GenerationRequest {
            prompt: String::new(),
            params: greedy(8),
        },
        events,
    );
    assert!(
        matches!(empty, Err(InferenceError::InvalidInput(_))),
        "{empty:?}"
    );
}

#[test]
fn dropping_the_receiver_stops_generation() {
    let generator = load(2, 2048);
    // Long enough that only cancellation can end it within the test's waits.
    let mut received = submit(
        &generator,
        "Write a very long story about a dragon and a knight.",
        greedy(1800),
    );
    assert!(matches!(
        received.blocking_recv(),
        Some(autoglm_inference::GenerationEvent::Text(_))
    ));
    assert_eq!(generator.active_sequences(), 1);
    drop(received);
    assert!(
        eventually(Duration::from_secs(5), || generator.active_sequences() == 0),
        "the sequence kept running"
    );

    // The freed slot and KV cells serve the next request normally.
    let next = generate(&generator, FRANCE, greedy(40));
    assert!(next.text.contains("Paris"), "{next:?}");
    assert_eq!(generator.active_sequences(), 0);
}

#[test]
fn requests_beyond_max_sequences_wait_their_turn() {
    let generator = shared();
    let receivers: Vec<_> = (0..6)
        .map(|i| submit(generator, &format!("Say the number {i}."), greedy(12)))
        .collect();
    for outcome in receivers.into_iter().map(collect) {
        assert!(outcome.completion_tokens >= 1);
    }
}

#[test]
fn seeded_sampling_is_reproducible() {
    let generator = shared();
    let params = |seed| SamplingParams {
        temperature: 0.8,
        top_p: 0.95,
        top_k: 40,
        seed: Some(seed),
        max_tokens: 24,
        stop: vec![],
    };
    let chat = "Tell me something about cats.";
    // Run side by side: a sequence's draws must not depend on its neighbours.
    let first = submit(generator, chat, params(7));
    let second = submit(generator, chat, params(7));
    let (first, second) = (collect(first), collect(second));
    assert_eq!(first, second);
    assert_eq!(generate(generator, chat, params(7)), first);
}

#[test]
fn dropping_the_generator_fails_unfinished_requests() {
    let generator = load(1, 256);
    let running = submit(&generator, FRANCE, greedy(200));
    let queued = submit(&generator, FRANCE, greedy(200));
    thread::sleep(Duration::from_millis(20));
    drop(generator);
    for mut received in [running, queued] {
        let mut last = None;
        while let Some(event) = received.blocking_recv() {
            last = Some(event);
        }
        assert!(
            matches!(
                last,
                Some(
                    autoglm_inference::GenerationEvent::Failed(_)
                        | autoglm_inference::GenerationEvent::Done { .. }
                )
            ),
            "{last:?}"
        );
    }
}
