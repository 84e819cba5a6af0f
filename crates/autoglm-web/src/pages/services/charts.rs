//! Charts of a service's last hour, drawn as inline SVG from the gateway's
//! traffic history: one line per version, named at its end (no legend to
//! hunt for), and beside each chart the same numbers per minute in a table.

use autoglm_core::traffic::{INTERVAL_SECONDS, ServiceTraffic, TrafficPoint};
use chrono::{DateTime, Duration, Timelike, Utc};
use maud::{Markup, html};

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 150.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 64.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 20.0;

/// Line colours by version order, told apart by more than hue: each also
/// has its own dash pattern.
const STROKES: [(&str, &str); 4] = [
    ("#1f6feb", ""),
    ("#bf3989", "6 3"),
    ("#1a7f37", "2 2"),
    ("#9a6700", "8 3 2 3"),
];

/// What one chart shows of a point, how its values read, and how the
/// intervals of a minute sum up in its table.
struct Measure {
    id: &'static str,
    title: &'static str,
    unit: &'static str,
    value: fn(&TrafficPoint) -> Option<f64>,
    format: fn(f64) -> String,
    minute: Minute,
}

/// How a minute's intervals make one number.
#[derive(Clone, Copy)]
enum Minute {
    /// Requests per second over the minute.
    Rate,
    /// The worst interval (a percentile of percentiles would mean nothing).
    Worst,
    /// Errors over requests, all intervals together.
    ErrorShare,
}

const MEASURES: [Measure; 5] = [
    Measure {
        id: "rate",
        title: "Requests per second",
        unit: "req/s",
        value: |p| Some(p.requests_per_second),
        format: |v| format!("{v:.2}"),
        minute: Minute::Rate,
    },
    Measure {
        id: "p50",
        title: "Latency, median",
        unit: "ms",
        value: |p| p.p50_seconds.map(|s| s * 1000.0),
        format: |v| format!("{v:.1}"),
        minute: Minute::Worst,
    },
    Measure {
        id: "p95",
        title: "Latency, 95th percentile",
        unit: "ms",
        value: |p| p.p95_seconds.map(|s| s * 1000.0),
        format: |v| format!("{v:.1}"),
        minute: Minute::Worst,
    },
    Measure {
        id: "p99",
        title: "Latency, 99th percentile",
        unit: "ms",
        value: |p| p.p99_seconds.map(|s| s * 1000.0),
        format: |v| format!("{v:.1}"),
        minute: Minute::Worst,
    },
    Measure {
        id: "errors",
        title: "Errors (5xx share of requests)",
        unit: "%",
        value: |p| (p.requests > 0).then_some(p.error_ratio * 100.0),
        format: |v| format!("{v:.1}"),
        minute: Minute::ErrorShare,
    },
];

/// The charts of a service's traffic (rate, latency percentiles, errors),
/// each with its table.
pub fn charts(traffic: &ServiceTraffic, now: DateTime<Utc>) -> Markup {
    if traffic.versions.iter().all(|v| v.points.is_empty()) {
        return html! { p.empty id="no-traffic" { "No traffic through the gateway in the last hour." } };
    }
    html! {
        div.charts { @for measure in &MEASURES { (chart(measure, traffic, now)) } }
    }
}

fn x_of(at: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    let age = (now - at).num_milliseconds() as f64 / 3_600_000.0;
    LEFT + (WIDTH - LEFT - RIGHT) * (1.0 - age.clamp(0.0, 1.0))
}

/// One version's line: its SVG path, its stroke, and its name and latest
/// value where the line ends.
struct Line {
    path: String,
    /// Points with no neighbour, which a path alone would not show.
    dots: Vec<(f64, f64)>,
    colour: &'static str,
    dash: &'static str,
    label: Option<(f64, f64, String)>,
}

