//! One unhappy path per rule, each asserting the exact path and message, and
//! that no other rule fires.

use crate::service::*;

fn valid() -> ModelServiceSpec {
    ModelServiceSpec {
        model: "smollm2".into(),
        versions: vec![
            VersionWeight {
                version: "3".into(),
                weight: 90,
            },
            VersionWeight {
                version: "4".into(),
                weight: 10,
            },
        ],
        runtime: RuntimeSpec::default(),
        replicas: Some(2),
        autoscaling: None,
        resources: None,
        env: Vec::new(),
        config_ref: None,
        stateful: None,
        ingress: None,
        load_balancing: None,
        rollout: None,
        filters: Vec::new(),
    }
}

fn autoscaling() -> Autoscaling {
    Autoscaling {
        min_replicas: 0,
        max_replicas: 10,
        target_in_flight: 4,
        scale_to_zero_after: Some("300s".into()),
        scale_down_stabilization: None,
        hpa: None,
    }
}

fn command(argv: &[&str]) -> RuntimeSpec {
    RuntimeSpec::Command(CommandRuntime {
        command: argv.iter().map(|s| s.to_string()).collect(),
        protocol: Protocol::OpenAi,
        ready_path: None,
    })
}

/// Asserts that `spec` breaks exactly one rule, at `path`, with `message`.
#[track_caller]
fn only(spec: ModelServiceSpec, path: &str, message: &str) {
    assert_eq!(spec.validate(), Err(vec![FieldError::new(path, message)]));
}

fn resources(cpu: Option<&str>, memory: Option<&str>) -> Option<Resources> {
    Some(Resources {
        cpu: cpu.map(Into::into),
        memory: memory.map(Into::into),
        gpu: None,
    })
}

fn env(pairs: &[(&str, &str)]) -> Vec<EnvVar> {
    pairs
        .iter()
        .map(|(name, value)| EnvVar {
            name: name.to_string(),
            value: value.to_string(),
        })
        .collect()
}

#[test]
fn valid_specs_pass() {
    assert_eq!(valid().validate(), Ok(()));
    let spec = ModelServiceSpec {
        replicas: None,
        autoscaling: Some(autoscaling()),
        resources: resources(Some("500m"), Some("512Mi")),
        env: env(&[("OMP_NUM_THREADS", "4"), ("_x", "")]),
        runtime: command(&["srv", "--port={port}", "${HOME}/{model}"]),
        ..valid()
    };
    assert_eq!(spec.validate(), Ok(()));
}

#[test]
fn model_is_a_dns_label() {
    let spec = ModelServiceSpec {
        model: "Big".into(),
        ..valid()
    };
    only(
        spec,
        "spec.model",
        "model name \"Big\" contains 'B'; use lower-case letters, digits and '-'",
    );
}

#[test]
fn service_name_is_a_dns_label() {
    let service = ModelService {
        name: String::new(),
        spec: valid(),
    };
    assert_eq!(
        service.validate(),
        Err(vec![FieldError::new(
            "name",
            "service name must not be empty"
        )])
    );
}

#[test]
fn at_least_one_version() {
    let spec = ModelServiceSpec {
        versions: vec![],
        ..valid()
    };
    only(spec, "spec.versions", "at least one version is required");
}

#[test]
fn versions_are_non_empty_and_unique() {
    let mut spec = valid();
    spec.versions[1].version = String::new();
    spec.versions[0].weight = 100;
    spec.versions[1].weight = 0;
    only(
        spec,
        "spec.versions[1].version",
        "version name must not be empty",
    );

    let mut spec = valid();
    spec.versions[1].version = "3".into();
    only(
        spec,
        "spec.versions[1].version",
        "version \"3\" is listed twice (first at spec.versions[0])",
    );
}

#[test]
fn too_many_versions() {
    let mut spec = valid();
    spec.versions = (0..17)
        .map(|i| VersionWeight {
            version: i.to_string(),
            weight: if i == 0 { 100 } else { 0 },
        })
        .collect();
    only(spec, "spec.versions", "17 versions; the limit is 16");
}

#[test]
fn weights_sum_to_100() {
    let mut spec = valid();
    spec.versions[1].weight = 20;
    only(
        spec,
        "spec.versions",
        "weights sum to 110; they must sum to exactly 100",
    );
}

#[test]
fn weight_above_100() {
    let mut spec = valid();
    spec.versions[1].weight = 150;
    spec.versions[0].weight = 0;
    assert_eq!(
        spec.validate(),
        Err(vec![
            FieldError::new("spec.versions[1].weight", "weight 150 is above 100"),
            FieldError::new(
                "spec.versions",
                "weights sum to 150; they must sum to exactly 100"
            ),
        ])
    );
}

#[test]
fn zero_weight_is_warm_but_not_all_zero() {
    let mut spec = valid();
    spec.versions[0].weight = 100;
    spec.versions[1].weight = 0;
    assert_eq!(spec.validate(), Ok(()));
    spec.versions[0].weight = 0;
    only(
        spec,
        "spec.versions",
        "every weight is 0; at least one version must take traffic (weight 0 only keeps a version warm)",
    );
}

