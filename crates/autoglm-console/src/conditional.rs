//! Conditional reads: every JSON answer of a GET carries an `ETag` (a hash of
//! its body) and a request whose `If-None-Match` names it gets `304 Not
//! Modified` without the body. The routes marked `cached` (the registry's,
//! whose answers depend on the database alone) are answered from memory while
//! the store has committed no audited write since the answer was read: a
//! poller whose data did not change costs no SQL and no blocking-pool hop.
//!
//! The cache is coherent because the store counts each audited write after it
//! commits and before it is acknowledged (`Store::write_count`), and an
//! answer is kept under the count read *before* its query ran: a write
//! acknowledged before a request arrives has always moved the count past the
//! kept answer's. Any audited write empties the cache, which is coarse but
//! cannot miss a dependency between resources.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// Most answers kept, and most bytes in all: a full cache starts over.
const CAPACITY: usize = 4096;
const CAPACITY_BYTES: usize = 64 * 1024 * 1024;

/// A JSON answer with its entity tag.
#[derive(Debug)]
pub struct Answer {
    etag: HeaderValue,
    body: Bytes,
}

/// The kept answers of the cached routes, per tenant and request target.
#[derive(Debug, Default)]
pub struct ReadCache {
    inner: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    writes: u64,
    bytes: usize,
    answers: HashMap<(String, String), Arc<Answer>>,
}

impl ReadCache {
    fn get(&self, key: &(String, String), writes: u64) -> Option<Arc<Answer>> {
        let mut kept = self.inner.lock();
        if kept.writes != writes {
            kept.answers.clear();
            kept.bytes = 0;
            kept.writes = writes;
            return None;
        }
        kept.answers.get(key).cloned()
    }

    fn put(&self, key: (String, String), writes: u64, answer: Arc<Answer>) {
        let mut kept = self.inner.lock();
        if writes < kept.writes {
            return;
        }
        let size = answer.body.len();
        if writes > kept.writes
            || kept.answers.len() >= CAPACITY
            || kept.bytes + size > CAPACITY_BYTES
        {
            kept.answers.clear();
            kept.bytes = 0;
            kept.writes = writes;
        }
        kept.bytes += size;
        if let Some(old) = kept.answers.insert(key, answer) {
            kept.bytes -= old.body.len();
        }
    }
}

/// Runs a JSON GET: from the cache when `cache_key` is given and its answer
/// is current; otherwise through `next`, tagging (and keeping) a 200 answer.
pub async fn answer(
    state: &AppState,
    cache_key: Option<(String, String)>,
    req: Request,
    next: Next,
) -> Response {
    let wanted = req.headers().get(header::IF_NONE_MATCH).cloned();
    // Read before the handler's query: see the module's header.
    let writes = state.store.write_count();
    if let Some(key) = &cache_key
        && let Some(kept) = state.reads.get(key, writes)
    {
        return reply(&kept, wanted.as_ref());
    }
    let response = next.run(req).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => return ApiError::internal("reading an answer's body", &e).into_response(),
    };
    let answer = Arc::new(Answer {
        etag: entity_tag(&body),
        body,
    });
    if let Some(key) = cache_key {
        state.reads.put(key, writes, answer.clone());
    }
    let mut response = reply(&answer, wanted.as_ref());
    merge_headers(response.headers_mut(), parts.headers);
    response
}

/// The answer, or 304 when the client holds it already.
fn reply(answer: &Answer, wanted: Option<&HeaderValue>) -> Response {
    let mut response = if wanted.is_some_and(|w| matches(w, &answer.etag)) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(Body::from(answer.body.clone()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    };
    response
        .headers_mut()
        .insert(header::ETAG, answer.etag.clone());
    response
}

/// Keeps the handler's own headers (beside the ones [`reply`] sets).
fn merge_headers(into: &mut HeaderMap, from: HeaderMap) {
    for (name, value) in &from {
        if name != header::CONTENT_LENGTH && !into.contains_key(name) {
            into.insert(name.clone(), value.clone());
        }
    }
}

/// A weak entity tag (the body may go out gzipped, a different
/// representation of the same content): the first 128 bits of its SHA-256.
fn entity_tag(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let tag = format!("W/\"{}\"", hex::encode(&digest[..16]));
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// Whether `If-None-Match` names `etag`: `*`, or a list of tags compared
/// weakly (RFC 9110 §13.1.2: `W/` is ignored for this header).
fn matches(wanted: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(wanted) = wanted.to_str() else {
        return false;
    };
    let etag = opaque(etag.to_str().unwrap_or_default());
    wanted.trim() == "*" || wanted.split(',').any(|t| opaque(t) == etag)
}

/// A tag without its weakness mark.
fn opaque(tag: &str) -> &str {
    let tag = tag.trim();
    tag.strip_prefix("W/").unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &'static str) -> Arc<Answer> {
        Arc::new(Answer {
            etag: entity_tag(body.as_bytes()),
            body: Bytes::from_static(body.as_bytes()),
        })
    }

    fn key(target: &str) -> (String, String) {
        ("t".to_owned(), target.to_owned())
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        let etag = HeaderValue::from_static("W/\"abc\"");
        let yes = ["\"abc\"", "W/\"abc\"", "\"x\", \"abc\"", "*"];
        for w in yes {
            assert!(matches(&HeaderValue::from_static(w), &etag), "{w}");
        }
        for w in ["\"abd\"", "abc", "\"x\""] {
            assert!(!matches(&HeaderValue::from_static(w), &etag), "{w}");
        }
    }

    #[test]
    fn equal_bodies_have_equal_tags_and_different_ones_do_not() {
        assert_eq!(entity_tag(b"[1]"), entity_tag(b"[1]"));
        assert_ne!(entity_tag(b"[1]"), entity_tag(b"[2]"));
    }

    #[test]
    fn an_answer_is_kept_until_the_next_audited_write() {
        let cache = ReadCache::default();
        cache.put(key("/a"), 3, answer("a"));
        assert!(cache.get(&key("/a"), 3).is_some());
        assert!(
            cache.get(&("u".into(), "/a".into()), 3).is_none(),
            "another tenant"
        );
        assert!(
            cache.get(&key("/a"), 4).is_none(),
            "a write committed since"
        );
        assert!(cache.get(&key("/a"), 4).is_none());
    }

    #[test]
    fn an_answer_read_before_a_write_is_not_kept_after_it() {
        let cache = ReadCache::default();
        assert!(cache.get(&key("/a"), 4).is_none());
        cache.put(key("/a"), 3, answer("read before write 4"));
        assert!(cache.get(&key("/a"), 4).is_none());
    }
}
