//! A write acknowledged with 2xx survives `kill -9` at any moment, and the
//! audit chain still verifies after the crash.
#![allow(clippy::unwrap_used)]

mod common;

use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::Console;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_during_a_burst() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(home.path(), &[]);
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let mut writers = Vec::new();
    for writer in 0..8 {
        let client = console.client();
        let url = console.api("/api/v1/models");
        let token = console.token.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{writer}-m{i}");
                let sent = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"name": name, "labels": {"writer": writer.to_string()}}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => {
                        acknowledged.lock().insert(name);
                    }
                    Ok(r) => panic!("unexpected status {} before the kill", r.status()),
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    // Let the burst run until it has written a fair amount (however busy
    // the machine is), then kill in the middle of it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().len() <= 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the burst wrote only {} models in 60 s",
            acknowledged.lock().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(console); // SIGKILL + wait
    for w in writers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().clone();

    let console = Console::start(home.path(), &[]);
    let client = console.client();
    let mut present = BTreeSet::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = client
            .get(console.api("/api/v1/models"))
            .bearer_auth(&console.token)
            .query(&[("limit", "1000")]);
        if let Some(t) = &token {
            req = req.query(&[("page_token", t)]);
        }
        let page: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            present.insert(item["name"].as_str().unwrap().to_owned());
        }
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    let lost: Vec<_> = acknowledged.difference(&present).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {lost:?}",
        lost.len()
    );

    let verify: serde_json::Value = client
        .get(console.api("/api/v1/audit/verify"))
        .bearer_auth(&console.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verify["valid"], true, "{verify}");
    // Every model present has its creation record: the audit row commits with the change.
    let records = verify["records"].as_i64().unwrap();
    assert!(
        records as usize > present.len(),
        "{records} records for {} models",
        present.len()
    );
}
