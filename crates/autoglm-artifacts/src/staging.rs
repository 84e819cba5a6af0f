//! An artifact being written: streamed or copied files, hashed and checked,
//! then committed by one rename.

use std::path::{Path, PathBuf};

use autoglm_core::artifact::{ArtifactFile, ArtifactFormat};
use autoglm_core::names::validate_artifact_path;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{ArtifactError, MAX_FILES, StoredArtifact, digest_of, formats};

/// A staging folder; dropped without [`Staging::commit`], it is removed.
#[derive(Debug)]
pub struct Staging {
    root: PathBuf,
    dir: PathBuf,
    files: Vec<ArtifactFile>,
    committed: bool,
}

impl Staging {
    pub(crate) async fn new(root: &Path, dir: &Path) -> Result<Staging, ArtifactError> {
        tokio::fs::create_dir_all(dir).await?;
        Ok(Staging {
            root: root.to_owned(),
            dir: dir.to_owned(),
            files: Vec::new(),
            committed: false,
        })
    }

    fn claim(&self, path: &str) -> Result<PathBuf, ArtifactError> {
        validate_artifact_path(path).map_err(|e| ArtifactError::InvalidPath(e.to_string()))?;
        if self.files.iter().any(|f| f.path == path) {
            return Err(ArtifactError::Duplicate(path.to_owned()));
        }
        let under = |dir: &str, p: &str| {
            p.strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
        };
        if let Some(clash) = self
            .files
            .iter()
            .find(|f| under(&f.path, path) || under(path, &f.path))
        {
            return Err(ArtifactError::InvalidPath(format!(
                "{path:?} and {:?} would make one path both a file and a folder",
                clash.path
            )));
        }
        if self.files.len() >= MAX_FILES {
            return Err(ArtifactError::TooManyFiles);
        }
        Ok(self.dir.join(path))
    }

    /// Streams one file into the artifact, hashing as it goes; memory stays
    /// at one chunk whatever the file's size.
    pub async fn write_stream<S, E>(&mut self, path: &str, mut body: S) -> Result<(), ArtifactError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let target = self.claim(path)?;
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut file = tokio::fs::File::create(&target).await?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ArtifactError::Upload(e.to_string()))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        self.finish_file(path, target, size, hex::encode(hasher.finalize()))
            .await
    }

    /// Copies a file or a directory tree from the console's machine.
    pub async fn copy_from(&mut self, source: &Path) -> Result<(), ArtifactError> {
        if !source.is_absolute() {
            return Err(ArtifactError::Source(format!(
                "path {} must be absolute",
                source.display()
            )));
        }
        let meta = tokio::fs::metadata(source)
            .await
            .map_err(|e| ArtifactError::Source(format!("cannot read {}: {e}", source.display())))?;
        if meta.is_file() {
            let name = source
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| {
                    ArtifactError::Source(format!("{} has no file name", source.display()))
                })?;
            return self.copy_file(source, &name).await;
        }
        let mut pending = vec![(source.to_owned(), String::new())];
        while let Some((dir, prefix)) = pending.pop() {
            let mut entries = tokio::fs::read_dir(&dir).await?;
            while let Some(entry) = entries.next_entry().await? {
                let name = entry.file_name().into_string().map_err(|n| {
                    ArtifactError::InvalidPath(format!(
                        "file name {n:?} in {} is not UTF-8",
                        dir.display()
                    ))
                })?;
                let relative = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let kind = entry.file_type().await?;
                if kind.is_dir() {
                    pending.push((entry.path(), relative));
                } else if kind.is_file() {
                    self.copy_file(&entry.path(), &relative).await?;
                } else {
                    return Err(ArtifactError::Source(format!(
                        "{} is neither a regular file nor a folder (symbolic links are not followed)",
                        entry.path().display()
                    )));
                }
            }
        }
        Ok(())
    }

    async fn copy_file(&mut self, source: &Path, relative: &str) -> Result<(), ArtifactError> {
        let target = self.claim(relative)?;
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut input = tokio::fs::File::open(source).await?;
        let mut output = tokio::fs::File::create(&target).await?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = input.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            output.write_all(&buf[..n]).await?;
        }
        output.sync_all().await?;
        self.finish_file(relative, target, size, hex::encode(hasher.finalize()))
            .await
    }

    async fn finish_file(
        &mut self,
        path: &str,
        target: PathBuf,
        size: u64,
        sha256: String,
    ) -> Result<(), ArtifactError> {
        let name = path.rsplit('/').next().unwrap_or(path).to_owned();
        let report = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&target)?;
            Ok::<_, std::io::Error>(formats::inspect(&name, &mut file, size))
        })
        .await
        .map_err(|e| ArtifactError::Io(std::io::Error::other(e)))??
        .map_err(|source| ArtifactError::Format {
            path: path.to_owned(),
            source,
        })?;
        self.files.push(ArtifactFile {
            path: path.to_owned(),
            size,
            sha256,
            format: report.format,
            details: report.details,
        });
        Ok(())
    }

    /// Makes the files durable under a fresh folder and returns what they are.
    pub async fn commit(mut self) -> Result<StoredArtifact, ArtifactError> {
        if self.files.is_empty() {
            return Err(ArtifactError::Empty);
        }
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
        let storage_dir = uuid::Uuid::new_v4().to_string();
        let final_dir = self.root.join(&storage_dir);
        tokio::fs::rename(&self.dir, &final_dir).await?;
        self.committed = true;
        // The rename is durable only once the parent folder's entry is on disk.
        tokio::fs::File::open(&self.root).await?.sync_all().await?;
        let files = std::mem::take(&mut self.files);
        let format = files
            .iter()
            .map(|f| f.format)
            .find(|f| *f != ArtifactFormat::Other)
            .unwrap_or(ArtifactFormat::Other);
        Ok(StoredArtifact {
            storage_dir,
            digest: digest_of(&files),
            size: files.iter().map(|f| f.size).sum(),
            format,
            files,
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
