//! How a ModelService's replicas run: the built-in engine, a local command, or
//! a container image on Kubernetes.
//!
//! Commands name what only the platform knows (the port it picked, the model
//! and version it serves) through `{placeholders}` expanded per replica.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::FieldError;

/// The placeholders a command may use, each expanded per replica.
pub const PLACEHOLDERS: [&str; 4] = ["port", "model", "name", "version"];

/// The runtime, externally tagged: `{builtin: {}}`, `{command: {...}}` or `{image: {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RuntimeSpec {
    /// The engine built into `autoglm runtime`.
    Builtin(BuiltinRuntime),
    /// A program started by the local platform, one process per replica.
    Command(CommandRuntime),
    /// A container image, for Kubernetes.
    Image(ImageRuntime),
}

impl Default for RuntimeSpec {
    fn default() -> Self {
        RuntimeSpec::Builtin(BuiltinRuntime::default())
    }
}

/// Knobs of the built-in engine; each absent one is left to the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuiltinRuntime {
    /// Most requests batched into one forward pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch: Option<u32>,
    /// Most sequences decoded at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sequences: Option<u32>,
    /// Context length in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<u32>,
    /// CPU threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
}

impl BuiltinRuntime {
    /// The `autoglm runtime` arguments serving `model_dir` as `name`, version
    /// `version`, on `addr`, with each knob that is set.
    pub fn runtime_args(
        &self,
        model_dir: &str,
        name: &str,
        version: &str,
        addr: &str,
    ) -> Vec<String> {
        let mut args: Vec<String> = [
            "runtime",
            "--model",
            model_dir,
            "--name",
            name,
            "--version",
            version,
            "--addr",
            addr,
        ]
        .map(str::to_owned)
        .into();
        let knobs = [
            ("--max-batch", self.max_batch),
            ("--max-sequences", self.max_sequences),
            ("--context", self.context),
            ("--threads", self.threads),
        ];
        for (flag, value) in knobs {
            if let Some(value) = value {
                args.extend([flag.to_owned(), value.to_string()]);
            }
        }
        args
    }
}

/// The path the built-in runtime answers 2xx on once it can serve.
pub const BUILTIN_READY_PATH: &str = "/readyz";

/// The inference protocol a replica speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Protocol {
    /// OpenAI-compatible `/v1/...`.
    #[default]
    #[serde(rename = "openai")]
    OpenAi,
    /// Open Inference Protocol `/v2/...`.
    #[serde(rename = "v2")]
    V2,
}

impl Protocol {
    /// The path that answers 2xx once a server of this protocol can serve.
    pub fn ready_path(self) -> &'static str {
        match self {
            Protocol::OpenAi => "/v1/models",
            Protocol::V2 => "/v2/health/ready",
        }
    }
}

/// A program the local platform starts for each replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandRuntime {
    /// The argv, not a shell line; may contain `{port}`, `{model}`, `{name}`, `{version}`.
    pub command: Vec<String>,
    /// What the program speaks.
    #[serde(default)]
    pub protocol: Protocol,
    /// A path answering 2xx once the replica can serve; absent: the protocol's health path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_path: Option<String>,
}

/// What the placeholders of a command stand for, for one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaceholderValues<'a> {
    /// The port the replica must listen on; `None` leaves `{port}` as
    /// written, for a platform that picks the port per replica later.
    pub port: Option<u16>,
    /// The registry model.
    pub model: &'a str,
    /// The ModelService's name.
    pub name: &'a str,
    /// The model version the replica serves.
    pub version: &'a str,
}

impl CommandRuntime {
    /// The argv for one replica, placeholders expanded. Unknown `{words}` are
    /// kept as written (validation refuses them), and values are not re-scanned.
    pub fn argv(&self, values: &PlaceholderValues<'_>) -> Vec<String> {
        self.command
            .iter()
            .map(|arg| {
                let mut out = String::with_capacity(arg.len());
                let mut last = 0;
                for (start, end, word) in placeholders(arg) {
                    let value = match word {
                        "port" => match values.port {
                            Some(port) => port.to_string(),
                            None => continue,
                        },
                        "model" => values.model.to_owned(),
                        "name" => values.name.to_owned(),
                        "version" => values.version.to_owned(),
                        _ => continue,
                    };
                    out.push_str(&arg[last..start]);
                    out.push_str(&value);
                    last = end;
                }
                out.push_str(&arg[last..]);
                out
            })
            .collect()
    }
}

/// A container image, run as a Deployment on Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageRuntime {
    /// The image reference, e.g. `ghcr.io/org/server:1.2`.
    pub image: String,
    /// Arguments passed to the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The container port the server listens on.
    pub port: u16,
    /// What the server speaks.
    #[serde(default)]
    pub protocol: Protocol,
}

/// The `{word}` placeholders of `arg` as (start, end, word). `${VAR}` is left
/// alone so shell-style text in an argument is not mistaken for a placeholder.
fn placeholders(arg: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    arg.match_indices('{').filter_map(move |(start, _)| {
        if arg[..start].ends_with('$') {
            return None;
        }
        let close = arg[start..].find('}')? + start;
        let word = &arg[start + 1..close];
        let is_word =
            !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        is_word.then_some((start, close + 1, word))
    })
}

