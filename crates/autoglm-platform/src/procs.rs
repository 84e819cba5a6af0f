//! Replica processes on Linux: their process groups, signals, and the pid
//! files that let the next start of the platform find what a crashed one
//! left running.
//!
//! A pid file holds the pid and the process's start time (field 22 of
//! `/proc/PID/stat`); both must match before anything is signalled, so a
//! recycled pid is never killed by mistake.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The start time of `pid` in clock ticks since boot, if it is alive.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields
    // after it start behind the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` started at `started` is still there (and not a zombie).
fn alive(pid: u32, started: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let zombie = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        == Some("Z");
    !zombie && start_time(pid) == Some(started)
}

/// Sends `signal` to the process group led by `pid` (each replica leads its own).
pub fn signal_group(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if let Err(error) = killpg(Pid::from_raw(raw), signal) {
        tracing::debug!(pid, %error, ?signal, "signal not delivered");
    }
}

/// The record of one running replica process.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Records `pid` at `path`, written whole or not at all.
    pub fn write(path: PathBuf, pid: u32) -> io::Result<PidFile> {
        let started = start_time(pid).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("process {pid} is gone"))
        })?;
        let partial = path.with_extension("pid.partial");
        std::fs::write(&partial, format!("{pid} {started}\n"))?;
        std::fs::rename(&partial, &path)?;
        Ok(PidFile { path })
    }

    /// Forgets the record: the process has been reaped.
    pub fn remove(self) {
        if let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "could not remove a pid file");
        }
    }
}

/// Stops every process recorded under `root` (any depth) that is still the
/// process the record names, then removes the records. Returns how many
/// processes it stopped. Each gets SIGTERM and `grace` to exit, then SIGKILL.
pub fn sweep(root: &Path, grace: Duration) -> usize {
    let mut found = Vec::new();
    collect(root, &mut found);
    let mut live = Vec::new();
    for path in found {
        let record = std::fs::read_to_string(&path).unwrap_or_default();
        let mut words = record.split_whitespace().map(str::parse::<u64>);
        if let (Some(Ok(pid)), Some(Ok(started))) = (words.next(), words.next())
            && let Ok(pid) = u32::try_from(pid)
            && alive(pid, started)
        {
            tracing::warn!(pid, record = %path.display(), "stopping a replica left by an earlier run");
            signal_group(pid, Signal::SIGTERM);
            live.push((pid, started));
        }
        let _ = std::fs::remove_file(&path);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && live.iter().any(|&(p, s)| alive(p, s)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &(pid, started) in &live {
        if alive(pid, started) {
            signal_group(pid, Signal::SIGKILL);
        }
    }
    live.len()
}

fn collect(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, found);
        } else if path
            .extension()
            .is_some_and(|e| e == "pid" || e == "partial")
        {
            found.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_of_this_process_is_readable_and_stable() {
        let me = std::process::id();
        let first = start_time(me).expect("own stat");
        assert_eq!(start_time(me), Some(first));
        assert!(alive(me, first));
        assert!(
            !alive(me, first + 1),
            "another start time is another process"
        );
    }
}
