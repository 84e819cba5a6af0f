//! The kubectl-shaped verbs over declarative resources: `apply -f`, `get`,
//! `delete`, `scale` and `restart`, through `/api/v1/services`. Only kind
//! ModelService exists so far; the resource argument takes its kubectl-style
//! names (`service`, `services`, `svc`, `modelservice`, `ms`).

use std::collections::HashMap;
use std::path::PathBuf;

use autoglm_core::service::{KIND, ModelServiceManifest, ModelServiceStatus};
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::client::{Client, ClientError, IDEMPOTENCY_KEY_HEADER};
use crate::manifests::{Document, read_all};
use crate::output::{age, pretty_json, print_stderr, print_stdout, render_table, sanitize};
use crate::{ClientArgs, OutputFormat};

/// Most items asked of the console in one page.
const PAGE_SIZE: usize = 100;

/// A kind of resource, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A ModelService.
    Service,
    /// A task (`get` only).
    Task,
    /// Alerts, alert rules or incidents (`get` only).
    Alerts(crate::alerts::Listed),
}

impl Resource {
    /// What a manifest's `kind` and the output call it.
    fn name(self) -> &'static str {
        match self {
            Resource::Service => "modelservice",
            Resource::Task => "task",
            Resource::Alerts(crate::alerts::Listed::Alerts) => "alert",
            Resource::Alerts(crate::alerts::Listed::Rules) => "alertrule",
            Resource::Alerts(crate::alerts::Listed::Incidents) => "incident",
        }
    }
}

/// Parses a resource name the way kubectl does: singular, plural or short.
pub fn parse_resource(s: &str) -> Result<Resource, String> {
    match s.to_ascii_lowercase().as_str() {
        "service" | "services" | "svc" | "modelservice" | "modelservices" | "ms" => {
            Ok(Resource::Service)
        }
        "task" | "tasks" => Ok(Resource::Task),
        "alert" | "alerts" => Ok(Resource::Alerts(crate::alerts::Listed::Alerts)),
        "alertrule" | "alertrules" | "rule" | "rules" => {
            Ok(Resource::Alerts(crate::alerts::Listed::Rules))
        }
        "incident" | "incidents" => Ok(Resource::Alerts(crate::alerts::Listed::Incidents)),
        _ => Err(format!(
            "unknown resource type {s:?}; autoglm knows services (modelservices, svc, ms), tasks, \
             alerts, alertrules and incidents"
        )),
    }
}

/// `autoglm apply`.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// Connection and output.
    #[command(flatten)]
    pub client: ClientArgs,
    /// A YAML (or JSON) file of one or more documents separated by `---`, a
    /// directory of such files, or `-` for stdin; repeat for several.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,
    /// Wait for the changes to reach their platform.
    #[command(flatten)]
    pub wait: WaitFlags,
}

/// Whether a command waits for the tasks it started.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct WaitFlags {
    /// Return once the console has accepted the changes, without waiting
    /// for their tasks.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this long, e.g. 10m or 90s.
    #[arg(long, default_value = "30m", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    autoglm_core::service::parse_duration(s).map_err(|e| e.to_string())
}

/// `autoglm get`.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// Connection and output.
    #[command(flatten)]
    pub client: ClientArgs,
    /// What to list: services.
    #[arg(value_name = "TYPE", value_parser = parse_resource)]
    pub resource: Resource,
    /// One resource, by name.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Only resources with all these labels.
    #[arg(
        short = 'l',
        long = "selector",
        value_name = "KEY=VALUE,...",
        value_delimiter = ','
    )]
    pub selector: Vec<String>,
}

/// `autoglm delete`.
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Connection and output.
    #[command(flatten)]
    pub client: ClientArgs,
    /// What to delete: service.
    #[arg(value_name = "TYPE", value_parser = parse_resource)]
    pub resource: Resource,
    /// Names; at least one.
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
    /// Wait until the services are gone from their platform.
    #[command(flatten)]
    pub wait: WaitFlags,
}

