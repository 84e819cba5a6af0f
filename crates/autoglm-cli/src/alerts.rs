//! Alerts from the command line: `autoglm get alerts` (the series pending or
//! firing now), `autoglm get alertrules` (each rule with its state) and
//! `autoglm get incidents [ID]` (newest first; one with its timeline).

use autoglm_core::alert::{ActiveAlert, Incident};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::client::{Client, ClientError};
use crate::output::{NONE, age, pretty_json, print_stderr, print_stdout, render_table, sanitize};
use crate::{ClientArgs, OutputFormat};

/// What `get` lists of the alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// Pending and firing series.
    Alerts,
    /// Rules with their state.
    Rules,
    /// Incidents.
    Incidents,
}

fn items(page: Value) -> Vec<Value> {
    match page {
        Value::Object(mut o) => match o.remove("items") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn decode<T: serde::de::DeserializeOwned>(values: &[Value]) -> Result<Vec<T>, ClientError> {
    values
        .iter()
        .map(|v| serde_json::from_value(v.clone()).map_err(|e| ClientError::Decode(e.to_string())))
        .collect()
}

/// `autoglm get alerts|alertrules|incidents [NAME]`.
pub async fn get(args: &ClientArgs, listed: Listed, name: Option<&str>) -> Result<(), ClientError> {
    let client = Client::new(args)?;
    let path: Vec<&str> = match (listed, name) {
        (Listed::Alerts, _) => vec!["api", "v1", "alerts"],
        (Listed::Rules, None) => vec!["api", "v1", "alerts", "rules"],
        (Listed::Rules, Some(n)) => vec!["api", "v1", "alerts", "rules", n],
        (Listed::Incidents, None) => vec!["api", "v1", "incidents"],
        (Listed::Incidents, Some(id)) => vec!["api", "v1", "incidents", id],
    };
    let answer = client.get_json(client.url(&path)?).await?;
    let one = name.is_some() && listed != Listed::Alerts;
    let values = if one { vec![answer] } else { items(answer) };
    if args.output != OutputFormat::Table {
        if !one && args.output == OutputFormat::Json {
            print_stdout(&pretty_json(&Value::Array(values)));
        } else {
            crate::resource::print_documents(args.output, values);
        }
        return Ok(());
    }
    let now = Utc::now();
    let table = match listed {
        Listed::Alerts => alerts_table(&decode(&values)?, now),
        Listed::Rules => rules_table(&values),
        Listed::Incidents if one => timeline_table(&decode::<Incident>(&values)?[0]),
        Listed::Incidents => incidents_table(&decode(&values)?, now),
    };
    match table {
        Some(t) => print_stdout(&t),
        None => print_stderr("No resources found."),
    }
    Ok(())
}

fn value(v: Option<f64>) -> String {
    v.map_or(NONE.to_owned(), |v| format!("{v:.4}"))
}

/// The `get alerts` table.
pub fn alerts_table(alerts: &[ActiveAlert], now: DateTime<Utc>) -> Option<String> {
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            vec![
                sanitize(&a.rule),
                sanitize(&a.service),
                sanitize(&a.version),
                a.state.clone(),
                value(a.value),
                age(a.since, now),
                a.silenced_by
                    .map_or(NONE.to_owned(), |s| format!("silence {s}")),
            ]
        })
        .collect();
    (!rows.is_empty()).then(|| {
        render_table(
            &[
                "RULE", "SERVICE", "VERSION", "STATE", "VALUE", "SINCE", "SILENCED",
            ],
            &rows,
        )
    })
}

fn rules_table(rules: &[Value]) -> Option<String> {
    let text = |v: &Value| sanitize(v.as_str().unwrap_or(NONE));
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            vec![
                text(&r["name"]),
                r["service"].as_str().map_or("*".to_owned(), sanitize),
                text(&r["metric"]),
                text(&r["condition"]),
                r["for"].as_str().map_or("0s".to_owned(), sanitize),
                text(&r["state"]),
            ]
        })
        .collect();
    (!rows.is_empty()).then(|| {
        render_table(
            &["NAME", "SERVICE", "METRIC", "CONDITION", "FOR", "STATE"],
            &rows,
        )
    })
}

/// The `get incidents` table.
pub fn incidents_table(incidents: &[Incident], now: DateTime<Utc>) -> Option<String> {
    let rows: Vec<Vec<String>> = incidents
        .iter()
        .map(|i| {
            vec![
                i.id.to_string(),
                sanitize(&i.rule),
                sanitize(&i.service),
                sanitize(&i.version),
                i.severity.clone(),
                i.state.as_str().to_owned(),
                age(i.opened_at, now),
                i.seconds_to_resolve
                    .map_or(NONE.to_owned(), |s| format!("{s:.1}s")),
            ]
        })
        .collect();
    (!rows.is_empty()).then(|| {
        render_table(
            &[
                "ID",
                "RULE",
                "SERVICE",
                "VERSION",
                "SEVERITY",
                "STATE",
                "AGE",
                "RESOLVED IN",
            ],
            &rows,
        )
    })
}

/// One incident's timeline, oldest first.
pub fn timeline_table(incident: &Incident) -> Option<String> {
    let rows: Vec<Vec<String>> = incident
        .timeline
        .iter()
        .map(|e| {
            vec![
                e.at.format("%H:%M:%S%.3f").to_string(),
                e.kind.as_str().to_owned(),
                sanitize(&e.actor),
                e.task_id.map_or(NONE.to_owned(), |t| t.to_string()),
                sanitize(&e.message),
            ]
        })
        .collect();
    Some(render_table(
        &["TIME", "EVENT", "BY", "TASK", "MESSAGE"],
        &rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::BTreeMap;

    #[test]
    fn alerts_and_incidents_read_like_kubectl_tables() {
        let now = Utc.timestamp_opt(1_800_000_100, 0).unwrap();
        let alert = ActiveAlert {
            rule: "errors".into(),
            service: "chat".into(),
            version: "2".into(),
            state: "firing".into(),
            since: now - chrono::Duration::seconds(90),
            fired_at: Some(now),
            value: Some(0.25),
            labels: BTreeMap::new(),
            silenced_by: Some(3),
        };
        let table = alerts_table(&[alert], now).unwrap();
        assert_eq!(
            table.lines().collect::<Vec<_>>(),
            [
                "RULE     SERVICE   VERSION   STATE    VALUE    SINCE   SILENCED",
                "errors   chat      2         firing   0.2500   1m      silence 3",
            ]
        );
        assert_eq!(alerts_table(&[], now), None);
        let rules = rules_table(&[
            serde_json::json!({"name": "down", "metric": "replicasUnavailable",
            "condition": "result >= 1", "state": "inactive"}),
        ])
        .unwrap();
        assert!(
            rules
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("down   *         replicasUnavailable   result >= 1   0s    inactive"),
            "{rules}"
        );
    }
}