fn chart(measure: &Measure, traffic: &ServiceTraffic, now: DateTime<Utc>) -> Markup {
    let top = traffic
        .versions
        .iter()
        .flat_map(|v| v.points.iter().filter_map(measure.value))
        .fold(0.0_f64, f64::max);
    let scale = nice_ceiling(top);
    let y_of = |v: f64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - v / scale);
    let mut lines: Vec<Line> = traffic
        .versions
        .iter()
        .enumerate()
        .map(|(i, version)| {
            let (colour, dash) = STROKES[i % STROKES.len()];
            let at: Vec<Option<(f64, f64, f64)>> = version
                .points
                .iter()
                .map(|p| (measure.value)(p).map(|v| (x_of(p.at, now), y_of(v), v)))
                .collect();
            let mut path = String::new();
            let mut dots = Vec::new();
            for (i, point) in at.iter().enumerate() {
                let Some((x, y, _)) = point else { continue };
                let before = i > 0 && at[i - 1].is_some();
                let after = at.get(i + 1).is_some_and(Option::is_some);
                path.push_str(&format!("{}{x:.1},{y:.1} ", if before { "L" } else { "M" }));
                if !before && !after {
                    dots.push((*x, *y));
                }
            }
            let last = at
                .iter()
                .rev()
                .flatten()
                .next()
                .map(|(x, y, v)| (*x, *y, (measure.format)(*v)));
            Line {
                path,
                dots,
                colour,
                dash,
                label: last.map(|(x, y, v)| (x, y, format!("v{} {v}", version.version))),
            }
        })
        .collect();
    spread_labels(&mut lines);
    let summary = format!(
        "{}, last hour, per version, in {}",
        measure.title, measure.unit
    );
    html! {
        figure.chart id={"chart-" (measure.id)} {
            figcaption { (measure.title) " " span.muted { "(" (measure.unit) ", last hour)" } }
            div.chart-body {
                svg viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img" aria-label=(summary) {
                    @for tick in [0.0, 0.5, 1.0] {
                        @let y = y_of(scale * tick);
                        line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y) y2=(y) stroke="#d9dee4" {}
                        text x=(LEFT - 4.0) y=(y + 4.0) text-anchor="end" { ((measure.format)(scale * tick)) }
                    }
                    text x=(LEFT) y=(HEIGHT - 4.0) { "−60 min" }
                    text x=(WIDTH - RIGHT) y=(HEIGHT - 4.0) text-anchor="end" { "now" }
                    @for line in &lines {
                        path d=(line.path) fill="none" stroke=(line.colour) stroke-width="2" stroke-dasharray=(line.dash) {}
                        @for (x, y) in &line.dots {
                            circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="2" fill=(line.colour) {}
                        }
                        @if let Some((x, y, text)) = &line.label {
                            text x=(x + 4.0) y=(y + 4.0) fill=(line.colour) { (text) }
                        }
                    }
                }
                (table(measure, traffic, now))
            }
        }
    }
}

/// Moves the names at the lines' ends apart so that none overlaps another.
fn spread_labels(lines: &mut [Line]) {
    const GAP: f64 = 12.0;
    let mut order: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].label.is_some())
        .collect();
    order.sort_by(|a, b| {
        let y = |i: &usize| lines[*i].label.as_ref().map_or(0.0, |l| l.1);
        y(a).total_cmp(&y(b))
    });
    let mut floor = f64::MIN;
    for i in order {
        if let Some(label) = lines[i].label.as_mut() {
            label.1 = label.1.max(floor);
            floor = label.1 + GAP;
        }
    }
}

