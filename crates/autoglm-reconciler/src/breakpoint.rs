//! The phases at which the reconciler's loop stops in the crate's tests
//! (`autoglm-breakpoints`): a test can change the world between the loop's
//! read and its apply, and wait on phases rather than on sleeps.

use crate::Trigger;

/// Where the loop is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Woken by this trigger, nothing read yet.
    Woken(Trigger),
    /// About to act, the platform untouched: a change's service is read;
    /// for a tick or a waiting request, demand is sampled next.
    BeforeApply,
    /// Done with the trigger: the plan, removal or new counts are with the platform.
    AfterApply,
}

pub(crate) type Breakpoints = autoglm_breakpoints::Breakpoints<Phase>;
