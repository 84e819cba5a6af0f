//! The example filters, built from source with the public proxy-wasm SDK,
//! run by the host over real exchanges: each changes what it should, and
//! the sandbox stops the faulty one by its deadline, its memory cap, or its
//! trap, failing open or closed as attached, without harm to the next
//! request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use autoglm_filters::{
    Attachment, Compiled, Exchange, FailureKind, Flow, Limits, ModuleError, Properties, Run, Stats,
};
use autoglm_testfilters as filters;

/// Generous limits: a well-behaved filter must not fail a test on a busy
/// machine; the tests of the limits set their own.
const ROOMY: Limits = Limits {
    deadline: Duration::from_secs(5),
    memory: 64 * 1024 * 1024,
};

fn attach(name: &str, config: &str, fail_open: bool) -> Arc<Attachment> {
    attach_with(name, config, fail_open, ROOMY)
}

fn attach_with(name: &str, config: &str, fail_open: bool, limits: Limits) -> Arc<Attachment> {
    let module = Compiled::new(&filters::module(name)).expect("the example compiles");
    Attachment::new(
        name,
        module,
        config.as_bytes(),
        fail_open,
        limits,
        Stats::default(),
    )
}

/// The gateway's deadline, for the filter that spins.
const SPIN: Limits = Limits {
    deadline: Duration::from_millis(100),
    memory: 64 * 1024 * 1024,
};

fn chat(body: &str) -> Exchange {
    Exchange {
        request_headers: vec![
            (":method".into(), b"POST".to_vec()),
            (":path".into(), b"/v1/chat/completions".to_vec()),
            (":authority".into(), b"gateway".to_vec()),
            ("content-type".into(), b"application/json".to_vec()),
        ],
        request_body: body.as_bytes().to_vec(),
        properties: Properties {
            tenant: "acme".into(),
            service: "chat".into(),
            ..Properties::default()
        },
        ..Exchange::default()
    }
}

fn respond(exchange: &mut Exchange) {
    exchange.response_headers = vec![
        (":status".into(), b"200".to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
    ];
}

#[test]
fn the_header_injector_sets_request_and_response_headers() {
    let injector = attach(
        filters::HEADER_INJECTOR,
        r#"{"request": {"x-tenant-tier": "gold", "content-type": "application/json; charset=utf-8"}, "response": {"x-served-by": "autoglm"}}"#,
        false,
    );
    let mut run = Run::new(vec![injector.clone()]);
    let mut exchange = chat("{}");
    assert_eq!(run.request(&mut exchange), Ok(Flow::Continue));
    assert_eq!(exchange.request_header("x-tenant-tier"), Some(&b"gold"[..]));
    assert_eq!(
        exchange.request_header("content-type"),
        Some(&b"application/json; charset=utf-8"[..]),
        "set replaces the header"
    );
    assert_eq!(
        exchange
            .request_headers
            .iter()
            .filter(|(n, _)| n == "content-type")
            .count(),
        1
    );
    respond(&mut exchange);
    assert_eq!(
        run.response_headers(&mut exchange, false),
        Ok(Flow::Continue)
    );
    assert_eq!(
        exchange.response_header("x-served-by"),
        Some(&b"autoglm"[..])
    );
    drop(run);
    assert_eq!(injector.stats.requests.get(), 1);
}

#[test]
fn the_auth_check_answers_for_itself_unless_the_team_is_allowed() {
    let check = attach(
        filters::AUTH_CHECK,
        r#"{"header": "x-team", "allowed": ["red", "blue"]}"#,
        false,
    );
    let mut run = Run::new(vec![check.clone()]);
    let mut refused = chat("{}");
    let Ok(Flow::Respond(local)) = run.request(&mut refused) else {
        panic!("a request without the header must be answered by the filter");
    };
    assert_eq!(local.status, 403);
    let body: serde_json::Value = serde_json::from_slice(&local.body).expect("JSON");
    assert_eq!(body["error"]["code"], "filter_denied");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("red, blue")
    );
    assert!(
        local
            .headers
            .contains(&("content-type".into(), b"application/json".to_vec()))
    );

    let mut run = Run::new(vec![check.clone()]);
    let mut allowed = chat("{}");
    allowed
        .request_headers
        .push(("x-team".into(), b"blue".to_vec()));
    assert_eq!(run.request(&mut allowed), Ok(Flow::Continue));
    drop(run);
    assert_eq!(check.stats.local_responses.get(), 1);
}

