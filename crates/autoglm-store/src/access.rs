//! Which commits changed who may do what: the version that credential caches
//! compare.
//!
//! A cache of resolved credentials must not outlive a change to a key, a
//! role or a limit, but every other write (a model created, a task's
//! progress) leaves it true. SQLite's update hook on the writer connection
//! tells which tables a transaction touched; a commit that touched one of
//! [`ACCESS_TABLES`] raises the version once it is visible to readers, so
//! that a resolution that began before it is stale, and one that begins
//! after it reads the change.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rusqlite::Connection;

/// The tables a principal is resolved from: keys, users, their roles in
/// tenants, and the tenants' limits.
const ACCESS_TABLES: [&str; 4] = ["api_keys", "users", "memberships", "tenants"];

/// The version, and whether the open transaction touched an access table.
#[derive(Debug, Default)]
pub(crate) struct AccessVersion {
    touched: Arc<AtomicBool>,
    version: AtomicU64,
}

impl AccessVersion {
    /// Watches the writer connection's changes.
    pub(crate) fn watch(conn: &Connection) -> AccessVersion {
        let access = AccessVersion::default();
        let touched = access.touched.clone();
        conn.update_hook(Some(move |_, _: &str, table: &str, _| {
            if ACCESS_TABLES.contains(&table) {
                touched.store(true, Ordering::SeqCst);
            }
        }));
        access
    }

    /// The transaction ended (committed or rolled back): raises the version
    /// when it touched an access table. Raising it for a rolled-back change
    /// costs a cache one needless miss.
    pub(crate) fn ended(&self) {
        if self.touched.swap(false, Ordering::SeqCst) {
            self.version.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub(crate) fn current(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }
}
