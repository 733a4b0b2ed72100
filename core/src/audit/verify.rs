//! Chain verification: recompute every hash from the stored bodies, check the links and the
//! sequence, and check that the filter columns agree with the hashed body.

use serde::Serialize;

use super::Event;
use crate::crypto::{CHAIN_GENESIS, chain_hash};
use crate::store::{Store, StoreError};

/// The result of verifying one chain.
#[derive(Debug, Clone, Serialize, salvo::oapi::ToSchema)]
pub struct Verification {
    /// True when no problem was found.
    pub ok: bool,
    /// Events checked.
    pub checked: u64,
    /// Sequence number verification started after (a retention checkpoint, or 0).
    pub from_seq: i64,
    /// The first problem found.
    pub problem: Option<String>,
}

/// Verifies a chain from its checkpoint (or genesis) to its head.
pub async fn verify_chain(store: &dyn Store, chain: &str) -> Result<Verification, StoreError> {
    let (from_seq, mut prev) = store
        .audit_checkpoint(chain)
        .await?
        .unwrap_or((0, CHAIN_GENESIS.to_owned()));
    let mut expected_seq = from_seq + 1;
    let mut checked = 0;
    let fail = |checked, problem: String| Verification {
        ok: false,
        checked,
        from_seq,
        problem: Some(problem),
    };
    loop {
        let rows = store.audit_chain(chain, expected_seq - 1, 1000).await?;
        if rows.is_empty() {
            return Ok(Verification {
                ok: true,
                checked,
                from_seq,
                problem: None,
            });
        }
        for r in rows {
            if r.seq != expected_seq {
                return Ok(fail(
                    checked,
                    format!("event #{expected_seq} is missing (found #{} next)", r.seq),
                ));
            }
            if r.prev_hash != prev {
                return Ok(fail(
                    checked,
                    format!("event #{} does not link to its predecessor", r.seq),
                ));
            }
            if chain_hash(&prev, &r.body) != r.hash {
                return Ok(fail(
                    checked,
                    format!("event #{} was modified (hash mismatch)", r.seq),
                ));
            }
            let body: Event = match serde_json::from_str(&r.body) {
                Ok(b) => b,
                Err(_) => {
                    return Ok(fail(
                        checked,
                        format!("event #{} has an unreadable body", r.seq),
                    ));
                }
            };
            if body.id != r.id
                || body.realm_id != r.realm_id
                || body.action != r.action
                || body.outcome != r.outcome
                || body.time_ms != r.time
            {
                return Ok(fail(
                    checked,
                    format!(
                        "event #{}: indexed columns disagree with the hashed body",
                        r.seq
                    ),
                ));
            }
            prev = r.hash;
            expected_seq += 1;
            checked += 1;
        }
    }
}
