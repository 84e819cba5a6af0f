//! The `http_head` and `chunked_body` fuzz targets (docs/fuzzing.md) as a
//! bounded run on stable: their seeds and a few thousand inputs derived
//! from them through the same properties, and the inputs the fuzzers found
//! as regression tests.

#[path = "../../../fuzz/properties/bounded.rs"]
mod bounded;
#[path = "../../../fuzz/properties/chunked_body.rs"]
mod chunked_body;
#[path = "../../../fuzz/properties/http_head.rs"]
mod http_head;

#[test]
fn request_and_response_heads_read_back_as_they_are_passed_on() {
    bounded::run("http_head", 5000, http_head::check);
}

#[test]
fn chunked_bodies_decode_the_same_however_they_arrive() {
    bounded::run("chunked_body", 5000, chunked_body::check);
}

/// Found by `http_head`: httparse reads any three digits as a status, and
/// a replica's `000` was passed on to the client as the answer's status.
#[test]
fn a_replica_status_outside_100_to_599_is_malformed() {
    use autoglm_gateway::wire::{ResponseHead, WireError};
    for line in ["HTTP/1.0 000 OK", "HTTP/1.1 099 Low", "HTTP/1.1 600 High"] {
        let mut buf =
            bytes::BytesMut::from(format!("{line}\r\ncontent-length: 0\r\n\r\n").as_str());
        assert!(
            matches!(
                ResponseHead::parse(&mut buf, false),
                Err(WireError::Malformed(m)) if m.contains("not a status code")
            ),
            "{line}"
        );
    }
    http_head::check(include_bytes!(
        "../../../fuzz/seeds/http_head/crash-status-000"
    ));
}

/// Found by `chunked_body`: a trailer line over the 1 KiB limit was refused
/// when it arrived in pieces but taken when it arrived in one read.
#[test]
fn a_long_trailer_line_is_refused_however_it_arrives() {
    use autoglm_gateway::wire::{Chunked, Decoded, WireError};
    let wire = format!("0\r\nx-long: {}\r\n\r\n", "a".repeat(2000));
    let mut whole = bytes::BytesMut::from(wire.as_str());
    let mut decoder = Chunked::default();
    assert!(
        matches!(
            decoder.decode(&mut whole),
            Err(WireError::Malformed(m)) if m.contains("longer than 1024 bytes")
        ),
        "{decoder:?}"
    );
    let mut first = bytes::BytesMut::from(&wire.as_bytes()[..10]);
    let mut decoder = Chunked::default();
    assert_eq!(decoder.decode(&mut first), Ok(Decoded::NeedMore));
    chunked_body::check(include_bytes!(
        "../../../fuzz/seeds/chunked_body/crash-long-trailer-line"
    ));
}

/// Found by `http_head`: an absolute-form target with a query but no path
/// (`http://host?x`) went upstream as the bare query `?x`, which is no
/// request target, and read back as another one.
#[test]
fn an_absolute_target_with_only_a_query_goes_upstream_as_slash_query() {
    use autoglm_gateway::wire::{Known, RequestHead};
    let mut buf = bytes::BytesMut::from("GET http://gw:8000?x=1 HTTP/1.1\r\n\r\n");
    let head = RequestHead::parse(&mut buf).unwrap().unwrap();
    assert_eq!(head.path(), "/");
    let mut out = bytes::BytesMut::new();
    head.write_upstream(&mut out, "127.0.0.1:9", Known::Authorization, &[], b"");
    assert!(out.starts_with(b"GET /?x=1 HTTP/1.1\r\n"), "{out:?}");
    http_head::check(include_bytes!(
        "../../../fuzz/seeds/http_head/crash-query-without-path"
    ));
}

/// Found by `http_head`: a request with 98 to 100 fields was taken, and
/// with the Host, Traceparent and Content-Length the gateway adds it went
/// upstream with more than the 100 fields a replica reads (431 there).
#[test]
fn a_request_keeps_room_for_the_fields_the_gateway_adds() {
    use autoglm_gateway::wire::{RequestHead, WireError};
    let head = |fields: usize| {
        let mut text = String::from("GET / HTTP/1.1\r\n");
        for i in 0..fields {
            text.push_str(&format!("x-{i}: 1\r\n"));
        }
        text.push_str("\r\n");
        RequestHead::parse(&mut bytes::BytesMut::from(text.as_str()))
    };
    assert!(matches!(head(97), Ok(Some(_))));
    assert_eq!(head(98).unwrap_err(), WireError::HeadTooLarge);
    http_head::check(include_bytes!(
        "../../../fuzz/seeds/http_head/crash-too-many-fields-upstream"
    ));
}
