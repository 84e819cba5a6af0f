//! The local side of `autoglm model push`: finding the files of an artifact,
//! streaming each as a multipart part without reading it into memory, and
//! showing upload progress on stderr.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use reqwest::multipart::Part;
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use crate::client::io_reason;
use crate::output::human_size;

/// Bytes read from disk at a time.
const CHUNK: usize = 256 * 1024;
/// How often the progress line is redrawn on a terminal.
const TICK: Duration = Duration::from_millis(200);

/// One file to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// Where it is on disk.
    pub path: PathBuf,
    /// Its path relative to the artifact root, `/`-separated: the part's filename.
    pub relative: String,
    /// Its size when it was found.
    pub size: u64,
}

/// The files of an artifact and the entries left out.
#[derive(Debug, Default)]
pub struct Artifact {
    /// Regular files, sorted by relative path.
    pub files: Vec<LocalFile>,
    /// Relative paths of entries that are not regular files (links, sockets...).
    pub skipped: Vec<String>,
}

impl Artifact {
    /// Total size of the files.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Finds the files under `root`: the file itself, or every regular file of
/// the directory tree (symbolic links are not followed). Every file must be
/// readable. Errors are messages about bad local input.
pub fn collect_files(root: &Path) -> Result<Artifact, String> {
    let metadata = std::fs::metadata(root)
        .map_err(|e| format!("cannot read {}: {}", root.display(), io_reason(&e)))?;
    let mut artifact = Artifact::default();
    if metadata.is_file() {
        let name = root
            .file_name()
            .ok_or_else(|| format!("{} has no file name", root.display()))?;
        let relative = name
            .to_str()
            .ok_or_else(|| format!("file name of {} is not valid UTF-8", root.display()))?;
        artifact.files.push(LocalFile {
            path: root.to_owned(),
            relative: relative.to_owned(),
            size: metadata.len(),
        });
    } else if metadata.is_dir() {
        walk(root, "", &mut artifact)?;
        if artifact.files.is_empty() {
            return Err(format!("no regular files under {}", root.display()));
        }
    } else {
        return Err(format!(
            "{} is neither a file nor a directory",
            root.display()
        ));
    }
    artifact.files.sort_by(|a, b| a.relative.cmp(&b.relative));
    artifact.skipped.sort();
    for file in &artifact.files {
        std::fs::File::open(&file.path)
            .map_err(|e| format!("cannot read {}: {}", file.path.display(), io_reason(&e)))?;
    }
    Ok(artifact)
}

fn walk(dir: &Path, prefix: &str, artifact: &mut Artifact) -> Result<(), String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read directory {}: {}", dir.display(), io_reason(&e)))?;
    for entry in entries {
        let entry = entry
            .map_err(|e| format!("cannot read directory {}: {}", dir.display(), io_reason(&e)))?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| format!("file name of {} is not valid UTF-8", path.display()))?;
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let file_type = entry
            .file_type()
            .map_err(|e| format!("cannot read {}: {}", path.display(), io_reason(&e)))?;
        if file_type.is_dir() {
            walk(&path, &relative, artifact)?;
        } else if file_type.is_file() {
            let size = entry
                .metadata()
                .map_err(|e| format!("cannot read {}: {}", path.display(), io_reason(&e)))?
                .len();
            artifact.files.push(LocalFile {
                path,
                relative,
                size,
            });
        } else {
            artifact.skipped.push(relative);
        }
    }
    Ok(())
}

/// A multipart part streaming `file` from disk, with its length and its
/// relative path as filename; every chunk read is added to `sent`.
pub fn file_part(file: &LocalFile, sent: Arc<AtomicU64>) -> Result<Part, String> {
    let path = file.path.clone();
    let relative = file.relative.clone();
    let size = file.size;
    let open = async move {
        let handle = tokio::fs::File::open(&path).await.map_err(|e| {
            io::Error::new(e.kind(), format!("opening {relative}: {}", io_reason(&e)))
        })?;
        Ok::<_, io::Error>(FileStream {
            inner: ReaderStream::with_capacity(handle.take(size), CHUNK),
            read: 0,
            expected: size,
            relative,
            sent,
            done: false,
        })
    };
    let body = reqwest::Body::wrap_stream(futures_util::stream::once(open).try_flatten());
    Part::stream_with_length(body, size)
        .file_name(file.relative.clone())
        .mime_str("application/octet-stream")
        .map_err(|e| format!("cannot build the upload: {e}"))
}

