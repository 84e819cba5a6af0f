//! safetensors check: an 8-byte little-endian header length, a JSON header describing each
//! tensor, then the raw tensor data, whose size every tensor entry must agree with.

use std::collections::BTreeSet;
use std::io::{Read, Seek};

use serde_json::{Map, Value};

use super::FormatError;
use super::reader::Source;

/// Real headers are a few MB even for models with tens of thousands of tensors.
const MAX_HEADER: u64 = 100 * 1024 * 1024;

/// Known dtypes and their element sizes in bytes.
const DTYPES: [(&str, u64); 15] = [
    ("BOOL", 1),
    ("U8", 1),
    ("I8", 1),
    ("F8_E5M2", 1),
    ("F8_E4M3", 1),
    ("I16", 2),
    ("U16", 2),
    ("F16", 2),
    ("BF16", 2),
    ("I32", 4),
    ("U32", 4),
    ("F32", 4),
    ("F64", 8),
    ("I64", 8),
    ("U64", 8),
];

const METADATA_KEY: &str = "__metadata__";

pub(super) fn check<R: Read + Seek>(
    src: &mut Source<R>,
) -> Result<Map<String, Value>, FormatError> {
    let header_len = src.u64("header length")?;
    if header_len > src.remaining() {
        return Err(src.invalid(format!(
            "header length {header_len} exceeds file size {}",
            src.len()
        )));
    }
    if header_len > MAX_HEADER {
        return Err(src.invalid(format!(
            "header length {header_len} exceeds the {MAX_HEADER}-byte limit"
        )));
    }
    let header = src.bytes(header_len, "header")?;
    let data_len = src.remaining();
    let entries: Map<String, Value> = serde_json::from_slice(&header)
        .map_err(|e| src.invalid(format!("header is not a JSON object: {e}")))?;

    let mut parameters: u64 = 0;
    let mut dtypes = BTreeSet::new();
    let mut metadata = None;
    let mut tensors: u64 = 0;
    for (name, entry) in &entries {
        if name == METADATA_KEY {
            metadata = Some(check_metadata(entry).map_err(|m| src.invalid(m))?);
            continue;
        }
        let (dtype, elements) = check_tensor(entry, data_len)
            .map_err(|m| src.invalid(format!("tensor `{}`: {m}", shorten(name))))?;
        parameters = parameters
            .checked_add(elements)
            .ok_or_else(|| src.invalid("parameter count overflows 64 bits"))?;
        dtypes.insert(dtype);
        tensors += 1;
    }

    let mut details = Map::new();
    details.insert("tensors".into(), tensors.into());
    details.insert("parameters".into(), parameters.into());
    details.insert(
        "dtypes".into(),
        dtypes.into_iter().collect::<Vec<_>>().into(),
    );
    if let Some(metadata) = metadata {
        details.insert("metadata".into(), Value::Object(metadata));
    }
    Ok(details)
}

fn check_metadata(entry: &Value) -> Result<Map<String, Value>, String> {
    match entry {
        Value::Object(map) if map.values().all(Value::is_string) => Ok(map.clone()),
        _ => Err(format!("{METADATA_KEY} must be a map of strings")),
    }
}

/// Checks one tensor entry against `data_len`, the bytes after the header; returns its dtype and
/// element count.
fn check_tensor(entry: &Value, data_len: u64) -> Result<(&'static str, u64), String> {
    let entry = entry.as_object().ok_or("entry is not a JSON object")?;
    let dtype = entry
        .get("dtype")
        .ok_or("missing dtype")?
        .as_str()
        .ok_or("dtype is not a string")?;
    let (dtype, size) = DTYPES
        .iter()
        .find(|(known, _)| *known == dtype)
        .copied()
        .ok_or_else(|| format!("unknown dtype `{}`", shorten(dtype)))?;
    let shape =
        u64_array(entry.get("shape")).ok_or("shape must be an array of non-negative integers")?;
    let offsets = u64_array(entry.get("data_offsets"));
    let Some(&[begin, end]) = offsets.as_deref() else {
        return Err("data_offsets must be [begin, end]".into());
    };
    if begin > end {
        return Err(format!("data_offsets [{begin}, {end}] begin after end"));
    }
    if end > data_len {
        return Err(format!(
            "data_offsets end {end} exceeds the {data_len} bytes of tensor data"
        ));
    }
    let elements = shape
        .iter()
        .try_fold(1u64, |acc, &dim| acc.checked_mul(dim))
        .ok_or_else(|| format!("shape {shape:?} overflows 64 bits"))?;
    let expected = elements.checked_mul(size);
    if expected != Some(end - begin) {
        return Err(format!(
            "holds {} bytes but shape {shape:?} of {dtype} needs {}",
            end - begin,
            expected.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string())
        ));
    }
    Ok((dtype, elements))
}

fn u64_array(value: Option<&Value>) -> Option<Vec<u64>> {
    value?.as_array()?.iter().map(Value::as_u64).collect()
}

