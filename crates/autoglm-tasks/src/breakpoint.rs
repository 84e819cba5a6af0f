//! The phases at which the task scheduler's loop and workers stop in the
//! crate's tests (`autoglm-breakpoints`): a test stops the scheduler at any
//! of them, drops it there as a crash would, and starts another on the same
//! store.

use crate::Trigger;

/// Where the loop or a worker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The loop woke for this trigger; nothing claimed yet.
    Woken(Trigger),
    /// The task with this id is claimed (recorded running); its attempt has
    /// not begun.
    Claimed(i64),
    /// The attempt of the task with this id ended; how is not recorded yet.
    Executed(i64),
}

pub(crate) type Breakpoints = autoglm_breakpoints::Breakpoints<Phase>;