#[test]
fn a_configuration_the_filter_refuses_is_told_at_attach_time() {
    let failure = attach(filters::AUTH_CHECK, r#"{"allowed": []}"#, false)
        .check()
        .expect_err("auth-check needs a header and a list");
    assert_eq!(failure.kind, FailureKind::Refused);
    assert!(
        failure.message.contains("configuration"),
        "{}",
        failure.message
    );
    attach(
        filters::AUTH_CHECK,
        r#"{"header": "x-team", "allowed": ["red"]}"#,
        false,
    )
    .check()
    .expect("a good configuration starts");
}

#[test]
fn the_redactor_and_the_template_rewrite_the_body_in_chain_order() {
    let chain = vec![
        attach(filters::PII_REDACTOR, "{}", false),
        attach(
            filters::PROMPT_TEMPLATE,
            r#"{"system": "You answer for {tenant} through {service}."}"#,
            false,
        ),
    ];
    let mut run = Run::new(chain);
    let mut exchange = chat(
        r#"{"model":"chat","max_tokens":4096,"messages":[{"role":"user","content":"Mail jane.doe@example.com or call +1 415-555-0100, card 4111 1111 1111 1111, SSN 123-45-6789."}]}"#,
    );
    assert_eq!(run.request(&mut exchange), Ok(Flow::Continue));
    let body: serde_json::Value =
        serde_json::from_slice(&exchange.request_body).expect("still JSON");
    assert_eq!(body["max_tokens"], 4096, "ordinary numbers stay");
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(
        body["messages"][0]["content"],
        "You answer for acme through chat."
    );
    let user = body["messages"][1]["content"].as_str().unwrap_or_default();
    for gone in [
        "jane.doe@example.com",
        "415-555-0100",
        "4111 1111 1111 1111",
        "123-45-6789",
    ] {
        assert!(!user.contains(gone), "{gone} is still in {user:?}");
    }
    for mark in [
        "[REDACTED EMAIL]",
        "[REDACTED PHONE]",
        "[REDACTED CARD]",
        "[REDACTED SSN]",
    ] {
        assert!(user.contains(mark), "{mark} is not in {user:?}");
    }
}

#[test]
fn a_spinning_filter_is_stopped_by_its_deadline_and_fails_as_attached() {
    let config = r#"{"mode": "spin"}"#;
    let closed = attach_with(filters::MISBEHAVE, config, false, SPIN);
    let started = Instant::now();
    let refusal = Run::new(vec![closed.clone()])
        .request(&mut chat("{}"))
        .expect_err("a filter failing closed refuses the request");
    assert_eq!(refusal.failure.kind, FailureKind::Deadline);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stopped after {:?}",
        started.elapsed()
    );
    assert_eq!(closed.stats.failures(FailureKind::Deadline), 1);
    assert!(
        closed
            .stats
            .last_failure()
            .is_some_and(|m| m.contains("deadline"))
    );

    let open = attach_with(filters::MISBEHAVE, config, true, SPIN);
    let after = attach(
        filters::HEADER_INJECTOR,
        r#"{"request": {"x-after": "1"}}"#,
        false,
    );
    let mut exchange = chat("{}");
    assert_eq!(
        Run::new(vec![open.clone(), after]).request(&mut exchange),
        Ok(Flow::Continue),
        "failing open, the request goes on to the next filter"
    );
    assert_eq!(exchange.request_header("x-after"), Some(&b"1"[..]));
    assert_eq!(open.stats.failures(FailureKind::Deadline), 1);
}

