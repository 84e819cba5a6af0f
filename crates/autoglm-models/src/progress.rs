//! Download progress on stderr: one line redrawn on a terminal, a line per
//! tenth in a log, so that neither floods nor stays silent for minutes.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const REDRAW: Duration = Duration::from_millis(250);
const MB: f64 = 1_000_000.0;

#[derive(Debug)]
pub(crate) struct Progress {
    model: &'static str,
    total: Option<u64>,
    done: u64,
    terminal: bool,
    drawn: Instant,
    tenths_logged: u64,
}

impl Progress {
    pub(crate) fn new(model: &'static str, total: Option<u64>) -> Self {
        Self {
            model,
            total,
            done: 0,
            terminal: std::io::stderr().is_terminal(),
            drawn: Instant::now(),
            tenths_logged: 0,
        }
    }

    pub(crate) fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if self.terminal {
            if self.drawn.elapsed() >= REDRAW {
                self.drawn = Instant::now();
                eprint!("\r{}", self.line());
                let _ = std::io::stderr().flush();
            }
        } else if let Some(total) = self.total.filter(|t| *t > 0) {
            let tenths = self.done * 10 / total;
            if tenths > self.tenths_logged && tenths < 10 {
                self.tenths_logged = tenths;
                eprintln!("{}", self.line());
            }
        }
    }

    pub(crate) fn finish(&self) {
        // On a terminal the last line overwrites the redrawn one.
        let start = if self.terminal { "\r" } else { "" };
        eprintln!("{start}{}", self.line());
    }

    fn line(&self) -> String {
        let done = self.done as f64 / MB;
        match self.total {
            Some(total) if total > 0 => format!(
                "model {}: {done:.1} / {:.1} MB ({}%)",
                self.model,
                total as f64 / MB,
                self.done * 100 / total
            ),
            _ => format!("model {}: {done:.1} MB", self.model),
        }
    }
}
