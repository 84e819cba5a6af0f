//! Prometheus exposition formats for every `/metrics` of autoglm.
//!
//! `prometheus-client` writes OpenMetrics text only, where a counter family
//! is named without `_total` (`# TYPE x counter`, sample `x_total`) and the
//! page ends in `# EOF`. A scraper that did not ask for OpenMetrics (curl,
//! `promtool check metrics`, older agents) reads the classic text format
//! 0.0.4, where the family is named as its samples are. As Prometheus' own
//! client libraries do, a server answers OpenMetrics only to an `Accept`
//! that names `application/openmetrics-text`, and the classic format to
//! everything else; [`Format::negotiate`] picks, [`Format::render`] writes.

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// The classic Prometheus text format, version 0.0.4.
    Text,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` with a non-zero quality, else text.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let asks_openmetrics = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or_default();
                media.eq_ignore_ascii_case("application/openmetrics-text")
                    && !parts.any(|p| {
                        p.strip_prefix("q=")
                            .and_then(|q| q.parse::<f32>().ok())
                            .is_some_and(|q| q <= 0.0)
                    })
            })
        });
        if asks_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The `Content-Type` of a page in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// `openmetrics` (a page as `prometheus-client` writes it) in this format.
    pub fn render(self, openmetrics: String) -> String {
        match self {
            Format::OpenMetrics => openmetrics,
            Format::Text => classic_text(&openmetrics),
        }
    }
}

/// The classic text format of an OpenMetrics page: counter families take
/// their samples' `_total` name, `info` families become gauges named
/// `_info`, `unknown` becomes `untyped`; `# UNIT`, `# EOF`, `_created`
/// samples and exemplars go, since the classic format has none of them.
pub fn classic_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // The family being written, and a HELP line (name, text) held until
    // the TYPE line after it tells the name the family takes.
    let mut family = "";
    let mut held_help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "unknown" => ("", "untyped"),
                other => ("", other),
            };
            family = name;
            if let Some((help_name, text)) = held_help.take() {
                let help_name = if help_name == name {
                    format!("{name}{suffix}")
                } else {
                    help_name.to_owned()
                };
                out.push_str(&format!("# HELP {help_name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name}{suffix} {kind}\n"));
            continue;
        }
        if let Some((name, text)) = held_help.take() {
            out.push_str(&format!("# HELP {name} {text}\n"));
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            held_help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let sample_name = line.split(['{', ' ']).next().unwrap_or_default();
        if sample_name.strip_prefix(family) == Some("_created") {
            continue;
        }
        // An exemplar follows the value after " # ".
        let sample = line.split_once(" # ").map_or(line, |(sample, _)| sample);
        out.push_str(sample);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "\
# HELP autoglm_requests Requests answered.
# TYPE autoglm_requests counter
autoglm_requests_total{code=\"200\"} 3
autoglm_requests_created{code=\"200\"} 1700000000.0
# HELP autoglm_seconds Time taken.
# TYPE autoglm_seconds histogram
# UNIT autoglm_seconds seconds
autoglm_seconds_sum 0.5
autoglm_seconds_count 2
autoglm_seconds_bucket{le=\"+Inf\"} 2 # {trace_id=\"ab\"} 0.4
# HELP autoglm_build Build.
# TYPE autoglm_build info
autoglm_build_info{version=\"1\"} 1
# HELP autoglm_ready Ready replicas.
# TYPE autoglm_ready gauge
autoglm_ready 2
# EOF
";

    #[test]
    fn counters_take_their_samples_name_and_openmetrics_only_lines_go() {
        assert_eq!(
            classic_text(PAGE),
            "\
# HELP autoglm_requests_total Requests answered.
# TYPE autoglm_requests_total counter
autoglm_requests_total{code=\"200\"} 3
# HELP autoglm_seconds Time taken.
# TYPE autoglm_seconds histogram
autoglm_seconds_sum 0.5
autoglm_seconds_count 2
autoglm_seconds_bucket{le=\"+Inf\"} 2
# HELP autoglm_build_info Build.
# TYPE autoglm_build_info gauge
autoglm_build_info{version=\"1\"} 1
# HELP autoglm_ready Ready replicas.
# TYPE autoglm_ready gauge
autoglm_ready 2
"
        );
    }

    #[test]
    fn openmetrics_is_sent_only_to_who_asks_for_it() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0, text/plain")),
            Format::Text
        );
        assert_eq!(Format::OpenMetrics.render(PAGE.into()), PAGE);
        assert!(Format::Text.content_type().contains("version=0.0.4"));
    }
}
