//! The pod template of one version: an init container that pulls the
//! version's files from the registry into a shared volume, the server
//! container, probes, resources, GPU placement and a locked-down security
//! context.

use std::collections::BTreeMap;

use autoglm_core::config::{config_map_name, data_key};
use autoglm_core::service::{
    BUILTIN_READY_PATH, CONFIG_FILE_ENV, CONFIG_MD5_ANNOTATION, CONFIG_MD5_ENV, CONFIG_MOUNT_DIR,
    ModelServiceSpec, Protocol, RESTARTED_AT_ANNOTATION, RuntimeSpec,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapEnvSource, ConfigMapVolumeSource, Container, ContainerPort,
    EmptyDirVolumeSource, EnvFromSource, EnvVar, HTTPGetAction, KeyToPath, Lifecycle,
    LifecycleHandler, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, SecretVolumeSource, SecurityContext, SleepAction, TCPSocketAction, Toleration,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::labels::labels;
use crate::options::{RenderError, RenderOptions};

/// Where the model volume is mounted; each version's files land in
/// `/models/{model}/{version}`.
const MODELS: &str = "/models";
/// The port the built-in runtime listens on in a pod.
pub(crate) const BUILTIN_PORT: u16 = 8080;
/// The unprivileged user the containers run as (distroless' `nonroot`).
const NON_ROOT: i64 = 65532;
/// The volume holding the model files; a volume claim template when stateful.
pub(crate) const MODEL_VOLUME: &str = "model";
/// The volume holding the `configRef` key, from its environment's ConfigMap.
const CONFIG_VOLUME: &str = "config";
/// The label and taint NVIDIA's GPU operator puts on GPU nodes.
const GPU_PRESENT: &str = "nvidia.com/gpu.present";
const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// What the pod template of one version needs besides the spec.
pub(crate) struct PodInputs<'a> {
    pub service: &'a str,
    pub version: &'a str,
    pub spec: &'a ModelServiceSpec,
    pub options: &'a RenderOptions,
    pub config_map: &'a str,
    pub config_hash: &'a str,
    pub restarted_at: Option<&'a str>,
    /// The md5 of the `configRef`'s live content, when the console knows it.
    pub config_md5: Option<&'a str>,
}

/// The server's port and the protocol it speaks.
pub(crate) fn server_port(spec: &ModelServiceSpec) -> Result<(u16, Protocol), RenderError> {
    match &spec.runtime {
        RuntimeSpec::Builtin(_) => Ok((BUILTIN_PORT, Protocol::OpenAi)),
        RuntimeSpec::Image(image) => Ok((image.port, image.protocol)),
        RuntimeSpec::Command(_) => Err(RenderError::CommandRuntime),
    }
}

