//! Request-based autoscaling of one service version, pure: fed samples of
//! in-flight and waiting requests, it says how many replicas to run.
//!
//! As the Kubernetes HPA does, it scales up at once to what the load needs,
//! and down only to the highest recommendation of a stabilisation window.
//! A version whose minimum is zero keeps one replica until it has been idle
//! for `scale_to_zero_after`, and leaves zero as soon as a request waits.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A version's autoscaling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Fewest replicas; 0 allows scaling to zero.
    pub min: u32,
    /// Most replicas.
    pub max: u32,
    /// In-flight requests per replica to aim for.
    pub target_in_flight: u32,
    /// How long a lower recommendation must hold before scaling down.
    pub scale_down_stabilization: Duration,
    /// Idle time before the last replica stops (when `min` is 0).
    pub scale_to_zero_after: Duration,
}

/// The state of one version's autoscaler.
#[derive(Debug)]
pub struct Autoscaler {
    policy: Policy,
    replicas: u32,
    recent: VecDeque<(Instant, u32)>,
    last_busy: Instant,
}

impl Autoscaler {
    /// Starts at `initial` replicas at time `now`.
    pub fn new(policy: Policy, initial: u32, now: Instant) -> Autoscaler {
        Autoscaler {
            replicas: initial.clamp(policy.min, policy.max),
            policy,
            recent: VecDeque::new(),
            last_busy: now,
        }
    }

    /// Replaces the policy (the spec changed), keeping the history.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
        self.replicas = self.replicas.clamp(policy.min, policy.max);
    }

    /// Replicas wanted now.
    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// Takes a sample and returns the replicas wanted.
    pub fn observe(&mut self, now: Instant, in_flight: u64, waiting: u64) -> u32 {
        let p = self.policy;
        let load = in_flight + waiting;
        if load > 0 {
            self.last_busy = now;
        }
        let target = u64::from(p.target_in_flight.max(1));
        let mut wanted = u32::try_from(load.div_ceil(target)).unwrap_or(u32::MAX);
        if p.min == 0 && now.duration_since(self.last_busy) < p.scale_to_zero_after {
            // Recently busy: keep one warm until the idle period ends.
            wanted = wanted.max(1);
        }
        let wanted = wanted.clamp(p.min, p.max.max(p.min));
        self.recent.push_back((now, wanted));
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > p.scale_down_stabilization)
        {
            self.recent.pop_front();
        }
        let floor = self.recent.iter().map(|(_, r)| *r).max().unwrap_or(wanted);
        self.replicas = if wanted >= self.replicas {
            wanted
        } else {
            floor.min(self.replicas)
        };
        // A waiting request always gets a replica, whatever the window says.
        if waiting > 0 && self.replicas == 0 {
            self.replicas = 1.min(p.max);
        }
        self.replicas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min: u32) -> Policy {
        Policy {
            min,
            max: 5,
            target_in_flight: 2,
            scale_down_stabilization: Duration::from_secs(10),
            scale_to_zero_after: Duration::from_secs(30),
        }
    }

    #[test]
    fn scales_up_at_once_to_what_the_load_needs() {
        let t0 = Instant::now();
        let mut a = Autoscaler::new(policy(1), 1, t0);
        assert_eq!(a.observe(t0, 1, 0), 1);
        assert_eq!(a.observe(t0 + Duration::from_millis(250), 7, 0), 4);
        assert_eq!(
            a.observe(t0 + Duration::from_millis(500), 40, 0),
            5,
            "capped at max"
        );
    }

    #[test]
    fn scales_down_only_after_the_stabilisation_window() {
        let t0 = Instant::now();
        let mut a = Autoscaler::new(policy(1), 1, t0);
        assert_eq!(a.observe(t0, 8, 0), 4);
        assert_eq!(a.observe(t0 + Duration::from_secs(5), 0, 0), 4);
        assert_eq!(a.observe(t0 + Duration::from_secs(9), 2, 0), 4);
        // The 4 leaves the window after 10 s; the 1 at 9 s is the highest left.
        assert_eq!(a.observe(t0 + Duration::from_secs(11), 0, 0), 1);
    }

    #[test]
    fn goes_to_zero_after_the_idle_period_and_back_for_a_waiting_request() {
        let t0 = Instant::now();
        let mut a = Autoscaler::new(policy(0), 1, t0);
        assert_eq!(a.observe(t0, 1, 0), 1);
        assert_eq!(
            a.observe(t0 + Duration::from_secs(29), 0, 0),
            1,
            "still warm"
        );
        assert_eq!(
            a.observe(t0 + Duration::from_secs(45), 0, 0),
            0,
            "idle 44 s"
        );
        assert_eq!(
            a.observe(t0 + Duration::from_secs(46), 0, 1),
            1,
            "one waits"
        );
        assert_eq!(a.observe(t0 + Duration::from_secs(47), 0, 0), 1);
    }

    #[test]
    fn a_fixed_minimum_is_kept_when_idle() {
        let t0 = Instant::now();
        let mut a = Autoscaler::new(policy(2), 0, t0);
        assert_eq!(a.replicas(), 2);
        assert_eq!(a.observe(t0 + Duration::from_secs(100), 0, 0), 2);
    }
}
