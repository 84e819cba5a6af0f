//! `autoglm config promote FROM TO`: the plan first (each key with its
//! action and diff, from the preview), then, once confirmed, the promotion
//! as one change; or, with `--request`, a change request for a second user.
//! Also `config requests`, `config approve ID` and `config reject ID`.

use std::io::{BufRead, Write};

use autoglm_core::config::{
    ChangeAction, ChangeRequest, ConfigVersion, Decide, KeyRef, PlannedChange, Promote,
    PromotionPlan, RequestChange,
};
use autoglm_core::registry::Page;
use chrono::Utc;
use reqwest::Method;
use serde::Deserialize;

use super::{KeyName, PASS_REQUEST, api, label, protected_hint};
use crate::client::{Client, ClientError};
use crate::output::{NONE, age, print_stderr, print_stdout, print_value, render_table, sanitize};
use crate::{ClientArgs, OutputFormat};

/// `autoglm config promote`.
#[derive(clap::Args, Debug)]
pub struct PromoteArgs {
    /// The environment whose keys are copied.
    #[arg(value_name = "FROM")]
    pub from: String,
    /// The environment that gets them.
    #[arg(value_name = "TO")]
    pub to: String,
    /// Also delete TO's keys that FROM does not hold.
    #[arg(long)]
    pub prune: bool,
    /// Only this key; repeat for several.
    #[arg(long = "key", value_name = "[GROUP/]KEY")]
    pub keys: Vec<KeyName>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply without asking.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// File a change request for a second user to approve instead of applying.
    #[arg(long, conflicts_with = "dry_run")]
    pub request: bool,
    /// Why (each new version's message; default `promoted from FROM`).
    #[arg(short = 'm', long, value_name = "MESSAGE", default_value = "")]
    pub message: String,
}

/// `autoglm config requests`.
#[derive(clap::Args, Debug)]
pub struct RequestsArgs {
    /// Only requests in this state.
    #[arg(long, value_name = "STATE", value_parser = ["pending", "approved", "rejected"])]
    pub state: Option<String>,
}

/// `autoglm config approve|reject`.
#[derive(clap::Args, Debug)]
pub struct DecideArgs {
    /// The change request's id.
    #[arg(value_name = "ID")]
    pub id: u64,
    /// Why.
    #[arg(long, value_name = "REASON", default_value = "")]
    pub reason: String,
}

/// A promotion as the console answers it: the plan it applied and the
/// versions it made, in the plan's order.
#[derive(Debug, Deserialize)]
struct Applied {
    #[serde(flatten)]
    plan: PromotionPlan,
    versions: Vec<ConfigVersion>,
}

/// A decided change request with the versions an approval made.
#[derive(Debug, Deserialize)]
struct Decided {
    #[serde(flatten)]
    request: ChangeRequest,
    versions: Vec<ConfigVersion>,
}

fn key_of(c: &PlannedChange) -> KeyName {
    KeyName {
        group: c.group.clone(),
        key: c.key.clone(),
    }
}

fn count(changes: &[PlannedChange], action: ChangeAction) -> usize {
    changes.iter().filter(|c| c.action == action).count()
}

/// The plan as `promote` prints it before doing anything: a summary line,
/// then each key with its action and its diff.
pub fn plan_text(plan: &PromotionPlan) -> String {
    let mut out = format!(
        "Promotion from {} to {}: {} to create, {} to update, {} to delete, {} unchanged\n",
        sanitize(&plan.from),
        sanitize(&plan.to),
        count(&plan.changes, ChangeAction::Create),
        count(&plan.changes, ChangeAction::Update),
        count(&plan.changes, ChangeAction::Delete),
        plan.unchanged
    );
    for c in &plan.changes {
        let action = match c.action {
            ChangeAction::Create => "create",
            ChangeAction::Update => "update",
            ChangeAction::Delete => "delete",
        };
        out.push_str(&format!("\n{} {action}\n", label(&plan.to, &key_of(c))));
        if c.diff.is_empty() {
            out.push_str(&format!(
                "(same content; the format becomes {})\n",
                c.format.as_str()
            ));
        } else {
            out.push_str(&c.diff);
            if !c.diff.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

/// What each change did, kubectl's words.
fn done(action: ChangeAction) -> &'static str {
    match action {
        ChangeAction::Create => "created",
        ChangeAction::Update => "configured",
        ChangeAction::Delete => "deleted",
    }
}

/// Whether the promotion applied is the one previewed: the environments can
/// move between the two requests (the console plans again when it applies).
fn same_plan(previewed: &[PlannedChange], applied: &[PlannedChange]) -> bool {
    let essence = |c: &PlannedChange| (c.group.clone(), c.key.clone(), c.action, c.diff.clone());
    previewed
        .iter()
        .map(essence)
        .eq(applied.iter().map(essence))
}

/// Asks on stderr; only `y` or `yes` goes on. Reading stdin also serves
/// `yes | autoglm config promote ...`.
async fn confirm(question: String) -> Result<bool, ClientError> {
    tokio::task::spawn_blocking(move || {
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "{question} [y/N] ");
        let _ = stderr.flush();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).ok();
        matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    })
    .await
    .map_err(|e| ClientError::Local(format!("cannot ask for confirmation: {e}")))
}

