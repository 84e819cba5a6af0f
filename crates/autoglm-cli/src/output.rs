//! Output formatting: aligned tables and fields, kubectl-style ages, binary
//! sizes, short digests, and printing that survives a closed pipe.

use std::io::Write;

use chrono::{DateTime, Utc};

pub use autoglm_core::display::{human_size, short_digest};

/// Columns of a table are separated by this many spaces, as kubectl does.
const COLUMN_GAP: usize = 3;
/// Shown for an absent value.
pub const NONE: &str = "<none>";

/// Renders a table: a header row and rows, each column padded to its widest
/// cell, no trailing spaces. Every line ends with a newline.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let columns = headers
        .len()
        .max(rows.iter().map(Vec::len).max().unwrap_or(0));
    let mut widths = vec![0usize; columns];
    let header_row: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str(&" ".repeat(COLUMN_GAP));
            }
            line.push_str(cell);
            let pad = widths[i] - cell.chars().count();
            line.push_str(&" ".repeat(pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Renders `Label:  value` lines with the values aligned.
pub fn render_fields(fields: &[(&str, String)]) -> String {
    let width = fields
        .iter()
        .map(|(label, _)| label.chars().count() + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (label, value) in fields {
        let line = format!("{:<width$}  {value}", format!("{label}:"));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Prefixes every line of `text` with `indent` spaces.
pub fn indent(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// How long ago `then` was, kubectl-style: `45s`, `5m`, `2h`, `3d`, `2y`.
/// A time in the future (clock skew) reads `0s`.
pub fn age(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - then).num_seconds().max(0);
    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    const YEAR: i64 = 365 * DAY;
    match seconds {
        s if s < MINUTE => format!("{s}s"),
        s if s < HOUR => format!("{}m", s / MINUTE),
        s if s < DAY => format!("{}h", s / HOUR),
        s if s < YEAR => format!("{}d", s / DAY),
        s => format!("{}y", s / YEAR),
    }
}

/// Escapes control characters (terminal escapes, newlines) in text that came
/// from the console, so that it cannot disturb the terminal or the layout.
pub fn sanitize(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// An optional value, or `<none>`.
pub fn or_none<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| NONE.to_owned(), |v| sanitize(&v.to_string()))
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
pub fn print_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Writes one line to stderr, ignoring failures.
pub fn print_stderr(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
}

/// Values as YAML documents, each after a `---` line, as `apply -f` reads them back.
pub fn yaml_documents(values: &[serde_json::Value]) -> String {
    let mut out = String::new();
    for value in values {
        out.push_str("---\n");
        match serde_yaml_ng::to_string(value) {
            Ok(text) => out.push_str(&text),
            // A JSON value always has a YAML form; this is not reached.
            Err(_) => out.push_str(&pretty_json(value)),
        }
    }
    out
}

/// Prints one value as JSON or YAML (a table is the caller's to draw).
pub fn print_value(format: crate::OutputFormat, value: &serde_json::Value) {
    match format {
        crate::OutputFormat::Yaml => print_stdout(&yaml_documents(std::slice::from_ref(value))),
        _ => print_stdout(&pretty_json(value)),
    }
}

/// Pretty JSON followed by a newline.
pub fn pretty_json(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let table = render_table(
            &["NAME", "VERSIONS", "LABELS"],
            &[
                vec!["llama".into(), "12".into(), "team=nlp".into()],
                vec!["a-much-longer-name".into(), "1".into(), "<none>".into()],
            ],
        );
        assert_eq!(
            table,
            "NAME                 VERSIONS   LABELS\n\
             llama                12         team=nlp\n\
             a-much-longer-name   1          <none>\n"
        );
        for line in table.lines() {
            assert_eq!(line, line.trim_end());
        }
    }

    #[test]
    fn tables_count_characters_not_bytes() {
        let table = render_table(&["A", "B"], &[vec!["héllo".into(), "x".into()]]);
        assert_eq!(table, "A       B\nhéllo   x\n");
    }

    #[test]
    fn an_empty_table_is_its_header() {
        assert_eq!(render_table(&["NAME", "AGE"], &[]), "NAME   AGE\n");
    }

    #[test]
    fn fields_align_values() {
        let text = render_fields(&[
            ("Name", "llama".into()),
            ("Description", "chat".into()),
            ("Labels", String::new()),
        ]);
        assert_eq!(text, "Name:         llama\nDescription:  chat\nLabels:\n");
        assert_eq!(indent("a\nb\n", 2), "  a\n  b\n");
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now = Utc::now();
        assert_eq!(age(now, now), "0s");
        assert_eq!(age(now - Duration::seconds(59), now), "59s");
        assert_eq!(age(now - Duration::minutes(5), now), "5m");
        assert_eq!(age(now - Duration::seconds(3599), now), "59m");
        assert_eq!(age(now - Duration::hours(2), now), "2h");
        assert_eq!(age(now - Duration::days(3), now), "3d");
        assert_eq!(age(now - Duration::days(800), now), "2y");
        assert_eq!(age(now + Duration::minutes(1), now), "0s");
    }

    #[test]
    fn yaml_documents_are_separated_for_apply() {
        let text = yaml_documents(&[
            serde_json::json!({"kind": "A", "n": 1}),
            serde_json::json!({"kind": "B"}),
        ]);
        assert_eq!(text, "---\nkind: A\nn: 1\n---\nkind: B\n");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(sanitize("plain"), "plain");
        assert_eq!(sanitize("a\nb\x1b[2J"), "a\\nb\\u{1b}[2J");
        assert_eq!(or_none::<String>(None), "<none>");
        assert_eq!(or_none(Some(3)), "3");
    }
}
