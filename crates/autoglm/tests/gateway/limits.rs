//! Rate limits admit what a key is allowed, and usage counts what it used.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::env::{Env, one_version};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_admit_the_configured_amount_and_usage_is_counted() {
    let env = Env::with_echo(&[], 1, one_version(1), 1).await;

    // 5 requests per second: a burst of 20 gets 5 through.
    let (_, key) = env
        .key(json!({"rate_limit": {"requests_per_second": 5}}))
        .await;
    let started = Instant::now();
    let answers: Vec<(StatusCode, reqwest::header::HeaderMap)> = futures_util::stream::iter(0..20)
        .map(|_| {
            let req = env.chat(&key, "echo");
            async move {
                let r = req.send().await.unwrap();
                (r.status(), r.headers().clone())
            }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    let refill = (started.elapsed().as_secs_f64() * 5.0).floor() as usize;
    let ok = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert!(
        (5..=5 + refill).contains(&ok),
        "{ok} admitted of 20 at 5/s (refill {refill})"
    );
    let (_, limited) = answers
        .iter()
        .find(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .unwrap();
    assert_eq!(limited["retry-after"], "1");
    assert_eq!(limited["x-ratelimit-limit-requests"], "5");
    assert_eq!(limited["x-ratelimit-remaining-requests"], "0");

    // 30 tokens a minute, 20 used per answer: two get through, the third waits.
    let (id, key) = env
        .key(json!({"rate_limit": {"tokens_per_minute": 30}}))
        .await;
    // An answer tells what was left when it was admitted.
    for left in ["30", "10"] {
        let r = env.chat(&key, "echo").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-ratelimit-limit-tokens"], "30");
        assert_eq!(r.headers()["x-ratelimit-remaining-tokens"], left);
        assert_eq!(r.headers()["x-autoglm-version"], "1");
        r.bytes().await.unwrap();
        // Tokens are charged as the answer ends, just after the client has it.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = env.chat(&key, "echo").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (20..=24).contains(&wait),
        "10 tokens short at 0.5/s: {wait} s"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "rate_limit_error");

    // Usage per key, as the replica reported it, readable from the console.
    let rows = usage_of(&env, &id, 2).await;
    let sum = |f: &str| rows.iter().map(|r| r[f].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        (
            sum("requests"),
            sum("prompt_tokens"),
            sum("completion_tokens")
        ),
        (2, 20, 20),
        "{rows:?}"
    );
    assert_eq!(rows[0]["service"], "echo");
    assert_eq!(rows[0]["version"], "1");

    // A replica reporting absurd token counts (the largest 64-bit number, or
    // past it) neither breaks the gateway nor wraps a sum: each count is taken
    // at the gateway's ceiling of 2^32 - 1, and a count past 2^64 - 1 as none.
    let (id, key) = env.key(json!({})).await;
    for tokens in [
        "18446744073709551615",
        "18446744073709551615",
        "18446744073709551616",
    ] {
        let r = env
            .chat(&key, "echo")
            .header("x-test-usage", tokens)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes().await.unwrap();
    }
    let rows = usage_of(&env, &id, 3).await;
    let sum = |f: &str| rows.iter().map(|r| r[f].as_u64().unwrap()).sum::<u64>();
    let ceiling = u64::from(u32::MAX);
    assert_eq!(
        (
            sum("requests"),
            sum("prompt_tokens"),
            sum("completion_tokens")
        ),
        (3, 2 * ceiling, 2 * ceiling),
        "{rows:?}"
    );
    assert_eq!(
        env.chat(&key, "echo").send().await.unwrap().status(),
        StatusCode::OK
    );

    // A tenant limit covers every key of the tenant together: two keys, each
    // well within its own limit, are refused by the tenant's once their sum
    // passes it, and the refusal names the tenant's limit.
    let (s, b) = env
        .console(
            reqwest::Method::PUT,
            "/api/v1/tenants/default/rate-limit",
            Some(json!({"requests_per_second": 2})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let own = json!({"rate_limit": {"requests_per_second": 10}});
    let (_, a) = env.key(own.clone()).await;
    let (_, b2) = env.key(own).await;
    let mut ok = 0;
    let mut refusals = Vec::new();
    let started = Instant::now();
    for key in [&a, &b2, &a, &b2, &a, &b2] {
        let r = env.chat(key, "echo").send().await.unwrap();
        if r.status() == StatusCode::OK {
            ok += 1;
        } else {
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(r.headers()["x-ratelimit-limit-requests"], "2");
            let body: Value = r.json().await.unwrap();
            refusals.push(body["error"]["message"].as_str().unwrap().to_owned());
        }
    }
    let refill = (started.elapsed().as_secs_f64() * 2.0).floor() as usize;
    assert!(
        (2..=2 + refill).contains(&ok),
        "{ok} of 6 at a tenant limit of 2/s (refill {refill})"
    );
    assert!(!refusals.is_empty());
    for message in &refusals {
        assert!(
            message.starts_with("the tenant rate limit is reached"),
            "{message}"
        );
    }
    let (s, _) = env
        .console(
            reqwest::Method::PUT,
            "/api/v1/tenants/default/rate-limit",
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = env
        .console(
            reqwest::Method::PUT,
            "/api/v1/tenants/default/rate-limit",
            Some(json!({"requests_per_second": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .contains("requests_per_second"),
        "{b}"
    );
}

/// The usage rows of key `id` once they count `requests` requests (usage
/// is written every 2 s).
async fn usage_of(env: &Env, id: &str, requests: u64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, usage) = env
            .console(
                reqwest::Method::GET,
                &format!("/api/v1/usage?key={id}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{usage}");
        let rows = usage.as_array().unwrap().clone();
        let counted: u64 = rows.iter().map(|r| r["requests"].as_u64().unwrap()).sum();
        if counted >= requests {
            return rows;
        }
        assert!(Instant::now() < deadline, "usage of {id}: {usage}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The tenant's tokens today, as the console reports them, once they reach
/// `at_least` (usage is written every 2 s).
async fn tokens_today(env: &Env, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, quota) = env
            .console(reqwest::Method::GET, "/api/v1/quota", None)
            .await;
        assert_eq!(s, StatusCode::OK, "{quota}");
        let today = quota["used"]["tokens_today"].as_u64().unwrap();
        if today >= at_least {
            return today;
        }
        assert!(
            Instant::now() < deadline,
            "{at_least} tokens today: {quota}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_token_quota_refuses_once_the_days_tokens_are_spent() {
    let env = Env::with_echo(&[], 1, one_version(1), 1).await;
    let (s, b) = env
        .console(
            reqwest::Method::PUT,
            "/api/v1/tenants/default/quota",
            Some(json!({"tokens_per_day": 50, "tokens_per_month": 1000})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, key) = env.key(json!({})).await;

    // 20 tokens an answer: 0, 20 and 40 spent are under 50, 60 is not.
    for spent in [20, 40, 60] {
        let r = env.chat(&key, "echo").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes().await.unwrap();
        assert_eq!(tokens_today(&env, spent).await, spent);
    }
    let r = env.chat(&key, "echo").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let midnight = (chrono::Utc::now() + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let until = (midnight - chrono::Utc::now()).num_seconds();
    assert!(
        (until - 5..=until + 5).contains(&retry),
        "{retry} s, midnight in {until} s"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota");
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(
        body["error"]["message"],
        format!(
            "tenant default has spent 60 of its 50 tokens this day (UTC); the quota renews at {}",
            midnight.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    );
    let metrics = env.metrics().await;
    assert!(
        metrics.contains("autoglm_gateway_rate_limited_total{scope=\"tenant_quota\"} 1"),
        "{metrics}"
    );

    // A raised quota takes effect on the next request.
    let (s, b) = env
        .console(
            reqwest::Method::PUT,
            "/api/v1/tenants/default/quota",
            Some(json!({"tokens_per_day": 100})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let r = env.chat(&key, "echo").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
