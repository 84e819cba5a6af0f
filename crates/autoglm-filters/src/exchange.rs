//! One HTTP exchange as the filters see and change it: the request's and the
//! response's headers (pseudo-headers `:method`, `:path`, `:authority`,
//! `:scheme`, `:status` as Envoy gives them) and bodies, the properties a
//! filter may read, and the local response a filter may send instead.

/// Header names (lower case) with their values, in order.
pub type Headers = Vec<(String, Vec<u8>)>;

/// What the filters work on. The host moves it into the filter's store for
/// the length of a call and back out after it.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    pub request_headers: Headers,
    pub request_body: Vec<u8>,
    pub response_headers: Headers,
    /// The piece of the response body at hand (all of it for a body that is
    /// not streamed).
    pub response_body: Vec<u8>,
    pub properties: Properties,
    /// Set by `proxy_send_local_response`: the answer to give instead.
    pub local_response: Option<LocalResponse>,
    /// Set by `proxy_close_stream`: the filter ended the request.
    pub reset: bool,
    /// Properties the filters set (`proxy_set_property`), by path: this
    /// request's only.
    pub set_properties: std::collections::HashMap<Vec<u8>, Vec<u8>>,
}

/// What `proxy_get_property` answers, beside the headers.
#[derive(Debug, Clone, Default)]
pub struct Properties {
    pub tenant: String,
    pub service: String,
    pub version: String,
    /// The client's address, `ip:port`.
    pub source_address: String,
    pub request_id: String,
}

/// The answer a filter sends in place of the upstream's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Exchange {
    /// The header map of `map`, when the exchange has it.
    pub fn map(&self, map: crate::abi::MapType) -> Option<&Headers> {
        match map {
            crate::abi::MapType::RequestHeaders => Some(&self.request_headers),
            crate::abi::MapType::ResponseHeaders => Some(&self.response_headers),
            _ => None,
        }
    }

    /// The header map of `map` to change.
    pub fn map_mut(&mut self, map: crate::abi::MapType) -> Option<&mut Headers> {
        match map {
            crate::abi::MapType::RequestHeaders => Some(&mut self.request_headers),
            crate::abi::MapType::ResponseHeaders => Some(&mut self.response_headers),
            _ => None,
        }
    }

    /// The first value of the header `name` of the request.
    pub fn request_header(&self, name: &str) -> Option<&[u8]> {
        first(&self.request_headers, name)
    }

    /// The first value of the header `name` of the response.
    pub fn response_header(&self, name: &str) -> Option<&[u8]> {
        first(&self.response_headers, name)
    }

    /// A property by its path (`request.path`, `autoglm.tenant`, …).
    pub fn property(&self, path: &[&[u8]], plugin_name: &str) -> Option<Vec<u8>> {
        let header = |name| self.request_header(name).map(<[u8]>::to_vec);
        let text = |s: &str| Some(s.as_bytes().to_vec());
        match path {
            [b"request", b"path"] => header(":path"),
            [b"request", b"url_path"] => header(":path").map(|p| {
                let end = p.iter().position(|b| *b == b'?').unwrap_or(p.len());
                p[..end].to_vec()
            }),
            [b"request", b"method"] => header(":method"),
            [b"request", b"host"] => header(":authority"),
            [b"request", b"scheme"] => header(":scheme"),
            [b"request", b"id"] => text(&self.properties.request_id),
            [b"request", b"headers", name] => self
                .request_header(std::str::from_utf8(name).ok()?)
                .map(<[u8]>::to_vec),
            [b"response", b"code"] => {
                let status = self.response_header(":status")?;
                let code: u64 = std::str::from_utf8(status).ok()?.parse().ok()?;
                Some(code.to_le_bytes().to_vec())
            }
            [b"source", b"address"] => text(&self.properties.source_address),
            [b"plugin_name"] => text(plugin_name),
            [b"autoglm", b"tenant"] => text(&self.properties.tenant),
            [b"autoglm", b"service"] => text(&self.properties.service),
            [b"autoglm", b"version"] => text(&self.properties.version),
            _ => None,
        }
    }
}

fn first<'a>(headers: &'a Headers, name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_come_from_the_headers_and_the_route() {
        let exchange = Exchange {
            request_headers: vec![
                (":method".into(), b"POST".to_vec()),
                (":path".into(), b"/v1/chat/completions?x=1".to_vec()),
                ("x-team".into(), b"red".to_vec()),
            ],
            response_headers: vec![(":status".into(), b"201".to_vec())],
            properties: Properties {
                tenant: "acme".into(),
                ..Properties::default()
            },
            ..Exchange::default()
        };
        let get = |p: &[&[u8]]| exchange.property(p, "redactor");
        assert_eq!(get(&[b"request", b"method"]), Some(b"POST".to_vec()));
        assert_eq!(
            get(&[b"request", b"url_path"]),
            Some(b"/v1/chat/completions".to_vec())
        );
        assert_eq!(
            get(&[b"request", b"headers", b"X-Team"]),
            Some(b"red".to_vec())
        );
        assert_eq!(
            get(&[b"response", b"code"]),
            Some(201u64.to_le_bytes().to_vec())
        );
        assert_eq!(get(&[b"autoglm", b"tenant"]), Some(b"acme".to_vec()));
        assert_eq!(get(&[b"plugin_name"]), Some(b"redactor".to_vec()));
        assert_eq!(get(&[b"node", b"id"]), None);
    }
}