/// A file's bytes, counted, failing if the file shrank since it was measured.
struct FileStream {
    inner: ReaderStream<tokio::io::Take<tokio::fs::File>>,
    read: u64,
    expected: u64,
    relative: String,
    sent: Arc<AtomicU64>,
    done: bool,
}

impl Stream for FileStream {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
            Some(Ok(chunk)) => {
                let n = chunk.len() as u64;
                this.read += n;
                this.sent.fetch_add(n, Ordering::Relaxed);
                Poll::Ready(Some(Ok(chunk)))
            }
            Some(Err(e)) => {
                this.done = true;
                Poll::Ready(Some(Err(io::Error::new(
                    e.kind(),
                    format!("reading {}: {}", this.relative, io_reason(&e)),
                ))))
            }
            None => {
                this.done = true;
                if this.read < this.expected {
                    Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{} shrank from {} to {} bytes during the upload",
                            this.relative, this.expected, this.read
                        ),
                    ))))
                } else {
                    Poll::Ready(None)
                }
            }
        }
    }
}

/// Upload progress on stderr: a redrawn line on a terminal, a start and a
/// final line otherwise.
#[derive(Debug)]
pub struct Progress {
    sent: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    total: u64,
    started: Instant,
    tty: bool,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts reporting an upload of `total` bytes in `files` files. Must run
    /// inside a tokio runtime when stderr is a terminal.
    pub fn start(total: u64, files: usize) -> Progress {
        let tty = io::stderr().is_terminal();
        let sent = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let ticker = if tty {
            let (sent, done) = (sent.clone(), done.clone());
            Some(tokio::spawn(async move {
                let mut interval = tokio::time::interval(TICK);
                loop {
                    interval.tick().await;
                    let mut stderr = io::stderr().lock();
                    if done.load(Ordering::Acquire) {
                        break;
                    }
                    let line =
                        progress_line(sent.load(Ordering::Relaxed), total, started.elapsed());
                    let _ = write!(stderr, "\r\x1b[2K{line}");
                    let _ = stderr.flush();
                }
            }))
        } else {
            let plural = if files == 1 { "" } else { "s" };
            crate::output::print_stderr(&format!(
                "uploading {files} file{plural}, {}",
                human_size(total)
            ));
            None
        };
        Progress {
            sent,
            done,
            total,
            started,
            tty,
            ticker,
        }
    }

    /// The counter the file streams add to.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.sent.clone()
    }

    /// Stops the progress line and prints the final one.
    pub fn finish(self, ok: bool) {
        let mut stderr = io::stderr().lock();
        self.done.store(true, Ordering::Release);
        if let Some(ticker) = self.ticker {
            ticker.abort();
        }
        let sent = self.sent.load(Ordering::Relaxed);
        let line = final_line(sent, self.total, self.started.elapsed(), ok);
        if self.tty {
            let _ = writeln!(stderr, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(stderr, "{line}");
        }
    }
}

fn percent(sent: u64, total: u64) -> u64 {
    if total == 0 {
        100
    } else {
        (u128::from(sent.min(total)) * 100 / u128::from(total)) as u64
    }
}

/// The line redrawn while uploading.
pub fn progress_line(sent: u64, total: u64, elapsed: Duration) -> String {
    let pct = percent(sent, total);
    if sent >= total {
        return format!(
            "uploaded {} / {} ({pct}%), waiting for the console to check the files",
            human_size(sent),
            human_size(total)
        );
    }
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        // Whole bytes per second are precise enough for a rate.
        format!(", {}/s", human_size((sent as f64 / seconds) as u64))
    } else {
        String::new()
    };
    format!(
        "uploading {} / {} ({pct}%){rate}",
        human_size(sent),
        human_size(total)
    )
}