#[test]
fn replicas_and_autoscaling_exclude_each_other() {
    let spec = ModelServiceSpec {
        autoscaling: Some(autoscaling()),
        ..valid()
    };
    only(
        spec,
        "spec.replicas",
        "replicas and autoscaling are mutually exclusive: set replicas for a fixed count or autoscaling for a range",
    );
}

#[test]
fn replicas_limit() {
    let spec = ModelServiceSpec {
        replicas: Some(101),
        ..valid()
    };
    only(
        spec,
        "spec.replicas",
        "replicas 101 is above the limit of 100",
    );
}

fn with_autoscaling(edit: impl FnOnce(&mut Autoscaling)) -> ModelServiceSpec {
    let mut a = autoscaling();
    edit(&mut a);
    ModelServiceSpec {
        replicas: None,
        autoscaling: Some(a),
        ..valid()
    }
}

#[test]
fn autoscaling_bounds() {
    only(
        with_autoscaling(|a| {
            a.min_replicas = 5;
            a.max_replicas = 3;
        }),
        "spec.autoscaling.minReplicas",
        "minReplicas 5 is above maxReplicas 3",
    );
    only(
        with_autoscaling(|a| a.max_replicas = 0),
        "spec.autoscaling.maxReplicas",
        "maxReplicas must be at least 1",
    );
    only(
        with_autoscaling(|a| a.max_replicas = 101),
        "spec.autoscaling.maxReplicas",
        "maxReplicas 101 is above the limit of 100",
    );
    only(
        with_autoscaling(|a| a.target_in_flight = 0),
        "spec.autoscaling.targetInFlight",
        "targetInFlight must be at least 1",
    );
}

#[test]
fn autoscaling_durations() {
    only(
        with_autoscaling(|a| a.scale_to_zero_after = Some("5 minutes".into())),
        "spec.autoscaling.scaleToZeroAfter",
        "duration \"5 minutes\" has unknown unit \" minutes\"; use ms, s, m or h",
    );
    only(
        with_autoscaling(|a| a.scale_to_zero_after = Some("-5s".into())),
        "spec.autoscaling.scaleToZeroAfter",
        "duration \"-5s\" must not be negative",
    );
    only(
        with_autoscaling(|a| a.scale_to_zero_after = Some(String::new())),
        "spec.autoscaling.scaleToZeroAfter",
        "duration must not be empty; write a number with a unit (ms, s, m or h), like \"300s\"",
    );
    only(
        with_autoscaling(|a| a.scale_to_zero_after = Some("500ms".into())),
        "spec.autoscaling.scaleToZeroAfter",
        "scaleToZeroAfter must be at least 1s",
    );
    only(
        with_autoscaling(|a| a.scale_down_stabilization = Some("300".into())),
        "spec.autoscaling.scaleDownStabilization",
        "duration \"300\" needs a unit (ms, s, m or h), like \"300s\"",
    );
    only(
        with_autoscaling(|a| a.scale_down_stabilization = Some("2h".into())),
        "spec.autoscaling.scaleDownStabilization",
        "scaleDownStabilization must be at most 1h, as on a Kubernetes HPA",
    );
    assert_eq!(
        with_autoscaling(|a| a.scale_down_stabilization = Some("1h".into())).validate(),
        Ok(())
    );
}

#[test]
fn builtin_knobs_are_positive() {
    let spec = ModelServiceSpec {
        runtime: RuntimeSpec::Builtin(BuiltinRuntime {
            threads: Some(0),
            ..BuiltinRuntime::default()
        }),
        ..valid()
    };
    only(
        spec,
        "spec.runtime.builtin.threads",
        "threads must be at least 1; leave it out for the engine's default",
    );
}

#[test]
fn command_needs_argv_with_port() {
    only(
        ModelServiceSpec {
            runtime: command(&[]),
            ..valid()
        },
        "spec.runtime.command.command",
        "command must not be empty: give the program and its arguments",
    );
    only(
        ModelServiceSpec {
            runtime: command(&["llama-server", "-m", "{model}"]),
            ..valid()
        },
        "spec.runtime.command.command",
        "command must contain {port} in some argument, so that each replica can be given its own port",
    );
    only(
        ModelServiceSpec {
            runtime: command(&["", "{port}"]),
            ..valid()
        },
        "spec.runtime.command.command[0]",
        "the program (command[0]) must not be empty",
    );
    only(
        ModelServiceSpec {
            runtime: command(&["srv", "{port}", "{modle}"]),
            ..valid()
        },
        "spec.runtime.command.command[2]",
        "unknown placeholder {modle}; the known ones are {port}, {model}, {name} and {version}",
    );
}

#[test]
fn ready_path_is_absolute() {
    let spec = ModelServiceSpec {
        runtime: RuntimeSpec::Command(CommandRuntime {
            command: vec!["srv".into(), "{port}".into()],
            protocol: Protocol::V2,
            ready_path: Some("health".into()),
        }),
        ..valid()
    };
    only(
        spec,
        "spec.runtime.command.readyPath",
        "readyPath \"health\" must start with '/'",
    );
}

