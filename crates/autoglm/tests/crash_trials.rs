//! Crash trials: `autoglm up` is killed with SIGKILL at 20 random moments
//! while models are registered, services are applied and scaled and the
//! gateway carries traffic. After each kill `up` starts again on the same
//! home, and then every write it acknowledged is there, the audit chain
//! verifies, no process the killed run started is left running, every service
//! is back at its desired replicas and the gateway answers for each.
//!
//! The kill moments and the operations come from a seeded generator; every
//! failure names the seed, and `AUTOGLM_CRASH_SEED=N` replays those trials.
//! The test process is a child subreaper, so whatever the killed `up` leaves
//! running becomes its child: an orphan cannot hide under init.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use parking_lot::Mutex;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use common::{UPSTREAM, Up};

const TRIALS: u64 = 20;
/// Kills land up to this long after `up` answers: through its start-up
/// (replicas planned and starting) and into steady operation.
const KILL_WITHIN_MS: u64 = 1500;
/// Both run the stand-in OpenAI server as a command runtime: cheap replicas.
const SERVICES: [&str; 2] = ["echo", "side"];
/// How long a restarted `up` may take to be whole again on a busy machine.
const RECOVERY: Duration = Duration::from_secs(45);

/// splitmix64: enough randomness to place kills, and replayable from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a service should be: its replica count and its `rev` label.
#[derive(Debug, Clone, PartialEq)]
struct Desired {
    replicas: u64,
    rev: String,
}

/// One write to a service, planned before the trial so that the seed alone
/// decides the sequence (only the kill decides how much of it is sent).
#[derive(Debug, Clone)]
struct ServiceOp {
    service: &'static str,
    /// A manifest apply (PUT) that also changes the `rev` label, else a scale.
    apply: bool,
    replicas: u64,
    pause: Duration,
}

/// A service's last acknowledged state, and the write in flight at the kill
/// (whose outcome is unknown: either is a correct result).
#[derive(Debug, Clone)]
struct ServiceLedger {
    acked: Desired,
    in_flight: Option<Desired>,
}

fn manifest(service: &str, desired: &Desired) -> Value {
    json!({
        "apiVersion": "autoglm.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": service, "labels": {"rev": desired.rev}},
        "spec": {
            "model": "echo",
            "runtime": {"command": {"command": ["python3", UPSTREAM, "{port}", "{version}", "{name}"]}},
            "versions": [{"version": "1", "weight": 100}],
            "replicas": desired.replicas,
        },
    })
}

