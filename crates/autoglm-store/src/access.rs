//! Which commits changed who may do what, the policies, what the
//! cluster keeps per tenant, or the gateway's filters: the versions that caches of credentials and
//! of compiled policies, and the cluster driver's tenants loop, compare.
//!
//! A cache of resolved credentials must not outlive a change to a key, a
//! role or a limit, and one of compiled policies not a change to a policy,
//! but every other write (a model created, a task's progress) leaves them
//! true. SQLite's update hook on the writer connection tells which tables a
//! transaction touched; a commit that touched a table of a [`Watched`]
//! group raises that group's version once it is visible to readers, so
//! that a read that began before it is stale, and one that begins after it
//! sees the change.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;

/// The groups of tables whose changes are counted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Watched {
    /// Keys, users, their roles in tenants, and the tenants' limits: what a
    /// principal is resolved from.
    Access = 0,
    /// The policies.
    Policies = 1,
    /// What the cluster keeps in each tenant's namespace: the tenants,
    /// their quotas, the policies and the stages of model versions.
    Tenancy = 2,
    /// The gateway's filters and the tenants' filter chains.
    Filters = 3,
}

const GROUPS: [(Watched, &[&str]); 4] = [
    (
        Watched::Access,
        &["api_keys", "users", "memberships", "tenants"],
    ),
    (Watched::Policies, &["policies"]),
    (Watched::Tenancy, &["tenants", "policies", "model_versions"]),
    (Watched::Filters, &["filters", "filter_chains"]),
];

/// Per group: whether the open transaction touched it (a bit each), and
/// its version.
#[derive(Debug, Default)]
pub(crate) struct TableVersions {
    touched: Arc<AtomicU64>,
    versions: [AtomicU64; GROUPS.len()],
}

impl TableVersions {
    /// Watches the writer connection's changes.
    pub(crate) fn watch(conn: &Connection) -> TableVersions {
        let versions = TableVersions::default();
        let touched = versions.touched.clone();
        conn.update_hook(Some(move |_, _: &str, table: &str, _| {
            for (group, tables) in GROUPS {
                if tables.contains(&table) {
                    touched.fetch_or(1 << group as u64, Ordering::SeqCst);
                }
            }
        }));
        versions
    }

    /// The transaction ended (committed or rolled back): raises the version
    /// of each group it touched. Raising one for a rolled-back change costs
    /// a cache one needless miss.
    pub(crate) fn ended(&self) {
        let touched = self.touched.swap(0, Ordering::SeqCst);
        for (group, _) in GROUPS {
            if touched & (1 << group as u64) != 0 {
                self.versions[group as usize].fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    pub(crate) fn current(&self, group: Watched) -> u64 {
        self.versions[group as usize].load(Ordering::SeqCst)
    }
}
