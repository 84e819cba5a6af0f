//! One timer per client connection for every deadline it waits under (the
//! idle wait, the request head, the body, the replica's answer).
//!
//! Those deadlines mostly move later with each request. Re-arming a tokio
//! timer costs a removal from its wheel and an insertion, on every request;
//! this one stays armed where it is and is moved only when a deadline comes
//! sooner than it, or when it fires before the deadline now in force. Under
//! keep-alive traffic it is re-armed about once per idle timeout.

use std::future::Future;
use std::pin::Pin;

use tokio::time::{Instant, Sleep};

/// The deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// A connection's timer.
#[derive(Debug)]
pub struct Deadlines {
    sleep: Pin<Box<Sleep>>,
}

impl Deadlines {
    /// A timer, first armed at `at`.
    pub fn new(at: Instant) -> Deadlines {
        Deadlines {
            sleep: Box::pin(tokio::time::sleep_until(at)),
        }
    }

    /// Runs `future` to its end, unless `deadline` passes first.
    pub async fn within<F: Future>(
        &mut self,
        deadline: Instant,
        future: F,
    ) -> Result<F::Output, Elapsed> {
        if deadline < self.sleep.deadline() {
            self.sleep.as_mut().reset(deadline);
        }
        let mut future = std::pin::pin!(future);
        loop {
            tokio::select! {
                biased;
                out = &mut future => return Ok(out),
                () = self.sleep.as_mut() => {
                    if Instant::now() >= deadline {
                        return Err(Elapsed);
                    }
                    // Armed for an earlier deadline than this one.
                    self.sleep.as_mut().reset(deadline);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn each_deadline_holds_whether_the_timer_is_armed_sooner_or_later() {
        let start = Instant::now();
        let mut timer = Deadlines::new(start + Duration::from_secs(5));
        let slow = |s| tokio::time::sleep(Duration::from_secs(s));

        // Armed sooner (5 s) than this deadline (8 s): it fires, re-arms and
        // lets the 7 s future finish.
        let done = timer.within(start + Duration::from_secs(8), slow(7)).await;
        assert_eq!(done, Ok(()));
        assert_eq!(start.elapsed(), Duration::from_secs(7));

        // A later deadline passes: the future is cut at 8 + 7 = 15 s.
        let at = Instant::now();
        let cut = timer.within(at + Duration::from_secs(8), slow(60)).await;
        assert_eq!(cut, Err(Elapsed));
        assert_eq!(at.elapsed(), Duration::from_secs(8));

        // Armed later (at 15 s, now past) than a sooner deadline: moved to it.
        let at = Instant::now();
        let mut far = Deadlines::new(at + Duration::from_secs(600));
        let cut = far.within(at + Duration::from_secs(2), slow(60)).await;
        assert_eq!(cut, Err(Elapsed));
        assert_eq!(at.elapsed(), Duration::from_secs(2));

        // A future already done never waits.
        assert_eq!(far.within(Instant::now(), async { 7 }).await, Ok(7));
    }
}