fn seed() -> u64 {
    std::env::var("AUTOGLM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// Where one run of `up` answers, for the tasks that call it.
#[derive(Clone)]
struct Target {
    console: String,
    gateway: String,
    token: String,
}

impl Target {
    fn of(up: &Up) -> Target {
        Target {
            console: up.console.url.clone(),
            gateway: up.gateway.clone(),
            token: up.console.token.clone(),
        }
    }
}

async fn call(
    http: &reqwest::Client,
    up: &Target,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<(StatusCode, Value), reqwest::Error> {
    let mut req = http
        .request(method, format!("{}{path}", up.console))
        .bearer_auth(&up.token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// The processes whose parent is `pid`, as numbers.
fn children(pid: u32) -> Vec<u32> {
    common::children(&pid.to_string())
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The stand-in servers running under `pid`, at any depth.
fn upstreams_under(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for child in children(p) {
            let program = cmdline(child);
            // The program itself, not the `autoglm supervise` above it.
            let upstream = program.contains("openai_upstream.py") && !program.contains("supervise");
            if upstream && !common::exited(&child.to_string()) {
                found.push(child);
            }
            todo.push(child);
        }
    }
    found
}

/// Reaps the test's children other than `keep` that have exited; the ones
/// still running.
fn reap_all_but(keep: u32) -> Vec<u32> {
    children(std::process::id())
        .into_iter()
        .filter(|&p| p != keep)
        .filter(|&p| {
            let pid = Pid::from_raw(p as i32);
            matches!(
                waitpid(pid, Some(WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::StillAlive)
            )
        })
        .collect()
}

/// Every model's name, through the console's pages.
async fn model_names(http: &reqwest::Client, up: &Target) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/api/v1/models?limit=1000&page_token={t}"),
            None => "/api/v1/models?limit=1000".to_owned(),
        };
        let (s, page) = call(http, up, Method::GET, &path, None).await.unwrap();
        assert_eq!(s, StatusCode::OK, "{page}");
        for item in page["items"].as_array().unwrap() {
            names.insert(item["name"].as_str().unwrap().to_owned());
        }
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => return names,
        }
    }
}

async fn chat(http: &reqwest::Client, up: &Target, model: &str) -> Result<u16, reqwest::Error> {
    let r = http
        .post(format!("{}/v1/chat/completions", up.gateway))
        .bearer_auth(&up.token)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await?;
    Ok(r.status().as_u16())
}

/// The writes and traffic of one trial, until the server goes away.
struct Workload {
    models: tokio::task::JoinHandle<(Vec<String>, Option<String>)>,
    services: tokio::task::JoinHandle<Option<String>>,
    traffic: tokio::task::JoinHandle<u64>,
}

fn start_workload(
    trial: u64,
    up: &Target,
    http: &reqwest::Client,
    ledger: &Arc<Mutex<BTreeMap<&'static str, ServiceLedger>>>,
    ops: Vec<ServiceOp>,
    stop: &Arc<AtomicBool>,
) -> Workload {
    let models = {
        let (up, http) = (up.clone(), http.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0.. {
                let name = format!("t{trial}-m{i}");
                let body = json!({"name": name, "labels": {"trial": trial.to_string()}});
                match call(&http, &up, Method::POST, "/api/v1/models", Some(body)).await {
                    Ok((StatusCode::CREATED, _)) => acked.push(name),
                    Ok((s, b)) => return (acked, Some(format!("model {name}: {s} {b}"))),
                    Err(_) => break, // killed
                }
            }
            (acked, None)
        })
    };
    let services = {
        let (up, http, ledger) = (up.clone(), http.clone(), ledger.clone());
        tokio::spawn(async move {
            for (i, op) in ops.into_iter().enumerate() {
                tokio::time::sleep(op.pause).await;
                let next = {
                    let mut ledger = ledger.lock();
                    let entry = ledger.get_mut(op.service).unwrap();
                    let rev = if op.apply {
                        format!("{trial}-{i}")
                    } else {
                        entry.acked.rev.clone()
                    };
                    let next = Desired {
                        replicas: op.replicas,
                        rev,
                    };
                    entry.in_flight = Some(next.clone());
                    next
                };
                let sent = if op.apply {
                    let path = format!("/api/v1/services/{}", op.service);
                    let body = manifest(op.service, &next);
                    call(&http, &up, Method::PUT, &path, Some(body)).await
                } else {
                    let path = format!("/api/v1/services/{}/scale", op.service);
                    let body = json!({"replicas": op.replicas});
                    call(&http, &up, Method::POST, &path, Some(body)).await
                };
                match sent {
                    Ok((StatusCode::OK | StatusCode::ACCEPTED, _)) => {
                        let mut ledger = ledger.lock();
                        let entry = ledger.get_mut(op.service).unwrap();
                        entry.acked = next;
                        entry.in_flight = None;
                    }
                    Ok((s, b)) => return Some(format!("{op:?}: {s} {b}")),
                    Err(_) => return None, // killed
                }
            }
            None
        })
    };
    let traffic = {
        let (up, http, stop) = (up.clone(), http.clone(), stop.clone());
        tokio::spawn(async move {
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                if chat(&http, &up, SERVICES[(sent % 2) as usize])
                    .await
                    .is_err()
                {
                    break;
                }
                sent += 1;
            }
            sent
        })
    };
    Workload {
        models,
        services,
        traffic,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_kill_9s_of_up_lose_no_acknowledged_write_and_leave_no_replica_behind() {
    // Whatever a killed `up` leaves running is re-parented to this process.
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let seed = seed();
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    let mut up = Up::start(&home, &[]);
    common::register_model(&up.console, &http, "echo", 1, dir.path()).await;
    let mut target = Target::of(&up);
    let ledger: Arc<Mutex<BTreeMap<&'static str, ServiceLedger>>> = Arc::default();
    for service in SERVICES {
        let desired = Desired {
            replicas: 1,
            rev: "0".into(),
        };
        let body = manifest(service, &desired);
        let (s, b) = call(&http, &target, Method::POST, "/api/v1/services", Some(body))
            .await
            .unwrap();
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        ledger.lock().insert(
            service,
            ServiceLedger {
                acked: desired,
                in_flight: None,
            },
        );
    }
    let mut acked_models = BTreeSet::new();
    let started = Instant::now();

    for trial in 1..=TRIALS {
        let kill_after = Duration::from_millis(rng.below(KILL_WITHIN_MS));
        let ops: Vec<ServiceOp> = (0..8)
            .map(|_| ServiceOp {
                service: SERVICES[rng.below(2) as usize],
                apply: rng.below(2) == 0,
                replicas: 1 + rng.below(2),
                pause: Duration::from_millis(50 + rng.below(250)),
            })
            .collect();
        let ctx = format!(
            "trial {trial} of {TRIALS} (AUTOGLM_CRASH_SEED={seed}; up killed {} ms into the trial)",
            kill_after.as_millis()
        );

        let stop = Arc::new(AtomicBool::new(false));
        let work = start_workload(trial, &target, &http, &ledger, ops, &stop);
        tokio::time::sleep(kill_after).await;
        // SIGKILL: nothing of `up` runs after this, no handler, no flush.
        // Reaped, so the orphans below are its leftovers and not it.
        up.console.child.kill().unwrap();
        up.console.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        let (models, refused) = work.models.await.unwrap();
        assert!(refused.is_none(), "{ctx}: a write was refused: {refused:?}");
        let refused = work.services.await.unwrap();
        assert!(refused.is_none(), "{ctx}: a write was refused: {refused:?}");
        let sent = work.traffic.await.unwrap();
        acked_models.extend(models);
        let orphans: Vec<(u32, String)> = children(std::process::id())
            .into_iter()
            .map(|p| (p, cmdline(p)))
            .collect();

        // The killed run's log stays for a look after a failure.
        let _ = std::fs::rename(
            home.with_extension("log"),
            home.with_extension(format!("log.{trial}")),
        );
        up = Up::start(&home, &[]);
        target = Target::of(&up);
        let now = up.console.child.id();

        // Nothing the killed run started survives its successor's start for long.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = reap_all_but(now);
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{ctx}: processes of the killed up still run 15 s after it started again: {:?} \
                 (all it left: {orphans:?})",
                left.iter().map(|&p| (p, cmdline(p))).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let present = model_names(&http, &target).await;
        let lost: Vec<&String> = acked_models.difference(&present).collect();
        assert!(lost.is_empty(), "{ctx}: acknowledged models lost: {lost:?}");

        let (s, verify) = call(&http, &target, Method::GET, "/api/v1/audit/verify", None)
            .await
            .unwrap();
        assert_eq!(s, StatusCode::OK, "{ctx}: {verify}");
        assert_eq!(verify["valid"], true, "{ctx}: the audit chain: {verify}");

        let mut desired_total = 0;
        for service in SERVICES {
            let path = format!("/api/v1/services/{service}");
            let (s, stored) = call(&http, &target, Method::GET, &path, None)
                .await
                .unwrap();
            assert_eq!(s, StatusCode::OK, "{ctx}: {stored}");
            let now_desired = Desired {
                replicas: stored["spec"]["replicas"].as_u64().unwrap(),
                rev: stored["metadata"]["labels"]["rev"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            };
            {
                let mut ledger = ledger.lock();
                let entry = ledger.get_mut(service).unwrap();
                assert!(
                    now_desired == entry.acked || Some(&now_desired) == entry.in_flight.as_ref(),
                    "{ctx}: service {service} is {now_desired:?}, but its last acknowledged \
                     write made it {:?} (and the one in flight {:?})",
                    entry.acked,
                    entry.in_flight
                );
                entry.acked = now_desired.clone();
                entry.in_flight = None;
            }
            desired_total += now_desired.replicas;
            let deadline = Instant::now() + RECOVERY;
            loop {
                let (_, b) = call(&http, &target, Method::GET, &path, None)
                    .await
                    .unwrap();
                let status = &b["status"];
                let whole = status["readyReplicas"].as_u64() == Some(now_desired.replicas)
                    && status["desiredReplicas"].as_u64() == Some(now_desired.replicas)
                    && status["replicas"].as_array().map(Vec::len)
                        == Some(now_desired.replicas as usize)
                    && status["observedGeneration"] == b["metadata"]["generation"];
                if whole {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{ctx}: service {service} not back at {} ready replicas within {RECOVERY:?}: {b}",
                    now_desired.replicas
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        // The gateway answers for each service again (a replica ready a
        // moment ago may not be in its table yet: asked until it answers).
        for service in SERVICES {
            let deadline = Instant::now() + RECOVERY;
            loop {
                let status = chat(&http, &target, service).await;
                if matches!(status, Ok(200)) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{ctx}: the gateway does not serve {service} again: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        // Exactly the desired replicas run, all under the new `up`.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let running = upstreams_under(now);
            if running.len() as u64 == desired_total {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{ctx}: {} replica programs run under up, {desired_total} wanted: {:?}",
                running.len(),
                running.iter().map(|&p| (p, cmdline(p))).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "{ctx}: recovered; {} processes left by the kill, {sent} chats before it, \
             {} models acknowledged so far, {:.1} s in",
            orphans.len(),
            acked_models.len(),
            started.elapsed().as_secs_f64()
        );
    }
}
