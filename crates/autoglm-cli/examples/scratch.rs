//! scratch
use clap::Parser;
#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    client: autoglm_cli::ClientArgs,
    #[command(subcommand)]
    command: autoglm_cli::ModelCommand,
}
#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    std::process::exit(autoglm_cli::run_model(&cli.client, cli.command).await);
}
