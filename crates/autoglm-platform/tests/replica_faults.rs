//! Replicas that misbehave, against real processes: one that never gets
//! ready, one that ignores SIGTERM, and one that loses the race for its port
//! to another process (which then answers its ready checks).

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoglm_contract::ServiceView;
use autoglm_core::service::{ConditionStatus, ReplicaState};
use autoglm_platform::{Launch, LocalPlatform, Settings};
use parking_lot::Mutex;
use support::{get, http_server, pids, plan, running, settings, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn progressing(view: &ServiceView) -> (ConditionStatus, String) {
    let c = view
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    (c.status, c.reason.clone())
}

/// Every ready endpoint `name` was ever published with, while the test runs.
fn record_endpoints(platform: &LocalPlatform, name: &str) -> Arc<Mutex<BTreeSet<SocketAddr>>> {
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let mut views = platform.watch();
    let (name, record) = (name.to_owned(), seen.clone());
    tokio::spawn(async move {
        loop {
            if let Some(view) = views.borrow_and_update().get(&name) {
                let ready = view.endpoints.iter().flat_map(|e| e.ready.iter().copied());
                record.lock().extend(ready);
            }
            if views.changed().await.is_err() {
                return;
            }
        }
    });
    seen
}

#[tokio::test]
async fn a_replica_that_never_gets_ready_is_reported_never_routed_and_holds_the_rollout() {
    let home = tempfile::tempdir().unwrap();
    let settings = Settings {
        progress_deadline: Duration::from_secs(2),
        ..settings(19600)
    };
    let platform = LocalPlatform::start(home.path().into(), settings).unwrap();
    platform.apply(plan("web", 1, http_server(&[]))).unwrap();
    let view = wait_for(&platform, "web", "1 ready", |v| {
        v.status.ready_replicas == 1
    })
    .await;
    let old = view.status.replicas[0].clone();
    let old_addr = view.endpoints[0].ready[0];
    let endpoints = record_endpoints(&platform, "web");

    // The new launch runs and never listens.
    let never = Launch {
        program: "python3".into(),
        args: ["-c", "import time; time.sleep(600)", "{port}"]
            .map(String::from)
            .to_vec(),
        env: vec![],
        ready_path: "/".into(),
    };
    platform.apply(plan("web", 1, never)).unwrap();
    let stuck = wait_for(&platform, "web", "the deadline passed", |v| {
        progressing(v).1 == "ProgressDeadlineExceeded"
    })
    .await;
    assert_eq!(progressing(&stuck).0, ConditionStatus::False);
    // Reported: the new replica is there and not ready; the old one still
    // serves, and nothing but the old one was ever routed to.
    let new = stuck
        .status
        .replicas
        .iter()
        .find(|r| r.id != old.id)
        .unwrap_or_else(|| panic!("the new replica is reported: {stuck:#?}"));
    assert_eq!(new.state, ReplicaState::Starting, "{stuck:#?}");
    let still = stuck.status.replicas.iter().find(|r| r.id == old.id);
    assert_eq!(
        still.map(|r| (r.state, r.pid)),
        Some((ReplicaState::Ready, old.pid)),
        "the old replica is not retired for one that never got ready: {stuck:#?}"
    );
    assert!(running(old.pid.unwrap()));
    assert_eq!(get(old_addr).await, 200);
    assert_eq!(
        *endpoints.lock(),
        BTreeSet::from([old_addr]),
        "only the ready replica was ever routed to"
    );

    // Rolled back, the replica that never got ready is stopped.
    let never_pid = new.pid.unwrap();
    platform.apply(plan("web", 1, http_server(&[]))).unwrap();
    wait_for(&platform, "web", "the rollback complete", |v| {
        v.status.replicas.len() == 1 && progressing(v).1 == "RolloutComplete"
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(never_pid) {
        assert!(Instant::now() < deadline, "{never_pid} still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    platform.shutdown().await;
}

#[tokio::test]
async fn a_replica_that_ignores_sigterm_is_killed_after_the_grace_period_with_its_children() {
    let home = tempfile::tempdir().unwrap();
    let grace = Duration::from_secs(1);
    let settings = Settings {
        grace,
        ..settings(19700)
    };
    let platform = LocalPlatform::start(home.path().into(), settings).unwrap();
    // SIG_IGN survives exec: the `sleep` it starts ignores SIGTERM too.
    let stubborn = Launch {
        program: "python3".into(),
        args: [
            "-c",
            "import http.server, signal, subprocess, sys\n\
             signal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
             subprocess.Popen(['sleep', '600'])\n\
             http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), \
             http.server.SimpleHTTPRequestHandler).serve_forever()",
            "{port}",
        ]
        .map(String::from)
        .to_vec(),
        env: vec![],
        ready_path: "/".into(),
    };
    platform.apply(plan("web", 1, stubborn)).unwrap();
    let view = wait_for(&platform, "web", "1 ready", |v| {
        v.status.ready_replicas == 1
    })
    .await;
    let pid = pids(&view)[0];
    let child = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(c) = children(pid).into_iter().next() {
                break c;
            }
            assert!(
                Instant::now() < deadline,
                "the replica's sleep did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };

    let asked = Instant::now();
    let removed = tokio::time::timeout(grace * 10, platform.remove("web")).await;
    let took = asked.elapsed();
    assert!(
        removed.is_ok(),
        "a replica ignoring SIGTERM was not stopped within {:?}",
        grace * 10
    );
    assert!(
        took >= grace,
        "stopped after {took:?}: before the grace period ended, so not by SIGKILL after it"
    );
    assert!(!running(pid), "the replica {pid} is left running");
    // The group's SIGKILL is sent; the orphaned child dies when the kernel
    // next runs it, which on a busy machine is not at once.
    let deadline = Instant::now() + Duration::from_secs(5);
    while running(child) {
        assert!(
            Instant::now() < deadline,
            "the replica's child {child} is left running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
                stat.rsplit(')')
                    .next()
                    .and_then(|rest| rest.split_whitespace().nth(1))
                    == Some(&pid.to_string())
            })
        })
        .collect()
}

/// A process other than the replica holding `port`, answering every request
/// with 200 `holder` (as the winner of the race for a port does); the
/// connections it took.
fn hold(port: u16) -> Arc<Mutex<u32>> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let taken = Arc::new(Mutex::new(0));
    let count = taken.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            *count.lock() += 1;
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await;
            let _ = conn
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nholder",
                )
                .await;
        }
    });
    taken
}

