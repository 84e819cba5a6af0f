//! Watchers across a console crash: 100 long-poll watchers, each on its own
//! key, keep the md5 they last heard; the console is killed with SIGKILL
//! right after a round of publishes and started again on another port. Every
//! watcher comes back with its md5s and ends holding each key's newest
//! version, and none ever hears a version older than one it heard before.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Console;
use parking_lot::RwLock;
use serde_json::{Value, json};

const WATCHERS: usize = 100;

fn key_url(console_url: &str, i: usize) -> String {
    format!("{console_url}/api/v1/config/environments/dev/keys/DEFAULT_GROUP/k{i}.txt")
}

async fn publish_all(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    keys: impl Iterator<Item = usize>,
    round: u32,
) {
    for i in keys {
        let r = http
            .put(key_url(url, i))
            .bearer_auth(token)
            .json(&json!({"content": format!("key {i} round {round}")}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
}

/// A watcher: long-polls its key holding the last md5 heard, follows the
/// console to wherever `url` says it now is, and keeps every version heard.
async fn watch(
    http: reqwest::Client,
    url: Arc<RwLock<String>>,
    token: String,
    i: usize,
    started: Arc<AtomicUsize>,
    done: Arc<RwLock<Option<Vec<String>>>>,
) -> Vec<u64> {
    let mut md5 = String::new();
    let mut heard = Vec::new();
    loop {
        if let Some(want) = done.read().as_ref()
            && want[i] == md5
        {
            return heard;
        }
        let base = url.read().clone();
        let answer = http
            .post(format!("{base}/api/v1/config/watch"))
            .bearer_auth(&token)
            .json(&json!({"keys": [{"environment": "dev", "key": format!("k{i}.txt"), "md5": md5}], "timeoutMs": 2000}))
            .send()
            .await;
        let Ok(answer) = answer else {
            // The console is down: try again shortly.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(body) = answer.json::<Value>().await else {
            continue;
        };
        if let Some(change) = body["changed"].as_array().and_then(|c| c.first()) {
            md5 = change["md5"].as_str().unwrap().to_owned();
            if heard.is_empty() {
                started.fetch_add(1, Ordering::SeqCst);
            }
            heard.push(change["version"].as_u64().unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_killed_and_restarted_loses_no_notification() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let mut console = Console::start(&home, &[]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let token = console.token.clone();
    publish_all(&http, &console.url, &token, 0..WATCHERS, 1).await;
    let url = Arc::new(RwLock::new(console.url.clone()));
    let done: Arc<RwLock<Option<Vec<String>>>> = Arc::default();
    let started = Arc::new(AtomicUsize::new(0));
    let watchers: Vec<_> = (0..WATCHERS)
        .map(|i| {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            tokio::spawn(watch(http, url, token, i, started.clone(), done.clone()))
        })
        .collect();
    // Every watcher has heard version 1 before the crash round begins.
    let deadline = Instant::now() + Duration::from_secs(30);
    while started.load(Ordering::SeqCst) < WATCHERS {
        assert!(Instant::now() < deadline, "watchers never heard version 1");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Round 2 is acknowledged, then the console dies at once.
    publish_all(&http, &console.url, &token, 0..WATCHERS, 2).await;
    console.child.kill().unwrap();
    console.child.wait().unwrap();
    let restarted = Console::start(&home, &[]);
    *url.write() = restarted.url.clone();
    // Round 3, on half the keys, after the restart.
    publish_all(&http, &restarted.url, &token, (0..WATCHERS).step_by(2), 3).await;

    let mut newest = Vec::new();
    for i in 0..WATCHERS {
        let v: Value = http
            .get(key_url(&restarted.url, i))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let want = if i % 2 == 0 { 3 } else { 2 };
        assert_eq!(v["version"], want, "{v}");
        newest.push(v["md5"].as_str().unwrap().to_owned());
    }
    *done.write() = Some(newest);
    for (i, watcher) in watchers.into_iter().enumerate() {
        let heard = tokio::time::timeout(Duration::from_secs(30), watcher)
            .await
            .unwrap_or_else(|_| panic!("watcher {i} never heard its key's newest version"))
            .unwrap();
        assert!(
            heard.windows(2).all(|w| w[0] < w[1]),
            "watcher {i} heard {heard:?}: a version went back"
        );
        assert_eq!(
            heard.last().copied(),
            Some(if i % 2 == 0 { 3 } else { 2 }),
            "watcher {i} heard {heard:?}"
        );
    }
}
