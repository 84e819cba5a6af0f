//! Deploying a service from a form: model, versions and weights, runtime,
//! replicas or autoscaling, resources. The form is turned into the same
//! manifest `autoglm apply` sends, shown as YAML beside it (kept up to date
//! as the user types), and created through the console's API, whose
//! refusals are shown next to the fields they concern.

use crate::extract::Form;
use autoglm_console::AppState;
use autoglm_core::rbac::Permission;
use autoglm_core::service::{API_VERSION, KIND};
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::Api;
use crate::fields::{self, FieldErrors};
use crate::layout;
use crate::session::{self, Session, SignedIn};

const HERE: &str = "/ui/services/new";

/// Version rows the form offers.
const VERSION_ROWS: usize = 3;

/// The form as submitted; every field a string, so nothing a user typed is
/// lost when the form comes back with errors.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ServiceForm {
    csrf: String,
    name: String,
    model: String,
    version_0: String,
    weight_0: String,
    version_1: String,
    weight_1: String,
    version_2: String,
    weight_2: String,
    runtime: String,
    command: String,
    protocol: String,
    replicas: String,
    autoscale: String,
    min_replicas: String,
    max_replicas: String,
    target_in_flight: String,
    scale_to_zero_after: String,
    cpu: String,
    memory: String,
    gpu: String,
    balancing: String,
    prefix_char_length: String,
    mean_load_factor: String,
    config_environment: String,
    config_group: String,
    config_key: String,
}

impl ServiceForm {
    fn versions(&self) -> [(&str, &str); VERSION_ROWS] {
        [
            (&self.version_0, &self.weight_0),
            (&self.version_1, &self.weight_1),
            (&self.version_2, &self.weight_2),
        ]
    }

    /// The manifest the form describes, and what in it could not be read
    /// as a number (the API checks everything else).
    pub fn manifest(&self) -> (Value, FieldErrors) {
        let mut errors = Vec::new();
        let mut number = |path: &str, raw: &str| -> Option<u32> {
            let raw = raw.trim();
            if raw.is_empty() {
                return None;
            }
            raw.parse::<u32>().ok().or_else(|| {
                errors.push((path.to_owned(), format!("{raw:?} is not a whole number")));
                None
            })
        };
        let filled: Vec<(&str, &str)> = self
            .versions()
            .into_iter()
            .filter(|(v, _)| !v.trim().is_empty())
            .collect();
        let lone = filled.len() == 1;
        let mut versions = Vec::new();
        for (i, (version, weight)) in filled.into_iter().enumerate() {
            let weight = match number(&format!("spec.versions[{i}].weight"), weight) {
                Some(w) => w,
                None if lone => 100,
                None => 0,
            };
            versions.push(json!({"version": version.trim(), "weight": weight}));
        }
        let mut spec = Map::new();
        spec.insert("model".into(), json!(self.model.trim()));
        spec.insert("versions".into(), Value::Array(versions));
        if self.runtime == "command" {
            let protocol = if self.protocol == "v2" {
                "v2"
            } else {
                "openai"
            };
            spec.insert(
                "runtime".into(),
                json!({"command": {"command": self.command.split_whitespace().collect::<Vec<_>>(), "protocol": protocol}}),
            );
        }
        if self.autoscale == "on" {
            let mut autoscaling = Map::new();
            for (key, raw) in [
                ("minReplicas", &self.min_replicas),
                ("maxReplicas", &self.max_replicas),
                ("targetInFlight", &self.target_in_flight),
            ] {
                if let Some(n) = number(&format!("spec.autoscaling.{key}"), raw) {
                    autoscaling.insert(key.into(), json!(n));
                }
            }
            if !self.scale_to_zero_after.trim().is_empty() {
                autoscaling.insert(
                    "scaleToZeroAfter".into(),
                    json!(self.scale_to_zero_after.trim()),
                );
            }
            spec.insert("autoscaling".into(), Value::Object(autoscaling));
        } else if let Some(n) = number("spec.replicas", &self.replicas) {
            spec.insert("replicas".into(), json!(n));
        }
        let mut resources = Map::new();
        for (key, raw) in [("cpu", &self.cpu), ("memory", &self.memory)] {
            if !raw.trim().is_empty() {
                resources.insert(key.into(), json!(raw.trim()));
            }
        }
        if let Some(n) = number("spec.resources.gpu", &self.gpu) {
            resources.insert("gpu".into(), json!(n));
        }
        if !resources.is_empty() {
            spec.insert("resources".into(), Value::Object(resources));
        }
        if self.balancing == "prefixHash" {
            let mut knobs = Map::new();
            for (key, raw) in [
                ("prefixCharLength", &self.prefix_char_length),
                ("meanLoadFactor", &self.mean_load_factor),
            ] {
                if let Some(n) = number(&format!("spec.loadBalancing.prefixHash.{key}"), raw) {
                    knobs.insert(key.into(), json!(n));
                }
            }
            let mut balancing = Map::new();
            balancing.insert("strategy".into(), json!("prefixHash"));
            if !knobs.is_empty() {
                balancing.insert("prefixHash".into(), Value::Object(knobs));
            }
            spec.insert("loadBalancing".into(), Value::Object(balancing));
        }
        if !self.config_key.trim().is_empty() {
            let mut reference = Map::new();
            for (field, raw) in [
                ("environment", &self.config_environment),
                ("group", &self.config_group),
                ("key", &self.config_key),
            ] {
                if !raw.trim().is_empty() {
                    reference.insert(field.into(), json!(raw.trim()));
                }
            }
            spec.insert("configRef".into(), Value::Object(reference));
        }
        let manifest = json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": self.name.trim()},
            "spec": spec,
        });
        (manifest, errors)
    }

    /// The manifest as `autoglm apply -f` would read it.
    pub fn yaml(&self) -> String {
        serde_yaml_ng::to_string(&self.manifest().0).unwrap_or_default()
    }
}

