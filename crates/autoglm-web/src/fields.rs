//! A refused form, field by field: the API names each wrong field by its
//! path (`spec.versions[0].weight`, `condition`), and a form shows each
//! refusal beside the field it concerns and the rest above the form, so
//! every form reads the API's problems the same way.

use maud::{Markup, html};
use serde_json::Value;

/// A refusal of one field: the API's path for it and the words.
pub type FieldErrors = Vec<(String, String)>;

/// A form's fields, each by the id it shows its refusals under, with the
/// API paths it covers.
pub type Fields = [(&'static str, &'static [&'static str])];

/// The refusals of an API problem, field by field.
pub fn of_problem(problem: &Value) -> FieldErrors {
    problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["path"].as_str().unwrap_or_default().to_owned(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Whether an API error at `path` concerns one of `paths` or a part of it
/// (`spec.versions` covers `spec.versions[0].weight`).
fn covers(paths: &[&str], path: &str) -> bool {
    paths.iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    })
}

/// The refusals of field `id` of `fields`, to show beside it (as
/// `#error-{id}`, which the field names in its `aria-describedby`).
pub fn beside(errors: &FieldErrors, fields: &Fields, id: &str) -> Markup {
    let paths = fields
        .iter()
        .find(|(f, _)| *f == id)
        .map_or(&[][..], |(_, p)| *p);
    let words: Vec<&str> = errors
        .iter()
        .filter(|(path, _)| covers(paths, path))
        .map(|(_, message)| message.as_str())
        .collect();
    html! {
        @if !words.is_empty() {
            p.field-error role="alert" id={"error-" (id)} { (words.join("; ")) }
        }
    }
}

/// The refusals no field of `fields` shows.
pub fn others<'a>(errors: &'a FieldErrors, fields: &Fields) -> Vec<&'a str> {
    errors
        .iter()
        .filter(|(path, _)| !fields.iter().any(|(_, paths)| covers(paths, path)))
        .map(|(_, message)| message.as_str())
        .collect()
}

/// Above a refused form (as `#{id}`): what the API said of it as a whole,
/// and the refusals no field shows.
pub fn summary(id: &str, summary: &str, errors: &FieldErrors, fields: &Fields) -> Markup {
    html! {
        div.error role="alert" id=(id) {
            p { (summary) }
            @for line in others(errors, fields) { p { (line) } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: [(&str, &[&str]); 2] = [("versions", &["spec.versions"]), ("for", &["for"])];

    #[test]
    fn a_refusal_is_shown_beside_the_field_whose_path_it_is_in() {
        let errors: FieldErrors = vec![
            ("spec.versions[0].weight".into(), "not a number".into()),
            ("format".into(), "unknown".into()),
            ("spec.model".into(), "missing".into()),
        ];
        let html = beside(&errors, &FIELDS, "versions").into_string();
        assert!(
            html.contains(r#"id="error-versions""#) && html.contains("not a number"),
            "{html}"
        );
        assert!(
            beside(&errors, &FIELDS, "for").into_string().is_empty(),
            "`for` does not cover `format`"
        );
        assert_eq!(others(&errors, &FIELDS), ["unknown", "missing"]);
    }
}
