//! Test-only stops in a loop, after meilisearch's index-scheduler
//! `Breakpoint`: the loop reports each phase it reaches and waits there
//! until the test lets it go, so a test can change the world between two
//! phases (delete a service between a read and an apply, kill the process
//! between an attempt and its record) and then watch what the loop makes of
//! it, waiting on phases rather than on sleeps. The reconciler's and the
//! task scheduler's loops use it in their crates' own tests only.

use parking_lot::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

type Report<P> = (P, oneshot::Sender<()>);

/// The loop's side: each phase is reported to the attached test, if any.
#[derive(Debug)]
pub struct Breakpoints<P>(Mutex<Option<mpsc::UnboundedSender<Report<P>>>>);

impl<P> Default for Breakpoints<P> {
    fn default() -> Breakpoints<P> {
        Breakpoints(Mutex::new(None))
    }
}

impl<P: std::fmt::Debug + PartialEq> Breakpoints<P> {
    /// Reports from now on to the returned handle.
    pub fn attach(&self) -> Handle<P> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.0.lock() = Some(tx);
        Handle(rx)
    }

    /// Reports `phase` and waits until the test lets the loop go on.
    pub async fn reach(&self, phase: P) {
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
pub struct Handle<P>(mpsc::UnboundedReceiver<Report<P>>);

impl<P: std::fmt::Debug + PartialEq> Handle<P> {
    /// Lets the loop pass every other phase until it reaches `phase`, and
    /// holds it there. Panics after 30 s: the loop never got there.
    pub async fn hold_at(&mut self, phase: P) -> Held {
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
pub struct Held(oneshot::Sender<()>);

impl Held {
    /// Lets the loop go on.
    pub fn release(self) {
        let _ = self.0.send(());
    }
}