/// One resource by name: `autoglm restart`, and the start of `autoglm scale`.
#[derive(clap::Args, Debug)]
pub struct NamedArgs {
    /// Connection and output.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Its type: service.
    #[arg(value_name = "TYPE", value_parser = parse_resource)]
    pub resource: Resource,
    /// Its name.
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// `autoglm scale`.
#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// What to scale.
    #[command(flatten)]
    pub target: NamedArgs,
    /// Replicas per version.
    #[arg(long, value_name = "N")]
    pub replicas: u32,
}

/// The resource verbs, mounted at the top of the `autoglm` tree.
#[derive(clap::Subcommand, Debug)]
pub enum ResourceCommand {
    /// Create or update resources from manifests (prints created, configured or unchanged).
    Apply(ApplyArgs),
    /// List resources, or show one (-o yaml|json for the manifest).
    Get(GetArgs),
    /// Delete resources by name.
    Delete(DeleteArgs),
    /// Set the replicas of a service (not an autoscaled one).
    Scale(ScaleArgs),
    /// Replace every replica of a service, spec unchanged.
    Restart(NamedArgs),
    /// Wait until a task is final, showing its progress (exit 1 unless it succeeded).
    Wait(crate::tasks::WaitArgs),
    /// A service's rollout: status, pause, resume, promote or abort.
    Rollout(crate::rollout::RolloutArgs),
    /// Run a JSONL dataset through a model version and show what it measured; without -f, list its evaluations.
    #[command(disable_version_flag = true)]
    Evaluate(crate::evaluate::EvaluateArgs),
}

impl ResourceCommand {
    fn client(&self) -> &ClientArgs {
        match self {
            ResourceCommand::Apply(a) => &a.client,
            ResourceCommand::Get(a) => &a.client,
            ResourceCommand::Delete(a) => &a.client,
            ResourceCommand::Scale(a) => &a.target.client,
            ResourceCommand::Restart(a) => &a.client,
            ResourceCommand::Wait(a) => &a.client,
            ResourceCommand::Rollout(a) => &a.client,
            ResourceCommand::Evaluate(a) => &a.client,
        }
    }
}

/// Runs a resource command; returns the process exit code as
/// [`run_model`](crate::run_model) does: 0 ok, 1 refused by the console or
/// unreachable, 2 bad local input (unreadable file, bad YAML, an invalid
/// manifest).
pub async fn run_resource(command: ResourceCommand) -> i32 {
    let args = command.client().clone();
    let result = match command {
        ResourceCommand::Apply(a) => apply(&args, &a.files, a.wait).await,
        ResourceCommand::Get(a) if a.resource == Resource::Task => {
            crate::tasks::get(&args, a.name.as_deref()).await
        }
        ResourceCommand::Get(a) if let Resource::Alerts(listed) = a.resource => {
            crate::alerts::get(&args, listed, a.name.as_deref()).await
        }
        ResourceCommand::Get(a) => get(&args, a.name.as_deref(), &a.selector).await,
        ResourceCommand::Delete(a) => delete(&args, a.resource, &a.names, a.wait).await,
        ResourceCommand::Wait(a) => crate::tasks::wait(&a).await,
        ResourceCommand::Rollout(a) => crate::rollout::run(&a).await,
        ResourceCommand::Evaluate(a) => crate::evaluate::run(&a).await,
        ResourceCommand::Scale(a) => {
            let body = serde_json::json!({"replicas": a.replicas});
            let t = &a.target;
            act(&args, t.resource, &t.name, "scale", body, "scaled").await
        }
        ResourceCommand::Restart(a) => {
            act(
                &args,
                a.resource,
                &a.name,
                "restart",
                Value::Null,
                "restarted",
            )
            .await
        }
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            print_stderr(&format!("error: {error}"));
            error.exit_code()
        }
    }
}

/// A manifest read for apply, with where it came from.
struct Planned {
    origin: String,
    manifest: ModelServiceManifest,
    body: Value,
}

