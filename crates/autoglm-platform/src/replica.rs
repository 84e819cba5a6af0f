//! One replica: a child process in its own process group, its log file, its
//! ready check, and restarts with backoff when it exits or stops answering.
//! However its task ends (stopped, or dropped with the runtime as a process
//! exits) the whole group is killed: the program a supervisor runs too.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoglm_core::service::ReplicaState;
use nix::sys::signal::Signal;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Settings;
use crate::backoff::Backoff;
use crate::listen;
use crate::plan::Launch;
use crate::ports::{self, Ports};
use crate::procs::{PidFile, signal_group};

/// Ready checks that must fail in a row before a ready replica is restarted.
const UNHEALTHY_AFTER: u32 = 3;
/// How often a starting replica is probed until it first answers.
const STARTUP_PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// What a replica reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Where it is in its life.
    pub state: ReplicaState,
    /// The loopback port it listens on (0 before the first start).
    pub port: u16,
    /// The process, while one runs.
    pub pid: Option<u32>,
    /// Times the process was started again after an exit or a failed health check.
    pub restarts: u32,
    /// Why the last process ended.
    pub last_exit: Option<String>,
}

/// Where a replica lives on disk and what it runs.
#[derive(Debug, Clone)]
pub struct ReplicaSpec {
    /// Unique on the platform, e.g. `chat-3-a1`.
    pub id: String,
    /// How to start it.
    pub launch: Launch,
    /// Its appended stdout and stderr.
    pub log: PathBuf,
    /// Its pid record.
    pub pid_file: PathBuf,
}

/// A running replica task.
#[derive(Debug)]
pub struct Replica {
    /// Its id.
    pub id: String,
    report: watch::Receiver<Report>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Replica {
    /// Starts the replica's task.
    pub fn start(spec: ReplicaSpec, ports: Arc<Ports>, settings: Settings) -> Replica {
        let (tx, report) = watch::channel(Report {
            state: ReplicaState::Starting,
            port: 0,
            pid: None,
            restarts: 0,
            last_exit: None,
        });
        let stop = CancellationToken::new();
        let id = spec.id.clone();
        let task = tokio::spawn(run(spec, tx, stop.clone(), ports, settings));
        Replica {
            id,
            report,
            stop,
            task,
        }
    }

    /// Its latest report.
    pub fn report(&self) -> Report {
        self.report.borrow().clone()
    }

    /// Asks it to stop: SIGTERM, the grace period, then SIGKILL.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Whether it has stopped for good.
    pub fn finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops it and waits until its process is gone.
    pub async fn stop_and_wait(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Replica {
    /// A replica nobody holds any more stops rather than runs on unwatched.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Kills the process group it names when dropped: after a replica's process
/// ended, and when its task is dropped mid-run (the runtime ending as the
/// platform's process exits), where `kill_on_drop` would reach only the
/// group's leader and leave, say, a supervised program to PID 1.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            signal_group(pid, Signal::SIGKILL);
        }
    }
}

async fn run(
    spec: ReplicaSpec,
    report: watch::Sender<Report>,
    stop: CancellationToken,
    ports: Arc<Ports>,
    settings: Settings,
) {
    let http = reqwest::Client::builder()
        .timeout(settings.probe_interval.max(Duration::from_millis(200)))
        .no_proxy()
        .build()
        .unwrap_or_default();
    let mut backoff = Backoff::new(
        settings.backoff_initial,
        settings.backoff_max,
        settings.backoff_forgive_after,
    );
    let mut port = None;
    loop {
        let chosen = match port {
            Some(p) if ports::free(p) => Some(p),
            Some(p) => {
                ports.release(p);
                ports.take()
            }
            None => ports.take(),
        };
        port = chosen;
        let outcome = match chosen {
            Some(p) => run_once(&spec, p, &report, &stop, &http, &settings).await,
            None => Outcome::Exited("no free loopback port".into(), Duration::ZERO),
        };
        let (why, ran_for) = match outcome {
            Outcome::Stopped => break,
            Outcome::Exited(why, ran_for) => (why, ran_for),
        };
        tracing::warn!(replica = %spec.id, %why, "replica ended; restarting after backoff");
        report.send_modify(|r| {
            r.state = ReplicaState::Failed;
            r.pid = None;
            r.last_exit = Some(why);
        });
        let delay = backoff.after_exit(ran_for);
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
        report.send_modify(|r| r.restarts += 1);
    }
    if let Some(p) = port {
        ports.release(p);
    }
    report.send_modify(|r| {
        r.state = ReplicaState::Stopped;
        r.pid = None;
    });
}

enum Outcome {
    /// Stopped on request; do not restart.
    Stopped,
    /// Ended on its own or was killed as unhealthy: why, and how long it ran.
    Exited(String, Duration),
}

async fn run_once(
    spec: &ReplicaSpec,
    port: u16,
    report: &watch::Sender<Report>,
    stop: &CancellationToken,
    http: &reqwest::Client,
    settings: &Settings,
) -> Outcome {
    let started = Instant::now();
    let mut child = match spawn(spec, port) {
        Ok(child) => child,
        Err(why) => return Outcome::Exited(why, Duration::ZERO),
    };
    let pid = child.id();
    // Whatever the replica started itself dies with it.
    let group = GroupGuard(pid);
    let pid_file = pid.and_then(|pid| match PidFile::write(spec.pid_file.clone(), pid) {
        Ok(f) => Some(f),
        Err(error) => {
            tracing::warn!(replica = %spec.id, %error, "could not record the replica's pid");
            None
        }
    });
    report.send_modify(|r| {
        r.state = ReplicaState::Starting;
        r.port = port;
        r.pid = pid;
    });
    let url = format!("http://127.0.0.1:{port}{}", spec.launch.ready_path);
    // Probe often while starting, so that a replica (one started from zero
    // with requests waiting on it above all) is routed to soon after it is ready.
    let mut probes = tokio::time::interval(settings.probe_interval.min(STARTUP_PROBE_INTERVAL));
    let mut failures = 0;
    let mut foreign = 0;
    let outcome = loop {
        tokio::select! {
            () = stop.cancelled() => {
                report.send_modify(|r| r.state = ReplicaState::Stopped);
                if !settings.drain_delay.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(settings.drain_delay) => {}
                        _ = child.wait() => {}
                    }
                }
                terminate(&mut child, pid, settings.grace).await;
                break Outcome::Stopped;
            }
            status = child.wait() => {
                break Outcome::Exited(describe(status), started.elapsed());
            }
            _ = probes.tick() => {
                let ok = http.get(&url).send().await.is_ok_and(|r| r.status().is_success());
                let ready = report.borrow().state == ReplicaState::Ready;
                if ok && !ready && !own_listener(port, pid).await {
                    // Another process answers on this port: the replica lost
                    // the race for it and cannot bind it. Restarted, it gets
                    // another port (this one is not free).
                    foreign += 1;
                    if foreign >= UNHEALTHY_AFTER {
                        terminate(&mut child, pid, settings.grace).await;
                        break Outcome::Exited(
                            format!("port {port} is held by another process"),
                            started.elapsed(),
                        );
                    }
                } else if ok {
                    failures = 0;
                    if !ready {
                        tracing::info!(replica = %spec.id, port, "replica ready");
                        report.send_modify(|r| r.state = ReplicaState::Ready);
                        probes = tokio::time::interval(settings.probe_interval);
                        probes.reset();
                    }
                } else if ready {
                    failures += 1;
                    if failures >= UNHEALTHY_AFTER {
                        terminate(&mut child, pid, settings.grace).await;
                        break Outcome::Exited(
                            format!("stopped answering {} ({UNHEALTHY_AFTER} checks in a row)", spec.launch.ready_path),
                            started.elapsed(),
                        );
                    }
                }
            }
        }
    };
    drop(group);
    if let Some(f) = pid_file {
        f.remove();
    }
    outcome
}

