//! `autoglm supervise -- PROGRAM ARGS...`: how the local platform starts a
//! command runtime. It runs the program as its child and passes its exit on,
//! and when the platform that started it is gone (killed outright, so it
//! could not stop its replicas) it stops the program, so no replica outlives
//! its platform. A SIGTERM from the platform is passed on, and the
//! supervisor waits for the program to drain and exit.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use nix::sys::signal::{Signal, kill, raise};
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};

/// How long the program may take to exit once asked to.
const GRACE: Duration = Duration::from_secs(10);

/// `autoglm supervise`.
#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// The program and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Runs the program until it exits; returns its exit to the platform.
pub async fn run(args: SuperviseArgs) -> ExitCode {
    let Some((program, rest)) = args.command.split_first() else {
        return ExitCode::from(64);
    };
    let parent = std::env::var(autoglm_core::service::EXIT_WITH_PARENT_ENV)
        .ok()
        .and_then(|p| p.parse::<u32>().ok());
    let (mut terminate, mut interrupt) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            eprintln!("autoglm supervise: cannot handle signals");
            return ExitCode::FAILURE;
        }
    };
    let mut child = match Command::new(program)
        .args(rest)
        .env_remove(autoglm_core::service::EXIT_WITH_PARENT_ENV)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("autoglm supervise: cannot start {program}: {e}");
            return ExitCode::from(127);
        }
    };
    let pid = child.id().map(|p| Pid::from_raw(p as i32));
    let mut orphaned = tokio::time::interval(Duration::from_millis(500));
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = terminate.recv() => stop(pid, &mut child).await,
            _ = interrupt.recv() => stop(pid, &mut child).await,
            _ = orphaned.tick() => {
                if parent.is_some_and(|p| std::os::unix::process::parent_id() != p) {
                    eprintln!("autoglm supervise: the platform that started this replica is gone; stopping {program}");
                    stop(pid, &mut child).await;
                }
            }
        }
    };
    exit_like(status)
}

/// SIGTERM to the program, then SIGKILL after the grace period.
async fn stop(pid: Option<Pid>, child: &mut tokio::process::Child) {
    if let Some(pid) = pid {
        let _ = kill(pid, Signal::SIGTERM);
    }
    if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// Exits as the program did: with its status, or by its signal.
fn exit_like(status: std::io::Result<std::process::ExitStatus>) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            eprintln!("autoglm supervise: lost the program: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(code) = status.code() {
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    let signal = status.signal().unwrap_or(9);
    // Die of the same signal, so the platform reports what killed the program;
    // the ones handled here end in their conventional status instead.
    if let Ok(signal) = Signal::try_from(signal)
        && !matches!(signal, Signal::SIGTERM | Signal::SIGINT)
    {
        let _ = raise(signal);
    }
    ExitCode::from((128 + signal).clamp(0, 255) as u8)
}
