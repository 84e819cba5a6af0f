//! Idempotency records and command nonces.

use r2d2_sqlite::rusqlite::OptionalExtension;

use crate::Transaction;
use crate::{Result, Store, StoreError, timestamp};
use autoglm_core::error::ErrorCode;

/// Identifies a POST made with an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// Who sent it: keys are scoped per principal, so two users never collide.
    pub principal: String,
    /// The header's value.
    pub key: String,
    /// Hash of method, path and body: the same key with another request is refused.
    pub fingerprint: String,
}

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Vec<u8>,
}

pub(crate) fn record(
    tx: &Transaction<'_>,
    key: &IdempotencyKey,
    response: &StoredResponse,
) -> Result<()> {
    tx.execute(
        "INSERT INTO idempotency (principal, key, fingerprint, status, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        (
            &key.principal,
            &key.key,
            &key.fingerprint,
            response.status,
            &response.body,
            timestamp(chrono::Utc::now()),
        ),
    )?;
    Ok(())
}

impl Store {
    /// Spends a command nonce, remembered until `expires_at` (Unix seconds);
    /// a nonce seen before is refused.
    pub fn consume_nonce(&self, nonce: &str, expires_at: i64) -> Result<()> {
        self.bookkeeping(|tx| {
            let now = chrono::Utc::now().timestamp();
            tx.execute("DELETE FROM nonces WHERE expires_at < ?1", [now])?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO nonces (nonce, expires_at) VALUES (?1, ?2)",
                (nonce, expires_at),
            )?;
            if inserted == 0 {
                return Err(StoreError::rejected(
                    ErrorCode::NonceReused,
                    "this command nonce was already used",
                ));
            }
            Ok(())
        })
    }

    /// The stored response for `key`, if the first request completed. A stored
    /// response under another fingerprint is refused: the key was reused.
    pub fn idempotent_response(&self, key: &IdempotencyKey) -> Result<Option<StoredResponse>> {
        let found: Option<(String, u16, Vec<u8>)> = self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT fingerprint, status, body FROM idempotency WHERE principal = ?1 AND key = ?2",
                    (&key.principal, &key.key),
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?)
        })?;
        match found {
            None => Ok(None),
            Some((fingerprint, _, _)) if fingerprint != key.fingerprint => {
                Err(StoreError::rejected(
                    ErrorCode::IdempotencyKeyReused,
                    "this Idempotency-Key was already used for a different request",
                ))
            }
            Some((_, status, body)) => Ok(Some(StoredResponse { status, body })),
        }
    }
}
