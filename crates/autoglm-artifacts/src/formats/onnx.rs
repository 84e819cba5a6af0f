//! ONNX check: walks the top-level protobuf fields of a `ModelProto` by hand.
//!
//! ONNX has no magic bytes, so the check is that the whole file parses as protobuf wire format
//! and carries the fields every model has (`ir_version`, `graph`). The graph itself, which holds
//! the weights unless they are external, is skipped by seeking, never read.

use std::io::{Read, Seek};

use serde_json::{Map, Value, json};

use super::FormatError;
use super::reader::Source;

/// Producer names, versions and opset domains are short; a megabyte is a corrupt length.
const MAX_STRING: u64 = 1 << 20;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// A field key: its number, wire type and where it starts (for messages).
struct Key {
    number: u64,
    wire: u8,
    at: u64,
}

pub(super) fn check<R: Read + Seek>(
    src: &mut Source<R>,
) -> Result<Map<String, Value>, FormatError> {
    let mut ir_version = None;
    let mut producer_name = String::new();
    let mut producer_version = String::new();
    let mut graph = false;
    let mut opsets = Vec::new();
    while src.remaining() > 0 {
        let key = read_key(src)?;
        match (key.number, key.wire) {
            (1, VARINT) => ir_version = Some(read_varint(src, "ir_version")? as i64),
            (2, LEN) => producer_name = read_string(src, "producer_name")?,
            (3, LEN) => producer_version = read_string(src, "producer_version")?,
            (7, LEN) => {
                let len = read_varint(src, "graph length")?;
                src.skip(len, "graph")?;
                graph = true;
            }
            (8, LEN) => opsets.push(read_opset(src)?),
            (1 | 2 | 3 | 7 | 8, _) => return Err(wrong_wire(src, &key, "ModelProto")),
            _ => skip_value(src, &key)?,
        }
    }
    let ir_version = ir_version.ok_or_else(|| src.invalid("missing ir_version (field 1)"))?;
    if !graph {
        return Err(src.invalid("missing graph (field 7)"));
    }

    let mut details = Map::new();
    details.insert("ir_version".into(), ir_version.into());
    details.insert("producer_name".into(), producer_name.into());
    details.insert("producer_version".into(), producer_version.into());
    details.insert("opsets".into(), opsets.into());
    Ok(details)
}

/// One `OperatorSetIdProto`: domain (field 1, "" meaning the default ONNX domain) and version.
fn read_opset<R: Read + Seek>(src: &mut Source<R>) -> Result<Value, FormatError> {
    let len = read_varint(src, "opset_import length")?;
    src.within(len, "opset_import", |src| {
        let mut domain = String::new();
        let mut version = 0i64;
        while src.remaining() > 0 {
            let key = read_key(src)?;
            match (key.number, key.wire) {
                (1, LEN) => domain = read_string(src, "opset domain")?,
                (2, VARINT) => version = read_varint(src, "opset version")? as i64,
                (1 | 2, _) => return Err(wrong_wire(src, &key, "OperatorSetIdProto")),
                _ => skip_value(src, &key)?,
            }
        }
        Ok(json!({ "domain": domain, "version": version }))
    })
}

fn wrong_wire<R: Read + Seek>(src: &Source<R>, key: &Key, message: &str) -> FormatError {
    src.invalid(format!(
        "{message} field {} at offset {} has the wrong wire type {}",
        key.number, key.at, key.wire
    ))
}

fn read_key<R: Read + Seek>(src: &mut Source<R>) -> Result<Key, FormatError> {
    let at = src.pos();
    let key = read_varint(src, "field key")?;
    let (number, wire) = (key >> 3, (key & 7) as u8);
    if number == 0 {
        return Err(src.invalid(format!("field number 0 at offset {at}")));
    }
    match wire {
        VARINT | FIXED64 | LEN | FIXED32 => Ok(Key { number, wire, at }),
        3 | 4 => Err(src.invalid(format!(
            "field {number} at offset {at} uses wire type {wire} (deprecated groups), not used by ONNX"
        ))),
        _ => Err(src.invalid(format!(
            "field {number} at offset {at} has invalid wire type {wire}"
        ))),
    }
}

fn skip_value<R: Read + Seek>(src: &mut Source<R>, key: &Key) -> Result<(), FormatError> {
    let what = format!("field {}", key.number);
    match key.wire {
        VARINT => read_varint(src, &what).map(drop),
        FIXED64 => src.skip(8, &what),
        FIXED32 => src.skip(4, &what),
        _ => {
            let len = read_varint(src, &what)?;
            src.skip(len, &what)
        }
    }
}

