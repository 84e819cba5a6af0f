//! `autoglm render -f SPEC.yaml` and `autoglm crd`: the Kubernetes objects of
//! a ModelService, and its CRD, printed as YAML. Offline and pure: nothing is
//! sent anywhere, so the output can be reviewed, diffed or piped to kubectl.

use std::path::PathBuf;
use std::process::ExitCode;

use autoglm_core::service::ModelServiceManifest;
use autoglm_render::{RenderOptions, render, to_yaml};

/// Flags of `autoglm render`.
#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// A ModelService manifest: a file, a folder of them, or `-` for stdin.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    /// The namespace of manifests that name none.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// The autoglm image: the built-in runtime and the model loader.
    #[arg(long, default_value_t = RenderOptions::default().image)]
    image: String,
    /// The console the model loader pulls model versions from.
    #[arg(long, default_value_t = RenderOptions::default().console_url)]
    console_url: String,
    /// The Secret whose `token` key lets the model loader read the registry.
    #[arg(long, default_value_t = RenderOptions::default().registry_token_secret)]
    registry_token_secret: String,
}

/// The exit code for bad input, as the other client commands use.
const EXIT_BAD_INPUT: u8 = 2;

/// Prints the children of every ModelService in the files, or one error
/// line and exit code 2 when any document is not a valid ModelService.
pub fn run(args: RenderArgs) -> ExitCode {
    match render_all(&args) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn render_all(args: &RenderArgs) -> Result<String, String> {
    let documents = autoglm_cli::manifests::read_all(&args.files)?;
    if documents.is_empty() {
        return Err("no ModelService found in the given files".to_owned());
    }
    let options = RenderOptions {
        namespace: args.namespace.clone(),
        image: args.image.clone(),
        console_url: args.console_url.clone(),
        registry_token_secret: args.registry_token_secret.clone(),
        owner: None,
    };
    let mut out = String::new();
    let count = documents.len();
    for document in documents {
        let origin = document.origin(count);
        let manifest = ModelServiceManifest::from_value(document.value).map_err(|errors| {
            let fields: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect();
            format!("{origin}: {}", fields.join("; "))
        })?;
        let children = render(&manifest, &options).map_err(|e| format!("{origin}: {e}"))?;
        out.push_str(&to_yaml(&children));
    }
    Ok(out)
}

/// Prints the CRD.
pub fn crd() -> ExitCode {
    print!("{}", autoglm_render::custom_resource_definition_yaml());
    ExitCode::SUCCESS
}
