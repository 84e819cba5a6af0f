//! A write acknowledged with 2xx survives `kill -9` at any moment, and the
//! audit chain still verifies after the crash. `kill -9` keeps the page
//! cache, so that alone would pass without any fsync: a second test watches
//! the console's syscalls with `strace` while concurrent writers create
//! models, and checks that each acknowledged write had a whole sync of the
//! database's WAL between its request and its answer, and that concurrent
//! writes shared syncs (group commit: fewer syncs than writes).
#![allow(clippy::unwrap_used)]

mod common;

use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Console;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_during_a_burst() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(home.path(), &[]);
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let mut writers = Vec::new();
    for writer in 0..16 {
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

/// Seconds since the epoch, as `strace -ttt` prints them.
fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One sync of the WAL as strace saw it: when it started and ended.
#[derive(Debug, Clone, Copy)]
struct Sync {
    start: f64,
    end: f64,
}

/// The WAL syncs that succeeded in an `strace -f -ttt -T -y` log. A call that
/// another thread interrupted is logged in two lines, joined by thread id:
/// `TID 1765000000.123456 fdatasync(7</.../autoglm.db-wal> <unfinished ...>`
/// `TID 1765000000.123999 <... fdatasync resumed>) = 0 <0.000600>`
fn wal_syncs(log: &str) -> Vec<Sync> {
    let duration = |line: &str| -> Option<f64> {
        line.trim_end()
            .strip_suffix('>')?
            .rsplit_once('<')?
            .1
            .parse()
            .ok()
    };
    let mut pending = std::collections::HashMap::new();
    let mut syncs = Vec::new();
    for line in log.lines() {
        let mut fields = line.split_whitespace();
        let (Some(tid), Some(start)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(start) = start.parse::<f64>() else {
            continue;
        };
        if line.contains("-wal>") && line.contains("sync(") {
            if line.contains("<unfinished ...>") {
                pending.insert(tid.to_owned(), start);
            } else if line.contains(") = 0 ") {
                let end = start + duration(line).unwrap_or(f64::INFINITY);
                syncs.push(Sync { start, end });
            }
        } else if line.contains("sync resumed>")
            && line.contains(") = 0 ")
            && let Some(start) = pending.remove(tid)
        {
            // -T times the whole call, from its start on the first line.
            let end = start + duration(line).unwrap_or(f64::INFINITY);
            syncs.push(Sync { start, end });
        }
    }
    syncs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_write_synced_the_wal_before_its_answer() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(&home.path().join("home"), &[]);
    let log = home.path().join("syncs.strace");
    // Attached to the running console (every thread), printing each sync
    // with its start, its duration and the file behind its descriptor.
    let mut strace = Command::new("strace")
        .args([
            "-f",
            "-ttt",
            "-T",
            "-y",
            "-e",
            "trace=fsync,fdatasync",
            "-o",
        ])
        .arg(&log)
        .args(["-p", &console.child.id().to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace (in the install list) runs");
    let mut said = BufReader::new(strace.stderr.take().unwrap()).lines();
    let attached = said.next().and_then(Result::ok).unwrap_or_default();
    assert!(attached.contains("attached"), "strace: {attached}");
    std::thread::spawn(move || for _ in said {});

    // 8 writers at once, 10 creations each, each timed from its request to its answer.
    let mut writers = Vec::new();
    for writer in 0..8 {
        let client = console.client();
        let url = console.api("/api/v1/models");
        let token = console.token.clone();
        writers.push(tokio::spawn(async move {
            let mut windows = Vec::new();
            for i in 0..10 {
                let sent = epoch_now();
                let answer = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"name": format!("synced-{writer}-{i}")}))
                    .send()
                    .await
                    .unwrap();
                let answered = epoch_now();
                assert_eq!(answer.status(), 201);
                windows.push((format!("synced-{writer}-{i}"), sent, answered));
            }
            windows
        }));
    }
    let mut windows = Vec::new();
    for w in writers {
        windows.extend(w.await.unwrap());
    }
    // SIGINT: strace detaches and flushes its log; the console runs on.
    assert!(
        Command::new("kill")
            .args(["-INT", &strace.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    strace.wait().unwrap();

    let text = std::fs::read_to_string(&log).unwrap();
    let syncs = wal_syncs(&text);
    let unsynced: Vec<&str> = windows
        .iter()
        .filter(|(_, sent, answered)| !syncs.iter().any(|s| *sent <= s.start && s.end <= *answered))
        .map(|(name, _, _)| name.as_str())
        .collect();
    assert!(
        unsynced.is_empty(),
        "writes {unsynced:?} were answered without a whole WAL sync in between; the syncs seen:\n{text}"
    );
    // Concurrent writes share transactions and syncs (group commit) whenever
    // one arrives while another holds the writer or a sync runs; how often
    // depends on the machine, so the console's own counts are reported, not
    // asserted (docs/benchmarks.md measures them).
    let metrics = console
        .client()
        .get(console.api("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    };
    let (writes, commits, wal_syncs) = (
        value("autoglm_store_writes_total"),
        value("autoglm_store_commits_total"),
        value("autoglm_store_wal_syncs_total"),
    );
    assert!(writes >= windows.len() as f64, "{writes} writes");
    assert!(
        (1.0..=writes).contains(&commits),
        "{commits} transactions for {writes} writes"
    );
    assert!(
        wal_syncs <= commits,
        "{wal_syncs} syncs for {commits} commits"
    );
    eprintln!(
        "{writes} writes in {commits} transactions, {wal_syncs} WAL syncs, {} seen by strace",
        syncs.len()
    );
}
