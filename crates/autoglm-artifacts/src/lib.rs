//! The artifact store: where model version files live, under the home folder.
//!
//! Files arrive as streams (uploads) or are copied from a path. They are
//! written into a private staging folder while their sha256 is computed,
//! checked by format ([`formats`]), fsynced, and only then renamed into place
//! under a fresh random folder name. The database row is written after the
//! rename, so a crash leaves at worst an unreferenced folder, which
//! [`ArtifactStore::sweep`] removes at the next start; it never leaves a row
//! pointing at missing or partial files.
//!
//! **Architecture Invariant:** a committed folder is never written again;
//! versions are immutable.

pub mod formats;
mod staging;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use autoglm_core::artifact::{ArtifactFile, ArtifactFormat};
use thiserror::Error;

pub use staging::Staging;

/// Most files one version may hold.
pub const MAX_FILES: usize = 1000;
const STAGING: &str = ".staging";

/// Why an artifact was refused or could not be stored.
#[derive(Debug, Error)]
pub enum ArtifactError {
    /// A file path inside the artifact is not acceptable.
    #[error("{0}")]
    InvalidPath(String),
    /// Two files with one path.
    #[error("file {0:?} appears twice in the artifact")]
    Duplicate(String),
    /// The artifact holds no file.
    #[error("the artifact holds no file")]
    Empty,
    /// More than [`MAX_FILES`] files.
    #[error("the artifact holds more than {MAX_FILES} files")]
    TooManyFiles,
    /// A file failed its format check.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: String,
        /// What the check found.
        #[source]
        source: formats::FormatError,
    },
    /// The path to register is not usable.
    #[error("{0}")]
    Source(String),
    /// The upload stream failed (client went away, body error).
    #[error("reading the upload failed: {0}")]
    Upload(String),
    /// The file system failed.
    #[error("artifact storage failed")]
    Io(#[from] std::io::Error),
}

impl ArtifactError {
    /// Whether the client caused the error (as opposed to the server's disk).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, ArtifactError::Io(_))
    }
}

/// What a committed artifact is.
#[derive(Debug, Clone)]
pub struct StoredArtifact {
    /// Its folder, relative to the store root.
    pub storage_dir: String,
    /// `sha256:` digest (see [`digest_of`]).
    pub digest: String,
    /// Total bytes.
    pub size: u64,
    /// The main format.
    pub format: ArtifactFormat,
    /// The files, sorted by path.
    pub files: Vec<ArtifactFile>,
}

/// The digest of a set of files: the file's own sha256 for a single file,
/// otherwise the sha256 of the manifest `"{sha256}  {path}\n"` sorted by path
/// (the shape `sha256sum` prints, so users can recompute it).
pub fn digest_of(files: &[ArtifactFile]) -> String {
    use sha2::{Digest, Sha256};
    if let [single] = files {
        return format!("sha256:{}", single.sha256);
    }
    let mut sorted: Vec<&ArtifactFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut h = Sha256::new();
    for f in sorted {
        h.update(format!("{}  {}\n", f.sha256, f.path));
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// The root folder of all artifacts.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
}

impl ArtifactStore {
    /// Opens (creating) the store under `root`.
    pub fn open(root: &Path) -> Result<ArtifactStore, ArtifactError> {
        std::fs::create_dir_all(root.join(STAGING))?;
        Ok(ArtifactStore {
            root: root.to_owned(),
        })
    }

    /// Starts a new artifact in a private staging folder.
    pub async fn begin(&self) -> Result<Staging, ArtifactError> {
        Staging::new(
            &self.root,
            &self
                .root
                .join(STAGING)
                .join(uuid::Uuid::new_v4().to_string()),
        )
        .await
    }

    /// The absolute folder of a committed artifact.
    pub fn path_of(&self, storage_dir: &str) -> PathBuf {
        self.root.join(storage_dir)
    }

    /// Removes a committed artifact's folder (after its row was deleted).
    pub async fn remove(&self, storage_dir: &str) {
        if let Err(error) = tokio::fs::remove_dir_all(self.path_of(storage_dir)).await {
            tracing::warn!(storage_dir, %error, "could not remove artifact folder; it will be swept at next start");
        }
    }

    /// Removes staging leftovers and every folder not in `referenced`: what a
    /// crash between writing files and committing their row left behind.
    pub fn sweep(&self, referenced: &HashSet<String>) -> Result<usize, ArtifactError> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == STAGING {
                for stale in std::fs::read_dir(entry.path())? {
                    std::fs::remove_dir_all(stale?.path())?;
                    removed += 1;
                }
            } else if !referenced.contains(&name) {
                std::fs::remove_dir_all(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
