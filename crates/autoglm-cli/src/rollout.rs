//! `autoglm rollout status|pause|resume|promote|abort NAME`: a service's
//! rollout as Argo Rollouts' kubectl plugin shows one (phase, step, the
//! canary's weight, each step and the analysis so far), and a user's
//! commands to it.

use serde_json::Value;

use crate::client::{Client, ClientError};
use crate::output::{print_stdout, sanitize};
use crate::{ClientArgs, OutputFormat};

/// What to do with a rollout.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutAction {
    /// Show it.
    Status,
    /// Hold it where it is (also across restarts) until resumed.
    Pause,
    /// Go on after a manual pause, an open pause or an inconclusive analysis.
    Resume,
    /// Skip the remaining steps: the canary takes all traffic and becomes stable.
    Promote,
    /// All traffic back on the stable version.
    Abort,
}

/// `autoglm rollout`.
#[derive(clap::Args, Debug)]
pub struct RolloutArgs {
    /// Connection and output.
    #[command(flatten)]
    pub client: ClientArgs,
    /// What to do.
    #[arg(value_name = "ACTION", value_enum)]
    pub action: RolloutAction,
    /// The service.
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// Runs `autoglm rollout`.
pub async fn run(args: &RolloutArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.client)?;
    let rollout: Value = match args.action {
        RolloutAction::Status => {
            client
                .get_json(client.url(&["api", "v1", "services", &args.name, "rollout"])?)
                .await?
        }
        action => {
            let word = match action {
                RolloutAction::Pause => "pause",
                RolloutAction::Resume => "resume",
                RolloutAction::Promote => "promote",
                _ => "abort",
            };
            let url = client.url(&["api", "v1", "services", &args.name, "rollout", word])?;
            client
                .json(
                    client
                        .send(client.request(reqwest::Method::POST, url))
                        .await?,
                )
                .await?
        }
    };
    match args.client.output {
        OutputFormat::Table => print_stdout(&status_text(&args.name, &rollout)),
        format => crate::resource::print_documents(format, vec![rollout]),
    }
    Ok(())
}

/// The rollout as `autoglm rollout status` prints it.
pub fn status_text(name: &str, r: &Value) -> String {
    let text = |v: &Value| sanitize(v.as_str().unwrap_or_default());
    let step = r["step"].as_u64().unwrap_or(0) as usize;
    let mut out = format!(
        "Name:     {}\nStatus:   {}\nMessage:  {}\nStable:   {}\nCanary:   {} at {}%\nStep:     {}/{}\nSteps:\n",
        sanitize(name),
        text(&r["phase"]),
        text(&r["message"]),
        text(&r["stable"]),
        text(&r["canary"]),
        r["weight"].as_u64().unwrap_or(0),
        step,
        r["steps"].as_array().map_or(0, Vec::len),
    );
    for (i, s) in r["steps"].as_array().into_iter().flatten().enumerate() {
        let mark = match i.cmp(&step) {
            std::cmp::Ordering::Less => "done",
            std::cmp::Ordering::Equal => "now ",
            std::cmp::Ordering::Greater => "    ",
        };
        out.push_str(&format!("  {mark} {i}: {}\n", text(s)));
    }
    for a in r["analysis"].as_array().into_iter().flatten() {
        for m in a["measurements"].as_array().into_iter().flatten() {
            let value = m["value"]
                .as_f64()
                .map_or("no data".to_owned(), |v| format!("{v}"));
            let baseline = m["baseline"]
                .as_f64()
                .map_or("-".to_owned(), |v| format!("{v}"));
            out.push_str(&format!(
                "Analysis: step {} {} = {value} (stable {baseline}): {}\n",
                a["step"],
                text(&a["name"]),
                text(&m["phase"])
            ));
        }
    }
    out
}
