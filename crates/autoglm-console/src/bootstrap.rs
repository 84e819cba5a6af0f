//! Opening a home folder: database, artifact store, signing secret, and on
//! first start the system tenant, the admin user and the admin API key.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use autoglm_artifacts::ArtifactStore;
use autoglm_auth::{Sessions, hash_password, new_api_key, random_string};
use autoglm_core::audit::AuditEvent;
use autoglm_core::rbac::{Role, SYSTEM_TENANT};
use autoglm_store::{Mutation, Store, StoredResponse, tenancy, timestamp};

use crate::AppState;

/// The admin user created on first start.
pub const ADMIN_USER: &str = "admin";

/// What opening the home folder produced.
#[derive(Debug)]
pub struct Opened {
    /// Ready to serve.
    pub state: AppState,
    /// The admin key, when this start created it (also written to `admin-token`).
    pub new_admin_token: Option<String>,
    /// Where the admin token is kept.
    pub admin_token_file: PathBuf,
}

/// Why the home folder could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database.
    #[error("database: {0}")]
    Store(#[from] autoglm_store::StoreError),
    /// The artifact folder.
    #[error("artifact store: {0}")]
    Artifacts(#[from] autoglm_artifacts::ArtifactError),
    /// A file in the home folder.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Hashing the admin password.
    #[error("could not hash the admin password")]
    Hash,
}

/// Writes `contents` to `path` readable by the owner only, atomically.
pub fn write_secret_file(path: &Path, contents: &str) -> Result<(), OpenError> {
    let err = |source| OpenError::File {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(contents.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Opens (creating) the home folder. `admin_password` sets the admin's
/// password on first start; a random one is written to `admin-password` otherwise.
pub fn open(home: &Path, admin_password: Option<&str>) -> Result<Opened, OpenError> {
    std::fs::create_dir_all(home).map_err(|source| OpenError::File {
        path: home.to_owned(),
        source,
    })?;
    let store = Arc::new(Store::open(&home.join("autoglm.db"))?);
    let artifacts = ArtifactStore::open(&home.join("artifacts"))?;
    let referenced: HashSet<String> = store.storage_dirs()?.into_iter().collect();
    let swept = artifacts.sweep(&referenced)?;
    if swept > 0 {
        tracing::info!(
            swept,
            "removed artifact folders left by an interrupted write"
        );
    }
    let secret = store.setting_or_insert("jwt_secret", &random_string(64))?;
    let sessions = Sessions::new(secret.as_bytes());
    let admin_token_file = home.join("admin-token");
    let mut new_admin_token = None;
    if !store.has_users()? {
        let password = match admin_password {
            Some(p) => p.to_owned(),
            None => {
                let generated = random_string(24);
                write_secret_file(&home.join("admin-password"), &format!("{generated}\n"))?;
                generated
            }
        };
        let hash = hash_password(&password).map_err(|_| OpenError::Hash)?;
        let (secret, key) = new_api_key(
            ADMIN_USER,
            SYSTEM_TENANT,
            Some("admin (bootstrap)".into()),
            None,
            None,
        );
        // The token file goes first: a crash before the commit below leaves a
        // file that the next start overwrites, never a key nobody can read.
        write_secret_file(&admin_token_file, &format!("{secret}\n"))?;
        let audit = AuditEvent {
            time: timestamp(chrono::Utc::now()),
            actor: "system".into(),
            tenant: SYSTEM_TENANT.into(),
            action: "system.bootstrap".into(),
            target: format!("users/{ADMIN_USER}"),
            request_id: String::new(),
            outcome: String::new(),
        };
        store.write(
            Mutation {
                audit,
                idempotency: None,
            },
            |tx, _| {
                tenancy::create_tenant(tx, SYSTEM_TENANT)?;
                tenancy::create_user(tx, ADMIN_USER, &hash, SYSTEM_TENANT, Role::Admin)?;
                tenancy::insert_key(tx, &key)
            },
            |_| StoredResponse {
                status: 200,
                body: Vec::new(),
            },
        )?;
        new_admin_token = Some(secret);
    }
    let config = autoglm_config::Hub::load(&store)?;
    Ok(Opened {
        state: AppState::new(store, artifacts, sessions, config),
        new_admin_token,
        admin_token_file,
    })
}