pub(crate) fn pod_template(inputs: &PodInputs<'_>) -> Result<PodTemplateSpec, RenderError> {
    let spec = inputs.spec;
    let (port, protocol) = server_port(spec)?;
    let model_dir = format!("{MODELS}/{}/{}", spec.model, inputs.version);
    let (image, args, probes) = match &spec.runtime {
        RuntimeSpec::Builtin(builtin) => (
            inputs.options.image.clone(),
            builtin.runtime_args(
                &model_dir,
                inputs.service,
                inputs.version,
                &format!("0.0.0.0:{port}"),
            ),
            Probes::http("/healthz", BUILTIN_READY_PATH),
        ),
        RuntimeSpec::Image(image) => (
            image.image.clone(),
            image.args.clone(),
            match protocol {
                Protocol::V2 => Probes::http("/v2/health/live", protocol.ready_path()),
                Protocol::OpenAi => Probes::tcp_alive(protocol.ready_path()),
            },
        ),
        RuntimeSpec::Command(_) => return Err(RenderError::CommandRuntime),
    };

    let mut annotations = BTreeMap::from([
        ("prometheus.io/scrape".to_owned(), "true".to_owned()),
        ("prometheus.io/port".to_owned(), port.to_string()),
        ("prometheus.io/path".to_owned(), "/metrics".to_owned()),
        // A changed ConfigMap rolls the pods, as Helm charts do with a checksum.
        (
            "autoglm.io/config-hash".to_owned(),
            inputs.config_hash.to_owned(),
        ),
    ]);
    if let Some(at) = inputs.restarted_at {
        annotations.insert(RESTARTED_AT_ANNOTATION.to_owned(), at.to_owned());
    }
    let mut server_env = vec![env("AUTOGLM_MODEL_DIR", &model_dir)];
    let mut server_mounts = vec![
        mount(MODEL_VOLUME, MODELS, true),
        mount("tmp", "/tmp", false),
    ];
    let mut config_volume = None;
    if let Some(r) = &spec.config_ref {
        server_env.push(env(
            CONFIG_FILE_ENV,
            &format!("{CONFIG_MOUNT_DIR}/{}", r.key),
        ));
        // The key's content changes the pod template: the pods roll.
        if let Some(md5) = inputs.config_md5 {
            server_env.push(env(CONFIG_MD5_ENV, md5));
            annotations.insert(CONFIG_MD5_ANNOTATION.to_owned(), md5.to_owned());
        }
        server_mounts.push(mount(CONFIG_VOLUME, CONFIG_MOUNT_DIR, true));
        config_volume = Some(Volume {
            name: CONFIG_VOLUME.to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(r.environment()),
                items: Some(vec![KeyToPath {
                    key: data_key(r.group(), &r.key),
                    path: r.key.clone(),
                    mode: None,
                }]),
                optional: Some(false),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
    }

    let server = Container {
        name: "server".to_owned(),
        image: Some(image),
        args: Some(args),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: i32::from(port),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        env: Some(server_env),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: inputs.config_map.to_owned(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]),
        resources: resources(spec),
        startup_probe: Some(probes.startup),
        liveness_probe: Some(probes.liveness),
        readiness_probe: Some(probes.readiness),
        // Endpoints drop the pod before it stops, as the local platform drains.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction { seconds: 5 }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        security_context: Some(container_security()),
        volume_mounts: Some(server_mounts),
        ..Container::default()
    };

    let loader = Container {
        name: "model-loader".to_owned(),
        image: Some(inputs.options.image.clone()),
        args: Some(
            [
                "model",
                "pull",
                &spec.model,
                "--version",
                inputs.version,
                "--to",
                &model_dir,
            ]
            .map(str::to_owned)
            .into(),
        ),
        env: Some(vec![
            env("AUTOGLM_SERVER", &inputs.options.console_url),
            env("AUTOGLM_TOKEN_FILE", "/var/run/autoglm/registry/token"),
        ]),
        security_context: Some(container_security()),
        volume_mounts: Some(vec![
            mount(MODEL_VOLUME, MODELS, false),
            mount("registry-token", "/var/run/autoglm/registry", true),
            mount("tmp", "/tmp", false),
        ]),
        ..Container::default()
    };

    let mut volumes = vec![
        empty_dir("tmp"),
        Volume {
            name: "registry-token".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(inputs.options.registry_token_secret.clone()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    if spec.stateful.is_none() {
        volumes.insert(0, empty_dir(MODEL_VOLUME));
    }
    volumes.extend(config_volume);

    let gpu = spec.resources.as_ref().and_then(|r| r.gpu).unwrap_or(0) > 0;
    Ok(PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(inputs.service, &spec.model, Some(inputs.version))),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            init_containers: Some(vec![loader]),
            containers: vec![server],
            volumes: Some(volumes),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(NON_ROOT),
                run_as_group: Some(NON_ROOT),
                fs_group: Some(NON_ROOT),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    localhost_profile: None,
                }),
                ..PodSecurityContext::default()
            }),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(30),
            node_selector: gpu
                .then(|| BTreeMap::from([(GPU_PRESENT.to_owned(), "true".to_owned())])),
            tolerations: gpu.then(|| {
                vec![Toleration {
                    key: Some(GPU_RESOURCE.to_owned()),
                    operator: Some("Exists".to_owned()),
                    effect: Some("NoSchedule".to_owned()),
                    ..Toleration::default()
                }]
            }),
            ..PodSpec::default()
        }),
    })
}

/// The three probes of the server container.
struct Probes {
    startup: Probe,
    liveness: Probe,
    readiness: Probe,
}

impl Probes {
    /// Liveness on `live`, readiness on `ready`; the startup probe allows
    /// ten minutes for loading a model before liveness takes over.
    fn http(live: &str, ready: &str) -> Probes {
        Probes {
            startup: probe(http_get(live), 5, 120),
            liveness: probe(http_get(live), 10, 3),
            readiness: probe(http_get(ready), 5, 3),
        }
    }

    /// For an OpenAI-compatible image, which has no standard liveness path:
    /// the port answering is alive, `ready` answering 2xx is ready.
    fn tcp_alive(ready: &str) -> Probes {
        let tcp = || Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("http".to_owned()),
                host: None,
            }),
            ..Probe::default()
        };
        Probes {
            startup: probe(tcp(), 5, 120),
            liveness: probe(tcp(), 10, 3),
            readiness: probe(http_get(ready), 5, 3),
        }
    }
}

fn http_get(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    }
}

fn probe(action: Probe, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        timeout_seconds: Some(2),
        ..action
    }
}

fn resources(spec: &ModelServiceSpec) -> Option<ResourceRequirements> {
    let r = spec.resources.as_ref()?;
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    if let Some(cpu) = &r.cpu {
        requests.insert("cpu".to_owned(), Quantity(cpu.clone()));
    }
    if let Some(memory) = &r.memory {
        // Memory is not compressible: a replica over its request may be
        // killed at any time, so the limit equals the request.
        requests.insert("memory".to_owned(), Quantity(memory.clone()));
        limits.insert("memory".to_owned(), Quantity(memory.clone()));
    }
    if let Some(gpu) = r.gpu.filter(|g| *g > 0) {
        // Extended resources are set as limits; the request follows.
        limits.insert(GPU_RESOURCE.to_owned(), Quantity(gpu.to_string()));
    }
    Some(ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..ResourceRequirements::default()
    })
}

fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}
