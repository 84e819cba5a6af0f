//! GGUF (llama.cpp) check: magic, version, counts, then every metadata key/value.
//!
//! All values are parsed so that truncation or an unknown type is caught, but only the few the
//! report needs are kept; arrays (such as a tokenizer vocabulary) are skipped, never stored.

use std::io::{Read, Seek};

use serde_json::{Map, Value};

use super::FormatError;
use super::reader::Source;

/// Keys, names and descriptions are short; a megabyte string is a corrupt length.
const MAX_STRING: u64 = 1 << 20;
/// Real files nest arrays at most once; the cap stops a hostile file from exhausting the stack.
const MAX_ARRAY_DEPTH: u32 = 8;
/// Smallest key/value: an empty key (8-byte length), a type id (4) and a one-byte value.
const MIN_KV_BYTES: u64 = 13;
/// Smallest tensor info: an empty name (8), dimension count (4), type (4) and offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 24;
/// Context-length keys seen before `general.architecture` that are remembered for matching.
const MAX_PENDING: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    fn from_id(id: u32) -> Option<Self> {
        use ValueType::*;
        const TYPES: [ValueType; 13] = [
            U8, I8, U16, I16, U32, I32, F32, Bool, String, Array, U64, I64, F64,
        ];
        TYPES.get(usize::try_from(id).ok()?).copied()
    }

    /// Size of one value on disk, or for strings and arrays the size of their length prefix.
    fn min_size(self) -> u64 {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }

    fn is_fixed(self) -> bool {
        !matches!(self, ValueType::String | ValueType::Array)
    }

    fn is_integer(self) -> bool {
        use ValueType::*;
        matches!(self, U8 | I8 | U16 | I16 | U32 | I32 | U64 | I64)
    }
}

pub(super) fn check<R: Read + Seek>(
    src: &mut Source<R>,
) -> Result<Map<String, Value>, FormatError> {
    let magic = src.array::<4>("magic")?;
    if &magic != b"GGUF" {
        return Err(src.invalid(format!(
            "missing magic `GGUF` at offset 0 (found {})",
            hex::encode(magic)
        )));
    }
    let version = src.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(src.invalid(format!("unsupported version {version} (expected 2 or 3)")));
    }
    let tensors = src.u64("tensor count")?;
    let kv_count = src.u64("metadata count")?;
    if kv_count > src.remaining() / MIN_KV_BYTES {
        return Err(src.invalid(format!(
            "metadata count {kv_count} cannot fit in the {} bytes left",
            src.remaining()
        )));
    }

    let mut wanted = Wanted::default();
    for _ in 0..kv_count {
        let key = read_string(src, "metadata key")?;
        let ty = read_type(src, &key)?;
        let value = read_value(src, ty, wanted.wants(&key), &key)?;
        if let Some(value) = value {
            wanted.record(key, ty, value);
        }
    }
    if tensors > src.remaining() / MIN_TENSOR_INFO_BYTES {
        return Err(src.invalid(format!(
            "tensor count {tensors} cannot fit in the {} bytes after the metadata",
            src.remaining()
        )));
    }

    let mut details = Map::new();
    details.insert("version".into(), version.into());
    details.insert("tensors".into(), tensors.into());
    wanted.finish(&mut details).map_err(|m| src.invalid(m))?;
    details.insert("metadata_keys".into(), kv_count.into());
    Ok(details)
}

/// The metadata values the report keeps, collected in whatever order the file has them; one
/// entry per key, so repeated keys cannot grow it.
#[derive(Default)]
struct Wanted {
    values: Vec<(String, ValueType, Value)>,
    architecture: Option<String>,
}

impl Wanted {
    fn wants(&self, key: &str) -> bool {
        match key {
            "general.architecture" | "general.name" | "general.file_type" => true,
            _ => match (&self.architecture, key.strip_suffix(".context_length")) {
                (Some(arch), Some(prefix)) => prefix == arch,
                (None, Some(_)) => self.values.len() < MAX_PENDING,
                (_, None) => false,
            },
        }
    }

    fn record(&mut self, key: String, ty: ValueType, value: Value) {
        if key == "general.architecture" {
            self.architecture = value.as_str().map(str::to_string);
        }
        // Last wins, as when the file is loaded into a map.
        match self.values.iter_mut().find(|(k, _, _)| *k == key) {
            Some(slot) => *slot = (key, ty, value),
            None => self.values.push((key, ty, value)),
        }
    }

    fn find(&self, key: &str) -> Option<(ValueType, &Value)> {
        let (_, ty, value) = self.values.iter().find(|(k, _, _)| k == key)?;
        Some((*ty, value))
    }

