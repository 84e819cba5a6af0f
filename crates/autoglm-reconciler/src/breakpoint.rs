//! Test-only stops in the reconciler's loop, after meilisearch's
//! index-reconciler `Breakpoint`: the loop reports each phase it reaches and
//! waits there until the test lets it go, so a test can change the world
//! between two phases (delete a service between the loop's read and its
//! apply) and then watch what the loop makes of it, waiting on phases
//! rather than on sleeps. Compiled into the crate's own tests only.

use parking_lot::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

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

type Report = (Phase, oneshot::Sender<()>);

/// The loop's side: each phase is reported to the attached test, if any.
#[derive(Debug, Default)]
pub(crate) struct Breakpoints(Mutex<Option<mpsc::UnboundedSender<Report>>>);

impl Breakpoints {
    /// Reports from now on to the returned handle.
    pub(crate) fn attach(&self) -> Handle {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.0.lock() = Some(tx);
        Handle(rx)
    }

    /// Reports `phase` and waits until the test lets the loop go on.
    pub(crate) async fn reach(&self, phase: Phase) {
        let Some(tx) = self.0.lock().clone() else {
            return;
        };
        let (go, wait) = oneshot::channel();
        if tx.send((phase, go)).is_ok() {
            // An error means the test dropped its handle or the hold: run on.
            let _ = wait.await;
        }
    }
}

/// The test's side.
#[derive(Debug)]
pub(crate) struct Handle(mpsc::UnboundedReceiver<Report>);

impl Handle {
    /// Lets the loop pass every other phase until it reaches `phase`, and
    /// holds it there. Panics after 30 s: the loop never got there.
    pub(crate) async fn hold_at(&mut self, phase: Phase) -> Held {
        let wait = async {
            loop {
                match self.0.recv().await {
                    Some((reached, go)) if reached == phase => return Held(go),
                    Some(_) => {}
                    None => panic!("the loop ended before {phase:?}"),
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(30), wait).await {
            Ok(held) => held,
            Err(_) => panic!("the loop did not reach {phase:?} within 30 s"),
        }
    }
}

/// The loop held at a phase, until released (or dropped).
#[derive(Debug)]
#[must_use = "dropping it releases the loop at once"]
pub(crate) struct Held(oneshot::Sender<()>);

impl Held {
    /// Lets the loop go on.
    pub(crate) fn release(self) {
        let _ = self.0.send(());
    }
}
