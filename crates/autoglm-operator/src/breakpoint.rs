//! Stops in a ModelService's reconcile, for tests, after meilisearch's
//! index-scheduler `Breakpoint`: each reconcile reports the steps it reaches
//! and waits there until the test lets it go, so a test can change the
//! cluster between two steps (delete a child the reconcile just applied) and
//! then wait for what the operator makes of it, on steps rather than sleeps.
//!
//! Only with the `test-hooks` feature, which the crate's own tests turn on
//! (through its dev-dependency on itself). Without it [`Breakpoints`] is
//! empty and reporting a step compiles to nothing.

use autoglm_render::ModelServiceObject;

/// A step of one ModelService's reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The reconcile began, the caches synced; nothing written yet.
    Started,
    /// The children are rendered; none applied yet.
    BeforeApply,
    /// The children are applied and the unrendered ones deleted; the status
    /// is not written yet.
    BeforeStatus,
    /// The reconcile is over, whatever its outcome.
    Finished,
}

#[cfg(not(feature = "test-hooks"))]
pub use off::Breakpoints;
#[cfg(feature = "test-hooks")]
pub use on::{Breakpoints, Handle, Held};

#[cfg(not(feature = "test-hooks"))]
mod off {
    use super::{ModelServiceObject, Step};

    /// Nowhere to report to.
    #[derive(Debug)]
    pub struct Breakpoints;

    impl Breakpoints {
        pub(crate) fn none() -> Breakpoints {
            Breakpoints
        }

        pub(crate) async fn reach(&self, _: &ModelServiceObject, _: Step) {}
    }
}

#[cfg(feature = "test-hooks")]
mod on {
    use std::time::Duration;

    use kube::ResourceExt;
    use tokio::sync::{mpsc, oneshot};

    use super::{ModelServiceObject, Step};

    /// A step reached by the reconcile of `namespace/name`.
    type Report = (String, Step, oneshot::Sender<()>);

    /// Where reconciles report their steps: to a [`Handle`], or nowhere.
    #[derive(Debug)]
    pub struct Breakpoints(Option<mpsc::UnboundedSender<Report>>);

    impl Breakpoints {
        /// Breakpoints reporting nowhere.
        pub(crate) fn none() -> Breakpoints {
            Breakpoints(None)
        }

        /// Breakpoints reporting to the returned handle.
        pub fn new() -> (Breakpoints, Handle) {
            let (tx, rx) = mpsc::unbounded_channel();
            (Breakpoints(Some(tx)), Handle(rx))
        }

        /// Reports `step` of `ms`'s reconcile and waits until the test lets it go on.
        pub(crate) async fn reach(&self, ms: &ModelServiceObject, step: Step) {
            let Some(tx) = &self.0 else { return };
            let service = format!("{}/{}", ms.namespace().unwrap_or_default(), ms.name_any());
            let (go, wait) = oneshot::channel();
            if tx.send((service, step, go)).is_ok() {
                // An error means the test dropped its handle or the hold: run on.
                let _ = wait.await;
            }
        }
    }

    /// The test's side. Dropping it lets every reconcile run freely.
    #[derive(Debug)]
    pub struct Handle(mpsc::UnboundedReceiver<Report>);

    impl Handle {
        /// Lets reconciles pass every other step until that of `service`
        /// (`namespace/name`) reaches `step`, and holds it there. Panics
        /// after 60 s: it never got there.
        pub async fn hold_at(&mut self, service: &str, step: Step) -> Held {
            let wait = async {
                loop {
                    match self.0.recv().await {
                        Some((s, reached, go)) if s == service && reached == step => {
                            return Held(go);
                        }
                        Some(_) => {}
                        None => panic!("the operator stopped before {service} reached {step:?}"),
                    }
                }
            };
            match tokio::time::timeout(Duration::from_secs(60), wait).await {
                Ok(held) => held,
                Err(_) => panic!("{service} did not reach {step:?} within 60 s"),
            }
        }
    }

    /// A reconcile held at a step, until released (or dropped).
    #[derive(Debug)]
    #[must_use = "dropping it releases the reconcile at once"]
    pub struct Held(oneshot::Sender<()>);

    impl Held {
        /// Lets the reconcile go on.
        pub fn release(self) {
            let _ = self.0.send(());
        }
    }
}
