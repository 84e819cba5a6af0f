//! Group commit, first half: writes that arrive together share one transaction.
//!
//! One thread at a time holds the writer connection. It runs its write as a
//! part of the open transaction (beginning one when none is open), inside a
//! SAVEPOINT of its own, so that a part that fails or panics is rolled back
//! alone and the others stand. When other writers are waiting for the
//! connection, it leaves the transaction open for them and waits; the part
//! that finds nobody waiting (or the batch full) commits for every part, has
//! the WAL synced ([`crate::durable`], the second half) and tells the others.
//! Every write is thus still acknowledged only after a sync that followed the
//! commit holding it, while one transaction and one sync serve many writes.

use parking_lot::{Condvar, Mutex};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use r2d2_sqlite::rusqlite::Connection;

use crate::access::{TableVersions, Watched};
use crate::durable::{Commit, Durability};
use crate::{Result, StoreError};

/// The most parts one transaction takes: bounds how long the first part of
/// a busy batch waits for its answer.
const MAX_PARTS: usize = 64;

/// The open transaction that a write function runs in: the writer
/// connection, inside a savepoint of the caller's own.
#[derive(Debug)]
pub struct Transaction<'conn>(&'conn Connection);

impl std::ops::Deref for Transaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.0
    }
}

/// The writer connection and the writers queueing for it.
pub(crate) struct Writer {
    state: Mutex<WriterState>,
    /// Threads between asking for the connection and getting it.
    waiting: AtomicUsize,
    versions: TableVersions,
}

struct WriterState {
    conn: Connection,
    /// The transaction left open for the waiting writers, if any.
    open: Option<Arc<Batch>>,
    /// Parts run in the open transaction so far.
    parts: usize,
    /// Of which done (not rolled back).
    done: u64,
}

/// What became of one transaction, for the parts that left it open.
#[derive(Default)]
struct Batch {
    outcome: Mutex<Option<Result<(), String>>>,
    ended: Condvar,
}

impl Batch {
    fn publish(&self, outcome: &Result<()>) {
        *self.outcome.lock() = Some(outcome.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        self.ended.notify_all();
    }

    fn wait(&self) -> Result<()> {
        let mut outcome = self.outcome.lock();
        loop {
            match outcome.as_ref() {
                Some(Ok(())) => return Ok(()),
                Some(Err(e)) => {
                    return Err(StoreError::Sync(format!(
                        "the transaction holding this write failed: {e}"
                    )));
                }
                None => self.ended.wait(&mut outcome),
            }
        }
    }
}

/// How a part ended, before its transaction did.
enum Part<T> {
    Done(T),
    Failed(StoreError),
    Panicked(Box<dyn std::any::Any + Send>),
}

impl Writer {
    pub(crate) fn new(conn: Connection) -> Writer {
        let versions = TableVersions::watch(&conn);
        Writer {
            versions,
            state: Mutex::new(WriterState {
                conn,
                open: None,
                parts: 0,
                done: 0,
            }),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Runs `part` in the open transaction and returns once the transaction
    /// holding it is committed and synced. A part that fails changes nothing
    /// and returns its error at once. With `committed`, this part ends the
    /// transaction and calls `committed` after the sync, still holding the
    /// writer, so that what it publishes goes out in commit order.
    pub(crate) fn run<T>(
        &self,
        durability: &Durability,
        part: impl FnOnce(&Transaction<'_>) -> Result<T>,
        committed: Option<impl FnOnce(&T)>,
    ) -> Result<T> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut writer = self.state.lock();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let batch = match &writer.open {
            Some(batch) => batch.clone(),
            None => {
                writer.conn.execute_batch("BEGIN IMMEDIATE")?;
                let batch = Arc::new(Batch::default());
                writer.open = Some(batch.clone());
                writer.parts = 0;
                writer.done = 0;
                batch
            }
        };
        writer.parts += 1;
        let outcome = match run_part(&writer.conn, part) {
            Ok(outcome) => outcome,
            Err(broken) => {
                // The savepoint could not be undone: nothing in this
                // transaction can be trusted, so none of it is committed.
                let _ = writer.conn.execute_batch("ROLLBACK");
                self.versions.ended();
                writer.open = None;
                let message = broken.to_string();
                batch.publish(&Err(broken));
                return Err(StoreError::Sync(message));
            }
        };
        if let Part::Done(_) = outcome {
            writer.done += 1;
        }
        let leave_open = committed.is_none()
            && writer.parts < MAX_PARTS
            && self.waiting.load(Ordering::SeqCst) > 0;
        if leave_open {
            drop(writer);
            return outcome.answer(|| batch.wait());
        }
        writer.open = None;
        let commit = commit(&writer.conn, writer.done, durability);
        self.versions.ended();
        // Without `committed`, others may use the writer during the sync.
        let writer = committed.is_some().then_some(writer);
        let ended = commit.and_then(|c| durability.wait(c));
        if let (Some(committed), Ok(()), Part::Done(value)) = (committed, &ended, &outcome) {
            committed(value);
        }
        drop(writer);
        batch.publish(&ended);
        outcome.answer(|| ended)
    }
}

impl Writer {
    /// Raised by each commit that changed a table of `group`.
    pub(crate) fn version_of(&self, group: Watched) -> u64 {
        self.versions.current(group)
    }
}

impl<T> Part<T> {
    /// The caller's answer: its value once `ended` says the transaction is
    /// durable, its own error, or its panic resumed.
    fn answer(self, ended: impl FnOnce() -> Result<()>) -> Result<T> {
        match self {
            Part::Done(value) => ended().map(|()| value),
            Part::Failed(e) => Err(e),
            Part::Panicked(panic) => resume_unwind(panic),
        }
    }
}

/// Runs `part` inside a savepoint, rolled back when the part fails or
/// panics; an error here means the savepoint itself could not be handled.
fn run_part<T>(
    conn: &Connection,
    part: impl FnOnce(&Transaction<'_>) -> Result<T>,
) -> Result<Part<T>> {
    conn.prepare_cached("SAVEPOINT part")?.execute([])?;
    let outcome = match catch_unwind(AssertUnwindSafe(|| part(&Transaction(conn)))) {
        Ok(Ok(value)) => Part::Done(value),
        Ok(Err(e)) => Part::Failed(e),
        Err(panic) => Part::Panicked(panic),
    };
    if !matches!(outcome, Part::Done(_)) {
        conn.prepare_cached("ROLLBACK TO part")?.execute([])?;
    }
    conn.prepare_cached("RELEASE part")?.execute([])?;
    Ok(outcome)
}

/// Commits the open transaction of `writes` writes (or rolls it back when
/// the commit fails) and numbers the commit for the sync.
fn commit(conn: &Connection, writes: u64, durability: &Durability) -> Result<Commit> {
    match conn.execute_batch("COMMIT") {
        Ok(()) => Ok(durability.committed(writes)),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e.into())
        }
    }
}
