//! What the platform is asked to run: a service's versions, each with a
//! replica count and how to launch one replica. Built by the console from a
//! ModelService and the registry; the platform only executes it.

use std::path::PathBuf;

use autoglm_core::quota::Holding;
use autoglm_core::service::LoadBalancing;

/// How to start one replica. `{port}` in `args` is replaced by the port the
/// platform picked for the replica; `AUTOGLM_PORT` carries it too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Launch {
    /// The program to run.
    pub program: PathBuf,
    /// Its arguments, `{port}` not yet expanded.
    pub args: Vec<String>,
    /// Extra environment, on top of the platform's own environment.
    pub env: Vec<(String, String)>,
    /// Path answered with 2xx once the replica can serve, e.g. `/readyz`.
    pub ready_path: String,
}

impl Launch {
    /// The argument list for a replica listening on `port`.
    pub fn args_for(&self, port: u16) -> Vec<String> {
        let port = port.to_string();
        self.args
            .iter()
            .map(|a| a.replace("{port}", &port))
            .collect()
    }
}

/// One version of a service and how many replicas serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionPlan {
    /// The model version, e.g. `"3"`.
    pub version: String,
    /// Share of traffic in percent; passed through to the routing table.
    pub weight: u32,
    /// Replicas wanted now.
    pub replicas: u32,
    /// How each of them starts.
    pub launch: Launch,
}

/// Everything the platform should run for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    /// The service's name, unique on this platform.
    pub name: String,
    /// Its tenant, whose quotas each replica is admitted by.
    pub tenant: String,
    /// What each replica holds (its requested CPU and memory, its GPUs).
    pub per_replica: Holding,
    /// The spec generation the plan was made from, reported back in the
    /// status so that a task knows when its change is running.
    pub generation: i64,
    /// Bumped by a restart request: a new value replaces every replica, one
    /// by one, even though nothing else changed.
    pub restart: u64,
    /// The versions to run.
    pub versions: Vec<VersionPlan>,
    /// How the gateway spreads requests over each version's replicas;
    /// passed through to the routing table.
    pub balancing: LoadBalancing,
    /// The service's gateway filters; passed through to the routing table.
    pub filters: Vec<autoglm_core::filter::FilterRef>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_placeholder_is_expanded_in_every_argument() {
        let launch = Launch {
            program: "python3".into(),
            args: vec![
                "--addr".into(),
                "127.0.0.1:{port}".into(),
                "{port}".into(),
                "x".into(),
            ],
            env: vec![],
            ready_path: "/".into(),
        };
        assert_eq!(
            launch.args_for(9001),
            ["--addr", "127.0.0.1:9001", "9001", "x"]
        );
    }
}
