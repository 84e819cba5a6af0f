//! The end of a platform, against real processes: once shutdown has begun
//! no plan starts a replica (an autoscaler's last scale-up arriving after the
//! drain), and a replica whose task goes with the runtime, as when `autoglm
//! up` exits, takes its whole process group with it, not only the leader
//! (a supervisor whose program would be left to PID 1).

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use autoglm_core::service::ReplicaState;
use autoglm_platform::{Launch, LocalPlatform};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use support::{http_server, pids, plan, running, settings, wait_for};

#[tokio::test]
async fn a_plan_applied_after_shutdown_starts_no_replica() {
    let home = tempfile::tempdir().unwrap();
    let platform = LocalPlatform::start(home.path().into(), settings(19900)).unwrap();
    platform.apply(plan("chat", 1, http_server(&[]))).unwrap();
    let view = wait_for(&platform, "chat", "a ready replica", |v| {
        v.status.ready_replicas == 1
    })
    .await;
    let first = pids(&view);

    platform.shutdown().await;
    assert!(
        first.iter().all(|&p| !running(p)),
        "shutdown left {first:?}"
    );

    // The scale-up of the drained service and a service not seen before.
    for (name, replicas) in [("chat", 2), ("late", 1)] {
        let refused = platform
            .apply(plan(name, replicas, http_server(&[])))
            .expect_err("a plan applied after shutdown must be refused");
        assert!(
            refused.to_string().contains("shutting down"),
            "unclear refusal: {refused}"
        );
        assert!(platform.view(name).is_none(), "{name} has a view again");
    }
    assert!(
        !home.path().join("late").exists(),
        "the refused service got a folder for its replicas"
    );
}

/// A replica that is a wrapper with the server as its child, in its group,
/// as `autoglm supervise` runs a command runtime.
fn wrapped_server() -> Launch {
    Launch {
        program: "sh".into(),
        args: vec![
            "-c".into(),
            "python3 -m http.server --bind 127.0.0.1 {port} & wait".into(),
        ],
        env: Vec::new(),
        ready_path: "/".into(),
    }
}

/// The live processes of process group `pgid`.
fn group(pgid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // state, ppid, pgrp follow the command name.
        let pgrp = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(2))
            .and_then(|g| g.parse::<u32>().ok());
        if pgrp == Some(pgid) && running(pid) {
            found.push(pid);
        }
    }
    found
}

/// Kills the groups this test started when it ends, passed or not.
struct KillGroups(Vec<u32>);

impl Drop for KillGroups {
    fn drop(&mut self) {
        for &pgid in &self.0 {
            let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
        }
    }
}

#[test]
fn a_replica_dropped_with_its_runtime_leaves_no_process_of_its_group() {
    let home = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cleanup = KillGroups(Vec::new());
    let (platform, leader, members) = rt.block_on(async {
        let platform = LocalPlatform::start(home.path().into(), settings(19920)).unwrap();
        platform
            .apply(plan("wrapped", 1, wrapped_server()))
            .unwrap();
        let view = wait_for(&platform, "wrapped", "a ready replica", |v| {
            v.status
                .replicas
                .iter()
                .any(|r| r.state == ReplicaState::Ready)
        })
        .await;
        let leader = pids(&view)[0];
        cleanup.0.push(leader);
        // Ready means the server answers: it runs beside its wrapper.
        let members = group(leader);
        assert!(
            members.len() >= 2 && members.contains(&leader),
            "the replica's group should hold the wrapper and the server: {members:?}"
        );
        (platform, leader, members)
    });

    // What `autoglm up` does as it returns from main: the runtime goes with
    // the replica's task still in it.
    drop(rt);
    drop(platform);

    let deadline = Instant::now() + Duration::from_secs(10);
    while members.iter().any(|&p| running(p)) {
        assert!(
            Instant::now() < deadline,
            "processes of the replica's group (leader {leader}) outlived it: {:?}",
            members
                .iter()
                .filter(|&&p| running(p))
                .map(|p| (
                    p,
                    std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                        .unwrap_or_default()
                        .replace('\0', " ")
                ))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