/// Every field the form shows a refusal beside, and the API paths it covers.
const FIELDS: [(&str, &[&str]); 10] = [
    ("name", &["name", "metadata.name"]),
    ("model", &["spec.model"]),
    ("versions", &["spec.versions"]),
    ("runtime", &["spec.runtime"]),
    ("replicas", &["spec.replicas"]),
    ("autoscaling", &["spec.autoscaling"]),
    ("resources", &["spec.resources"]),
    ("balancing", &["spec.loadBalancing"]),
    ("env", &["spec.env"]),
    ("config", &["spec.configRef"]),
];

fn render(
    session: &Session,
    form: &ServiceForm,
    models: &[String],
    summary: Option<&str>,
    errors: &FieldErrors,
    status: StatusCode,
) -> Response {
    let err = |id: &str| fields::beside(errors, &FIELDS, id);
    let body = html! {
        @if let Some(summary) = summary {
            (fields::summary("form-error", summary, errors, &FIELDS))
        }
        div.columns {
            form.fields method="post" action=(HERE) id="new-service" data-yaml="/ui/services/yaml" {
                input type="hidden" name="csrf" value=(session.csrf);
                fieldset {
                    legend { "Service" }
                    label for="name" { "Name" }
                    input id="name" name="name" value=(form.name) placeholder="chat" required aria-describedby="error-name";
                    (err("name"))
                    label for="model" { "Model" }
                    input id="model" name="model" value=(form.model) list="model-names" required;
                    datalist id="model-names" { @for m in models { option value=(m) {} } }
                    (err("model"))
                }
                fieldset {
                    legend { "Versions and traffic" }
                    @for (i, (version, weight)) in form.versions().into_iter().enumerate() {
                        div.row {
                            label for={"version_" (i)} { "Version" }
                            input.short id={"version_" (i)} name={"version_" (i)} value=(version) inputmode="numeric";
                            label for={"weight_" (i)} { "Weight %" }
                            input.short id={"weight_" (i)} name={"weight_" (i)} value=(weight) inputmode="numeric";
                        }
                    }
                    p.muted { "One version takes all traffic; with several, the weights must sum to 100." }
                    (err("versions"))
                }
                fieldset {
                    legend { "Runtime" }
                    label { input type="radio" name="runtime" value="builtin" checked[form.runtime != "command"]; " Built-in (autoglm runtime)" }
                    label { input type="radio" name="runtime" value="command" checked[form.runtime == "command"]; " A command" }
                    label for="command" { "Command (argv split on spaces; {port}, {model}, {version} are filled in)" }
                    input id="command" name="command" value=(form.command) placeholder="python -m server --port {port}";
                    label for="protocol" { "Protocol of the command" }
                    select id="protocol" name="protocol" {
                        option value="openai" selected[form.protocol != "v2"] { "OpenAI" }
                        option value="v2" selected[form.protocol == "v2"] { "Open Inference Protocol (v2)" }
                    }
                    (err("runtime"))
                }
                fieldset {
                    legend { "Replicas" }
                    label for="replicas" { "Replicas per version" }
                    input.short id="replicas" name="replicas" value=(form.replicas) inputmode="numeric" placeholder="1";
                    (err("replicas"))
                    label { input type="checkbox" name="autoscale" value="on" checked[form.autoscale == "on"]; " Autoscale on in-flight requests" }
                    div.row {
                        label for="min_replicas" { "Min" }
                        input.short id="min_replicas" name="min_replicas" value=(form.min_replicas) inputmode="numeric";
                        label for="max_replicas" { "Max" }
                        input.short id="max_replicas" name="max_replicas" value=(form.max_replicas) inputmode="numeric";
                        label for="target_in_flight" { "Target in flight" }
                        input.short id="target_in_flight" name="target_in_flight" value=(form.target_in_flight) inputmode="numeric";
                    }
                    label for="scale_to_zero_after" { "Scale to zero after (e.g. 5m; empty: never)" }
                    input.short id="scale_to_zero_after" name="scale_to_zero_after" value=(form.scale_to_zero_after);
                    (err("autoscaling"))
                }
                fieldset {
                    legend { "Resources per replica" }
                    div.row {
                        label for="cpu" { "CPU" }
                        input.short id="cpu" name="cpu" value=(form.cpu) placeholder="2";
                        label for="memory" { "Memory" }
                        input.short id="memory" name="memory" value=(form.memory) placeholder="4Gi";
                        label for="gpu" { "GPUs" }
                        input.short id="gpu" name="gpu" value=(form.gpu) inputmode="numeric";
                    }
                    (err("resources"))
                }
                fieldset {
                    legend { "Load balancing" }
                    label for="balancing" { "Replica choice" }
                    select id="balancing" name="balancing" {
                        option value="leastOutstanding" selected[form.balancing != "prefixHash"] { "Least outstanding requests" }
                        option value="prefixHash" selected[form.balancing == "prefixHash"] { "Prefix hash (a conversation stays on the replica holding its prefix)" }
                    }
                    div.row {
                        label for="prefix_char_length" { "Prefix characters" }
                        input.short id="prefix_char_length" name="prefix_char_length" value=(form.prefix_char_length) inputmode="numeric" placeholder="100";
                        label for="mean_load_factor" { "Load bound % of mean" }
                        input.short id="mean_load_factor" name="mean_load_factor" value=(form.mean_load_factor) inputmode="numeric" placeholder="125";
                    }
                    (err("balancing"))
                }
                fieldset {
                    legend { "Configuration" }
                    p.muted {
                        "A key of the " a href="/ui/config" { "config center" }
                        " each replica reads as the file " code { "$AUTOGLM_CONFIG_FILE" }
                        "; every publish of it rolls the replicas. For the built-in runtime it sets "
                        code { "sampling" } " defaults and " code { "batching" } "."
                    }
                    div.row {
                        label for="config_environment" { "Environment" }
                        input.short id="config_environment" name="config_environment" value=(form.config_environment) placeholder="dev";
                        label for="config_group" { "Group" }
                        input.short id="config_group" name="config_group" value=(form.config_group) placeholder="DEFAULT_GROUP";
                        label for="config_key" { "Key" }
                        input id="config_key" name="config_key" value=(form.config_key) placeholder="chat.yaml";
                    }
                    (err("config"))
                }
                button type="submit" id="deploy" { "Deploy" }
            }
            div.yaml {
                h2 { "YAML" }
                p.muted { "The same spec, for " code { "autoglm apply -f" } "." }
                pre id="yaml" { (form.yaml()) }
            }
        }
    };
    (status, layout::page(session, "/ui", "New service", body)).into_response()
}