/// Checks every document locally with the console's own rules, so that a
/// mistake anywhere applies nothing.
fn plan(documents: Vec<Document>) -> Result<Vec<Planned>, ClientError> {
    let mut per_file: HashMap<String, usize> = HashMap::new();
    for d in &documents {
        *per_file.entry(d.file.clone()).or_default() += 1;
    }
    let mut planned: Vec<Planned> = Vec::new();
    for document in documents {
        let origin = document.origin(per_file[&document.file]);
        let kind = document.value.get("kind").and_then(Value::as_str);
        if let Some(kind) = kind
            && !kind.eq_ignore_ascii_case(KIND)
        {
            return Err(ClientError::Local(format!(
                "{origin}: kind {kind:?} cannot be applied; autoglm applies only kind {KIND:?} so far"
            )));
        }
        let manifest =
            ModelServiceManifest::from_value(document.value.clone()).map_err(|errors| {
                let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
                ClientError::Local(format!("{origin}: {}", listed.join("; ")))
            })?;
        if let Some(first) = planned
            .iter()
            .find(|p| p.manifest.metadata.name == manifest.metadata.name)
        {
            return Err(ClientError::Local(format!(
                "{origin}: {}/{} is also defined in {}",
                Resource::Service.name(),
                manifest.metadata.name,
                first.origin
            )));
        }
        planned.push(Planned {
            origin,
            manifest,
            body: document.value,
        });
    }
    Ok(planned)
}

fn decode(value: Value) -> Result<ModelServiceManifest, ClientError> {
    serde_json::from_value(value).map_err(|e| ClientError::Decode(e.to_string()))
}

async fn apply(args: &ClientArgs, files: &[PathBuf], wait: WaitFlags) -> Result<(), ClientError> {
    let planned = plan(read_all(files).map_err(ClientError::Local)?)?;
    let client = Client::new(args)?;
    let mut started = Vec::new();
    let mut names = Vec::new();
    for item in planned {
        let name = item.manifest.metadata.name.clone();
        let within = |e: ClientError| e.within(&item.origin);
        let url = client
            .url(&["api", "v1", "services", &name])
            .map_err(within)?;
        let exists = match client.get_json::<Value>(url.clone()).await {
            Ok(_) => true,
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => false,
            Err(e) => return Err(within(e)),
        };
        let request = if exists {
            client.request(Method::PUT, url).json(&item.body)
        } else {
            let create = client.url(&["api", "v1", "services"]).map_err(within)?;
            client
                .request(Method::POST, create)
                .header(IDEMPOTENCY_KEY_HEADER, uuid::Uuid::new_v4().to_string())
                .json(&item.body)
        };
        let response = client.send(request).await.map_err(within)?;
        // 202: a task carries the change; 200: nothing changed.
        let accepted = response.status() == StatusCode::ACCEPTED;
        let verb = match (exists, accepted) {
            (false, _) => "created",
            (true, true) => "configured",
            (true, false) => "unchanged",
        };
        let label = format!("{}/{}", Resource::Service.name(), sanitize(&name));
        if accepted {
            let task = client.json(response).await?;
            started.push(crate::tasks::Started {
                label: label.clone(),
                task,
            });
        }
        if args.output == OutputFormat::Table {
            print_stdout(&format!("{label} {verb}\n"));
        }
        names.push(name);
    }
    if !wait.no_wait {
        crate::tasks::wait_all(&client, started, wait.timeout).await?;
    }
    if args.output != OutputFormat::Table {
        let mut results = Vec::new();
        for name in names {
            results.push(
                client
                    .get_json(client.url(&["api", "v1", "services", &name])?)
                    .await?,
            );
        }
        print_documents(args.output, results);
    }
    Ok(())
}

/// Prints results as JSON (an array when several) or YAML documents; tables are the caller's.
pub(crate) fn print_documents(format: OutputFormat, mut values: Vec<Value>) {
    match format {
        OutputFormat::Table => {}
        OutputFormat::Json if values.len() == 1 => print_stdout(&pretty_json(&values.remove(0))),
        OutputFormat::Json => print_stdout(&pretty_json(&Value::Array(values))),
        OutputFormat::Yaml => print_stdout(&crate::output::yaml_documents(&values)),
    }
}

