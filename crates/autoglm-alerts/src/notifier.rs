//! Delivers queued notifications: each due one is POSTed as JSON (5 s
//! timeout, several at once), retried after 1 s doubling on a non-2xx
//! answer or no answer, and kept as a dead letter after its last attempt.
//! It runs beside the evaluator, which only queues, so a receiver that is
//! down never holds up an evaluation.

use std::sync::Arc;
use std::time::Duration;

use autoglm_core::alert::Notification;
use autoglm_core::alert::notify::{MAX_ATTEMPTS, retry_delay};
use autoglm_store::Store;
use chrono::Utc;
use tokio::sync::Notify;

/// Most notifications in flight at once.
const PARALLEL: usize = 16;

pub(crate) async fn run(store: Arc<Store>, wake: Arc<Notify>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    loop {
        if let Err(e) = deliver_due(&store, &client).await {
            tracing::warn!(error = %e, "alerts: could not read the notifications due");
        }
        // Woken by a new notification; otherwise retries come due within a second.
        let _ = tokio::time::timeout(Duration::from_millis(500), wake.notified()).await;
    }
}

/// Delivers every notification due now.
async fn deliver_due(store: &Arc<Store>, client: &reqwest::Client) -> autoglm_store::Result<()> {
    let due = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.due_notifications(Utc::now(), PARALLEL as i64))
            .await
            .map_err(|e| {
                autoglm_store::StoreError::rejected(
                    autoglm_core::error::ErrorCode::Internal,
                    e.to_string(),
                )
            })??
    };
    let attempts = due.into_iter().map(|n| {
        let client = client.clone();
        async move {
            let error = send(&client, &n).await.err();
            (n, error)
        }
    });
    for (n, error) in futures_util::future::join_all(attempts).await {
        let retry_at = error.as_ref().and_then(|_| {
            let attempt = n.attempts + 1;
            (attempt < MAX_ATTEMPTS).then(|| {
                Utc::now() + chrono::Duration::from_std(retry_delay(attempt)).unwrap_or_default()
            })
        });
        if let Some(e) = &error {
            tracing::warn!(url = %n.url, attempt = n.attempts + 1, error = %e, dead = retry_at.is_none(), "alerts: a notification failed");
        }
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            store.notification_attempted(n.id, error.as_deref(), retry_at)
        })
        .await
        .map_err(|e| {
            autoglm_store::StoreError::rejected(
                autoglm_core::error::ErrorCode::Internal,
                e.to_string(),
            )
        })??;
    }
    Ok(())
}

async fn send(client: &reqwest::Client, n: &Notification) -> Result<(), String> {
    let response = client
        .post(&n.url)
        .header("content-type", "application/json")
        .header("user-agent", "autoglm-alerts")
        .body(n.payload.clone())
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", response.status()))
    }
}
