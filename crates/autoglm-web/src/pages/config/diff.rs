//! Diffs side by side: the API's unified diff (`diff -u` text, which every
//! config diff is, a key's versions, a promotion's plan, a change request's)
//! laid out as two columns, the old side's removed lines in red on the left
//! beside the new side's added lines in green on the right; and the page
//! `/ui/config/{env}/keys/{group}/{key}/diff?from=&to=` of two versions.

use crate::extract::Query;
use autoglm_core::config::ConfigDiff;
use axum::Extension;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{HERE, env_href, key_api, key_href};
use crate::api::{Api, segment};
use crate::layout;
use crate::session::SignedIn;

/// A line of one side: its number in its text, and the text.
type Side<'a> = Option<(usize, &'a str)>;

/// One row of a side-by-side diff.
#[derive(Debug, PartialEq, Eq)]
enum Row<'a> {
    /// Where a hunk starts (`@@ -1,3 +1,4 @@`).
    Hunk(&'a str),
    /// A line both texts hold.
    Same(usize, usize, &'a str),
    /// A removed line beside an added one; either may be missing.
    Changed(Side<'a>, Side<'a>),
}

/// The line numbers a hunk header starts its two sides at.
fn hunk_starts(header: &str) -> (usize, usize) {
    let start = |sign: char| {
        header
            .split_whitespace()
            .find_map(|w| w.strip_prefix(sign))
            .and_then(|w| w.split(',').next()?.parse().ok())
            .unwrap_or(1)
    };
    (start('-'), start('+'))
}

/// Lines of one side waiting for their partners on the other.
type Pending<'a> = Vec<(usize, &'a str)>;

/// Pairs the removed and added lines of one change in order, row by row.
fn flush<'a>(rows: &mut Vec<Row<'a>>, removed: &mut Pending<'a>, added: &mut Pending<'a>) {
    let pairs = removed.len().max(added.len());
    for i in 0..pairs {
        rows.push(Row::Changed(removed.get(i).copied(), added.get(i).copied()));
    }
    removed.clear();
    added.clear();
}

/// The rows of a unified diff. Removed and added lines of one change are
/// paired in order, so an edited line sits beside what it became.
fn rows(unified: &str) -> Vec<Row<'_>> {
    let mut rows = Vec::new();
    let (mut removed, mut added) = (Pending::new(), Pending::new());
    let (mut left, mut right) = (0, 0);
    let mut in_hunk = false;
    for line in unified.lines() {
        if line.starts_with("@@") {
            flush(&mut rows, &mut removed, &mut added);
            (left, right) = hunk_starts(line);
            rows.push(Row::Hunk(line));
            in_hunk = true;
            continue;
        }
        // Before the first hunk come the `---`/`+++` labels.
        if !in_hunk {
            continue;
        }
        // Inside a hunk every line starts with its one-byte mark.
        let text = line.get(1..).unwrap_or("");
        match line.chars().next() {
            Some('-') => {
                // A removal after additions starts a new change.
                if !added.is_empty() {
                    flush(&mut rows, &mut removed, &mut added);
                }
                removed.push((left, text));
                left += 1;
            }
            Some('+') => {
                added.push((right, text));
                right += 1;
            }
            // `\ No newline at end of file` says nothing a reader misses here.
            Some('\\') => {}
            _ => {
                flush(&mut rows, &mut removed, &mut added);
                rows.push(Row::Same(left, right, text));
                (left, right) = (left + 1, right + 1);
            }
        }
    }
    flush(&mut rows, &mut removed, &mut added);
    rows
}

/// The label of one side (`--- dev/DEFAULT_GROUP/app.json@2`), if the diff has it.
fn label<'a>(unified: &'a str, mark: &str) -> &'a str {
    unified
        .lines()
        .take(2)
        .find_map(|l| l.strip_prefix(mark))
        .unwrap_or("")
}

fn side(side: Side<'_>, class: &str) -> Markup {
    html! {
        @match side {
            Some((number, text)) => { td.num { (number) } td class=(class) { (text) } },
            None => { td.num {} td.blank {} },
        }
    }
}