    fn finish(&self, details: &mut Map<String, Value>) -> Result<(), String> {
        let arch = match self.find("general.architecture") {
            Some((ValueType::String, Value::String(arch))) => arch.clone(),
            Some((ty, _)) => {
                return Err(format!("general.architecture is {ty:?}, expected a string"));
            }
            None => return Err("missing general.architecture".into()),
        };
        let context_key = format!("{arch}.context_length");
        details.insert("architecture".into(), arch.into());
        if let Some((ty, value)) = self.find("general.name") {
            if ty != ValueType::String {
                return Err(format!("general.name is {ty:?}, expected a string"));
            }
            details.insert("name".into(), value.clone());
        }
        for (key, field) in [
            (context_key.as_str(), "context_length"),
            ("general.file_type", "file_type"),
        ] {
            if let Some((ty, value)) = self.find(key) {
                let number = value.as_u64().filter(|_| ty.is_integer()).ok_or_else(|| {
                    format!("{key} is {ty:?} {value}, expected a non-negative integer")
                })?;
                details.insert(field.into(), number.into());
            }
        }
        Ok(())
    }
}

fn read_type<R: Read + Seek>(src: &mut Source<R>, key: &str) -> Result<ValueType, FormatError> {
    let at = src.pos();
    let id = src.u32("value type")?;
    ValueType::from_id(id).ok_or_else(|| {
        src.invalid(format!(
            "unknown value type {id} at offset {at} (key `{}`)",
            shorten(key)
        ))
    })
}

fn read_string<R: Read + Seek>(src: &mut Source<R>, what: &str) -> Result<String, FormatError> {
    let at = src.pos();
    let len = src.u64(what)?;
    if len > MAX_STRING {
        return Err(src.invalid(format!(
            "{what} at offset {at} declares {len} bytes, over the {MAX_STRING}-byte limit"
        )));
    }
    let bytes = src.bytes(len, what)?;
    String::from_utf8(bytes)
        .map_err(|_| src.invalid(format!("{what} at offset {at} is not valid UTF-8")))
}

/// Reads one value of type `ty`, returning it only when `keep` (arrays are never kept).
fn read_value<R: Read + Seek>(
    src: &mut Source<R>,
    ty: ValueType,
    keep: bool,
    key: &str,
) -> Result<Option<Value>, FormatError> {
    use ValueType::*;
    let value = match ty {
        Array => {
            skip_array(src, key, 0)?;
            return Ok(None);
        }
        Bool => match src.u8("value")? {
            0 => false.into(),
            1 => true.into(),
            other => return Err(src.invalid(format!("bool `{}` is {other}", shorten(key)))),
        },
        String if !keep => {
            skip_string(src)?;
            return Ok(None);
        }
        _ if !keep => {
            src.skip(ty.min_size(), "value")?;
            return Ok(None);
        }
        U8 => src.u8("value")?.into(),
        I8 => i8::from_le_bytes(src.array("value")?).into(),
        U16 => u16::from_le_bytes(src.array("value")?).into(),
        I16 => i16::from_le_bytes(src.array("value")?).into(),
        U32 => src.u32("value")?.into(),
        I32 => i32::from_le_bytes(src.array("value")?).into(),
        U64 => src.u64("value")?.into(),
        I64 => i64::from_le_bytes(src.array("value")?).into(),
        F32 => f32::from_le_bytes(src.array("value")?).into(),
        F64 => f64::from_le_bytes(src.array("value")?).into(),
        String => read_string(src, "string value")?.into(),
    };
    Ok(keep.then_some(value))
}

fn skip_string<R: Read + Seek>(src: &mut Source<R>) -> Result<(), FormatError> {
    let len = src.u64("string length")?;
    src.skip(len, "string")
}

fn skip_array<R: Read + Seek>(
    src: &mut Source<R>,
    key: &str,
    depth: u32,
) -> Result<(), FormatError> {
    let at = src.pos();
    if depth >= MAX_ARRAY_DEPTH {
        return Err(src.invalid(format!(
            "arrays nested deeper than {MAX_ARRAY_DEPTH} at offset {at} (key `{}`)",
            shorten(key)
        )));
    }
    let ty = read_type(src, key)?;
    let count = src.u64("array length")?;
    if count > src.remaining() / ty.min_size() {
        return Err(src.invalid(format!(
            "array of {count} {ty:?} at offset {at} (key `{}`) cannot fit in the {} bytes left",
            shorten(key),
            src.remaining()
        )));
    }
    if ty.is_fixed() {
        // Cannot overflow: count * size <= remaining, checked above.
        return src.skip(count * ty.min_size(), "array");
    }
    for _ in 0..count {
        if ty == ValueType::String {
            skip_string(src)?;
        } else {
            skip_array(src, key, depth + 1)?;
        }
    }
    Ok(())
}

