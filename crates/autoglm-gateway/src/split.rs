//! Which version of a service answers a request: the pinned one, the one a
//! sticky key hashes to, or one drawn by the traffic weights. Pure.

use std::hash::{BuildHasher, Hasher};

/// A version and its share of traffic.
pub trait Weighted {
    /// The version label.
    fn version(&self) -> &str;
    /// Percent of traffic.
    fn weight(&self) -> u32;
}

/// How to choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice<'a> {
    /// This version, whatever the weights say.
    Pinned(&'a str),
    /// The same version for every request with this key, by the weights.
    Sticky(&'a str),
    /// A fresh draw by the weights; `roll` is uniform in 0..100.
    Random(u32),
}

/// The index of the chosen version in `versions`, or `None` when a pinned
/// version is not among them (or no version carries weight).
pub fn choose<W: Weighted>(versions: &[W], choice: Choice<'_>) -> Option<usize> {
    let roll = match choice {
        Choice::Pinned(v) => return versions.iter().position(|w| w.version() == v),
        Choice::Sticky(key) => sticky_roll(key),
        Choice::Random(roll) => roll,
    };
    let total: u32 = versions.iter().map(Weighted::weight).sum();
    if total == 0 {
        return None;
    }
    // Weights sum to 100 when valid; scale anyway so a sum off by rounding still splits.
    let mut point = u64::from(roll % 100) * u64::from(total) / 100;
    for (i, w) in versions.iter().enumerate() {
        let weight = u64::from(w.weight());
        if point < weight {
            return Some(i);
        }
        point -= weight;
    }
    versions.iter().rposition(|w| w.weight() > 0)
}

/// A stable 0..100 for `key`: the same in every gateway process and release.
fn sticky_roll(key: &str) -> u32 {
    let mut h = FixedHasher.build_hasher();
    h.write(key.as_bytes());
    (h.finish() % 100) as u32
}

/// FNV-1a: stable across processes, unlike the standard library's seeded hasher.
#[derive(Debug, Clone, Copy)]
struct FixedHasher;

impl BuildHasher for FixedHasher {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

#[derive(Debug)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        // Mix the high bits down so `% 100` sees all of them.
        let x = self.0;
        (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd) ^ (x >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct V(&'static str, u32);
    impl Weighted for V {
        fn version(&self) -> &str {
            self.0
        }
        fn weight(&self) -> u32 {
            self.1
        }
    }

    #[test]
    fn rolls_fall_into_the_weights() {
        let vs = [V("1", 90), V("2", 10)];
        let picks: Vec<usize> = (0..100)
            .map(|r| choose(&vs, Choice::Random(r)).unwrap_or(9))
            .collect();
        assert_eq!(picks.iter().filter(|i| **i == 0).count(), 90);
        assert_eq!(picks.iter().filter(|i| **i == 1).count(), 10);
        let warm_only = [V("1", 100), V("2", 0)];
        assert!((0..100).all(|r| choose(&warm_only, Choice::Random(r)) == Some(0)));
    }

    #[test]
    fn pins_and_sticky_keys_hold() {
        let vs = [V("1", 50), V("2", 50)];
        assert_eq!(choose(&vs, Choice::Pinned("2")), Some(1));
        assert_eq!(choose(&vs, Choice::Pinned("3")), None);
        let first = choose(&vs, Choice::Sticky("user-17"));
        assert!((0..20).all(|_| choose(&vs, Choice::Sticky("user-17")) == first));
        // Sticky keys still spread by the weights.
        let ones = (0..1000)
            .filter(|i| choose(&vs, Choice::Sticky(&format!("user-{i}"))) == Some(0))
            .count();
        assert!((420..=580).contains(&ones), "{ones} of 1000 on version 1");
    }

    #[test]
    fn nothing_to_choose_without_weight() {
        let vs = [V("1", 0)];
        assert_eq!(choose(&vs, Choice::Random(5)), None);
        assert_eq!(choose::<V>(&[], Choice::Random(5)), None);
    }
}
