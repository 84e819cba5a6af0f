//! Which ready replica of a version takes a request.
//!
//! By default the one with the fewest outstanding requests. A service
//! balanced by prefix hash sends a conversation to the replica that a
//! consistent hash of its opening lands on, so its turns find their KV
//! cache, as long as that replica's load stays within a bound above the
//! mean (consistent hashing with bounded loads, as KubeAI's PrefixHash);
//! past the bound, or while that replica is ejected, the least loaded one
//! takes it. Each replica sits at `replication` points on the ring, keyed
//! by its address, so a replica that comes or goes moves only its own keys.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use autoglm_core::service::PrefixHash;

use crate::routes::Endpoint;

/// How one version chooses among its replicas.
#[derive(Debug)]
pub enum Balance {
    /// The least outstanding requests.
    LeastOutstanding,
    /// Its conversation's replica on `ring`, within the load bound.
    PrefixHash {
        /// The knobs, from the service's spec.
        config: PrefixHash,
        /// The version's replicas on the hash ring.
        ring: Ring,
    },
}

/// How a replica was chosen, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picked {
    /// By least load, as the version balances.
    LeastLoaded,
    /// The conversation's replica on the ring.
    Home,
    /// By least load, since the conversation's replica is loaded past the bound.
    OverBound,
    /// By least load, since the conversation's replica is ejected.
    Ejected,
}

