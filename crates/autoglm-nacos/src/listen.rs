//! The v1 listener's wire format: `Listening-Configs` lines of
//! `dataId \x02 group \x02 md5 [\x02 tenant] \x01`, and the answer, the
//! changed keys URL-encoded as Java's `URLEncoder` does, with a newline.

/// Separates the fields of a line.
pub const WORD: char = '\u{2}';
/// Ends a line.
pub const LINE: char = '\u{1}';

/// The most keys one listener may hold, as in Nacos.
pub const MAX_LISTENED: usize = 10_000;

/// One listened key, as the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listened {
    /// The key.
    pub data_id: String,
    /// The group.
    pub group: String,
    /// The md5 held (empty when none).
    pub md5: String,
    /// The namespace as sent (echoed back exactly); empty when left out.
    pub tenant: String,
}

/// Parses `Listening-Configs`, or says why not (Nacos answers `invalid probeModify`).
pub fn parse(probe: &str) -> Result<Vec<Listened>, String> {
    if probe.trim().is_empty() {
        return Err("Listening-Configs is empty".to_owned());
    }
    let mut keys = Vec::new();
    for (n, line) in probe.split(LINE).enumerate() {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(WORD).collect();
        let (data_id, group, md5, tenant) = match fields[..] {
            [d, g, m] => (d, g, m, ""),
            [d, g, m, t] => (d, g, m, t),
            _ => {
                return Err(format!(
                    "line {} has {} fields; want dataId, group, md5 and an optional tenant",
                    n + 1,
                    fields.len()
                ));
            }
        };
        autoglm_core::config::check_md5(md5).map_err(|e| format!("line {}: {e}", n + 1))?;
        keys.push(Listened {
            data_id: data_id.to_owned(),
            group: group.to_owned(),
            md5: md5.to_ascii_lowercase(),
            tenant: tenant.to_owned(),
        });
    }
    if keys.is_empty() {
        return Err("Listening-Configs names no key".to_owned());
    }
    if keys.len() > MAX_LISTENED {
        return Err(format!(
            "{} keys; the most one listener may hold is {MAX_LISTENED}",
            keys.len()
        ));
    }
    Ok(keys)
}

/// The answer naming `changed`: each `dataId \x02 group [\x02 tenant] \x01`
/// (the tenant only when the client sent one), URL-encoded, then `\n`.
pub fn answer<'a>(changed: impl IntoIterator<Item = &'a Listened>) -> String {
    let mut raw = String::new();
    for key in changed {
        raw.push_str(&key.data_id);
        raw.push(WORD);
        raw.push_str(&key.group);
        if !key.tenant.is_empty() {
            raw.push(WORD);
            raw.push_str(&key.tenant);
        }
        raw.push(LINE);
    }
    if raw.is_empty() {
        return raw;
    }
    let mut encoded = url_encode(&raw);
    encoded.push('\n');
    encoded
}

/// `java.net.URLEncoder.encode(s, "UTF-8")`: letters, digits and `.-*_` as
/// they are, space as `+`, every other byte `%XX`.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_and_without_a_tenant_parse() {
        let keys = parse("a.json\u{2}DEFAULT_GROUP\u{2}\u{2}\u{1}b\u{2}G\u{2}0123456789abcdef0123456789ABCDEF\u{2}ns1\u{1}c\u{2}G\u{2}\u{1}").unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!((keys[0].md5.as_str(), keys[0].tenant.as_str()), ("", ""));
        assert_eq!(keys[1].md5, "0123456789abcdef0123456789abcdef");
        assert_eq!(keys[1].tenant, "ns1");
        assert_eq!(
            (keys[2].data_id.as_str(), keys[2].tenant.as_str()),
            ("c", "")
        );
    }

    #[test]
    fn malformed_probes_are_refused() {
        for bad in [
            "",
            "  ",
            "a\u{2}b\u{1}",
            "a\u{2}b\u{2}c\u{2}d\u{2}e\u{1}",
            "a\u{2}b\u{2}nothex\u{1}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn the_answer_is_url_encoded_and_echoes_the_tenant_as_sent() {
        let keys =
            parse("x.json\u{2}DEFAULT_GROUP\u{2}\u{2}\u{1}y a\u{2}G\u{2}\u{2}public\u{1}").unwrap();
        assert_eq!(
            answer(&keys),
            "x.json%02DEFAULT_GROUP%01y+a%02G%02public%01\n"
        );
        assert_eq!(answer(&[]), "");
        assert_eq!(url_encode("a:b/€"), "a%3Ab%2F%E2%82%AC");
    }
}
