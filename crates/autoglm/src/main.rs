//! The `autoglm` binary: reads config, starts telemetry, builds the app,
//! serves it until a signal, drains. Everything else lives in the crates.

mod cluster;
mod config;
mod demo;
mod operator;
mod policy;
mod render;
mod runtime;
mod serve;
mod signal;
mod supervise;
mod telemetry;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// autoglm: a control plane and console for serving AI models.
#[derive(Debug, Parser)]
#[command(name = "autoglm", version, about)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "AUTOGLM_LOG_FORMAT",
        value_enum,
        default_value = "plain"
    )]
    log_format: telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything on this machine: console, gateway, local platform, demo services.
    Up(up::UpArgs),
    /// Run the console: REST API, auth, registry, audit.
    Console(cluster::ConsoleArgs),
    /// Run the gateway alone, routing to a Kubernetes cluster's ModelServices.
    Gateway(cluster::GatewayCommandArgs),
    /// Serve one model (a replica): OpenAI and Open Inference Protocol APIs.
    Runtime(runtime::RuntimeArgs),
    /// Manage models in the registry.
    Model {
        #[command(flatten)]
        client: autoglm_cli::ClientArgs,
        #[command(subcommand)]
        command: autoglm_cli::ModelCommand,
    },
    /// The config center: keys of environments, their history, promotions, export and import.
    Config {
        #[command(flatten)]
        client: autoglm_cli::ClientArgs,
        #[command(subcommand)]
        command: autoglm_cli::ConfigCommand,
    },
    #[command(flatten)]
    Resource(autoglm_cli::ResourceCommand),
    /// Policies as code, offline: run Rego tests (`opa test`) and queries (`opa eval`).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Print the Kubernetes objects of a ModelService (offline).
    Render(render::RenderArgs),
    /// Print the ModelService CustomResourceDefinition.
    Crd,
    /// Run the Kubernetes operator: keep every ModelService's children.
    Operator(operator::OperatorArgs),
    /// Fetch the demo and test models into the model cache (`AUTOGLM_MODELS`,
    /// else ~/.cache/autoglm/models), with progress; prints the cache's path.
    FetchModels,
    /// Run a command runtime's program for the local platform (internal).
    #[command(hide = true)]
    Supervise(supervise::SuperviseArgs),
}

// The gateway allocates a little per request on every hop; mimalloc does that
// measurably cheaper than glibc's malloc (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// EX_USAGE: the configuration is wrong.
const EXIT_CONFIG: u8 = 64;

/// Runs the console (with `up`, everything) once the configuration checked out.
fn serve(
    rt: &tokio::runtime::Runtime,
    log_format: telemetry::LogFormat,
    checked: Result<(config::Config, serve::Platform), String>,
) -> ExitCode {
    let (config, platform) = match checked {
        Ok(c) => c,
        Err(e) => {
            eprintln!("autoglm: invalid configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    telemetry::init(log_format);
    match rt.block_on(serve::run(config, platform)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autoglm: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    // One TLS provider for every client and server in the process (the
    // console's HTTPS, the Kubernetes client), whatever features other
    // crates switch on in rustls.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("autoglm: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Up(args) => serve(
            &rt,
            cli.log_format,
            args.check().and_then(|(serve, up)| {
                Ok((config::Config::load(serve)?, serve::Platform::Up(up)))
            }),
        ),
        Command::Console(args) => {
            let platform = match args.platform {
                cluster::PlatformKind::None => serve::Platform::None,
                cluster::PlatformKind::Kubernetes => serve::Platform::Kubernetes {
                    kubeconfig: args.kubeconfig,
                    prometheus: args.prometheus_url,
                    system_namespace: args.system_namespace,
                },
            };
            serve(
                &rt,
                cli.log_format,
                config::Config::load(args.serve).map(|c| (c, platform)),
            )
        }
        Command::Gateway(args) => {
            telemetry::init(cli.log_format);
            rt.block_on(cluster::gateway(args))
        }
        Command::Runtime(args) => {
            let checked = match args.check() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("autoglm: invalid configuration: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            telemetry::init(cli.log_format);
            match rt.block_on(runtime::run(checked)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("autoglm: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Model { client, command } => {
            ExitCode::from(rt.block_on(autoglm_cli::run_model(&client, command)) as u8)
        }
        Command::Config { client, command } => {
            ExitCode::from(rt.block_on(autoglm_cli::run_config(&client, command)) as u8)
        }
        Command::Policy(command) => policy::run(command),
        Command::Render(args) => render::run(args),
        Command::Crd => render::crd(),
        Command::Operator(args) => {
            telemetry::init(cli.log_format);
            rt.block_on(operator::run(args))
        }
        Command::Supervise(args) => rt.block_on(supervise::run(args)),
        Command::FetchModels => {
            let cache = autoglm_models::cache_dir();
            match autoglm_models::ensure(&cache, &autoglm_models::ALL) {
                Ok(_) => {
                    println!("{}", cache.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("autoglm: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Resource(command) => {
            ExitCode::from(rt.block_on(autoglm_cli::run_resource(command)) as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_tree_is_consistent() {
        // Checks every subcommand, e.g. that no flag collides with `--version`.
        Cli::command().debug_assert();
    }
}
