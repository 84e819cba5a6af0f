//! The tenants' quotas on this machine: what each tenant's replicas hold,
//! shared by every service's reconciler, so that a replica starts only
//! while its tenant's CPU, memory, GPU and replica quotas have room for it
//! (as a ResourceQuota admits pods on Kubernetes).

use std::collections::HashMap;

use autoglm_core::quota::{Holding, QuotaLimits, QuotaRefusal};
use parking_lot::Mutex;

/// Quotas and holdings per tenant.
#[derive(Debug, Default)]
pub struct Ledger {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    limits: HashMap<String, QuotaLimits>,
    held: HashMap<String, Holding>,
}

impl Ledger {
    /// Replaces every tenant's limits (a tenant left out has none). What
    /// replicas already hold stays: a lowered quota stops new replicas,
    /// and stops none that run.
    pub fn set_limits(&self, limits: HashMap<String, QuotaLimits>) {
        self.state.lock().limits = limits;
    }

    /// Takes `wanted` for a replica of `tenant` when its quotas have room.
    pub fn take(&self, tenant: &str, wanted: Holding) -> Result<(), QuotaRefusal> {
        let mut state = self.state.lock();
        let used = state.held.get(tenant).copied().unwrap_or_default();
        if let Some(limits) = state.limits.get(tenant) {
            limits.admit(used, wanted)?;
        }
        state.held.insert(tenant.to_owned(), used.plus(wanted));
        Ok(())
    }

    /// A stopped replica of `tenant` gives back what it held.
    pub fn give_back(&self, tenant: &str, held: Holding) {
        let mut state = self.state.lock();
        if let Some(used) = state.held.get_mut(tenant) {
            *used = used.minus(held);
        }
    }

    /// What `tenant`'s replicas hold now.
    pub fn held(&self, tenant: &str) -> Holding {
        self.state
            .lock()
            .held
            .get(tenant)
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoglm_core::quota::Quota;

    #[test]
    fn replicas_take_and_give_back_within_their_tenants_quota() {
        let ledger = Ledger::default();
        let limits = Quota {
            replicas: Some(2),
            ..Quota::default()
        }
        .limits()
        .unwrap();
        ledger.set_limits(HashMap::from([("acme".to_owned(), limits)]));
        let one = Holding::of_replica(None);
        ledger.take("acme", one).unwrap();
        ledger.take("acme", one).unwrap();
        let refusal = ledger.take("acme", one).unwrap_err();
        assert_eq!((refusal.used, refusal.limit), (2, 2));
        // Another tenant has no quota; a stopped replica makes room.
        ledger.take("other", one).unwrap();
        ledger.give_back("acme", one);
        ledger.take("acme", one).unwrap();
        assert_eq!(ledger.held("acme").replicas, 2);
        assert_eq!(ledger.held("other").replicas, 1);
    }
}
