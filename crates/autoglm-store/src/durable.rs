//! Group commit: one WAL sync serves every commit that is waiting for one.
//!
//! The writer commits with `synchronous = NORMAL`, so SQLite writes the
//! transaction's frames into the WAL without syncing it; SQLite's WAL
//! checksums keep the database consistent whatever a crash cuts short. Before
//! a write is acknowledged, [`Durability::wait`] makes sure the WAL was
//! synced after its commit. Commits that arrive while a sync is running wait
//! for the next one, which covers all of them: under load each sync makes many
//! commits durable, as PostgreSQL's WAL flush does, and each write is still
//! acknowledged only after a sync that followed its commit.
//!
//! A failed sync leaves the WAL's state in the page cache unknown (the kernel
//! may have dropped the dirty pages), so every later write is refused, as
//! PostgreSQL does on an fsync failure: a restart recovers from what is on disk.

use parking_lot::{Condvar, Mutex};
use std::fs::File;
use std::path::Path;

use crate::{Result, StoreError};

/// The WAL file and how far it is known to be on disk.
#[derive(Debug)]
pub(crate) struct Durability {
    wal: File,
    state: Mutex<Progress>,
    synced: Condvar,
}

#[derive(Debug, Default)]
struct Progress {
    /// Commits counted so far; a commit's number is its place in this count.
    committed: u64,
    /// Writes those commits held (a transaction holds the writes that
    /// arrived together).
    writes: u64,
    /// Every commit up to this number is on disk.
    synced: u64,
    /// Syncs that succeeded.
    syncs: u64,
    /// A sync is running (on some writer's thread).
    syncing: bool,
    /// A sync failed: nothing can be acknowledged any more.
    failed: bool,
}

/// How the writes were made durable, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncCounts {
    /// Writes committed since the store was opened.
    pub writes: u64,
    /// Write transactions that held them.
    pub commits: u64,
    /// WAL syncs that made them durable.
    pub syncs: u64,
}

/// A committed transaction, to be made durable before it is acknowledged.
#[derive(Debug, Clone, Copy)]
#[must_use = "a commit is acknowledged only after Durability::wait"]
pub(crate) struct Commit(u64);

impl Durability {
    /// Opens the WAL of the database at `path`; the writer has already put
    /// the database in WAL mode, which creates the file.
    pub(crate) fn open(path: &Path) -> Result<Durability> {
        let mut name = path.as_os_str().to_owned();
        name.push("-wal");
        let wal = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&name)
            .map_err(|e| {
                StoreError::Sync(format!("cannot open {}: {e}", Path::new(&name).display()))
            })?;
        Ok(Durability {
            wal,
            state: Mutex::new(Progress::default()),
            synced: Condvar::new(),
        })
    }

    /// Numbers a commit of `writes` writes that just returned. Called while
    /// the writer is still held, so numbers follow commit order.
    pub(crate) fn committed(&self, writes: u64) -> Commit {
        let mut state = self.state.lock();
        state.committed += 1;
        state.writes += writes;
        Commit(state.committed)
    }

    /// Commits numbered, and syncs that made them durable: under concurrent
    /// writes, fewer syncs than commits.
    pub(crate) fn counts(&self) -> SyncCounts {
        let state = self.state.lock();
        SyncCounts {
            writes: state.writes,
            commits: state.committed,
            syncs: state.syncs,
        }
    }

    /// Returns once `commit` is on disk: at once when a sync that started
    /// after it has finished; otherwise after the next sync, run here when
    /// no other thread is running one.
    pub(crate) fn wait(&self, commit: Commit) -> Result<()> {
        let mut state = self.state.lock();
        loop {
            if state.failed {
                return Err(StoreError::Sync(
                    "an earlier sync of the database failed; restart the console".into(),
                ));
            }
            if state.synced >= commit.0 {
                return Ok(());
            }
            if state.syncing {
                self.synced.wait(&mut state);
                continue;
            }
            state.syncing = true;
            let covers = state.committed;
            let outcome = parking_lot::MutexGuard::unlocked(&mut state, || self.wal.sync_data());
            state.syncing = false;
            match outcome {
                Ok(()) => {
                    state.synced = state.synced.max(covers);
                    state.syncs += 1;
                }
                Err(e) => {
                    tracing::error!("syncing the database's WAL failed: {e}");
                    state.failed = true;
                }
            }
            self.synced.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn wal_beside(dir: &Path) -> std::path::PathBuf {
        let db = dir.join("db");
        std::fs::write(dir.join("db-wal"), b"").unwrap();
        db
    }

    #[test]
    fn a_sync_covers_every_commit_numbered_before_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let durable = Durability::open(&wal_beside(dir.path())).unwrap();
        let first = durable.committed(1);
        let second = durable.committed(1);
        durable.wait(second).unwrap();
        assert_eq!(durable.state.lock().synced, 2);
        // Already covered: no second sync needed, and none is run.
        durable.wait(first).unwrap();
        let counts = |commits, syncs| SyncCounts {
            writes: commits,
            commits,
            syncs,
        };
        assert_eq!(durable.counts(), counts(2, 1), "one sync for both");
        let third = durable.committed(1);
        assert_eq!(
            durable.state.lock().synced,
            2,
            "a new commit is not yet durable"
        );
        durable.wait(third).unwrap();
        assert_eq!(durable.state.lock().synced, 3);
        assert_eq!(durable.counts(), counts(3, 2));
    }

    #[test]
    fn concurrent_waiters_all_return_durable() {
        let dir = tempfile::tempdir().unwrap();
        let durable = Arc::new(Durability::open(&wal_beside(dir.path())).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let durable = durable.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let commit = durable.committed(1);
                        durable.wait(commit).unwrap();
                        assert!(durable.state.lock().synced >= commit.0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let state = durable.state.lock();
        assert_eq!((state.committed, state.synced), (400, 400));
        assert!(state.syncs <= 400);
    }

    #[test]
    fn a_missing_wal_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Durability::open(&dir.path().join("db")).unwrap_err();
        assert!(err.to_string().contains("db-wal"), "{err}");
    }
}