/// Keeps error messages readable when a hostile header uses megabyte-long names.
fn shorten(text: &str) -> String {
    const MAX: usize = 120;
    if text.chars().count() <= MAX {
        return text.to_string();
    }
    let mut short: String = text.chars().take(MAX).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {

    use std::io::Cursor;

    use autoglm_core::artifact::ArtifactFormat;
    use serde_json::json;

    use super::*;

    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.resize(bytes.len() + data_len, 0);
        bytes
    }

    fn run_with_len(bytes: &[u8], len: u64) -> Result<Map<String, Value>, FormatError> {
        check(&mut Source::new(
            Cursor::new(bytes),
            len,
            ArtifactFormat::Safetensors,
        ))
    }

    fn run(bytes: &[u8]) -> Result<Map<String, Value>, FormatError> {
        run_with_len(bytes, bytes.len() as u64)
    }

    fn error(bytes: &[u8]) -> String {
        run(bytes).unwrap_err().to_string()
    }

    fn one_tensor(dtype: &str, shape: &str, offsets: &str, data_len: usize) -> Vec<u8> {
        let header =
            format!(r#"{{"t":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offsets}}}}}"#);
        file(&header, data_len)
    }

    #[test]
    fn reads_tensors_parameters_dtypes_and_metadata() {
        // Trailing spaces pad the header to alignment in real files.
        let header = r#"{
            "__metadata__": {"format": "pt"},
            "b.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
            "a.bias": {"dtype": "BF16", "shape": [4], "data_offsets": [24, 32]},
            "step": {"dtype": "U8", "shape": [], "data_offsets": [32, 33]},
            "empty": {"dtype": "F32", "shape": [0, 5], "data_offsets": [33, 33]}
        }    "#;
        let details = run(&file(header, 33)).unwrap();
        assert_eq!(
            Value::Object(details),
            json!({
                "tensors": 4,
                "parameters": 11,
                "dtypes": ["BF16", "F32", "U8"],
                "metadata": {"format": "pt"},
            })
        );
    }

    #[test]
    fn an_empty_header_is_valid() {
        let details = run(&file("{}", 0)).unwrap();
        assert_eq!(details["tensors"], 0);
        assert!(!details.contains_key("metadata"));
    }

    #[test]
    fn truncated_header_length() {
        let err = error(&[1, 2, 3, 4, 5]);
        assert!(err.contains("truncated header length at offset 0"), "{err}");
    }

    #[test]
    fn header_length_beyond_the_file() {
        let mut bytes = file("{}", 0);
        bytes[0] = 3;
        assert_eq!(
            error(&bytes),
            "safetensors: header length 3 exceeds file size 10"
        );
    }

    #[test]
    fn huge_header_length_is_refused_without_allocating() {
        // The declared file size admits the header; the cap still refuses it.
        let bytes = (200u64 << 20).to_le_bytes();
        let err = run_with_len(&bytes, 300 << 20).unwrap_err().to_string();
        assert!(err.contains("exceeds the 104857600-byte limit"), "{err}");
    }

    #[test]
    fn bad_json() {
        assert!(error(&file("{\"t\": ", 0)).contains("header is not a JSON object"));
        assert!(error(&file("[1, 2]", 0)).contains("header is not a JSON object"));
        assert!(error(&file(r#"{"t": 5}"#, 0)).contains("tensor `t`: entry is not a JSON object"));
    }

    #[test]
    fn offsets_out_of_range() {
        let err = error(&one_tensor("U8", "[4]", "[0, 4]", 3));
        assert!(
            err.contains("data_offsets end 4 exceeds the 3 bytes"),
            "{err}"
        );
        let err = error(&one_tensor("U8", "[0]", "[2, 1]", 3));
        assert!(err.contains("begin after end"), "{err}");
        let err = error(&one_tensor("U8", "[1]", "[0]", 3));
        assert!(err.contains("data_offsets must be [begin, end]"), "{err}");
    }

    #[test]
    fn wrong_tensor_byte_size() {
        let err = error(&one_tensor("F16", "[2, 3]", "[0, 6]", 6));
        assert!(
            err.ends_with("tensor `t`: holds 6 bytes but shape [2, 3] of F16 needs 12"),
            "{err}"
        );
        let err = error(&one_tensor("F64", "[2147483648, 2147483648]", "[0, 8]", 8));
        assert!(err.contains("needs more than 2^64"), "{err}");
        let err = error(&one_tensor("U8", "[4294967296, 4294967296]", "[0, 8]", 8));
        assert!(err.contains("overflows 64 bits"), "{err}");
    }

    #[test]
    fn unknown_dtype_and_bad_shape() {
        let err = error(&one_tensor("Q4_K", "[2]", "[0, 1]", 1));
        assert!(err.contains("unknown dtype `Q4_K`"), "{err}");
        let err = error(&one_tensor("U8", "[-1]", "[0, 1]", 1));
        assert!(err.contains("shape must be an array"), "{err}");
        let err = error(&file(r#"{"t": {"shape": [1], "data_offsets": [0, 1]}}"#, 1));
        assert!(err.contains("missing dtype"), "{err}");
    }

    #[test]
    fn metadata_must_be_strings() {
        let err = error(&file(r#"{"__metadata__": {"epoch": 3}}"#, 0));
        assert!(
            err.contains("__metadata__ must be a map of strings"),
            "{err}"
        );
    }

    #[test]
    fn long_names_are_shortened_in_messages() {
        let name = "x".repeat(10_000);
        let header = format!(r#"{{"{name}": {{"dtype": "??"}}}}"#);
        let err = error(&file(&header, 0));
        assert!(err.len() < 300, "{err}");
    }
}
