//! `autoglm config watch ENV KEY...`: the Nacos client's loop. It holds the
//! md5 it last saw of each key, long-polls `POST /api/v1/config/watch` with
//! them, and prints one line per change, until interrupted (or, with
//! `--once`, after the first change).

use std::time::Duration;

use autoglm_core::config::{ConfigChange, Watch, WatchAnswer, WatchedKey};
use reqwest::Method;

use super::{KeyName, api};
use crate::client::{Client, ClientError};
use crate::output::{print_stderr, print_stdout, sanitize};
use crate::{ClientArgs, OutputFormat};

/// How long one long-poll may wait: the console's most.
const POLL_MS: u64 = 30_000;
/// The first wait before asking again after the console could not be reached.
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest wait between two tries.
const LAST_RETRY: Duration = Duration::from_secs(10);

/// `autoglm config watch`.
#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// The environment.
    #[arg(value_name = "ENV")]
    pub env: String,
    /// The keys, each in DEFAULT_GROUP unless GROUP/ is given.
    #[arg(value_name = "[GROUP/]KEY", required = true)]
    pub keys: Vec<KeyName>,
    /// Exit after the first change.
    #[arg(long)]
    pub once: bool,
}

/// Whether waiting a little and asking again may help: the console was
/// restarting or something between failed, not a refusal of the request.
fn transient(error: &ClientError) -> bool {
    match error {
        ClientError::Unreachable { .. } | ClientError::Transport { .. } => true,
        _ => error.status().is_some_and(|s| s.is_server_error()),
    }
}

/// The line printed for a change.
pub fn change_line(change: &ConfigChange) -> String {
    let what = if change.deleted {
        "deleted".to_owned()
    } else {
        format!("md5 {}", change.md5)
    };
    sanitize(&format!(
        "{}/{}/{} version {} {what}",
        change.environment, change.group, change.key, change.version
    ))
}

/// `autoglm config watch`.
pub async fn run(args: &ClientArgs, a: &WatchArgs) -> Result<(), ClientError> {
    let client = Client::new(args)?;
    let mut held = Vec::with_capacity(a.keys.len());
    for key in &a.keys {
        let md5 = api::current(&client, &a.env, key)
            .await?
            .map(|v| v.md5)
            .unwrap_or_default();
        held.push(WatchedKey {
            environment: a.env.clone(),
            group: key.group.clone(),
            key: key.key.clone(),
            md5,
        });
    }
    // Said once the md5s are held: a change from now on is printed.
    print_stderr(&format!(
        "watching {} key(s) of environment {}; Ctrl-C stops",
        held.len(),
        sanitize(&a.env)
    ));
    let url = api::url(&client, &["watch"])?;
    let mut retry = FIRST_RETRY;
    loop {
        let body = Watch {
            keys: held.clone(),
            timeout_ms: Some(POLL_MS),
        };
        let answer: WatchAnswer = match api::send(&client, Method::POST, url.clone(), &body).await {
            Ok((_, answer)) => answer,
            Err(e) if transient(&e) => {
                print_stderr(&format!("warning: {e}; trying again in {retry:?}"));
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(LAST_RETRY);
                continue;
            }
            Err(e) => return Err(e),
        };
        retry = FIRST_RETRY;
        for change in &answer.changed {
            if let Some(k) = held
                .iter_mut()
                .find(|k| k.group == change.group && k.key == change.key)
            {
                k.md5.clone_from(&change.md5);
            }
            match args.output {
                OutputFormat::Table => print_stdout(&format!("{}\n", change_line(change))),
                // One compact document a line, for scripts that read a stream.
                _ => print_stdout(&format!(
                    "{}\n",
                    serde_json::to_string(change).unwrap_or_default()
                )),
            }
        }
        if a.once && !answer.changed.is_empty() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_print_on_one_line() {
        let mut change = ConfigChange {
            environment: "dev".into(),
            group: "DEFAULT_GROUP".into(),
            key: "app.yaml".into(),
            version: 4,
            md5: "0123456789abcdef0123456789abcdef".into(),
            deleted: false,
            revision: 17,
        };
        assert_eq!(
            change_line(&change),
            "dev/DEFAULT_GROUP/app.yaml version 4 md5 0123456789abcdef0123456789abcdef"
        );
        change.deleted = true;
        change.md5.clear();
        assert_eq!(
            change_line(&change),
            "dev/DEFAULT_GROUP/app.yaml version 4 deleted"
        );
        assert!(transient(&ClientError::Unreachable {
            server: "s".into(),
            reason: "r".into()
        }));
        assert!(!transient(&ClientError::Local("x".into())));
    }
}
