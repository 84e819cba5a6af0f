//! Alerts that heal, on the local platform with real replicas and real
//! traffic through the gateway: a version failing 30% of its requests fires
//! its error-ratio rule after its `for`, the rollback playbook moves its
//! traffic to the stable version, the errors stop, the alert resolves and the
//! incident closes (timeline in order, MTTR recorded); a replica killed again
//! and again gets the restart step, then the cooldown, then scale-out; a
//! receiver that is down gets its retries and a dead letter while the
//! evaluator goes on; a real Alertmanager feeds the receiver endpoint; bad
//! rules and silences are refused with their field paths and store nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Local, UPSTREAM};
use parking_lot::Mutex;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A webhook receiver on loopback: keeps every JSON body POSTed to it and
/// answers `status`.
struct Hook {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

async fn hook(status: u16) -> Hook {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, length) = loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                        break (end + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                if let Ok(body) = serde_json::from_slice(&buf[head_end..head_end + length]) {
                    kept.lock().push(body);
                }
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    Hook { url, bodies }
}

/// Deploys `echo` with `versions` (version, weight) and `env`, and waits for its task.
async fn deploy(env: &Local, versions: Value, replicas: u32, vars: Value) {
    let task = env
        .start_task(
            Method::POST,
            "/api/v1/services",
            Some(json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService", "metadata": {"name": "echo"},
                "spec": {"model": "echo", "versions": versions, "replicas": replicas,
                         "runtime": {"command": {"command": ["python3", UPSTREAM, "{port}", "{version}", "{name}"]}},
                         "env": vars}})),
        )
        .await;
    let done = env.final_task(&task["id"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
}

async fn create_rule(env: &Local, rule: Value) {
    let (s, body) = env
        .call(Method::POST, "/api/v1/alerts/rules", Some(rule))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["state"], "inactive", "{body}");
}