/// The chart's numbers per minute (the mean of its intervals), newest first.
fn table(measure: &Measure, traffic: &ServiceTraffic, now: DateTime<Utc>) -> Markup {
    let minute = |at: DateTime<Utc>| at.with_second(0).and_then(|t| t.with_nanosecond(0));
    let mut minutes: Vec<DateTime<Utc>> = traffic
        .versions
        .iter()
        .flat_map(|v| v.points.iter().filter_map(|p| minute(p.at)))
        .filter(|m| now - *m <= Duration::hours(1))
        .collect();
    minutes.sort_unstable_by(|a, b| b.cmp(a));
    minutes.dedup();
    html! {
        details.chart-table {
            summary { "Table" }
            table id={"table-" (measure.id)} {
                thead { tr {
                    th scope="col" { "Minute (UTC)" @if matches!(measure.minute, Minute::Worst) { br; span.muted { "worst 10 s" } } }
                    @for v in &traffic.versions { th.num scope="col" { "v" (v.version) " (" (measure.unit) ")" } }
                } }
                tbody {
                    @for m in &minutes {
                        tr {
                            th scope="row" { (m.format("%H:%M")) }
                            @for v in &traffic.versions {
                                @let points: Vec<&TrafficPoint> = v.points.iter()
                                    .filter(|p| minute(p.at) == Some(*m))
                                    .collect();
                                td.num {
                                    @match summarise(measure, &points) {
                                        Some(value) => ((measure.format)(value)),
                                        None => "–",
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One number for a minute's intervals of one version.
fn summarise(measure: &Measure, points: &[&TrafficPoint]) -> Option<f64> {
    let requests: u64 = points.iter().map(|p| p.requests).sum();
    match measure.minute {
        Minute::Rate => (!points.is_empty())
            .then(|| requests as f64 / (points.len() as f64 * INTERVAL_SECONDS as f64)),
        Minute::Worst => points
            .iter()
            .filter_map(|p| (measure.value)(p))
            .reduce(f64::max),
        Minute::ErrorShare => (requests > 0)
            .then(|| 100.0 * points.iter().map(|p| p.errors).sum::<u64>() as f64 / requests as f64),
    }
}

/// The smallest of 1, 2 or 5 times a power of ten at or above `v`, so axis
/// labels read as round numbers.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * power)
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoglm_core::traffic::{IntervalCounts, VersionTraffic};

    #[test]
    fn a_minute_sums_up_by_requests_not_by_interval() {
        let now = Utc::now();
        let mut one_failure = IntervalCounts::default();
        one_failure.record(500, 0.01);
        let mut many_fine = IntervalCounts::default();
        for _ in 0..999 {
            many_fine.record(200, 2.0);
        }
        let points = [one_failure.point(now), many_fine.point(now)];
        let points: Vec<&TrafficPoint> = points.iter().collect();
        let [rate, _, p95, _, errors] = &MEASURES;
        assert!(
            (summarise(errors, &points).unwrap() - 0.1).abs() < 1e-9,
            "1 of 1,000 requests"
        );
        assert!(
            (summarise(rate, &points).unwrap() - 50.0).abs() < 1e-9,
            "1,000 requests over 20 s"
        );
        assert!(
            summarise(p95, &points).unwrap() > 1000.0,
            "the worst interval's p95, in ms"
        );
        assert_eq!(summarise(errors, &[]), None);
    }

    #[test]
    fn a_lone_point_is_drawn_as_a_dot() {
        let now = Utc::now();
        let mut counts = IntervalCounts::default();
        counts.record(200, 0.01);
        let traffic = ServiceTraffic {
            interval_seconds: 10,
            versions: vec![VersionTraffic {
                version: "1".into(),
                points: vec![counts.point(now)],
            }],
        };
        assert!(charts(&traffic, now).into_string().contains("<circle"));
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(0.04), 0.05);
    }

    #[test]
    fn each_version_is_drawn_and_named_and_tabled() {
        let now = Utc::now();
        let mut counts = IntervalCounts::default();
        for _ in 0..50 {
            counts.record(200, 0.01);
        }
        let traffic = ServiceTraffic {
            interval_seconds: 10,
            versions: ["1", "2"]
                .into_iter()
                .map(|version| VersionTraffic {
                    version: version.into(),
                    points: vec![counts.point(now - Duration::seconds(20)), counts.point(now)],
                })
                .collect(),
        };
        let html = charts(&traffic, now).into_string();
        assert_eq!(html.matches("<figure").count(), MEASURES.len());
        assert!(
            html.contains("v1 5.00") && html.contains("v2 5.00"),
            "{html}"
        );
        assert!(html.contains(r#"id="table-rate""#));
        let empty = ServiceTraffic {
            interval_seconds: 10,
            versions: vec![],
        };
        assert!(charts(&empty, now).into_string().contains("no-traffic"));
    }
}