/// `unified` side by side, as table `#{id}`; a line saying so when it is empty.
pub fn side_by_side(id: &str, unified: &str) -> Markup {
    if unified.is_empty() {
        return html! { p.muted id=(id) { "The content is the same on both sides." } };
    }
    html! {
        table.diff id=(id) {
            colgroup { col.line; col; col.line; col; }
            thead { tr {
                th.num scope="col" {} th scope="col" { (label(unified, "--- ")) }
                th.num scope="col" {} th scope="col" { (label(unified, "+++ ")) }
            } }
            tbody {
                @for row in rows(unified) {
                    @match row {
                        Row::Hunk(header) => tr.hunk { td colspan="4" { (header) } },
                        Row::Same(l, r, text) => tr {
                            td.num { (l) } td.same { (text) } td.num { (r) } td.same { (text) }
                        },
                        Row::Changed(old, new) => tr { (side(old, "removed")) (side(new, "added")) },
                    }
                }
            }
        }
    }
}

/// `?from=&to=` of the page, as typed (the API reads the numbers).
#[derive(Debug, Default, Deserialize)]
pub struct Versions {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// `GET /ui/config/{env}/keys/{group}/{key}/diff?from=&to=`: two versions
/// side by side (by default the current one and the one before it).
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    Path((env, group, key)): Path<(String, String, String)>,
    Query(versions): Query<Versions>,
) -> Response {
    let title = format!("{env} · {group}/{key} · diff");
    let query: Vec<String> = [("from", &versions.from), ("to", &versions.to)]
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(name, v)| format!("{name}={}", segment(v.trim())))
        .collect();
    let path = format!("{}/diff?{}", key_api(&env, &group, &key), query.join("&"));
    let diff: ConfigDiff = match api.get_as(&path, &credential).await {
        Ok(diff) => diff,
        Err(unread) => return unread.page(&session, HERE, &title),
    };
    let editor = key_href(&env, &group, &key);
    let body = html! {
        p { a href=(env_href(&env)) { "← " (env) } " · " a href=(editor) id="editor-link" { (group) "/" (key) } }
        form.search method="get" action={(editor) "/diff"} {
            label for="from" { "Version" }
            input.short id="from" name="from" inputmode="numeric" value=(diff.from);
            label for="to" { "against version" }
            input.short id="to" name="to" inputmode="numeric" value=(diff.to);
            button type="submit" { "Compare" }
        }
        p.muted id="diff-versions" { "Version " (diff.from) " (left) against version " (diff.to) " (right)." }
        (side_by_side("diff", &diff.unified))
    };
    (StatusCode::OK, layout::page(&session, HERE, &title, body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_line_sits_beside_what_it_became() {
        let unified = "--- dev/g/a@1\n+++ dev/g/a@2\n@@ -1,4 +1,4 @@\n a\n-b\n-c\n+B\n d\n+e\n";
        assert_eq!(
            rows(unified),
            [
                Row::Hunk("@@ -1,4 +1,4 @@"),
                Row::Same(1, 1, "a"),
                Row::Changed(Some((2, "b")), Some((2, "B"))),
                Row::Changed(Some((3, "c")), None),
                Row::Same(4, 3, "d"),
                Row::Changed(None, Some((4, "e"))),
            ]
        );
        assert_eq!(label(unified, "--- "), "dev/g/a@1");
        assert_eq!(label(unified, "+++ "), "dev/g/a@2");
    }

    #[test]
    fn a_new_file_numbers_from_one_and_a_missing_newline_is_dropped() {
        let unified = "--- /dev/null\n+++ x@1\n@@ -0,0 +1,2 @@\n+--- not a label\n+y\n\\ No newline at end of file\n";
        assert_eq!(
            rows(unified)[1..],
            [
                Row::Changed(None, Some((1, "--- not a label"))),
                Row::Changed(None, Some((2, "y"))),
            ]
        );
        let html = side_by_side("d", unified).into_string();
        assert!(html.contains(r#"<td class="added">y</td>"#), "{html}");
        assert!(
            side_by_side("d", "")
                .into_string()
                .contains("the same on both sides")
        );
    }
}
