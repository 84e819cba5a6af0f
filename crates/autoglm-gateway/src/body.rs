//! The answer's body on its way to the client: frames pass through as they
//! come (a stream is never buffered whole), while a copy is scanned for the
//! token usage the runtime reports. Once the body has been written out, or
//! the client went away, the request's bookkeeping runs once with what was
//! seen.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;

use crate::proxy::Filtering;
use crate::upstream::UpstreamBody;
use autoglm_filters::Flow;

/// Largest JSON answer scanned for usage; larger ones count the request only.
const MAX_SCANNED: usize = 4 * 1024 * 1024;
/// Largest stream event held back whole; longer runs without an event's
/// end are passed on as they are (no real event is this long).
const MAX_EVENT: usize = 64 * 1024;

/// Most tokens one answer is believed to report of each kind: far past any
/// model's context, and small enough that sums of them stay exact in usage
/// records (signed 64-bit in the store) and in the rate limits. A replica
/// reporting more is taken at this.
pub const MAX_TOKENS: u64 = u32::MAX as u64;

/// Tokens an answer reported, each at most [`MAX_TOKENS`]. A count that is
/// not a whole number from 0 to 2^64 - 1 makes the usage unreadable: the
/// request counts with no tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Tokens {
    /// Prompt tokens.
    #[serde(default, deserialize_with = "bounded")]
    pub prompt_tokens: u64,
    /// Completion tokens (absent for embeddings).
    #[serde(default, deserialize_with = "bounded")]
    pub completion_tokens: u64,
}

fn bounded<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    u64::deserialize(d).map(|n| n.min(MAX_TOKENS))
}

#[derive(Deserialize)]
struct UsagePeek {
    usage: Option<Tokens>,
}

#[derive(Deserialize)]
struct ChoicesPeek {
    #[serde(default)]
    choices: Option<Vec<serde::de::IgnoredAny>>,
}

/// How to read the answer for usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// Not at all (Open Inference Protocol, errors).
    None,
    /// One JSON document with a `usage` member.
    Json,
    /// Server-sent events; the usage chunk is dropped when the client did
    /// not ask for it (the gateway asked on its behalf).
    Sse {
        /// Drop the usage-only chunk.
        strip_usage: bool,
    },
}

/// What the bookkeeping learns when the body is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The whole body reached the client.
    pub complete: bool,
    /// Usage, when the answer reported it.
    pub tokens: Option<Tokens>,
    /// When the answer's last write was done.
    pub at: Instant,
}

/// Bookkeeping run once at the end.
pub type Finish = Box<dyn FnOnce(Outcome) + Send + Sync>;

/// The upstream body, passed through and scanned.
pub struct Relay {
    inner: UpstreamBody,
    scan: Scan,
    copy: BytesMut,
    tokens: Option<Tokens>,
    finish: Option<Finish>,
    /// Set once the body is passed on whole (true) or failed (false).
    ended: Option<bool>,
    /// The filters the body passes through, when any ran on the request.
    filtering: Option<Box<Filtering>>,
    /// Whether the filters were given the body's end.
    filtered_end: bool,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("scan", &self.scan).finish()
    }
}

impl Relay {
    /// Relays `inner` through `filtering`'s filters, when any ran on the
    /// request, running `finish` once at the end.
    pub fn new(
        inner: UpstreamBody,
        scan: Scan,
        finish: Finish,
        filtering: Option<Box<Filtering>>,
    ) -> Relay {
        Relay {
            inner,
            scan,
            copy: BytesMut::new(),
            tokens: None,
            finish: Some(finish),
            ended: None,
            filtering,
            filtered_end: false,
        }
    }

    /// The length of the body as passed on, when it is known in advance
    /// (a stream whose usage chunk is dropped is shorter than announced;
    /// filters may change any body).
    pub fn length(&self) -> Option<u64> {
        if self.filtering.is_some() {
            return None;
        }
        match self.scan {
            Scan::Sse { strip_usage: true } => None,
            _ => self.inner.length(),
        }
    }

