//! `autoglm model pull NAME --version N --to DIR`: downloads a version's
//! files from the registry, each checked against the size and sha256 the
//! registry recorded. The init container of every Kubernetes replica runs it.
//!
//! Files already in DIR with the recorded digest are kept, so a replica with
//! a persistent volume downloads only once; each file is written under a
//! temporary name and renamed, so a crash never leaves a half file that
//! looks whole.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use autoglm_core::artifact::ArtifactFile;
use autoglm_core::names::validate_artifact_path;
use autoglm_core::registry::ModelVersion;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::ClientArgs;
use crate::client::{Client, ClientError, io_reason};
use crate::output::{print_stdout, sanitize};
use crate::upload::Progress;

/// Downloads version `version` of model `name` into `to`.
pub async fn pull(
    args: &ClientArgs,
    name: &str,
    version: i64,
    to: &Path,
) -> Result<(), ClientError> {
    let client = Client::new(args)?;
    let number = version.to_string();
    let url = client.url(&["api", "v1", "models", name, "versions", &number])?;
    let found: ModelVersion = client.get_json(url).await?;
    tokio::fs::create_dir_all(to).await.map_err(|e| {
        ClientError::Local(format!("cannot create {}: {}", to.display(), io_reason(&e)))
    })?;
    let mut missing = Vec::new();
    for file in &found.files {
        // The registry checks paths on upload; checked again because they
        // become paths on this machine.
        validate_artifact_path(&file.path).map_err(|e| ClientError::Decode(e.to_string()))?;
        let target = to.join(&file.path);
        if !matches_digest(&target, file).await {
            missing.push((file, target));
        }
    }
    let total: u64 = missing.iter().map(|(f, _)| f.size).sum();
    let progress = Progress::start(total, missing.len());
    let received = progress.counter();
    let mut result = Ok(());
    for (file, target) in &missing {
        result = download(&client, name, &number, file, target, |n| {
            received.fetch_add(n, Ordering::Relaxed);
        })
        .await;
        if result.is_err() {
            break;
        }
    }
    progress.finish(result.is_ok());
    result?;
    print_stdout(&format!(
        "model/{} version {version}: {} files in {} ({} downloaded)\n",
        sanitize(name),
        found.files.len(),
        to.display(),
        missing.len()
    ));
    Ok(())
}

async fn matches_digest(path: &Path, file: &ArtifactFile) -> bool {
    let Ok(meta) = tokio::fs::metadata(path).await else {
        return false;
    };
    if meta.len() != file.size {
        return false;
    }
    let path = path.to_owned();
    let sha = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut hasher = Sha256::new();
        std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
        Ok(hex::encode(hasher.finalize()))
    })
    .await;
    matches!(sha, Ok(Ok(sha)) if sha == file.sha256)
}

async fn download(
    client: &Client,
    name: &str,
    version: &str,
    file: &ArtifactFile,
    target: &Path,
    mut on_bytes: impl FnMut(u64),
) -> Result<(), ClientError> {
    let mut segments = vec!["api", "v1", "models", name, "versions", version, "files"];
    segments.extend(file.path.split('/'));
    let url = client.url(&segments)?;
    let response = client
        .send(client.request(reqwest::Method::GET, url.clone()))
        .await?;
    let local = |e: std::io::Error| {
        ClientError::Local(format!(
            "cannot write {}: {}",
            target.display(),
            io_reason(&e)
        ))
    };
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(local)?;
    }
    let partial = partial_path(target);
    let mut out = tokio::fs::File::create(&partial).await.map_err(local)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ClientError::Transport {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        out.write_all(&chunk).await.map_err(local)?;
        on_bytes(chunk.len() as u64);
    }
    out.sync_all().await.map_err(local)?;
    drop(out);
    let sha = hex::encode(hasher.finalize());
    if size != file.size || sha != file.sha256 {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(ClientError::Decode(format!(
            "{} arrived with {size} bytes and sha256 {sha}; the registry recorded {} bytes and sha256 {}",
            file.path, file.size, file.sha256
        )));
    }
    tokio::fs::rename(&partial, target).await.map_err(local)
}

fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}
