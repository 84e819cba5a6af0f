//! The proxy-wasm ABI 0.2.1 as numbers and bytes: the status codes, the
//! enumerations the host calls take, and the wire form of header maps and
//! property paths (as `proxy-wasm-rust-sdk` writes and reads them). Pure.

/// What a host call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    CasMismatch = 8,
    InternalFailure = 10,
}

/// What a filter's stream callback answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pass the stream on to the next filter.
    Continue,
    /// Stop here: wait for more of the body, or for the local response the
    /// filter sent.
    Pause,
}

impl Action {
    /// The SDK's `Action` as a callback returns it; anything but 0 stops.
    pub fn from_raw(raw: i32) -> Action {
        if raw == 0 {
            Action::Continue
        } else {
            Action::Pause
        }
    }
}

/// The header maps a filter can read and write (`MapType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapType {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
    /// gRPC metadata and HTTP callout maps: never present here.
    Other,
}

impl MapType {
    /// The SDK's number for it.
    pub fn from_raw(raw: i32) -> MapType {
        match raw {
            0 => MapType::RequestHeaders,
            1 => MapType::RequestTrailers,
            2 => MapType::ResponseHeaders,
            3 => MapType::ResponseTrailers,
            _ => MapType::Other,
        }
    }
}

/// The buffers a filter can read and write (`BufferType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferType {
    RequestBody,
    ResponseBody,
    VmConfiguration,
    PluginConfiguration,
    /// Connection data, callout and gRPC bodies: never present here.
    Other,
}

impl BufferType {
    /// The SDK's number for it.
    pub fn from_raw(raw: i32) -> BufferType {
        match raw {
            0 => BufferType::RequestBody,
            1 => BufferType::ResponseBody,
            6 => BufferType::VmConfiguration,
            7 => BufferType::PluginConfiguration,
            _ => BufferType::Other,
        }
    }
}

/// A header map as the ABI carries it: the count, each name's and value's
/// length (little-endian u32s), then each name and value NUL-terminated.
pub fn encode_map(pairs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(n, v)| 8 + n.len() + v.len() + 2)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (name, value) in pairs {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

/// Reads a header map written by a filter; `None` when the bytes are not one.
pub fn decode_map(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let count = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let sizes_end = count.checked_mul(8)?.checked_add(4)?;
    let sizes = bytes.get(4..sizes_end)?;
    let mut at = sizes_end;
    let mut pairs = Vec::with_capacity(count.min(256));
    for size in sizes.chunks_exact(8) {
        let name_len = u32::from_le_bytes(size[..4].try_into().ok()?) as usize;
        let value_len = u32::from_le_bytes(size[4..].try_into().ok()?) as usize;
        let name = bytes.get(at..at.checked_add(name_len)?)?;
        at += name_len + 1;
        let value = bytes.get(at..at.checked_add(value_len)?)?;
        at += value_len + 1;
        pairs.push((String::from_utf8(name.to_vec()).ok()?, value.to_vec()));
    }
    (at <= bytes.len() + 1).then_some(pairs)
}

/// A property path: its parts separated by NUL bytes.
pub fn decode_path(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split(|b| *b == 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_survives_its_wire_form() {
        let pairs = vec![
            (":path".to_owned(), b"/v1/chat/completions".to_vec()),
            ("x-empty".to_owned(), Vec::new()),
            ("x-bytes".to_owned(), vec![0xff, 1, 2]),
        ];
        let bytes = encode_map(&pairs);
        assert_eq!(&bytes[..4], &3u32.to_le_bytes());
        assert_eq!(decode_map(&bytes), Some(pairs));
        assert_eq!(decode_map(&encode_map(&[])), Some(Vec::new()));
    }

    #[test]
    fn a_truncated_or_absurd_map_is_refused() {
        let bytes = encode_map(&[("a".to_owned(), b"b".to_vec())]);
        assert_eq!(decode_map(&bytes[..bytes.len() - 3]), None);
        assert_eq!(decode_map(&[0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(decode_map(&[1]), None);
    }

    #[test]
    fn paths_split_on_nul() {
        assert_eq!(
            decode_path(b"autoglm\0tenant"),
            vec![&b"autoglm"[..], b"tenant"]
        );
        assert_eq!(decode_path(b"plugin_name"), vec![&b"plugin_name"[..]]);
    }
}