async fn model_names(api: &Api, credential: &str) -> Vec<String> {
    api.names("/api/v1/models?limit=1000", credential, "/name")
        .await
}

fn may_deploy(session: &Session) -> Option<Response> {
    session
        .principal
        .require(Permission::ServicesWrite)
        .is_err()
        .then(|| {
            let body = html! { p.empty { "Your role cannot deploy services." } };
            (
                StatusCode::FORBIDDEN,
                layout::page(session, "/ui", "New service", body),
            )
                .into_response()
        })
}

/// `GET /ui/services/new`.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
) -> Response {
    if let Some(refused) = may_deploy(&session) {
        return refused;
    }
    let form = ServiceForm {
        version_0: "1".into(),
        weight_0: "100".into(),
        replicas: "1".into(),
        ..ServiceForm::default()
    };
    let models = model_names(&api, &credential).await;
    render(&session, &form, &models, None, &Vec::new(), StatusCode::OK)
}

/// `POST /ui/services/new`: deploys, then shows the new service.
pub async fn create(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Form(form): Form<ServiceForm>,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, HERE, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    if let Some(refused) = may_deploy(&session) {
        return refused;
    }
    let (manifest, errors) = form.manifest();
    let (status, summary, errors) = if errors.is_empty() {
        let (status, answer) = api
            .call(
                Method::POST,
                "/api/v1/services",
                &credential,
                Some(manifest),
            )
            .await;
        if status.is_success() {
            return Redirect::to(&format!("/ui/services/{}", form.name.trim())).into_response();
        }
        let errors = fields::of_problem(&answer);
        let detail = answer["detail"]
            .as_str()
            .unwrap_or("the service was not deployed")
            .to_owned();
        (status, detail, errors)
    } else {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Some fields are not numbers.".to_owned(),
            errors,
        )
    };
    let models = model_names(&api, &credential).await;
    render(&session, &form, &models, Some(&summary), &errors, status)
}