/// `autoglm config promote`.
pub async fn run(args: &ClientArgs, a: &PromoteArgs) -> Result<(), ClientError> {
    let client = Client::new(args)?;
    let body = Promote {
        from: a.from.clone(),
        to: a.to.clone(),
        keys: a
            .keys
            .iter()
            .map(|k| KeyRef {
                group: k.group.clone(),
                key: k.key.clone(),
            })
            .collect(),
        prune: a.prune,
        message: a.message.clone(),
    };
    let preview = api::url(&client, &["promotions", "preview"])?;
    let (_, plan): (_, PromotionPlan) = api::send(&client, Method::POST, preview, &body).await?;
    let text = plan_text(&plan);
    let table = args.output == OutputFormat::Table;
    if table {
        print_stdout(&text);
    } else if a.dry_run || plan.changes.is_empty() {
        print_value(
            args.output,
            &serde_json::to_value(&plan).unwrap_or_default(),
        );
    } else {
        // Stdout holds the one document of what was done; the person
        // confirming still sees the plan.
        print_stderr(text.trim_end());
    }
    if plan.changes.is_empty() {
        print_stderr(&format!(
            "nothing to promote: {} already holds what {} holds",
            sanitize(&a.to),
            sanitize(&a.from)
        ));
        return Ok(());
    }
    if a.dry_run {
        print_stderr("dry run: nothing was changed");
        return Ok(());
    }
    if a.request {
        let request = RequestChange {
            from: Some(a.from.clone()),
            keys: body.keys.clone(),
            prune: a.prune,
            publish: Vec::new(),
            message: a.message.clone(),
        };
        return file_request(args, &client, &a.to, &request).await;
    }
    let question = format!(
        "Apply these {} change(s) to {}?",
        plan.changes.len(),
        sanitize(&a.to)
    );
    if !a.yes && !confirm(question).await? {
        return Err(ClientError::Local(
            "not confirmed: nothing was promoted (-y applies without asking)".to_owned(),
        ));
    }
    let url = api::url(&client, &["promotions"])?;
    let (_, applied): (_, Applied) = match api::send(&client, Method::POST, url, &body).await {
        Ok(answer) => answer,
        Err(e) => return Err(protected_hint(&client, &a.to, e, PASS_REQUEST).await),
    };
    if !same_plan(&plan.changes, &applied.plan.changes) {
        print_stderr(
            "warning: the environments changed after the preview; what was applied is listed below",
        );
    }
    if !table {
        print_value(args.output, &applied_value(&applied));
        return Ok(());
    }
    for c in &applied.plan.changes {
        let version = applied
            .versions
            .iter()
            .find(|v| v.group == c.group && v.key == c.key)
            .map_or_else(String::new, |v| format!(" (version {})", v.version));
        print_stdout(&format!(
            "{} {}{version}\n",
            label(&a.to, &key_of(c)),
            done(c.action)
        ));
    }
    Ok(())
}

fn applied_value(applied: &Applied) -> serde_json::Value {
    let mut value = serde_json::to_value(&applied.plan).unwrap_or_default();
    value["versions"] = serde_json::to_value(&applied.versions).unwrap_or_default();
    value
}

/// Files a change request of `env` and says how it goes on.
pub async fn file_request(
    args: &ClientArgs,
    client: &Client,
    env: &str,
    body: &RequestChange,
) -> Result<(), ClientError> {
    let url = api::url(client, &["environments", env, "requests"])?;
    let (_, request): (_, ChangeRequest) = api::send(client, Method::POST, url, body).await?;
    match args.output {
        OutputFormat::Table => {
            print_stdout(&format!(
                "change request {} filed for {} ({} change(s))\n",
                request.id,
                sanitize(env),
                request.changes.len()
            ));
            print_stderr(&format!(
                "a second user approves it with `autoglm config approve {}` \
                 (or rejects it with `autoglm config reject {}`)",
                request.id, request.id
            ));
        }
        format => print_value(format, &serde_json::to_value(&request).unwrap_or_default()),
    }
    Ok(())
}

