//! The local platform against real processes: Python's `http.server` as a
//! replica (any OpenAI or OIP server is, to the platform, a process with a
//! port and a ready path), `sh` for replicas that crash, real signals.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use autoglm_contract::ServiceView;
use autoglm_core::service::{ConditionStatus, ReplicaState};
use autoglm_platform::{Launch, LocalPlatform, Settings};
use support::{get, http_server, pids, plan, running, settings, wait_for};

#[tokio::test]
async fn replicas_become_ready_and_one_killed_with_sigkill_comes_back() {
    let home = tempfile::tempdir().unwrap();
    let platform = LocalPlatform::start(home.path().into(), settings(19000)).unwrap();
    platform.apply(plan("web", 2, http_server(&[]))).unwrap();
    let view = wait_for(&platform, "web", "2 ready replicas", |v| {
        v.status.ready_replicas == 2
    })
    .await;
    assert_eq!(view.endpoints[0].ready.len(), 2);
    for addr in &view.endpoints[0].ready {
        assert_eq!(get(*addr).await, 200, "{addr} serves");
    }
    let ready = &view.status.conditions[0];
    assert_eq!(
        (ready.type_.as_str(), ready.status, ready.reason.as_str()),
        ("Ready", ConditionStatus::True, "AllReplicasReady")
    );

    let victim = view.status.replicas[0].clone();
    let pid = victim.pid.unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let view = wait_for(&platform, "web", "the killed replica back and ready", |v| {
        v.status.ready_replicas == 2
            && v.status
                .replicas
                .iter()
                .any(|r| r.id == victim.id && r.restarts == 1 && r.state == ReplicaState::Ready)
    })
    .await;
    let back = view
        .status
        .replicas
        .iter()
        .find(|r| r.id == victim.id)
        .unwrap();
    assert_eq!(back.last_exit.as_deref(), Some("killed by signal SIGKILL"));
    assert_ne!(back.pid, Some(pid));
    let log = platform
        .log_tail("web", &victim.id, 64 * 1024)
        .unwrap()
        .unwrap();
    assert_eq!(
        log.matches("--- autoglm: starting python3").count(),
        2,
        "{log}"
    );
    assert!(
        platform
            .log_tail("web", "../../etc/passwd", 10)
            .unwrap()
            .is_none()
    );

    let all = pids(&view);
    platform.shutdown().await;
    for pid in all {
        assert!(!running(pid), "replica {pid} outlived the platform");
    }
}

#[tokio::test]
async fn scaling_down_and_removing_stop_the_processes() {
    let home = tempfile::tempdir().unwrap();
    let platform = LocalPlatform::start(home.path().into(), settings(19100)).unwrap();
    platform.apply(plan("web", 3, http_server(&[]))).unwrap();
    let view = wait_for(&platform, "web", "3 ready", |v| {
        v.status.ready_replicas == 3
    })
    .await;
    let before = pids(&view);

    platform.apply(plan("web", 1, http_server(&[]))).unwrap();
    let view = wait_for(&platform, "web", "1 replica left", |v| {
        v.status.replicas.len() == 1 && v.status.ready_replicas == 1
    })
    .await;
    let kept = pids(&view);
    for pid in before.iter().filter(|p| !kept.contains(p)) {
        assert!(!running(*pid), "retired replica {pid} still runs");
    }

    platform.remove("web").await;
    assert!(platform.view("web").is_none());
    for pid in kept {
        assert!(
            !running(pid),
            "replica {pid} of a removed service still runs"
        );
    }
}

