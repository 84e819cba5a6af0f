//! `docs/errors.md` lists exactly the codes of the console's and the
//! gateway's error tables, so clients reading the docs see what is sent. Regenerate with
//! `AUTOGLM_UPDATE_DOCS=1 cargo test -p autoglm-core --test errors_doc`.

use autoglm_core::error::{ErrorCode, GatewayCode, PROBLEM_TYPE_BASE};

/// One table row a code, each with an anchor to link to.
fn rows<'a>(out: &mut String, anchor: &str, codes: impl Iterator<Item = (&'a str, u16, &'a str)>) {
    for (code, status, title) in codes {
        out.push_str(&format!(
            "| <a id=\"{anchor}{code}\"></a>`{code}` | {status} | {title} |\n"
        ));
    }
}

fn render() -> String {
    let mut out = String::from(
        "# Error codes\n\n\
         Every error the console API returns is an RFC 9457 `application/problem+json` document:\n\n\
         ```json\n{\"type\": \"https://autoglm.io/problems/invalid_name\", \"title\": \"A name is not valid\", \"status\": 422,\n \
         \"detail\": \"model name \\\"../x\\\" contains '.'; use lower-case letters, digits and '-'\",\n \
         \"code\": \"invalid_name\", \"request_id\": \"…\"}\n```\n\n\
         Match on `code`; it keeps its meaning and status. `detail` is for people and may change.\n\
         An `invalid_body` refusal of a manifest also lists each refused field in `errors`, e.g.\n\
         `[{\"path\": \"spec.versions[1].version\", \"message\": \"model \\\"chat\\\" has no version \\\"7\\\"; …\"}]`.\n\
         This table is generated from `crates/autoglm-core/src/error.rs` and checked by a test.\n\n\
         | code | status | title |\n|---|---|---|\n",
    );
    rows(
        &mut out,
        "",
        ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str(), c.status(), c.title())),
    );
    out.push_str(&format!(
        "\nThe `type` of each problem is `{PROBLEM_TYPE_BASE}` followed by the code.\n"
    ));
    out.push_str(
        "\n## Gateway error codes\n\n\
         The gateway (`/v1/...` and `/v2/...`) answers its own refusals in the shape each protocol's\n\
         clients parse: OpenAI's `{\"error\": {\"message\", \"type\", \"param\", \"code\"}}` on `/v1/`, the\n\
         Open Inference Protocol's `{\"error\": \"...\"}` on `/v2/`. Match on `code`; it keeps its meaning\n\
         and status. A replica's own answers pass through unchanged. This table is generated from\n\
         `GatewayCode` in the same file and checked by the same test.\n\n\
         | code | status | title |\n|---|---|---|\n",
    );
    rows(
        &mut out,
        "gateway-",
        GatewayCode::ALL
            .iter()
            .map(|c| (c.as_str(), c.status(), c.title())),
    );
    out
}

#[test]
fn docs_errors_md_matches_the_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/errors.md");
    let expected = render();
    if std::env::var_os("AUTOGLM_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).expect("write docs/errors.md");
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/errors.md is out of date; run AUTOGLM_UPDATE_DOCS=1 cargo test -p autoglm-core --test errors_doc"
    );
}