async fn get(
    args: &ClientArgs,
    name: Option<&str>,
    selector: &[String],
) -> Result<(), ClientError> {
    let client = Client::new(args)?;
    let values: Vec<Value> = match name {
        Some(name) => {
            let url = client.url(&["api", "v1", "services", name])?;
            vec![client.get_json(url).await?]
        }
        None => {
            let mut url = client.url(&["api", "v1", "services"])?;
            if !selector.is_empty() {
                let pairs = selector
                    .iter()
                    .map(|l| crate::model::parse_label(l).map(|(k, v)| format!("{k}={v}")))
                    .collect::<Result<Vec<_>, _>>()?;
                url.query_pairs_mut().append_pair("label", &pairs.join(","));
            }
            client.get_all(url, None, PAGE_SIZE).await?
        }
    };
    if args.output != OutputFormat::Table {
        if name.is_none() && args.output == OutputFormat::Json {
            print_stdout(&pretty_json(&Value::Array(values)));
        } else {
            print_documents(args.output, values);
        }
        return Ok(());
    }
    let services: Vec<ModelServiceManifest> =
        values.into_iter().map(decode).collect::<Result<_, _>>()?;
    if services.is_empty() {
        print_stderr("No services found.");
    } else {
        print_stdout(&services_table(&services, Utc::now()));
    }
    Ok(())
}

/// `3:90,4:10`.
fn weights_text(service: &ModelServiceManifest) -> String {
    let parts: Vec<String> = service
        .spec
        .versions
        .iter()
        .map(|v| format!("{}:{}", v.version, v.weight))
        .collect();
    sanitize(&parts.join(","))
}

/// `2`, or `0-10` for an autoscaled range.
fn replicas_text(service: &ModelServiceManifest) -> String {
    let bounds = service.spec.replica_bounds();
    if service.spec.autoscaling.is_some() {
        format!("{}-{}", bounds.min, bounds.max)
    } else {
        bounds.initial.to_string()
    }
}

/// `ready/desired`, as the platform reports them.
fn ready_text(status: Option<&ModelServiceStatus>) -> String {
    status.map_or_else(
        || "0/0".to_owned(),
        |s| format!("{}/{}", s.ready_replicas, s.desired_replicas),
    )
}

fn age_text(created: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    created.map_or_else(|| crate::output::NONE.to_owned(), |t| age(t, now))
}

/// The `get services` table.
pub fn services_table(services: &[ModelServiceManifest], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            vec![
                sanitize(&s.metadata.name),
                sanitize(&s.spec.model),
                weights_text(s),
                replicas_text(s),
                ready_text(s.status.as_ref()),
                age_text(s.metadata.creation_timestamp, now),
            ]
        })
        .collect();
    render_table(
        &["NAME", "MODEL", "VERSIONS", "REPLICAS", "READY", "AGE"],
        &rows,
    )
}

async fn delete(
    args: &ClientArgs,
    resource: Resource,
    names: &[String],
    wait: WaitFlags,
) -> Result<(), ClientError> {
    match resource {
        Resource::Service => {}
        Resource::Task => {
            return Err(ClientError::Local(
                "tasks cannot be deleted; cancel a task with the console's POST /api/v1/tasks/ID/cancel"
                    .to_owned(),
            ));
        }
        Resource::Alerts(_) => {
            return Err(ClientError::Local(format!(
                "{}s cannot be deleted here; delete a rule with the console's DELETE /api/v1/alerts/rules/NAME \
                 or on its Alerts page, and resolve an incident on its page",
                resource.name()
            )));
        }
    }
    let client = Client::new(args)?;
    let mut started = Vec::new();
    for name in names {
        let url = client.url(&["api", "v1", "services", name])?;
        let task = client
            .json(client.send(client.request(Method::DELETE, url)).await?)
            .await?;
        let label = format!("{}/{}", resource.name(), sanitize(name));
        started.push(crate::tasks::Started { label, task });
    }
    if !wait.no_wait {
        crate::tasks::wait_all(&client, started, wait.timeout).await?;
    }
    for name in names {
        print_stdout(&format!("{}/{} deleted\n", resource.name(), sanitize(name)));
    }
    Ok(())
}

