//! Logging, set up once: JSON lines for collectors, or plain text for people.

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, with span fields (request ids).
    Json,
    /// Human-readable.
    Plain,
}

/// Installs the global subscriber; `RUST_LOG` filters (default `info`, with
/// llama.cpp's chatty model-loading log at `warn`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,llama-cpp-2=warn"));
    // Colours only on a terminal: a replica's log is a file, read in the console.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Plain => builder.init(),
    }
}
