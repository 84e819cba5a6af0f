//! Property of the gateway's HTTP/1 head reader (autoglm-gateway's `wire`),
//! shared by the `http_head` fuzz target and the bounded run of it in
//! crates/autoglm-gateway/tests/fuzzed.rs.
//!
//! On any bytes, a request head is refused, waits for more, or is read; one
//! that is read is passed upstream as a head that reads back the same, with
//! no hop-by-hop field, the gateway's own Host and a body length the gateway
//! chose. The same for a replica's answer on its way back to the client.

use autoglm_gateway::wire::{Framing, Known, RequestHead, ResponseHead, WireError};
use bytes::BytesMut;

/// Checks the property on `data`, panicking where it does not hold.
pub fn check(data: &[u8]) {
    request(data);
    response(data);
}

fn request(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let head = match RequestHead::parse(&mut buf) {
        Err(WireError::HeadTooLarge | WireError::Malformed(_)) => return,
        Ok(None) => {
            assert_eq!(&buf[..], data, "a partial head consumed bytes");
            return;
        }
        Ok(Some(head)) => head,
    };
    let consumed = data.len() - buf.len();
    assert!(consumed <= autoglm_gateway::wire::MAX_HEAD);
    assert_eq!(&buf[..], &data[consumed..], "the body's bytes were changed");
    let (method, target, path) = (head.method(), head.target(), head.path());
    assert!(
        target.starts_with(path) || (path == "/" && target.starts_with('?')),
        "{path:?} is not in {target:?}"
    );
    for kind in [
        Known::Authorization,
        Known::Connection,
        Known::ContentLength,
        Known::Expect,
        Known::Host,
        Known::Traceparent,
        Known::TransferEncoding,
        Known::Version,
        Known::Sticky,
        Known::OtherHopByHop,
    ] {
        if head.header(kind).is_some() {
            assert!(head.has_header(kind));
        }
    }
    let _ = head.field("x-request-id");

    let mut out = BytesMut::new();
    head.write_upstream(
        &mut out,
        "127.0.0.1:9",
        Known::Authorization,
        &[(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )],
        b"{}",
    );
    // A replica reads 100 fields (hyper's limit, and the gateway's own for
    // a response); the gateway takes 97 from a client, to make room for its own.
    let head_end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head");
    let fields = out[..head_end].windows(2).filter(|w| *w == b"\r\n").count();
    assert!(fields <= 100, "{fields} fields upstream");
    if fields > 97 {
        return;
    }
    let again = match RequestHead::parse(&mut out) {
        Ok(Some(again)) => again,
        other => panic!(
            "the upstream head of {data:?} does not read back: {other:?}, {:?}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(again.method(), method);
    assert_eq!(again.path(), path);
    assert_eq!(
        again.target().trim_start_matches('/'),
        target.trim_start_matches('/')
    );
    assert!(!again.target().starts_with('?'), "{:?}", again.target());
    assert_eq!(again.minor_version, 1);
    assert_eq!(again.framing, Framing::Length(2));
    assert_eq!(&out[..], b"{}");
    assert_eq!(again.header(Known::Host), Some("127.0.0.1:9"));
    for gone in [
        Known::Authorization,
        Known::Connection,
        Known::Expect,
        Known::TransferEncoding,
        Known::OtherHopByHop,
    ] {
        assert!(!again.has_header(gone), "{gone:?} was passed upstream");
    }
}

fn response(data: &[u8]) {
    let to_head = data.first().is_some_and(|b| b & 1 == 1);
    let mut buf = BytesMut::from(data);
    let head = match ResponseHead::parse(&mut buf, to_head) {
        Ok(Some(head)) => head,
        Ok(None) | Err(_) => return,
    };
    assert!(
        head.status == 101 || (200..=599).contains(&head.status),
        "{}",
        head.status
    );
    let mut out = BytesMut::new();
    head.write_downstream(
        &mut out,
        &[(autoglm_gateway::VERSION_HEADER, "1")],
        Framing::Length(0),
        true,
    );
    let again = match ResponseHead::parse(&mut out, false) {
        Ok(Some(again)) => again,
        other => panic!(
            "the client's head of {data:?} does not read back: {other:?}, {:?}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(again.status, head.status);
    assert_eq!(again.framing, Framing::Empty);
    assert!(!again.keep_alive);
    assert!(out.is_empty());
}