/// A POST to one of a service's actions (`scale`, `restart`).
async fn act(
    args: &ClientArgs,
    resource: Resource,
    name: &str,
    action: &str,
    body: Value,
    done: &str,
) -> Result<(), ClientError> {
    if resource != Resource::Service {
        return Err(ClientError::Local(format!(
            "only services can be {done}, not {}s",
            resource.name()
        )));
    }
    let client = Client::new(args)?;
    let url = client.url(&["api", "v1", "services", name, action])?;
    let mut request = client
        .request(Method::POST, url)
        .header(IDEMPOTENCY_KEY_HEADER, uuid::Uuid::new_v4().to_string());
    if !body.is_null() {
        request = request.json(&body);
    }
    let value: Value = client.json(client.send(request).await?).await?;
    match args.output {
        OutputFormat::Table => {
            print_stdout(&format!("{}/{} {done}\n", resource.name(), sanitize(name)));
            if let Some(id) = value["id"].as_i64() {
                print_stderr(&format!(
                    "task {id} carries it to the platform; `autoglm wait task {id}` follows it"
                ));
            }
        }
        format => print_documents(format, vec![value]),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use serde_json::json;

    fn manifest(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService",
               "metadata": {"name": name}, "spec": spec})
    }

    fn doc(file: &str, index: usize, value: Value) -> Document {
        Document {
            file: file.to_owned(),
            index,
            value,
        }
    }

    #[test]
    fn resource_names_read_like_kubectl() {
        for name in ["service", "services", "svc", "ModelService", "ms"] {
            assert_eq!(parse_resource(name), Ok(Resource::Service), "{name}");
        }
        assert!(parse_resource("pods").is_err());
    }

    #[test]
    fn plans_refuse_other_kinds_invalid_specs_and_duplicates_locally() {
        let spec = json!({"model": "m", "versions": [{"version": "1", "weight": 100}]});
        let ok = plan(vec![
            doc("a.yaml", 1, manifest("one", spec.clone())),
            doc("a.yaml", 2, manifest("two", spec.clone())),
        ])
        .map_err(|e| e.to_string())
        .expect("valid");
        assert_eq!(ok[1].origin, "a.yaml (document 2)");

        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
        let error = plan(vec![doc("d.yaml", 1, deployment)])
            .err()
            .expect("refused");
        assert_eq!(error.exit_code(), 2);
        assert!(
            error.to_string().starts_with("d.yaml: kind \"Deployment\""),
            "{error}"
        );

        let bad = json!({"model": "m", "versions": [{"version": "1", "weight": 90}]});
        let error = plan(vec![doc("b.yaml", 1, manifest("x", bad))])
            .err()
            .expect("refused");
        assert!(
            error
                .to_string()
                .contains("spec.versions: weights sum to 90"),
            "{error}"
        );

        let error = plan(vec![
            doc("a.yaml", 1, manifest("one", spec.clone())),
            doc("b.yaml", 1, manifest("one", spec)),
        ])
        .err()
        .expect("refused");
        assert_eq!(
            error.to_string(),
            "b.yaml: modelservice/one is also defined in a.yaml"
        );
    }

    #[test]
    fn service_tables_show_weights_replicas_and_readiness() {
        let now = Utc::now();
        let mut fixed: ModelServiceManifest = serde_json::from_value(manifest(
            "chat",
            json!({"model": "smollm2", "versions": [{"version": "3", "weight": 90}, {"version": "4", "weight": 10}], "replicas": 2}),
        ))
        .expect("manifest");
        fixed.metadata.creation_timestamp = Some(now - Duration::minutes(5));
        fixed.status = Some(ModelServiceStatus {
            desired_replicas: 4,
            ready_replicas: 3,
            ..ModelServiceStatus::default()
        });
        let auto: ModelServiceManifest = serde_json::from_value(manifest(
            "embed",
            json!({"model": "minilm", "versions": [{"version": "1", "weight": 100}],
                   "autoscaling": {"minReplicas": 0, "maxReplicas": 10, "targetInFlight": 4}}),
        ))
        .expect("manifest");
        assert_eq!(
            services_table(&[fixed, auto], now),
            "NAME    MODEL     VERSIONS    REPLICAS   READY   AGE\n\
             chat    smollm2   3:90,4:10   2          3/4     5m\n\
             embed   minilm    1:100       0-10       0/0     <none>\n"
        );
    }
}