/// `POST /ui/services/yaml`: the YAML of a form as it stands, for the live view.
pub async fn yaml(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ServiceForm>,
) -> Response {
    if let Err(to_login) = session::require(&state, &headers, HERE).await {
        return to_login;
    }
    (
        [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
        form.yaml(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_version_takes_all_traffic_and_empty_fields_stay_out() {
        let form = ServiceForm {
            name: "chat".into(),
            model: "smollm".into(),
            version_0: "2".into(),
            replicas: "2".into(),
            ..ServiceForm::default()
        };
        let (manifest, errors) = form.manifest();
        assert!(errors.is_empty());
        assert_eq!(
            manifest["spec"]["versions"],
            json!([{"version": "2", "weight": 100}])
        );
        assert_eq!(manifest["spec"]["replicas"], 2);
        assert!(manifest["spec"].get("autoscaling").is_none());
        assert!(manifest["spec"].get("resources").is_none());
        assert!(manifest["spec"].get("configRef").is_none());
        assert!(form.yaml().contains("kind: ModelService"));
    }

    #[test]
    fn a_config_key_becomes_a_config_ref_with_only_the_parts_filled_in() {
        let form = ServiceForm {
            name: "chat".into(),
            model: "smollm".into(),
            version_0: "1".into(),
            config_key: " chat.yaml ".into(),
            config_environment: "prod".into(),
            ..ServiceForm::default()
        };
        assert_eq!(
            form.manifest().0["spec"]["configRef"],
            json!({"environment": "prod", "key": "chat.yaml"})
        );
        // An environment without a key references nothing.
        let no_key = ServiceForm {
            config_key: String::new(),
            ..form
        };
        assert!(no_key.manifest().0["spec"].get("configRef").is_none());
    }

    #[test]
    fn a_command_runtime_is_an_argv_and_autoscaling_replaces_replicas() {
        let form = ServiceForm {
            runtime: "command".into(),
            command: "python  -m server --port {port}".into(),
            protocol: "v2".into(),
            replicas: "3".into(),
            autoscale: "on".into(),
            min_replicas: "0".into(),
            max_replicas: "4".into(),
            scale_to_zero_after: "5m".into(),
            ..ServiceForm::default()
        };
        let (manifest, _) = form.manifest();
        assert_eq!(
            manifest["spec"]["runtime"]["command"]["command"],
            json!(["python", "-m", "server", "--port", "{port}"])
        );
        assert_eq!(manifest["spec"]["runtime"]["command"]["protocol"], "v2");
        assert_eq!(
            manifest["spec"]["autoscaling"],
            json!({"minReplicas": 0, "maxReplicas": 4, "scaleToZeroAfter": "5m"})
        );
        assert!(manifest["spec"].get("replicas").is_none());
        assert!(manifest["spec"].get("loadBalancing").is_none());
    }

    #[test]
    fn prefix_hash_balancing_carries_only_the_knobs_filled_in() {
        let form = ServiceForm {
            balancing: "prefixHash".into(),
            mean_load_factor: "150".into(),
            ..ServiceForm::default()
        };
        let (manifest, errors) = form.manifest();
        assert!(errors.is_empty());
        assert_eq!(
            manifest["spec"]["loadBalancing"],
            json!({"strategy": "prefixHash", "prefixHash": {"meanLoadFactor": 150}})
        );
        let bad = ServiceForm {
            balancing: "prefixHash".into(),
            prefix_char_length: "lots".into(),
            ..ServiceForm::default()
        };
        let (_, errors) = bad.manifest();
        let html = fields::beside(&errors, &FIELDS, "balancing").into_string();
        assert!(
            html.contains("&quot;lots&quot; is not a whole number"),
            "{html}"
        );
    }

    #[test]
    fn a_field_that_is_not_a_number_is_named() {
        let form = ServiceForm {
            version_0: "1".into(),
            weight_0: "sixty".into(),
            version_1: "2".into(),
            weight_1: "40".into(),
            gpu: "-1".into(),
            ..ServiceForm::default()
        };
        let (_, errors) = form.manifest();
        let paths: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["spec.versions[0].weight", "spec.resources.gpu"]);
        let html = fields::beside(&errors, &FIELDS, "versions").into_string();
        assert!(
            html.contains("&quot;sixty&quot; is not a whole number"),
            "{html}"
        );
        assert!(fields::others(&errors, &FIELDS).is_empty());
    }
}