    /// Whether the body has been passed on whole (or failed).
    pub fn finished(&self) -> bool {
        self.ended.is_some()
    }

    /// The next piece to pass on from what already arrived, without
    /// waiting; `None` when nothing is at hand or the body is finished.
    pub fn ready(&mut self) -> Result<Option<Bytes>, std::io::Error> {
        loop {
            match self.inner.ready() {
                Err(e) => {
                    self.done(false);
                    return Err(e);
                }
                Ok(Some(data)) => {
                    if let Some(out) = self.pass(data) {
                        // The last piece carries the end: no extra call for it.
                        let end = self.inner.ended() && !self.holds_back();
                        if let Some(out) = self.filter(out, end)? {
                            return Ok(Some(out));
                        }
                    }
                }
                Ok(None) if self.inner.ended() => {
                    if self.holds_back() {
                        // A last event without its blank line: pass it on as is.
                        let rest = self.copy.split().freeze();
                        if let Some(out) = self.filter(rest, false)? {
                            return Ok(Some(out));
                        }
                        continue;
                    }
                    if self.filtering.is_some() && !self.filtered_end {
                        self.filtered_end = true;
                        if let Some(out) = self.filter(Bytes::new(), true)? {
                            return Ok(Some(out));
                        }
                    }
                    self.done(true);
                    return Ok(None);
                }
                Ok(None) => return Ok(None),
            }
        }
    }

    /// The next piece to pass on; `None` once the body is finished.
    /// Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            match self.ready() {
                Ok(Some(data)) => return Some(Ok(data)),
                Err(e) => return Some(Err(e)),
                Ok(None) if self.finished() => return None,
                Ok(None) => {}
            }
            if let Err(e) = self.inner.wait().await {
                self.done(false);
                return Some(Err(e));
            }
        }
    }

    /// What the filters pass on of `data` now (all of it without filters);
    /// `end` with the body's end. A filter failing closed, or answering for
    /// itself once the answer has begun, cuts the answer short.
    fn filter(&mut self, data: Bytes, end: bool) -> Result<Option<Bytes>, std::io::Error> {
        let Some(filtering) = &mut self.filtering else {
            return Ok(Some(data));
        };
        self.filtered_end |= end;
        filtering.exchange.response_body = data.to_vec();
        let flow = filtering.run.response_body(&mut filtering.exchange, end);
        let cut = |why: String| {
            tracing::warn!("{why}; the answer is cut short");
            std::io::Error::other(why)
        };
        let out = match flow {
            Ok(Flow::Continue) => std::mem::take(&mut filtering.exchange.response_body),
            Ok(Flow::Respond(_)) => {
                self.done(false);
                return Err(cut(
                    "a filter answered for itself after the answer began".into()
                ));
            }
            Err(refusal) => {
                self.done(false);
                return Err(cut(format!(
                    "filter {} failed: {}",
                    refusal.filter, refusal.failure
                )));
            }
        };
        Ok((!out.is_empty()).then(|| Bytes::from(out)))
    }

    /// Scans `data`; what to pass on of it now.
    fn pass(&mut self, data: Bytes) -> Option<Bytes> {
        match self.scan {
            Scan::None => Some(data),
            Scan::Json => {
                if self.copy.len() <= MAX_SCANNED {
                    self.copy.extend_from_slice(&data);
                }
                Some(data)
            }
            Scan::Sse { strip_usage } => {
                self.copy.extend_from_slice(&data);
                let mut out = self.events(strip_usage);
                if self.copy.len() > MAX_EVENT {
                    let mut all = BytesMut::from(out);
                    all.extend_from_slice(&self.copy.split());
                    out = all.freeze();
                }
                (!out.is_empty()).then_some(out)
            }
        }
    }

    /// Whether stream bytes wait in the buffer for the rest of their event
    /// (a JSON answer's copy is only read, never passed on from there).
    fn holds_back(&self) -> bool {
        matches!(self.scan, Scan::Sse { .. }) && !self.copy.is_empty()
    }

    fn done(&mut self, complete: bool) {
        if self.ended.is_none() {
            if complete && self.scan == Scan::Json && self.copy.len() <= MAX_SCANNED {
                self.tokens = serde_json::from_slice::<UsagePeek>(&self.copy)
                    .ok()
                    .and_then(|p| p.usage);
            }
            self.ended = Some(complete);
        }
    }

    /// Takes the complete events out of the buffer, keeping or dropping each.
    fn events(&mut self, strip_usage: bool) -> Bytes {
        let mut out = BytesMut::new();
        while let Some(end) = find_event_end(&self.copy) {
            let event = self.copy.split_to(end);
            let mut keep = true;
            if let Some(data) = event_data(&event)
                && mentions_usage(data)
                && let Ok(peek) = serde_json::from_slice::<UsagePeek>(data)
                && let Some(tokens) = peek.usage
            {
                self.tokens = Some(tokens);
                let usage_only = serde_json::from_slice::<ChoicesPeek>(data)
                    .ok()
                    .and_then(|c| c.choices)
                    .is_some_and(|c| c.is_empty());
                keep = !(strip_usage && usage_only);
            }
            if keep {
                out.extend_from_slice(&event);
            }
        }
        out.freeze()
    }
}