fn shorten(key: &str) -> &str {
    key.char_indices()
        .nth(120)
        .map_or(key, |(end, _)| &key[..end])
}

#[cfg(test)]
mod tests {

    use std::io::Cursor;

    use autoglm_core::artifact::ArtifactFormat;
    use serde_json::json;

    use super::*;

    /// Builds a GGUF file in memory.
    struct Builder(Vec<u8>);

    impl Builder {
        fn new(version: u32, tensors: u64, kvs: u64) -> Self {
            let mut b = Self(b"GGUF".to_vec());
            b.0.extend_from_slice(&version.to_le_bytes());
            b.0.extend_from_slice(&tensors.to_le_bytes());
            b.0.extend_from_slice(&kvs.to_le_bytes());
            b
        }
        fn raw(mut self, bytes: &[u8]) -> Self {
            self.0.extend_from_slice(bytes);
            self
        }
        fn u32(self, v: u32) -> Self {
            self.raw(&v.to_le_bytes())
        }
        fn u64(self, v: u64) -> Self {
            self.raw(&v.to_le_bytes())
        }
        fn string(self, s: &str) -> Self {
            self.u64(s.len() as u64).raw(s.as_bytes())
        }
        fn kv(self, key: &str, ty: u32, value: &[u8]) -> Self {
            self.string(key).u32(ty).raw(value)
        }
        fn kv_str(self, key: &str, value: &str) -> Self {
            self.string(key).u32(8).string(value)
        }
        fn build(self) -> Vec<u8> {
            self.0
        }
    }

    fn run(bytes: &[u8]) -> Result<Map<String, Value>, FormatError> {
        let len = bytes.len() as u64;
        check(&mut Source::new(
            Cursor::new(bytes),
            len,
            ArtifactFormat::Gguf,
        ))
    }

    fn error(bytes: &[u8]) -> String {
        run(bytes).unwrap_err().to_string()
    }

    fn minimal(version: u32) -> Vec<u8> {
        Builder::new(version, 0, 1)
            .kv_str("general.architecture", "llama")
            .build()
    }

    #[test]
    fn reads_every_value_type_and_keeps_the_summary() {
        let tokens = Builder(Vec::new())
            .u32(8)
            .u64(3)
            .string("<s>")
            .string("</s>")
            .string("hi");
        let nested = Builder(Vec::new())
            .u32(9)
            .u64(2)
            .u32(3)
            .u64(2)
            .raw(&[1, 0, 2, 0])
            .u32(3)
            .u64(0);
        let bytes = Builder::new(3, 2, 17)
            .kv_str("general.architecture", "llama")
            .kv_str("general.name", "Tiny Llama")
            .kv("llama.context_length", 4, &4096u32.to_le_bytes())
            .kv("general.file_type", 4, &15u32.to_le_bytes())
            .kv("u8", 0, &[1])
            .kv("i8", 1, &[0xff])
            .kv("u16", 2, &[1, 0])
            .kv("i16", 3, &[1, 0])
            .kv("i32", 5, &(-1i32).to_le_bytes())
            .kv("f32", 6, &1.5f32.to_le_bytes())
            .kv("bool", 7, &[1])
            .kv("u64", 10, &7u64.to_le_bytes())
            .kv("i64", 11, &(-7i64).to_le_bytes())
            .kv("f64", 12, &2.5f64.to_le_bytes())
            .kv("tokenizer.ggml.tokens", 9, &tokens.build())
            .kv("nested", 9, &nested.build())
            .kv("mistral.context_length", 4, &[0; 4])
            .raw(&[0; 2 * 24])
            .build();
        let details = run(&bytes).unwrap();
        assert_eq!(
            Value::Object(details),
            json!({
                "version": 3,
                "tensors": 2,
                "architecture": "llama",
                "name": "Tiny Llama",
                "context_length": 4096,
                "file_type": 15,
                "metadata_keys": 17,
            })
        );
    }

    #[test]
    fn context_length_may_come_before_the_architecture() {
        let bytes = Builder::new(2, 0, 3)
            .kv("qwen2.context_length", 10, &32768u64.to_le_bytes())
            .kv("llama.context_length", 4, &[0; 4])
            .kv_str("general.architecture", "qwen2")
            .build();
        let details = run(&bytes).unwrap();
        assert_eq!(details["version"], 2);
        assert_eq!(details["context_length"], 32768);
        assert!(!details.contains_key("name"));
        assert!(!details.contains_key("file_type"));
    }