#[test]
fn image_runtime_rules() {
    let spec = ModelServiceSpec {
        runtime: RuntimeSpec::Image(ImageRuntime {
            image: String::new(),
            args: vec![],
            port: 0,
            protocol: Protocol::OpenAi,
        }),
        ..valid()
    };
    assert_eq!(
        spec.validate(),
        Err(vec![
            FieldError::new("spec.runtime.image.image", "image must not be empty"),
            FieldError::new("spec.runtime.image.port", "port must be 1 to 65535"),
        ])
    );
}

#[test]
fn quantities() {
    only(
        ModelServiceSpec {
            resources: resources(Some("2 cores"), None),
            ..valid()
        },
        "spec.resources.cpu",
        "cpu \"2 cores\" has unknown suffix \" cores\"; use Ki, Mi, Gi, Ti, m, k, M, G or T; write cores like \"500m\", \"2\" or \"1.5\"",
    );
    only(
        ModelServiceSpec {
            resources: resources(Some("0"), None),
            ..valid()
        },
        "spec.resources.cpu",
        "cpu \"0\" must be more than 0",
    );
    only(
        ModelServiceSpec {
            resources: resources(None, Some("4GB")),
            ..valid()
        },
        "spec.resources.memory",
        "memory \"4GB\" has unknown suffix \"GB\"; use Ki, Mi, Gi, Ti, m, k, M, G or T; write bytes like \"512Mi\" or \"4Gi\"",
    );
    only(
        ModelServiceSpec {
            resources: resources(None, Some("-1Gi")),
            ..valid()
        },
        "spec.resources.memory",
        "memory \"-1Gi\" must not be negative; write bytes like \"512Mi\" or \"4Gi\"",
    );
    only(
        ModelServiceSpec {
            resources: resources(None, Some("512m")),
            ..valid()
        },
        "spec.resources.memory",
        "memory \"512m\" means millibytes; write \"512Mi\" for mebibytes",
    );
}

#[test]
fn env_names() {
    only(
        ModelServiceSpec {
            env: env(&[("1X", "")]),
            ..valid()
        },
        "spec.env[0].name",
        "env name \"1X\" must be a C identifier: letters, digits and '_', not starting with a digit",
    );
    only(
        ModelServiceSpec {
            env: env(&[("A", ""), ("AUTOGLM_PORT", "1")]),
            ..valid()
        },
        "spec.env[1].name",
        "env name \"AUTOGLM_PORT\" is reserved: names starting with AUTOGLM_ are set by the platform",
    );
    only(
        ModelServiceSpec {
            env: env(&[("A", ""), ("A", "")]),
            ..valid()
        },
        "spec.env[1].name",
        "env name \"A\" is set twice (first at spec.env[0])",
    );
    only(
        ModelServiceSpec {
            env: env(&[("A", "a\0b")]),
            ..valid()
        },
        "spec.env[0].value",
        "env value must not contain a NUL byte",
    );
}

#[test]
fn a_config_ref_names_an_environment_and_a_key_that_cannot_escape() {
    let reference = |environment: Option<&str>, group: Option<&str>, key: &str| ModelServiceSpec {
        config_ref: Some(ConfigRef {
            environment: environment.map(str::to_owned),
            group: group.map(str::to_owned),
            key: key.to_owned(),
        }),
        ..valid()
    };
    assert!(reference(None, None, "runtime.yaml").validate().is_ok());
    assert!(
        reference(Some("prod"), Some("models"), "chat.yaml")
            .validate()
            .is_ok()
    );
    only(
        reference(None, None, "../secrets"),
        "spec.configRef.key",
        "key \"../secrets\" contains '/'; use letters, digits and '.', '_', ':', '-'",
    );
    only(
        reference(None, Some("a/b"), "k"),
        "spec.configRef.group",
        "group \"a/b\" contains '/'; use letters, digits and '.', '_', ':', '-'",
    );
    only(
        reference(None, None, "a..b"),
        "spec.configRef.key",
        "key \"a..b\" must not contain '..' or be '.'",
    );
    let wrong = reference(Some("Prod!"), None, "k").validate().unwrap_err();
    assert_eq!(wrong.len(), 1);
    assert_eq!(wrong[0].path, "spec.configRef.environment");
}

#[test]
fn every_problem_is_reported() {
    let spec = ModelServiceSpec {
        model: String::new(),
        versions: vec![],
        runtime: command(&["srv"]),
        replicas: Some(1),
        autoscaling: Some(autoscaling()),
        resources: resources(Some("x"), None),
        env: env(&[("AUTOGLM_X", "")]),
        config_ref: None,
        stateful: None,
        ingress: None,
        load_balancing: None,
        rollout: None,
        filters: Vec::new(),
    };
    let paths: Vec<String> = spec
        .validate()
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(
        paths,
        [
            "spec.model",
            "spec.versions",
            "spec.runtime.command.command",
            "spec.replicas",
            "spec.resources.cpu",
            "spec.env[0].name",
        ]
    );
}
