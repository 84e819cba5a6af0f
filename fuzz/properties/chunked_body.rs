//! Property of the gateway's chunked-body decoder (autoglm-gateway's
//! `wire::Chunked`), shared by the `chunked_body` fuzz target and the bounded
//! run of it in crates/autoglm-gateway/tests/fuzzed.rs.
//!
//! A body decodes to the same bytes and the same end however it is split
//! across reads (a client decides where its packets end, not the decoder's
//! answer), and a decoded body framed again decodes to itself.

use autoglm_gateway::wire::{Chunked, Decoded, LAST_CHUNK, chunk};
use bytes::BytesMut;

/// How a decoding ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Complete; the bytes after the body.
    Done(Vec<u8>),
    /// Waiting for more.
    NeedMore,
    /// Refused.
    Refused,
}

/// Checks the property on `data`: its first byte says where to split the
/// rest in two reads.
pub fn check(data: &[u8]) {
    let Some((&split, wire)) = data.split_first() else {
        return;
    };
    let whole = decode(&[wire]);
    let at = usize::from(split) * wire.len() / 255;
    let split = decode(&[&wire[..at], &wire[at..]]);
    let bytewise: Vec<&[u8]> = wire.chunks(1).collect();
    let bytewise = decode(&bytewise);
    assert_eq!(whole, split, "split at {at} of {wire:?}");
    assert_eq!(whole, bytewise, "read byte by byte: {wire:?}");
    if let (body, End::Done(_)) = &whole {
        let mut framed = BytesMut::new();
        chunk(&mut framed, body);
        framed.extend_from_slice(LAST_CHUNK);
        assert_eq!(decode(&[&framed]), (body.clone(), End::Done(Vec::new())));
    }
}

/// Feeds `reads` one after the other, decoding all each allows.
fn decode(reads: &[&[u8]]) -> (Vec<u8>, End) {
    let mut decoder = Chunked::default();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    for (i, read) in reads.iter().enumerate() {
        buf.extend_from_slice(read);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Decoded::Data(data)) => {
                    assert!(!data.is_empty(), "an empty piece of body");
                    body.extend_from_slice(&data);
                }
                Ok(Decoded::NeedMore) => break,
                Ok(Decoded::Done) => {
                    let mut rest = buf.to_vec();
                    reads[i + 1..]
                        .iter()
                        .for_each(|r| rest.extend_from_slice(r));
                    return (body, End::Done(rest));
                }
                Err(_) => return (body, End::Refused),
            }
        }
    }
    (body, End::NeedMore)
}
