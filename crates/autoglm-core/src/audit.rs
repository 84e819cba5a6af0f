//! Audit records and the hash chain that makes tampering evident.
//!
//! Each record's hash covers the previous record's hash and every field of the
//! record, length-prefixed so that no two different records encode alike.
//! Changing, removing or reordering any record breaks every hash after it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a record says happened, before it is chained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuditEvent {
    /// When, RFC 3339 with microseconds, UTC.
    pub time: String,
    /// Who: `user:NAME`, `key:ID` or `anonymous`.
    pub actor: String,
    /// The tenant acted in (empty when unknown).
    pub tenant: String,
    /// The operation, e.g. `models.create`.
    pub action: String,
    /// The object acted on, e.g. `models/smollm2/versions/3`.
    pub target: String,
    /// The request id of the HTTP request.
    pub request_id: String,
    /// `success`, or the error code that ended the request.
    pub outcome: String,
}

/// A chained audit record, as stored and returned by `GET /api/v1/audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// Hash of the previous record ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// sha256 over `prev_hash` and the event.
    pub hash: String,
}

/// Computes a record's hash from the previous hash and its event.
pub fn chain_hash(prev_hash: &str, seq: i64, event: &AuditEvent) -> String {
    let mut h = Sha256::new();
    let seq = seq.to_string();
    for field in [
        prev_hash,
        seq.as_str(),
        &event.time,
        &event.actor,
        &event.tenant,
        &event.action,
        &event.target,
        &event.request_id,
        &event.outcome,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChainVerification {
    /// True when every record links to the one before and hashes to its stored hash.
    pub valid: bool,
    /// Records checked.
    pub records: i64,
    /// The first record that fails, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<i64>,
    /// Why it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Hash of the last record: publish it elsewhere to detect truncation.
    pub head: String,
}

/// Walks records in order and reports the first break.
pub struct ChainVerifier {
    expected_prev: String,
    expected_seq: i64,
    result: Option<(i64, String)>,
}

impl std::fmt::Debug for ChainVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainVerifier")
            .field("seq", &self.expected_seq)
            .finish()
    }
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            expected_prev: GENESIS_HASH.to_owned(),
            expected_seq: 1,
            result: None,
        }
    }
}

impl ChainVerifier {
    /// Feeds the next record; after the first break, later records are ignored.
    pub fn push(&mut self, record: &AuditRecord) {
        if self.result.is_some() {
            return;
        }
        let reason = if record.seq != self.expected_seq {
            Some(format!(
                "expected record {} but found {}",
                self.expected_seq, record.seq
            ))
        } else if record.prev_hash != self.expected_prev {
            Some("prev_hash does not match the previous record's hash".to_owned())
        } else if chain_hash(&record.prev_hash, record.seq, &record.event) != record.hash {
            Some("hash does not match the record's contents".to_owned())
        } else {
            None
        };
        match reason {
            Some(reason) => self.result = Some((record.seq, reason)),
            None => {
                self.expected_prev = record.hash.clone();
                self.expected_seq += 1;
            }
        }
    }

    /// The verdict.
    pub fn finish(self) -> ChainVerification {
        match self.result {
            None => ChainVerification {
                valid: true,
                records: self.expected_seq - 1,
                first_bad_seq: None,
                reason: None,
                head: self.expected_prev,
            },
            Some((seq, reason)) => ChainVerification {
                valid: false,
                records: self.expected_seq - 1,
                first_bad_seq: Some(seq),
                reason: Some(reason),
                head: self.expected_prev,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let event = AuditEvent {
                    time: format!("2026-01-01T00:00:{seq:02}.000000Z"),
                    actor: "user:admin".into(),
                    tenant: "default".into(),
                    action: "models.create".into(),
                    target: format!("models/m{seq}"),
                    request_id: format!("r{seq}"),
                    outcome: "success".into(),
                };
                let hash = chain_hash(&prev, seq, &event);
                let record = AuditRecord {
                    seq,
                    event,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                record
            })
            .collect()
    }

    fn verify(records: &[AuditRecord]) -> ChainVerification {
        let mut v = ChainVerifier::default();
        records.iter().for_each(|r| v.push(r));
        v.finish()
    }

    #[test]
    fn intact_chain_verifies() {
        let v = verify(&chain(5));
        assert!(v.valid);
        assert_eq!(v.records, 5);
        assert_eq!(verify(&[]).head, GENESIS_HASH);
    }

    #[test]
    fn edits_deletions_and_field_shifts_are_caught() {
        let mut edited = chain(5);
        edited[2].event.outcome = "forbidden".into();
        assert_eq!(verify(&edited).first_bad_seq, Some(3));

        let mut removed = chain(5);
        removed.remove(1);
        assert_eq!(verify(&removed).first_bad_seq, Some(3));

        // Moving a character between adjacent fields keeps the concatenation
        // equal; the length prefixes must still tell them apart.
        let mut shifted = chain(2);
        shifted[0].event.actor = "user:admind".into();
        shifted[0].event.tenant = "efault".into();
        assert_eq!(verify(&shifted).first_bad_seq, Some(1));
    }
}
