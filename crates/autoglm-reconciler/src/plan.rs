//! From a stored ModelService to the platform's plan: which program each
//! replica runs, with which arguments, and how many of each version. Pure:
//! the version folders and replica counts are given.

use std::collections::BTreeMap;
use std::path::PathBuf;

use autoglm_core::service::{
    BUILTIN_READY_PATH, CONFIG_FILE_ENV, CONFIG_MD5_ENV, PlaceholderValues, RuntimeSpec,
};
use autoglm_platform::{Launch, ServicePlan, VersionPlan};
use autoglm_store::StoredService;

/// Why a service cannot run on the local platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    /// A CamelCase reason, as in status conditions.
    pub reason: &'static str,
    /// In words.
    pub message: String,
}

/// The platform's name of a tenant's service: unique on this machine, and
/// readable in replica ids and log file names.
pub fn platform_name(tenant: &str, service: &str) -> String {
    format!("{tenant}.{service}")
}

/// The tenant and service of a platform name.
pub fn split_platform_name(name: &str) -> Option<(&str, &str)> {
    name.split_once('.')
}

/// How replicas start on this machine: the `autoglm` binary that serves
/// built-in replicas (and supervises command runtimes), and the environment
/// every replica gets before its service's own (where to send spans).
#[derive(Debug, Clone, Default)]
pub struct Launcher {
    /// The program.
    pub program: PathBuf,
    /// Variables every replica gets; a service's `env` overrides them.
    pub env: Vec<(String, String)>,
    /// Where the content of `configRef` keys is written for replicas to
    /// read, one file per content (named by its md5), never rewritten.
    pub config_dir: PathBuf,
}

/// What a plan needs from the store besides the service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Each listed version's folder.
    pub dirs: BTreeMap<String, PathBuf>,
    /// The live content of the service's `configRef`, written to a file;
    /// `None` when it has none or the key is gone.
    pub config: Option<ConfigFile>,
}

/// A `configRef`'s content as replicas read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// The file.
    pub path: PathBuf,
    /// The md5 of its content: a change of it rolls the replicas.
    pub md5: String,
}

/// Builds the plan of `stored` from what the store holds for it;
/// `replicas` says how many replicas a version runs now.
pub fn plan(
    tenant: &str,
    stored: &StoredService,
    found: &Found,
    launcher: &Launcher,
    replicas: impl Fn(&str) -> u32,
) -> Result<ServicePlan, Unschedulable> {
    let spec = &stored.manifest.spec;
    let name = stored.name();
    let config_env = match (&spec.config_ref, &found.config) {
        (None, _) => Vec::new(),
        (Some(r), None) => {
            return Err(Unschedulable {
                reason: "ConfigNotFound",
                message: format!(
                    "config key {}/{}/{} does not exist (or was deleted)",
                    r.environment(),
                    r.group(),
                    r.key
                ),
            });
        }
        (Some(_), Some(file)) => vec![
            (CONFIG_FILE_ENV.to_owned(), file.path.display().to_string()),
            (CONFIG_MD5_ENV.to_owned(), file.md5.clone()),
        ],
    };
    let mut versions = Vec::with_capacity(spec.versions.len());
    for v in &spec.versions {
        let dir = found.dirs.get(&v.version).ok_or_else(|| Unschedulable {
            reason: "VersionMissing",
            message: format!("version {} of model {} has no files", v.version, spec.model),
        })?;
        let mut launch = match &spec.runtime {
            RuntimeSpec::Builtin(b) => {
                let args = b.runtime_args(
                    &dir.display().to_string(),
                    name,
                    &v.version,
                    "127.0.0.1:{port}",
                );
                Launch {
                    program: launcher.program.clone(),
                    args,
                    env: Vec::new(),
                    ready_path: BUILTIN_READY_PATH.to_owned(),
                }
            }
            RuntimeSpec::Command(c) => {
                let model_dir = dir.display().to_string();
                let argv = c.argv(&PlaceholderValues {
                    port: None,
                    model: &model_dir,
                    name,
                    version: &v.version,
                });
                if argv.is_empty() {
                    return Err(Unschedulable {
                        reason: "InvalidRuntime",
                        message: "the command is empty".to_owned(),
                    });
                }
                // Run under `autoglm supervise`, which stops the program
                // should the platform be killed outright.
                let mut args = vec!["supervise".to_owned(), "--".to_owned()];
                args.extend(argv);
                Launch {
                    program: launcher.program.clone(),
                    args,
                    env: Vec::new(),
                    ready_path: c
                        .ready_path
                        .clone()
                        .unwrap_or_else(|| c.protocol.ready_path().to_owned()),
                }
            }
            RuntimeSpec::Image(i) => {
                return Err(Unschedulable {
                    reason: "NeedsKubernetes",
                    message: format!(
                        "runtime image {} runs on Kubernetes only; the local platform runs builtin and command runtimes",
                        i.image
                    ),
                });
            }
        };
        launch.env = launcher
            .env
            .iter()
            .filter(|(name, _)| !spec.env.iter().any(|e| e.name == *name))
            .cloned()
            .chain(spec.env.iter().map(|e| (e.name.clone(), e.value.clone())))
            .chain(config_env.iter().cloned())
            .collect();
        versions.push(VersionPlan {
            version: v.version.clone(),
            weight: v.weight,
            replicas: replicas(&v.version),
            launch,
        });
    }
    Ok(ServicePlan {
        name: platform_name(tenant, name),
        tenant: tenant.to_owned(),
        per_replica: autoglm_core::quota::Holding::of_replica(spec.resources.as_ref()),
        generation: stored.generation(),
        restart: stored.restarts.max(0) as u64,
        versions,
        balancing: spec.load_balancing.clone().unwrap_or_default(),
        filters: spec.filters.clone(),
    })
}
