//! Restart delays for crashed replicas: exponential, capped, and forgiven once
//! a replica has stayed up long enough.

use std::time::Duration;

/// The delay schedule of one replica.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// A run at least this long resets the schedule: the crash was not a loop.
    forgive_after: Duration,
    next: Duration,
}

impl Backoff {
    /// 1 s, 2 s, 4 s … up to 30 s; a run of 60 s starts over.
    pub fn standard() -> Backoff {
        Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(30),
            Duration::from_secs(60),
        )
    }

    /// A schedule with its own bounds.
    pub fn new(initial: Duration, max: Duration, forgive_after: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            forgive_after,
            next: initial,
        }
    }

    /// How long to wait before restarting a replica that ran for `ran_for`.
    pub fn after_exit(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.forgive_after {
            self.next = self.initial;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset_after_a_long_run() {
        let mut b = Backoff::standard();
        let short = Duration::from_secs(1);
        let delays: Vec<u64> = (0..7).map(|_| b.after_exit(short).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(b.after_exit(Duration::from_secs(60)).as_secs(), 1);
        assert_eq!(b.after_exit(short).as_secs(), 2);
    }
}