#[tokio::test]
async fn a_rolling_update_keeps_a_ready_replica_at_every_moment() {
    let home = tempfile::tempdir().unwrap();
    let platform = LocalPlatform::start(home.path().into(), settings(19200)).unwrap();
    platform.apply(plan("web", 2, http_server(&[]))).unwrap();
    let view = wait_for(&platform, "web", "2 ready", |v| {
        v.status.ready_replicas == 2
    })
    .await;
    let old = pids(&view);

    platform
        .apply(plan("web", 2, http_server(&[("RELEASE", "2")])))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = platform.view("web").unwrap();
        assert!(
            !view.endpoints[0].ready.is_empty(),
            "no ready replica during the update: {view:#?}"
        );
        let now = pids(&view);
        if now.len() == 2 && view.status.ready_replicas == 2 && now.iter().all(|p| !old.contains(p))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the update did not finish: {view:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for pid in old {
        assert!(
            !running(pid),
            "old replica {pid} still runs after the update"
        );
    }
    platform.shutdown().await;
}

#[tokio::test]
async fn a_crashing_replica_is_restarted_with_growing_delays() {
    let home = tempfile::tempdir().unwrap();
    let platform = LocalPlatform::start(home.path().into(), settings(19300)).unwrap();
    let crash = Launch {
        program: "sh".into(),
        args: vec!["-c".into(), "echo boom on {port} >&2; exit 3".into()],
        env: vec![],
        ready_path: "/".into(),
    };
    let started = Instant::now();
    platform.apply(plan("bad", 1, crash)).unwrap();
    let view = wait_for(&platform, "bad", "3 restarts", |v| {
        v.status.replicas.first().is_some_and(|r| r.restarts >= 3)
    })
    .await;
    // 100 ms + 200 ms + 400 ms of backoff at least before the third restart.
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    let replica = &view.status.replicas[0];
    assert_eq!(replica.last_exit.as_deref(), Some("exited with status 3"));
    assert_eq!(view.status.ready_replicas, 0);
    assert_eq!(view.status.conditions[0].reason, "ReplicasNotReady");
    let log = platform
        .log_tail("bad", &replica.id, 4096)
        .unwrap()
        .unwrap();
    assert!(log.contains("boom on 19"), "{log}");
    platform.shutdown().await;
}

#[tokio::test]
async fn a_new_platform_stops_replicas_a_crashed_one_left_running() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("web");
    std::fs::create_dir_all(&dir).unwrap();
    let mut orphan = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sleep")
            .arg("1000")
            .process_group(0)
            .spawn()
            .unwrap()
    };
    autoglm_platform::procs::PidFile::write(dir.join("web-1-1.pid"), orphan.id()).unwrap();
    // A stale record naming a pid that now belongs to someone else (this
    // test process, with another start time) must not be acted on.
    std::fs::write(
        dir.join("web-1-2.pid"),
        format!("{} 1\n", std::process::id()),
    )
    .unwrap();

    let _platform = LocalPlatform::start(home.path().into(), settings(19400)).unwrap();
    let status = orphan.wait().unwrap();
    assert!(!status.success(), "the orphan was stopped: {status:?}");
    assert!(!Path::new(&dir.join("web-1-1.pid")).exists());
    assert!(!Path::new(&dir.join("web-1-2.pid")).exists());
}

#[tokio::test]
async fn a_change_that_never_gets_ready_passes_its_progress_deadline() {
    let home = tempfile::tempdir().unwrap();
    let settings = Settings {
        progress_deadline: Duration::from_secs(1),
        ..settings(19500)
    };
    let platform = LocalPlatform::start(home.path().into(), settings).unwrap();
    // Runs, never listens.
    let never = Launch {
        program: "python3".into(),
        args: ["-c", "import time; time.sleep(60)", "{port}"]
            .map(String::from)
            .to_vec(),
        env: vec![],
        ready_path: "/".into(),
    };
    platform.apply(plan("stuck", 1, never)).unwrap();
    let progressing = |view: &ServiceView| {
        view.status
            .conditions
            .iter()
            .find(|c| c.type_ == "Progressing")
            .map(|c| (c.status, c.reason.clone()))
    };
    let early = wait_for(&platform, "stuck", "a replica", |v| {
        !v.status.replicas.is_empty()
    })
    .await;
    assert_ne!(
        progressing(&early).map(|p| p.1).as_deref(),
        Some("ProgressDeadlineExceeded"),
        "not before its deadline"
    );
    let late = wait_for(&platform, "stuck", "the deadline", |v| {
        progressing(v).is_some_and(|p| p.1 == "ProgressDeadlineExceeded")
    })
    .await;
    assert_eq!(progressing(&late).unwrap().0, ConditionStatus::False);
    platform.shutdown().await;
}