/// The rule's incidents, newest first, once `done` holds of them.
async fn incidents_when(
    env: &Local,
    rule: &str,
    within: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let (s, list) = env
            .call(Method::GET, &format!("/api/v1/incidents?rule={rule}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{list}");
        let items = list["items"].as_array().unwrap().clone();
        if done(&items) {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "incidents of {rule} within {within:?}: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn incident(env: &Local, id: &Value) -> Value {
    let (s, body) = env
        .call(Method::GET, &format!("/api/v1/incidents/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body
}

fn kinds(incident: &Value) -> Vec<String> {
    incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn at(incident: &Value, kind: &str) -> chrono::DateTime<chrono::Utc> {
    let entry = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {incident}"));
    entry["at"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_version_failing_30_percent_is_moved_off_by_its_playbook_and_the_incident_closes() {
    let home = tempfile::tempdir().unwrap();
    let env = Local::start(home.path());
    env.echo_model(2).await;
    deploy(
        &env,
        json!([{"version": "1", "weight": 70}, {"version": "2", "weight": 30}]),
        1,
        json!([{"name": "FAIL_RATIO", "value": "2:0.3"}]),
    )
    .await;
    let receiver = hook(200).await;
    create_rule(
        &env,
        json!({"name": "canary-errors", "service": "echo", "metric": "errorRatio",
               "condition": "result > 0.1", "window": "10s", "for": "10s", "severity": "critical",
               "annotations": {"summary": "a version fails too many requests"},
               "receivers": [{"webhook": {"url": receiver.url}}],
               "playbook": {"steps": [{"rollback": {}}]}}),
    )
    .await;
    let running = Arc::new(AtomicBool::new(true));
    let traffic = env.traffic(running.clone());
    let resolved = incidents_when(&env, "canary-errors", Duration::from_secs(120), |items| {
        items.first().is_some_and(|i| i["state"] == "resolved")
    })
    .await;
    running.store(false, Ordering::Relaxed);
    let seen = traffic.await.unwrap();
    assert_eq!(resolved.len(), 1, "one incident: {resolved:?}");
    let closed = incident(&env, &resolved[0]["id"]).await;
    assert_eq!(closed["service"], "echo");
    assert_eq!(closed["version"], "2", "the failing version: {closed}");
    assert_eq!(closed["severity"], "critical");

    // The timeline, in order.
    let kinds = kinds(&closed);
    let position = |k: &str| {
        kinds
            .iter()
            .position(|x| x == k)
            .unwrap_or_else(|| panic!("no {k}: {kinds:?}"))
    };
    assert_eq!(kinds[0], "fired", "{kinds:?}");
    assert!(
        position("playbookStarted") < position("playbookFinished"),
        "{kinds:?}"
    );
    assert!(
        position("playbookFinished") < position("resolved"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last().unwrap(),
        "notified",
        "the resolved notification is taken last: {kinds:?}"
    );
    assert!(
        position("notified") < position("resolved"),
        "the firing one before: {kinds:?}"
    );
    let finished = closed["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "playbookFinished")
        .unwrap();
    assert!(
        finished["message"].as_str().unwrap().contains("succeeded"),
        "{finished}"
    );

    // The playbook moved version 2's weight to version 1, as a task.
    let (_, service) = env.call(Method::GET, "/api/v1/services/echo", None).await;
    assert_eq!(
        service["spec"]["versions"],
        json!([{"version": "1", "weight": 100}, {"version": "2", "weight": 0}]),
        "{service}"
    );
    let task_id = finished["taskId"].clone();
    let (_, task) = env
        .call(Method::GET, &format!("/api/v1/tasks/{task_id}"), None)
        .await;
    assert_eq!(task["kind"], "trafficSplit", "{task}");
    assert_eq!(task["createdBy"], "system:alerts", "{task}");

    // Errors stopped once the split was applied: no 5xx after the task ended
    // (a request already in flight to version 2 may still have failed).
    let finished_at = at(&closed, "playbookFinished");
    let late_errors: Vec<_> = seen
        .iter()
        .filter(|(when, _, status)| {
            *status >= 500
                && chrono::Utc::now() - chrono::Duration::from_std(when.elapsed()).unwrap()
                    > finished_at + chrono::Duration::seconds(1)
        })
        .collect();
    assert!(
        late_errors.is_empty(),
        "errors after the playbook: {late_errors:?}"
    );
    assert!(
        seen.iter().any(|(_, v, s)| v == "2" && *s == 500),
        "version 2 did fail before"
    );

    // Fired after its `for`, acted on at once, resolved quickly.
    let fired = at(&closed, "fired");
    let started = at(&closed, "playbookStarted");
    assert!(
        started - fired < chrono::Duration::seconds(1),
        "the playbook starts within a second of firing: {closed}"
    );
    let mttr = closed["secondsToResolve"].as_f64().unwrap();
    println!(
        "MTTR {mttr:.1}s (fired {fired}, playbook started {started}, resolved {})",
        closed["resolvedAt"]
    );
    assert!(mttr < 30.0, "MTTR under 30 s: {closed}");
    let (_, rows) = env.call(Method::GET, "/api/v1/incidents/mttr", None).await;
    assert_eq!(rows["items"][0]["rule"], "canary-errors", "{rows}");
    assert_eq!(rows["items"][0]["resolved"], 1, "{rows}");

    // The receiver got Alertmanager's payload, firing then resolved.
    let bodies = receiver.bodies.lock().clone();
    let statuses: Vec<&str> = bodies
        .iter()
        .map(|b| b["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["firing", "resolved"], "{bodies:?}");
    assert_eq!(bodies[0]["version"], "4");
    assert_eq!(
        bodies[0]["alerts"][0]["labels"]["alertname"],
        "canary-errors"
    );
    assert_eq!(bodies[0]["alerts"][0]["labels"]["version"], "2");
    assert_eq!(
        bodies[0]["alerts"][0]["annotations"]["summary"],
        "a version fails too many requests"
    );
    assert_eq!(bodies[0]["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_ne!(bodies[1]["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");

    // The same from the command line.
    let listed = env.cli(&["get", "incidents"]);
    assert!(
        listed
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("canary-errors") && l.contains("resolved")),
        "{listed}"
    );
    let timeline = env.cli(&["get", "incident", &closed["id"].to_string()]);
    let events: Vec<&str> = timeline
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(events, kinds, "{timeline}");
    let rules = env.cli(&["get", "alertrules"]);
    assert!(
        rules.contains("canary-errors") && rules.contains("inactive"),
        "{rules}"
    );

    // Every state change is in the audit.
    let (_, audit) = env
        .call(Method::GET, "/api/v1/audit?actor=system:alerts", None)
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"alerts.fire") && actions.contains(&"alerts.resolve"),
        "{audit}"
    );
}

/// The pid of a ready replica of `echo`.
async fn ready_pid(env: &Local) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, service) = env.call(Method::GET, "/api/v1/services/echo", None).await;
        let ready = service["status"]["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["state"] == "ready")
            .and_then(|r| r["pid"].as_u64());
        if let Some(pid) = ready {
            return pid;
        }
        assert!(Instant::now() < deadline, "no ready replica: {service}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn kill(pid: u64) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -9 {pid}");
}

#[tokio::test]
async fn a_replica_killed_again_and_again_gets_a_restart_then_the_cooldown_then_scale_out() {
    let home = tempfile::tempdir().unwrap();
    let env = Local::start(home.path());
    env.echo_model(1).await;
    // Each replica takes 2 s to listen, so a killed one is missing for a while.
    deploy(
        &env,
        json!([{"version": "1", "weight": 100}]),
        1,
        json!([{"name": "START_DELAY_MS", "value": "2000"}]),
    )
    .await;
    create_rule(
        &env,
        json!({"name": "replica-down", "service": "echo", "metric": "replicasUnavailable",
               "condition": "result >= 1", "severity": "critical",
               "playbook": {"steps": [{"restart": {}}, {"scaleOut": {"by": 1, "max": 2}}],
                            "cooldown": "20s", "maxPerHour": 5}}),
    )
    .await;
    let resolved = |n: usize| {
        move |items: &[Value]| items.len() == n && items.iter().all(|i| i["state"] == "resolved")
    };
    let first_kill = Instant::now();
    kill(ready_pid(&env).await);
    let first = incidents_when(&env, "replica-down", Duration::from_secs(60), resolved(1)).await;
    // Killed again at once: the cooldown holds the playbook back.
    kill(ready_pid(&env).await);
    let second = incidents_when(&env, "replica-down", Duration::from_secs(60), resolved(2)).await;
    assert!(
        first_kill.elapsed() < Duration::from_secs(20),
        "the second firing fell within the cooldown"
    );
    // After the cooldown (from the first run), the next step of the escalation: scale out.
    let first_run = at(&incident(&env, &first[0]["id"]).await, "playbookStarted");
    let cooled = first_run + chrono::Duration::milliseconds(20_500) - chrono::Utc::now();
    tokio::time::sleep(cooled.to_std().unwrap_or_default()).await;
    kill(ready_pid(&env).await);
    let third = incidents_when(&env, "replica-down", Duration::from_secs(90), resolved(3)).await;
    assert_eq!(first[0]["id"], second[1]["id"]);
    assert_eq!(second[0]["id"], third[1]["id"]);

    let timelines = [
        incident(&env, &third[2]["id"]).await,
        incident(&env, &third[1]["id"]).await,
        incident(&env, &third[0]["id"]).await,
    ];
    let said = |i: &Value, kind: &str| -> String {
        i["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| e["message"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(
        said(&timelines[0], "playbookStarted").starts_with("restart of echo started as task"),
        "{}",
        timelines[0]
    );
    assert!(
        said(&timelines[1], "playbookSkipped").starts_with("cooling down"),
        "{}",
        timelines[1]
    );
    assert_eq!(
        said(&timelines[1], "playbookStarted"),
        "",
        "{}",
        timelines[1]
    );
    assert!(
        said(&timelines[2], "playbookStarted").starts_with("scaleOut of echo started as task"),
        "{}",
        timelines[2]
    );
    for t in &timelines {
        assert_eq!(kinds(t).first().unwrap(), "fired", "{t}");
        assert!(kinds(t).contains(&"resolved".to_owned()), "{t}");
    }

    let (_, service) = env.call(Method::GET, "/api/v1/services/echo", None).await;
    assert_eq!(
        service["spec"]["replicas"], 2,
        "scaled out to the cap: {service}"
    );
    let (_, tasks) = env.call(Method::GET, "/api/v1/tasks", None).await;
    let by_playbooks: Vec<&str> = tasks["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["createdBy"] == "system:alerts")
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        by_playbooks,
        ["scale", "restart"],
        "two runs, newest first: {tasks}"
    );
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_retries_and_a_dead_letter_while_evaluation_goes_on() {
    let home = tempfile::tempdir().unwrap();
    let env = Local::start(home.path());
    env.echo_model(1).await;
    deploy(&env, json!([{"version": "1", "weight": 100}]), 1, json!([])).await;
    let refusing = hook(503).await;
    // Nothing listens there once the listener is dropped.
    let closed = format!("http://127.0.0.1:{}/hook", common::free_port());
    // Holds whenever the platform reports (0 >= 0): fires at once.
    let always = |name: &str, url: &str| {
        json!({"name": name, "service": "echo", "metric": "replicasUnavailable",
               "condition": "result >= 0", "receivers": [{"webhook": {"url": url}}]})
    };
    create_rule(&env, always("refused", &refusing.url)).await;
    create_rule(&env, always("unreachable", &closed)).await;
    let fired = Instant::now();
    incidents_when(&env, "unreachable", Duration::from_secs(30), |i| {
        i.len() == 1
    })
    .await;
    // While the retries go on, the evaluator goes on: a new rule fires within seconds.
    let working = hook(200).await;
    create_rule(&env, always("working", &working.url)).await;
    incidents_when(&env, "working", Duration::from_secs(5), |i| i.len() == 1).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let dead = loop {
        let (_, dead) = env
            .call(Method::GET, "/api/v1/alerts/notifications?state=dead", None)
            .await;
        if dead["items"].as_array().unwrap().len() == 2 {
            break dead;
        }
        assert!(Instant::now() < deadline, "two dead letters: {dead}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // 5 attempts, 1 + 2 + 4 + 8 s apart.
    assert!(
        fired.elapsed() >= Duration::from_secs(15),
        "{:?}",
        fired.elapsed()
    );
    for letter in dead["items"].as_array().unwrap() {
        assert_eq!(letter["attempts"], 5, "{letter}");
        let error = letter["lastError"].as_str().unwrap();
        if letter["url"] == refusing.url.as_str() {
            assert!(error.contains("503"), "{letter}");
        } else {
            assert!(error.starts_with("no answer"), "{letter}");
        }
    }
    assert_eq!(refusing.bodies.lock().len(), 5, "every attempt reached it");
    assert_eq!(working.bodies.lock().len(), 1, "delivered once");
    let (_, incidents) = env
        .call(Method::GET, "/api/v1/incidents?rule=refused", None)
        .await;
    let refused = incident(&env, &incidents["items"][0]["id"]).await;
    assert!(
        kinds(&refused).contains(&"notificationFailed".to_owned()),
        "{refused}"
    );
}

#[tokio::test]
async fn a_real_alertmanager_feeds_incidents_and_the_rule_of_the_same_name_runs_its_playbook() {
    let home = tempfile::tempdir().unwrap();
    let env = Local::start(home.path());
    env.echo_model(1).await;
    deploy(&env, json!([{"version": "1", "weight": 100}]), 1, json!([])).await;
    // Named as the Alertmanager's alert; its own condition never holds.
    create_rule(
        &env,
        json!({"name": "HighErrorRate".to_lowercase(), "service": "echo", "metric": "queueLength",
               "condition": "result > 1000000",
               "playbook": {"steps": [{"scaleOut": {"by": 1, "max": 3}}]}}),
    )
    .await;
    let port = common::free_port();
    let dir = home.path().join("alertmanager");
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "route: {{receiver: autoglm, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}\n\
         receivers:\n\
         - name: autoglm\n  webhook_configs:\n  - url: {}/api/v1/alerts/receiver\n    send_resolved: true\n    \
         http_config: {{authorization: {{type: Bearer, credentials: {}}}}}\n",
        env.up.console.url, env.up.console.token
    );
    std::fs::write(dir.join("alertmanager.yml"), config).unwrap();
    let mut command = std::process::Command::new("prometheus-alertmanager");
    command
        .arg(format!(
            "--config.file={}",
            dir.join("alertmanager.yml").display()
        ))
        .arg(format!("--storage.path={}", dir.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=");
    let _alertmanager = common::Listening::start(command, port, "Debian's prometheus-alertmanager");
    let http = reqwest::Client::new();
    let post = |ends: Option<String>| {
        let mut alert = json!({"labels": {"alertname": "higherrorrate", "service": "echo", "version": "1",
                                          "severity": "critical"},
                               "annotations": {"summary": "errors above 5% for 5m"}});
        if let Some(ends) = ends {
            alert["endsAt"] = json!(ends);
        }
        http.post(format!("http://127.0.0.1:{port}/api/v2/alerts"))
            .json(&json!([alert]))
            .send()
    };
    assert!(post(None).await.unwrap().status().is_success());
    let open = incidents_when(&env, "higherrorrate", Duration::from_secs(30), |i| {
        i.len() == 1
    })
    .await;
    let opened = incident(&env, &open[0]["id"]).await;
    assert_eq!(opened["source"], "alertmanager", "{opened}");
    assert_eq!(opened["labels"]["severity"], "critical");
    assert!(
        kinds(&opened).contains(&"playbookStarted".to_owned()),
        "{opened}"
    );
    let ends = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert!(post(Some(ends)).await.unwrap().status().is_success());
    let closed = incidents_when(&env, "higherrorrate", Duration::from_secs(30), |i| {
        i.len() == 1 && i[0]["state"] == "resolved"
    })
    .await;
    assert_eq!(closed[0]["id"], open[0]["id"]);
    let (_, service) = env.call(Method::GET, "/api/v1/services/echo", None).await;
    assert_eq!(
        service["spec"]["replicas"], 2,
        "the playbook scaled out: {service}"
    );
}

#[tokio::test]
async fn bad_rules_and_silences_are_refused_with_their_field_paths_and_store_nothing() {
    let home = tempfile::tempdir().unwrap();
    let env = Local::start(home.path());
    let cases = [
        (
            json!({"name": "x", "metric": "errorRatio", "condition": "result >"}),
            "condition",
            "does not parse",
        ),
        (
            json!({"name": "x", "metric": "errorRatio", "condition": "result > 1", "receivers": [{"webhook": {"url": "ftp://hooks"}}]}),
            "receivers[0].webhook.url",
            "not an http:// or https:// URL",
        ),
        (
            json!({"name": "x", "service": "nope", "metric": "errorRatio", "condition": "result > 1",
                "playbook": {"steps": [{"restart": {}}]}}),
            "service",
            "does not exist",
        ),
        (
            json!({"name": "x", "metric": "errorRatio", "condition": "result > 1", "for": "-10s"}),
            "for",
            "negative",
        ),
        (
            json!({"name": "x", "metric": "cpu", "condition": "result > 1"}),
            "metric",
            "not a metric",
        ),
    ];
    for (rule, path, words) in cases {
        let (s, problem) = env
            .call(Method::POST, "/api/v1/alerts/rules", Some(rule.clone()))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{rule}: {problem}");
        let error = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == path)
            .unwrap_or_else(|| panic!("{path} in {problem}"));
        assert!(
            error["message"].as_str().unwrap().contains(words),
            "{problem}"
        );
    }
    let (s, problem) = env
        .call(
            Method::POST,
            "/api/v1/alerts/silences",
            Some(json!({"matchers": [], "endsAt": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (_, rules) = env.call(Method::GET, "/api/v1/alerts/rules", None).await;
    assert_eq!(rules["items"], json!([]), "{rules}");
    let (_, silences) = env.call(Method::GET, "/api/v1/alerts/silences", None).await;
    assert_eq!(silences["items"], json!([]), "{silences}");
    let (s, _) = env
        .call(Method::DELETE, "/api/v1/alerts/rules/none", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