/// The end (past the blank line) of the first complete event.
fn find_event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The payload of an event's single `data:` line.
fn event_data(event: &[u8]) -> Option<&[u8]> {
    event
        .split(|b| *b == b'\n')
        .find_map(|line| line.strip_prefix(b"data:"))
        .map(|d| d.trim_ascii())
}

fn mentions_usage(data: &[u8]) -> bool {
    data.windows(7).any(|w| w == b"\"usage\"")
}

/// The bookkeeping runs here, once the relay is put away: after the answer's
/// last write, so that it is not on the way of the answer.
impl Drop for Relay {
    fn drop(&mut self) {
        if self.ended.is_none() {
            let complete = self.inner.ended() && !self.holds_back();
            self.done(complete);
        }
        if let Some(finish) = self.finish.take() {
            finish(Outcome {
                complete: self.ended == Some(true),
                tokens: self.tokens,
                at: Instant::now(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_found_whole_and_read_for_data() {
        let buf = b"data: {\"a\":1}\n\ndata: {\"b\"";
        assert_eq!(find_event_end(buf), Some(15));
        assert_eq!(event_data(&buf[..15]), Some(&b"{\"a\":1}"[..]));
        assert_eq!(find_event_end(b"data: x\r\n\r\n"), Some(11));
        assert_eq!(find_event_end(b"data: x\n"), None);
    }

    #[test]
    fn usage_is_read_from_json_answers() {
        let peek: UsagePeek = serde_json::from_slice(
            br#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#,
        )
        .expect("parse");
        assert_eq!(
            peek.usage,
            Some(Tokens {
                prompt_tokens: 7,
                completion_tokens: 3
            })
        );
        let absurd: UsagePeek = serde_json::from_slice(
            br#"{"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":4294967296}}"#,
        )
        .expect("parse");
        assert_eq!(
            absurd.usage,
            Some(Tokens {
                prompt_tokens: MAX_TOKENS,
                completion_tokens: MAX_TOKENS
            })
        );
        for unreadable in [
            &br#"{"usage":{"prompt_tokens":18446744073709551616}}"#[..],
            br#"{"usage":{"prompt_tokens":-1}}"#,
            br#"{"usage":{"prompt_tokens":1e30}}"#,
        ] {
            assert!(serde_json::from_slice::<UsagePeek>(unreadable).is_err());
        }
        let embeddings: UsagePeek =
            serde_json::from_slice(br#"{"data":[],"usage":{"prompt_tokens":4,"total_tokens":4}}"#)
                .expect("parse");
        assert_eq!(embeddings.usage.map(|u| u.prompt_tokens), Some(4));
    }
}