fn spawn(spec: &ReplicaSpec, port: u16) -> Result<Child, String> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(|e| format!("could not open the log {}: {e}", spec.log.display()))?;
    let args = spec.launch.args_for(port);
    let mut header = &log;
    let _ = writeln!(
        header,
        "--- autoglm: starting {} {} (port {port})",
        spec.launch.program.display(),
        args.join(" ")
    );
    let stderr = log
        .try_clone()
        .map_err(|e| format!("could not open the log twice: {e}"))?;
    Command::new(&spec.launch.program)
        .args(&args)
        .envs(spec.launch.env.iter().map(|(k, v)| (k, v)))
        .env("AUTOGLM_PORT", port.to_string())
        // The built-in runtime exits when this process is gone (killed
        // outright, it cannot stop its replicas), so none is left orphaned.
        .env(
            autoglm_core::service::EXIT_WITH_PARENT_ENV,
            std::process::id().to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr))
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", spec.launch.program.display()))
}

/// Whether the listener on `port` is the replica's own (see [`listen`]);
/// yes when that cannot be told.
async fn own_listener(port: u16, pid: Option<u32>) -> bool {
    let Some(pid) = pid else { return true };
    tokio::task::spawn_blocking(move || listen::owned_by_group(port, pid))
        .await
        .ok()
        .flatten()
        != Some(false)
}

/// SIGTERM to the replica's group, `grace` to drain and exit, then SIGKILL.
async fn terminate(child: &mut Child, pid: Option<u32>, grace: Duration) {
    if let Some(pid) = pid {
        signal_group(pid, Signal::SIGTERM);
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        if let Some(pid) = pid {
            signal_group(pid, Signal::SIGKILL);
        }
        let _ = child.kill().await;
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!(
                "killed by signal {}",
                Signal::try_from(signal).map_or_else(|_| signal.to_string(), |s| s.to_string())
            ),
            (None, None) => "ended".into(),
        },
        Err(e) => format!("could not be waited for: {e}"),
    }
}