/// Replicas placed on a ring of 64-bit hashes.
#[derive(Debug, Default)]
pub struct Ring {
    /// (point, index of the replica), sorted by point.
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// `replicas` at `replication` points each.
    pub fn new(replicas: impl IntoIterator<Item = SocketAddr>, replication: u32) -> Ring {
        let mut points = Vec::new();
        for (index, addr) in replicas.into_iter().enumerate() {
            for copy in 0..replication.max(1) {
                let mut hasher = DefaultHasher::new();
                (addr, copy).hash(&mut hasher);
                points.push((hasher.finish(), index));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The first replica clockwise from `key` that `usable` accepts.
    pub fn home(&self, key: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let start = self.points.partition_point(|&(point, _)| point < key);
        let len = self.points.len();
        (0..len)
            .map(|step| self.points[(start + step) % len].1)
            .find(|&index| usable(index))
    }
}

impl Balance {
    /// A replica of `endpoints` (none of `tried`) for a request keyed
    /// `key` (`None`: no opening to key on), and how it was chosen.
    /// Ejected replicas are skipped unless every one is.
    pub fn pick(
        &self,
        endpoints: &[Arc<Endpoint>],
        tried: &[SocketAddr],
        key: Option<u64>,
        now: Instant,
    ) -> Option<(Arc<Endpoint>, Picked)> {
        let untried = |e: &&Arc<Endpoint>| !tried.contains(&e.addr);
        let least = |picked| {
            least_loaded(
                endpoints
                    .iter()
                    .filter(untried)
                    .filter(|e| !e.is_ejected(now)),
            )
            .or_else(|| least_loaded(endpoints.iter().filter(untried)))
            .map(|e| (e.clone(), picked))
        };
        let (Balance::PrefixHash { config, ring }, Some(key)) = (self, key) else {
            return least(Picked::LeastLoaded);
        };
        let Some(home) = ring
            .home(key, |i| !tried.contains(&endpoints[i].addr))
            .map(|i| &endpoints[i])
        else {
            return least(Picked::LeastLoaded);
        };
        if home.is_ejected(now) {
            return least(Picked::Ejected);
        }
        if !within_bound(home, endpoints, config.mean_load_factor) {
            return least(Picked::OverBound);
        }
        Some((home.clone(), Picked::Home))
    }
}

/// Whether one more request on `replica` keeps it within `factor` percent
/// of the mean load of `all`, the request counted: CHWBL's bound,
/// `ceil(factor/100 × (total + 1) / n)`.
fn within_bound(replica: &Endpoint, all: &[Arc<Endpoint>], factor: u32) -> bool {
    let total: u64 = all.iter().map(|e| u64::from(e.outstanding())).sum::<u64>() + 1;
    let n = all.len().max(1) as u64;
    let bound = (total * u64::from(factor)).div_ceil(100 * n);
    u64::from(replica.outstanding()) < bound
}

/// The endpoint with the fewest outstanding requests, a random one of
/// those tied; each counter is read once, as they move under our feet.
fn least_loaded<'a>(
    endpoints: impl Iterator<Item = &'a Arc<Endpoint>>,
) -> Option<&'a Arc<Endpoint>> {
    let mut least = u32::MAX;
    let mut ties = 0usize;
    let mut chosen = None;
    for endpoint in endpoints {
        let load = endpoint.outstanding();
        if load < least {
            (least, ties, chosen) = (load, 1, Some(endpoint));
        } else if load == least {
            // Reservoir sampling: each tie ends up chosen with equal odds.
            ties += 1;
            if rand::random_range(0..ties) == 0 {
                chosen = Some(endpoint);
            }
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::Outstanding;

    fn replicas(ports: impl IntoIterator<Item = u16>) -> Vec<Arc<Endpoint>> {
        let epoch = Instant::now();
        ports
            .into_iter()
            .map(|p| Arc::new(Endpoint::new(SocketAddr::from(([10, 0, 0, 1], p)), epoch)))
            .collect()
    }

    fn prefix_hash(endpoints: &[Arc<Endpoint>]) -> Balance {
        let config = PrefixHash::default();
        Balance::PrefixHash {
            ring: Ring::new(endpoints.iter().map(|e| e.addr), config.replication),
            config,
        }
    }

    fn pick(balance: &Balance, endpoints: &[Arc<Endpoint>], key: u64) -> (SocketAddr, Picked) {
        let (e, how) = balance
            .pick(endpoints, &[], Some(key), Instant::now())
            .unwrap();
        (e.addr, how)
    }

    #[test]
    fn a_key_goes_to_one_replica_while_its_load_is_within_the_bound() {
        let endpoints = replicas([1, 2, 3]);
        let balance = prefix_hash(&endpoints);
        let (home, how) = pick(&balance, &endpoints, 42);
        assert_eq!(how, Picked::Home);
        let mut held = Vec::new();
        // With 3 replicas and a factor of 125%, the home may hold one
        // request while the others hold none (bound ceil(1.25 × 2 / 3) = 1
        // is reached only once it holds one).
        for _ in 0..5 {
            assert_eq!(pick(&balance, &endpoints, 42), (home, Picked::Home));
        }
        let home_endpoint = endpoints.iter().find(|e| e.addr == home).unwrap();
        held.push(Outstanding::on(home_endpoint.clone()));
        let (other, how) = pick(&balance, &endpoints, 42);
        assert_eq!(how, Picked::OverBound);
        assert_ne!(other, home);
        // The others catch up: the home is within the bound again.
        for e in endpoints.iter().filter(|e| e.addr != home) {
            held.push(Outstanding::on(e.clone()));
        }
        assert_eq!(pick(&balance, &endpoints, 42), (home, Picked::Home));
    }

    #[test]
    fn keys_spread_over_the_replicas_when_each_is_over_the_bound() {
        let endpoints = replicas([1, 2]);
        let balance = prefix_hash(&endpoints);
        let mut held = Vec::new();
        // Every request of one key, held open: the bound sends the later
        // ones to the other replica, so both end up busy.
        for _ in 0..8 {
            let (e, _) = balance
                .pick(&endpoints, &[], Some(7), Instant::now())
                .unwrap();
            held.push(Outstanding::on(e));
        }
        let loads: Vec<u32> = endpoints.iter().map(|e| e.outstanding()).collect();
        assert_eq!(loads.iter().sum::<u32>(), 8);
        assert!(loads.iter().all(|&l| l >= 3), "{loads:?}");
    }

    #[test]
    fn removing_a_replica_moves_only_its_keys() {
        let four = replicas([1, 2, 3, 4]);
        let three: Vec<_> = four[..3].to_vec();
        let before = prefix_hash(&four);
        let after = prefix_hash(&three);
        let removed = four[3].addr;
        let mut moved_own = 0;
        for key in (0..2000u64).map(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15)) {
            let (was, _) = pick(&before, &four, key);
            let (is, _) = pick(&after, &three, key);
            if was == removed {
                moved_own += 1;
            } else {
                assert_eq!(was, is, "key {key} moved though its replica stayed");
            }
        }
        // Its share of the keys, give or take the ring's unevenness.
        assert!((300..700).contains(&moved_own), "{moved_own}");
    }

    #[test]
    fn an_ejected_home_falls_back_to_the_least_loaded_replica() {
        let endpoints = replicas([1, 2, 3]);
        let balance = prefix_hash(&endpoints);
        let (home, _) = pick(&balance, &endpoints, 99);
        let home_endpoint = endpoints.iter().find(|e| e.addr == home).unwrap();
        assert!(home_endpoint.failed(true));
        let (other, how) = pick(&balance, &endpoints, 99);
        assert_eq!(how, Picked::Ejected);
        assert_ne!(other, home);
        // A refused connection moves the retry along the ring, not back home.
        let (retry, _) = balance
            .pick(&endpoints, &[other], Some(99), Instant::now())
            .unwrap();
        assert_ne!(retry.addr, other);
    }

    #[test]
    fn without_a_key_or_with_least_outstanding_the_least_loaded_replica_takes_it() {
        let endpoints = replicas([1, 2]);
        let _busy = Outstanding::on(endpoints[0].clone());
        let (e, how) = prefix_hash(&endpoints)
            .pick(&endpoints, &[], None, Instant::now())
            .unwrap();
        assert_eq!((e.addr, how), (endpoints[1].addr, Picked::LeastLoaded));
        let (e, how) = Balance::LeastOutstanding
            .pick(&endpoints, &[], Some(1), Instant::now())
            .unwrap();
        assert_eq!((e.addr, how), (endpoints[1].addr, Picked::LeastLoaded));
    }
}