/// `autoglm config requests`.
pub async fn requests(args: &ClientArgs, a: &RequestsArgs) -> Result<(), ClientError> {
    let client = Client::new(args)?;
    let mut url = api::url(&client, &["requests"])?;
    if let Some(state) = &a.state {
        url.query_pairs_mut().append_pair("state", state);
    }
    let page: Page<ChangeRequest> = client.get_json(url).await?;
    match args.output {
        OutputFormat::Table if page.items.is_empty() => print_stderr("No change requests found."),
        OutputFormat::Table => print_stdout(&requests_table(&page.items, Utc::now())),
        OutputFormat::Json => print_stdout(&crate::output::pretty_json(
            &serde_json::to_value(&page.items).unwrap_or_default(),
        )),
        OutputFormat::Yaml => crate::resource::print_documents(
            args.output,
            page.items
                .iter()
                .map(|r| serde_json::to_value(r).unwrap_or_default())
                .collect(),
        ),
    }
    Ok(())
}

/// The `config requests` table.
pub fn requests_table(requests: &[ChangeRequest], now: chrono::DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = requests
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                sanitize(&r.environment),
                r.from.as_deref().map_or(NONE.to_owned(), sanitize),
                r.changes.len().to_string(),
                sanitize(&r.state),
                sanitize(&r.requested_by),
                age(r.requested_at, now),
                if r.message.is_empty() {
                    NONE.to_owned()
                } else {
                    sanitize(&r.message)
                },
            ]
        })
        .collect();
    render_table(
        &[
            "ID", "ENV", "FROM", "CHANGES", "STATE", "BY", "AGE", "MESSAGE",
        ],
        &rows,
    )
}

/// `autoglm config approve|reject ID`.
pub async fn decide(args: &ClientArgs, a: &DecideArgs, verb: &str) -> Result<(), ClientError> {
    let client = Client::new(args)?;
    let url = api::url(&client, &["requests", &a.id.to_string(), verb])?;
    let body = Decide {
        reason: a.reason.clone(),
    };
    let (_, decided): (_, Decided) = api::send(&client, Method::POST, url, &body).await?;
    if args.output != OutputFormat::Table {
        let mut value = serde_json::to_value(&decided.request).unwrap_or_default();
        value["versions"] = serde_json::to_value(&decided.versions).unwrap_or_default();
        print_value(args.output, &value);
        return Ok(());
    }
    let env = &decided.request.environment;
    print_stdout(&format!(
        "change request {} {}\n",
        a.id,
        sanitize(&decided.request.state)
    ));
    for v in &decided.versions {
        let key = KeyName {
            group: v.group.clone(),
            key: v.key.clone(),
        };
        let what = if v.deleted { "deleted" } else { "published" };
        print_stdout(&format!(
            "{} {what} (version {})\n",
            label(env, &key),
            v.version
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoglm_core::config::ConfigFormat;

    fn change(key: &str, action: ChangeAction, diff: &str) -> PlannedChange {
        PlannedChange {
            group: "DEFAULT_GROUP".into(),
            key: key.into(),
            action,
            format: ConfigFormat::Yaml,
            content: String::new(),
            base_md5: String::new(),
            base_version: 0,
            source_version: Some(1),
            diff: diff.into(),
        }
    }

    #[test]
    fn a_plan_lists_each_key_with_its_diff() {
        let plan = PromotionPlan {
            from: "dev".into(),
            to: "test".into(),
            changes: vec![
                change(
                    "a.yaml",
                    ChangeAction::Create,
                    "--- test/DEFAULT_GROUP/a.yaml\n+++ dev/DEFAULT_GROUP/a.yaml\n@@ -0,0 +1 @@\n+a: 1\n",
                ),
                change("b.yaml", ChangeAction::Update, ""),
            ],
            unchanged: 3,
        };
        assert_eq!(
            plan_text(&plan),
            "Promotion from dev to test: 1 to create, 1 to update, 0 to delete, 3 unchanged\n\
             \n\
             config/test/DEFAULT_GROUP/a.yaml create\n\
             --- test/DEFAULT_GROUP/a.yaml\n\
             +++ dev/DEFAULT_GROUP/a.yaml\n\
             @@ -0,0 +1 @@\n\
             +a: 1\n\
             \n\
             config/test/DEFAULT_GROUP/b.yaml update\n\
             (same content; the format becomes yaml)\n"
        );
        assert!(same_plan(&plan.changes, &plan.changes.clone()));
        assert!(!same_plan(&plan.changes, &plan.changes[1..]));
        assert_eq!(done(ChangeAction::Update), "configured");
    }
}