/// A base-128 varint of at most 10 bytes, the most a 64-bit value takes.
fn read_varint<R: Read + Seek>(src: &mut Source<R>, what: &str) -> Result<u64, FormatError> {
    let at = src.pos();
    let mut value = 0u64;
    for i in 0..10 {
        if src.remaining() == 0 {
            return Err(src.invalid(format!("truncated varint ({what}) at offset {at}")));
        }
        let byte = src.u8(what)?;
        // The tenth byte holds only the top bit of a u64.
        if i == 9 && byte > 1 {
            break;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(src.invalid(format!("varint ({what}) at offset {at} overflows 64 bits")))
}

fn read_string<R: Read + Seek>(src: &mut Source<R>, what: &str) -> Result<String, FormatError> {
    let at = src.pos();
    let len = read_varint(src, what)?;
    if len > MAX_STRING {
        return Err(src.invalid(format!(
            "{what} at offset {at} declares {len} bytes, over the {MAX_STRING}-byte limit"
        )));
    }
    let bytes = src.bytes(len, what)?;
    String::from_utf8(bytes)
        .map_err(|_| src.invalid(format!("{what} at offset {at} is not valid UTF-8")))
}

#[cfg(test)]
mod tests {

    use std::io::Cursor;

    use autoglm_core::artifact::ArtifactFormat;

    use super::*;

    fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out
    }

    fn key(number: u64, wire: u8) -> Vec<u8> {
        varint(number << 3 | u64::from(wire))
    }

    fn int_field(number: u64, v: u64) -> Vec<u8> {
        [key(number, VARINT), varint(v)].concat()
    }

    fn len_field(number: u64, bytes: &[u8]) -> Vec<u8> {
        [key(number, LEN), varint(bytes.len() as u64), bytes.to_vec()].concat()
    }

    fn opset(domain: &str, version: u64) -> Vec<u8> {
        let inner = [len_field(1, domain.as_bytes()), int_field(2, version)].concat();
        len_field(8, &inner)
    }

    fn run(bytes: &[u8]) -> Result<Map<String, Value>, FormatError> {
        let len = bytes.len() as u64;
        check(&mut Source::new(
            Cursor::new(bytes),
            len,
            ArtifactFormat::Onnx,
        ))
    }

    fn error(bytes: &[u8]) -> String {
        run(bytes).unwrap_err().to_string()
    }

    fn model_without(skip: u64) -> Vec<u8> {
        let fields = [
            (1, int_field(1, 8)),
            (2, len_field(2, b"pytorch")),
            (7, len_field(7, &[0xde, 0xad, 0xbe, 0xef])),
        ];
        fields
            .into_iter()
            .filter(|(n, _)| *n != skip)
            .flat_map(|(_, f)| f)
            .collect()
    }

    #[test]
    fn reads_version_producer_and_opsets() {
        let bytes = [
            int_field(1, 9),
            len_field(2, b"pytorch"),
            len_field(3, b"2.1.0"),
            len_field(6, b"a doc string, skipped"),
            [key(15, FIXED64), vec![0; 8]].concat(),
            [key(16, FIXED32), vec![0; 4]].concat(),
            int_field(5, 300),
            len_field(7, &[0x0a; 1000]),
            opset("", 17),
            opset("com.microsoft", 1),
        ]
        .concat();
        let details = run(&bytes).unwrap();
        assert_eq!(
            Value::Object(details),
            json!({
                "ir_version": 9,
                "producer_name": "pytorch",
                "producer_version": "2.1.0",
                "opsets": [
                    {"domain": "", "version": 17},
                    {"domain": "com.microsoft", "version": 1},
                ],
            })
        );
    }

    #[test]
    fn absent_strings_are_empty_as_in_proto3() {
        let details = run(&model_without(2)).unwrap();
        assert_eq!(details["producer_name"], "");
        assert_eq!(details["opsets"], json!([]));
    }

    #[test]
    fn missing_required_fields() {
        assert_eq!(error(&model_without(7)), "ONNX: missing graph (field 7)");
        assert_eq!(
            error(&model_without(1)),
            "ONNX: missing ir_version (field 1)"
        );
        assert_eq!(error(b""), "ONNX: missing ir_version (field 1)");
    }

    #[test]
    fn bad_wire_types() {
        let group = [model_without(0), key(9, 3)].concat();
        assert!(error(&group).contains("field 9 at offset 17 uses wire type 3"));
        let bad = [model_without(0), key(9, 7)].concat();
        assert!(error(&bad).contains("field 9 at offset 17 has invalid wire type 7"));
        assert!(error(&key(0, VARINT)).contains("field number 0"));
        let ir_as_string = [len_field(1, b"8"), model_without(1)].concat();
        assert_eq!(
            error(&ir_as_string),
            "ONNX: ModelProto field 1 at offset 0 has the wrong wire type 2"
        );
    }

    #[test]
    fn truncated_varints_and_fields() {
        assert_eq!(
            error(&[0x08, 0x80]),
            "ONNX: truncated varint (ir_version) at offset 1"
        );
        assert!(error(&[0x80]).contains("truncated varint (field key) at offset 0"));
        let graph = [key(7, LEN), varint(100), vec![0; 3]].concat();
        let err = error(&[model_without(7), graph].concat());
        assert!(err.contains("truncated graph"), "{err}");
        let overlong = [vec![0x08], vec![0xff; 10], vec![0x01]].concat();
        assert!(error(&overlong).contains("overflows 64 bits"));
    }

    #[test]
    fn huge_declared_lengths_error_without_allocating() {
        let name = [key(2, LEN), varint(u64::MAX)].concat();
        let err = error(&[model_without(2), name].concat());
        assert!(err.contains("over the 1048576-byte limit"), "{err}");
        let graph = [key(7, LEN), varint(u64::MAX)].concat();
        assert!(error(&[model_without(7), graph].concat()).contains("truncated graph"));
    }

    #[test]
    fn opset_fields_cannot_overrun_their_message() {
        // The domain claims 10 bytes but the opset message holds only 4 after its key.
        let inner = [key(1, LEN), varint(10), b"abcd".to_vec()].concat();
        let bytes = [model_without(0), len_field(8, &inner), vec![0; 16]].concat();
        let err = error(&bytes);
        assert!(err.contains("truncated opset domain"), "{err}");
        let inner = [key(2, LEN), varint(1), b"x".to_vec()].concat();
        let err = error(&[model_without(0), len_field(8, &inner)].concat());
        assert!(err.contains("OperatorSetIdProto field 2"), "{err}");
    }
}