#[test]
fn a_hogging_filter_stops_at_its_memory_cap_and_a_trapping_one_traps() {
    let hog = attach(filters::MISBEHAVE, r#"{"mode": "hog"}"#, false);
    let refusal = Run::new(vec![hog.clone()])
        .request(&mut chat("{}"))
        .expect_err("refused");
    assert_eq!(
        refusal.failure.kind,
        FailureKind::Memory,
        "{}",
        refusal.failure
    );
    assert!(
        refusal
            .failure
            .message
            .contains(&Limits::default().memory.to_string())
    );

    let trap = attach(filters::MISBEHAVE, r#"{"mode": "trap"}"#, false);
    let refusal = Run::new(vec![trap.clone()])
        .request(&mut chat("{}"))
        .expect_err("refused");
    assert_eq!(
        refusal.failure.kind,
        FailureKind::Trap,
        "{}",
        refusal.failure
    );

    // The same attachment on: its instance traps at the response's head
    // each time, and is made again for the next request, whose request
    // callbacks run as before.
    let late = attach(
        filters::MISBEHAVE,
        r#"{"mode": "trap", "phase": "response_headers"}"#,
        true,
    );
    for round in 1..=3 {
        let mut exchange = chat("{}");
        let mut run = Run::new(vec![late.clone()]);
        assert_eq!(
            run.request(&mut exchange),
            Ok(Flow::Continue),
            "round {round}"
        );
        respond(&mut exchange);
        assert_eq!(
            run.response_headers(&mut exchange, false),
            Ok(Flow::Continue)
        );
        assert_eq!(late.stats.failures(FailureKind::Trap), round);
        assert_eq!(late.stats.requests.get(), round, "a new stream each round");
    }
}

#[test]
fn modules_that_are_not_filters_are_refused_with_the_reason() {
    assert!(matches!(
        Compiled::new(b"not wasm at all"),
        Err(ModuleError::Invalid(_))
    ));
    let truncated = &filters::module(filters::HEADER_INJECTOR)[..100];
    assert!(matches!(
        Compiled::new(truncated),
        Err(ModuleError::Invalid(_))
    ));
    // The smallest valid module: no exports at all.
    let empty = b"\0asm\x01\0\0\0";
    let Err(ModuleError::NotAFilter(why)) = Compiled::new(empty) else {
        panic!("an empty module is not a filter");
    };
    assert!(why.contains("proxy_abi_version_0_2_1"), "{why}");
}

#[test]
fn a_filter_that_pauses_the_response_body_gets_all_of_it_at_the_end() {
    let redactor = attach(filters::PII_REDACTOR, r#"{"responses": true}"#, false);
    let mut run = Run::new(vec![redactor]);
    let mut exchange = chat("{}");
    assert_eq!(run.request(&mut exchange), Ok(Flow::Continue));
    respond(&mut exchange);
    assert_eq!(
        run.response_headers(&mut exchange, false),
        Ok(Flow::Continue)
    );
    let mut passed = Vec::new();
    for (piece, end) in [
        ("write to jane.d", false),
        ("oe@example.com", false),
        (" today", true),
    ] {
        exchange.response_body = piece.as_bytes().to_vec();
        assert_eq!(run.response_body(&mut exchange, end), Ok(Flow::Continue));
        if !end {
            assert!(exchange.response_body.is_empty(), "held back until the end");
        }
        passed.extend_from_slice(&exchange.response_body);
    }
    assert_eq!(
        String::from_utf8(passed).unwrap(),
        "write to [REDACTED EMAIL] today"
    );
}

#[test]
fn a_filter_failing_again_and_again_is_suspended_without_running() {
    let spin = attach_with(filters::MISBEHAVE, r#"{"mode": "spin"}"#, true, SPIN);
    for _ in 0..5 {
        assert_eq!(
            Run::new(vec![spin.clone()]).request(&mut chat("{}")),
            Ok(Flow::Continue)
        );
    }
    assert_eq!(spin.stats.failures(FailureKind::Deadline), 5);
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(
            Run::new(vec![spin.clone()]).request(&mut chat("{}")),
            Ok(Flow::Continue)
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "suspended requests ran it: {:?}",
        started.elapsed()
    );
    assert_eq!(spin.stats.failures(FailureKind::Deadline), 5);
    assert_eq!(spin.stats.failures(FailureKind::Suspended), 20);
}

#[test]
fn a_filters_own_answer_stands_whatever_its_fail_mode() {
    // The auth check's refusal is the filter's decision, not a failure:
    // failing open does not undo it.
    let open = attach(
        filters::AUTH_CHECK,
        r#"{"header": "x-team", "allowed": ["red"]}"#,
        true,
    );
    let Ok(Flow::Respond(local)) = Run::new(vec![open]).request(&mut chat("{}")) else {
        panic!("refused");
    };
    assert_eq!(local.status, 403);
}