#[tokio::test]
async fn a_replica_that_loses_the_race_for_its_port_is_never_routed_to_the_winner_and_moves() {
    let home = tempfile::tempdir().unwrap();
    let platform = LocalPlatform::start(home.path().into(), settings(19800)).unwrap();
    let endpoints = record_endpoints(&platform, "web");
    // The replica binds its port only once the test says so: the test takes
    // the port first, as another process that found it free at the same time would.
    let go = home.path().join("go");
    let late = Launch {
        program: "sh".into(),
        args: [
            "-c",
            r#"while [ ! -e "$GO" ]; do sleep 0.02; done; exec python3 -m http.server --bind 127.0.0.1 "$1""#,
            "sh",
            "{port}",
        ]
        .map(String::from)
        .to_vec(),
        env: vec![("GO".into(), go.to_str().unwrap().into())],
        ready_path: "/".into(),
    };
    platform.apply(plan("web", 1, late)).unwrap();
    let starting = wait_for(&platform, "web", "a port handed out", |v| {
        v.status.replicas.first().is_some_and(|r| r.port != 0)
    })
    .await;
    let lost = starting.status.replicas[0].port;
    let probes = hold(lost);
    // The platform's ready checks reach the holder (three fail a ready replica).
    let deadline = Instant::now() + Duration::from_secs(10);
    while *probes.lock() < 3 {
        assert!(
            Instant::now() < deadline,
            "no ready check reached the holder"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::write(&go, "").unwrap();

    let view = wait_for(&platform, "web", "ready on another port", |v| {
        v.status.ready_replicas == 1 && v.status.replicas[0].port != lost
    })
    .await;
    let replica = &view.status.replicas[0];
    assert!(replica.restarts >= 1, "{view:#?}");
    let lost_addr = SocketAddr::from(([127, 0, 0, 1], lost));
    assert!(
        !endpoints.lock().contains(&lost_addr),
        "the gateway was given {lost_addr}, where another process answered: {:?}",
        endpoints.lock()
    );
    let log = platform.log_tail("web", &replica.id, 64 * 1024).unwrap();
    assert!(
        view.status.replicas[0].last_exit.as_deref()
            == Some(&format!("port {lost} is held by another process")),
        "{view:#?}\n{log:?}"
    );
    // The replica serves from its own process now.
    let addr = view.endpoints[0].ready[0];
    let body = reqwest::get(format!("http://{addr}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("Directory listing"), "{body}");
    platform.shutdown().await;
}