    #[test]
    fn bad_magic_and_version() {
        let mut bytes = minimal(3);
        bytes[0] = b'X';
        assert!(error(&bytes).contains("missing magic `GGUF` at offset 0 (found 58475546)"));
        for version in [0, 1, 4, 0x0300_0000] {
            let err = error(&minimal(version));
            assert_eq!(
                err,
                format!("GGUF: unsupported version {version} (expected 2 or 3)")
            );
        }
    }

    #[test]
    fn truncated_header_and_string() {
        let err = error(b"GGUF\x03\x00\x00\x00\x01\x00");
        assert!(err.contains("truncated tensor count at offset 8"), "{err}");

        let mut bytes = minimal(3);
        bytes.truncate(bytes.len() - 2);
        let err = error(&bytes);
        assert!(err.contains("truncated string value at offset 64"), "{err}");

        let bytes = Builder::new(3, 0, 1).u64(100).raw(b"general.arch").build();
        assert_eq!(
            error(&bytes),
            "GGUF: truncated metadata key at offset 32: needs 100 bytes, 12 left"
        );
    }

    #[test]
    fn unknown_value_type() {
        let bytes = Builder::new(3, 0, 1).kv("weird", 13, &[0; 8]).build();
        assert_eq!(
            error(&bytes),
            "GGUF: unknown value type 13 at offset 37 (key `weird`)"
        );
        let bytes = Builder::new(3, 0, 1)
            .kv("arr", 9, &[13, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
            .build();
        assert!(error(&bytes).contains("unknown value type 13"));
    }

    #[test]
    fn huge_declared_lengths_error_without_allocating() {
        let bytes = Builder::new(3, 0, 1).u64(u64::MAX).raw(&[0; 16]).build();
        let err = error(&bytes);
        assert!(err.contains("declares 18446744073709551615 bytes"), "{err}");

        // Within the declared file size, still over the string cap.
        let bytes = Builder::new(3, 0, 1).u64(1 << 40).build();
        let len = 1 << 41;
        let err = check(&mut Source::new(
            Cursor::new(&bytes[..]),
            len,
            ArtifactFormat::Gguf,
        ));
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("over the 1048576-byte limit")
        );

        let array = Builder(Vec::new()).u32(8).u64(u64::MAX).build();
        let bytes = Builder::new(3, 0, 1).kv("tokens", 9, &array).build();
        assert!(error(&bytes).contains("array of 18446744073709551615 String"));

        let array = Builder(Vec::new()).u32(8).u64(1).u64(u64::MAX - 1).build();
        let bytes = Builder::new(3, 0, 1).kv("tokens", 9, &array).build();
        assert!(error(&bytes).contains("truncated string"));

        let bytes = Builder::new(3, 0, u64::MAX).build();
        assert!(error(&bytes).contains("metadata count 18446744073709551615 cannot fit"));
        let bytes = Builder::new(3, u64::MAX, 1)
            .kv_str("general.architecture", "x")
            .build();
        assert!(error(&bytes).contains("tensor count 18446744073709551615 cannot fit"));
    }

    #[test]
    fn deeply_nested_arrays_are_refused() {
        let mut value = Vec::new();
        for _ in 0..10 {
            value.extend_from_slice(&9u32.to_le_bytes());
            value.extend_from_slice(&1u64.to_le_bytes());
        }
        value.extend_from_slice(&[0; 12]);
        let bytes = Builder::new(3, 0, 1).kv("deep", 9, &value).build();
        assert!(error(&bytes).contains("arrays nested deeper than 8"));
    }

    #[test]
    fn kept_values_must_have_the_right_type() {
        let bytes = Builder::new(3, 0, 0).raw(&[0; 13]).build();
        assert!(error(&bytes).contains("missing general.architecture"));

        let bytes = Builder::new(3, 0, 1)
            .kv("general.architecture", 4, &[0; 4])
            .build();
        assert!(error(&bytes).contains("general.architecture is U32, expected a string"));

        let bytes = Builder::new(3, 0, 2)
            .kv_str("general.architecture", "llama")
            .kv("llama.context_length", 5, &(-1i32).to_le_bytes())
            .build();
        assert!(error(&bytes).contains("expected a non-negative integer"));

        let bytes = Builder::new(3, 0, 2)
            .kv_str("general.architecture", "llama")
            .kv("general.file_type", 7, &[2])
            .build();
        assert!(error(&bytes).contains("bool `general.file_type` is 2"));
    }
}
