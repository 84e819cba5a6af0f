//! Loopback ports for replicas: handed out from a base upward, skipping those
//! already handed out and those something else is listening on.

use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};

/// The ports this platform has handed out.
#[derive(Debug)]
pub struct Ports {
    base: u16,
    taken: Mutex<BTreeSet<u16>>,
}

impl Ports {
    /// Hands out ports from `base` upward.
    pub fn from(base: u16) -> Ports {
        Ports {
            base,
            taken: Mutex::new(BTreeSet::new()),
        }
    }

    /// A port nobody listens on now and not handed out before, or `None`
    /// when every port from the base up is busy.
    pub fn take(&self) -> Option<u16> {
        let mut taken = self.taken.lock();
        let port = (self.base..=u16::MAX).find(|p| !taken.contains(p) && free(*p))?;
        taken.insert(port);
        Some(port)
    }

    /// Returns `port` for reuse.
    pub fn release(&self, port: u16) {
        self.taken.lock().remove(&port);
    }
}

/// Whether a listener can bind `port` on loopback right now.
pub fn free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_unique_skip_busy_ones_and_come_back_when_released() {
        let busy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let busy_port = busy.local_addr().expect("addr").port();
        let ports = Ports::from(busy_port);
        let a = ports.take().expect("a port");
        let b = ports.take().expect("another port");
        assert!(a != busy_port && b != busy_port && a != b);
        ports.release(a);
        assert_eq!(ports.take(), Some(a));
    }
}
