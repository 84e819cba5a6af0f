//! What the local platform's tests share: fast timings, launches of real
//! programs, and waits on the platform's view.
#![allow(clippy::unwrap_used, dead_code)]

use std::time::{Duration, Instant};

use autoglm_contract::ServiceView;
use autoglm_platform::{Launch, LocalPlatform, ServicePlan, Settings, VersionPlan};

/// Each test takes its own port range: tests run in parallel.
pub fn settings(base_port: u16) -> Settings {
    Settings {
        base_port,
        probe_interval: Duration::from_millis(50),
        drain_delay: Duration::from_millis(100),
        grace: Duration::from_secs(3),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        backoff_forgive_after: Duration::from_secs(60),
        progress_deadline: Duration::from_secs(60),
    }
}

pub fn http_server(extra_env: &[(&str, &str)]) -> Launch {
    Launch {
        program: "python3".into(),
        args: ["-m", "http.server", "--bind", "127.0.0.1", "{port}"]
            .map(String::from)
            .to_vec(),
        env: extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ready_path: "/".into(),
    }
}

pub fn plan(name: &str, replicas: u32, launch: Launch) -> ServicePlan {
    ServicePlan {
        tenant: "default".into(),
        per_replica: autoglm_core::quota::Holding::of_replica(None),
        name: name.into(),
        generation: 1,
        restart: 0,
        balancing: Default::default(),
        filters: Vec::new(),
        versions: vec![VersionPlan {
            version: "1".into(),
            weight: 100,
            replicas,
            launch,
        }],
    }
}

pub async fn wait_for(
    platform: &LocalPlatform,
    name: &str,
    what: &str,
    ok: impl Fn(&ServiceView) -> bool,
) -> ServiceView {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(view) = platform.view(name)
            && ok(&view)
        {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last view: {:#?}",
            platform.view(name)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            != Some("Z")
    })
}

pub fn pids(view: &ServiceView) -> Vec<u32> {
    view.status.replicas.iter().filter_map(|r| r.pid).collect()
}

pub async fn get(addr: std::net::SocketAddr) -> u16 {
    reqwest::get(format!("http://{addr}/"))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}