/// Checks the runtime, pushing every problem found.
pub(super) fn check(runtime: &RuntimeSpec, errors: &mut Vec<FieldError>) {
    match runtime {
        RuntimeSpec::Builtin(b) => {
            let knobs = [
                ("maxBatch", b.max_batch),
                ("maxSequences", b.max_sequences),
                ("context", b.context),
                ("threads", b.threads),
            ];
            for (field, value) in knobs {
                if value == Some(0) {
                    errors.push(FieldError::new(
                        format!("spec.runtime.builtin.{field}"),
                        format!(
                            "{field} must be at least 1; leave it out for the engine's default"
                        ),
                    ));
                }
            }
        }
        RuntimeSpec::Command(c) => check_command(c, errors),
        RuntimeSpec::Image(i) => {
            if i.image.is_empty() {
                errors.push(FieldError::new(
                    "spec.runtime.image.image",
                    "image must not be empty",
                ));
            } else if i.image.chars().any(|c| c.is_whitespace() || c.is_control()) {
                errors.push(FieldError::new(
                    "spec.runtime.image.image",
                    format!(
                        "image {:?} must not contain spaces or control characters",
                        i.image
                    ),
                ));
            }
            if i.port == 0 {
                errors.push(FieldError::new(
                    "spec.runtime.image.port",
                    "port must be 1 to 65535",
                ));
            }
        }
    }
}

fn check_command(c: &CommandRuntime, errors: &mut Vec<FieldError>) {
    let path = "spec.runtime.command.command";
    match c.command.first() {
        None => errors.push(FieldError::new(
            path,
            "command must not be empty: give the program and its arguments",
        )),
        Some(program) if program.is_empty() => errors.push(FieldError::new(
            format!("{path}[0]"),
            "the program (command[0]) must not be empty",
        )),
        Some(_) => {}
    }
    for (i, arg) in c.command.iter().enumerate() {
        if arg.contains('\0') {
            errors.push(FieldError::new(
                format!("{path}[{i}]"),
                "argument must not contain a NUL byte",
            ));
        }
        for (_, _, word) in placeholders(arg) {
            if !PLACEHOLDERS.contains(&word) {
                errors.push(FieldError::new(
                    format!("{path}[{i}]"),
                    format!(
                        "unknown placeholder {{{word}}}; the known ones are {{port}}, {{model}}, {{name}} and {{version}}"
                    ),
                ));
            }
        }
    }
    let has_port = c
        .command
        .iter()
        .any(|arg| placeholders(arg).any(|(_, _, word)| word == "port"));
    if !c.command.is_empty() && !has_port {
        errors.push(FieldError::new(
            path,
            "command must contain {port} in some argument, so that each replica can be given its own port",
        ));
    }
    if let Some(ready) = &c.ready_path {
        if !ready.starts_with('/') {
            errors.push(FieldError::new(
                "spec.runtime.command.readyPath",
                format!("readyPath {ready:?} must start with '/'"),
            ));
        } else if ready
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control())
        {
            errors.push(FieldError::new(
                "spec.runtime.command.readyPath",
                format!("readyPath {ready:?} must not contain spaces or control characters"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(argv: &[&str]) -> CommandRuntime {
        CommandRuntime {
            command: argv.iter().map(|s| s.to_string()).collect(),
            protocol: Protocol::OpenAi,
            ready_path: None,
        }
    }

    #[test]
    fn argv_expands_placeholders_once() {
        let c = command(&[
            "srv",
            "--port={port}",
            "{model}/{version}",
            "{name}",
            "${HOME}",
            "{x}",
        ]);
        let values = PlaceholderValues {
            port: Some(9001),
            model: "smollm2",
            name: "chat",
            version: "{port}",
        };
        assert_eq!(
            c.argv(&values),
            [
                "srv",
                "--port=9001",
                "smollm2/{port}",
                "chat",
                "${HOME}",
                "{x}"
            ]
        );
        let later = PlaceholderValues {
            port: None,
            ..values
        };
        assert_eq!(c.argv(&later)[1], "--port={port}");
    }

    #[test]
    fn runtime_wire_shapes() {
        let builtin: RuntimeSpec = serde_json::from_str(r#"{"builtin": {}}"#).expect("builtin");
        assert_eq!(builtin, RuntimeSpec::default());
        assert_eq!(
            serde_json::to_string(&builtin).expect("serialise"),
            r#"{"builtin":{}}"#
        );
        let image: Result<RuntimeSpec, _> = serde_json::from_str(
            r#"{"image": {"image": "ghcr.io/x/y:1", "args": ["-v"], "port": 8000, "protocol": "v2"}}"#,
        );
        assert!(matches!(
            image,
            Ok(RuntimeSpec::Image(ImageRuntime {
                port: 8000,
                protocol: Protocol::V2,
                ..
            }))
        ));
        let unknown = serde_json::from_str::<RuntimeSpec>(r#"{"docker": {}}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(unknown.contains("unknown variant `docker`"), "{unknown}");
        let typo = serde_json::from_str::<RuntimeSpec>(r#"{"builtin": {"maxBatches": 4}}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(typo.contains("unknown field `maxBatches`"), "{typo}");
    }
}
