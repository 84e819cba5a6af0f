//! Content formats and their checks: a publish is refused with the line and
//! column of the first error, so a broken YAML never reaches a reader.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a key's content is checked, and the extension an export gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConfigFormat {
    /// YAML (one or more documents).
    Yaml,
    /// JSON.
    Json,
    /// TOML.
    Toml,
    /// Java `.properties`.
    Properties,
    /// Any UTF-8 text.
    Text,
}

/// Why content does not parse as its format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not valid {format}{}: {message}", location.map(|(l, c)| format!(" at line {l}, column {c}")).unwrap_or_default())]
pub struct FormatError {
    /// The format's name.
    pub format: &'static str,
    /// Line and column (1-based) when the parser knows them.
    pub location: Option<(usize, usize)>,
    /// The parser's words.
    pub message: String,
}

impl ConfigFormat {
    /// Every format.
    pub const ALL: [ConfigFormat; 5] = [
        ConfigFormat::Yaml,
        ConfigFormat::Json,
        ConfigFormat::Toml,
        ConfigFormat::Properties,
        ConfigFormat::Text,
    ];

    /// Its wire name (and Nacos' `type`).
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigFormat::Yaml => "yaml",
            ConfigFormat::Json => "json",
            ConfigFormat::Toml => "toml",
            ConfigFormat::Properties => "properties",
            ConfigFormat::Text => "text",
        }
    }

    /// Parses a wire name (Nacos' `yml` and `txt` too, any case).
    pub fn parse(name: &str) -> Option<ConfigFormat> {
        match name.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Some(ConfigFormat::Yaml),
            "json" => Some(ConfigFormat::Json),
            "toml" => Some(ConfigFormat::Toml),
            "properties" => Some(ConfigFormat::Properties),
            "text" | "txt" => Some(ConfigFormat::Text),
            _ => None,
        }
    }

    /// The extension an exported file gets.
    pub fn extension(self) -> &'static str {
        match self {
            ConfigFormat::Yaml => "yaml",
            ConfigFormat::Json => "json",
            ConfigFormat::Toml => "toml",
            ConfigFormat::Properties => "properties",
            ConfigFormat::Text => "txt",
        }
    }

    /// The format a key's own extension names (`text` when none does).
    pub fn of_key(key: &str) -> ConfigFormat {
        key.rsplit_once('.')
            .and_then(|(_, ext)| ConfigFormat::parse(ext))
            .unwrap_or(ConfigFormat::Text)
    }

    /// Checks `content` against the format.
    pub fn check(self, content: &str) -> Result<(), FormatError> {
        let error = |location, message: String| FormatError {
            format: self.as_str(),
            location,
            message,
        };
        match self {
            ConfigFormat::Json => serde_json::from_str::<serde_json::Value>(content)
                .map(drop)
                .map_err(|e| error(Some((e.line(), e.column())), e.to_string())),
            ConfigFormat::Yaml => {
                for document in serde_yaml_ng::Deserializer::from_str(content) {
                    serde_yaml_ng::Value::deserialize(document).map_err(|e| {
                        let at = e.location().map(|l| (l.line(), l.column()));
                        error(at, e.to_string())
                    })?;
                }
                Ok(())
            }
            ConfigFormat::Toml => content.parse::<toml::Table>().map(drop).map_err(|e| {
                let at = e.span().map(|span| line_column(content, span.start));
                error(at, e.message().to_owned())
            }),
            ConfigFormat::Properties => check_properties(content)
                .map_err(|(line, column, message)| error(Some((line, column)), message)),
            ConfigFormat::Text => {
                if content.contains('\0') {
                    Err(error(
                        None,
                        "text must not contain NUL characters".to_owned(),
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

fn line_column(content: &str, offset: usize) -> (usize, usize) {
    let before = &content[..offset.min(content.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Java's `Properties.load` accepts almost anything; what it refuses is a
/// malformed `\uXXXX` escape, which is what this finds.
fn check_properties(content: &str) -> Result<(), (usize, usize, String)> {
    for (index, line) in content.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '\\' {
                if chars.get(i + 1) == Some(&'u') {
                    let digits: String = chars.iter().skip(i + 2).take(4).collect();
                    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
                        return Err((
                            index + 1,
                            i + 1,
                            format!("malformed \\uxxxx escape {:?}", format!("\\u{digits}")),
                        ));
                    }
                    i += 6;
                    continue;
                }
                i += 2;
                continue;
            }
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_takes_its_own_and_refuses_with_a_place() {
        use ConfigFormat::*;
        assert!(
            Json.check(r#"{"module": "model-manager", "sync_interval": "30s"}"#)
                .is_ok()
        );
        let e = Json.check("{\n  \"a\": 1,\n}").unwrap_err();
        assert_eq!(e.location, Some((3, 1)), "{e}");
        assert!(Yaml.check("a: 1\nb: [1, 2]\n---\nc: d\n").is_ok());
        let e = Yaml.check("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(e.location.is_some(), "{e}");
        assert!(e.to_string().starts_with("not valid yaml at line"), "{e}");
        assert!(
            Toml.check("sync_interval = \"30s\"\n[limits]\nrps = 5\n")
                .is_ok()
        );
        let e = Toml.check("a = 1\nb = \n").unwrap_err();
        assert_eq!(e.location.map(|l| l.0), Some(2), "{e}");
        assert!(
            Properties
                .check("# c\na=1\nb : two\\u0041\nc\\\n  continued\n")
                .is_ok()
        );
        let e = Properties.check("a=1\nb=\\u12G4\n").unwrap_err();
        assert_eq!(e.location, Some((2, 3)), "{e}");
        assert!(Text.check("anything at all: { [").is_ok());
        assert!(Text.check("nul\0").is_err());
    }

    #[test]
    fn formats_come_from_names_and_extensions() {
        assert_eq!(ConfigFormat::parse("YML"), Some(ConfigFormat::Yaml));
        assert_eq!(ConfigFormat::parse("txt"), Some(ConfigFormat::Text));
        assert_eq!(ConfigFormat::parse("xml"), None);
        assert_eq!(ConfigFormat::of_key("app.yaml"), ConfigFormat::Yaml);
        assert_eq!(ConfigFormat::of_key("limits.toml"), ConfigFormat::Toml);
        assert_eq!(ConfigFormat::of_key("model-manager"), ConfigFormat::Text);
        for f in ConfigFormat::ALL {
            assert_eq!(ConfigFormat::parse(f.as_str()), Some(f));
            assert_eq!(ConfigFormat::parse(f.extension()), Some(f));
        }
    }
}