/// The last progress line.
pub fn final_line(sent: u64, total: u64, elapsed: Duration, ok: bool) -> String {
    let verb = if ok { "uploaded" } else { "upload stopped at" };
    format!(
        "{verb} {} / {} ({}%) in {:.1}s",
        human_size(sent),
        human_size(total),
        percent(sent, total),
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "autoglm-cli-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn a_directory_yields_sorted_relative_paths() {
        let dir = temp_dir("walk");
        std::fs::create_dir_all(dir.join("onnx/sub")).expect("mkdir");
        std::fs::create_dir_all(dir.join("empty")).expect("mkdir");
        std::fs::write(dir.join("model.safetensors"), b"12345").expect("write");
        std::fs::write(dir.join("onnx/model.onnx"), b"123").expect("write");
        std::fs::write(dir.join("onnx/sub/config.json"), b"{}").expect("write");
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.join("model.safetensors"), dir.join("link"))
            .expect("symlink");

        let artifact = collect_files(&dir).expect("collects");
        let relative: Vec<&str> = artifact.files.iter().map(|f| f.relative.as_str()).collect();
        assert_eq!(
            relative,
            [
                "model.safetensors",
                "onnx/model.onnx",
                "onnx/sub/config.json"
            ]
        );
        assert_eq!(artifact.total_size(), 10);
        #[cfg(unix)]
        assert_eq!(artifact.skipped, ["link"]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_single_file_is_named_by_its_file_name() {
        let dir = temp_dir("single");
        let file = dir.join("model.gguf");
        std::fs::write(&file, b"GGUF").expect("write");
        let artifact = collect_files(&file).expect("collects");
        assert_eq!(artifact.files.len(), 1);
        assert_eq!(artifact.files[0].relative, "model.gguf");
        assert_eq!(artifact.files[0].size, 4);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn missing_or_empty_inputs_are_refused() {
        let dir = temp_dir("empty");
        let missing = collect_files(&dir.join("nope")).expect_err("missing");
        assert!(missing.starts_with("cannot read "), "{missing}");
        let empty = collect_files(&dir).expect_err("empty");
        assert!(empty.starts_with("no regular files under "), "{empty}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn file_parts_stream_and_count() {
        let dir = temp_dir("stream");
        let path = dir.join("weights.bin");
        std::fs::write(&path, vec![7u8; 600 * 1024]).expect("write");
        let file = LocalFile {
            path: path.clone(),
            relative: "weights.bin".to_owned(),
            size: 600 * 1024,
        };
        let sent = Arc::new(AtomicU64::new(0));
        let open = {
            let sent = sent.clone();
            let handle = tokio::fs::File::open(&path).await.expect("open");
            FileStream {
                inner: ReaderStream::with_capacity(handle.take(file.size), CHUNK),
                read: 0,
                expected: file.size,
                relative: file.relative.clone(),
                sent,
                done: false,
            }
        };
        let chunks: Vec<Bytes> = open.try_collect().await.expect("reads");
        assert_eq!(chunks.iter().map(Bytes::len).sum::<usize>(), 600 * 1024);
        assert_eq!(sent.load(Ordering::Relaxed), 600 * 1024);
        assert!(file_part(&file, sent).is_ok());

        // A file that shrank after it was measured fails the stream.
        let handle = tokio::fs::File::open(&path).await.expect("open");
        let shrunk = FileStream {
            inner: ReaderStream::with_capacity(handle.take(u64::MAX), CHUNK),
            read: 0,
            expected: 1024 * 1024,
            relative: "weights.bin".to_owned(),
            sent: Arc::new(AtomicU64::new(0)),
            done: false,
        };
        let error = shrunk
            .try_collect::<Vec<Bytes>>()
            .await
            .expect_err("shrank");
        assert!(error.to_string().contains("shrank"), "{error}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn progress_lines_show_bytes_and_percent() {
        let line = progress_line(512 * 1024, 1024 * 1024, Duration::from_secs(1));
        assert_eq!(line, "uploading 512.0 KiB / 1.0 MiB (50%), 512.0 KiB/s");
        let waiting = progress_line(10, 10, Duration::from_secs(1));
        assert!(waiting.contains("(100%)"), "{waiting}");
        assert_eq!(
            final_line(2048, 2048, Duration::from_millis(1500), true),
            "uploaded 2.0 KiB / 2.0 KiB (100%) in 1.5s"
        );
        assert_eq!(
            final_line(0, 0, Duration::ZERO, false),
            "upload stopped at 0 B / 0 B (100%) in 0.0s"
        );
    }
}
